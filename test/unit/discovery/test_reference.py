import pytest

from aimctrl.discovery.errors import InvalidReferenceError, Reason
from aimctrl.discovery.reference import ImageReference, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "endpoint"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None, "registry-1.docker.io"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "registry-1.docker.io"),
        ("amd/aim:v1", "docker.io", "amd/aim", "v1", None, "registry-1.docker.io"),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None, None),
        ("index.docker.io/amd/x:1", "docker.io", "amd/x", "1", None, "registry-1.docker.io"),
        ("registry-1.docker.io/amd/x", "docker.io", "amd/x", "latest", None, None),
        ("ghcr.io/silogen/aim:0.8", "ghcr.io", "silogen/aim", "0.8", None, "ghcr.io"),
        ("127.0.0.1:5000/models/x:v1", "127.0.0.1:5000", "models/x", "v1", None, "127.0.0.1:5000"),
        ("localhost/x", "localhost", "x", "latest", None, "localhost"),
        ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", "latest", None, None),
        ("Reg.Example.COM/x", "reg.example.com", "x", "latest", None, None),
        (f"ghcr.io/a/b@{D}", "ghcr.io", "a/b", None, D, None),
        (f"ghcr.io/a/b:v1@{D}", "ghcr.io", "a/b", "v1", D, None),
        ("a/b-c__d.e_f:V_1.0-rc", "docker.io", "a/b-c__d.e_f", "V_1.0-rc", None, None),
    ],
)
def test_parses_references_with_docker_defaults(text, registry, repository, tag, digest, endpoint):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    if endpoint is not None:
        assert ref.endpoint == endpoint


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("a b", "whitespace"),
        ("Foo/bar", "lowercase"),
        ("ghcr.io/", "no repository"),
        ("x:", "invalid tag"),
        ("x:-bad", "invalid tag"),
        ("x@sha256:abc", "64 lowercase hex"),
        ("x@nodigest", "invalid digest"),
        ("host:99999/x", "invalid registry port"),
        ("ghcr.io/a//b", "invalid repository component"),
        ("ghcr.io/a/b-", "invalid repository component"),
        ("x" * 5000, "longer than"),
    ],
)
def test_rejects_invalid_references_with_a_typed_error(text, fragment):
    with pytest.raises(InvalidReferenceError, match=fragment) as info:
        parse_reference(text)
    assert info.value.reason is Reason.INVALID_IMAGE_REFERENCE


def test_reference_prefers_digest_and_renders_canonically():
    ref = parse_reference(f"ghcr.io/a/b:v1@{D}")
    assert ref.reference == D
    assert str(ref) == f"ghcr.io/a/b:v1@{D}"
    assert str(parse_reference("busybox")) == "docker.io/library/busybox:latest"


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [("127.0.0.1:5000", True), ("localhost", True), ("[::1]:5000", True), ("ghcr.io", False)],
)
def test_loopback_registries_are_recognised(registry, loopback):
    assert ImageReference(registry=registry, repository="x").is_loopback is loopback
