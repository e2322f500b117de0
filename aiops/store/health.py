"""Datasource health observations in the store: what every process (the API's probes, the
flows' requests) last learned about each datasource URL, so each reader sees the newest.

One row per ``(datasource, url)``; a write replaces the row only with a newer observation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Double, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from aiops.sources.health import HealthObservation
from aiops.store.schema import Base

if TYPE_CHECKING:
    from aiops.store.repo import Store

__all__ = ["DatasourceHealthRow", "record_datasource_health", "read_datasource_health"]


class DatasourceHealthRow(Base):
    __tablename__ = "datasource_health"

    datasource: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    observed_at: Mapped[datetime]
    observer: Mapped[str] = mapped_column(String(200))
    latency_ms: Mapped[float | None] = mapped_column(Double)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    last_ok_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)


_FIELDS = (
    "type",
    "status",
    "observed_at",
    "observer",
    "latency_ms",
    "last_error",
    "last_error_at",
    "last_ok_at",
    "consecutive_failures",
)


def record_datasource_health(store: Store, observations: Sequence[HealthObservation]) -> None:
    """Upsert observations; a stored row is replaced only by a newer one."""
    if not observations:
        return
    table = DatasourceHealthRow.__table__
    with store._tx(write=True) as s:
        for o in observations:
            ins = store._insert(table).values(
                datasource=o.datasource,
                url=o.url,
                type=o.type,
                status=o.status,
                observed_at=o.observed_at,
                observer=o.observer[:200],
                latency_ms=o.latency_ms,
                last_error=None if o.last_error is None else o.last_error[:2000],
                last_error_at=o.last_error_at,
                last_ok_at=o.last_ok_at,
                consecutive_failures=o.consecutive_failures,
            )
            s.execute(
                ins.on_conflict_do_update(
                    index_elements=["datasource", "url"],
                    set_={name: getattr(ins.excluded, name) for name in _FIELDS},
                    where=table.c.observed_at < ins.excluded.observed_at,
                )
            )


def read_datasource_health(store: Store) -> list[HealthObservation]:
    """Every stored observation, by datasource and URL."""
    stmt = select(DatasourceHealthRow).order_by(
        DatasourceHealthRow.datasource, DatasourceHealthRow.url
    )
    with store._tx() as s:
        return [
            HealthObservation(
                datasource=r.datasource, url=r.url, **{name: getattr(r, name) for name in _FIELDS}
            )
            for r in s.scalars(stmt)
        ]
