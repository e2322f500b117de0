"""Detection quality against labelled windows: exact numbers on a hand-made case, label files."""

from __future__ import annotations

import json

import pytest

from aiops.errors import InvalidInput
from aiops.evaluation import evaluate, load_labels, parse_labels_csv, parse_labels_json

T0 = 1_700_000_000  # a multiple of 60 and 100
A = {"job": "api"}
B = {"job": "db"}


def labels_ab():
    # api: two windows [T0+100, T0+200) and [T0+1000, T0+1100); db: one window; web: known normal
    return parse_labels_json(
        {
            "series": [
                {
                    "labels": A,
                    "windows": [
                        {"start": T0 + 100, "end": T0 + 200},
                        {"start": T0 + 1000, "end": T0 + 1100},
                    ],
                },
                {"labels": B, "windows": [{"start": T0 + 500, "end": T0 + 600}]},
                {"labels": {"job": "web"}, "windows": []},
            ]
        },
        "hand.json",
    )


def det(labels, *offsets):
    return [({"__name__": "m", **labels}, T0 + o) for o in offsets]


def test_hand_made_case_gives_exact_numbers():
    detections = (
        det(A, 150, 160, 170)  # window 1 found, TTD 50; one event
        + det(A, 1105)  # 5 s after window 2's end: found only with tolerance
        + det(A, 3000, 3030, 4000)  # outside: events {3000, 3030} and {4000}
        + det(B, 450)  # before db's window: a false event
        + det({"job": "web"}, 7000)  # a known-normal series: a false event
        + det({"job": "other"}, 8000, 8100)  # not in the labels file: counted, two false events
    )
    strict = evaluate(labels_ab(), detections, gap=60)
    o = strict.overall
    assert (o.windows, o.detected_windows) == (3, 1)
    assert o.recall == pytest.approx(1 / 3)
    # events: api {150-170} true, {1105} false, {3000,3030} false, {4000} false; db {450} false;
    # web {7000} false; other {8000} false, {8100} false
    assert (o.events, o.true_events, o.false_events) == (8, 1, 7)
    assert o.precision == pytest.approx(1 / 8)
    assert o.f1 == pytest.approx(2 * (1 / 8) * (1 / 3) / (1 / 8 + 1 / 3))
    assert o.mean_ttd_seconds == 50
    assert (o.detections, o.outside_detections) == (11, 8)

    tol = evaluate(labels_ab(), detections, gap=60, tolerance=10)
    o = tol.overall
    assert (o.detected_windows, o.true_events, o.false_events) == (2, 2, 6)
    assert o.recall == pytest.approx(2 / 3) and o.precision == pytest.approx(2 / 8)
    assert o.mean_ttd_seconds == pytest.approx((50 + 105) / 2)

    per = {s.to_dict()["series"]: s for s in tol.series}
    api = per['job="api"']
    assert (api.windows, api.detected_windows, api.events, api.true_events) == (2, 2, 4, 2)
    assert api.recall == 1.0 and api.precision == 0.5 and api.f1 == pytest.approx(2 / 3)
    db = per['job="db"']
    assert db.recall == 0.0 and db.precision == 0.0 and db.f1 == 0.0 and db.mean_ttd_seconds is None
    web = per['job="web"']
    assert web.recall is None and web.f1 is None and web.false_events == 1
    other = per['__name__="m",job="other"']
    assert not other.labelled and other.false_events == 2 and other.windows == 0


def test_gap_merges_consecutive_detections_and_a_true_event_absorbs_its_tail():
    labels = parse_labels_json([{"labels": A, "start": T0, "end": T0 + 60}], "x.json")
    # 30, then 90 and 150 outside the window but each within 60 s of the previous: one event
    one = evaluate(labels, det(A, 30, 90, 150, 400), gap=60).overall
    assert (one.events, one.true_events, one.false_events, one.outside_detections) == (2, 1, 1, 3)
    split = evaluate(labels, det(A, 30, 90, 150, 400), gap=59).overall
    assert (split.events, split.true_events, split.false_events) == (4, 1, 3)


def test_no_detections_and_range_restriction():
    labels = labels_ab()
    nothing = evaluate(labels, []).overall
    assert (
        nothing.recall == 0.0
        and nothing.precision is None
        and nothing.f1 == 0.0
        and nothing.events == 0
    )
    # only windows starting in [T0+400, T0+1050) count: db's and api's second; a detection in
    # api's first window (which starts before the range) is ignored, not false
    ranged = evaluate(labels, det(A, 150, 1010) + det(A, 2000), start=T0 + 160, end=T0 + 1050)
    o = ranged.overall
    assert (o.windows, o.detected_windows, o.events, o.false_events) == (2, 1, 1, 0)
    assert ranged.ignored_detections == 0  # 150 is before the range: not even looked at
    ranged = evaluate(labels, det(A, 170, 1010), start=T0 + 110, end=T0 + 1050)
    assert ranged.ignored_detections == 1 and ranged.overall.false_events == 0


def test_datetimes_are_accepted_and_the_result_is_json():
    from datetime import UTC, datetime

    labels = labels_ab()
    result = evaluate(labels, [(A, datetime.fromtimestamp(T0 + 120, UTC))])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["overall"]["detected_windows"] == 1 and data["overall"]["mean_ttd_seconds"] == 20
    with pytest.raises(InvalidInput):
        evaluate(labels, [], tolerance=-1)


def test_a_detection_matching_two_label_sets_is_refused():
    labels = parse_labels_json(
        [
            {"labels": {"job": "api"}, "start": T0, "end": T0 + 1},
            {"labels": {"instance": "a"}, "start": T0, "end": T0 + 1},
        ],
        "two.json",
    )
    with pytest.raises(InvalidInput, match="matches both"):
        evaluate(labels, [({"job": "api", "instance": "a"}, T0)])


# --------------------------------------------------------------------------- label files


def test_json_list_and_csv_forms_give_the_same_labels(tmp_path):
    listed = tmp_path / "l.json"
    listed.write_text(
        json.dumps(
            [
                {
                    "labels": {"job": "api"},
                    "start": "2024-01-01T00:10:00Z",
                    "end": "2024-01-01T00:20:00Z",
                    "kind": "spike",
                },
                {"labels": {"job": "api"}, "start": 1704067200, "end": "1704067260"},
            ]
        )
    )
    table = tmp_path / "l.csv"
    table.write_text(
        "# windows by hand\n"
        "start,end,job,instance\n"
        "2024-01-01T00:10:00Z,2024-01-01T00:20:00Z,api,\n"
        "1704067200,1704067260,api,\n"
        ",,web,w1\n"
    )
    a, b = load_labels(listed), load_labels(table)
    assert [w.start for w in a.series[0].windows] == [1704067200, 1704067800]
    assert a.series[0].labels == b.series[0].labels == {"job": "api"}
    assert [(w.start, w.end) for w in a.series[0].windows] == [
        (w.start, w.end) for w in b.series[0].windows
    ]
    assert b.series[1].labels == {"job": "web", "instance": "w1"} and b.series[1].windows == ()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.json", "{not json", r"bad.json is not valid JSON: .* line 1"),
        ("bad.json", '{"windows": []}', r"bad.json, field 'series'"),
        (
            "bad.json",
            '[{"labels": {}, "start": 1704067200}]',
            r"bad.json, entry 0, field 'end': is missing",
        ),
        (
            "bad.json",
            '[{"labels": {"a": "1"}, "start": "yesterday", "end": 1704067200}]',
            r"entry 0, field 'start': 'yesterday' is not a time",
        ),
        (
            "bad.json",
            '[{"labels": {"a": "1"}, "start": "now-1h", "end": 1704067200}]',
            r"field 'start': 'now-1h' is relative",
        ),
        (
            "bad.json",
            '[{"labels": {"a": "1"}, "start": 1704067200, "end": 1704067200}]',
            r"entry 0, field 'end': .* must be after start",
        ),
        (
            "bad.json",
            '[{"labels": {"a": "1"}, "start": 1, "end": 5, "sart": 2}]',
            r"entry 0, field 'sart': is not a field",
        ),
        (
            "bad.json",
            '[{"labels": {"a": true}, "start": 1, "end": 5}]',
            r"field 'labels.a': must be a string",
        ),
        (
            "bad.json",
            '{"series": [{"labels": {"a": "1"}, "windows": [{"start": 1, "end": 10}, {"start": '
            '5, "end": 20}]}]}',
            r"series 0 window 1, field 'start': window overlaps the window at series 0 window 0",
        ),
        (
            "bad.json",
            '[{"labels": {"a": "1"}, "start": 1, "end": 5}, {"labels": {"a": "1", "b": "2"}, '
            '"start": 1, "end": 5}]',
            r"is contained in",
        ),
        ("bad.csv", "start,job\n1,api\n", r"bad.csv, header, field 'end': column is missing"),
        (
            "bad.csv",
            "start,end,job\n1704067200,xx,api\n",
            r"bad.csv, row 1, field 'end': 'xx' is not a time",
        ),
        (
            "bad.csv",
            "start,end,job\n1704067200,1704067300,api\n1704067300,1704067200,api\n",
            r"row 2, field 'end': .* must be after start",
        ),
        ("bad.csv", "start,end,job\n1704067200,,api\n", r"row 1, field 'end': is empty"),
        (
            "bad.csv",
            "start,end,job\n1704067200,1704067300\n",
            r"row 1, field 'row': has 2 cells, the header has 3",
        ),
        ("bad.csv", "", r"bad.csv is empty"),
        ("bad.yaml", "x: 1", r"unknown format '.yaml'"),
    ],
)
def test_bad_label_files_name_file_row_and_field(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidInput, match=expected) as info:
        load_labels(path)
    assert str(path) in info.value.message


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InvalidInput, match="cannot read labels file .*nope.json"):
        load_labels(tmp_path / "nope.json")


def test_csv_label_set_sets_the_series_identity():
    labels = parse_labels_csv(
        "start,end,job\n1704067200,1704067300,api\n1704067400,1704067500,api\n", "x.csv"
    )
    assert len(labels.series) == 1 and labels.windows == 2
