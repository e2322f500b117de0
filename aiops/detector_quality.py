"""Detection quality of stored detectors: their anomalies, read from the store, scored against
labelled windows (what ``aiops evaluate`` prints; definitions in docs/evaluation.md).

:mod:`aiops.evaluation` is the pure scoring; this module is the part that reads the store
handed in: the detections of each detector (paged by id), and the series it watches (its
models, live and the backfill's, its latest scores and its detections), so that a labelled
series none of them matches counts as another detector's, not as a miss of this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aiops.evaluation import (
    Evaluation,
    LabelledSeries,
    Labels,
    NabEvaluation,
    evaluate,
    labels_for_series,
    nab_evaluate,
)
from aiops.timeutil import datetime_from_seconds

if TYPE_CHECKING:
    from aiops.store import Store
    from aiops.store.models import Detector as DetectorRecord
    from aiops.store.models import SeriesScore

__all__ = ["DetectorQuality", "evaluate_detectors", "stored_detections"]

_PAGE = 10_000
_DEFAULT_STEP_SECONDS = 60
_GAP_STEPS = 5.0  # without an explicit gap, detections this many steps apart are one event


@dataclass(frozen=True)
class DetectorQuality:
    """One detector's scores: window recall/precision (``result``) and NAB (``nab``)."""

    detector: DetectorRecord
    step: float
    gap: float
    detections: list[tuple[dict[str, str], datetime]]
    result: Evaluation
    nab: NabEvaluation
    left_out: list[LabelledSeries]


def stored_detections(
    store: Store,
    detector_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    backfill_id: str | None = None,
) -> list[tuple[dict[str, str], datetime]]:
    """Every stored anomaly of ``detector_id`` in the range, as ``(labels, time)``, paged by id."""
    detections: list[tuple[dict[str, str], datetime]] = []
    after = None
    while True:
        page = store.list_anomalies(
            detector=detector_id, since=since, until=until, after_id=after, limit=_PAGE,
            source=source, backfill_id=backfill_id,
        )  # fmt: skip
        detections.extend((e.labels, e.ts) for e in page)
        if len(page) < _PAGE:
            return detections
        after = page[-1].id


def _watched_series(
    store: Store,
    detector_id: str,
    backfill_id: str | None,
    detections: Iterable[tuple[Mapping[str, str], datetime]],
    scores: Sequence[SeriesScore],
) -> list[Mapping[str, str]]:
    known: list[Mapping[str, str]] = [i.labels for i in store.state_info(detector_id)]
    known += [sc.labels for sc in scores if sc.detector_id == detector_id]
    if backfill_id:
        states = store.load_backfill_states(backfill_id, detector_id)
        known += [v.get("labels") or {} for v in states.values()]
    known += [lab for lab, _ in detections]
    return known


def evaluate_detectors(
    store: Store,
    detector_ids: Sequence[str],
    labels: Labels,
    *,
    tolerance: float,
    gap: float | None = None,
    start: float | None = None,
    end: float | None = None,
    source: str | None = None,
    backfill_id: str | None = None,
    resolve_after: int | None = None,
    probation: float = 0.0,
) -> list[DetectorQuality]:
    """Score each detector (once, in the order given) on the labelled series it watches.

    ``gap``: detections at most this far apart form one event (default: five of the
    detector's steps). ``resolve_after``: the NAB incidents' gap (default: the detector's own).
    """
    since = None if start is None else datetime_from_seconds(start)
    until = None if end is None else datetime_from_seconds(end)
    dets = [store.get_detector(d) for d in dict.fromkeys(detector_ids)]
    scores = store.latest_scores()
    out = []
    for det in dets:
        step = det.datasources[0].step_seconds if det.datasources else _DEFAULT_STEP_SECONDS
        det_gap = gap if gap is not None else _GAP_STEPS * step
        detections = stored_detections(
            store, det.id, since=since, until=until, source=source, backfill_id=backfill_id
        )
        known = _watched_series(store, det.id, backfill_id, detections, scores)
        mine, left_out = labels_for_series(labels, known)
        result = evaluate(mine, detections, tolerance=tolerance, gap=det_gap, start=start, end=end)
        nab = nab_evaluate(
            mine, detections, step=step,
            resolve_after=resolve_after if resolve_after is not None else det.resolve_after,
            start=start, end=end, probation=probation,
        )  # fmt: skip
        out.append(DetectorQuality(det, step, det_gap, detections, result, nab, left_out))
    return out
