import pytest

from aimctrl.discovery.auth import (
    Challenge,
    TokenCache,
    parse_www_authenticate,
    pick_challenge,
)
from aimctrl.machinery.clock import FakeClock


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="basic-realm"', [Challenge("basic", {"realm": "basic-realm"})]),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/x:pull,push"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/x:pull,push",
                    },
                )
            ],
        ),
        (
            "bearer realm=http://h/t, service=s",
            [Challenge("bearer", {"realm": "http://h/t", "service": "s"})],
        ),
        ('Basic realm="a\\"b"', [Challenge("basic", {"realm": 'a"b'})]),
        (
            'Basic realm="r", Bearer realm="http://t",scope="a,b"',
            [
                Challenge("basic", {"realm": "r"}),
                Challenge("bearer", {"realm": "http://t", "scope": "a,b"}),
            ],
        ),
        ("", []),
        ("Negotiate", [Challenge("negotiate", {})]),
    ],
)
def test_www_authenticate_headers_parse_into_challenges(header, expected):
    assert parse_www_authenticate(header) == expected


def test_bearer_is_preferred_over_basic():
    chosen = pick_challenge([Challenge("basic"), Challenge("bearer", {"realm": "x"})])
    assert chosen is not None
    assert chosen.scheme == "bearer"
    assert pick_challenge([]) is None


def test_tokens_are_cached_per_registry_and_scope_until_shortly_before_expiry():
    clock = FakeClock()
    cache = TokenCache(clock=clock)
    cache.put("r", "repository:a:pull", "tok", expires_in=300)
    assert cache.get("r", "repository:a:pull") == "tok"
    assert cache.get("r", "repository:b:pull") is None
    assert cache.get("other", "repository:a:pull") is None
    clock.step(289)
    assert cache.get("r", "repository:a:pull") == "tok"
    clock.step(1)
    assert cache.get("r", "repository:a:pull") is None


def test_short_lived_tokens_and_default_lifetime():
    clock = FakeClock()
    cache = TokenCache(clock=clock)
    cache.put("r", "s", "short", expires_in=4)
    cache.put("r", "d", "default", expires_in=None)
    clock.step(2)
    assert cache.get("r", "s") is None
    assert cache.get("r", "d") == "default"
    clock.step(48)
    assert cache.get("r", "d") is None
