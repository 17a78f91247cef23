import base64
import json

import pytest

from aimctrl.discovery.dockerconfig import (
    Credentials,
    DockerConfig,
    load_pull_secrets_dir,
    normalise_registry_key,
    parse_dockerconfigjson,
)
from aimctrl.discovery.errors import PullSecretError, Reason


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("key", "normalised"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://GHCR.io/v2/", "ghcr.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
    ],
)
def test_registry_keys_are_normalised(key, normalised):
    assert normalise_registry_key(key) == normalised


@pytest.mark.parametrize(
    "entry",
    [
        {"auth": _auth("u", "p:w")},
        {"username": "u", "password": "p:w"},
    ],
)
@pytest.mark.parametrize("form", ["bytes", "str", "dict"])
def test_credentials_come_from_auth_field_or_username_password(entry, form):
    payload = {"auths": {"https://index.docker.io/v1/": entry}}
    raw = {"bytes": json.dumps(payload).encode(), "str": json.dumps(payload), "dict": payload}[form]
    config = parse_dockerconfigjson(raw)
    assert config.lookup("docker.io") == Credentials(username="u", password="p:w")


def test_legacy_dockercfg_shape_is_accepted():
    config = parse_dockerconfigjson({"ghcr.io": {"auth": _auth("a", "b")}})
    assert config.lookup("ghcr.io") == Credentials(username="a", password="b")


def test_lookup_needs_the_same_port():
    config = parse_dockerconfigjson({"auths": {"127.0.0.1:5000": {"auth": _auth("a", "b")}}})
    assert config.lookup("127.0.0.1:5000") is not None
    assert config.lookup("127.0.0.1:5001") is None


def test_merge_keeps_the_first_secret_for_a_registry():
    first = parse_dockerconfigjson({"auths": {"r.io": {"username": "first", "password": "1"}}})
    second = parse_dockerconfigjson(
        {
            "auths": {
                "r.io": {"username": "second", "password": "2"},
                "o.io": {"auth": _auth("o", "p")},
            }
        }
    )
    merged = DockerConfig.merge([first, second])
    assert merged.lookup("r.io").username == "first"
    assert merged.lookup("o.io").username == "o"


def test_credentials_repr_never_shows_the_secret():
    creds = Credentials(username="alice", password="s3cret-value")
    config = DockerConfig(auths={"r.io": creds})
    for text in (repr(creds), str(creds), repr(config)):
        assert "s3cret-value" not in text
    assert "alice" in repr(creds)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"auths": []}).encode(), "'auths' is not an object"),
        (json.dumps({"auths": {"r": {"auth": "!!!"}}}).encode(), "not base64"),
        (
            json.dumps({"auths": {"r": {"auth": base64.b64encode(b"nocolon").decode()}}}).encode(),
            "user:password",
        ),
        (json.dumps({"auths": {"r": {"username": 3}}}).encode(), "not a string"),
    ],
)
def test_invalid_payloads_raise_pull_secret_errors_without_the_secret(payload, fragment):
    with pytest.raises(PullSecretError, match=fragment) as info:
        parse_dockerconfigjson(payload, source="pull secret 'x'")
    assert info.value.reason is Reason.IMAGE_PULL_AUTH_FAILURE
    assert "!!!" not in str(info.value)


def test_pull_secrets_dir_merges_mounted_secrets_in_name_order(tmp_path):
    for name, user in (("b-secret", "second"), ("a-secret", "first")):
        (tmp_path / name).mkdir()
        (tmp_path / name / ".dockerconfigjson").write_text(
            json.dumps({"auths": {"r.io": {"username": user, "password": "x"}}})
        )
    (tmp_path / "not-a-secret").mkdir()
    assert load_pull_secrets_dir(tmp_path).lookup("r.io").username == "first"


def test_missing_pull_secrets_dir_is_an_error(tmp_path):
    with pytest.raises(PullSecretError, match="does not exist"):
        load_pull_secrets_dir(tmp_path / "nope")
