"""A :class:`~aimctrl.machinery.leaderelection.LeaseLock` over a ``coordination.k8s.io/v1`` Lease.

Guarantees:

* Optimistic concurrency through ``metadata.resourceVersion``: an update is a PUT carrying the
  version that was read, so a stale writer gets HTTP 409, raised as
  :class:`~aimctrl.machinery.leaderelection.ConflictError` (also for a create that finds the Lease
  already there). Every other failure (HTTP error, timeout, connection) is a
  :class:`~aimctrl.machinery.leaderelection.LockError` with a truncated server message.
* Every request has a timeout (5 s by default), well under the 10 s renew deadline.
* Times are written as Kubernetes ``MicroTime``: RFC 3339 in UTC with exactly six fractional
  digits and a ``Z`` (``2026-01-02T03:04:05.000000Z``). The generated client's own serialisation
  (``datetime.isoformat()``) drops the fraction when it is zero, which the API server rejects, so
  this module sends plain JSON through the client's transport instead of the typed models.
* Labels, annotations and spec fields this module does not know are kept on update.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from aimctrl.errors import truncate
from aimctrl.machinery.leaderelection import ConflictError, LeaderRecord, LockError

__all__ = ["KubeLeaseLock", "format_micro_time", "parse_micro_time"]

_RECORD_FIELDS = frozenset(
    {"holderIdentity", "leaseDurationSeconds", "leaseTransitions", "acquireTime", "renewTime"}
)
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def format_micro_time(when: datetime) -> str:
    """Render ``when`` as a Kubernetes MicroTime (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: str | None) -> datetime | None:
    """Parse a MicroTime or Time string from the API server; ``None`` or ``""`` give ``None``."""
    if not text:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


def _record_to_spec(record: LeaderRecord) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "holderIdentity": record.holder_identity,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "leaseTransitions": record.leader_transitions,
    }
    if record.acquire_time is not None:
        spec["acquireTime"] = format_micro_time(record.acquire_time)
    if record.renew_time is not None:
        spec["renewTime"] = format_micro_time(record.renew_time)
    return spec


def _spec_to_record(spec: dict[str, Any]) -> LeaderRecord:
    return LeaderRecord(
        holder_identity=spec.get("holderIdentity") or "",
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=parse_micro_time(spec.get("acquireTime")),
        renew_time=parse_micro_time(spec.get("renewTime")),
        leader_transitions=int(spec.get("leaseTransitions") or 0),
    )


class KubeLeaseLock:
    """The Lease ``namespace/name``, read and written through a ``kubernetes.client.ApiClient``."""

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str,
        name: str,
        request_timeout: float = 5.0,
    ) -> None:
        self._api = api_client
        self._namespace = namespace
        self._name = name
        self._timeout = request_timeout
        self._collection = _LEASES.format(namespace=namespace)
        self._path = f"{self._collection}/{name}"
        # The last Lease seen, so updates keep metadata and spec fields owned by others.
        self._last: dict[str, Any] | None = None

    def describe(self) -> str:
        return f"{self._namespace}/{self._name}"

    def get(self) -> tuple[LeaderRecord, str] | None:
        status, body = self._request("GET", self._path)
        if status == 404:
            return None
        lease = self._expect_ok("get", status, body)
        return _spec_to_record(lease.get("spec") or {}), lease["metadata"]["resourceVersion"]

    def create(self, record: LeaderRecord) -> str:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": _record_to_spec(record),
        }
        status, body = self._request("POST", self._collection, lease)
        return self._expect_ok("create", status, body)["metadata"]["resourceVersion"]  # type: ignore[no-any-return]

    def update(self, record: LeaderRecord, version: str) -> str:
        lease = copy.deepcopy(self._last) if self._last else {}
        metadata = lease.setdefault("metadata", {})
        metadata.pop("managedFields", None)
        metadata.update(name=self._name, namespace=self._namespace, resourceVersion=version)
        lease.update(apiVersion="coordination.k8s.io/v1", kind="Lease")
        spec = _record_to_spec(record)
        kept = {k: v for k, v in (lease.get("spec") or {}).items() if k not in _RECORD_FIELDS}
        lease["spec"] = {**kept, **spec}
        status, body = self._request("PUT", self._path, lease)
        return self._expect_ok("update", status, body)["metadata"]["resourceVersion"]  # type: ignore[no-any-return]

    def _expect_ok(self, verb: str, status: int, body: bytes) -> dict[str, Any]:
        if status == 409:
            raise ConflictError(f"{verb} lease {self.describe()}: conflict: {truncate(body)}")
        if not 200 <= status <= 299:
            raise LockError(f"{verb} lease {self.describe()}: HTTP {status}: {truncate(body)}")
        try:
            lease: dict[str, Any] = json.loads(body)
            if not isinstance(lease["metadata"]["resourceVersion"], str):
                raise TypeError("resourceVersion is not a string")
        except (ValueError, KeyError, TypeError) as e:
            raise LockError(f"{verb} lease {self.describe()}: bad response") from e
        self._last = lease
        return lease

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            request = self._api.param_serialize(
                method=method,
                resource_path=path,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(*request, _request_timeout=self._timeout)
            data = response.read()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            raise LockError(f"{method} lease {self.describe()}: {truncate(str(e))}") from e
        return int(response.status), bytes(data or b"")
