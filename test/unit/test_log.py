"""JSON log lines, context keys, stdlib routing and secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from aimctrl.log import REDACTED, configure_logging, redact

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging(format="json", level="debug", stream=buf)
    yield buf
    structlog.contextvars.clear_contextvars()
    configure_logging(format="console", level="info")


def _lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_carry_timestamp_level_event_and_context(out: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(
        controller="aimmodel", kind="AIMModel", namespace="ns", name="m", reconcile_id="r-1"
    )
    log = structlog.get_logger("test")
    log.info("reconcile started", generation=3)
    log.debug("detail")

    first, second = _lines(out)
    assert first["event"] == "reconcile started"
    assert first["level"] == "info"
    assert first["generation"] == 3
    assert first["timestamp"].endswith("Z")
    assert first["timestamp"][:4].isdigit()
    assert {k: first[k] for k in ("controller", "kind", "namespace", "name", "reconcile_id")} == {
        "controller": "aimmodel",
        "kind": "AIMModel",
        "namespace": "ns",
        "name": "m",
        "reconcile_id": "r-1",
    }
    assert second["level"] == "debug"
    assert list(first)[:3] == ["timestamp", "level", "event"]


def test_level_filters_structlog_calls() -> None:
    buf = io.StringIO()
    configure_logging(format="json", level="warning", stream=buf)
    try:
        structlog.get_logger().info("hidden")
        structlog.get_logger().warning("shown")
        assert [line["event"] for line in _lines(buf)] == ["shown"]
    finally:
        configure_logging(format="console", level="info")


def test_stdlib_loggers_are_routed_at_warning_through_the_same_renderer(out: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(reconcile_id="r-2")
    logging.getLogger("urllib3.connectionpool").info("connection reset, retrying")
    logging.getLogger("kubernetes.client.rest").warning("response %s", 503)

    (line,) = _lines(out)
    assert line["event"] == "response 503"
    assert line["level"] == "warning"
    assert line["logger"] == "kubernetes.client.rest"
    assert line["reconcile_id"] == "r-2"


def test_reconfiguring_does_not_duplicate_stdlib_lines(out: io.StringIO) -> None:
    buf = io.StringIO()
    configure_logging(format="json", level="info", stream=buf)
    logging.getLogger("urllib3").error("once")
    assert len(_lines(buf)) == 1
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "token",
        "auth",
        "authorization",
        "secret",
        ".dockerconfigjson",
        "registry_password",
        "bearerToken",
        "api_key",
        "client_secret",
    ],
)
def test_values_under_secret_keys_are_redacted(out: io.StringIO, key: str) -> None:
    structlog.get_logger().info("call", **{key: "s3cr3t-value"})

    text = out.getvalue()
    assert "s3cr3t-value" not in text
    assert _lines(out)[0][key] == REDACTED


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer s3cr3t-value",
        "header bearer s3cr3t-value sent",
        "Basic s3cr3t-value",
        "pulling https://robot:s3cr3t-value@registry.example/v2/",
        'body {"token": "s3cr3t-value"}',
        "password=s3cr3t-value&user=x",
        "api-key: s3cr3t-value",
    ],
)
def test_secrets_inside_strings_are_masked(out: io.StringIO, text: str) -> None:
    structlog.get_logger().warning("request failed", detail=text)
    structlog.get_logger().warning(text)

    assert "s3cr3t-value" not in out.getvalue()
    assert REDACTED in _lines(out)[0]["detail"]


def test_jwts_are_masked_anywhere(out: io.StringIO) -> None:
    structlog.get_logger().info("loaded", note=f"sa {JWT} ok")
    assert JWT not in out.getvalue()
    assert "c2lnbmF0dXJl" not in out.getvalue()


def test_nested_secrets_and_secret_objects_are_redacted(out: io.StringIO) -> None:
    obj = {
        "kind": "Secret",
        "metadata": {"name": "pull"},
        "data": {".dockerconfigjson": "eyJhdXRocyI6e319"},
    }
    config = {"registries": [{"host": "r.example", "auths": {"r.example": {"auth": "dTpw"}}}]}
    structlog.get_logger().info("seen", obj=obj, config=config)

    line = _lines(out)[0]
    assert line["obj"]["data"] == REDACTED
    assert line["obj"]["metadata"] == {"name": "pull"}
    assert line["config"]["registries"][0]["auths"] == REDACTED
    assert line["config"]["registries"][0]["host"] == "r.example"
    # The caller's objects are untouched.
    assert obj["data"] == {".dockerconfigjson": "eyJhdXRocyI6e319"}
    assert config["registries"][0]["auths"] == {"r.example": {"auth": "dTpw"}}


def test_tracebacks_are_redacted(out: io.StringIO) -> None:
    try:
        raise RuntimeError("login failed: password=s3cr3t-value")
    except RuntimeError:
        structlog.get_logger().exception("login failed")

    line = _lines(out)[0]
    assert "RuntimeError" in line["exception"]
    assert "s3cr3t-value" not in out.getvalue()


def test_numbers_under_token_keys_are_kept(out: io.StringIO) -> None:
    structlog.get_logger().info("profile", max_tokens=4096, author="amd")
    line = _lines(out)[0]
    assert line["max_tokens"] == 4096
    assert line["author"] == "amd"


def test_redact_returns_the_same_object_when_nothing_is_secret() -> None:
    value = {"a": [1, "plain text", {"b": "c"}]}
    assert redact(value) is value


def test_console_format_renders_readable_lines() -> None:
    buf = io.StringIO()
    configure_logging(format="console", level="info", stream=buf)
    structlog.get_logger().info("ready", token="s3cr3t-value", workers=2)

    text = buf.getvalue()
    assert "ready" in text
    assert "workers=2" in text
    assert "s3cr3t-value" not in text
