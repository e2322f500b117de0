"""The detectors file: detectors declared in YAML, upserted into the store at start.

Format (see ``examples/detectors.yaml`` and ``docs/store.md``)::

    detectors:
      - id: api-error-rate            # slug: [a-z0-9][a-z0-9-_]{0,62}
        name: API 5xx rate            # optional, defaults to id
        kind: zscore                  # a detector kind (aiops.detectors.KINDS)
        params: {window: 60}          # model hyper-parameters (JSON)
        status: running               # optional: training | running | paused
        threshold: 1.0                # optional, score above which a point is anomalous
        resolve_after: 20             # optional: normal steps allowed inside one incident
        interval: 1m                  # optional collection interval (default 60s)
        training_window: 1d           # optional: promote training -> running after this
        datasource:
          name: prometheus            # a configured datasource name (default prometheus)
          query: sum by (service) (rate(http_requests_total{code=~"5.."}[5m]))
          step: 1m                    # optional, default 60s
          lookback: 6h                # optional, default 1h

Durations are seconds (``90``) or strings like ``30s``, ``5m``, ``1h30m``, ``1d``, ``1w``.
Loading is all-or-nothing: any error raises :class:`ConfigError` naming the file, the
detector and the field, and nothing is written.

Re-applying an edited file keeps each detector's model state unless its ``kind`` or
``params`` changed. Detectors missing from the file are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from aiops.errors import ConfigError, InvalidInput
from aiops.logql import require_metric_query
from aiops.store.models import DetectorSpec, UpsertResult, error_message
from aiops.store.repo import KindValidator, default_kind_validator

if TYPE_CHECKING:
    from aiops.store.repo import Store

__all__ = ["load_detectors_file", "apply_detectors_file"]

logger = logging.getLogger(__name__)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _error(path: Path, message: str, **detail: Any) -> ConfigError:
    return ConfigError(f"{path}: {message}", setting=str(path), **detail)


def load_detectors_file(
    path: str | Path,
    *,
    kind_validator: KindValidator = default_kind_validator,
    datasources: Mapping[str, Any] | None = None,
) -> list[DetectorSpec]:
    """Read and validate a detectors file. Raises :class:`ConfigError` on any problem.

    ``datasources`` (name -> configured datasource) lets it check what depends on the
    datasource's type: a detector on a Loki datasource needs a LogQL metric query."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _error(path, f"cannot read detectors file: {exc.strerror or exc}") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise _error(path, f"not valid YAML: {exc}") from None

    if not isinstance(document, Mapping) or not isinstance(document.get("detectors"), list):
        raise _error(path, "expected a mapping with a 'detectors' list", field="detectors")
    unknown = sorted(set(document) - {"detectors", "version"})
    if unknown:
        raise _error(path, f"unknown top-level key {unknown[0]!r}", field=str(unknown[0]))
    if document.get("version", 1) != 1:
        raise _error(
            path, f"unsupported version {document['version']!r} (expected 1)", field="version"
        )

    specs: list[DetectorSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(document["detectors"]):
        where = f"detectors[{index}]"
        if not isinstance(entry, Mapping):
            raise _error(
                path, f"{where}: expected a mapping, got {type(entry).__name__}", field=where
            )
        label = entry.get("id") if isinstance(entry.get("id"), str) else where
        try:
            spec = DetectorSpec.model_validate(dict(entry))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or "detector"
            raise _error(
                path,
                f"detector {label!r}: {field}: {error_message(first)}",
                detector=label,
                field=field,
            ) from None
        try:
            kind_validator(spec.kind, spec.params)
        except (InvalidInput, ValueError) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else str(exc)
            field = (exc.field if isinstance(exc, InvalidInput) else None) or "kind"
            raise _error(
                path, f"detector {spec.id!r}: {field}: {message}", detector=spec.id, field=field
            ) from None
        ds_config = (
            (datasources or {}).get(spec.datasource.name) if spec.datasource is not None else None
        )
        if ds_config is not None and ds_config.type == "loki":
            try:
                require_metric_query(spec.datasource.query, field="datasource.query")
            except InvalidInput as exc:
                raise _error(
                    path,
                    f"detector {spec.id!r}: {exc.message}",
                    detector=spec.id,
                    field="datasource.query",
                ) from None
        if spec.id in seen:
            raise _error(
                path,
                f"detector {spec.id!r}: id: declared twice (entries {seen[spec.id]} and {index})",
                detector=spec.id,
                field="id",
            )
        seen[spec.id] = index
        specs.append(spec)
    return specs


def apply_detectors_file(
    store: Store, path: str | Path, *, datasources: Mapping[str, Any] | None = None
) -> UpsertResult:
    """Load ``path`` and upsert its detectors into ``store`` (one transaction)."""
    specs = load_detectors_file(path, kind_validator=store.kind_validator, datasources=datasources)
    try:
        result = store.upsert_detectors(specs)
    except InvalidInput as exc:
        raise _error(Path(path), exc.message, field=exc.field) from exc
    logger.info(
        "detectors file %s: %d created, %d updated (%d with a new model), %d unchanged",
        path,
        len(result["created"]),
        len(result["updated"]),
        len(result["reset"]),
        len(result["unchanged"]),
    )
    return result
