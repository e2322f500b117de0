"""The persistent store: detectors, model state, checkpoints, events, reports.

::

    from aiops.store import Store

    store = Store.open(Store.default_url("data"))   # runs migrations to head
    store.create_detector({"id": "api-errors", "kind": "zscore", "datasource": {...}})

Everything SQL lives in :mod:`aiops.store.repo`; models returned are in
:mod:`aiops.store.models`; the detectors file is read by :mod:`aiops.store.detectors_file`.
"""

from aiops.store.batch import BatchCommit, BatchInputs, BatchResult, Claim, ClaimResult
from aiops.store.detectors_file import apply_detectors_file, load_detectors_file
from aiops.store.health import read_datasource_health, record_datasource_health
from aiops.store.models import (
    EVENT_ANOMALY,
    EVENT_INCIDENT_OPENED,
    EVENT_INCIDENT_RESOLVED,
    EVENT_LOG_NEW_TEMPLATE,
    INCIDENT_EVENTS,
    BackfillProgress,
    BackfillWindow,
    CollectorStatus,
    DatasourceSpec,
    Detector,
    DetectorRecord,
    DetectorDatasource,
    DetectorSpec,
    DueDetectors,
    Event,
    EventIn,
    Incident,
    IncidentTriage,
    LogReport,
    LogReportRecord,
    ModelStateInfo,
    SeriesScore,
    SeriesState,
    SeverityPolicy,
    UpsertResult,
    parse_duration,
    series_key,
    spec_hash,
)
from aiops.store.repo import KindValidator, Store, accept_any_kind, default_kind_validator

__all__ = [
    "Store",
    "BatchCommit",
    "BatchInputs",
    "BatchResult",
    "Claim",
    "ClaimResult",
    "KindValidator",
    "default_kind_validator",
    "accept_any_kind",
    "load_detectors_file",
    "apply_detectors_file",
    "record_datasource_health",
    "read_datasource_health",
    "EVENT_ANOMALY",
    "EVENT_LOG_NEW_TEMPLATE",
    "EVENT_INCIDENT_OPENED",
    "EVENT_INCIDENT_RESOLVED",
    "INCIDENT_EVENTS",
    "BackfillProgress",
    "BackfillWindow",
    "CollectorStatus",
    "DatasourceSpec",
    "Detector",
    "DetectorRecord",
    "DetectorDatasource",
    "DetectorSpec",
    "DueDetectors",
    "Event",
    "EventIn",
    "Incident",
    "IncidentTriage",
    "LogReport",
    "LogReportRecord",
    "ModelStateInfo",
    "SeriesScore",
    "SeriesState",
    "SeverityPolicy",
    "UpsertResult",
    "parse_duration",
    "series_key",
    "spec_hash",
]
