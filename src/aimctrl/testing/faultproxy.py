"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real (plain-HTTP) registry.

Tests point a model's image at ``proxy.address`` instead of the registry and script what goes
wrong, per request path:

* :class:`Status` answers a status code (and an OCI error body) without asking the registry;
* :class:`Delay` waits before forwarding (past the client's timeout, if long enough);
* :class:`Truncate` forwards and cuts the body, declaring the shorter length;
* :class:`Oversize` forwards and pads the body to a given size;
* :class:`Garbage` replaces the body with bytes that are not the document asked for;
* :class:`HangUp` closes the connection without answering.

Guarantees: rules are tried in the order they were added and the first matching one (a
``re.search`` of its pattern on the request path, with ``times`` left) applies; a request no rule
matches is forwarded unchanged (method, path, query, ``Accept`` and ``Authorization`` headers;
status, body and the registry's headers back, ``Location`` rewritten to the proxy). Every request is
recorded with the fault applied, so tests can count attempts and measure the backoff between
them. A :class:`Delay` is cut short by :meth:`FaultProxy.stop`, so stopping never waits for it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

__all__ = [
    "Delay",
    "Fault",
    "FaultProxy",
    "Garbage",
    "HangUp",
    "Oversize",
    "RecordedRequest",
    "Rule",
    "Status",
    "Truncate",
]

_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
_FORWARDED_REQUEST_HEADERS = ("accept", "authorization")
_UPSTREAM_TIMEOUT = 30.0


@dataclass(frozen=True)
class Status:
    """Answer ``code`` at once; 401 carries a Basic challenge so clients try to authorise."""

    code: int
    body: bytes = b""

    def payload(self) -> bytes:
        if self.body:
            return self.body
        code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "MANIFEST_UNKNOWN"}.get(self.code, "")
        if not code:
            return b"injected fault"
        return b'{"errors":[{"code":"%s","message":"injected fault"}]}' % code.encode()


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before forwarding the request."""

    seconds: float


@dataclass(frozen=True)
class Truncate:
    """Forward, then send only the first ``keep`` bytes of the body (and say so in the length)."""

    keep: int


@dataclass(frozen=True)
class Oversize:
    """Forward, then pad the body with spaces to ``size`` bytes."""

    size: int


@dataclass(frozen=True)
class Garbage:
    """Replace the body (and drop ``Docker-Content-Digest``, which would no longer match)."""

    body: bytes = b'{"schemaVersion": 2, "config": {"digest": '


@dataclass(frozen=True)
class HangUp:
    """Close the connection without sending a response."""


Fault = Status | Delay | Truncate | Oversize | Garbage | HangUp


@dataclass
class Rule:
    """``fault`` for requests whose path matches ``path``; ``times`` left (None: unlimited)."""

    fault: Fault
    path: str = ""
    times: int | None = None
    hits: int = 0

    def matches(self, path: str) -> bool:
        return (self.times is None or self.times > 0) and re.search(self.path, path) is not None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the proxy saw: when (monotonic), what, the fault applied and the status sent."""

    at: float
    method: str
    path: str
    fault: Fault | None
    status: int | None


@dataclass
class _State:
    upstream: str
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rules: list[Rule] = field(default_factory=list)
    log: list[RecordedRequest] = field(default_factory=list)

    def take(self, path: str) -> Fault | None:
        with self.lock:
            for rule in self.rules:
                if rule.matches(path):
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.fault
        return None

    def record(self, method: str, path: str, fault: Fault | None, status: int | None) -> None:
        with self.lock:
            self.log.append(RecordedRequest(time.monotonic(), method, path, fault, status))


class FaultProxy:
    """The proxy; ``with FaultProxy("127.0.0.1:5000") as proxy: proxy.add(Status(503), path=…)``."""

    def __init__(self, upstream: str) -> None:
        self._state = _State(upstream=upstream)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self._state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``: use it as the registry part of image references."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, fault: Fault, *, path: str = "", times: int | None = None) -> Rule:
        """Apply ``fault`` to requests whose path matches the regex ``path`` (``times`` at most)."""
        rule = Rule(fault=fault, path=path, times=times)
        with self._state.lock:
            self._state.rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._state.lock:
            self._state.rules.remove(rule)

    def clear(self) -> None:
        with self._state.lock:
            self._state.rules.clear()

    def requests(self, path: str = "") -> list[RecordedRequest]:
        """Requests seen so far whose path matches the regex ``path``, oldest first."""
        with self._state.lock:
            return [r for r in self._state.log if re.search(path, r.path)]

    def count(self, path: str = "") -> int:
        return len(self.requests(path))


def _handler_class(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: object) -> None:
            pass  # the request log is state.log, not stderr

        def _handle(self) -> None:
            path = self.path.split("?", 1)[0]
            fault = state.take(path)
            if isinstance(fault, HangUp):
                state.record(self.command, path, fault, None)
                self.close_connection = True
                return
            if isinstance(fault, Status):
                headers = {"Content-Type": "application/json"}
                if fault.code == 401:
                    headers["WWW-Authenticate"] = 'Basic realm="fault-proxy"'
                self._reply(fault.code, headers, fault.payload())
                state.record(self.command, path, fault, fault.code)
                return
            if isinstance(fault, Delay) and state.stopping.wait(fault.seconds):
                self.close_connection = True
                return
            try:
                status, headers, body = self._forward()
            except httpx.HTTPError as e:
                status, headers, body = 502, {}, f"upstream failed: {e}".encode()
            if isinstance(fault, Truncate):
                body = body[: fault.keep]
            elif isinstance(fault, Oversize):
                body = body + b" " * max(fault.size - len(body), 0)
            elif isinstance(fault, Garbage):
                body = fault.body
                headers.pop("docker-content-digest", None)
            try:
                self._reply(status, headers, body)
            except OSError:
                self.close_connection = True  # the client gave up (timed out) meanwhile
            state.record(self.command, path, fault, status)

        def _forward(self) -> tuple[int, dict[str, str], bytes]:
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in _FORWARDED_REQUEST_HEADERS
            }
            with httpx.Client(timeout=_UPSTREAM_TIMEOUT) as client:
                response = client.request(
                    self.command, f"http://{state.upstream}{self.path}", headers=headers
                )
            out = {
                k.lower(): v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS
            }
            out.pop("content-encoding", None)  # httpx has decoded the body already
            if "location" in out:
                proxy = f"127.0.0.1:{self.connection.getsockname()[1]}"
                out["location"] = out["location"].replace(state.upstream, proxy)
            return response.status_code, out, response.content

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()

    return Handler
