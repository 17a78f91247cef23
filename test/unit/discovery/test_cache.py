from __future__ import annotations

import threading
from typing import Any

import pytest

from aimctrl.discovery.cache import DiscoveryCache, credentials_identity
from aimctrl.discovery.discover import DiscoveryResult
from aimctrl.discovery.dockerconfig import Credentials, DockerConfig
from aimctrl.discovery.errors import DiscoveryError, Reason
from aimctrl.discovery.labels import parse_labels
from aimctrl.machinery.clock import FakeClock
from aimctrl.testing.images import sample_images

IMAGE = "registry.example:5000/org/model:1"
LABELS = next(s for s in sample_images() if s.name == "good").labels


def _result(image: str) -> DiscoveryResult:
    return DiscoveryResult(
        image=image,
        digest="sha256:" + "0" * 64,
        platform="linux/amd64",
        discovered_at="2025-01-01T00:00:00Z",
        image_metadata=parse_labels(LABELS),
    )


class Recorder:
    def __init__(self, error: DiscoveryError | None = None) -> None:
        self.calls: list[tuple[str, DockerConfig | None]] = []
        self.error = error

    def __call__(self, image: str, *, credentials: DockerConfig | None, **_: Any) -> Any:
        self.calls.append((image, credentials))
        if self.error is not None:
            raise self.error
        return _result(image)


def _creds(password: str) -> DockerConfig:
    return DockerConfig(auths={"registry.example:5000": Credentials("u", password)})


def test_same_image_and_credentials_read_the_registry_once_within_the_ttl() -> None:
    fake = Recorder()
    cache = DiscoveryCache(ttl=30, clock=FakeClock(), discover_fn=fake)
    first = cache.discover(IMAGE, credentials=_creds("p"))
    second = cache.discover(IMAGE, credentials=_creds("p"))
    assert first is second
    assert len(fake.calls) == 1
    assert (cache.hits, cache.misses) == (1, 1)


def test_an_entry_expires_after_the_ttl() -> None:
    clock = FakeClock()
    fake = Recorder()
    cache = DiscoveryCache(ttl=30, clock=clock, discover_fn=fake)
    cache.discover(IMAGE)
    clock.step(30.0)
    cache.discover(IMAGE)
    assert len(fake.calls) == 2


def test_different_credentials_never_share_a_result() -> None:
    fake = Recorder()
    cache = DiscoveryCache(clock=FakeClock(), discover_fn=fake)
    cache.discover(IMAGE, credentials=_creds("a"))
    cache.discover(IMAGE, credentials=_creds("b"))
    cache.discover(IMAGE)
    assert len(fake.calls) == 3


def test_credentials_identity_ignores_other_registries_and_hides_the_secret() -> None:
    other = DockerConfig(auths={"elsewhere.example": Credentials("u", "p")})
    assert credentials_identity(IMAGE, other) == credentials_identity(IMAGE, None) == ""
    identity = credentials_identity(IMAGE, _creds("s3cret"))
    assert identity
    assert "s3cret" not in identity


def test_a_final_error_is_cached_and_raised_again() -> None:
    fake = Recorder(DiscoveryError("no such image", reason=Reason.IMAGE_NOT_FOUND))
    cache = DiscoveryCache(clock=FakeClock(), discover_fn=fake)
    for _ in range(2):
        with pytest.raises(DiscoveryError) as e:
            cache.discover(IMAGE)
        assert e.value.reason == Reason.IMAGE_NOT_FOUND
    assert len(fake.calls) == 1


def test_a_transient_error_is_not_cached() -> None:
    fake = Recorder(DiscoveryError("503", reason=Reason.REGISTRY_UNAVAILABLE))
    cache = DiscoveryCache(clock=FakeClock(), discover_fn=fake)
    for _ in range(2):
        with pytest.raises(DiscoveryError):
            cache.discover(IMAGE)
    assert len(fake.calls) == 2
    assert len(cache) == 0


def test_concurrent_callers_wait_for_the_read_in_flight() -> None:
    entered, release = threading.Event(), threading.Event()
    calls = []

    def slow(image: str, **_: Any) -> DiscoveryResult:
        calls.append(image)
        entered.set()
        release.wait(5)
        return _result(image)

    cache = DiscoveryCache(clock=FakeClock(), discover_fn=slow)
    results: list[DiscoveryResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.discover(IMAGE))) for _ in range(4)
    ]
    threads[0].start()
    assert entered.wait(5)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(5)
    assert calls == [IMAGE]
    assert len(results) == 4
    assert all(r is results[0] for r in results)


def test_the_oldest_entries_are_dropped_beyond_max_entries() -> None:
    fake = Recorder()
    cache = DiscoveryCache(max_entries=2, clock=FakeClock(), discover_fn=fake)
    for tag in ("a", "b", "c"):
        cache.discover(f"registry.example:5000/org/model:{tag}")
    assert len(cache) == 2
    cache.discover("registry.example:5000/org/model:a")
    assert len(fake.calls) == 4


def test_a_new_rediscover_token_reads_again() -> None:
    fake = Recorder()
    cache = DiscoveryCache(ttl=30, clock=FakeClock(), discover_fn=fake)
    cache.discover(IMAGE, token="")
    cache.discover(IMAGE, token="")
    cache.discover(IMAGE, token="2026-11-27T00:00:00Z")
    assert len(fake.calls) == 2


def test_a_stopped_waiter_gives_up_with_a_transient_error_and_caches_nothing() -> None:
    gate = threading.Event()
    entered = threading.Event()

    def slow(image: str, **_: Any) -> DiscoveryResult:
        entered.set()
        gate.wait(5)
        return _result(image)

    cache = DiscoveryCache(ttl=30, clock=FakeClock(), discover_fn=slow)
    reader = threading.Thread(target=cache.discover, args=(IMAGE,), daemon=True)
    reader.start()
    assert entered.wait(5)
    stop = threading.Event()
    stop.set()
    with pytest.raises(DiscoveryError) as raised:
        cache.discover(IMAGE, stop=stop)  # waits on the read in flight, then sees stop
    assert raised.value.reason == Reason.REGISTRY_UNAVAILABLE
    gate.set()
    reader.join(5)
    assert cache.discover(IMAGE).image == IMAGE  # the first read's result, not the error
    assert cache.hits == 1
