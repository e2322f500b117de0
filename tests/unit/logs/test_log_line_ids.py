"""line_template_ids: one template id per input row, through the analyze() code path."""

from aiops.logs.analysis import analyze, line_template_ids
from aiops.logs.frame import from_lines

LINES = [
    "2024-01-15 10:00:00,001 INFO [main] shop.Cart: added item 17 to cart 9",
    "2024-01-15 10:00:01,002 INFO [main] shop.Cart: added item 23 to cart 4",
    "2024-01-15 10:00:02,003 WARN [pool-1] shop.Pay: retrying payment 5 after 250ms",
]


def test_line_template_ids_gives_one_id_per_row_in_row_order():
    frame = from_lines(LINES, default_time="2024-01-15")
    ids = line_template_ids(frame)
    assert len(ids) == len(LINES)
    assert ids[0] == ids[1] != ids[2]


def test_line_template_ids_are_the_report_template_ids():
    frame = from_lines(LINES, default_time="2024-01-15")
    ids = line_template_ids(frame)
    report = analyze(frame)
    assert report.template_counts == {i: ids.count(i) for i in set(ids)}


def test_line_template_ids_of_an_empty_frame_is_empty():
    assert line_template_ids(from_lines([])) == []
