"""The flows' own metrics in the store (``flow_metric``), and the backfills' progress, for the
API's ``/metrics`` (:mod:`aiops.flowstats` says what they are). Mixed into
:class:`aiops.store.Store`.

A counter is added to inside the database (``value = value + x``: several workers' runs add up,
none overwrites another's), a gauge is set (the newest write wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import func, select

from aiops.labels import series_key
from aiops.store.schema import BackfillWindowRow, FlowMetricRow

if TYPE_CHECKING:
    from aiops.flowstats import MetricUpdate
    from aiops.store.repo import Store

__all__ = ["FlowMetricsStore", "FlowMetric"]


class FlowMetric(NamedTuple):
    name: str
    labels: dict[str, str]
    kind: str
    value: float
    updated_at: datetime


class FlowMetricsStore:
    """Flow metrics and backfill progress (mixed into ``Store``)."""

    def record_flow_metrics(
        self: Store, updates: Iterable[MetricUpdate], at: datetime | None = None
    ) -> int:
        """Add the counters and set the gauges of ``updates`` in one transaction; returns how
        many rows were written."""
        now = at or datetime.now(UTC)
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for u in updates:
            key = (u.name, series_key(u.labels))
            row = merged.get(key)
            if row is None or u.kind == "gauge":
                base = row["value"] if row is not None and u.kind == "counter" else 0.0
                merged[key] = {
                    "name": u.name,
                    "labels_key": key[1],
                    "labels": dict(u.labels),
                    "kind": u.kind,
                    "value": base + float(u.value),
                    "updated_at": now,
                }
            else:
                row["value"] += float(u.value)
        if not merged:
            return 0
        table = FlowMetricRow.__table__
        with self._tx(write=True) as s:
            for values in merged.values():
                ins = self._insert(table).values(**values)
                new_value = (
                    (table.c.value + ins.excluded.value)
                    if values["kind"] == "counter"
                    else ins.excluded.value
                )
                s.execute(
                    ins.on_conflict_do_update(
                        index_elements=[table.c.name, table.c.labels_key],
                        set_={
                            "value": new_value,
                            "labels": ins.excluded.labels,
                            "kind": ins.excluded.kind,
                            "updated_at": ins.excluded.updated_at,
                        },
                    )
                )
        return len(merged)

    def flow_metrics(self: Store) -> list[FlowMetric]:
        with self._tx() as s:
            rows = s.execute(
                select(FlowMetricRow).order_by(FlowMetricRow.name, FlowMetricRow.labels_key)
            ).scalars()
            return [
                FlowMetric(r.name, dict(r.labels), r.kind, float(r.value), r.updated_at)
                for r in rows
            ]

    def backfill_window_counts(self: Store) -> dict[str, dict[str, int]]:
        """Per backfill that is not finished (a window pending, running or failed), its windows
        by status: what ``aiops_backfill_windows`` exports (finished backfills drop out)."""
        with self._tx() as s:
            open_ids = (
                select(BackfillWindowRow.backfill_id)
                .where(BackfillWindowRow.status != "done")
                .distinct()
            )
            rows = s.execute(
                select(BackfillWindowRow.backfill_id, BackfillWindowRow.status, func.count())
                .where(BackfillWindowRow.backfill_id.in_(open_ids))
                .group_by(BackfillWindowRow.backfill_id, BackfillWindowRow.status)
            ).all()
        out: dict[str, dict[str, int]] = {}
        for backfill_id, status, count in rows:
            out.setdefault(backfill_id, {s: 0 for s in ("pending", "running", "done", "failed")})[
                status
            ] = int(count)
        return out
