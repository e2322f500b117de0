"""The repository: every SQL statement of aiops lives here.

``Store`` is thread-safe: it owns one engine (a connection pool) and opens a short session
per call, so the API can call it from worker threads (``anyio.to_thread``) while flows call
it directly. It returns pydantic models (:mod:`aiops.store.models`), never ORM objects.

SQLite specifics (the embedded default): WAL journal, ``busy_timeout``, foreign keys ON.
Write transactions start with ``BEGIN IMMEDIATE`` so a writer waits for the lock up front
(``busy_timeout``) instead of failing with "database is locked" when a read transaction
tries to become a write transaction; read transactions use a plain ``BEGIN`` and never block
in WAL mode.

Errors: bad arguments raise :class:`InvalidInput`, missing rows :class:`NotFound`, clashes
with stored rows :class:`Conflict`. Database outages (unreachable, locked past the busy
timeout, disk full) become :class:`StoreUnavailable`; nothing above the store sees SQLAlchemy.
"""

from __future__ import annotations

import json
import math
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, Table, create_engine, delete, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, aliased, defer, sessionmaker
from sqlalchemy.pool import StaticPool
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from aiops.errors import ConfigError, Conflict, InvalidInput, NotFound, StoreUnavailable
from aiops.store import migrations
from aiops.store.flowmetrics import FlowMetricsStore
from aiops.store.batch import BatchStore
from aiops.store.migrations import SQLITE_BEGIN_OPTION
from aiops.store.models import (
    DETECTOR_STATUSES,
    EVENT_ANOMALY,
    EVENT_INCIDENT_OPENED,
    EVENT_INCIDENT_RESOLVED,
    WINDOW_STATUSES,
    BackfillProgress,
    BackfillWindow,
    CollectorStatus,
    DatasourceSpec,
    DetectorRecord,
    DetectorDatasource,
    DetectorSpec,
    DueDetectors,
    Event,
    EventIn,
    Incident,
    IncidentTriage,
    LogReportRecord,
    ModelStateInfo,
    SeriesScore,
    SeriesState,
    SeverityPolicy,
    UpsertResult,
    check_transition,
    invalid_input_from,
    series_key,
    utc,
)
from aiops.store.schema import (
    BackfillStateRow,
    SeriesScoreRow,
    BackfillWindowRow,
    CheckpointRow,
    CollectorStatusRow,
    DetectorDatasourceRow,
    DetectorRow,
    EventRow,
    IncidentRow,
    IncidentStateRow,
    IncidentTriageRow,
    LogReportRow,
    MinerStateRow,
    ModelStateRow,
)

__all__ = [
    "Store",
    "KindValidator",
    "default_kind_validator",
    "accept_any_kind",
    "create_store_engine",
]

logger = logging.getLogger(__name__)

KindValidator = Callable[[str, Mapping[str, Any]], None]
"""Called with (kind, params) before a detector is stored; raises ``InvalidInput`` to refuse."""

DEFAULT_BUSY_TIMEOUT = 30.0
# Key of the PostgreSQL advisory lock held while inserting events, so ids commit in order
# and a tail by id (``events_after``) never skips a row that commits late.
PG_EVENT_LOCK = 0x616970736576
_EVENT_CHUNK = 500
_MAX_LIMIT = 10_000
_BACKFILL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_MINER_NAME = re.compile(r"^.{1,200}$", re.S)
_UPDATABLE = frozenset(
    {
        "name",
        "kind",
        "params",
        "status",
        "threshold",
        "resolve_after",
        "interval_seconds",
        "training_window_seconds",
        "triage",
        "transforms",
    }
)
_ALIASES = {"interval": "interval_seconds", "training_window": "training_window_seconds"}


def accept_any_kind(kind: str, params: Mapping[str, Any]) -> None:
    """A ``kind_validator`` that accepts every kind matching ``[a-z_]+`` (checked by the spec)."""


def default_kind_validator(kind: str, params: Mapping[str, Any]) -> None:
    """A detector spec must build a model: known kind, known params, valid values
    (:class:`InvalidInput` naming ``kind`` or ``params.<name>``)."""
    from aiops import detectors

    detectors.create(kind, **dict(params))


def _now() -> datetime:
    return datetime.now(UTC)


def _json_dumps(value: Any) -> str:
    # strict: PostgreSQL rejects NaN/Infinity in JSON, so SQLite must too
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and any(
        word in str(exc.orig).lower() for word in ("locked", "busy")
    )


def create_store_engine(url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """An engine configured for the store: SQLite (WAL, busy_timeout, foreign keys, our own
    BEGIN) or PostgreSQL. Creates the parent directory of a SQLite file."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"invalid database URL {url!r}: {exc}", setting="AIOPS_DATABASE_URL"
        ) from None
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            if parsed.get_driver_name() != "pysqlite":
                raise ConfigError(
                    f"unsupported SQLite driver {parsed.drivername!r}; use 'sqlite:///path'",
                    setting="AIOPS_DATABASE_URL",
                )
            database = parsed.database or ""
            memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
            kwargs: dict[str, Any] = {
                "connect_args": {"timeout": busy_timeout, "check_same_thread": False}
            }
            if memory:
                kwargs["poolclass"] = StaticPool  # single connection: tests and tools only
            elif not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, json_serializer=_json_dumps, **kwargs)
            _install_sqlite_hooks(engine, busy_timeout=busy_timeout, wal=not memory)
            return engine
        if backend == "postgresql":
            return create_engine(parsed, json_serializer=_json_dumps, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"no driver for database URL {parsed.render_as_string()!r}: {exc}",
            setting="AIOPS_DATABASE_URL",
        ) from None
    raise ConfigError(
        f"unsupported database {backend!r}; use sqlite:///path or postgresql://...",
        setting="AIOPS_DATABASE_URL",
    )


def _install_sqlite_hooks(engine: Engine, *, busy_timeout: float, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _validate(model: type[BaseModel], value: Any, prefix: str = "") -> Any:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise invalid_input_from(exc, prefix) from None


def _triage_json(spec: DetectorSpec) -> dict[str, Any] | None:
    return None if spec.triage is None else spec.triage.model_dump(mode="json")


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= _MAX_LIMIT:
        raise InvalidInput(
            f"limit must be an integer in 1..{_MAX_LIMIT}, got {limit!r}", field="limit"
        )
    return limit


def _non_negative_id(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{field} must be a non-negative integer, got {value!r}", field=field)
    return value


def _by_source(stmt: Any, column: Any, source: str, backfill_id: str | None) -> Any:
    """Keep ``live`` rows (no backfill id), ``backfill`` ones or ``all``; ``backfill_id``
    keeps one backfill's. ``column`` is the table's ``backfill_id``."""
    if source not in ("all", "live", "backfill"):
        raise InvalidInput(f"source must be all, live or backfill, not {source!r}", field="source")
    if source == "live":
        stmt = stmt.where(column.is_(None))
    elif source == "backfill":
        stmt = stmt.where(column.is_not(None))
    if backfill_id is not None:
        stmt = stmt.where(column == backfill_id)
    return stmt


def _time_range(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` as UTC, checked to be in order."""
    since_utc = None if since is None else utc(since, "since")
    until_utc = None if until is None else utc(until, "until")
    if since_utc and until_utc and since_utc > until_utc:
        raise InvalidInput("since must not be after until", field="since")
    return since_utc, until_utc


def _check_json(value: Any, field: str) -> Any:
    try:
        _json_dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{field} must be JSON-serialisable without NaN/Infinity: {exc}", field=field
        ) from None
    return value


class Store(BatchStore, FlowMetricsStore):
    """The persistent store. Make one with :meth:`Store.open`; share it between threads."""

    def __init__(
        self,
        engine: Engine,
        *,
        kind_validator: KindValidator = default_kind_validator,
        severity: SeverityPolicy | None = None,
    ) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._kind_validator = kind_validator
        self.severity = severity or SeverityPolicy()
        self._reads = sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._writes = sessionmaker(
            engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}),
            expire_on_commit=False,
            autoflush=False,
        )

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        url: str,
        *,
        kind_validator: KindValidator = default_kind_validator,
        severity: SeverityPolicy | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        migrate: bool = True,
    ) -> Store:
        """Connect and upgrade the schema to head (safe when several processes start at once)."""
        try:
            engine = create_store_engine(url, busy_timeout=busy_timeout)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the store's database at {url}: {exc}") from exc
        try:
            if migrate:
                for attempt in Retrying(
                    retry=retry_if_exception(_is_locked),
                    stop=stop_after_attempt(5),
                    wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.1),
                    reraise=True,
                ):
                    with attempt:
                        migrations.upgrade(engine)
        except OperationalError as exc:
            engine.dispose()
            raise StoreUnavailable(f"cannot open the store's database: {exc.orig}") from exc
        except BaseException:
            engine.dispose()
            raise
        logger.debug("store opened at %s", engine.url.render_as_string(hide_password=True))
        return cls(engine, kind_validator=kind_validator, severity=severity)

    @staticmethod
    def default_url(data_dir: str | Path) -> str:
        """``sqlite:///<data_dir>/aiops.db`` (absolute); creates ``data_dir``."""
        path = Path(data_dir).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path / 'aiops.db'}"

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def kind_validator(self) -> KindValidator:
        return self._kind_validator

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Session]:
        maker = self._writes if write else self._reads
        try:
            with maker.begin() as session:
                yield session
        except IntegrityError as exc:
            raise Conflict(f"write clashes with stored data: {exc.orig}") from exc
        except OperationalError as exc:
            raise StoreUnavailable(f"the store's database is unavailable: {exc.orig}") from exc

    def _insert(self, table: Table) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _require(session: Session, detector_id: str) -> DetectorRow:
        row = session.get(DetectorRow, detector_id) if isinstance(detector_id, str) else None
        if row is None:
            raise NotFound(f"detector {detector_id!r} not found", detector=detector_id)
        return row

    @staticmethod
    def _require_id(session: Session, detector_id: str) -> None:
        """Like ``_require`` without loading the row and its datasources."""
        found = isinstance(detector_id, str) and session.scalar(
            select(DetectorRow.id).where(DetectorRow.id == detector_id)
        )
        if not found:
            raise NotFound(f"detector {detector_id!r} not found", detector=detector_id)

    def _spec(self, value: DetectorSpec | Mapping[str, Any]) -> DetectorSpec:
        spec: DetectorSpec = _validate(DetectorSpec, value)
        try:
            self._kind_validator(spec.kind, spec.params)
        except InvalidInput:
            raise
        except ValueError as exc:
            raise InvalidInput(str(exc), field="kind") from None
        return spec

    # ------------------------------------------------------------------ detectors

    def create_detector(self, spec: DetectorSpec | Mapping[str, Any]) -> DetectorRecord:
        spec = self._spec(spec)
        with self._tx(write=True) as s:
            if s.get(DetectorRow, spec.id) is not None:
                raise Conflict(f"detector {spec.id!r} already exists", detector=spec.id)
            row = self._new_detector(s, spec, _now())
            return DetectorRecord.model_validate(row)

    def _new_detector(self, s: Session, spec: DetectorSpec, now: datetime) -> DetectorRow:
        row = DetectorRow(
            id=spec.id,
            name=spec.name,
            kind=spec.kind,
            params=spec.params,
            status=spec.status or "training",
            threshold=spec.threshold,
            resolve_after=spec.resolve_after,
            interval_seconds=spec.interval_seconds,
            training_window_seconds=spec.training_window_seconds,
            triage=_triage_json(spec),
            transforms=spec.transforms or None,
            spec_hash=spec.spec_hash,
            status_changed_at=now,
            created_at=now,
            updated_at=now,
        )
        if spec.datasource is not None:
            row.datasources.append(self._new_datasource(spec.id, spec.datasource, now))
        s.add(row)
        s.flush()
        return row

    @staticmethod
    def _new_datasource(
        detector_id: str, ds: DatasourceSpec, now: datetime
    ) -> DetectorDatasourceRow:
        return DetectorDatasourceRow(
            detector_id=detector_id,
            name=ds.name,
            query=ds.query,
            step_seconds=ds.step_seconds,
            lookback_seconds=ds.lookback_seconds,
            created_at=now,
            updated_at=now,
        )

    def get_detector(self, detector_id: str) -> DetectorRecord:
        with self._tx() as s:
            return DetectorRecord.model_validate(self._require(s, detector_id))

    def list_detectors(self, status: str | None = None) -> list[DetectorRecord]:
        stmt = select(DetectorRow).order_by(DetectorRow.id)
        if status is not None:
            if status not in DETECTOR_STATUSES:
                raise InvalidInput(
                    f"status must be one of {', '.join(DETECTOR_STATUSES)}, got {status!r}",
                    field="status",
                )
            stmt = stmt.where(DetectorRow.status == status)
        with self._tx() as s:
            return [DetectorRecord.model_validate(row) for row in s.scalars(stmt)]

    def update_detector(self, detector_id: str, **changes: Any) -> DetectorRecord:
        """Change fields of a detector. Status moves: any -> paused, paused -> training/running,
        training -> running (else :class:`Conflict`). Changing kind/params drops model state."""
        changes = {_ALIASES.get(key, key): value for key, value in changes.items()}
        for key in changes:
            if key not in _UPDATABLE:
                hint = " (use set_datasource)" if key == "datasource" else ""
                raise InvalidInput(f"{key}: cannot be updated{hint}", field=key)
        with self._tx(write=True) as s:
            row = self._require(s, detector_id)
            current = DetectorRecord.model_validate(row).spec().model_dump(exclude={"datasource"})
            spec = self._spec({**current, **changes})
            self._apply_spec(s, row, spec, _now(), strict_status=True)
            s.flush()
            return DetectorRecord.model_validate(row)

    def _apply_spec(
        self,
        s: Session,
        row: DetectorRow,
        spec: DetectorSpec,
        now: datetime,
        *,
        strict_status: bool,
    ) -> tuple[bool, bool]:
        """Apply ``spec`` to ``row``; returns (changed, model_reset)."""
        changed = reset = False
        for field in (
            "name",
            "threshold",
            "resolve_after",
            "interval_seconds",
            "training_window_seconds",
        ):
            if getattr(row, field) != getattr(spec, field):
                setattr(row, field, getattr(spec, field))
                changed = True
        if row.triage != _triage_json(spec):
            row.triage = _triage_json(spec)
            changed = True
        if (
            row.transforms or []
        ) != spec.transforms:  # spec_hash covers them: the states reset below
            row.transforms = spec.transforms or None
            changed = True
        if row.spec_hash != spec.spec_hash or row.kind != spec.kind:
            row.kind, row.params, row.spec_hash = spec.kind, spec.params, spec.spec_hash
            dropped = s.execute(delete(ModelStateRow).where(ModelStateRow.detector_id == row.id))
            logger.info(
                "detector %s: model changed (kind=%s), dropped %d series states",
                row.id,
                spec.kind,
                dropped.rowcount,
            )
            changed = reset = True
        if spec.status is not None and spec.status != row.status:
            if check_transition(row.status, spec.status):
                row.status, row.status_changed_at = spec.status, now
                changed = True
            elif strict_status:
                raise Conflict(
                    f"detector {row.id!r} cannot go from {row.status} to {spec.status}",
                    detector=row.id,
                    status=row.status,
                )
            else:
                logger.info(
                    "detector %s: keeping status %s (declared %s is not a valid move)",
                    row.id,
                    row.status,
                    spec.status,
                )
        if changed:
            row.updated_at = now
        return changed, reset

    def delete_detector(self, detector_id: str) -> None:
        """Delete a detector with its datasources, model state, checkpoint, collector status and
        backfill windows. Its events and incidents stay (history); its open incidents are
        resolved now (with an ``incident.resolved`` event), since nothing will resolve them."""
        with self._tx(write=True) as s:
            self._require_id(s, detector_id)
            now = _now()
            rows = s.scalars(
                select(IncidentRow)
                .where(IncidentRow.detector_id == detector_id, IncidentRow.resolved_at.is_(None))
                .order_by(IncidentRow.id)
            ).all()
            events = []
            for row in rows:
                row.resolved_at, row.updated_at = max(now, row.last_anomalous_at), now
                events.append(
                    self._incident_event(
                        row, EVENT_INCIDENT_RESOLVED, {"reason": "detector deleted"}
                    )
                )
            s.flush()
            if events:
                self._insert_events_in(s, events)
            s.execute(delete(DetectorRow).where(DetectorRow.id == detector_id))

    def upsert_detectors(self, specs: Iterable[DetectorSpec | Mapping[str, Any]]) -> UpsertResult:
        """Create or update many detectors in one transaction (all or nothing).

        Model state is kept when kind+params are unchanged. A declared ``status`` is applied
        when the move is allowed, otherwise the stored status stays. A declared datasource
        replaces the detector's datasources; no datasource leaves them alone.
        """
        validated = [self._spec(spec) for spec in specs]
        seen: set[str] = set()
        for spec in validated:
            if spec.id in seen:
                raise InvalidInput(f"detector {spec.id!r} is declared twice", field="id")
            seen.add(spec.id)
        result: UpsertResult = {"created": [], "updated": [], "unchanged": [], "reset": []}
        now = _now()
        with self._tx(write=True) as s:
            for spec in validated:
                row = s.get(DetectorRow, spec.id)
                if row is None:
                    self._new_detector(s, spec, now)
                    result["created"].append(spec.id)
                    continue
                changed, reset = self._apply_spec(s, row, spec, now, strict_status=False)
                if spec.datasource is not None:
                    changed |= self._put_datasource(row, spec.datasource, now, replace=True)
                if changed:
                    row.updated_at = now
                result["updated" if changed else "unchanged"].append(spec.id)
                if reset:
                    result["reset"].append(spec.id)
        return result

    def _put_datasource(
        self, row: DetectorRow, ds: DatasourceSpec, now: datetime, *, replace: bool
    ) -> bool:
        changed = False
        if replace:
            for other in [d for d in row.datasources if d.name != ds.name]:
                row.datasources.remove(other)
                changed = True
        existing = next((d for d in row.datasources if d.name == ds.name), None)
        if existing is None:
            row.datasources.append(self._new_datasource(row.id, ds, now))
            return True
        for field in ("query", "step_seconds", "lookback_seconds"):
            if getattr(existing, field) != getattr(ds, field):
                setattr(existing, field, getattr(ds, field))
                existing.updated_at = now
                changed = True
        return changed

    def set_datasource(
        self,
        detector_id: str,
        datasource: DatasourceSpec | Mapping[str, Any],
        *,
        replace: bool = True,
    ) -> DetectorDatasource:
        """Set the datasource feeding a detector. With ``replace`` (the default: one datasource
        per detector for now) any datasource of another name is removed."""
        ds: DatasourceSpec = _validate(DatasourceSpec, datasource, "datasource.")
        now = _now()
        with self._tx(write=True) as s:
            row = self._require(s, detector_id)
            if self._put_datasource(row, ds, now, replace=replace):
                row.updated_at = now
            s.flush()
            stored = next(d for d in row.datasources if d.name == ds.name)
            return DetectorDatasource.model_validate(stored)

    def remove_datasource(self, detector_id: str, name: str | None = None) -> int:
        """Remove the detector's datasource ``name`` (all of them if ``None``); returns how
        many were removed. :class:`NotFound` if there was nothing to remove."""
        with self._tx(write=True) as s:
            row = self._require(s, detector_id)
            doomed = [d for d in row.datasources if name is None or d.name == name]
            if not doomed:
                what = f"datasource {name!r}" if name else "any datasource"
                raise NotFound(f"detector {detector_id!r} has no {what}", detector=detector_id)
            for d in doomed:
                row.datasources.remove(d)
            row.updated_at = _now()
            return len(doomed)

    def due_detectors(self, now: datetime | None = None) -> DueDetectors:
        """Detectors to collect at ``now``: status training/running, a datasource, and no run
        within their interval. ``not_due`` says why each other detector waits."""
        now = _now() if now is None else utc(now, "now")
        due: list[DetectorRecord] = []
        not_due: dict[str, str] = {}
        with self._tx() as s:
            last_runs = dict(
                s.execute(
                    select(CollectorStatusRow.detector_id, CollectorStatusRow.last_run_at)
                ).all()
            )
            for row in s.scalars(select(DetectorRow).order_by(DetectorRow.id)):
                last = last_runs.get(row.id)
                if row.status == "paused":
                    not_due[row.id] = "paused"
                elif not row.datasources:
                    not_due[row.id] = "no datasource configured"
                elif last is not None and last + timedelta(seconds=row.interval_seconds) > now:
                    next_at = last + timedelta(seconds=row.interval_seconds)
                    not_due[row.id] = (
                        f"next run at {next_at.isoformat()} (interval {row.interval_seconds}s)"
                    )
                else:
                    due.append(DetectorRecord.model_validate(row))
        return DueDetectors(due, not_due)

    def promote_trained(self, now: datetime | None = None) -> list[DetectorRecord]:
        """Move ``training`` detectors whose training window has passed to ``running``."""
        now = _now() if now is None else utc(now, "now")
        promoted: list[DetectorRecord] = []
        with self._tx(write=True) as s:
            stmt = select(DetectorRow).where(
                DetectorRow.status == "training", DetectorRow.training_window_seconds.is_not(None)
            )
            for row in s.scalars(stmt):
                assert row.training_window_seconds is not None
                if row.status_changed_at + timedelta(seconds=row.training_window_seconds) <= now:
                    row.status, row.status_changed_at, row.updated_at = "running", now, now
                    logger.info("detector %s: training window over, now running", row.id)
                    promoted.append(DetectorRecord.model_validate(row))
        return promoted

    # ------------------------------------------------------------------ model state

    def load_states(self, detector_id: str) -> dict[str, SeriesState]:
        with self._tx() as s:
            self._require_id(s, detector_id)
            rows = s.scalars(select(ModelStateRow).where(ModelStateRow.detector_id == detector_id))
            return {r.series_key: SeriesState(r.labels, r.state, r.trained_at) for r in rows}

    def save_states(
        self,
        detector_id: str,
        states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]],
        trained_at: datetime | None = None,
    ) -> int:
        """Upsert the JSON state of several series; ``version`` goes up by one per save.
        ``trained_at=None`` keeps each series' previous ``trained_at``. Returns the count."""
        params = self._state_params(detector_id, states, trained_at)
        if not params:
            return 0
        with self._tx(write=True) as s:
            self._require_id(s, detector_id)
            self._write_states(s, params)
        return len(params)

    def _state_params(
        self,
        detector_id: str,
        states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]],
        trained_at: datetime | None,
    ) -> list[dict[str, Any]]:
        trained = None if trained_at is None else utc(trained_at, "trained_at")
        now = _now()
        params: list[dict[str, Any]] = []
        for key, item in states.items():
            try:
                labels, state = item[0], item[1]
            except (TypeError, IndexError, KeyError):
                raise InvalidInput(
                    f"states[{key!r}] must be (labels, state)", field="states"
                ) from None
            if not isinstance(labels, Mapping) or not isinstance(state, Mapping):
                raise InvalidInput(
                    f"states[{key!r}]: labels and state must be dicts", field="states"
                )
            labels = {str(k): str(v) for k, v in labels.items()}
            if key != series_key(labels):
                raise InvalidInput(
                    f"states[{key!r}]: key is not series_key(labels) = {series_key(labels)!r}",
                    field="states",
                )
            params.append(
                {
                    "detector_id": detector_id,
                    "series_key": key,
                    "labels": labels,
                    "state": _check_json(dict(state), f"states[{key!r}].state"),
                    "version": 1,
                    "trained_at": trained,
                    "updated_at": now,
                }
            )
        return params

    def _write_states(self, s: Session, params: list[dict[str, Any]]) -> None:
        table = ModelStateRow.__table__
        ins = self._insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=["detector_id", "series_key"],
            set_={
                "labels": ins.excluded.labels,
                "state": ins.excluded.state,
                "version": table.c.version + 1,
                "trained_at": func.coalesce(ins.excluded.trained_at, table.c.trained_at),
                "updated_at": ins.excluded.updated_at,
            },
        )
        s.execute(stmt, params)

    def reset_states(self, detector_id: str) -> int:
        """Drop all model state of a detector; returns how many series were dropped."""
        with self._tx(write=True) as s:
            self._require_id(s, detector_id)
            result = s.execute(
                delete(ModelStateRow).where(ModelStateRow.detector_id == detector_id)
            )
            return result.rowcount

    def state_info(self, detector_id: str) -> list[ModelStateInfo]:
        """Per series: labels, version, trained_at (without loading the states)."""
        with self._tx() as s:
            self._require_id(s, detector_id)
            stmt = (
                select(ModelStateRow)
                .options(defer(ModelStateRow.state))
                .where(ModelStateRow.detector_id == detector_id)
                .order_by(ModelStateRow.series_key)
            )
            return [ModelStateInfo.model_validate(r) for r in s.scalars(stmt)]

    # ------------------------------------------------------------------ checkpoints

    def get_checkpoint(self, detector_id: str) -> datetime | None:
        with self._tx() as s:
            self._require_id(s, detector_id)
            return s.scalar(
                select(CheckpointRow.ts).where(CheckpointRow.detector_id == detector_id)
            )

    def advance_checkpoint(self, detector_id: str, ts: datetime) -> datetime:
        """Move the checkpoint to ``ts`` unless it is already later; returns the checkpoint."""
        ts = utc(ts, "ts")
        with self._tx(write=True) as s:
            self._require_id(s, detector_id)
            return self._advance_checkpoint_in(s, detector_id, ts)

    def _advance_checkpoint_in(self, s: Session, detector_id: str, ts: datetime) -> datetime:
        table = CheckpointRow.__table__
        ins = self._insert(table).values(detector_id=detector_id, ts=ts, updated_at=_now())
        stmt = ins.on_conflict_do_update(
            index_elements=["detector_id"],
            set_={"ts": ins.excluded.ts, "updated_at": ins.excluded.updated_at},
            where=table.c.ts < ins.excluded.ts,
        )
        s.execute(stmt)
        current = s.scalar(select(CheckpointRow.ts).where(CheckpointRow.detector_id == detector_id))
        assert current is not None
        return current

    def reset_checkpoint(self, detector_id: str) -> None:
        """Forget the checkpoint (the next run starts from the datasource lookback)."""
        with self._tx(write=True) as s:
            self._require_id(s, detector_id)
            s.execute(delete(CheckpointRow).where(CheckpointRow.detector_id == detector_id))

    # ------------------------------------------------------------------ events

    def insert_events(self, rows: Iterable[EventIn | Mapping[str, Any]]) -> list[Event]:
        """Insert events, skipping any whose (type, detector, series, ts) is already stored.
        Returns the rows actually inserted, ascending by id."""
        values = self._event_values(rows)
        if not values:
            return []
        with self._tx(write=True) as s:
            return self._insert_events_in(s, values)

    def _event_values(self, rows: Iterable[EventIn | Mapping[str, Any]]) -> list[dict[str, Any]]:
        now = _now()
        values: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            item: EventIn = _validate(EventIn, row, f"rows[{index}].")
            data = item.model_dump()
            data["detector_id"] = item.detector_id or ""
            data["series_key"] = (
                item.series_key if item.series_key is not None else series_key(item.labels)
            )
            data["severity"] = item.severity or self.severity.severity(item.score)
            data["created_at"] = now
            values.append(data)
        return values

    def _insert_events_in(self, s: Session, values: list[dict[str, Any]]) -> list[Event]:
        table = EventRow.__table__
        inserted: list[Event] = []
        if not values:
            return inserted
        if self._dialect == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_EVENT_LOCK})
        # executemany of one cached statement: SQLAlchemy's "insertmanyvalues" sends it as
        # multi-row INSERTs with RETURNING, without compiling a VALUES clause per call (that
        # compilation cost ~0.3 ms an event)
        stmt = self._insert(table).on_conflict_do_nothing().returning(*table.c)
        inserted.extend(Event.model_validate(dict(m)) for m in s.execute(stmt, values).mappings())
        inserted.sort(key=lambda e: e.id)
        return inserted

    def commit_detection(
        self,
        detector_id: str,
        *,
        events: Iterable[EventIn | Mapping[str, Any]] = (),
        states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]] | None = None,
        trained_at: datetime | None = None,
        checkpoint: datetime | None = None,
        collection: Mapping[str, Any] | None = None,
        latest: Iterable[Mapping[str, Any]] = (),
        incidents: Iterable[Mapping[str, Any]] = (),
        incident_states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]] | None = None,
    ) -> list[Event]:
        """Everything one detection run writes, in ONE transaction: new events (idempotent),
        model states, the checkpoint, the collector status, each series' latest score
        (``latest``: dicts with series_key, labels, ts, value, score), the incidents opened,
        grown or resolved (``incidents``: :attr:`aiops.pipeline.DetectionRun.incidents`, with
        their ``incident.opened`` / ``incident.resolved`` events) and the incident grouping's
        state per series. A crash leaves either all of it or none, so a retried run neither
        skips nor double-learns a window, and an open incident continues after a restart.
        Returns the events actually inserted (anomalies and incident events, ascending id)."""
        values = self._event_values(events)
        params = self._state_params(detector_id, states or {}, trained_at)
        ts = None if checkpoint is None else utc(checkpoint, "checkpoint")
        changes = list(incidents)
        with self._tx(write=True) as s:
            self._require_id(s, detector_id)
            inserted = self._insert_events_in(s, values) if values else []
            incident_events = self._apply_incidents(s, detector_id, changes, None)
            if incident_events:
                inserted += self._insert_events_in(s, incident_events)
            self._write_incident_states(s, detector_id, "", incident_states or {})
            if params:
                self._write_states(s, params)
            if ts is not None:
                self._advance_checkpoint_in(s, detector_id, ts)
            if collection is not None:
                self._record_collection_in(s, detector_id, ok=True, **collection)
            self._write_scores(s, detector_id, latest)
        return inserted

    # ------------------------------------------------------------------ incidents

    def load_incident_states(
        self, detector_id: str, backfill_id: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """The incident grouping's state per series (``{series_key: state}``): live, or of one
        backfill (kept apart, as the backfill's models are)."""
        stmt = select(IncidentStateRow.series_key, IncidentStateRow.state).where(
            IncidentStateRow.detector_id == detector_id,
            IncidentStateRow.scope == (backfill_id or ""),
        )
        with self._tx() as s:
            self._require_id(s, detector_id)
            return {key: dict(state) for key, state in s.execute(stmt).all()}

    def _write_incident_states(
        self,
        s: Session,
        detector_id: str,
        scope: str,
        states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]],
    ) -> None:
        if not states:
            return
        now = _now()
        rows = [
            {
                "detector_id": detector_id,
                "scope": scope,
                "series_key": key,
                "labels": {str(k): str(v) for k, v in labels.items()},
                "state": _check_json(dict(state), f"incident_states[{key!r}]"),
                "updated_at": now,
            }
            for key, (labels, state) in states.items()
        ]
        ins = self._insert(IncidentStateRow.__table__)
        s.execute(
            ins.on_conflict_do_update(
                index_elements=["detector_id", "scope", "series_key"],
                set_={k: ins.excluded[k] for k in ("labels", "state", "updated_at")},
            ),
            rows,
        )

    def _apply_incidents(
        self,
        s: Session,
        detector_id: str,
        changes: Sequence[Mapping[str, Any]],
        backfill_id: str | None,
    ) -> list[dict[str, Any]]:
        """Open, grow and resolve incidents; returns the values of their events.

        Idempotent like the anomaly rows: an incident is unique on (detector, series,
        opened_at). One opened where another source (live or another backfill) already has one
        leaves that one as it was, and this source's later changes to it are dropped (they
        only ever touch rows of their own source that are still open)."""
        table = IncidentRow.__table__
        mine = (
            IncidentRow.backfill_id.is_(None)
            if backfill_id is None
            else IncidentRow.backfill_id == backfill_id
        )
        events: list[dict[str, Any]] = []
        now = _now()
        parsed = []
        opening: list[dict[str, Any]] = []
        for index, change in enumerate(changes):
            where = f"incidents[{index}]"
            key = change["series_key"]
            opened_at = utc(change["opened_at"], f"{where}.opened_at")
            last = change.get("last_anomalous_at")
            last = None if last is None else utc(last, f"{where}.last_anomalous_at")
            resolved = change.get("resolved_at")
            resolved = None if resolved is None else utc(resolved, f"{where}.resolved_at")
            peak = change.get("peak") or {}
            points = int(change.get("points", 0))
            payload = _check_json(dict(change.get("payload") or {}), f"{where}.payload")
            parsed.append((where, key, opened_at, last, resolved, peak, points, payload))
            if change.get("opened"):
                peak_score = _finite_or_none(peak.get("score"))
                opening.append(
                    {
                        "detector_id": detector_id,
                        "series_key": key,
                        "labels": {str(k): str(v) for k, v in change["labels"].items()},
                        "opened_at": opened_at,
                        "last_anomalous_at": last or opened_at,
                        "resolved_at": resolved,
                        "peak_at": utc(peak.get("ts", opened_at), f"{where}.peak.ts"),
                        "peak_score": peak_score,
                        "peak_value": _finite_or_none(peak.get("value")),
                        "peak_expected": _finite_or_none(peak.get("expected")),
                        "peak_lower": _finite_or_none(peak.get("lower")),
                        "peak_upper": _finite_or_none(peak.get("upper")),
                        "points": points,
                        "severity": self.severity.severity(peak_score),
                        "model_kind": change.get("model_kind"),
                        "params_hash": change.get("params_hash"),
                        "trained_at": None
                        if change.get("trained_at") is None
                        else utc(change["trained_at"], f"{where}.trained_at"),
                        "flow_run_id": None
                        if change.get("flow_run_id") is None
                        else str(change["flow_run_id"]),
                        "backfill_id": backfill_id,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        # The opened incidents in one executemany (one row at a time cost ~1 ms each); the
        # rows an insert skipped (already stored) are not returned.
        stored: dict[tuple[str, datetime], Any] = {}
        if opening:
            stmt = self._insert(table).on_conflict_do_nothing().returning(*table.c)
            for row in s.execute(stmt, opening):
                stored.setdefault((row.series_key, row.opened_at), row)
        for change, (where, key, opened_at, last, resolved, peak, points, payload) in zip(
            changes, parsed, strict=True
        ):
            if change.get("opened"):
                row = stored.pop((key, opened_at), None)
                if row is None:
                    logger.info(
                        "incident of %s/%s opened at %s is already stored: kept as it was",
                        detector_id,
                        key,
                        opened_at,
                        extra={"detector": detector_id},
                    )
                    continue
                events.append(self._incident_event(row, EVENT_INCIDENT_OPENED, payload))
                if row.resolved_at is not None:
                    events.append(self._incident_event(row, EVENT_INCIDENT_RESOLVED, payload))
                continue
            row = s.scalar(
                select(IncidentRow)
                .where(
                    IncidentRow.detector_id == detector_id,
                    IncidentRow.series_key == key,
                    IncidentRow.opened_at == opened_at,
                    IncidentRow.resolved_at.is_(None),
                    mine,
                )
                .with_for_update()
            )
            if row is None:
                continue
            if last is not None and last > row.last_anomalous_at:
                row.last_anomalous_at = last
            row.points += points
            score = _finite_or_none(peak.get("score"))
            if score is not None and (row.peak_score is None or score > row.peak_score):
                row.peak_at = utc(peak["ts"], f"{where}.peak.ts")
                row.peak_score = score
                row.peak_value = _finite_or_none(peak.get("value"))
                row.peak_expected = _finite_or_none(peak.get("expected"))
                row.peak_lower = _finite_or_none(peak.get("lower"))
                row.peak_upper = _finite_or_none(peak.get("upper"))
                row.severity = self.severity.severity(score)
            row.updated_at = now
            if resolved is not None:
                row.resolved_at = resolved
                s.flush()
                events.append(self._incident_event(row, EVENT_INCIDENT_RESOLVED, payload))
        s.flush()
        return events

    @staticmethod
    def _incident_event(row: IncidentRow, kind: str, extra: Mapping[str, Any]) -> dict[str, Any]:
        """The event row announcing an incident's opening or resolution."""
        at = row.opened_at if kind == EVENT_INCIDENT_OPENED else row.resolved_at
        return {
            "type": kind,
            "detector_id": row.detector_id,
            "series_key": row.series_key,
            "labels": dict(row.labels),
            "ts": at,
            "value": row.peak_value,
            "score": row.peak_score,
            "expected": row.peak_expected,
            "lower": row.peak_lower,
            "upper": row.peak_upper,
            "severity": row.severity,
            "payload": {
                **extra,
                "incident_id": row.id,
                "opened_at": row.opened_at.isoformat(),
                "last_anomalous_at": row.last_anomalous_at.isoformat(),
                "resolved_at": None if row.resolved_at is None else row.resolved_at.isoformat(),
                "peak_at": row.peak_at.isoformat(),
                "points": row.points,
            },
            "model_kind": row.model_kind,
            "params_hash": row.params_hash,
            "trained_at": row.trained_at,
            "flow_run_id": row.flow_run_id,
            "backfill_id": row.backfill_id,
            "created_at": _now(),
        }

    def get_incident(self, incident_id: int) -> Incident:
        with self._tx() as s:
            row = (
                s.get(IncidentRow, incident_id)
                if isinstance(incident_id, int) and not isinstance(incident_id, bool)
                else None
            )
            if row is None:
                raise NotFound(f"incident {incident_id!r} not found", incident=incident_id)
            return Incident.model_validate(row)

    def list_incidents(
        self,
        detector: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int = 100,
        *,
        before_id: int | None = None,
        newest_first: bool = False,
        source: str = "all",
        backfill_id: str | None = None,
        series_key: str | None = None,
    ) -> list[Incident]:
        """Incidents that overlap ``[since, until)`` (opened before ``until``, not resolved
        before ``since``), paginated by id like :meth:`list_anomalies`. ``state`` keeps
        ``open`` or ``resolved`` ones; ``source`` ``live``, ``backfill`` or ``all``."""
        if state not in (None, "open", "resolved"):
            raise InvalidInput(f"state must be open or resolved, not {state!r}", field="state")
        stmt = _by_source(select(IncidentRow), IncidentRow.backfill_id, source, backfill_id)
        if detector is not None:
            stmt = stmt.where(IncidentRow.detector_id == detector)
        if series_key is not None:
            stmt = stmt.where(IncidentRow.series_key == series_key)
        if state == "open":
            stmt = stmt.where(IncidentRow.resolved_at.is_(None))
        elif state == "resolved":
            stmt = stmt.where(IncidentRow.resolved_at.is_not(None))
        since_utc, until_utc = _time_range(since, until)
        if since_utc is not None:
            stmt = stmt.where(
                IncidentRow.resolved_at.is_(None) | (IncidentRow.resolved_at >= since_utc)
            )
        if until_utc is not None:
            stmt = stmt.where(IncidentRow.opened_at < until_utc)
        if (after := _non_negative_id(after_id, "after_id")) is not None:
            stmt = stmt.where(IncidentRow.id > after)
        if (before := _non_negative_id(before_id, "before_id")) is not None:
            stmt = stmt.where(IncidentRow.id < before)
        order = IncidentRow.id.desc() if newest_first else IncidentRow.id
        stmt = stmt.order_by(order).limit(_limit(limit))
        with self._tx() as s:
            return [Incident.model_validate(r) for r in s.scalars(stmt)]

    def incident_points(self, incident: Incident, limit: int = 1000) -> list[Event]:
        """The incident's evidence: the anomaly rows of its series from its first to its last
        anomalous point, oldest first (at most ``limit``)."""
        stmt = (
            select(EventRow)
            .where(
                EventRow.type == EVENT_ANOMALY,
                EventRow.detector_id == incident.detector_id,
                EventRow.series_key == incident.series_key,
                EventRow.ts >= incident.opened_at,
                EventRow.ts <= incident.last_anomalous_at,
            )
            .order_by(EventRow.ts)
            .limit(_limit(limit))
        )
        with self._tx() as s:
            return [Event.model_validate(r) for r in s.scalars(stmt)]

    def incident_metrics(self) -> tuple[list[Incident], dict[str, int]]:
        """For ``/metrics``: the open live incidents, and how many live incidents each
        detector has opened (a counter: incidents are never deleted)."""
        open_stmt = (
            select(IncidentRow)
            .where(IncidentRow.resolved_at.is_(None), IncidentRow.backfill_id.is_(None))
            .order_by(IncidentRow.detector_id, IncidentRow.series_key, IncidentRow.id)
        )
        count_stmt = (
            select(IncidentRow.detector_id, func.count())
            .where(IncidentRow.backfill_id.is_(None))
            .group_by(IncidentRow.detector_id)
            .order_by(IncidentRow.detector_id)
        )
        with self._tx() as s:
            opened = [Incident.model_validate(r) for r in s.scalars(open_stmt)]
            counts = {d: int(n) for d, n in s.execute(count_stmt).all()}
        return opened, counts

    def backfill_incident_counts(self, backfill_id: str) -> dict[str, int]:
        """How many incidents a backfill opened (``opened``) and resolved (``resolved``)."""
        stmt = select(func.count(), func.count(IncidentRow.resolved_at)).where(
            IncidentRow.backfill_id == backfill_id
        )
        with self._tx() as s:
            total, resolved = s.execute(stmt).one()
        return {"opened": int(total or 0), "resolved": int(resolved or 0)}

    def get_event(self, event_id: int) -> Event:
        with self._tx() as s:
            row = s.get(EventRow, event_id)
            if row is None:
                raise NotFound(f"event {event_id!r} not found", event=event_id)
            return Event.model_validate(row)

    def events_after(
        self,
        after_id: int = 0,
        limit: int = 100,
        detector: str | None = None,
        types: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
    ) -> list[Event]:
        """Events with id > ``after_id``, ascending (the WebSocket tail and ``?since=``);
        ``types`` keeps those types only, ``exclude_types`` leaves those out."""
        after_id = _non_negative_id(after_id, "after_id") or 0
        stmt = select(EventRow).where(EventRow.id > after_id)
        if detector is not None:
            stmt = stmt.where(EventRow.detector_id == detector)
        if types is not None:
            if isinstance(types, str):
                types = [types]
            stmt = stmt.where(EventRow.type.in_(list(types)))
        if exclude_types:
            if isinstance(exclude_types, str):
                exclude_types = [exclude_types]
            stmt = stmt.where(EventRow.type.not_in(list(exclude_types)))
        stmt = stmt.order_by(EventRow.id).limit(_limit(limit))
        with self._tx() as s:
            return [Event.model_validate(r) for r in s.scalars(stmt)]

    def list_anomalies(
        self,
        detector: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int = 100,
        *,
        before_id: int | None = None,
        newest_first: bool = False,
        source: str = "all",
        backfill_id: str | None = None,
    ) -> list[Event]:
        """Anomalies with ``since <= ts < until``, paginated by id (``after_id`` ascending, or
        ``newest_first`` with ``before_id``). ``source`` keeps ``live`` ones, ``backfill``
        ones or ``all``; ``backfill_id`` keeps those of one backfill."""
        stmt = select(EventRow).where(EventRow.type == EVENT_ANOMALY)
        stmt = _by_source(stmt, EventRow.backfill_id, source, backfill_id)
        if detector is not None:
            stmt = stmt.where(EventRow.detector_id == detector)
        since_utc, until_utc = _time_range(since, until)
        if since_utc is not None:
            stmt = stmt.where(EventRow.ts >= since_utc)
        if until_utc is not None:
            stmt = stmt.where(EventRow.ts < until_utc)
        if (after := _non_negative_id(after_id, "after_id")) is not None:
            stmt = stmt.where(EventRow.id > after)
        if (before := _non_negative_id(before_id, "before_id")) is not None:
            stmt = stmt.where(EventRow.id < before)
        order = EventRow.id.desc() if newest_first else EventRow.id
        stmt = stmt.order_by(order).limit(_limit(limit))
        with self._tx() as s:
            return [Event.model_validate(r) for r in s.scalars(stmt)]

    def latest_scores(self) -> list[SeriesScore]:
        """The latest score of every detector's series (normal ones too), for ``/metrics``."""
        stmt = select(SeriesScoreRow).order_by(
            SeriesScoreRow.detector_id, SeriesScoreRow.series_key
        )
        with self._tx() as s:
            return [SeriesScore.model_validate(r) for r in s.scalars(stmt)]

    def _write_scores(
        self, s: Session, detector_id: str, latest: Iterable[Mapping[str, Any]]
    ) -> None:
        now = _now()
        rows = [
            {
                "detector_id": detector_id,
                "series_key": item["series_key"],
                "labels": {str(k): str(v) for k, v in item["labels"].items()},
                "ts": utc(item["ts"], "latest.ts"),
                "value": _finite_or_none(item.get("value")),
                "score": _finite_or_none(item.get("score")),
                "updated_at": now,
            }
            for item in latest
        ]
        if not rows:
            return
        table = SeriesScoreRow.__table__
        ins = self._insert(table)
        s.execute(
            ins.on_conflict_do_update(
                index_elements=["detector_id", "series_key"],
                set_={k: ins.excluded[k] for k in ("labels", "ts", "value", "score", "updated_at")},
                where=table.c.ts <= ins.excluded.ts,
            ),
            rows,
        )

    def max_event_id(self) -> int:
        with self._tx() as s:
            return s.scalar(select(func.max(EventRow.id))) or 0

    # ------------------------------------------------------------------ collector status

    def _status_row(self, s: Session, detector_id: str, now: datetime) -> CollectorStatusRow:
        self._require_id(s, detector_id)
        s.execute(
            self._insert(CollectorStatusRow.__table__)
            .values(
                detector_id=detector_id,
                state="never_run",
                consecutive_failures=0,
                samples=0,
                series=0,
                buffered=0,
                dropped=0,
                updated_at=now,
            )
            .on_conflict_do_nothing()
        )
        row = s.scalar(
            select(CollectorStatusRow)
            .where(CollectorStatusRow.detector_id == detector_id)
            .with_for_update()
        )
        assert row is not None
        return row

    def record_collection(
        self,
        detector_id: str,
        ok: bool,
        *,
        samples: int = 0,
        series: int = 0,
        buffered: int = 0,
        dropped: int = 0,
        error: str | None = None,
        at: datetime | None = None,
        warning: str | None = None,
    ) -> CollectorStatus:
        """Record one collection run of a detector (success or failure, and a ``warning`` about
        it such as samples that could not be read)."""
        with self._tx(write=True) as s:
            return self._record_collection_in(
                s,
                detector_id,
                ok=ok,
                samples=samples,
                series=series,
                buffered=buffered,
                dropped=dropped,
                error=error,
                at=at,
                warning=warning,
            )

    def _record_collection_in(
        self,
        s: Session,
        detector_id: str,
        *,
        ok: bool,
        samples: int = 0,
        series: int = 0,
        buffered: int = 0,
        dropped: int = 0,
        error: str | None = None,
        at: datetime | None = None,
        warning: str | None = None,
    ) -> CollectorStatus:
        at = _now() if at is None else utc(at, "at")
        counts = {"samples": samples, "series": series, "buffered": buffered, "dropped": dropped}
        for field, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(
                    f"{field} must be a non-negative integer, got {value!r}", field=field
                )
        row = self._status_row(s, detector_id, at)
        row.last_run_at = at
        for field, value in counts.items():
            setattr(row, field, value)
        if ok:
            row.state, row.last_success_at, row.consecutive_failures = "ok", at, 0
        else:
            row.state = "failed"
            row.last_error = error or "unknown error"
            row.last_error_at = at
            row.consecutive_failures += 1
        if warning:
            row.last_warning, row.last_warning_at = warning, at
        row.skip_reason = None
        row.updated_at = at
        s.flush()
        return CollectorStatus.model_validate(row)

    def record_skip(
        self, detector_id: str, reason: str, at: datetime | None = None
    ) -> CollectorStatus:
        """Record that a due detector was not collected, and why (``last_run_at`` is kept)."""
        at = _now() if at is None else utc(at, "at")
        with self._tx(write=True) as s:
            row = self._status_row(s, detector_id, at)
            row.state, row.skip_reason, row.skipped_at, row.updated_at = "skipped", reason, at, at
            s.flush()
            return CollectorStatus.model_validate(row)

    def collector_status(self, detector_id: str) -> CollectorStatus:
        with self._tx() as s:
            self._require_id(s, detector_id)
            row = s.get(CollectorStatusRow, detector_id)
            if row is None:
                return CollectorStatus(detector_id=detector_id)
            return CollectorStatus.model_validate(row)

    def collector_statuses(self) -> list[CollectorStatus]:
        """One status per detector (``never_run`` for detectors never collected)."""
        stmt = (
            select(DetectorRow.id, CollectorStatusRow)
            .outerjoin(CollectorStatusRow, CollectorStatusRow.detector_id == DetectorRow.id)
            .order_by(DetectorRow.id)
        )
        with self._tx() as s:
            return [
                CollectorStatus.model_validate(row)
                if row is not None
                else CollectorStatus(detector_id=detector_id)
                for detector_id, row in s.execute(stmt).all()
            ]

    # ------------------------------------------------------------------ log reports

    def save_log_report(
        self,
        source: str,
        window_start: datetime,
        window_end: datetime,
        summary: Mapping[str, Any],
        templates: Sequence[Any] | Mapping[str, Any] | None = None,
        flow_run_id: str | None = None,
    ) -> LogReportRecord:
        row = self._log_report_row(
            source, window_start, window_end, summary, templates, flow_run_id
        )
        with self._tx(write=True) as s:
            s.add(row)
            s.flush()
            return LogReportRecord.model_validate(row)

    @staticmethod
    def _log_report_row(
        source: str,
        window_start: datetime,
        window_end: datetime,
        summary: Mapping[str, Any],
        templates: Sequence[Any] | Mapping[str, Any] | None,
        flow_run_id: str | None,
    ) -> LogReportRow:
        if not isinstance(source, str) or not source:
            raise InvalidInput("source must be a non-empty string", field="source")
        start, end = utc(window_start, "window_start"), utc(window_end, "window_end")
        if start > end:
            raise InvalidInput("window_start must not be after window_end", field="window_start")
        return LogReportRow(
            source=source,
            window_start=start,
            window_end=end,
            summary=_check_json(dict(summary), "summary"),
            templates=_check_json(
                dict(templates) if isinstance(templates, Mapping) else list(templates or []),
                "templates",
            ),
            flow_run_id=None if flow_run_id is None else str(flow_run_id),
            created_at=_now(),
        )

    def get_log_report(self, report_id: int) -> LogReportRecord:
        with self._tx() as s:
            row = s.get(LogReportRow, report_id) if isinstance(report_id, int) else None
            if row is None:
                raise NotFound(f"log report {report_id!r} not found", report=report_id)
            return LogReportRecord.model_validate(row)

    def list_log_reports(
        self,
        source: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[LogReportRecord]:
        """Newest first; ``since`` keeps reports whose window ends at or after it."""
        stmt = select(LogReportRow)
        if source is not None:
            stmt = stmt.where(LogReportRow.source == source)
        if since is not None:
            stmt = stmt.where(LogReportRow.window_end >= utc(since, "since"))
        if (before := _non_negative_id(before_id, "before_id")) is not None:
            stmt = stmt.where(LogReportRow.id < before)
        stmt = stmt.order_by(LogReportRow.id.desc()).limit(_limit(limit))
        with self._tx() as s:
            return [LogReportRecord.model_validate(r) for r in s.scalars(stmt)]

    def load_miner_state(self, name: str) -> dict[str, Any] | None:
        with self._tx() as s:
            row = s.get(MinerStateRow, name)
            return None if row is None else row.state

    def save_miner_state(self, name: str, state: Mapping[str, Any]) -> None:
        stmt = self._miner_upsert(name, state)
        with self._tx(write=True) as s:
            s.execute(stmt)

    def _miner_upsert(self, name: str, state: Mapping[str, Any]) -> Any:
        if not isinstance(name, str) or not _MINER_NAME.match(name):
            raise InvalidInput("miner state name must be 1-200 characters", field="name")
        ins = self._insert(MinerStateRow.__table__).values(
            name=name, state=_check_json(dict(state), "state"), updated_at=_now()
        )
        return ins.on_conflict_do_update(
            index_elements=["name"],
            set_={"state": ins.excluded.state, "updated_at": ins.excluded.updated_at},
        )

    # ------------------------------------------------------------------ backfill

    def plan_backfill(
        self,
        backfill_id: str,
        detector_ids: Iterable[str],
        windows: Iterable[tuple[datetime, datetime]],
    ) -> int:
        """Record the windows of a backfill as ``pending`` (idempotent: windows already planned
        keep their status). Returns how many windows were newly planned."""
        if not isinstance(backfill_id, str) or not _BACKFILL_ID.match(backfill_id):
            raise InvalidInput(f"invalid backfill id {backfill_id!r}", field="backfill_id")
        spans = []
        for start, end in windows:
            start, end = utc(start, "windows.start"), utc(end, "windows.end")
            if start >= end:
                raise InvalidInput(f"window start {start} is not before end {end}", field="windows")
            spans.append((start, end))
        ids = list(dict.fromkeys(detector_ids))
        now = _now()
        params = [
            {
                "backfill_id": backfill_id,
                "detector_id": d,
                "window_start": start,
                "window_end": end,
                "status": "pending",
                "attempts": 0,
                "updated_at": now,
            }
            for d in ids
            for start, end in spans
        ]
        if not params:
            return 0
        table = BackfillWindowRow.__table__
        stmt = self._insert(table).on_conflict_do_nothing().returning(table.c.id)
        planned = 0
        with self._tx(write=True) as s:
            for d in ids:
                self._require_id(s, d)
            for start in range(0, len(params), _EVENT_CHUNK):
                # count RETURNING rows: rowcount of a multi-row insert is not reliable everywhere
                planned += len(s.execute(stmt.values(params[start : start + _EVENT_CHUNK])).all())
        return planned

    def next_pending_windows(
        self,
        backfill_id: str,
        *,
        detector_id: str | None = None,
        limit: int = 1000,
        max_attempts: int = 3,
    ) -> list[BackfillWindow]:
        """Windows still to do, chronological per detector: ``pending`` ones, ``running`` ones
        (left by an interrupted run) and ``failed`` ones with fewer than ``max_attempts``.
        A detector's windows after one that used up its attempts are held back: models
        evolve in time order, so nothing may be scored past a gap."""
        later = aliased(BackfillWindowRow)
        exhausted = (
            select(func.min(later.window_start))
            .where(
                later.backfill_id == backfill_id,
                later.detector_id == BackfillWindowRow.detector_id,
                later.status.in_(("failed", "running")),
                later.attempts >= max_attempts,
            )
            .scalar_subquery()
        )
        stmt = select(BackfillWindowRow).where(
            BackfillWindowRow.backfill_id == backfill_id,
            BackfillWindowRow.status != "done",
            (BackfillWindowRow.status == "pending") | (BackfillWindowRow.attempts < max_attempts),
            exhausted.is_(None) | (BackfillWindowRow.window_start < exhausted),
        )
        if detector_id is not None:
            stmt = stmt.where(BackfillWindowRow.detector_id == detector_id)
        stmt = stmt.order_by(BackfillWindowRow.detector_id, BackfillWindowRow.window_start)
        with self._tx() as s:
            return [BackfillWindow.model_validate(r) for r in s.scalars(stmt.limit(_limit(limit)))]

    @staticmethod
    def _window_row(
        s: Session, backfill_id: str, detector_id: str, start: datetime
    ) -> BackfillWindowRow:
        row = s.scalar(
            select(BackfillWindowRow).where(
                BackfillWindowRow.backfill_id == backfill_id,
                BackfillWindowRow.detector_id == detector_id,
                BackfillWindowRow.window_start == start,
            )
        )
        if row is None:
            raise NotFound(
                f"backfill {backfill_id!r} has no window for {detector_id!r} at {start}",
                backfill=backfill_id,
                detector=detector_id,
            )
        return row

    def mark_window(
        self,
        backfill_id: str,
        detector_id: str,
        window_start: datetime,
        status: str,
        error: str | None = None,
    ) -> BackfillWindow:
        """Set a window's status; ``running`` counts an attempt, ``done`` clears the error."""
        if status not in WINDOW_STATUSES:
            raise InvalidInput(
                f"status must be one of {', '.join(WINDOW_STATUSES)}, got {status!r}",
                field="status",
            )
        start = utc(window_start, "window_start")
        with self._tx(write=True) as s:
            row = self._window_row(s, backfill_id, detector_id, start)
            row.status = status
            if status == "running":
                row.attempts += 1
            elif status == "done":
                row.error = None
            elif status == "failed":
                row.error = error or "unknown error"
            row.updated_at = _now()
            s.flush()
            return BackfillWindow.model_validate(row)

    def load_backfill_states(self, backfill_id: str, detector_id: str) -> dict[str, dict[str, Any]]:
        """The models a backfill has built so far for a detector: ``{series_key: {"labels",
        "state"}}`` (empty before its first window)."""
        with self._tx() as s:
            row = s.get(BackfillStateRow, (backfill_id, detector_id))
            return dict(row.states) if row is not None else {}

    def complete_backfill_window(
        self,
        backfill_id: str,
        detector_id: str,
        window_start: datetime,
        *,
        events: Iterable[EventIn | Mapping[str, Any]] = (),
        states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]] | None = None,
        incidents: Iterable[Mapping[str, Any]] = (),
        incident_states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]] | None = None,
    ) -> list[Event]:
        """One transaction: the window's events (idempotent), its incidents (opened, grown or
        resolved, with their events), the backfill's model and incident states (kept apart from
        the live ones) and the window marked ``done``. Returns the events actually inserted,
        each marked with ``backfill_id`` (an anomaly or an incident already found live at the
        same timestamp stays as it was)."""
        values = [{**v, "backfill_id": backfill_id} for v in self._event_values(events)]
        start = utc(window_start, "window_start")
        now = _now()
        with self._tx(write=True) as s:
            window = self._window_row(s, backfill_id, detector_id, start)
            inserted = self._insert_events_in(s, values) if values else []
            incident_events = self._apply_incidents(s, detector_id, list(incidents), backfill_id)
            if incident_events:
                inserted += self._insert_events_in(s, incident_events)
            self._write_incident_states(s, detector_id, backfill_id, incident_states or {})
            if states:
                row = s.get(BackfillStateRow, (backfill_id, detector_id))
                merged = dict(row.states) if row is not None else {}
                for key, (labels, state) in states.items():
                    merged[key] = {
                        "labels": {str(k): str(v) for k, v in labels.items()},
                        "state": _check_json(dict(state), f"states[{key!r}]"),
                    }
                if row is None:
                    s.add(
                        BackfillStateRow(
                            backfill_id=backfill_id,
                            detector_id=detector_id,
                            states=merged,
                            updated_at=now,
                        )
                    )
                else:
                    row.states, row.updated_at = merged, now
            window.status, window.error, window.updated_at = "done", None, now
        return inserted

    def backfill_anomaly_count(self, backfill_id: str) -> int:
        """How many anomalies a backfill stored."""
        stmt = (
            select(func.count())
            .select_from(EventRow)
            .where(EventRow.backfill_id == backfill_id, EventRow.type == EVENT_ANOMALY)
        )
        with self._tx() as s:
            return int(s.scalar(stmt) or 0)

    def log_report_windows(self, source: str) -> set[tuple[datetime, datetime]]:
        """The ``(window_start, window_end)`` of every report stored for ``source``."""
        stmt = select(LogReportRow.window_start, LogReportRow.window_end).where(
            LogReportRow.source == source
        )
        with self._tx() as s:
            return {
                (utc(a, "window_start"), utc(b, "window_end")) for a, b in s.execute(stmt).all()
            }

    def commit_log_window(
        self,
        source: str,
        window_start: datetime,
        window_end: datetime,
        summary: Mapping[str, Any],
        templates: Sequence[Any] | None,
        *,
        miner_state: Mapping[str, Any] | None = None,
        events: Iterable[EventIn | Mapping[str, Any]] = (),
        backfill_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> tuple[LogReportRecord, list[Event]]:
        """One transaction: a window's report, its source's miner state and its events
        (marked with ``backfill_id``). Idempotent: when ``source`` already has a report for
        exactly this window, that report is returned and nothing is written."""
        row = self._log_report_row(
            source, window_start, window_end, summary, templates, flow_run_id
        )
        miner = None if miner_state is None else self._miner_upsert(source, miner_state)
        values = [{**v, "backfill_id": backfill_id} for v in self._event_values(events)]
        with self._tx(write=True) as s:
            existing = s.scalars(
                select(LogReportRow)
                .where(
                    LogReportRow.source == row.source,
                    LogReportRow.window_start == row.window_start,
                    LogReportRow.window_end == row.window_end,
                )
                .limit(1)
            ).first()
            if existing is not None:
                return LogReportRecord.model_validate(existing), []
            s.add(row)
            s.flush()
            report = LogReportRecord.model_validate(row)
            for v in values:
                v["payload"] = {**v["payload"], "report_id": report.id}
            inserted = self._insert_events_in(s, values) if values else []
            if miner is not None:
                s.execute(miner)
        return report, inserted

    def backfill_progress(self, backfill_id: str) -> BackfillProgress:
        stmt = (
            select(BackfillWindowRow.status, func.count())
            .where(BackfillWindowRow.backfill_id == backfill_id)
            .group_by(BackfillWindowRow.status)
        )
        with self._tx() as s:
            counts = dict(s.execute(stmt).all())
        if not counts:
            raise NotFound(f"backfill {backfill_id!r} not found", backfill=backfill_id)
        return BackfillProgress(
            total=sum(counts.values()),
            done=counts.get("done", 0),
            failed=counts.get("failed", 0),
            pending=counts.get("pending", 0),
            running=counts.get("running", 0),
        )

    # ------------------------------------------------------------------ incident triage

    def start_triage(
        self, incident_id: int, *, source: str, flow_run_id: str | None
    ) -> tuple[IncidentTriage, bool]:
        """Mark an incident's triage ``running`` for this flow run. Returns ``(triage, started)``:
        a triage already ``done`` is returned as it is (``started`` False), so a second run for
        the same incident changes nothing; a ``failed`` or ``running`` one (its run died) is
        taken over."""
        with self._tx(write=True) as s:
            incident = s.get(IncidentRow, incident_id)
            if incident is None:
                raise NotFound(f"incident {incident_id!r} not found", incident=incident_id)
            row = s.get(IncidentTriageRow, incident_id)
            now = _now()
            if row is not None and row.status == "done":
                return IncidentTriage.model_validate(row), False
            if row is None:
                row = IncidentTriageRow(
                    incident_id=incident_id, detector_id=incident.detector_id, created_at=now
                )
                s.add(row)
            row.status, row.source, row.flow_run_id = "running", source, flow_run_id
            row.report = row.summary = row.error = None
            row.updated_at = now
            s.flush()
            return IncidentTriage.model_validate(row), True

    def finish_triage(
        self,
        incident_id: int,
        *,
        report: Mapping[str, Any] | None = None,
        error: str | None = None,
        flow_run_id: str | None = None,
    ) -> IncidentTriage:
        """Store the triage's ``report`` (status ``done``) or its ``error`` (``failed``)."""
        if (report is None) == (error is None):
            raise InvalidInput("give exactly one of report or error", field="report")
        with self._tx(write=True) as s:
            row = s.get(IncidentTriageRow, incident_id)
            if row is None:
                raise NotFound(f"no triage of incident {incident_id!r}", incident=incident_id)
            row.status = "done" if report is not None else "failed"
            row.report = None if report is None else _check_json(dict(report), "report")
            row.summary = None if report is None else str(report.get("summary") or "")
            row.error = None if error is None else error[:4000]
            if flow_run_id is not None:
                row.flow_run_id = flow_run_id
            row.updated_at = _now()
            s.flush()
            return IncidentTriage.model_validate(row)

    def get_triage(self, incident_id: int) -> IncidentTriage:
        with self._tx() as s:
            row = s.get(IncidentTriageRow, incident_id)
            if row is None:
                raise NotFound(f"incident {incident_id!r} has no triage", incident=incident_id)
            return IncidentTriage.model_validate(row)

    def triage_summaries(self, incident_ids: Iterable[int]) -> dict[int, str]:
        """The summary of each finished triage among these incidents."""
        ids = list(incident_ids)
        if not ids:
            return {}
        stmt = select(IncidentTriageRow.incident_id, IncidentTriageRow.summary).where(
            IncidentTriageRow.incident_id.in_(ids), IncidentTriageRow.status == "done"
        )
        with self._tx() as s:
            return {int(i): summary or "" for i, summary in s.execute(stmt).all()}
