"""The probe server over real localhost HTTP."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from aimctrl.probes import ProbeServer, parse_bind_address


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def probes() -> Iterator[ProbeServer]:
    server = ProbeServer("127.0.0.1:0")
    yield server
    server.shut_down()


def _start(server: ProbeServer) -> int:
    port = server.start()
    assert port is not None
    assert port > 0
    return port


def test_healthz_is_ok_while_the_server_runs(probes: ProbeServer) -> None:
    port = _start(probes)

    assert _get(port, "/healthz") == (200, "ok")
    assert _get(port, "/healthz?verbose") == (200, "[+]ping ok\nhealthz check passed\n")
    assert _get(port, "/healthz/ping") == (200, "ok")


def test_readyz_flips_with_its_checks(probes: ProbeServer) -> None:
    synced = {"models": False, "templates": True}
    probes.add_readyz_check("informers-models", lambda: synced["models"])
    probes.add_readyz_check("informers-templates", lambda: synced["templates"])
    port = _start(probes)

    status, body = _get(port, "/readyz")
    assert status == 500
    assert body == (
        "[-]informers-models failed: reason withheld\n"
        "[+]informers-templates ok\n"
        "readyz check failed\n"
    )

    synced["models"] = True
    assert _get(port, "/readyz") == (200, "ok")

    synced["templates"] = False
    status, body = _get(port, "/readyz")
    assert status == 500
    assert "[-]informers-templates failed" in body


def test_a_raising_check_fails_without_leaking_the_error(probes: ProbeServer) -> None:
    def broken() -> bool:
        raise RuntimeError("token=abc")

    probes.add_healthz_check("election", broken)
    port = _start(probes)

    status, body = _get(port, "/healthz")
    assert status == 500
    assert "[-]election failed: reason withheld" in body
    assert "abc" not in body
    assert _get(port, "/healthz/election")[0] == 500


def test_exclude_and_single_check_paths(probes: ProbeServer) -> None:
    probes.add_readyz_check("cache", lambda: False)
    probes.add_readyz_check("leader", lambda: True)
    port = _start(probes)

    assert _get(port, "/readyz?exclude=cache") == (200, "ok")
    assert _get(port, "/readyz/leader") == (200, "ok")
    assert _get(port, "/readyz/cache")[0] == 500
    assert _get(port, "/readyz/missing")[0] == 404
    assert _get(port, "/metrics")[0] == 404


def test_readyz_without_checks_is_ready(probes: ProbeServer) -> None:
    port = _start(probes)
    assert _get(port, "/readyz") == (200, "ok")


def test_duplicate_check_names_are_rejected(probes: ProbeServer) -> None:
    probes.add_readyz_check("cache", lambda: True)
    with pytest.raises(ValueError, match="already registered"):
        probes.add_readyz_check("cache", lambda: True)


def test_shut_down_closes_the_port() -> None:
    server = ProbeServer("127.0.0.1:0")
    port = _start(server)
    server.shut_down()

    with socket.socket() as s:
        s.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))


def test_zero_disables_the_server() -> None:
    server = ProbeServer("0")
    assert not server.enabled
    assert server.start() is None
    server.shut_down()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":8081", ("", 8081)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:9000", ("::1", 9000)),
        ("0", None),
        ("", None),
    ],
)
def test_parse_bind_address(address: str, expected: tuple[str, int] | None) -> None:
    assert parse_bind_address(address) == expected


def test_parse_bind_address_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_bind_address("8081")
