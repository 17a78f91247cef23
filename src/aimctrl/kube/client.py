"""``KubeClient``: generic, dict-level access to the Kubernetes API, and the informer's list/watch.

Guarantees:

* The only use of the ``kubernetes`` package is configuration: kubeconfig / in-cluster loading
  (TLS material, bearer tokens with their refresh hooks) and its urllib3 pool. Requests and
  responses are plain JSON dicts; no generated pydantic models are built.
* Every failed call raises an :mod:`aimctrl.kube.errors` exception; no request waits forever
  (connect and read timeouts on every call; a watch's read timeout is its server timeout + 15 s).
* No client-side rate limit (the apiserver's Priority and Fairness protects it) and no automatic
  retries: callers retry through the workqueue or the reflector's backoff.
* :meth:`KubeClient.list_watcher` implements :class:`~aimctrl.machinery.listwatch.ListerWatcher`
  by reading the watch's chunked JSON lines itself; a 410 (HTTP or ``ERROR`` event) raises
  :class:`~aimctrl.machinery.listwatch.GoneError`.
* Impersonation (``Impersonate-User`` / one ``Impersonate-Group`` header per group) applies to
  every request of the client, watches included.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import structlog
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from urllib3.exceptions import HTTPError

from aimctrl.kube.errors import Gone, KubeError, TransportError, from_response
from aimctrl.kube.resources import Resource
from aimctrl.machinery.listwatch import (
    EventType,
    GoneError,
    ListPage,
    WatchError,
    WatchEvent,
)
from aimctrl.machinery.store import Object

__all__ = ["FIELD_MANAGER", "KubeClient", "ResourceListerWatcher"]

log = structlog.get_logger(__name__)

FIELD_MANAGER = "aimctrl"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML; this is what kubectl sends
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
WATCH_READ_SLACK = 15


class KubeClient:
    """Generic verbs over :class:`Resource`, returning dicts."""

    def __init__(
        self,
        configuration: Any,
        *,
        impersonate_user: str | None = None,
        impersonate_groups: Sequence[str] = (),
        user_agent: str = "aimctrl",
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        """``configuration`` is a loaded ``kubernetes.client.Configuration``."""

        self._cfg = configuration
        self._api = k8s.ApiClient(configuration)
        self._pool: urllib3.PoolManager = self._api.rest_client.pool_manager
        self._host = str(configuration.host).rstrip("/")
        self._user_agent = user_agent
        self._impersonate_user = impersonate_user
        self._impersonate_groups = tuple(impersonate_groups)
        self._read_timeout = read_timeout

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls,
        path: str | None = None,
        *,
        context: str | None = None,
        impersonate_user: str | None = None,
        impersonate_groups: Sequence[str] = (),
    ) -> KubeClient:
        """From a kubeconfig file (``None``: ``$KUBECONFIG`` or ``~/.kube/config``)."""
        cfg = type.__call__(k8s.Configuration)
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
        return cls(
            _tuned(cfg), impersonate_user=impersonate_user, impersonate_groups=impersonate_groups
        )

    @classmethod
    def in_cluster(
        cls, *, impersonate_user: str | None = None, impersonate_groups: Sequence[str] = ()
    ) -> KubeClient:
        """From the pod's service account (token re-read as the kubelet rotates it)."""
        cfg = type.__call__(k8s.Configuration)
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return cls(
            _tuned(cfg), impersonate_user=impersonate_user, impersonate_groups=impersonate_groups
        )

    @property
    def api_client(self) -> Any:
        """The official ``ApiClient`` (for the Lease lock), impersonating like this client.

        Only the user is impersonated there: RBAC bindings to a service account match its user
        name, and the official client sends one value per default header.
        """
        if self._impersonate_user:
            self._api.set_default_header("Impersonate-User", self._impersonate_user)  # type: ignore[no-untyped-call]
        return self._api

    @property
    def host(self) -> str:
        return self._host

    def close(self) -> None:
        self._pool.clear()

    # -- verbs ----------------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, *, namespace: str = "") -> Object:
        return self._json("GET", resource.path(namespace=namespace, name=name))

    def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> Object:
        """The whole collection, fetched in pages; a List dict with every item and the list RV."""
        items: list[Object] = []
        continue_: str | None = None
        rv = ""
        while True:
            page = self.list_page(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=limit,
                continue_=continue_,
            )
            items.extend(page.items)
            rv = rv or page.resource_version
            continue_ = page.continue_
            if not continue_:
                break
        return {
            "apiVersion": resource.api_version,
            "kind": f"{resource.kind}List",
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    def list_page(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> ListPage:
        query: dict[str, str] = {}
        if limit:
            query["limit"] = str(limit)
        if continue_:
            query["continue"] = continue_
        if resource_version:
            query["resourceVersion"] = resource_version
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        doc = self._json("GET", resource.path(namespace=namespace), query=query)
        items: list[Object] = doc.get("items") or []
        for item in items:
            # Items of built-in lists carry no type information; restore it for readers.
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        meta = doc.get("metadata") or {}
        return ListPage(
            items=items,
            resource_version=str(meta.get("resourceVersion") or ""),
            continue_=meta.get("continue") or None,
        )

    def create(
        self,
        resource: Resource,
        body: Object,
        *,
        namespace: str = "",
        field_manager: str = FIELD_MANAGER,
    ) -> Object:
        namespace = namespace or (body.get("metadata") or {}).get("namespace") or ""
        return self._json(
            "POST",
            resource.path(namespace=namespace),
            query={"fieldManager": field_manager},
            body=_typed(resource, body),
        )

    def update(
        self,
        resource: Resource,
        body: Object,
        *,
        subresource: str = "",
        field_manager: str = FIELD_MANAGER,
    ) -> Object:
        """PUT the whole object; ``metadata.resourceVersion`` in ``body`` makes it conditional."""
        meta = body.get("metadata") or {}
        path = resource.path(
            namespace=meta.get("namespace") or "", name=meta["name"], subresource=subresource
        )
        return self._json(
            "PUT", path, query={"fieldManager": field_manager}, body=_typed(resource, body)
        )

    def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str = "",
        propagation_policy: str = "Background",
        preconditions: Mapping[str, str] | None = None,
    ) -> Object:
        options: Object = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation_policy,
        }
        if preconditions:
            options["preconditions"] = dict(preconditions)
        return self._json("DELETE", resource.path(namespace=namespace, name=name), body=options)

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Object,
        *,
        namespace: str = "",
        subresource: str = "",
        field_manager: str = FIELD_MANAGER,
    ) -> Object:
        """JSON merge patch (RFC 7386): ``None`` values delete keys, lists are replaced."""
        return self._json(
            "PATCH",
            resource.path(namespace=namespace, name=name, subresource=subresource),
            query={"fieldManager": field_manager},
            body=patch,
            content_type=MERGE_PATCH,
        )

    def patch_status(
        self,
        resource: Resource,
        name: str,
        patch: Object,
        *,
        namespace: str = "",
        field_manager: str = FIELD_MANAGER,
    ) -> Object:
        return self.patch(
            resource,
            name,
            patch,
            namespace=namespace,
            subresource="status",
            field_manager=field_manager,
        )

    def apply(
        self,
        resource: Resource,
        body: Object,
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        subresource: str = "",
    ) -> Object:
        """Server-side apply of ``body``, the complete intent of ``field_manager``."""
        meta = body.get("metadata") or {}
        path = resource.path(
            namespace=meta.get("namespace") or "", name=meta["name"], subresource=subresource
        )
        query = {"fieldManager": field_manager, "force": "true" if force else "false"}
        return self._json(
            "PATCH", path, query=query, body=_typed(resource, body), content_type=APPLY_PATCH
        )

    def apply_status(
        self,
        resource: Resource,
        body: Object,
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
    ) -> Object:
        return self.apply(
            resource, body, field_manager=field_manager, force=force, subresource="status"
        )

    def list_watcher(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> ResourceListerWatcher:
        return ResourceListerWatcher(
            self,
            resource,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    # -- transport ------------------------------------------------------------------------------

    def _headers(self, content_type: str | None) -> urllib3.HTTPHeaderDict:
        headers = urllib3.HTTPHeaderDict({"Accept": JSON, "User-Agent": self._user_agent})
        if content_type:
            headers["Content-Type"] = content_type
        for setting in self._cfg.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        if self._impersonate_user:
            headers["Impersonate-User"] = self._impersonate_user
        for group in self._impersonate_groups:
            headers.add("Impersonate-Group", group)
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Object | None = None,
        content_type: str = JSON,
        read_timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; return the unread response (2xx) or raise a :class:`KubeError`."""
        url = self._host + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        try:
            resp = self._pool.request(
                method,
                url,
                body=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=urllib3.Timeout(
                    connect=CONNECT_TIMEOUT,
                    read=read_timeout if read_timeout is not None else self._read_timeout,
                ),
                preload_content=False,
                retries=False,
                redirect=False,
            )
        except (HTTPError, OSError) as e:
            raise TransportError(f"{method} {path}: {e}") from e
        if resp.status >= 400:
            try:
                raw = resp.read()
            except (HTTPError, OSError):
                raw = b""
            finally:
                resp.release_conn()
            raise from_response(
                resp.status, raw, http_reason=resp.reason or "", headers=dict(resp.headers)
            )
        return resp

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Object | None = None,
        content_type: str = JSON,
    ) -> Object:
        resp = self.request(method, path, query=query, body=body, content_type=content_type)
        try:
            raw = resp.read()
        except (HTTPError, OSError) as e:
            raise TransportError(f"{method} {path}: reading response: {e}") from e
        finally:
            resp.release_conn()
        if not raw:
            return {}
        doc = json.loads(raw)
        return doc if isinstance(doc, dict) else {"value": doc}


def _tuned(cfg: Any) -> Any:
    # Every informer holds one pooled connection open for its watch; keep room for requests.
    cfg.connection_pool_maxsize = max(int(cfg.connection_pool_maxsize or 0), 64)
    return cfg


def _typed(resource: Resource, body: Object) -> Object:
    if "apiVersion" in body and "kind" in body:
        return body
    return {"apiVersion": resource.api_version, "kind": resource.kind, **body}


class ResourceListerWatcher:
    """List/watch of one resource (optionally one namespace and label selector)."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> None:
        self._client = client
        self._resource = resource
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector

    def list(
        self, *, limit: int | None, continue_: str | None, resource_version: str | None
    ) -> ListPage:
        try:
            return self._client.list_page(
                self._resource,
                namespace=self._namespace,
                label_selector=self._label_selector,
                field_selector=self._field_selector,
                limit=limit,
                continue_=continue_,
                resource_version=resource_version,
            )
        except Gone as e:
            raise GoneError(str(e)) from e
        except TransportError as e:
            raise WatchError(str(e), status=None) from e
        except KubeError as e:
            raise WatchError(str(e), status=e.status) from e

    def watch(
        self, *, resource_version: str, timeout_seconds: int, allow_bookmarks: bool
    ) -> _WatchStream:
        query = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            query["resourceVersion"] = resource_version
        if allow_bookmarks:
            query["allowWatchBookmarks"] = "true"
        if self._label_selector:
            query["labelSelector"] = self._label_selector
        if self._field_selector:
            query["fieldSelector"] = self._field_selector
        try:
            resp = self._client.request(
                "GET",
                self._resource.path(namespace=self._namespace),
                query=query,
                read_timeout=timeout_seconds + WATCH_READ_SLACK,
            )
        except Gone as e:
            raise GoneError(str(e)) from e
        except TransportError as e:
            raise WatchError(str(e), status=None) from e
        except KubeError as e:
            raise WatchError(str(e), status=e.status) from e
        return _WatchStream(resp)


class _WatchStream:
    """One open watch response, decoded line by line as chunks arrive."""

    def __init__(self, resp: urllib3.BaseHTTPResponse) -> None:
        self._resp = resp
        self._closed = threading.Event()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        # shutdown() aborts a read blocked in another thread; close() alone would not.
        shutdown = getattr(self._resp, "shutdown", None)
        if shutdown is not None:
            # urllib3 raises ValueError when the socket is already gone (connection dropped or
            # returned to the pool): the stream is closed either way.
            with contextlib.suppress(ValueError, OSError):
                shutdown()

    def __iter__(self) -> Iterator[WatchEvent]:
        buf = bytearray()
        clean = False
        try:
            for chunk in self._resp.stream(65536, decode_content=True):
                buf += chunk
                while (end := buf.find(b"\n")) >= 0:
                    line = bytes(buf[:end]).strip()
                    del buf[: end + 1]
                    if line:
                        yield _decode_event(line)
            if buf.strip():
                yield _decode_event(bytes(buf))
            clean = True
        except (HTTPError, OSError) as e:
            if not self._closed.is_set():
                raise WatchError(f"watch stream broke: {e}", status=None) from e
        finally:
            if clean:
                self._resp.release_conn()
            else:
                self._resp.close()


def _decode_event(line: bytes) -> WatchEvent:
    try:
        doc = json.loads(line)
        kind = EventType(doc["type"])
        obj = doc["object"]
    except (ValueError, KeyError, TypeError) as e:
        raise WatchError(f"undecodable watch event: {line[:200]!r}") from e
    if kind == EventType.ERROR and obj.get("code") == 410:
        raise GoneError(str(obj.get("message") or "watch expired"))
    return WatchEvent(kind, obj)
