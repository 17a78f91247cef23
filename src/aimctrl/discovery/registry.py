"""A read-only OCI distribution client: manifests, indexes and config blobs over one httpx.Client.

Guarantees:

* only manifests and the config blob are fetched, never layers; every document is size-capped
  (``max_document_bytes``) while it streams, and its sha256 digest is verified;
* 401 triggers one authorisation from the ``WWW-Authenticate`` challenge (Basic from the pull
  secret, or a Bearer token from the realm — anonymous when there is no secret) and one retry;
  a second 401, a 403, or a token service refusing the credentials raise
  :class:`RegistryAuthError`; a cached token that the registry rejects (expired) is replaced once;
* transient faults (5xx, 429, timeouts, connection errors) are retried with bounded exponential
  backoff with jitter (``RetryPolicy``: attempts and a total time budget, sleeping on the injected
  clock and stopping early when ``stop`` is set); 401/403/404 are never retried; exhausted retries
  raise :class:`RegistryUnavailableError`;
* 404 and ``MANIFEST_UNKNOWN``/``NAME_UNKNOWN``/``BLOB_UNKNOWN`` raise :class:`ImageNotFoundError`;
* loopback registries (``127.0.0.1``, ``localhost``) and those in ``insecure_registries`` are
  spoken to over plain HTTP, all others over HTTPS; credentials are never sent to a plain-HTTP
  token realm that is neither loopback nor listed as insecure.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import httpx
import structlog
import tenacity
from pydantic import BaseModel, ValidationError

from aimctrl import __version__
from aimctrl.discovery.auth import (
    Challenge,
    TokenCache,
    TokenResponse,
    basic_header,
    parse_www_authenticate,
    pick_challenge,
)
from aimctrl.discovery.dockerconfig import Credentials, DockerConfig
from aimctrl.discovery.errors import (
    ImageNotFoundError,
    RegistryAuthError,
    RegistryProtocolError,
    RegistryUnavailableError,
    quote_body,
)
from aimctrl.discovery.oci import (
    DOCKER_SCHEMA1,
    INDEX_TYPES,
    LINUX_AMD64,
    MANIFEST_ACCEPT,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    select_platform,
)
from aimctrl.discovery.reference import (
    DOCKER_HUB,
    DOCKER_HUB_ENDPOINT,
    ImageReference,
    is_loopback_registry,
)
from aimctrl.machinery.clock import REAL_CLOCK, Clock

__all__ = ["Manifest", "RegistryClient", "ResolvedImage", "RetryPolicy"]

_log = structlog.get_logger(__name__)
_MiB = 1024 * 1024
_ERROR_BODY_LIMIT = 64 * 1024
_NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "NOT_FOUND"})
_AUTH_CODES = frozenset({"UNAUTHORIZED", "DENIED"})
_Doc = TypeVar("_Doc", bound=BaseModel)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one transient-failing request."""

    attempts: int = 4
    initial_backoff: float = 0.25
    max_backoff: float = 4.0
    jitter: float = 0.25
    budget: float = 30.0


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as served, with its verified digest."""

    media_type: str
    digest: str
    body: bytes

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


@dataclass(frozen=True)
class ResolvedImage:
    """One image resolved to a platform: digests, platform and config labels."""

    reference: ImageReference
    digest: str
    manifest_digest: str
    media_type: str
    platform: Platform
    labels: Mapping[str, str]


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: httpx.Headers
    body: bytes


class _TransientError(Exception):
    pass


class RegistryClient:
    """Reads images from OCI registries; safe to share between threads; close it when done."""

    def __init__(
        self,
        *,
        credentials: DockerConfig | None = None,
        insecure_registries: Collection[str] = (),
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        max_document_bytes: int = 4 * _MiB,
        clock: Clock = REAL_CLOCK,
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self._credentials = credentials or DockerConfig()
        self._insecure = frozenset(r.lower() for r in insecure_registries)
        self._retry = retry
        self._max_document = max_document_bytes
        self._clock = clock
        self._stop = stop or threading.Event()
        self._tokens = TokenCache(clock=clock)
        self._basic: dict[str, str] = {}
        self._lock = threading.Lock()
        self._http = httpx.Client(
            transport=transport,
            timeout=timeout,
            follow_redirects=True,
            verify=verify,
            headers={"User-Agent": f"aimctrl/{__version__}"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient(credentials={self._credentials!r})"

    # -- public API -----------------------------------------------------------------------------

    def ping(self, registry: str) -> None:
        """``GET /v2/`` (authorising if challenged); raise unless the registry answers 200."""
        reply = self._get(registry, "/v2/", scope="", accept=None, limit=_ERROR_BODY_LIMIT)
        self._raise_for_status(reply, what=f"registry {registry}")

    def get_manifest(self, ref: ImageReference, reference: str | None = None) -> Manifest:
        """The manifest or index ``reference`` (default: the ref's digest or tag) of ``ref``."""
        target = reference or ref.reference
        what = (
            f"manifest {ref.registry}/{ref.repository}@{target}"
            if ":" in target
            else (f"manifest {ref.registry}/{ref.repository}:{target}")
        )
        reply = self._get(
            ref.registry,
            f"/v2/{ref.repository}/manifests/{target}",
            scope=_pull_scope(ref),
            accept=MANIFEST_ACCEPT,
            limit=self._max_document,
        )
        self._raise_for_status(reply, what=what)
        digest = _sha256(reply.body)
        if target.startswith("sha256:") and target != digest:
            raise RegistryProtocolError(f"{what}: content digest is {digest}, not {target}")
        served = reply.headers.get("docker-content-digest", "")
        if served.startswith("sha256:") and served != digest:
            raise RegistryProtocolError(f"{what}: content digest {digest} != header {served}")
        media_type = _media_type(reply, what)
        return Manifest(media_type=media_type, digest=digest, body=reply.body)

    def get_blob(self, ref: ImageReference, descriptor: Descriptor) -> bytes:
        """A (small) blob, size-capped and digest-verified."""
        what = f"blob {descriptor.digest} of {ref.registry}/{ref.repository}"
        if descriptor.size > self._max_document:
            raise RegistryProtocolError(
                f"{what}: {descriptor.size} bytes exceeds the {self._max_document}-byte limit"
            )
        reply = self._get(
            ref.registry,
            f"/v2/{ref.repository}/blobs/{descriptor.digest}",
            scope=_pull_scope(ref),
            accept=None,
            limit=self._max_document,
        )
        self._raise_for_status(reply, what=what)
        if descriptor.digest.startswith("sha256:") and _sha256(reply.body) != descriptor.digest:
            raise RegistryProtocolError(f"{what}: content does not match its digest")
        return reply.body

    def resolve(self, ref: ImageReference, *, platform: Platform = LINUX_AMD64) -> ResolvedImage:
        """Manifest → (index → ``platform``) → config blob → labels."""
        top = self.get_manifest(ref)
        manifest = top
        if top.is_index:
            index = _parse(ImageIndex, top.body, what=f"index {ref}")
            chosen = select_platform(index.manifests, platform)
            manifest = self.get_manifest(ref, chosen.digest)
            if manifest.is_index:
                raise RegistryProtocolError(f"{ref}: nested image indexes are not supported")
        image_manifest = _parse(ImageManifest, manifest.body, what=f"manifest {ref}")
        config_bytes = self.get_blob(ref, image_manifest.config)
        config = _parse(ImageConfig, config_bytes, what=f"image config of {ref}")
        found = Platform(
            os=config.os or platform.os,
            architecture=config.architecture or platform.architecture,
            variant=config.variant or None,
        )
        return ResolvedImage(
            reference=ref,
            digest=top.digest,
            manifest_digest=manifest.digest,
            media_type=manifest.media_type,
            platform=found,
            labels=config.labels,
        )

    # -- requests, auth and retries ---------------------------------------------------------------

    def _base_url(self, registry: str) -> str:
        plain = is_loopback_registry(registry) or registry in self._insecure
        endpoint = DOCKER_HUB_ENDPOINT if registry == DOCKER_HUB else registry
        return f"{'http' if plain else 'https'}://{endpoint}"

    def _get(
        self, registry: str, path: str, *, scope: str, accept: str | None, limit: int
    ) -> _Reply:
        url = self._base_url(registry) + path
        headers = {"Accept": accept} if accept else {}
        cached = self._cached_authorization(registry, scope)
        reply = self._send(url, {**headers, **cached}, limit=limit)
        if reply.status != 401:
            return reply
        if cached:
            _log.debug("registry_rejected_cached_auth", registry=registry, scope=scope)
            self._forget_authorization(registry, scope)
        challenges = parse_www_authenticate(reply.headers.get("www-authenticate", ""))
        authorization = self._authorize(registry, scope, pick_challenge(challenges))
        reply = self._send(url, {**headers, "Authorization": authorization}, limit=limit)
        if reply.status == 401:
            self._forget_authorization(registry, scope)
            raise RegistryAuthError(self._denied_message(registry, path))
        return reply

    def _cached_authorization(self, registry: str, scope: str) -> dict[str, str]:
        with self._lock:
            basic = self._basic.get(registry)
        if basic is not None:
            return {"Authorization": basic}
        token = self._tokens.get(registry, scope)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _forget_authorization(self, registry: str, scope: str) -> None:
        with self._lock:
            self._basic.pop(registry, None)
        self._tokens.invalidate(registry, scope)

    def _authorize(self, registry: str, scope: str, challenge: Challenge | None) -> str:
        creds = self._credentials.lookup(registry)
        if challenge is None:
            raise RegistryAuthError(f"registry {registry} answered 401 without a usable challenge")
        if challenge.scheme == "basic":
            if creds is None or not creds.has_basic:
                raise RegistryAuthError(
                    f"registry {registry} requires credentials and no pull secret has an entry "
                    f"for {registry!r}"
                )
            header = basic_header(creds)
            with self._lock:
                self._basic[registry] = header
            return header
        if challenge.scheme != "bearer":
            raise RegistryAuthError(
                f"registry {registry} asks for unsupported auth scheme {challenge.scheme!r}"
            )
        if creds is not None and creds.registry_token:
            return f"Bearer {creds.registry_token}"
        token = self._fetch_token(registry, scope, challenge, creds)
        return f"Bearer {token}"

    def _fetch_token(
        self, registry: str, scope: str, challenge: Challenge, creds: Credentials | None
    ) -> str:
        realm = challenge.params.get("realm", "")
        try:
            realm_url = httpx.URL(realm)
        except (httpx.InvalidURL, TypeError):
            realm_url = None
        if realm_url is None or realm_url.scheme not in {"http", "https"} or not realm_url.host:
            raise RegistryAuthError(f"registry {registry} names an invalid token realm {realm!r}")
        params = {k: v for k, v in (("service", challenge.params.get("service", "")),) if v}
        if scope:
            params["scope"] = scope
        headers: dict[str, str] = {}
        if creds is not None and creds.has_basic:
            loopback = is_loopback_registry(realm_url.host)
            if realm_url.scheme == "http" and not loopback and registry not in self._insecure:
                raise RegistryAuthError(
                    f"registry {registry}: refusing to send credentials to plain-HTTP realm {realm}"
                )
            headers["Authorization"] = basic_header(creds)
        url = str(realm_url.copy_merge_params(params))
        reply = self._send(url, headers, limit=_ERROR_BODY_LIMIT)
        if reply.status in (401, 403):
            who = "the pull secret's credentials" if headers else "anonymous access"
            raise RegistryAuthError(
                f"token service of registry {registry} refused {who} (HTTP {reply.status})"
            )
        if reply.status != 200:
            raise RegistryProtocolError(
                f"token service of registry {registry} answered HTTP {reply.status}: "
                f"{quote_body(reply.body)}"
            )
        answer = _parse(TokenResponse, reply.body, what=f"token of registry {registry}")
        if not answer.bearer:
            raise RegistryProtocolError(f"token service of registry {registry} sent no token")
        self._tokens.put(registry, scope, answer.bearer, expires_in=answer.expires_in)
        return answer.bearer

    def _send(self, url: str, headers: dict[str, str], *, limit: int) -> _Reply:
        policy = self._retry
        start = self._clock.now()

        def should_stop(state: tenacity.RetryCallState) -> bool:
            return (
                state.attempt_number >= policy.attempts
                or self._clock.now() - start >= policy.budget
                or self._stop.is_set()
            )

        retrying = tenacity.Retrying(
            stop=should_stop,
            wait=tenacity.wait_exponential_jitter(
                multiplier=policy.initial_backoff, max=policy.max_backoff, jitter=policy.jitter
            ),
            retry=tenacity.retry_if_exception_type(_TransientError),
            sleep=self._sleep,
            before_sleep=lambda state: _log.info(
                "registry_request_retry",
                url=_redact(url),
                attempt=state.attempt_number,
                error=str(state.outcome.exception()) if state.outcome else "",
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(url, headers, limit=limit)
        except _TransientError as e:
            raise RegistryUnavailableError(
                f"registry request {_redact(url)} failed: {e} (gave up after "
                f"{retrying.statistics.get('attempt_number', policy.attempts)} attempts)"
            ) from e
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds, self._stop)

    def _send_once(self, url: str, headers: dict[str, str], *, limit: int) -> _Reply:
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                cap = limit if response.status_code < 300 else _ERROR_BODY_LIMIT
                body = _read_capped(response, cap, url)
        except httpx.TimeoutException as e:
            raise _TransientError(f"timed out ({type(e).__name__})") from e
        except httpx.TransportError as e:
            raise _TransientError(f"connection failed ({type(e).__name__}: {e})") from e
        if response.status_code >= 500 or response.status_code == 429:
            raise _TransientError(f"HTTP {response.status_code}: {quote_body(body)}")
        return _Reply(status=response.status_code, headers=response.headers, body=body)

    def _raise_for_status(self, reply: _Reply, *, what: str) -> None:
        if 200 <= reply.status < 300:
            return
        codes = _error_codes(reply.body)
        if reply.status == 404 or codes & _NOT_FOUND_CODES:
            raise ImageNotFoundError(f"{what} not found ({_describe(reply)})")
        if reply.status in (401, 403) or codes & _AUTH_CODES:
            raise RegistryAuthError(f"access to {what} denied ({_describe(reply)})")
        _unexpected(reply, what)

    def _denied_message(self, registry: str, path: str) -> str:
        has_creds = self._credentials.lookup(registry) is not None
        hint = (
            "the pull secret's credentials were rejected"
            if has_creds
            else f"no pull secret has credentials for {registry!r}"
        )
        return (
            f"registry {registry} refused access to {path} (HTTP 401): {hint}; "
            "the repository may also not exist"
        )


def _pull_scope(ref: ImageReference) -> str:
    return f"repository:{ref.repository}:pull"


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _read_capped(response: httpx.Response, cap: int, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        if response.status_code >= 300:
            return b""
        raise RegistryProtocolError(
            f"{_redact(url)}: {declared} bytes exceeds the {cap}-byte limit"
        )
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > cap:
            if response.status_code >= 300:
                break
            raise RegistryProtocolError(f"{_redact(url)}: response exceeds the {cap}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(reply: _Reply, what: str) -> str:
    header = str(reply.headers.get("content-type", "")).split(";", 1)[0].strip().lower()
    if header in MANIFEST_TYPES | INDEX_TYPES:
        return header
    if header.startswith(DOCKER_SCHEMA1):
        raise RegistryProtocolError(f"{what}: legacy Docker schema 1 manifests are not supported")
    try:
        document = json.loads(reply.body)
    except ValueError as e:
        raise RegistryProtocolError(f"{what}: not valid JSON ({e})") from None
    if not isinstance(document, dict):
        raise RegistryProtocolError(f"{what}: not a JSON object")
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared in MANIFEST_TYPES | INDEX_TYPES:
        return declared
    if document.get("schemaVersion") == 1:
        raise RegistryProtocolError(f"{what}: legacy Docker schema 1 manifests are not supported")
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document:
        return OCI_MANIFEST
    raise RegistryProtocolError(f"{what}: unknown manifest media type {header or declared!r}")


def _parse(model: type[_Doc], body: bytes, *, what: str) -> _Doc:
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        location = ".".join(str(p) for p in first.get("loc", ())) or "document"
        raise RegistryProtocolError(f"{what}: invalid at {location}: {first.get('msg')}") from None


def _error_codes(body: bytes) -> set[str]:
    try:
        document = json.loads(body)
    except ValueError:
        return set()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return set()
    return {str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")}


def _describe(reply: _Reply) -> str:
    codes = _error_codes(reply.body)
    return f"HTTP {reply.status}" + (f", {', '.join(sorted(codes))}" if codes else "")


def _unexpected(reply: _Reply, what: str) -> NoReturn:
    raise RegistryProtocolError(f"{what}: unexpected HTTP {reply.status}: {quote_body(reply.body)}")


def _redact(url: str) -> str:
    """Drop the query (token realms may echo account names there); keep scheme, host and path."""
    return url.split("?", 1)[0]
