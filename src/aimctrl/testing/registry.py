"""Real ``docker-registry`` processes on 127.0.0.1 for tests and the dev cluster.

:class:`LocalRegistries` starts, from config files it writes into a work directory:

* an **open** registry;
* a **Basic** registry (htpasswd with bcrypt, written by ``htpasswd -iBn``: the password goes
  through stdin, never the command line);
* optionally a **token** registry whose bearer tokens come from :mod:`aimctrl.testing.tokenserver`
  (run as its own process, RS256 JWTs with an ``x5c`` self-signed certificate the registry trusts).

Guarantees: each listens on a free 127.0.0.1 port and answers ``GET /v2/`` before :meth:`start`
returns (else it raises with the process log); :meth:`stop` terminates (then kills) every process
it started and waits for it, so nothing is left behind; :class:`RegistryEnv` describes a running
set (addresses, user, password, pids) as JSON or env lines, and :func:`stop_registries` stops such
a set by pid later — only pids whose command line is one of ours.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.testing.tokenserver import TokenServerConfig

__all__ = ["LocalRegistries", "RegistryEnv", "RegistryStartError", "stop_registries"]

_READY_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_OUR_COMMANDS = ("docker-registry", "aimctrl.testing.tokenserver")
_JWT_AUDIENCE = "aimctrl-test-registry"
_JWT_ISSUER = "aimctrl-test-issuer"


class RegistryStartError(RuntimeError):
    """A registry or the token server did not become ready; the message holds its log tail."""


@dataclass(frozen=True)
class RegistryEnv:
    """A running set of test registries, serialisable for ``.dev/registry.env``."""

    registry: str
    registry_auth: str
    user: str
    password: str = field(repr=False)
    registry_token: str | None = None
    token_realm: str | None = None
    pids: tuple[int, ...] = ()
    workdir: str = ""

    def to_env(self) -> dict[str, str]:
        env = {
            "REGISTRY": self.registry,
            "REGISTRY_AUTH": self.registry_auth,
            "REGISTRY_USER": self.user,
            "REGISTRY_PASSWORD": self.password,
            "REGISTRY_PIDS": " ".join(str(p) for p in self.pids),
            "REGISTRY_WORKDIR": self.workdir,
        }
        if self.registry_token:
            env["REGISTRY_TOKEN"] = self.registry_token
        return env

    def env_file_text(self) -> str:
        return "".join(f"{k}={v}\n" for k, v in self.to_env().items())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RegistryEnv:
        data = json.loads(text)
        data["pids"] = tuple(data.get("pids", ()))
        return cls(**data)

    def dockerconfigjson(self, *, auth_field: bool = True) -> bytes:
        """A ``.dockerconfigjson`` payload with the user for the auth (and token) registries."""

        def entry() -> dict[str, str]:
            if auth_field:
                raw = f"{self.user}:{self.password}".encode()
                return {"auth": base64.b64encode(raw).decode()}
            return {"username": self.user, "password": self.password}

        hosts = [self.registry_auth] + ([self.registry_token] if self.registry_token else [])
        return json.dumps({"auths": {h: entry() for h in hosts}}).encode()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signing_pair(workdir: Path) -> tuple[str, str, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aimctrl-test-token-signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    bundle = workdir / "token-root.crt"
    bundle.write_text(cert_pem)
    return key_pem, cert_pem, bundle


class LocalRegistries:
    """Start/stop the open, Basic and (optionally) token registries; a context manager."""

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        token: bool = True,
        user: str = "aimtest",
        password: str | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="aimctrl-registries-"))
        self._token = token
        self.user = user
        self.password = password or secrets.token_urlsafe(12)
        self._clock = clock
        self._procs: list[subprocess.Popen[bytes]] = []
        self.env: RegistryEnv | None = None

    def __enter__(self) -> RegistryEnv:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RegistryEnv:
        if shutil.which("docker-registry") is None:
            raise RegistryStartError(
                "docker-registry is not installed (apt-get install docker-registry)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            open_addr = self._start_registry("open", auth=None)
            htpasswd = self._write_htpasswd()
            basic_addr = self._start_registry(
                "basic", auth={"htpasswd": {"realm": "aimctrl-test", "path": str(htpasswd)}}
            )
            token_addr = realm = None
            if self._token:
                realm = self._start_token_server()
                token_addr = self._start_registry(
                    "token",
                    auth={
                        "token": {
                            "realm": realm,
                            "service": _JWT_AUDIENCE,
                            "issuer": _JWT_ISSUER,
                            "rootcertbundle": str(self.workdir / "token-root.crt"),
                        }
                    },
                )
        except BaseException:
            self.stop()
            raise
        self.env = RegistryEnv(
            registry=open_addr,
            registry_auth=basic_addr,
            user=self.user,
            password=self.password,
            registry_token=token_addr,
            token_realm=realm,
            pids=tuple(p.pid for p in self._procs),
            workdir=str(self.workdir),
        )
        return self.env

    def stop(self) -> None:
        """Terminate every process started here (kill after a grace period) and reap it."""
        for proc in reversed(self._procs):
            _terminate(proc)
        self._procs.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _write_htpasswd(self) -> Path:
        out = subprocess.run(
            ["htpasswd", "-iBn", self.user],
            input=self.password.encode(),
            capture_output=True,
            check=True,
        )
        path = self.workdir / "htpasswd"
        path.write_bytes(out.stdout)
        return path

    def _start_registry(self, name: str, *, auth: dict[str, object] | None) -> str:
        last_error: Exception | None = None
        for _ in range(3):  # a free port can be taken between probing and binding
            addr = f"127.0.0.1:{_free_port()}"
            config: dict[str, object] = {
                "version": 0.1,
                "log": {"level": "info", "accesslog": {"disabled": True}},
                "storage": {
                    "filesystem": {"rootdirectory": str(self.workdir / f"{name}-data")},
                    "delete": {"enabled": True},
                },
                "http": {"addr": addr, "secret": secrets.token_hex(16)},
            }
            if auth is not None:
                config["auth"] = auth
            path = self.workdir / f"{name}.yml"
            path.write_text(yaml.safe_dump(config))
            proc = self._spawn(name, ["docker-registry", "serve", str(path)])
            try:
                self._wait_ready(proc, f"http://{addr}/v2/", name)
            except RegistryStartError as e:
                last_error = e
                continue
            return addr
        raise RegistryStartError(f"registry {name!r} did not start: {last_error}")

    def _start_token_server(self) -> str:
        key_pem, cert_pem, _ = _signing_pair(self.workdir)
        port = _free_port()
        config = TokenServerConfig(
            host="127.0.0.1",
            port=port,
            key_pem=key_pem,
            cert_pem=cert_pem,
            issuer=_JWT_ISSUER,
            service=_JWT_AUDIENCE,
            users={self.user: self.password},
        )
        path = self.workdir / "tokenserver.json"
        path.write_text(json.dumps(asdict(config)))
        path.chmod(0o600)
        command = [sys.executable, "-m", "aimctrl.testing.tokenserver", "--config", str(path)]
        proc = self._spawn("tokenserver", command)
        realm = f"http://127.0.0.1:{port}/token"
        self._wait_ready(proc, realm, "tokenserver")
        return realm

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        try:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        self._procs.append(proc)
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], url: str, name: str) -> None:
        deadline = self._clock.now() + _READY_TIMEOUT
        with httpx.Client(timeout=1.0) as client:
            while self._clock.now() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    if client.get(url).status_code in (200, 401):
                        return
                except httpx.TransportError:
                    pass
                self._clock.sleep(0.02)
        _terminate(proc)
        self._procs.remove(proc)
        tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
        raise RegistryStartError(f"{name} at {url} not ready (exit {proc.returncode}): {tail}")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT)


def stop_registries(env: RegistryEnv, *, clock: Clock = REAL_CLOCK) -> list[int]:
    """Stop the processes of a set started elsewhere (by pid); return the pids signalled.

    A pid is signalled only if its command line is a registry or our token server, so a recycled
    pid is never hit. Waits up to 10 s for each, then SIGKILLs it.
    """
    stopped = []
    for pid in env.pids:
        if not _is_ours(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        stopped.append(pid)
        deadline = clock.now() + _STOP_TIMEOUT
        while _alive(pid) and clock.now() < deadline:
            clock.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    return stopped


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return any(c in cmdline for c in _OUR_COMMANDS)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except (OSError, IndexError):
        return False
    return state != "Z"
