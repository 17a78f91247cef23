"""RegistryClient against an in-memory registry (httpx.MockTransport): auth, retries, integrity."""

import base64
import json
import threading
from dataclasses import dataclass, field

import httpx
import pytest

from aimctrl.discovery.dockerconfig import parse_dockerconfigjson
from aimctrl.discovery.errors import (
    ImageNotFoundError,
    RegistryAuthError,
    RegistryProtocolError,
    RegistryUnavailableError,
)
from aimctrl.discovery.oci import DOCKER_SCHEMA1
from aimctrl.discovery.reference import parse_reference
from aimctrl.discovery.registry import RegistryClient, RetryPolicy
from aimctrl.testing.images import BuiltImage, ImageForm, build_image

REG = "127.0.0.1:5000"
REALM = "http://127.0.0.1:5999/token"
LABELS = {"org.amd.silogen.model.canonicalName": "amd64/model"}
ARM = {"org.amd.silogen.model.canonicalName": "arm64/model"}


class InstantClock:
    """Time moves only by the sleeps the client asks for; nothing blocks."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def wait(self, cond: threading.Condition, timeout: float | None) -> bool:
        return False

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        self.sleeps.append(seconds)
        self.t += seconds
        return bool(stop and stop.is_set())


@dataclass
class FakeRegistry:
    auth: str = "open"  # open | basic | bearer
    user: str = "u"
    password: str = "p"
    images: dict[str, BuiltImage] = field(default_factory=dict)
    faults: dict[str, list[int | Exception]] = field(default_factory=dict)
    valid_tokens: set[str] = field(default_factory=set)
    requests: list[httpx.Request] = field(default_factory=list)
    token_count: int = 0
    tamper: dict[str, bytes] = field(default_factory=dict)
    schema1: bool = False

    def add(self, repo_tag: str, image: BuiltImage) -> None:
        self.images[repo_tag] = image

    def count(self, fragment: str) -> int:
        return sum(1 for r in self.requests if fragment in str(r.url))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        for fragment, queue in self.faults.items():
            if fragment in url and queue:
                fault = queue.pop(0)
                if isinstance(fault, Exception):
                    raise fault
                return httpx.Response(fault, text="busy")
        if url.startswith(REALM):
            return self._token(request)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        repo, kind, ref = self._split(path)
        for repo_tag, image in self.images.items():
            name, tag = repo_tag.split(":")
            if name != repo:
                continue
            if kind == "manifests":
                for media_type, body in image.manifests:
                    if (ref == tag and body == image.manifests[-1][1]) or _digest(body) == ref:
                        if self.schema1:
                            return httpx.Response(
                                200, content=body, headers={"Content-Type": DOCKER_SCHEMA1}
                            )
                        body = self.tamper.get(ref, body)
                        return httpx.Response(
                            200, content=body, headers={"Content-Type": media_type}
                        )
            elif ref in image.blobs:
                return httpx.Response(200, content=self.tamper.get(ref, image.blobs[ref]))
        return httpx.Response(
            404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}
        )

    @staticmethod
    def _split(path: str) -> tuple[str, str, str]:
        rest = path.removeprefix("/v2/")
        for kind in ("manifests", "blobs"):
            marker = f"/{kind}/"
            if marker in rest:
                repo, ref = rest.split(marker, 1)
                return repo, kind, ref
        return rest, "", ""

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        if self.auth == "basic":
            good = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if header != good:
                return httpx.Response(
                    401,
                    headers={"WWW-Authenticate": 'Basic realm="r"'},
                    json={"errors": [{"code": "UNAUTHORIZED"}]},
                )
        if self.auth == "bearer" and header.removeprefix("Bearer ") not in self.valid_tokens:
            challenge = f'Bearer realm="{REALM}",service="reg",scope="repository:x:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if self.auth == "forbidden":
            return httpx.Response(403, json={"errors": [{"code": "DENIED"}]})
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_count += 1
        header = request.headers.get("authorization")
        good = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if header is not None and header != good:
            return httpx.Response(401, json={"details": "bad creds"})
        token = f"tok-{self.token_count}-{'anon' if header is None else 'user'}"
        self.valid_tokens.add(token)
        return httpx.Response(200, json={"token": token, "expires_in": 300})


def _digest(body: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(body).hexdigest()


def _creds(user: str = "u", password: str = "p", *, auth_field: bool = True):  # noqa: S107
    entry = (
        {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        if auth_field
        else {"username": user, "password": password}
    )
    return parse_dockerconfigjson({"auths": {f"http://{REG}": entry}})


def _client(fake: FakeRegistry, clock: InstantClock | None = None, **kw) -> RegistryClient:
    return RegistryClient(transport=httpx.MockTransport(fake), clock=clock or InstantClock(), **kw)


def _ref(text: str = "models/x:v1"):
    return parse_reference(f"{REG}/{text}")


@pytest.mark.parametrize("form", list(ImageForm))
def test_every_image_form_resolves_to_the_amd64_labels(form):
    fake = FakeRegistry()
    image = build_image(LABELS, form=form, arm64_labels=ARM)
    fake.add("models/x:v1", image)
    with _client(fake) as client:
        resolved = client.resolve(_ref())
    assert resolved.labels == LABELS
    assert resolved.digest == image.digest
    assert str(resolved.platform) == "linux/amd64"


@pytest.mark.parametrize("auth_field", [True, False])
def test_basic_auth_uses_the_pull_secret_and_is_reused(auth_field):
    fake = FakeRegistry(auth="basic")
    fake.add("models/x:v1", build_image(LABELS))
    with _client(fake, credentials=_creds(auth_field=auth_field)) as client:
        client.resolve(_ref())
        before = len(fake.requests)
        client.resolve(_ref())
    assert len(fake.requests) - before == 2  # manifest + config, no new challenge


def test_basic_auth_without_secret_names_the_registry():
    fake = FakeRegistry(auth="basic")
    fake.add("models/x:v1", build_image(LABELS))
    with (
        _client(fake) as client,
        pytest.raises(
            RegistryAuthError, match=r"no pull secret has an entry for '127\.0\.0\.1:5000'"
        ),
    ):
        client.resolve(_ref())


def test_wrong_basic_password_is_an_auth_error_and_not_retried():
    fake = FakeRegistry(auth="basic")
    fake.add("models/x:v1", build_image(LABELS))
    with (
        _client(fake, credentials=_creds(password="wrong")) as client,
        pytest.raises(RegistryAuthError, match="rejected"),
    ):
        client.resolve(_ref())
    assert fake.count("/manifests/") == 2  # the challenge, then one authorised attempt


def test_bearer_token_is_fetched_once_and_cached_per_scope():
    fake = FakeRegistry(auth="bearer")
    fake.add("models/x:v1", build_image(LABELS))
    with _client(fake, credentials=_creds()) as client:
        client.resolve(_ref())
        client.resolve(_ref())
    assert fake.token_count == 1
    token_request = next(r for r in fake.requests if str(r.url).startswith(REALM))
    assert token_request.url.params["scope"] == "repository:models/x:pull"
    assert token_request.url.params["service"] == "reg"
    assert token_request.headers["authorization"].startswith("Basic ")


def test_anonymous_bearer_token_is_requested_without_credentials():
    fake = FakeRegistry(auth="bearer")
    fake.add("models/x:v1", build_image(LABELS))
    with _client(fake) as client:
        assert client.resolve(_ref()).labels == LABELS
    token_request = next(r for r in fake.requests if str(r.url).startswith(REALM))
    assert "authorization" not in token_request.headers


def test_expired_token_is_replaced_once():
    fake = FakeRegistry(auth="bearer")
    fake.add("models/x:v1", build_image(LABELS))
    with _client(fake, credentials=_creds()) as client:
        client.resolve(_ref())
        fake.valid_tokens.clear()  # the registry no longer accepts the cached token
        assert client.resolve(_ref()).labels == LABELS
    assert fake.token_count == 2


def test_token_service_refusing_credentials_is_an_auth_error():
    fake = FakeRegistry(auth="bearer")
    fake.add("models/x:v1", build_image(LABELS))
    with (
        _client(fake, credentials=_creds(password="bad")) as client,
        pytest.raises(RegistryAuthError, match="refused the pull secret"),
    ):
        client.resolve(_ref())


def test_credentials_are_not_sent_to_a_plain_http_remote_realm():
    fake = FakeRegistry(auth="bearer")
    creds = parse_dockerconfigjson(
        {"auths": {"reg.example.com": {"username": "u", "password": "p"}}}
    )

    def handler(request: httpx.Request) -> httpx.Response:
        fake.requests.append(request)
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.example.com/t"'}
        )

    client = RegistryClient(
        transport=httpx.MockTransport(handler), credentials=creds, clock=InstantClock()
    )
    with client, pytest.raises(RegistryAuthError, match="refusing to send credentials"):
        client.resolve(parse_reference("reg.example.com/x:1"))
    assert all(r.url.host != "auth.example.com" for r in fake.requests)
    assert fake.requests[0].url.scheme == "https"


def test_forbidden_is_an_auth_error():
    fake = FakeRegistry(auth="forbidden")
    with _client(fake) as client, pytest.raises(RegistryAuthError, match="denied"):
        client.resolve(_ref())
    assert fake.count("/manifests/") == 1


@pytest.mark.parametrize(
    "ref", ["models/x:missing", "models/other:v1", "models/x@sha256:" + "0" * 64]
)
def test_missing_images_are_not_found_and_not_retried(ref):
    fake = FakeRegistry()
    fake.add("models/x:v1", build_image(LABELS))
    with _client(fake) as client, pytest.raises(ImageNotFoundError, match="MANIFEST_UNKNOWN"):
        client.resolve(_ref(ref))
    assert fake.count("/manifests/") == 1


def test_transient_faults_are_retried_with_bounded_backoff():
    fake = FakeRegistry()
    fake.add("models/x:v1", build_image(LABELS))
    fake.faults["/manifests/"] = [503, 429, httpx.ConnectError("refused")]
    clock = InstantClock()
    with _client(fake, clock) as client:
        assert client.resolve(_ref()).labels == LABELS
    assert fake.count("/manifests/") == 4
    assert len(clock.sleeps) == 3
    assert all(0 < s <= 4.0 + 0.25 for s in clock.sleeps)


def test_persistent_transient_faults_raise_unavailable_after_the_attempt_limit():
    fake = FakeRegistry()
    fake.faults["/manifests/"] = [503] * 10
    clock = InstantClock()
    with (
        _client(fake, clock, retry=RetryPolicy(attempts=4)) as client,
        pytest.raises(RegistryUnavailableError, match=r"HTTP 503.*4 attempts"),
    ):
        client.resolve(_ref())
    assert fake.count("/manifests/") == 4


def test_retry_budget_bounds_total_time():
    fake = FakeRegistry()
    fake.faults["/manifests/"] = [httpx.ReadTimeout("slow")] * 50
    clock = InstantClock()
    policy = RetryPolicy(attempts=50, initial_backoff=1.0, max_backoff=4.0, budget=10.0)
    with (
        _client(fake, clock, retry=policy) as client,
        pytest.raises(RegistryUnavailableError, match="timed out"),
    ):
        client.resolve(_ref())
    assert clock.t <= 10.0 + 4.25
    assert fake.count("/manifests/") < 10


def test_stop_event_ends_retries_early():
    fake = FakeRegistry()
    fake.faults["/manifests/"] = [503] * 10
    stop = threading.Event()
    stop.set()
    with _client(fake, stop=stop) as client, pytest.raises(RegistryUnavailableError):
        client.resolve(_ref())
    assert fake.count("/manifests/") == 1


def test_manifest_digest_mismatch_is_a_protocol_error():
    fake = FakeRegistry()
    image = build_image(LABELS, form=ImageForm.OCI_INDEX, arm64_labels=ARM)
    fake.add("models/x:v1", image)
    amd_child = _digest(image.manifests[1][1])
    fake.tamper[amd_child] = image.manifests[0][1]
    with _client(fake) as client, pytest.raises(RegistryProtocolError, match="content digest"):
        client.resolve(_ref())


def test_config_blob_digest_mismatch_is_a_protocol_error():
    fake = FakeRegistry()
    image = build_image(LABELS)
    fake.add("models/x:v1", image)
    config_digest = json.loads(image.manifests[-1][1])["config"]["digest"]
    fake.tamper[config_digest] = b'{"config": {"Labels": {"evil": "1"}}}'
    with (
        _client(fake) as client,
        pytest.raises(RegistryProtocolError, match="does not match its digest"),
    ):
        client.resolve(_ref())


def test_oversized_documents_are_refused():
    fake = FakeRegistry()
    fake.add("models/x:v1", build_image({"big": "x" * 5000}))
    with (
        _client(fake, max_document_bytes=2000) as client,
        pytest.raises(RegistryProtocolError, match="limit"),
    ):
        client.resolve(_ref())


def test_schema1_manifests_are_refused():
    fake = FakeRegistry(schema1=True)
    fake.add("models/x:v1", build_image(LABELS))
    with _client(fake) as client, pytest.raises(RegistryProtocolError, match="schema 1"):
        client.resolve(_ref())


def test_insecure_registries_use_plain_http_and_others_https():
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={})

    client = RegistryClient(
        transport=httpx.MockTransport(handler), insecure_registries=["reg.lan:5000"]
    )
    with client:
        client.ping("reg.lan:5000")
        client.ping("ghcr.io")
        client.ping("docker.io")
        client.ping("localhost:5000")
    assert [str(u) for u in seen] == [
        "http://reg.lan:5000/v2/",
        "https://ghcr.io/v2/",
        "https://registry-1.docker.io/v2/",
        "http://localhost:5000/v2/",
    ]
