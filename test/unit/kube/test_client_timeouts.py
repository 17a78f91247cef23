"""A server that accepts a connection and never answers (a half-open peer) cannot hang a call:
the list gets the client's read timeout, a watch its server timeout plus the slack."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from aimctrl.kube import client as kube_client
from aimctrl.kube.client import KubeClient
from aimctrl.kube.resources import CONFIG_MAP
from aimctrl.machinery.listwatch import WatchError

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """127.0.0.1:PORT that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def _client(host: str, read_timeout: float) -> KubeClient:
    cfg = k8s.Configuration()
    cfg.host = host
    return KubeClient(cfg, read_timeout=read_timeout)


def test_a_list_against_a_silent_server_fails_after_the_read_timeout(silent_server: str) -> None:
    lw = _client(silent_server, read_timeout=0.5).list_watcher(CONFIG_MAP)
    started = time.monotonic()
    with pytest.raises(WatchError):
        lw.list(limit=500, continue_=None, resource_version="")
    assert time.monotonic() - started < 10  # urllib3 may retry; never unbounded


def test_a_watch_against_a_silent_server_fails_after_its_timeout_plus_slack(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_client, "WATCH_READ_SLACK", 0.5)
    lw = _client(silent_server, read_timeout=60).list_watcher(CONFIG_MAP)
    started = time.monotonic()
    with pytest.raises(WatchError):
        lw.watch(resource_version="1", timeout_seconds=1, allow_bookmarks=True)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 10, elapsed  # bounded by 1 s + slack, not by the 60 s read timeout
