"""The health probe server: ``/healthz`` and ``/readyz`` in the shape the API server uses.

Guarantees:

* ``GET /healthz`` and ``GET /readyz`` answer 200 ``ok`` when every check of that kind passes and
  500 otherwise, listing each check as ``[+]name ok`` or ``[-]name failed: reason withheld``
  followed by ``healthz check failed``. ``?verbose`` lists the checks on success too;
  ``?exclude=name`` (repeatable) skips a check. ``GET /healthz/<name>`` runs one check.
* ``/healthz`` always has a ``ping`` check, so it answers 200 while the process serves HTTP.
  ``/readyz`` passes only when every registered readiness check does (with none registered it
  passes, like controller-runtime).
* A check is a callable returning ``True`` (pass) or ``False`` (fail); an exception is a failure,
  logged with the check's name, never shown to the caller.
* The bind address uses the manager flag's spelling: ``":8081"`` (all interfaces),
  ``"127.0.0.1:0"`` (a free port, see :attr:`ProbeServer.port`), ``""`` or ``"0"`` (disabled).
  :meth:`ProbeServer.shut_down` stops serving and closes the socket.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import structlog

__all__ = ["Checker", "ProbeServer", "parse_bind_address"]

Checker = Callable[[], bool]

_log = structlog.get_logger(__name__)
_ENDPOINTS = ("healthz", "readyz")


def parse_bind_address(address: str) -> tuple[str, int] | None:
    """``":8081"`` → ``("", 8081)``; ``"[::1]:0"`` → ``("::1", 0)``; ``""``/``"0"`` → ``None``."""
    if address in ("", "0"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bind address {address!r} is not host:port")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    probes: ProbeServer

    def handle_error(self, request: object, client_address: object) -> None:
        """A prober that hangs up mid-answer is routine: no traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Server6(_Server):
    address_family = socket.AF_INET6


class ProbeServer:
    """Serves named liveness and readiness checks over HTTP from a background thread."""

    def __init__(self, bind_address: str) -> None:
        self._address = parse_bind_address(bind_address)
        self._mu = threading.Lock()
        self._checks: dict[str, dict[str, Checker]] = {
            "healthz": {"ping": lambda: True},
            "readyz": {},
        }
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def port(self) -> int | None:
        """The bound port once started (useful with port 0); ``None`` when disabled."""
        return self._server.server_address[1] if self._server else None

    def add_healthz_check(self, name: str, check: Checker) -> None:
        self._add("healthz", name, check)

    def add_readyz_check(self, name: str, check: Checker) -> None:
        self._add("readyz", name, check)

    def _add(self, kind: str, name: str, check: Checker) -> None:
        if not name or "/" in name:
            raise ValueError(f"invalid check name {name!r}")
        with self._mu:
            if name in self._checks[kind]:
                raise ValueError(f"{kind} check {name!r} is already registered")
            self._checks[kind][name] = check

    def start(self) -> int | None:
        """Bind and serve in a daemon thread; return the bound port (``None`` when disabled)."""
        if self._address is None or self._server is not None:
            return self.port
        host, port = self._address
        server_class = _Server6 if ":" in host else _Server
        server = server_class((host, port), _Handler)
        server.probes = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="probes", daemon=True
        )
        self._thread.start()
        _log.info("probe server started", address=host or "*", port=self.port)
        return self.port

    def shut_down(self) -> None:
        """Stop serving, close the socket and wait for the serving thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def evaluate(
        self, kind: str, *, exclude: frozenset[str] = frozenset()
    ) -> list[tuple[str, bool]]:
        """Run every ``kind`` check not in ``exclude``; return ``(name, passed)`` sorted by name."""
        with self._mu:
            checks = sorted(self._checks[kind].items())
        return [
            (name, self._run(kind, name, check)) for name, check in checks if name not in exclude
        ]

    def evaluate_one(self, kind: str, name: str) -> bool | None:
        """Run one named check; ``None`` if there is no such check."""
        with self._mu:
            check = self._checks[kind].get(name)
        return None if check is None else self._run(kind, name, check)

    @staticmethod
    def _run(kind: str, name: str, check: Checker) -> bool:
        try:
            return bool(check())
        except Exception as e:  # noqa: BLE001 - a crashing check is a failing check
            _log.warning("probe check raised", probe=kind, check=name, error=repr(e))
            return False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if not parts or parts[0] not in _ENDPOINTS or len(parts) > 2:
            self._reply(HTTPStatus.NOT_FOUND, "404 page not found\n")
            return
        kind = parts[0]
        probes = self.server.probes
        if len(parts) == 2:
            passed = probes.evaluate_one(kind, parts[1])
            if passed is None:
                self._reply(HTTPStatus.NOT_FOUND, f"{kind} check {parts[1]!r} not found\n")
            elif passed:
                self._reply(HTTPStatus.OK, "ok")
            else:
                self._reply(
                    HTTPStatus.INTERNAL_SERVER_ERROR, "internal server error: check failed\n"
                )
            return
        query = parse_qs(url.query, keep_blank_values=True)
        results = probes.evaluate(kind, exclude=frozenset(query.get("exclude", [])))
        failed = [name for name, ok in results if not ok]
        if not failed and "verbose" not in query:
            self._reply(HTTPStatus.OK, "ok")
            return
        lines = [
            f"[+]{name} ok" if ok else f"[-]{name} failed: reason withheld" for name, ok in results
        ]
        if failed:
            lines.append(f"{kind} check failed")
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, "\n".join(lines) + "\n")
            _log.info("probe failed", probe=kind, failed=failed)
        else:
            lines.append(f"{kind} check passed")
            self._reply(HTTPStatus.OK, "\n".join(lines) + "\n")

    def _reply(self, status: HTTPStatus, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Kubelet probes every few seconds; access lines would drown the log."""
