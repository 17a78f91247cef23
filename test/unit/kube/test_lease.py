"""KubeLeaseLock's wire format, against a recording stand-in for kubernetes.client.ApiClient."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from aimctrl.kube.lease import KubeLeaseLock, format_micro_time, parse_micro_time
from aimctrl.machinery.leaderelection import ConflictError, LeaderRecord, LockError

PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/lock"


@dataclass
class _Response:
    status: int
    body: bytes

    def read(self) -> bytes:
        return self.body


@dataclass
class _ApiClient:
    """Answers each request with the next scripted (status, JSON) pair and records the request."""

    replies: list[tuple[int, Any]]
    sent: list[tuple[str, str, Any]] = field(default_factory=list)

    def param_serialize(self, *, method: str, resource_path: str, **kw: Any) -> tuple[Any, ...]:
        return method, "https://apiserver" + resource_path, kw["header_params"], kw["body"], None

    def call_api(self, method: str, url: str, headers: Any, body: Any, _: Any, **kw: Any) -> Any:
        assert kw["_request_timeout"] == 5.0
        self.sent.append((method, url.removeprefix("https://apiserver"), body))
        status, payload = self.replies.pop(0)
        return _Response(status, json.dumps(payload).encode())


def _lease(rv: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "lock",
            "namespace": "ns",
            "resourceVersion": rv,
            "labels": {"a": "b"},
        },
        "spec": spec,
    }


WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RECORD = LeaderRecord("me", 15, WHEN, WHEN, 2)


def test_micro_time_always_has_six_fraction_digits_and_z() -> None:
    assert format_micro_time(WHEN) == "2026-01-02T03:04:05.000000Z"
    assert format_micro_time(WHEN.replace(microsecond=7)) == "2026-01-02T03:04:05.000007Z"
    assert parse_micro_time("2026-01-02T03:04:05.000007Z") == WHEN.replace(microsecond=7)
    assert parse_micro_time("2026-01-02T03:04:05Z") == WHEN
    assert parse_micro_time(None) is None


def test_get_maps_a_missing_lease_to_none_and_reads_the_spec() -> None:
    api = _ApiClient(
        [
            (404, {"kind": "Status", "code": 404}),
            (
                200,
                _lease(
                    "7",
                    holderIdentity="x",
                    leaseDurationSeconds=15,
                    renewTime="2026-01-02T03:04:05.000000Z",
                    leaseTransitions=3,
                ),
            ),
        ]
    )
    lock = KubeLeaseLock(api, namespace="ns", name="lock")

    assert lock.get() is None
    record, version = lock.get() or (None, "")
    assert version == "7"
    assert record == LeaderRecord("x", 15, None, WHEN, 3)
    assert api.sent[0][:2] == ("GET", PATH)


def test_update_puts_the_read_version_and_keeps_foreign_fields() -> None:
    api = _ApiClient(
        [
            (200, _lease("7", holderIdentity="x", strategy="OldestEmulationVersion")),
            (200, _lease("8")),
        ]
    )
    lock = KubeLeaseLock(api, namespace="ns", name="lock")
    lock.get()

    assert lock.update(RECORD, "7") == "8"

    method, path, body = api.sent[1]
    assert (method, path) == ("PUT", PATH)
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["metadata"]["labels"] == {"a": "b"}
    assert body["spec"] == {
        "strategy": "OldestEmulationVersion",
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 2,
        "acquireTime": "2026-01-02T03:04:05.000000Z",
        "renewTime": "2026-01-02T03:04:05.000000Z",
    }


def test_create_posts_to_the_collection() -> None:
    api = _ApiClient([(201, _lease("1"))])
    assert KubeLeaseLock(api, namespace="ns", name="lock").create(RECORD) == "1"
    method, path, body = api.sent[0]
    assert (method, path) == ("POST", PATH.removesuffix("/lock"))
    assert body["metadata"] == {"name": "lock", "namespace": "ns"}


def test_409_is_a_conflict_and_other_errors_are_lock_errors_with_short_messages() -> None:
    api = _ApiClient([(409, {"reason": "Conflict"}), (500, {"message": "x" * 5000})])
    lock = KubeLeaseLock(api, namespace="ns", name="lock")

    with pytest.raises(ConflictError, match="conflict"):
        lock.update(RECORD, "1")
    with pytest.raises(LockError, match="HTTP 500") as err:
        lock.update(RECORD, "1")
    assert len(str(err.value)) < 1200
