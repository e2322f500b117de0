"""The byte scanner and the miner's batch interface, as the analyzer uses them."""

from __future__ import annotations

import numpy as np

from aiops.logs.shapes import HEX_MARK, encode_lines, line_starts_of, shape_keys, shape_scan
from aiops.logs.templates import Batch, TemplateMiner


def test_lines_differing_only_in_numbers_and_ids_share_a_shape_key():
    keys = shape_keys(["took 250ms id=3f2a9c8d7e6b5a41", "took 7ms id=00ab00ab00ab", "took x"])
    assert keys[0] == keys[1] == b"took 0ms id=" + bytes([int(HEX_MARK)])
    assert keys[2] == b"took x"


def test_a_possible_5xx_status_keeps_its_five_in_the_key():
    keys = shape_keys(["status=503 done", "status=404 done"])
    assert keys == [b"status=5 done", b"status=0 done"]


def test_digit_runs_are_reported_per_line():
    lines = ["a 12 b 345", "no digits", "7"]
    blob = encode_lines(lines)
    scan = shape_scan(blob, len(lines), runs=True)
    assert scan.run_starts is not None and scan.run_ends is not None
    assert scan.line_first_run is not None
    runs = [blob[s:e] for s, e in zip(scan.run_starts, scan.run_ends, strict=True)]
    assert runs == [b"12", b"345", b"7"]
    assert scan.line_first_run.tolist() == [0, 2, 2, 3]
    assert line_starts_of(blob).tolist() == [0, 11, 21]


def test_inner_newlines_do_not_shift_the_lines():
    blob = encode_lines(["first\nsecond", "third"])
    assert blob == b"first second\nthird"


def test_add_batch_groups_lines_by_shape_with_their_templates():
    miner = TemplateMiner()
    lines = ["user 1 logged in", "disk full", "user 22 logged in", "user 333 logged in"]
    batch = miner.add_batch(lines, np.arange(4, dtype=np.int64))
    assert isinstance(batch, Batch)
    assert len(batch.shapes) == 2
    groups = [batch.order[batch.bounds[u] : batch.bounds[u + 1]].tolist() for u in range(2)]
    assert sorted(groups) == [[0, 2, 3], [1]]
    templates = {t.template for t in batch.shape_templates()}
    assert templates == {"user <NUM> logged in", "disk full"}
    assert batch.shape_lo is not None and batch.shape_hi is not None
    assert sorted(zip(batch.shape_lo.tolist(), batch.shape_hi.tolist())) == [(0, 3), (1, 1)]
    tid = miner.match("user 9 logged in")
    assert tid is not None and miner.current_template(tid) == "user <NUM> logged in"


def test_an_empty_batch_has_empty_groups():
    batch = TemplateMiner().add_batch([])
    assert batch.shapes == [] and batch.order.size == 0 and batch.bounds.tolist() == [0]
