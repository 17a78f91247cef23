"""A short-lived, per-round cache in front of :func:`~aimctrl.discovery.discover`.

Many models usually name the same few images; without a cache every model's discovery reads the
registry again (1,000 models over 10 images = 1,000 manifest + config reads). A reconciler can opt
in by calling :meth:`DiscoveryCache.discover` instead of :func:`discover`.

Guarantees:

* the key is ``(image, credentials identity, token)``: the registry the image lives on and a
  SHA-256 of the credentials configured for it (never the secret itself), so two models reading
  the same image with different pull secrets never share a result — one whose credentials are
  refused cannot see the labels read with another's; ``token`` (a model's rediscover request)
  makes an explicit request for a fresh read miss the entries read for other tokens;
* an entry lives ``ttl`` seconds (default 30) from the moment its read finished; a successful
  result and a final :class:`DiscoveryError` (not found, denied, unparseable labels) are cached,
  a transient one (``RegistryUnavailable``) never is;
* single flight: concurrent callers with the same key wait for the one read in progress instead
  of issuing their own; a caller never holds the lock across I/O; a waiter whose ``stop`` is set
  stops waiting at once with a transient ``RegistryUnavailable`` (never cached);
* the cache holds at most ``max_entries`` (default 1,024) entries; the oldest are dropped first;
* results are immutable to callers in practice (pydantic models handed out as is); callers must
  not mutate them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from aimctrl.discovery.discover import DiscoveryResult, discover
from aimctrl.discovery.dockerconfig import DockerConfig
from aimctrl.discovery.errors import DiscoveryError, Reason, RegistryUnavailableError
from aimctrl.discovery.reference import parse_reference
from aimctrl.machinery.clock import REAL_CLOCK, Clock

__all__ = ["DiscoveryCache", "credentials_identity"]

Discover = Callable[..., DiscoveryResult]

_STOP_POLL = 0.2


def credentials_identity(image: str, credentials: DockerConfig | None) -> str:
    """A stable digest of the credentials ``credentials`` would use for ``image`` ("" if none)."""
    if credentials is None:
        return ""
    try:
        registry = parse_reference(image).registry
    except DiscoveryError:
        return ""
    creds = credentials.lookup(registry)
    if creds is None:
        return ""
    material = "\0".join((registry, creds.username, creds.password, creds.registry_token))
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class _Entry:
    expires: float
    result: DiscoveryResult | None = None
    error: DiscoveryError | None = None
    done: bool = False


class DiscoveryCache:
    """See the module docstring. ``discover_fn`` is the seam for tests."""

    def __init__(
        self,
        *,
        ttl: float = 30.0,
        max_entries: int = 1024,
        clock: Clock = REAL_CLOCK,
        discover_fn: Discover = discover,
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._discover = discover_fn
        self._cond = threading.Condition()
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def discover(
        self,
        image: str,
        *,
        credentials: DockerConfig | None = None,
        insecure_registries: Collection[str] = (),
        stop: threading.Event | None = None,
        token: str = "",
    ) -> DiscoveryResult:
        """Like :func:`~aimctrl.discovery.discover`, answered from the cache when fresh
        (``stop`` interrupts this caller's registry retries, or its wait for another's read)."""
        key = (image, credentials_identity(image, credentials), token)
        with self._cond:
            while True:
                entry = self._entries.get(key)
                if entry is None or (entry.done and entry.expires <= self._clock.now()):
                    entry = _Entry(expires=0.0)
                    self._entries[key] = entry
                    self._entries.move_to_end(key)
                    self._evict()
                    self.misses += 1
                    break
                if entry.done:
                    self.hits += 1
                    return _answer(entry)
                if stop is not None and stop.is_set():
                    raise RegistryUnavailableError(f"{image}: stopped while waiting for a read")
                # Real time: polls ``stop`` while another caller's read is in flight.
                self._cond.wait(_STOP_POLL if stop is not None else None)
        try:
            result = self._discover(
                image,
                credentials=credentials,
                insecure_registries=insecure_registries,
                clock=self._clock,
                stop=stop,
            )
        except DiscoveryError as e:
            self._finish(key, entry, error=e, keep=e.reason != Reason.REGISTRY_UNAVAILABLE)
            raise
        except BaseException:
            self._finish(key, entry, keep=False)
            raise
        self._finish(key, entry, result=result, keep=True)
        return result

    def _finish(
        self,
        key: tuple[str, str, str],
        entry: _Entry,
        *,
        result: DiscoveryResult | None = None,
        error: DiscoveryError | None = None,
        keep: bool,
    ) -> None:
        with self._cond:
            entry.result, entry.error, entry.done = result, error, True
            entry.expires = self._clock.now() + self._ttl
            if not keep:
                # Waiters retry on their own (a fresh read); the entry must not answer them.
                entry.expires = float("-inf")
                if self._entries.get(key) is entry:
                    del self._entries[key]
            self._cond.notify_all()

    def _evict(self) -> None:
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)


def _answer(entry: _Entry) -> DiscoveryResult:
    if entry.error is not None:
        raise entry.error
    assert entry.result is not None
    return entry.result
