"""Headers learned from the lines themselves, explicit formats, and what the report does with
them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiops.errors import InvalidInput
from aiops.logs import analyze
from aiops.logs.analysis import LogAnalyzer, line_template_ids
from aiops.logs.frame import from_lines
from aiops.logs.headers import compile_format, learn_headers, split_structured
from aiops.sources.files import read_log_file

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "logs"


def _lines(name: str) -> list[str]:
    return read_log_file(FIXTURES / name)["line"].tolist()


def _split(name: str, index: int):
    lines = _lines(name)
    return learn_headers(lines).split(lines[index])


def test_syslog_header_gives_host_program_and_pid():
    got = _split("syslog_auth.log", 3)
    assert (
        got.message == "Failed password for invalid user admin from 185.220.101.7 port 40112 ssh2"
    )
    assert got.fields["component"] == "sshd"
    assert got.fields["pid"] == "2840"
    assert got.fields["host"] == "web-01"
    assert got.fields["timestamp"] == "Mar 4 09:13:17"


def test_syslog_program_without_pid_is_still_the_component():
    got = _split("syslog_auth.log", 13)
    assert got.fields["component"] == "kernel"
    assert got.message.startswith("[812345.123456] Out of memory")


def test_logback_header_with_thread_and_logger():
    got = _split("java_service.log", 1)
    assert got.message == "GET /orders/1001 completed in 35ms"
    assert got.fields["level"] == "info"
    assert got.fields["thread"] == "http-nio-8080-exec-1"
    assert got.fields["component"] == "c.e.shop.OrderController"


def test_spring_boot_header_with_pid_padded_thread_and_logger():
    got = _split("spring_app.log", 5)
    assert got.message == "Tax service slow: 1840 ms for region eu-west-1"
    assert got.fields["level"] == "warn"
    assert got.fields["component"] == "c.e.billing.TaxClient"


def test_python_logging_header_with_dashes():
    got = _split("python_app.log", 3)
    assert got.message == "mail queue depth 420 above 400"
    assert got.fields["level"] == "warn"
    assert got.fields["component"] == "shop.mail"


def test_glog_header_level_letter_pid_and_source_file():
    got = _split("glog_server.log", 5)
    assert got.message == "query items failed: context deadline exceeded"
    assert got.fields["level"] == "error"
    assert got.fields["pid"] == "2211"
    assert got.fields["component"] == "store.go"


def test_nginx_access_log_message_is_the_request_after_client_and_time():
    got = _split("nginx_access.log", 0)
    assert got.message.startswith('"GET /api/v1/products?page=1 HTTP/1.1" 200 5123')
    assert got.fields["host"] == "10.0.0.11"
    assert got.fields["timestamp"] == "04/Mar/2024:13:00:01 +0000"


def test_json_line_message_and_fields_by_name():
    line = _lines("go_service.jsonl")[0]
    got = split_structured(line)
    assert got is not None and got.embedded
    assert got.message == json.loads(line)["msg"]
    assert got.fields["level"] == json.loads(line)["level"]


def test_logfmt_line_message_and_fields_by_name():
    got = split_structured(_lines("python_worker.log")[10])
    assert got is not None
    assert got.message == "retrying task"
    assert got.fields == {
        "timestamp": "2024-03-04T12:02:00.000Z",
        "level": "warn",
        "component": "worker.tasks",
    }


def test_lines_without_a_header_are_kept_whole():
    lines = [
        "user alice logged in from the web console",
        "cache warmed with 1200 entries",
        "user bob logged in from the mobile app",
        "payment 77 refused by the bank",
    ] * 5
    model = learn_headers(lines)
    assert not model.learned
    assert model.split(lines[0]).message == lines[0]


def test_a_line_that_does_not_start_like_the_header_is_kept_whole():
    lines = _lines("java_service.log")
    model = learn_headers(lines)
    odd = "nothing like the others here"
    got = model.split(odd)
    assert got.message == odd and not got.has_header


def test_equal_events_with_different_headers_share_a_template():
    lines = [
        "2024-03-04 10:00:00.001 INFO  [exec-1] c.e.shop.Cart - cart 17 checked out",
        "2024-03-04 10:00:01.002 WARN  [exec-2] c.e.shop.Cart - cart 18 checked out",
        "2024-03-04 10:00:02.003 INFO  [worker-9] c.e.shop.Cart - cart 19 checked out",
        "2024-03-04 10:00:03.004 INFO  [exec-3] c.e.shop.Stock - stock 4 reserved for order 9",
        "2024-03-04 10:00:04.005 ERROR [exec-4] c.e.shop.Stock - stock 5 reserved for order 10",
    ]
    ids = line_template_ids(from_lines(lines, default_time="2024-03-04"))
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] == ids[4] != ids[0]


def test_different_events_with_one_component_stay_apart():
    lines = [
        f"2024-03-04 10:00:0{i}.000 INFO [main] app.Server: {msg}"
        for i, msg in enumerate(
            [
                "listening on port 8080",
                "shutting down now",
                "listening on port 9090",
                "reloading configuration",
            ]
        )
    ]
    ids = line_template_ids(from_lines(lines, default_time="2024-03-04"))
    assert ids[0] == ids[2]
    assert len({ids[0], ids[1], ids[3]}) == 3


def test_report_keeps_level_and_component_from_the_header():
    report = analyze(read_log_file(FIXTURES / "python_app.log")).to_dict()
    top = report["templates"][0]
    assert top["template"] == "order <NUM> paid by customer <NUM>"
    assert top["component"] == "shop.orders"
    assert top["level"] == "info"
    assert report["components"]["shop.orders"] == {"count": 6, "templates": 3, "error_count": 2}
    assert report["header"]["explicit"] is False


def test_template_logql_of_a_header_line_allows_the_header():
    lines = ["2024-01-15T10:00:00Z job 7 done", "2024-01-15T10:00:01Z job 8 done"]
    report = analyze(from_lines(lines), selector='{app="x"}')
    assert report.templates[0]["logql"]["pattern_filter"] == '{app="x"} |> "<_> job <_> done"'


def test_template_logql_of_a_json_message_allows_the_fields_around_it():
    report = analyze(read_log_file(FIXTURES / "go_service.jsonl"), selector='{app="x"}')
    assert (
        report.templates[0]["logql"]["pattern_filter"] == '{app="x"} |> "<_>request completed<_>"'
    )


def test_explicit_format_overrides_learning():
    lines = ["myapp|ERROR|db|connection 5 lost", "myapp|INFO|db|connection 6 opened"]
    analyzer = LogAnalyzer(log_format="%{host}|%{level}|%{component}|%{message}")
    report = analyzer.update(from_lines(lines, default_time="2024-01-01")).report().to_dict()
    assert report["levels"] == {"error": 1, "info": 1}
    assert {t["template"] for t in report["templates"]} == {
        "connection <NUM> lost",
        "connection <NUM> opened",
    }
    assert report["components"]["db"]["count"] == 2
    assert report["header"]["explicit"] is True


def test_explicit_format_as_a_regex_with_named_groups():
    model = compile_format(r"(?P<timestamp>\S+) <(?P<level>\w+)> (?P<message>.*)")
    got = model.split("12:00:01 <warning> disk 91% full")
    assert got.message == "disk 91% full"
    assert got.fields["level"] == "warn"


@pytest.mark.parametrize(
    ("fmt", "says"),
    [
        ("%{ts} %{level}", "no %{message}"),
        ("%{ts} %{lev el} %{message}", "%{lev el}"),
        ("%{message} %{message}", "appears twice"),
        ("(?P<message>.*", "not a valid regular expression"),
        (r"(?P<level>\w+) .*", "no (?P<message>"),
        ("", "empty"),
    ],
)
def test_a_bad_explicit_format_is_invalid_input_naming_the_problem(fmt: str, says: str):
    with pytest.raises(InvalidInput) as err:
        LogAnalyzer(log_format=fmt) if fmt else compile_format(fmt)
    assert says in str(err.value)
    assert err.value.field == "log_format"


def test_a_log_job_with_a_bad_format_fails_when_the_config_loads():
    from pydantic import ValidationError

    from aiops.config import LogJob

    with pytest.raises(ValidationError) as err:
        LogJob(name="shop", path="/var/log/shop.log", log_format="%{ts} %{level}")
    assert "log_format" in str(err.value) and "no %{message}" in str(err.value)
    job = LogJob(name="shop", path="/var/log/shop.log", log_format="%{ts} %{level} %{message}")
    assert job.log_format == "%{ts} %{level} %{message}"


LAYOUTS = {
    # name: (two lines of the layout, the message of the first, its level, its component)
    "logcat": (
        [
            "03-17 16:13:38.811  1702  2395 D WindowManager: freezing display for token 41",
            "03-17 16:13:39.002  1702  1820 I ActivityManager: Start proc 8812 for activity "
            "com.x/.Main",
        ],
        "freezing display for token 41",
        "debug",
        "WindowManager",
    ),
    "zookeeper": (
        [
            "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0.0.0.0:2181:Leader@358] - "
            "LEADING - LEADER ELECTION TOOK - 210",
            "2015-07-29 17:41:45,001 - WARN  "
            "[SendWorker:188978561024:QuorumCnxManager$SendWorker@679] - Interrupted while "
            "waiting",
        ],
        "LEADING - LEADER ELECTION TOOK - 210",
        "info",
        None,
    ),
    "klog": (
        [
            "E0312 10:00:01.123456       1 reflector.go:138] Failed to watch *v1.Pod: timeout",
            "I0312 10:00:02.000001       1 controller.go:114] Synced 12 pods",
        ],
        "Failed to watch *v1.Pod: timeout",
        "error",
        "reflector.go",
    ),
    "apache_error": (
        [
            "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok "
            "/etc/httpd/conf/workers2.properties",
            "[Sun Dec 04 04:47:46 2005] [error] mod_jk child workerEnv in error state 6",
        ],
        "workerEnv.init() ok /etc/httpd/conf/workers2.properties",
        "info",
        None,
    ),
    "pipe_fields": (
        [
            "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
            "20171223-22:15:29:615|Step_SPUtils|30002312|REPORT : 7007 5002 150089 240",
        ],
        "onStandStepChanged 3579",
        None,
        None,
    ),
    "tab_separated_zap": (
        [
            "2024-03-04T10:00:00.123Z\tINFO\tserver/http.go:88\trequest completed in 12ms",
            "2024-03-04T10:00:01.456Z\tERROR\tstore/db.go:12\tquery failed after 3 retries",
        ],
        "request completed in 12ms",
        "info",
        "server/http.go",
    ),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_other_common_layouts_are_learned_without_a_format(name: str):
    lines, message, level, component = LAYOUTS[name]
    model = learn_headers(lines * 20)
    got = model.split(lines[0])
    assert got.message == message
    assert got.fields.get("level") == level
    if component is not None:
        assert got.fields.get("component") == component


def test_json_after_a_text_prefix_gives_its_message_field():
    # a container runtime's prefix (CRI: time, stream, tag) in front of a JSON log line
    lines = [
        f'2024-03-04T10:00:0{i % 10}.123456789Z stdout F {{"level":"info","msg":"order {i} '
        f'paid","logger":"shop"}}'
        for i in range(30)
    ]
    got = learn_headers(lines).split(lines[0])
    assert got.message == "order 0 paid"
    assert got.fields["component"] == "shop" and got.embedded
    ids = line_template_ids(from_lines(lines))
    assert len(set(ids)) == 1
