"""The store's tables (SQLAlchemy 2 declarative). Migrations in ``migrations/versions`` must
produce exactly this schema; ``tests/unit/store`` checks that they agree.

Portability notes (SQLite is the default, PostgreSQL by URL):

- ``UTCDateTime`` stores UTC and always returns aware UTC datetimes (SQLite drops tzinfo).
- JSON columns are ``JSONB`` on PostgreSQL, JSON text on SQLite.
- ``event.id`` and ``log_report.id`` use ``AUTOINCREMENT`` on SQLite, so ids are never
  reused even after rows are deleted; PostgreSQL sequences never reuse values either.
- ``event.detector_id`` and ``event.series_key`` are ``''`` rather than NULL when absent,
  because NULLs never collide in a UNIQUE constraint and backfills must be idempotent.
  Events have no foreign key to ``detector``: history outlives a deleted detector.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from aiops.incidents import DEFAULT_RESOLVE_AFTER
from aiops.timeutil import utc_datetime

__all__ = [
    "Base",
    "metadata",
    "UTCDateTime",
    "JSONType",
    "DetectorRow",
    "DetectorDatasourceRow",
    "ModelStateRow",
    "CheckpointRow",
    "EventRow",
    "CollectorStatusRow",
    "LogReportRow",
    "MinerStateRow",
    "BackfillWindowRow",
    "BackfillStateRow",
    "SeriesScoreRow",
    "IncidentRow",
    "IncidentStateRow",
    "DetectorClaimRow",
    "IncidentTriageRow",
    "FlowMetricRow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC; always read back as an aware UTC ``datetime``.

    Naive values are taken as UTC (the repository rejects naive input before it gets here).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        # a plain datetime (pandas.Timestamp and friends are subclasses)
        plain = datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
        return plain if dialect.name == "sqlite" else plain.replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc_datetime(value)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _now() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}  # noqa: RUF012


metadata = Base.metadata


class DetectorRow(Base):
    __tablename__ = "detector"
    __table_args__ = (
        CheckConstraint(_in("status", ("training", "running", "paused")), name="status"),
    )

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float] = mapped_column(Double(), default=1.0)
    resolve_after: Mapped[int] = mapped_column(Integer, default=DEFAULT_RESOLVE_AFTER)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=60)
    training_window_seconds: Mapped[int | None] = mapped_column(Integer)
    triage: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # aiops.triage.TriageLink
    transforms: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSONType
    )  # aiops.transform steps
    spec_hash: Mapped[str] = mapped_column(String(64))
    status_changed_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    datasources: Mapped[list[DetectorDatasourceRow]] = relationship(
        back_populates="detector",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
        order_by="DetectorDatasourceRow.id",
    )


class DetectorDatasourceRow(Base):
    __tablename__ = "detector_datasource"
    __table_args__ = (UniqueConstraint("detector_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    detector_id: Mapped[str] = mapped_column(ForeignKey("detector.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    step_seconds: Mapped[int] = mapped_column(Integer)
    lookback_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    detector: Mapped[DetectorRow] = relationship(back_populates="datasources")


class ModelStateRow(Base):
    __tablename__ = "model_state"
    __table_args__ = (UniqueConstraint("detector_id", "series_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    detector_id: Mapped[str] = mapped_column(ForeignKey("detector.id", ondelete="CASCADE"))
    series_key: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, Any]]
    state: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer, default=1)
    trained_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class CheckpointRow(Base):
    __tablename__ = "checkpoint"

    detector_id: Mapped[str] = mapped_column(
        ForeignKey("detector.id", ondelete="CASCADE"), primary_key=True
    )
    ts: Mapped[datetime]
    updated_at: Mapped[datetime]


class EventRow(Base):
    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("type", "detector_id", "series_key", "ts"),
        CheckConstraint(_in("severity", ("info", "warning", "critical")), name="severity"),
        Index(None, "detector_id", "id"),
        Index(None, "type", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    detector_id: Mapped[str] = mapped_column(String(63), default="")
    series_key: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, Any]]
    ts: Mapped[datetime]
    value: Mapped[float | None] = mapped_column(Double())
    score: Mapped[float | None] = mapped_column(Double())
    expected: Mapped[float | None] = mapped_column(Double())
    lower: Mapped[float | None] = mapped_column(Double())
    upper: Mapped[float | None] = mapped_column(Double())
    severity: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    model_kind: Mapped[str | None] = mapped_column(String(64))
    params_hash: Mapped[str | None] = mapped_column(String(64))
    trained_at: Mapped[datetime | None]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    backfill_id: Mapped[str | None] = mapped_column(String(64), index=True)  # null: found live
    created_at: Mapped[datetime]


class CollectorStatusRow(Base):
    __tablename__ = "collector_status"
    __table_args__ = (
        CheckConstraint(_in("state", ("ok", "failed", "never_run", "skipped")), name="state"),
    )

    detector_id: Mapped[str] = mapped_column(
        ForeignKey("detector.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    last_run_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    series: Mapped[int] = mapped_column(Integer, default=0)
    buffered: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    skipped_at: Mapped[datetime | None]
    last_warning: Mapped[str | None] = mapped_column(Text)
    last_warning_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class LogReportRow(Base):
    __tablename__ = "log_report"
    __table_args__ = (Index(None, "source", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    summary: Mapped[dict[str, Any]]
    templates: Mapped[Any] = mapped_column(JSONType)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class MinerStateRow(Base):
    __tablename__ = "miner_state"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class BackfillWindowRow(Base):
    __tablename__ = "backfill_window"
    __table_args__ = (
        UniqueConstraint("backfill_id", "detector_id", "window_start"),
        CheckConstraint(_in("status", ("pending", "running", "done", "failed")), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backfill_id: Mapped[str] = mapped_column(String(64))
    detector_id: Mapped[str] = mapped_column(ForeignKey("detector.id", ondelete="CASCADE"))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class BackfillStateRow(Base):
    """Per backfill and detector: the models' JSON states, ``{series_key: {labels, state}}``."""

    __tablename__ = "backfill_state"

    backfill_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    detector_id: Mapped[str] = mapped_column(
        ForeignKey("detector.id", ondelete="CASCADE"), primary_key=True
    )
    states: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class SeriesScoreRow(Base):
    """The latest score of each detector's series (written by every detection run)."""

    __tablename__ = "series_score"

    detector_id: Mapped[str] = mapped_column(
        ForeignKey("detector.id", ondelete="CASCADE"), primary_key=True
    )
    series_key: Mapped[str] = mapped_column(Text, primary_key=True)
    labels: Mapped[dict[str, Any]]
    ts: Mapped[datetime]
    value: Mapped[float | None] = mapped_column(Double)
    score: Mapped[float | None] = mapped_column(Double)
    updated_at: Mapped[datetime]


class IncidentRow(Base):
    """A run of anomalous points of one series (the anomaly rows in it are its evidence).

    Unique on (detector, series, opened_at), like the anomaly rows on their timestamp, so a
    rerun or a second backfill over the same range never duplicates one. No foreign key to
    ``detector``: history outlives a deleted detector.
    """

    __tablename__ = "incident"
    __table_args__ = (
        UniqueConstraint("detector_id", "series_key", "opened_at"),
        CheckConstraint(_in("severity", ("info", "warning", "critical")), name="severity"),
        Index(None, "detector_id", "id"),
        Index(None, "resolved_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    detector_id: Mapped[str] = mapped_column(String(63))
    series_key: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, Any]]
    opened_at: Mapped[datetime]
    last_anomalous_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    peak_at: Mapped[datetime]
    peak_score: Mapped[float | None] = mapped_column(Double())
    peak_value: Mapped[float | None] = mapped_column(Double())
    peak_expected: Mapped[float | None] = mapped_column(Double())
    peak_lower: Mapped[float | None] = mapped_column(Double())
    peak_upper: Mapped[float | None] = mapped_column(Double())
    points: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    model_kind: Mapped[str | None] = mapped_column(String(64))
    params_hash: Mapped[str | None] = mapped_column(String(64))
    trained_at: Mapped[datetime | None]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    backfill_id: Mapped[str | None] = mapped_column(String(64), index=True)  # null: found live
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class IncidentStateRow(Base):
    """Per detector, scope and series: the incident grouping's JSON state (an open incident
    continues across ticks, backfill pieces and restarts). ``scope`` is ``''`` for live
    detection and the backfill id for a backfill, so the two never mix."""

    __tablename__ = "incident_state"

    detector_id: Mapped[str] = mapped_column(
        ForeignKey("detector.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_key: Mapped[str] = mapped_column(Text, primary_key=True)
    labels: Mapped[dict[str, Any]]
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class DetectorClaimRow(Base):
    """Which detect-metrics run holds a detector, until when (a lease the run renews while it
    lives). ``owner`` NULL: free. Runs claim with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
    (``BEGIN IMMEDIATE`` serialises them on SQLite), and a commit only lands while its run
    still owns the claim, so two runs never process the same detector window."""

    __tablename__ = "detector_claim"

    detector_id: Mapped[str] = mapped_column(
        ForeignKey("detector.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str | None] = mapped_column(String(64))
    holder: Mapped[str | None] = mapped_column(String(200))  # host and pid, for operators
    claimed_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class IncidentTriageRow(Base):
    """The log triage of one incident (``aiops.triage``): ``running`` while its flow run reads
    the logs, then ``done`` with the report or ``failed`` with the error. One per incident; no
    foreign key, like the incident's own history."""

    __tablename__ = "incident_triage"
    __table_args__ = (CheckConstraint(_in("status", ("running", "done", "failed")), name="status"),)

    incident_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    detector_id: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    summary: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FlowMetricRow(Base):
    """The flows' own metrics, kept in the store so every worker's runs add up and the API's
    ``/metrics`` serves them wherever the flows ran: a ``counter`` is added to, a ``gauge`` set
    (the newest write wins). One row per metric name and label set (``labels_key``)."""

    __tablename__ = "flow_metric"
    __table_args__ = (CheckConstraint(_in("kind", ("counter", "gauge")), name="kind"),)

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    labels_key: Mapped[str] = mapped_column(String(500), primary_key=True)
    labels: Mapped[dict[str, Any]]
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[float] = mapped_column(Double())
    updated_at: Mapped[datetime]
