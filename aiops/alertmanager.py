"""Incidents delivered to Alertmanager (API v2, ``POST /api/v2/alerts``).

One alert per live incident, named ``AiopsIncident``, with the labels ``detector``, ``series``
(the series key), ``severity`` and ``incident`` (its id): firing (``startsAt`` the onset) while
it is open, resolved (``endsAt`` the resolution) once it resolves. Annotations: a summary, the
incident's ``url`` on the page, and the ``triage`` summary once its log triage is done.

:class:`AlertForwarder` keeps Alertmanager in step with the store, the way Prometheus does with
its rules: every cycle it posts every open incident as firing (valid for four cycles, so alerts
of a stopped service expire by themselves), and each incident it saw firing and that is no
longer open as resolved. A failed post changes nothing in what it remembers, so the next
cycle sends all of it again; Alertmanager identifies an alert by its labels, so sending one
again is never a duplicate. A severity that grows while the incident is open changes the label
set: the alert at the old severity is sent resolved with the new one. After a restart the
first cycle also sends the incidents resolved in the last four cycles.

Pure apart from the HTTP calls through an ``httpx.AsyncClient`` the caller owns; the one
retry policy (:class:`aiops.sources.http.RetryPolicy`) retries connection errors, timeouts,
429 and 5xx; another 4xx is not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from aiops.errors import BadResponse, DatasourceTimeout, DatasourceUnavailable
from aiops.sources.http import RetryPolicy, _Transient
from aiops.store.models import Incident

__all__ = ["ALERTNAME", "AlertForwarder", "AlertmanagerClient", "incident_alert", "incident_url"]

log = logging.getLogger(__name__)

ALERTNAME = "AiopsIncident"
VALID_CYCLES = 4  # a firing alert is valid this many cycles unless sent again


def incident_url(base_url: str, incident_id: int) -> str:
    """The incident's view on the page."""
    return f"{base_url.rstrip('/')}/#/incidents/{incident_id}"


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def incident_alert(
    incident: Incident,
    *,
    base_url: str,
    now: datetime,
    valid_for: timedelta,
    triage: str | None = None,
) -> dict[str, Any]:
    """The Alertmanager alert of one incident (firing while open, resolved once resolved)."""
    url = incident_url(base_url, incident.id)
    series = incident.series_key or "(no labels)"
    annotations = {
        "summary": f"{incident.detector_id}: incident {incident.id} on {series} "
        f"(peak score {incident.peak_score if incident.peak_score is not None else 'n/a'}, "
        f"{incident.points} anomalous points)",
        "url": url,
    }
    if triage:
        annotations["triage"] = triage
    ends = incident.resolved_at if incident.resolved_at is not None else now + valid_for
    return {
        "labels": {
            "alertname": ALERTNAME,
            "detector": incident.detector_id,
            "series": series,
            "severity": incident.severity,
            "incident": str(incident.id),
        },
        "annotations": annotations,
        "startsAt": _iso(incident.opened_at),
        "endsAt": _iso(ends),
        "generatorURL": url,
    }


class AlertmanagerClient:
    """Posts alerts to every URL (an Alertmanager HA cluster wants each alert on each peer)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: Sequence[str],
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not urls:
            raise ValueError("no Alertmanager URL")
        self.http = http
        self.urls = tuple(u.rstrip("/") for u in urls)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout

    async def post(self, alerts: list[dict[str, Any]]) -> None:
        """Post to every URL; raises the first URL's failure after every URL was tried."""
        failures = []
        for url in self.urls:
            try:
                await self._post_one(url, alerts)
            except (DatasourceUnavailable, DatasourceTimeout, BadResponse) as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    async def _post_one(self, url: str, alerts: list[dict[str, Any]]) -> None:
        endpoint = f"{url}/api/v2/alerts"
        try:
            async for attempt in self.retry.retrying():
                with attempt:
                    await self._attempt(endpoint, url, alerts)
        except _Transient as exc:
            raise exc.last from None

    async def _attempt(self, endpoint: str, url: str, alerts: list[dict[str, Any]]) -> None:
        detail = {"datasource": "alertmanager", "url": url}
        try:
            response = await self.http.post(endpoint, json=alerts, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise _Transient(
                DatasourceTimeout(f"Alertmanager at {url} did not answer in time: {exc}", **detail)
            ) from exc
        except httpx.TransportError as exc:
            raise _Transient(
                DatasourceUnavailable(f"Alertmanager at {url} is unreachable: {exc}", **detail)
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(
                DatasourceUnavailable(
                    f"Alertmanager at {url} answered {response.status_code}: {response.text[:500]}",
                    **detail,
                )
            )
        if response.status_code >= 300:
            raise BadResponse(
                f"Alertmanager at {url} refused the alerts ({response.status_code}): "
                f"{response.text[:500]}",
                **detail,
            )


class AlertForwarder:
    """Keeps Alertmanager in step with the store's live incidents (see the module docstring).

    ``db(fn, *args, **kwargs)`` calls a sync store method (the API's worker-thread helper)."""

    def __init__(
        self,
        store: Any,
        client: AlertmanagerClient,
        *,
        base_url: str,
        interval: float,
        db: Callable[..., Awaitable[Any]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.client, self.base_url, self.interval = store, client, base_url, interval
        self.db, self.clock = db, clock
        self.firing: dict[
            int, dict[str, str]
        ] = {}  # incidents last delivered as firing, with their labels
        self.started = False
        self.sent = 0
        self.failures = 0
        self.last_error: str | None = None

    @property
    def valid_for(self) -> timedelta:
        return timedelta(seconds=VALID_CYCLES * self.interval)

    async def cycle(self) -> int:
        """One delivery; returns how many alerts were posted. Raises when the post failed
        (nothing is forgotten: the next cycle sends it again)."""
        now = self.clock()
        open_incidents = await self.db(
            self.store.list_incidents, None, "open", None, None, None, 10_000, source="live"
        )
        open_ids = {i.id for i in open_incidents}
        resolved = [
            await self.db(self.store.get_incident, i) for i in sorted(set(self.firing) - open_ids)
        ]
        if not self.started:  # after a restart: what resolved while we were away
            since = now - self.valid_for
            recent = await self.db(
                self.store.list_incidents,
                None,
                "resolved",
                since,
                None,
                None,
                10_000,
                source="live",
            )
            known = {i.id for i in resolved}
            resolved += [i for i in recent if i.id not in known]
        incidents = [*open_incidents, *resolved]
        if not incidents:
            self.started = True
            return 0
        triage = await self.db(self.store.triage_summaries, [i.id for i in incidents])
        alerts = [
            incident_alert(
                i,
                base_url=self.base_url,
                now=now,
                valid_for=self.valid_for,
                triage=triage.get(i.id),
            )
            for i in incidents
        ]
        for alert in alerts[
            : len(open_incidents)
        ]:  # a severity that changed: a new label set, so the old one resolves
            before = self.firing.get(int(alert["labels"]["incident"]))
            if before is not None and before != alert["labels"]:
                alerts.append({**alert, "labels": before, "endsAt": _iso(now)})
        try:
            await self.client.post(alerts)
        except Exception as exc:
            self.failures += 1
            self.last_error = str(exc)
            raise
        self.firing = {
            int(a["labels"]["incident"]): a["labels"] for a in alerts[: len(open_incidents)]
        }
        self.started = True
        self.sent += len(alerts)
        log.debug("alertmanager: %d firing, %d resolved", len(open_incidents), len(resolved))
        return len(alerts)

    async def run(self, sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Cycle every ``interval`` until cancelled; a failed cycle is logged and retried."""
        import anyio

        pause = sleep or anyio.sleep
        while True:
            try:
                await self.cycle()
            except Exception as exc:
                log.warning(
                    "alertmanager delivery failed (retried in %.0f s): %s", self.interval, exc
                )
            await pause(self.interval)
