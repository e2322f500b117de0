"""Serve every deployment from one process (the local default; ``aiops serve``).

``analyze-logs/default`` carries the incident triage automation (``flows.logs.triage_trigger``):
serving it (re)creates that automation on the Prefect server, replacing the one made before.

The same set is declared in ``prefect.yaml`` for ``prefect deploy`` with a process work pool.
``serve`` pauses its deployments on shutdown unless told not to; we keep them active so a
restart does not silently stop scheduled detection.

Every deployment has its own concurrency limit (detection 1, on-demand log analysis
``AIOPS_LOG_RUN_LIMIT``, backfill ``AIOPS_BACKFILL_RUN_LIMIT``, each log job 1) and the runner's
limit is their sum: a run over its deployment's limit waits on the Prefect server without
holding a runner slot, so hung or slow log analyses can never keep a detection tick from
starting. Flow runs are started without the API's secrets in their environment.
"""

from __future__ import annotations

import logging
import os
import sys

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from aiops.config import SERVICE_ONLY_SECRETS, Settings, load_settings
from aiops.errors import ConfigError
from aiops.up import prepare_store

log = logging.getLogger(__name__)

DEPLOYMENT = "default"


def build_deployments(settings: Settings) -> list[RunnerDeployment]:
    """The deployments and their schedules. The ``default`` ones match prefect.yaml; each
    configured log job adds a scheduled ``analyze-logs/job-<name>``."""
    from flows.backfill import backfill
    from flows.logs import analyze_logs, triage_trigger
    from flows.metrics import detect_metrics

    deployments = [
        detect_metrics.to_deployment(
            DEPLOYMENT,
            interval=settings.tick_seconds,
            description="Run the detectors that are due: collect, transform, detect, publish.",
            tags=["aiops", "metrics"],
            concurrency_limit=1,
        ),
    ]
    deployments.append(
        analyze_logs.to_deployment(
            DEPLOYMENT,
            description="Batch log analysis over a Loki selector, a file or posted lines (on "
            "demand), and the triage of incidents on detectors linked to logs (its automation).",
            tags=["aiops", "logs"],
            concurrency_limit=settings.log_run_limit,
            triggers=[triage_trigger()],
        )
    )
    deployments.append(
        backfill.to_deployment(
            DEPLOYMENT,
            description="Run detectors (and log jobs) over a historical range, idempotently and "
            "resumably.",
            tags=["aiops", "backfill"],
            concurrency_limit=settings.backfill_run_limit,
        )
    )
    for job in settings.log_jobs:
        deployments.append(
            analyze_logs.to_deployment(
                f"job-{job.name}",
                interval=job.interval_seconds,
                parameters={"job": job.name},
                description=f"Scheduled log analysis job {job.name!r} from the config file.",
                tags=["aiops", "logs", "job"],
                concurrency_limit=1,
            )
        )
    return deployments


def runner_limit(deployments: list[RunnerDeployment]) -> int:
    """Flow runs the runner may run at once: the sum of the deployments' own limits, so each
    deployment always finds a free slot for the runs its limit admits."""
    return sum(_limit_of(d) for d in deployments)


def _limit_of(deployment: RunnerDeployment) -> int:
    limit = deployment.concurrency_limit
    value = getattr(limit, "limit", limit)
    if not isinstance(value, int):
        raise ConfigError(
            f"deployment {deployment.name!r} has no concurrency limit", setting="deployments"
        )
    return value


def drop_service_secrets() -> list[str]:
    """Remove the API's secrets from this process' environment, which the runner hands on to
    every flow run it starts; returns the names removed."""
    names = SERVICE_ONLY_SECRETS
    if not os.environ.get(
        "PREFECT_API_URL"
    ):  # an in-process (ephemeral) server needs its own settings
        names = tuple(n for n in names if not n.startswith("PREFECT_SERVER_"))
    removed = [name for name in names if os.environ.pop(name, None) is not None]
    for name in removed:
        log.info("%s is not passed on to flow runs", name)
    return removed


def main() -> int:
    try:
        settings = load_settings()
        prepare_store(settings).close()
    except ConfigError as exc:
        print(f"aiops serve: configuration error: {exc.message}", file=sys.stderr)
        return 2
    drop_service_secrets()
    deployments = build_deployments(settings)
    serve(*deployments, pause_on_shutdown=False, limit=runner_limit(deployments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
