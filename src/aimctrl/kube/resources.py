"""API resources aimctrl reads and writes, and how their REST paths are built.

Guarantees: a :class:`Resource` is immutable and hashable (usable as an informer key); paths are
built with every name segment percent-encoded; a namespaced resource listed with
``namespace=None`` addresses all namespaces, and a cluster-scoped resource ignores ``namespace``.
The AIM custom kinds are declared next to their models in :mod:`aimctrl.api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "CONFIG_MAP",
    "CORE_EVENT",
    "DEPLOYMENT",
    "EVENT",
    "JOB",
    "LEASE",
    "NAMESPACE",
    "NODE",
    "POD",
    "SECRET",
    "SERVICE",
    "SERVICE_ACCOUNT",
    "Resource",
]


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, *, namespace: str | None = None, name: str | None = None, subresource: str = ""
    ) -> str:
        """The REST path: collection (no ``name``), object, or object subresource."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        segments: list[str] = []
        if self.namespaced and namespace:
            segments += ["namespaces", quote(namespace, safe="")]
        segments.append(self.plural)
        if name:
            segments.append(quote(name, safe=""))
            if subresource:
                segments.append(subresource)
        elif subresource:
            raise ValueError("a subresource needs an object name")
        return prefix + "".join(f"/{s}" for s in segments)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


JOB = Resource("batch", "v1", "jobs", "Job", namespaced=True)
POD = Resource("", "v1", "pods", "Pod", namespaced=True)
SECRET = Resource("", "v1", "secrets", "Secret", namespaced=True)
SERVICE_ACCOUNT = Resource("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True)
SERVICE = Resource("", "v1", "services", "Service", namespaced=True)
CONFIG_MAP = Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
NAMESPACE = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODE = Resource("", "v1", "nodes", "Node", namespaced=False)
DEPLOYMENT = Resource("apps", "v1", "deployments", "Deployment", namespaced=True)
EVENT = Resource("events.k8s.io", "v1", "events", "Event", namespaced=True)
CORE_EVENT = Resource("", "v1", "events", "Event", namespaced=True)
LEASE = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
