"""A tiny Docker token service for the bearer-auth test registry (``python -m`` runnable).

It answers ``GET /token?service=…&scope=…`` with an RS256 JWT whose header carries the signing
certificate as ``x5c``, which ``docker-registry`` checks against its ``rootcertbundle``.
Guarantees: a known user with the right password gets every action requested; a wrong password gets
401; anonymous callers get ``pull`` only on repositories under the configured public prefixes and
nothing elsewhere (so the registry answers 401 for them). Nothing here is meant to be secure.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["TokenServer", "TokenServerConfig", "main", "make_jwt"]


@dataclass(frozen=True)
class TokenServerConfig:
    host: str
    port: int
    key_pem: str
    cert_pem: str
    issuer: str = "aimctrl-test-issuer"
    service: str = "aimctrl-test-registry"
    users: dict[str, str] = field(default_factory=dict)
    public_prefixes: tuple[str, ...] = ("public/",)
    lifetime: int = 300

    @classmethod
    def load(cls, path: Path) -> TokenServerConfig:
        data = json.loads(path.read_text())
        data["public_prefixes"] = tuple(data.get("public_prefixes", ("public/",)))
        return cls(**data)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(claims: Mapping[str, object], *, key_pem: str, cert_pem: str) -> str:
    """An RS256 JWT with ``x5c`` = the DER certificate (standard base64, per RFC 7515)."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("token signing key must be RSA")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode("ascii")]}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(signature)


class TokenServer:
    """The HTTP server; :meth:`start` serves on a thread, :meth:`stop` shuts it down."""

    def __init__(self, config: TokenServerConfig) -> None:
        self.config = config
        handler = type("_Handler", (_Handler,), {"server_config": config})
        self._httpd = ThreadingHTTPServer((config.host, config.port), handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server_config: TokenServerConfig

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the registry's own log is enough

    def do_GET(self) -> None:
        cfg = self.server_config
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
            return
        query = urllib.parse.parse_qs(url.query)
        ok, user = self._authenticate()
        if not ok:
            self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            return
        access = [
            grant
            for scope in query.get("scope", [])
            for part in scope.split(" ")
            if (grant := _grant(part, user=user, public=cfg.public_prefixes))
        ]
        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": user or "",
            "aud": query.get("service", [cfg.service])[0],
            "exp": now + cfg.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        token = make_jwt(claims, key_pem=cfg.key_pem, cert_pem=cfg.cert_pem)
        self._reply(200, {"token": token, "access_token": token, "expires_in": cfg.lifetime})

    def _authenticate(self) -> tuple[bool, str | None]:
        """(False, None) for wrong credentials, else (True, user name or None for anonymous)."""
        header = self.headers.get("Authorization", "")
        if not header:
            return True, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        expected = self.server_config.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            return False, None
        return True, user

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _grant(scope: str, *, user: str | None, public: tuple[str, ...]) -> dict[str, object] | None:
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if kind != "repository" or not name:
        return None
    wanted = [a for a in actions.split(",") if a]
    if user is None:
        wanted = [a for a in wanted if a == "pull"] if name.startswith(public) else []
    return {"type": kind, "name": name, "actions": wanted} if wanted else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="test token service for docker-registry")
    parser.add_argument("--config", type=Path, required=True, help="JSON TokenServerConfig")
    args = parser.parse_args(argv)
    server = TokenServer(TokenServerConfig.load(args.config))
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
