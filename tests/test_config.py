from __future__ import annotations

import re
from typing import Any

import pytest

from otel_bridge.config import VARIABLES, Settings
from otel_bridge.errors import ConfigError


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.queue_size == 4096
    assert settings.excluded_regex is None


def test_the_table_and_the_dataclass_agree_field_by_field() -> None:
    """Each default is written twice, in `VARIABLES` (what the docs show) and in `Settings`
    (what `Settings()` gives): they must be the same value, for every field, and every
    field but the compiled regex must have its variable."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(Settings) if f.name != "excluded_regex"}
    by_attr = {variable.attr: variable for variable in VARIABLES}
    assert set(fields) == set(by_attr), "a field without a variable, or the reverse"
    differing = {
        name: (field.default, by_attr[name].default)
        for name, field in fields.items()
        if field.default != by_attr[name].default
        or type(field.default) is not type(by_attr[name].default)
    }
    assert differing == {}


def test_every_variable_is_read_from_the_given_mapping_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_BRIDGE_QUEUE_SIZE", "garbage")
    settings = Settings.from_env(
        {
            "OTEL_SDK_DISABLED": "TRUE",
            "OTEL_SERVICE_NAME": " shop ",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod, team=a%2Cb,",
            "OTEL_PYTHON_EXCLUDED_URLS": "healthz, ^/static/",
            "OTEL_TRACES_EXPORTER": "console,otlp,console",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_BRIDGE_EXPORTERS": "none",
            "OTEL_BRIDGE_QUEUE_SIZE": "10",
            "OTEL_BRIDGE_MAX_TIMERS": "0",
        }
    )
    assert settings.sdk_disabled is True
    assert settings.service_name == "shop"
    assert settings.resource_attributes == (("deployment.environment", "prod"), ("team", "a,b"))
    assert settings.excluded_urls == ("healthz", "^/static/")
    assert settings.excluded_regex is not None
    assert settings.excluded_regex.search("/static/app.js")
    assert not settings.excluded_regex.search("/api/static/x")
    assert settings.traces_exporters == ("console", "otlp")
    assert settings.metrics_exporters == ()
    assert settings.exporters == ()
    assert (settings.queue_size, settings.max_timers) == (10, 0)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OTEL_SDK_DISABLED", "maybe", "true or false"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "comma-separated key=value pairs"),
        ("OTEL_RESOURCE_ATTRIBUTES", "=x", "comma-separated key=value pairs"),
        ("OTEL_PYTHON_EXCLUDED_URLS", "ok,(unclosed", "comma-separated regular expressions"),
        ("OTEL_TRACES_EXPORTER", "none,otlp", "'none' alone"),
        ("OTEL_METRICS_EXPORTER", "ot lp", "exporter names"),
        ("OTEL_BRIDGE_EXPORTERS", "expvar,statsd", "a comma-separated list of: expvar"),
        ("OTEL_BRIDGE_QUEUE_SIZE", "0", "an integer from 1 to 1000000"),
        ("OTEL_BRIDGE_QUEUE_SIZE", "1e3", "an integer from 1 to 1000000"),
        ("OTEL_BRIDGE_MAX_TIMERS", "-1", "an integer from 0 to 100000"),
    ],
)
def test_invalid_values_name_variable_value_and_expected_form(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r}: expected ")
    assert expected in message
    assert (caught.value.name, caught.value.value) == (variable, value)


def test_all_four_views_are_on_by_default_and_can_be_chosen() -> None:
    assert Settings().exporters == ("expvar", "pinba", "wide_events", "cronitor")
    chosen = Settings.from_env({"OTEL_BRIDGE_EXPORTERS": "cronitor, pinba,pinba"})
    assert chosen.exporters == ("cronitor", "pinba")


def test_booleans_take_the_usual_spellings() -> None:
    for raw, expected in [("true", True), ("On", True), ("1", True), ("no", False), ("0", False)]:
        assert Settings.from_env({"OTEL_SDK_DISABLED": raw}).sdk_disabled is expected


def test_empty_values_mean_unset() -> None:
    assert Settings.from_env({v.env: "  " for v in VARIABLES}) == Settings()


def test_keyword_overrides_are_validated_and_none_means_unset() -> None:
    base = Settings.from_env({"OTEL_SERVICE_NAME": "env", "OTEL_BRIDGE_QUEUE_SIZE": "7"})
    changed = base.replace(service_name="kw", queue_size=None, excluded_urls=["a{1,3}", "b"])
    assert (changed.service_name, changed.queue_size) == ("kw", 7)
    assert changed.excluded_urls == ("a{1,3}", "b")
    assert changed.excluded_regex is not None and changed.excluded_regex.search("xaaay")
    assert base.replace(resource_attributes={"k": "v,w"}).resource_attributes == (("k", "v,w"),)
    assert base.replace(sdk_disabled=True).sdk_disabled is True
    with pytest.raises(ConfigError, match=r"^queue_size=0: expected an integer"):
        base.replace(queue_size=0)
    with pytest.raises(ConfigError, match=r"^sdk_disabled='yes please'"):
        base.replace(sdk_disabled="yes please")
    with pytest.raises(ConfigError, match=r"^sdk_disabled=1: expected True or False"):
        base.replace(sdk_disabled=1)
    with pytest.raises(ConfigError, match=r"^queue_size=2.5: expected an integer"):
        base.replace(queue_size=2.5)
    with pytest.raises(ConfigError, match=r"^exporters="):
        base.replace(exporters=["nonsense"])
    with pytest.raises(ConfigError, match=r"^excluded_urls='\(': expected a regular expression"):
        base.replace(excluded_urls=["ok", "("])
    with pytest.raises(ConfigError, match=r"^max_timers=\{\}: expected an integer"):
        base.replace(max_timers={})
    with pytest.raises(ConfigError, match=r"^service_name=3: expected str"):
        base.replace(service_name=3)
    assert base.replace(exporters=[]).exporters == ()
    with pytest.raises(TypeError, match="unknown setting 'colour'"):
        base.replace(colour="red")


def test_instrument_raises_config_errors_at_startup() -> None:
    import otel_bridge

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("never called")

    with pytest.raises(ConfigError, match="OTEL_BRIDGE_MAX_TIMERS"):
        otel_bridge.instrument(app, settings=Settings.from_env({"OTEL_BRIDGE_MAX_TIMERS": "x"}))
    with pytest.raises(ConfigError, match=r"^exporters="):
        otel_bridge.instrument(app, exporters="bogus")


def test_expvar_and_pinba_variables_parse() -> None:
    settings = Settings.from_env(
        {
            "OTEL_EXPORTER_EXPVAR_PATH": "/internal/vars",
            "OTEL_EXPORTER_EXPVAR_ALLOW": "10.0.0.0/8, 192.168.1.7 ::1",
            "OTEL_EXPORTER_EXPVAR_TRUSTED_PROXIES": "10.0.0.1/32",
            "OTEL_EXPORTER_EXPVAR_TOKEN": "0123456789abcdef",
            "OTEL_EXPORTER_EXPVAR_PROCESS": "FULL",
            "OTEL_EXPORTER_PINBA_SCRIPT_NAME": "path",
            "OTEL_EXPORTER_EXPVAR_LISTEN": "[::1]:0",
        }
    )
    assert settings.expvar_path == "/internal/vars"
    assert settings.expvar_listen == ("::1", 0)
    assert Settings.from_env({"OTEL_EXPORTER_EXPVAR_LISTEN": " localhost:9100 "}).expvar_listen == (
        "localhost",
        9100,
    )
    assert settings.expvar_allow == ("10.0.0.0/8", "192.168.1.7", "::1")
    assert settings.expvar_trusted_proxies == ("10.0.0.1/32",)
    assert settings.expvar_token == "0123456789abcdef"
    assert "0123456789abcdef" not in repr(settings), "the token stays out of reprs and logs"
    assert (settings.expvar_process, settings.pinba_script_name) == ("full", "path")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OTEL_EXPORTER_EXPVAR_PATH", "debug/vars", "a URL path starting with /"),
        ("OTEL_EXPORTER_EXPVAR_ALLOW", "10.0.0.0/33", "comma-separated IP networks"),
        ("OTEL_EXPORTER_EXPVAR_PROCESS", "all", "basic or full"),
        ("OTEL_EXPORTER_EXPVAR_LISTEN", "127.0.0.1", "host:port or [ipv6]:port"),
        ("OTEL_EXPORTER_EXPVAR_LISTEN", "127.0.0.1:70000", "host:port or [ipv6]:port"),
        ("OTEL_EXPORTER_PINBA_MAX_PACKET_SIZE", "70000", "an integer from 512 to 65507"),
    ],
)
def test_view_variables_refuse_bad_values(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        Settings.from_env({variable: value})


def test_a_bad_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"OTEL_EXPORTER_EXPVAR_TOKEN": "short secret"})
    assert "short secret" not in str(caught.value)
    assert str(caught.value).startswith("OTEL_EXPORTER_EXPVAR_TOKEN='<hidden>': expected")


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("stdout", "stdout"),
        (" otlp ", "otlp"),
        ("logging", "logging"),
        ("logging:shop.events", "logging:shop.events"),
        ("file:/tmp/x.jsonl", "file:/tmp/x.jsonl"),
    ],
)
def test_wide_event_sinks_parse(raw: str, parsed: str) -> None:
    assert Settings.from_env({"OTEL_EXPORTER_WIDE_EVENTS_SINK": raw}).wide_events_sink == parsed


def test_wide_event_header_and_timeout() -> None:
    settings = Settings.from_env(
        {
            "OTEL_EXPORTER_WIDE_EVENTS_REQUEST_ID_HEADER": "X-Amzn-Trace-Id",
            "OTEL_EXPORTER_WIDE_EVENTS_TIMEOUT": "2.5",
        }
    )
    assert settings.wide_events_request_id_header == "x-amzn-trace-id"
    assert settings.wide_events_timeout == 2.5
    assert Settings().replace(wide_events_timeout=1.5).wide_events_timeout == 1.5
    with pytest.raises(ConfigError, match=r"^wide_events_timeout=-1\.0: expected a number"):
        Settings().replace(wide_events_timeout=-1.0)
    with pytest.raises(ConfigError, match="an HTTP header name"):
        Settings.from_env({"OTEL_EXPORTER_WIDE_EVENTS_REQUEST_ID_HEADER": "x request"})


def test_cronitor_variables() -> None:
    settings = Settings.from_env(
        {
            "CRONITOR_API_KEY": "k3y",
            "CRONITOR_API_VERSION": "2025-11-28",
            "CRONITOR_ENVIRONMENT": "staging",
            "OTEL_EXPORTER_CRONITOR_ENDPOINT": "http://h:1/api/",
            "OTEL_EXPORTER_CRONITOR_PUBLIC_URL": "https://shop.example.com/",
            "OTEL_EXPORTER_CRONITOR_TIMEOUT": "5",
            "OTEL_EXPORTER_CRONITOR_SYNC_ON_STARTUP": "1",
        }
    )
    assert (settings.cronitor_api_key, settings.cronitor_api_version) == ("k3y", "2025-11-28")
    assert settings.cronitor_endpoint == "http://h:1/api"
    assert settings.cronitor_public_url == "https://shop.example.com"
    assert (settings.cronitor_timeout, settings.cronitor_sync_on_startup) == (5.0, True)
    assert "k3y" not in repr(settings)
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_CRONITOR_ENDPOINT='cronitor\.io'"):
        Settings.from_env({"OTEL_EXPORTER_CRONITOR_ENDPOINT": "cronitor.io"})
    with pytest.raises(ConfigError, match=r"^CRONITOR_API_KEY='<hidden>'"):
        Settings.from_env({"CRONITOR_API_KEY": "two words"})


SECRETS = {"CRONITOR_API_KEY", "OTEL_EXPORTER_EXPVAR_TOKEN"}


@pytest.mark.parametrize(
    "variable", [v for v in VARIABLES if v.bad is not None], ids=lambda v: v.env
)
def test_every_variable_refuses_its_bad_value_naming_it_and_the_expected_form(
    variable: Any,
) -> None:
    # Every variable that can be wrong (the others take any text: names, versions).
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable.env: variable.bad})
    shown = "<hidden>" if variable.env in SECRETS else variable.bad
    assert (caught.value.name, caught.value.value) == (variable.env, shown)
    assert str(caught.value).startswith(f"{variable.env}={shown!r}: expected ")
    assert len(str(caught.value)) > len(f"{variable.env}={shown!r}: expected ") + 3
    if variable.env in SECRETS:
        assert variable.bad not in str(caught.value), "a secret is never echoed"


def test_allowed_hosts_and_unrouted_names_parse() -> None:
    settings = Settings.from_env(
        {
            "OTEL_BRIDGE_ALLOWED_HOSTS": " Shop.Test, .example.org ,[::1],*",
            "OTEL_BRIDGE_UNROUTED": "PATH",
        }
    )
    assert settings.allowed_hosts == ("shop.test", ".example.org", "[::1]", "*")
    assert settings.unrouted == "path"
    assert Settings.from_env({}).allowed_hosts == ()
    assert Settings.from_env({}).unrouted == "status"
    for bad in ("shop.test:8000", "a b", "-x.org", "[zz]"):
        with pytest.raises(ConfigError, match="OTEL_BRIDGE_ALLOWED_HOSTS"):
            Settings.from_env({"OTEL_BRIDGE_ALLOWED_HOSTS": bad})
