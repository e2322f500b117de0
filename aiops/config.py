"""Settings: one pydantic-settings model, ``AIOPS_`` environment variables, optional config file.

Precedence, highest first: keyword arguments, environment variables (``AIOPS_*``), the config
file (``AIOPS_CONFIG_FILE``, YAML or TOML), defaults. A bad value stops start-up with a
:class:`~aiops.errors.ConfigError` naming the setting (``AIOPS_TIMEOUT_SECONDS: ...``).

The config file can hold everything the environment can, plus named extra datasources::

    prometheus_url: [http://prom-a:9090, http://prom-b:9090]
    datasources:
      staging:
        type: prometheus
        urls: [http://prom-staging:9090]
      logs-eu:
        type: loki
        urls: [http://loki-eu:3100]
        tenant: team-a
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from aiops.errors import ConfigError

__all__ = [
    "DatasourceConfig",
    "LogJob",
    "Settings",
    "load_settings",
    "flow_run_environment",
    "SERVICE_ONLY_SECRETS",
]

DatasourceType = Literal["prometheus", "loki"]
log = logging.getLogger(__name__)
_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def _split_urls(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        return [p for p in parts if p]
    return value


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} must not carry a query string or fragment")
    return url.rstrip("/")


class DatasourceConfig(BaseModel):
    """One datasource: a name the API and detectors refer to, and its URLs in failover order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN)
    type: DatasourceType
    urls: tuple[str, ...] = Field(min_length=1)
    tenant: str | None = None  # Loki X-Scope-OrgID
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    headers: dict[str, str] = Field(default_factory=dict)
    # Prometheus: the server's --query.lookback-delta (how far back a plain selector looks for
    # a sample). Detectors whose step is longer read each step's samples with last_over_time.
    lookback_delta_seconds: float = Field(default=300.0, gt=0, le=30 * 86400)

    @model_validator(mode="before")
    @classmethod
    def _lookback_delta(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lookback_delta" in data:  # lookback_delta: 10m
            from aiops.timeutil import parse_seconds

            data = dict(data)
            data["lookback_delta_seconds"] = parse_seconds(
                data.pop("lookback_delta"), field="lookback_delta"
            )
        return data

    @field_validator("urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        return _split_urls(value)

    @field_validator("urls")
    @classmethod
    def _valid_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_url(u) for u in value)


class LogJob(BaseModel):
    """A scheduled log analysis: a Loki selector (or a local file) every ``interval``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN)
    selector: str | None = None
    path: str | None = None
    datasource: str = "loki"
    interval_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    since_seconds: int | None = Field(default=None, ge=1, le=30 * 86400)
    bucket: str = "1h"
    patterns: dict[str, str] | None = None
    # an explicit header format (docs/log-analysis.md, "Headers"); default: learned from the lines
    log_format: str | None = None

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str | None) -> str | None:
        if value is not None:
            from aiops.logs.headers import compile_format

            compile_format(value)  # InvalidInput (a ValueError) names what is wrong
        return value

    @model_validator(mode="before")
    @classmethod
    def _durations(cls, data: Any) -> Any:
        if isinstance(data, dict):
            from aiops.timeutil import parse_seconds

            data = dict(data)
            for short, long in (
                ("every", "interval_seconds"),
                ("interval", "interval_seconds"),
                ("since", "since_seconds"),
            ):
                if short in data:
                    data[long] = int(parse_seconds(data.pop(short), field=short))
        return data

    @model_validator(mode="after")
    def _one_source(self) -> LogJob:
        if (self.selector is None) == (self.path is None):
            raise ValueError(f"log job {self.name!r} needs exactly one of selector or path")
        return self

    @property
    def window_seconds(self) -> int:
        return self.since_seconds or self.interval_seconds


class _FileSource(PydanticBaseSettingsSource):
    """Values from the YAML/TOML config file, below the environment in precedence."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or TOML config file into a dict; any problem is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}", setting="AIOPS_CONFIG_FILE"
        ) from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: "
            f"{exc}",
            setting="AIOPS_CONFIG_FILE",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping", setting="AIOPS_CONFIG_FILE")
    return data


class Settings(BaseSettings):
    """Every knob of the service. Environment variables are ``AIOPS_`` + the upper-case name."""

    model_config = SettingsConfigDict(
        env_prefix="AIOPS_", extra="forbid", validate_default=True, frozen=True
    )

    # datasources
    prometheus_url: Annotated[tuple[str, ...], NoDecode] = ("http://127.0.0.1:9090",)
    prometheus_lookback_delta_seconds: float = Field(default=300.0, gt=0, le=30 * 86400)
    loki_url: Annotated[tuple[str, ...], NoDecode] = ()
    loki_tenant: str | None = None
    datasources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    log_jobs: list[LogJob] = Field(default_factory=list)
    # local log files: the only folders a file source may be read from (besides the log
    # jobs' own files); unset: ``<data_dir>/logs``. Reads are bounded in size and time.
    log_roots: Annotated[tuple[Path, ...], NoDecode] | None = None
    log_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, le=1 << 40)
    log_read_timeout_seconds: float = Field(default=120.0, gt=0, le=86400)

    # request behaviour (one policy shared by every datasource client)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    cache_ttl_seconds: float = Field(default=30.0, ge=0, le=86400)
    cache_max_entries: int = Field(default=1024, ge=0, le=1_000_000)
    retry_attempts: int = Field(default=3, ge=1, le=20)
    retry_initial_seconds: float = Field(default=0.2, ge=0, le=60)
    retry_max_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_concurrency: int = Field(default=8, ge=1, le=256)
    # the API probes every datasource URL this often in the background (0: never) and shares
    # what it and the flows learn through the store (GET /api/datasources/health, /metrics)
    health_probe_seconds: float = Field(default=30.0, ge=0, le=3600)
    # flow runs at once, per deployment (detection has its own single slot, each log job one):
    # runs over the limit wait on the Prefect server and never hold a slot detection needs
    log_run_limit: int = Field(default=2, ge=1, le=64)
    backfill_run_limit: int = Field(default=1, ge=1, le=64)
    buffer_size: int = Field(default=10_000, ge=1, le=100_000_000)
    # backfills fan out to this existing Dask cluster (its scheduler, e.g. tcp://10.0.0.5:8786);
    # unset: they run in-process
    dask_address: str | None = None
    # detect-metrics: detectors claimed, collected, scored and committed together (one task
    # run per step per batch, one transaction per piece of a batch); a claim's lease, renewed
    # while the run lives, after which a dead run's detectors are taken by the next tick
    batch_size: int = Field(default=100, ge=1, le=10_000)
    claim_lease_seconds: float = Field(default=20.0, ge=1, le=3600)
    # detect-metrics scores a batch of at least 16 pieces in this many worker processes (0: in
    # the tick's own process); unset: the usable CPUs less two, at most 4 (0 on 2 CPUs)
    score_processes: int | None = Field(default=None, ge=0, le=64)

    # storage
    data_dir: Path = Path(".aiops")
    database_url: str | None = None
    detectors_file: Path | None = None

    # API
    api_token: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # token guessing: this many failed tokens per client address within the window, then 429
    api_auth_failure_limit: int = Field(default=10, ge=1, le=1_000_000)
    api_auth_failure_window_seconds: float = Field(default=60.0, gt=0, le=86400)
    # where people reach the API and its page (incident links in alerts); unset: http://API_HOST:API_PORT
    public_url: str | None = None

    # incidents delivered to Alertmanager (API v2; every URL of an HA cluster gets each alert):
    # the API sends firing and resolved alerts, and re-sends firing ones every interval
    alertmanager_url: Annotated[tuple[str, ...], NoDecode] = ()
    alertmanager_interval_seconds: float = Field(default=30.0, ge=1, le=3600)

    # scheduling and the local Prefect server of `aiops up`
    tick_seconds: int = Field(default=30, ge=5, le=86400)
    prefect_port: int = Field(default=4200, ge=1, le=65535)

    # logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    config_file: Path | None = None

    @field_validator("prometheus_url", "loki_url", "alertmanager_url", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        return _split_urls(value)

    @field_validator("prometheus_url", "loki_url", "alertmanager_url")
    @classmethod
    def _valid_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_url(u) for u in value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _check_url(value.strip())

    def resolved_public_url(self) -> str:
        """Where people reach the API and its page (links in alerts)."""
        if self.public_url:
            return self.public_url
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        return f"http://{host}:{self.api_port}"

    @field_validator("dask_address", mode="before")
    @classmethod
    def _dask_address(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip()
        m = re.fullmatch(r"(?:(tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", text)
        if not m or not 0 < int(m.group(3)) < 65536:
            raise ValueError(
                f"{text!r} is not a Dask scheduler address: use tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)"
            )
        return text if m.group(1) else f"tcp://{text}"

    @field_validator("log_roots", mode="before")
    @classmethod
    def _roots(cls, value: Any) -> Any:
        if isinstance(value, str):  # AIOPS_LOG_ROOTS=/var/log/app,/srv/logs (or ':'-separated)
            return [p.strip() for p in re.split(r"[,:]", value) if p.strip()]
        return value

    @field_validator("log_roots")
    @classmethod
    def _absolute_roots(cls, value: tuple[Path, ...] | None) -> tuple[Path, ...] | None:
        for root in value or ():
            if not root.is_absolute():
                raise ValueError(f"{str(root)!r} is not an absolute path")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _check_datasources(self) -> Settings:
        self.datasource_configs()  # raises on a bad named datasource
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("AIOPS_CONFIG_FILE")
        data = read_config_file(Path(path)) if path else {}
        return (init_settings, env_settings, _FileSource(settings_cls, data))

    # derived values -------------------------------------------------------------------------

    def datasource_configs(self) -> dict[str, DatasourceConfig]:
        """Every configured datasource by name: ``prometheus``, ``loki`` and the named extras."""
        out: dict[str, DatasourceConfig] = {}
        if self.prometheus_url:
            out["prometheus"] = DatasourceConfig(
                name="prometheus",
                type="prometheus",
                urls=self.prometheus_url,
                lookback_delta_seconds=self.prometheus_lookback_delta_seconds,
            )
        if self.loki_url:
            out["loki"] = DatasourceConfig(
                name="loki", type="loki", urls=self.loki_url, tenant=self.loki_tenant
            )
        for name, raw in self.datasources.items():
            if name in out:
                raise ValueError(f"datasource {name!r} is defined twice")
            if not isinstance(raw, dict):
                raise ValueError(f"datasource {name!r} must be a mapping")
            try:
                out[name] = DatasourceConfig(name=name, **raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"datasource {name!r}: {loc}: {first['msg']}") from None
        return out

    def log_file_roots(self) -> tuple[Path, ...]:
        """The folders file sources may be read from: ``log_roots``, else ``<data_dir>/logs``."""
        if self.log_roots is not None:
            return self.log_roots
        return (self.data_dir.absolute() / "logs",)

    def log_job_files(self) -> tuple[Path, ...]:
        """The files the configured log jobs read: allowed wherever they are."""
        return tuple(Path(job.path).absolute() for job in self.log_jobs if job.path is not None)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aiops.db').resolve()}"


# Secrets only the API or the Prefect server use: never in the environment of flow runs (a
# flow has no use for them, and whatever a run holds a bug in it could leak).
SERVICE_ONLY_SECRETS = (
    "AIOPS_API_TOKEN",
    "PREFECT_SERVER_API_AUTH_STRING",  # the server's side; clients use PREFECT_API_AUTH_STRING
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_PASSWORD",
)


def flow_run_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the settings flow runs must not see (:data:`SERVICE_ONLY_SECRETS`)."""
    return {k: v for k, v in env.items() if k not in SERVICE_ONLY_SECRETS}


def unknown_environment_settings() -> list[str]:
    """``AIOPS_*`` variables that name no setting (typos), each with a suggestion."""
    known = {f"AIOPS_{name.upper()}" for name in Settings.model_fields}
    out = []
    for key in sorted(os.environ):
        if key.startswith("AIOPS_") and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            out.append(f"{key} (did you mean {close[0]}?)" if close else key)
    return out


def load_settings(**overrides: Any) -> Settings:
    """Build the settings or raise one :class:`ConfigError` naming every bad setting."""
    for unknown in unknown_environment_settings():
        log.warning("ignoring unknown environment variable %s", unknown)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        first_setting = None
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "settings"
            setting = f"AIOPS_{field.upper()}"
            first_setting = first_setting or setting
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{setting}: {msg}")
        raise ConfigError(
            "invalid configuration: " + "; ".join(problems), setting=first_setting
        ) from None
