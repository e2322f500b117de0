"""Settings: environment, config file, failover URL lists and errors naming the setting."""

from __future__ import annotations

import pytest

from aiops.config import load_settings
from aiops.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("AIOPS_"):
            monkeypatch.delenv(key)


def test_defaults_are_local_and_embedded():
    s = load_settings()
    assert s.prometheus_url == ("http://127.0.0.1:9090",)
    assert s.cache_ttl_seconds == 30 and s.retry_attempts == 3 and s.buffer_size == 10_000
    assert s.resolved_database_url().startswith(
        "sqlite:///"
    ) and s.resolved_database_url().endswith("aiops.db")
    assert set(s.datasource_configs()) == {"prometheus"}


def test_comma_separated_prometheus_urls_keep_failover_order(monkeypatch):
    monkeypatch.setenv("AIOPS_PROMETHEUS_URL", "http://a:9090/, http://b:9090")
    monkeypatch.setenv("AIOPS_LOKI_URL", "http://loki:3100")
    monkeypatch.setenv("AIOPS_LOKI_TENANT", "team-a")
    ds = load_settings().datasource_configs()
    assert ds["prometheus"].urls == ("http://a:9090", "http://b:9090")
    assert ds["loki"].type == "loki" and ds["loki"].tenant == "team-a"


@pytest.mark.parametrize(
    "env,value",
    [
        ("AIOPS_TIMEOUT_SECONDS", "soon"),
        ("AIOPS_TIMEOUT_SECONDS", "-1"),
        ("AIOPS_PROMETHEUS_URL", "ftp://x"),
        ("AIOPS_PROMETHEUS_URL", "not a url"),
        ("AIOPS_RETRY_ATTEMPTS", "0"),
        ("AIOPS_API_PORT", "70000"),
        ("AIOPS_API_TOKEN", "short"),
        ("AIOPS_LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_setting(monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert env in str(err.value)


def test_config_file_adds_named_datasources_and_env_wins(tmp_path, monkeypatch):
    path = tmp_path / "aiops.yaml"
    path.write_text(
        "cache_ttl_seconds: 5\n"
        "timeout_seconds: 12\n"
        "datasources:\n"
        "  staging:\n"
        "    type: prometheus\n"
        "    urls: http://s1:9090,http://s2:9090\n"
        "  logs-eu:\n"
        "    type: loki\n"
        "    urls: [http://loki-eu:3100]\n"
        "    tenant: t1\n"
    )
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(path))
    monkeypatch.setenv("AIOPS_TIMEOUT_SECONDS", "7")
    s = load_settings()
    assert s.cache_ttl_seconds == 5 and s.timeout_seconds == 7
    ds = s.datasource_configs()
    assert ds["staging"].urls == ("http://s1:9090", "http://s2:9090")
    assert ds["logs-eu"].tenant == "t1"


def test_toml_config_file(tmp_path, monkeypatch):
    path = tmp_path / "aiops.toml"
    path.write_text(
        'loki_url = ["http://l:3100"]\n[datasources.other]\ntype = "prometheus"\nurls = ["http://o:9090"]\n'
    )
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(path))
    assert set(load_settings().datasource_configs()) == {"prometheus", "loki", "other"}


@pytest.mark.parametrize(
    "text,needle",
    [
        ("datasources:\n  x:\n    type: graphite\n    urls: [http://g]\n", "datasource 'x'"),
        (
            "datasources:\n  prometheus:\n    type: prometheus\n    urls: [http://g]\n",
            "defined twice",
        ),
        ("timeout_seconds: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
    ],
)
def test_bad_config_files_are_config_errors(tmp_path, monkeypatch, text, needle):
    path = tmp_path / "aiops.yaml"
    path.write_text(text)
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(path))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert needle in str(err.value)


def test_missing_config_file_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert err.value.setting == "AIOPS_CONFIG_FILE"


def test_a_misspelt_variable_is_reported_with_a_suggestion(monkeypatch, caplog):
    monkeypatch.setenv("AIOPS_PROMETEUS_URL", "http://x:9090")
    with caplog.at_level("WARNING", logger="aiops.config"):
        load_settings()
    assert "AIOPS_PROMETEUS_URL (did you mean AIOPS_PROMETHEUS_URL?)" in caplog.text
