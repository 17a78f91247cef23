"""API errors map to aimctrl's hierarchy by Status reason, then HTTP status; bodies are bounded."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from aimctrl.kube.errors import (
    MAX_BODY,
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    from_api_exception,
    from_response,
)


def status_body(code: int, reason: str, message: str = "msg", **details: object) -> str:
    doc: dict[str, object] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if details:
        doc["details"] = details
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (404, "NotFound", NotFound),
        (409, "Conflict", Conflict),
        (409, "AlreadyExists", AlreadyExists),
        (403, "Forbidden", Forbidden),
        (401, "Unauthorized", Unauthorized),
        (410, "Expired", Gone),
        (410, "Gone", Gone),
        (429, "TooManyRequests", TooManyRequests),
        (500, "InternalError", ServerError),
        (503, "ServiceUnavailable", ServerError),
    ],
)
def test_status_reason_selects_the_error_class(code: int, reason: str, cls: type) -> None:
    err = from_response(code, status_body(code, reason, "it failed"))
    assert type(err) is cls
    assert err.status == code
    assert err.reason == reason
    assert str(err) == "it failed"


def test_already_exists_is_not_a_conflict() -> None:
    err = from_response(409, status_body(409, "AlreadyExists"))
    assert not isinstance(err, Conflict)
    assert isinstance(err, KubeError)


def test_http_status_is_used_when_the_body_is_not_a_status() -> None:
    err = from_response(404, "<html>not here</html>", http_reason="Not Found")
    assert type(err) is NotFound
    assert err.body == "<html>not here</html>"
    assert type(from_response(502, b"")) is ServerError


def test_invalid_carries_field_causes() -> None:
    body = status_body(
        422,
        "Invalid",
        'AIMModel.aim.silogen.ai "m" is invalid',
        causes=[{"field": "spec.image", "reason": "FieldValueRequired", "message": "Required"}],
    )
    err = from_response(422, body)
    assert isinstance(err, Invalid)
    assert [(c.field, c.reason) for c in err.causes] == [("spec.image", "FieldValueRequired")]


def test_too_many_requests_reads_retry_after() -> None:
    err = from_response(429, status_body(429, "TooManyRequests"), headers={"Retry-After": "3"})
    assert err.retry_after == 3.0


def test_bodies_and_messages_are_truncated_for_logs() -> None:
    huge = "x" * (10 * MAX_BODY)
    err = from_response(500, huge)
    assert len(err.body) < MAX_BODY + 100
    assert len(str(err)) < MAX_BODY + 100
    assert err.body.endswith("more characters)")


def test_from_api_exception_maps_status_body_and_headers() -> None:
    exc = ApiException(status=409, reason="Conflict")
    exc.body = status_body(409, "Conflict", "the object has been modified")
    exc.headers = {"Content-Type": "application/json"}
    err = from_api_exception(exc)
    assert isinstance(err, Conflict)
    assert "modified" in str(err)


def test_from_api_exception_without_status_is_a_transport_error() -> None:
    err = from_api_exception(ApiException(status=0, reason="SSLError: bad cert"))
    assert isinstance(err, TransportError)
    assert err.status == 0
