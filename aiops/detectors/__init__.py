"""Anomaly detectors for one metric series: pure, causal, vectorised, JSON state.

::

    from aiops import detectors

    det = detectors.create("mad", window=120)       # InvalidInput on unknown kind / bad params
    det.fit(history)                                # learn, emit nothing
    frame = det.score(new_points)                   # score, expected, lower, upper; then learn
    saved = det.state()                             # JSON-able dict
    det = detectors.from_state(saved)               # continues exactly where it stopped

Score: 0 normal, > 1 anomalous (every kind); ``score <= 1`` exactly inside ``[lower, upper]``.
Kinds, one module each: ``auto`` (the recommended default: it picks a model from the
series and says why), ``zscore``, ``mad``, ``ewma``, ``quantile``, ``seasonal``,
``threshold``. The contract is in :mod:`aiops.detectors.base`; the models and their
trade-offs in docs/detectors.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiops.detectors.auto import AutoDetector
from aiops.detectors.base import COLUMNS, MAX_SCORE, Detector
from aiops.detectors.ewma import EwmaDetector
from aiops.detectors.mad import MadDetector
from aiops.detectors.quantile import QuantileDetector
from aiops.detectors.seasonal import SeasonalDetector
from aiops.detectors.threshold import ThresholdDetector
from aiops.detectors.zscore import ZScoreDetector
from aiops.errors import InvalidInput

__all__ = [
    "COLUMNS",
    "KINDS",
    "AutoDetector",
    "MAX_SCORE",
    "Detector",
    "EwmaDetector",
    "MadDetector",
    "QuantileDetector",
    "SeasonalDetector",
    "ThresholdDetector",
    "ZScoreDetector",
    "create",
    "detector_class",
    "from_state",
]

_CLASSES: dict[str, type[Detector]] = {
    cls.kind: cls
    for cls in (
        AutoDetector,
        ZScoreDetector,
        MadDetector,
        EwmaDetector,
        QuantileDetector,
        SeasonalDetector,
        ThresholdDetector,
    )
}

KINDS: tuple[str, ...] = tuple(_CLASSES)
"""Every detector kind, in documentation order."""


def detector_class(kind: str) -> type[Detector]:
    """The class of ``kind``; :class:`InvalidInput` (field ``kind``) if there is none."""
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInput(
            f"unknown detector kind {kind!r}; allowed: {', '.join(KINDS)}",
            field="kind",
            allowed=list(KINDS),
        )
    return cls


def create(kind: str, **params: Any) -> Detector:
    """A fresh detector of ``kind``. Unknown kind, unknown param or bad value -> InvalidInput
    naming the field (``kind`` or ``params.<name>``) and what is allowed."""
    return detector_class(kind)(**params)


def from_state(state: Mapping[str, Any]) -> Detector:
    """Rebuild a detector from :meth:`Detector.state` (after a JSON round trip)."""
    if not isinstance(state, Mapping):
        raise InvalidInput("detector state must be a dict", field="state")
    try:
        cls = detector_class(state.get("kind"))  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="state.kind", allowed=list(KINDS)) from None
    return cls.from_state(state)
