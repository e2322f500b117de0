"""Label sets: the one canonical text form used as a series key everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["series_key"]


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(labels: Mapping[str, Any]) -> str:
    """The canonical string of a label set: ``a="1",b="x"`` (sorted by name, values escaped
    as in the Prometheus exposition format). The empty label set gives ``""``."""
    return ",".join(f'{name}="{_escape_label_value(str(labels[name]))}"' for name in sorted(labels))
