"""Multi-line events: stack traces, tracebacks and goroutine dumps are one event each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aiops.logs import analyze
from aiops.logs.analysis import LogAnalyzer, line_template_ids
from aiops.logs.events import exception_type, join_events
from aiops.logs.frame import from_lines, make_frame
from aiops.logs.headers import learn_headers
from aiops.sources.files import read_log_file

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "logs"


def _report(name: str) -> dict:
    return analyze(read_log_file(FIXTURES / name)).to_dict()


def test_java_stack_trace_with_cause_is_one_event():
    report = _report("spring_app.log")
    assert report["total_logs"] == 11  # 26 lines, 15 of them exception, frame and cause lines
    assert report["header"]["joined_lines"] == 15
    assert report["levels"] == {"info": 7, "warn": 1, "error": 3}


def test_java_exception_type_joins_the_first_lines_template():
    report = _report("spring_app.log")
    by_count = {t["template"]: t for t in report["templates"]}
    servlet = next(t for t in by_count if t.startswith("Servlet.service()"))
    assert servlet.endswith("org.springframework.dao.DataAccessResourceFailureException")
    assert by_count[servlet]["count"] == 2 and by_count[servlet]["error_count"] == 2
    rejected = next(t for t in by_count if t.startswith("Invoice rejected"))
    assert rejected == "Invoice rejected java.lang.IllegalArgumentException"


def test_exception_types_count_once_per_event_including_causes():
    report = _report("spring_app.log")
    assert report["error_types"]["org.springframework.dao.DataAccessResourceFailureException"] == 2
    assert report["error_types"]["java.sql.SQLTransientConnectionException"] == 2


def test_python_traceback_is_one_event_typed_by_its_last_line():
    report = _report("python_app.log")
    assert report["total_logs"] == 9
    templates = {t["template"]: t["count"] for t in report["templates"]}
    assert templates["failed to import order batch <NUM> ValueError"] == 1
    assert templates["failed to import order batch <NUM> requests.exceptions.ConnectionError"] == 1
    assert report["error_count"] == 2


def test_go_panic_with_goroutine_dump_is_one_fatal_event():
    report = _report("glog_server.log")
    assert report["total_logs"] == 10
    panic = [t for t in report["templates"] if t["template"].startswith("panic:")]
    assert len(panic) == 1 and panic[0]["count"] == 1 and panic[0]["level"] == "fatal"
    assert "goroutine" in panic[0]["examples"][0]  # the example keeps the whole event
    assert report["levels"]["fatal"] == 1 and "unknown" not in report["levels"]


def test_joined_rows_get_their_events_template_id():
    frame = read_log_file(FIXTURES / "python_app.log")
    ids = line_template_ids(frame)
    assert len(ids) == len(frame) == 19
    assert len(set(ids[4:11])) == 1  # "failed to import ..." and its 6 traceback lines
    assert ids[11] != ids[4]


def test_counts_per_event_can_be_turned_off():
    frame = read_log_file(FIXTURES / "python_app.log")
    report = LogAnalyzer(multiline=False).update(frame).report()
    assert report.total_logs == 19


def test_loki_streams_are_joined_each_on_its_own():
    # two streams interleaved by time, as a Loki range query returns them
    a = {"app": "api", "pod": "api-1"}
    b = {"app": "api", "pod": "api-2"}
    rows = [
        (a, "2024-03-04 10:00:00,000 ERROR app.api: request 1 failed"),
        (b, "2024-03-04 10:00:00,100 INFO app.api: request 2 served in 12 ms"),
        (a, "Traceback (most recent call last):"),
        (b, "2024-03-04 10:00:00,300 INFO app.api: request 3 served in 9 ms"),
        (a, '  File "/srv/api/views.py", line 12, in handle'),
        (a, "KeyError: 'user'"),
        (b, "2024-03-04 10:00:01,000 INFO app.api: request 4 served in 11 ms"),
    ]
    ts = np.arange(len(rows), dtype=np.int64) * 100_000_000 + 1_709_546_400_000_000_000
    frame = make_frame([line for _, line in rows], ts, [labels for labels, _ in rows])
    ids = line_template_ids(frame)
    assert ids[0] == ids[2] == ids[4] == ids[5]
    assert ids[1] == ids[3] == ids[6] != ids[0]
    report = analyze(frame).to_dict()
    assert report["total_logs"] == 4
    assert report["error_count"] == 1
    tpl = {t["template"] for t in report["templates"]}
    assert "request <NUM> failed KeyError" in tpl


def test_a_continuation_at_the_start_of_a_stream_starts_its_own_event():
    a, b = {"pod": "a"}, {"pod": "b"}
    lines = ["2024-03-04 10:00:00 ERROR x: boom", "\tat a.B.c(B.java:1)", "\tat a.B.d(B.java:2)"]
    events = join_events(lines, streams=[a, b, b])
    assert events.texts == [lines[0], lines[1] + "\n" + lines[2]]
    assert events.row_event.tolist() == [0, 1, 1]


def test_events_are_bounded_in_lines():
    lines = ["2024-03-04 10:00:00 ERROR x: boom"] + [
        f"\tat a.B.m{i}(B.java:{i})" for i in range(450)
    ]
    events = join_events(lines, max_lines=200)
    assert [t.count("\n") + 1 for t in events.texts] == [200, 200, 51]
    assert events.row_event.tolist() == [0] * 200 + [1] * 200 + [2] * 51


def test_events_are_bounded_in_bytes():
    lines = ["start"] + ["\t" + "x" * 1000 for _ in range(100)]
    events = join_events(lines, max_bytes=10_000)
    assert all(len(t) <= 10_000 for t in events.texts)
    assert sum(t.count("\n") + 1 for t in events.texts) == 101


def test_lines_without_the_header_continue_when_nearly_all_lines_have_it():
    lines = [
        f"2024-03-04 10:{i // 60:02d}:{i % 60:02d},000 INFO app.db: query {i} ok"
        for i in range(100)
    ]
    lines[10:10] = ["SELECT id, name", "FROM users WHERE id = 7"]
    header = learn_headers(lines)
    events = join_events(lines, header=header)
    assert len(events.texts) == 100
    assert events.texts[9].endswith("query 9 ok\nSELECT id, name\nFROM users WHERE id = 7")


def test_lines_without_a_header_are_not_joined_in_a_mixed_file():
    lines = ['{"msg": "a", "level": "info"}', "plain text line", "another plain line", "ts=1 msg=x"]
    events = join_events(lines, header=learn_headers(lines))
    assert events.joined == 0 and events.texts == lines


def test_exception_type_of_java_python_and_go_events():
    java = (
        "boom\njava.lang.IllegalStateException: bad\n\tat a.B.c(B.java:1)\nCaused by: "
        "java.io.IOException: x"
    )
    python = (
        'failed\nTraceback (most recent call last):\n  File "x.py", line 1, in f\nValueError: nope'
    )
    go = "worker died\npanic: runtime error: nil map\n\ngoroutine 1 [running]:\nmain.main()"
    assert exception_type(java) == "java.lang.IllegalStateException"
    assert exception_type(python) == "ValueError"
    assert exception_type(go) == "panic"
    assert exception_type("single line") is None


def test_posted_lines_from_a_multiline_source_are_not_joined_twice():
    entry = "2024-03-04 10:00:00 ERROR x: boom\n\tat a.B.c(B.java:1)"
    frame = from_lines([entry, "2024-03-04 10:00:01 INFO x: fine"], default_time="2024-03-04")
    report = analyze(frame).to_dict()
    assert report["total_logs"] == 2
    assert report["header"]["joined_lines"] == 0


def test_input_frame_is_not_mutated():
    frame = read_log_file(FIXTURES / "spring_app.log")
    before = frame.copy()
    analyze(frame)
    pd.testing.assert_frame_equal(frame, before)
