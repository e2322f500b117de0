"""Batched detection and claims: what a detect-metrics run reads and writes for a batch of
detectors at once, and how several runs share the detectors.

Claims (table ``detector_claim``): a run claims due detectors in batches
(:meth:`BatchStore.claim_detectors`) with a lease it renews while it lives
(:meth:`BatchStore.renew_claims`). On PostgreSQL the claim is ``SELECT ... FOR UPDATE SKIP
LOCKED``, so concurrent runs never wait on each other nor take the same row; on SQLite the
write transaction (``BEGIN IMMEDIATE``) serialises them. A claim is taken only while the
detector is still due (a run that just committed it made it not due), and a commit
(:meth:`BatchStore.commit_batch`) lands only while its run still owns the claim and the
checkpoint is the one the run started from: a run whose lease lapsed (killed, frozen) can
never write a window that another run has taken over. The commit of a detector's last piece
releases its claim in the same transaction; a run killed mid-tick leaves its claims to lapse
after the lease, and the next tick takes its detectors up from their checkpoints.

Mixed into :class:`aiops.store.Store`; everything here uses its transactions.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update

from aiops.store.models import Event, SeriesState, utc
from aiops.store.schema import (
    CheckpointRow,
    CollectorStatusRow,
    DetectorClaimRow,
    DetectorRow,
    IncidentStateRow,
    ModelStateRow,
)

if TYPE_CHECKING:  # pragma: no cover
    from aiops.store.repo import Store

__all__ = ["BatchStore", "BatchInputs", "BatchCommit", "BatchResult", "Claim", "ClaimResult"]

logger = logging.getLogger(__name__)

_IN_CHUNK = 900  # ids per IN (...) list: well under SQLite's bound on parameters


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


@dataclass(frozen=True)
class Claim:
    """Who holds a detector: the run (``owner``), its host and pid, since and until when."""

    detector_id: str
    owner: str | None
    holder: str | None
    claimed_at: datetime | None
    expires_at: datetime | None


@dataclass
class ClaimResult:
    """``claimed``: detector ids now held by the caller (ascending); ``not_due``: ids it looked
    at that are no longer due, with why (another run processed them since the tick began);
    ``taken_over``: claimed ids whose previous holder's lease had lapsed -> that claim."""

    claimed: list[str] = field(default_factory=list)
    not_due: dict[str, str] = field(default_factory=dict)
    taken_over: dict[str, Claim] = field(default_factory=dict)

    @property
    def considered(self) -> list[str]:
        return [*self.claimed, *self.not_due]


@dataclass
class BatchInputs:
    """What a detector's run starts from: checkpoint, model states, live incident states."""

    checkpoint: datetime | None
    states: dict[str, SeriesState]
    incident_states: dict[str, dict[str, Any]]


@dataclass
class BatchCommit:
    """One detector's piece, as :meth:`Store.commit_detection` takes it, plus ``expected``:
    the checkpoint the piece continues from (the commit is refused if it moved)."""

    detector_id: str
    expected: datetime | None
    checkpoint: datetime
    events: list[Mapping[str, Any]] = field(default_factory=list)
    states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]] = field(default_factory=dict)
    trained_at: datetime | None = None
    collection: Mapping[str, Any] | None = None
    latest: list[Mapping[str, Any]] = field(default_factory=list)
    incidents: list[Mapping[str, Any]] = field(default_factory=list)
    incident_states: Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]] = field(
        default_factory=dict
    )


@dataclass
class BatchResult:
    """``inserted``: per committed detector, the events actually inserted (ascending id);
    ``refused``: detectors whose piece was not written, with why (claim lost, window moved)."""

    inserted: dict[str, list[Event]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


class BatchStore:
    """Batch reads and writes of detect-metrics, and the claims (mixed into ``Store``)."""

    # ------------------------------------------------------------------ claims

    def claim_detectors(
        self: Store,
        detector_ids: Sequence[str],
        owner: str,
        *,
        now: datetime,
        lease_seconds: float,
        limit: int,
        holder: str | None = None,
    ) -> ClaimResult:
        """Claim up to ``limit`` of ``detector_ids`` that are free (or whose lease lapsed, or
        already ours) and still due at ``now``, for ``lease_seconds`` of wall-clock time."""
        now = utc(now, "now")
        wall = _now()
        result = ClaimResult()
        ids = sorted(set(detector_ids))
        if not ids or limit < 1:
            return result
        table = DetectorClaimRow.__table__
        with self._tx(write=True) as s:
            for chunk in _chunks(ids):
                s.execute(
                    self._insert(table)
                    .from_select(
                        ["detector_id"], select(DetectorRow.id).where(DetectorRow.id.in_(chunk))
                    )
                    .on_conflict_do_nothing()
                )
            candidates: list[DetectorClaimRow] = []
            for chunk in _chunks(ids):
                if len(candidates) >= limit:
                    break
                stmt = (
                    select(DetectorClaimRow)
                    .where(
                        DetectorClaimRow.detector_id.in_(chunk),
                        or_(
                            DetectorClaimRow.owner.is_(None),
                            DetectorClaimRow.owner == owner,
                            DetectorClaimRow.expires_at <= wall,
                        ),
                    )
                    .order_by(DetectorClaimRow.detector_id)
                    .limit(limit - len(candidates))
                )
                if self._dialect == "postgresql":
                    stmt = stmt.with_for_update(skip_locked=True)
                candidates.extend(s.scalars(stmt))
            if not candidates:
                return result
            picked = [c.detector_id for c in candidates]
            info = {
                row.id: row
                for row in s.execute(
                    select(
                        DetectorRow.id,
                        DetectorRow.status,
                        DetectorRow.interval_seconds,
                        CollectorStatusRow.last_run_at,
                    )
                    .outerjoin(CollectorStatusRow, CollectorStatusRow.detector_id == DetectorRow.id)
                    .where(DetectorRow.id.in_(picked))
                )
            }
            for claim in candidates:
                det = info.get(claim.detector_id)
                if det is None or det.status == "paused":
                    result.not_due[claim.detector_id] = "paused" if det is not None else "deleted"
                    continue
                last = det.last_run_at
                if last is not None and last + timedelta(seconds=det.interval_seconds) > now:
                    result.not_due[claim.detector_id] = (
                        f"already run at {last.isoformat()} (by another run; next at "
                        f"{(last + timedelta(seconds=det.interval_seconds)).isoformat()})"
                    )
                    continue
                if claim.owner is not None and claim.owner != owner:
                    result.taken_over[claim.detector_id] = Claim(
                        claim.detector_id,
                        claim.owner,
                        claim.holder,
                        claim.claimed_at,
                        claim.expires_at,
                    )
                claim.owner, claim.holder = owner, holder
                claim.claimed_at, claim.expires_at = wall, wall + timedelta(seconds=lease_seconds)
                result.claimed.append(claim.detector_id)
        for det_id, old in result.taken_over.items():
            logger.warning(
                "detector %s: the claim of run %s (%s) lapsed at %s: taken over by run %s",
                det_id,
                old.owner,
                old.holder or "?",
                old.expires_at.isoformat() if old.expires_at else "?",
                owner,
                extra={"detector": det_id, "run_id": owner},
            )
        return result

    def renew_claims(self: Store, owner: str, lease_seconds: float) -> int:
        """Extend every claim ``owner`` holds to ``lease_seconds`` from now; returns how many."""
        until = _now() + timedelta(seconds=lease_seconds)
        with self._tx(write=True) as s:
            return s.execute(
                update(DetectorClaimRow)
                .where(DetectorClaimRow.owner == owner)
                .values(expires_at=until)
            ).rowcount

    def release_claims(self: Store, owner: str, detector_ids: Collection[str] | None = None) -> int:
        """Give up ``owner``'s claims (all of them, or those of ``detector_ids``)."""
        with self._tx(write=True) as s:
            return self._release_in(s, owner, detector_ids)

    def _release_in(self: Store, s: Any, owner: str, detector_ids: Collection[str] | None) -> int:
        stmt = update(DetectorClaimRow).where(DetectorClaimRow.owner == owner)
        if detector_ids is None:
            return s.execute(stmt.values(owner=None, expires_at=None)).rowcount
        ids = sorted(detector_ids)
        return sum(
            s.execute(
                stmt.where(DetectorClaimRow.detector_id.in_(chunk)).values(
                    owner=None, expires_at=None
                )
            ).rowcount
            for chunk in _chunks(ids)
        )

    def claims(
        self: Store, detector_ids: Sequence[str] | None = None, *, live: bool = True
    ) -> dict[str, Claim]:
        """Current claims (``live``: only those whose lease has not lapsed)."""
        stmt = select(DetectorClaimRow).where(DetectorClaimRow.owner.is_not(None))
        if live:
            stmt = stmt.where(DetectorClaimRow.expires_at > _now())
        found: dict[str, Claim] = {}
        with self._tx() as s:
            chunks = [None] if detector_ids is None else list(_chunks(sorted(set(detector_ids))))
            for chunk in chunks:
                q = stmt if chunk is None else stmt.where(DetectorClaimRow.detector_id.in_(chunk))
                for c in s.scalars(q):
                    found[c.detector_id] = Claim(
                        c.detector_id, c.owner, c.holder, c.claimed_at, c.expires_at
                    )
        return found

    # ------------------------------------------------------------------ batch reads

    def load_batch(self: Store, detector_ids: Sequence[str]) -> dict[str, BatchInputs]:
        """Checkpoint, model states and live incident states of several detectors, in one
        read transaction."""
        ids = sorted(set(detector_ids))
        out = {i: BatchInputs(None, {}, {}) for i in ids}
        with self._tx() as s:
            for chunk in _chunks(ids):
                for det_id, ts in s.execute(
                    select(CheckpointRow.detector_id, CheckpointRow.ts).where(
                        CheckpointRow.detector_id.in_(chunk)
                    )
                ):
                    out[det_id].checkpoint = ts
                for r in s.scalars(
                    select(ModelStateRow).where(ModelStateRow.detector_id.in_(chunk))
                ):
                    out[r.detector_id].states[r.series_key] = SeriesState(
                        r.labels, r.state, r.trained_at
                    )
                for det_id, key, state in s.execute(
                    select(
                        IncidentStateRow.detector_id,
                        IncidentStateRow.series_key,
                        IncidentStateRow.state,
                    ).where(IncidentStateRow.detector_id.in_(chunk), IncidentStateRow.scope == "")
                ):
                    out[det_id].incident_states[key] = dict(state)
        return out

    # ------------------------------------------------------------------ batch writes

    def commit_batch(
        self: Store, owner: str, commits: Sequence[BatchCommit], *, release: Collection[str] = ()
    ) -> BatchResult:
        """Every detector's piece of a batch in ONE transaction (events, incidents and their
        events, model and incident states, checkpoints, collector statuses, latest scores),
        for the detectors ``owner`` still holds whose checkpoint is still ``expected``; the
        claims of ``release`` (finished detectors) are released in the same transaction."""
        result = BatchResult()
        if not commits:
            return result
        ids = [c.detector_id for c in commits]
        prepared = []
        for c in commits:
            prepared.append(
                (
                    c,
                    self._event_values(c.events),
                    self._state_params(c.detector_id, c.states or {}, c.trained_at),
                    utc(c.checkpoint, "checkpoint"),
                )
            )
        with self._tx(write=True) as s:
            owned: set[str] = set()
            current: dict[str, datetime] = {}
            for chunk in _chunks(sorted(ids)):
                stmt = select(DetectorClaimRow.detector_id, DetectorClaimRow.owner).where(
                    DetectorClaimRow.detector_id.in_(chunk)
                )
                if self._dialect == "postgresql":
                    stmt = stmt.with_for_update()
                claims = dict(s.execute(stmt).all())
                owned |= {i for i, o in claims.items() if o == owner}
                for i in chunk:
                    if i not in owned:
                        result.refused[i] = (
                            (
                                f"claim lost: now held by run {claims[i]}"
                                if claims.get(i)
                                else "claim lost (lease lapsed)"
                            )
                            if i in claims
                            else "detector deleted"
                        )
                current.update(
                    s.execute(
                        select(CheckpointRow.detector_id, CheckpointRow.ts).where(
                            CheckpointRow.detector_id.in_(chunk)
                        )
                    ).all()
                )
            accepted = []
            for c, values, params, ts in prepared:
                if c.detector_id in result.refused:
                    continue
                if current.get(c.detector_id) != c.expected:
                    result.refused[c.detector_id] = (
                        f"window already committed: checkpoint is {current.get(c.detector_id)}, "
                        f"this piece continues from {c.expected}"
                    )
                    continue
                accepted.append((c, values, params, ts))
            all_values = [v for _, values, _, _ in accepted for v in values]
            inserted = self._insert_events_in(s, all_values) if all_values else []
            for c, _, _, _ in accepted:
                result.inserted[c.detector_id] = []
            for e in inserted:
                result.inserted[e.detector_id].append(e)
            incident_events: list[dict[str, Any]] = []
            for c, _, _, _ in accepted:
                if c.incidents:
                    incident_events += self._apply_incidents(
                        s, c.detector_id, list(c.incidents), None
                    )
            if incident_events:
                for e in self._insert_events_in(s, incident_events):
                    result.inserted[e.detector_id].append(e)
            state_rows = [p for _, _, params, _ in accepted for p in params]
            if state_rows:
                self._write_states(s, state_rows)
            self._write_incident_states_many(
                s, [(c.detector_id, c.incident_states) for c, *_ in accepted]
            )
            self._write_checkpoints(s, [(c.detector_id, ts) for c, _, _, ts in accepted])
            self._write_statuses_ok(
                s, [(c.detector_id, c.collection) for c, *_ in accepted if c.collection is not None]
            )
            self._write_scores_many(s, [(c.detector_id, c.latest) for c, *_ in accepted])
            done = [c.detector_id for c, *_ in accepted if c.detector_id in set(release)]
            if done:
                self._release_in(s, owner, done)
        for events in result.inserted.values():
            events.sort(key=lambda e: e.id)
        for det_id, why in result.refused.items():
            logger.warning(
                "detector %s: piece not committed by run %s: %s",
                det_id,
                owner,
                why,
                extra={"detector": det_id, "run_id": owner},
            )
        return result

    def record_batch_outcomes(
        self: Store,
        owner: str,
        *,
        failed: Mapping[str, str] = {},  # noqa: B006 - read only
        skipped: Mapping[str, str] = {},  # noqa: B006 - read only
        at: datetime | None = None,
    ) -> None:
        """Collector status of detectors that failed (error) or were skipped (reason), in one
        transaction, and release ``owner``'s claims on them. A failure keeps the checkpoint,
        so the next tick retries the same window."""
        if not failed and not skipped:
            return
        at = _now() if at is None else utc(at, "at")
        table = CollectorStatusRow.__table__
        base = {"samples": 0, "series": 0, "buffered": 0, "dropped": 0, "updated_at": at}
        with self._tx(write=True) as s:
            known = set()
            for chunk in _chunks(sorted({*failed, *skipped})):
                known |= set(s.scalars(select(DetectorRow.id).where(DetectorRow.id.in_(chunk))))
            if failed:
                rows = [
                    {
                        **base,
                        "detector_id": i,
                        "state": "failed",
                        "last_run_at": at,
                        "last_error": msg or "unknown error",
                        "last_error_at": at,
                        "consecutive_failures": 1,
                        "skip_reason": None,
                    }
                    for i, msg in failed.items()
                    if i in known
                ]
                if rows:
                    ins = self._insert(table)
                    s.execute(
                        ins.on_conflict_do_update(
                            index_elements=["detector_id"],
                            set_={
                                **{
                                    k: ins.excluded[k]
                                    for k in (
                                        "state",
                                        "last_run_at",
                                        "last_error",
                                        "last_error_at",
                                        "samples",
                                        "series",
                                        "buffered",
                                        "dropped",
                                        "updated_at",
                                    )
                                },
                                "skip_reason": None,
                                "consecutive_failures": table.c.consecutive_failures + 1,
                            },
                        ),
                        rows,
                    )
            if skipped:
                rows = [
                    {
                        **base,
                        "detector_id": i,
                        "state": "skipped",
                        "skip_reason": why,
                        "skipped_at": at,
                        "consecutive_failures": 0,
                    }
                    for i, why in skipped.items()
                    if i in known
                ]
                if rows:
                    ins = self._insert(table)
                    s.execute(
                        ins.on_conflict_do_update(
                            index_elements=["detector_id"],
                            set_={
                                k: ins.excluded[k]
                                for k in ("state", "skip_reason", "skipped_at", "updated_at")
                            },
                        ),
                        rows,
                    )
            self._release_in(s, owner, [*failed, *skipped])

    # ------------------------------------------------------------------ helpers

    def _write_scores_many(
        self: Store, s: Any, items: list[tuple[str, Iterable[Mapping[str, Any]]]]
    ) -> None:
        from aiops.store.repo import _finite_or_none
        from aiops.store.schema import SeriesScoreRow

        now = _now()
        rows = [
            {
                "detector_id": det_id,
                "series_key": item["series_key"],
                "labels": {str(k): str(v) for k, v in item["labels"].items()},
                "ts": utc(item["ts"], "latest.ts"),
                "value": _finite_or_none(item.get("value")),
                "score": _finite_or_none(item.get("score")),
                "updated_at": now,
            }
            for det_id, latest in items
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

    def _write_checkpoints(self: Store, s: Any, items: list[tuple[str, datetime]]) -> None:
        if not items:
            return
        table = CheckpointRow.__table__
        now = _now()
        ins = self._insert(table)
        s.execute(
            ins.on_conflict_do_update(
                index_elements=["detector_id"],
                set_={"ts": ins.excluded.ts, "updated_at": ins.excluded.updated_at},
                where=table.c.ts < ins.excluded.ts,
            ),
            [{"detector_id": i, "ts": ts, "updated_at": now} for i, ts in items],
        )

    def _write_statuses_ok(self: Store, s: Any, items: list[tuple[str, Mapping[str, Any]]]) -> None:
        from aiops.errors import InvalidInput

        if not items:
            return
        now = _now()
        rows = []
        for det_id, c in items:
            at = utc(c.get("at") or now, "at")
            counts = {k: c.get(k, 0) for k in ("samples", "series", "buffered", "dropped")}
            for name, value in counts.items():
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise InvalidInput(
                        f"{name} must be a non-negative integer, got {value!r}", field=name
                    )
            warning = c.get("warning") or None
            rows.append(
                {
                    "detector_id": det_id,
                    "state": "ok",
                    "last_run_at": at,
                    "last_success_at": at,
                    "consecutive_failures": 0,
                    "skip_reason": None,
                    "updated_at": at,
                    "last_warning": warning,
                    "last_warning_at": at if warning else None,
                    **counts,
                }
            )
        table = CollectorStatusRow.__table__
        ins = self._insert(table)
        keep = (
            "state",
            "last_run_at",
            "last_success_at",
            "consecutive_failures",
            "skip_reason",
            "updated_at",
            "samples",
            "series",
            "buffered",
            "dropped",
        )
        s.execute(
            ins.on_conflict_do_update(
                index_elements=["detector_id"],
                set_={
                    **{k: ins.excluded[k] for k in keep},
                    "last_warning": func.coalesce(ins.excluded.last_warning, table.c.last_warning),
                    "last_warning_at": func.coalesce(
                        ins.excluded.last_warning_at, table.c.last_warning_at
                    ),
                },
            ),
            rows,
        )

    def _write_incident_states_many(
        self: Store,
        s: Any,
        items: list[tuple[str, Mapping[str, tuple[Mapping[str, str], Mapping[str, Any]]]]],
    ) -> None:
        from aiops.store.repo import _check_json

        now = _now()
        rows = [
            {
                "detector_id": det_id,
                "scope": "",
                "series_key": key,
                "labels": {str(k): str(v) for k, v in labels.items()},
                "state": _check_json(dict(state), f"incident_states[{key!r}]"),
                "updated_at": now,
            }
            for det_id, states in items
            for key, (labels, state) in (states or {}).items()
        ]
        if not rows:
            return
        ins = self._insert(IncidentStateRow.__table__)
        s.execute(
            ins.on_conflict_do_update(
                index_elements=["detector_id", "scope", "series_key"],
                set_={k: ins.excluded[k] for k in ("labels", "state", "updated_at")},
            ),
            rows,
        )
