"""The discovery client and ``aimctrl discover`` against real docker-registry processes."""

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from aimctrl.discovery.discover import DiscoveryResult, discover
from aimctrl.discovery.dockerconfig import DockerConfig, parse_dockerconfigjson
from aimctrl.discovery.errors import (
    ImageNotFoundError,
    LabelParseError,
    MissingLabelError,
    RegistryAuthError,
    RegistryUnavailableError,
)
from aimctrl.discovery.reference import parse_reference
from aimctrl.discovery.registry import RegistryClient, RetryPolicy
from aimctrl.discovery.termination import DiscoveryFailure, decode_termination_message
from aimctrl.testing.images import sample_images
from aimctrl.testing.registry import LocalRegistries, RegistryEnv, stop_registries

pytestmark = pytest.mark.integration

SAMPLES = {s.name: s for s in sample_images()}
FAST_RETRY = RetryPolicy(attempts=4, initial_backoff=0.05, max_backoff=0.2, jitter=0.05, budget=10)


def _secret(env, *, password=None, auth_field=True) -> bytes:
    password = env.password if password is None else password
    if auth_field:
        entry = {"auth": base64.b64encode(f"{env.user}:{password}".encode()).decode()}
    else:
        entry = {"username": env.user, "password": password}
    hosts = [f"http://{env.registry_auth}/v2/", env.registry_token]
    return json.dumps({"auths": dict.fromkeys(hosts, entry)}).encode()


@pytest.mark.parametrize(
    "name", ["good", "aim-prefix", "dict-style", "empty", "multiarch", "docker", "docker-list"]
)
def test_every_sample_form_is_discovered_from_the_open_registry(registries, name):
    sample = SAMPLES[name]
    result = discover(registries.refs[name])
    model = result.image_metadata.model
    assert model.canonical_name == sample.expected_canonical_name
    assert len(model.recommended_deployments) == sample.expected_deployments
    assert result.platform == "linux/amd64"
    assert result.digest.startswith("sha256:")


def test_dict_style_description_keeps_its_apostrophe(registries):
    result = discover(registries.refs["dict-style"])
    descriptions = [d.description for d in result.image_metadata.model.recommended_deployments]
    assert descriptions == ["Qwen's fastest single-GPU profile", "It's tuned for batch serving"]


def test_good_image_metadata_and_derived_gpu(registries):
    result = discover(registries.refs["good"])
    data = result.model_dump(by_alias=True, exclude_none=True)
    assert data["imageMetadata"]["oci"]["licenses"] == "Apache-2.0"
    assert data["imageMetadata"]["model"]["hfTokenRequired"] is True
    assert data["modelSources"] == [
        {
            "name": "meta-llama/Llama-3.1-8B-Instruct",
            "sourceUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
        }
    ]
    assert data["gpu"] == {"models": ["MI300X"], "minCount": 1}


@pytest.mark.parametrize("auth_field", [True, False])
def test_basic_auth_registry_with_dockerconfigjson(registries, auth_field):
    creds = parse_dockerconfigjson(_secret(registries.env, auth_field=auth_field))
    result = discover(registries.refs["private"], credentials=creds)
    assert result.image_metadata.model.canonical_name == "meta-llama/Llama-3.1-8B-Instruct"


def test_basic_auth_wrong_password_and_no_secret_are_auth_errors(registries):
    wrong = parse_dockerconfigjson(_secret(registries.env, password="wrong"))
    with pytest.raises(RegistryAuthError, match="rejected"):
        discover(registries.refs["private"], credentials=wrong)
    with pytest.raises(RegistryAuthError, match="no pull secret"):
        discover(registries.refs["private"])


def test_bearer_token_registry_with_credentials_and_anonymous(registries):
    creds = parse_dockerconfigjson(_secret(registries.env))
    with RegistryClient(credentials=creds) as client:
        private = discover(registries.refs["token-private"], client=client)
        again = discover(registries.refs["token-private"], client=client)
    assert private.image_metadata.model.canonical_name == again.image_metadata.model.canonical_name
    anonymous = discover(registries.refs["token-good"])
    assert anonymous.image_metadata.model.canonical_name == "meta-llama/Llama-3.1-8B-Instruct"
    with pytest.raises(RegistryAuthError):
        discover(registries.refs["token-private"])
    wrong = parse_dockerconfigjson(_secret(registries.env, password="wrong"))
    with pytest.raises(RegistryAuthError, match="token service"):
        discover(registries.refs["token-private"], credentials=wrong)


@pytest.mark.parametrize("suffix", ["aim/llama-3.1-8b-instruct:nope", "aim/nothing-here:1"])
def test_missing_repository_or_tag_is_image_not_found(registries, suffix):
    with pytest.raises(ImageNotFoundError, match="not found"):
        discover(f"{registries.env.registry}/{suffix}")


def test_missing_label_is_named(registries):
    with pytest.raises(MissingLabelError) as info:
        discover(registries.refs["missing-name"])
    assert info.value.label == "org.amd.silogen.model.canonicalName"


def test_malformed_deployments_report_the_position(registries):
    with pytest.raises(LabelParseError) as info:
        discover(registries.refs["malformed"])
    assert info.value.label == "org.amd.silogen.model.deployments"
    assert "line 1, column 39" in info.value.message


# -- aimctrl discover as a process ---------------------------------------------------------------


def _run_cli(
    *args: str, tmp_path: Path
) -> tuple[int, str, str, DiscoveryResult | DiscoveryFailure]:
    term = tmp_path / "termination-log"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aimctrl",
            "discover",
            *args,
            "--termination-message-path",
            str(term),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr, decode_termination_message(term.read_text())


def test_cli_success_prints_summary_and_writes_the_termination_message(registries, tmp_path):
    code, out, _, written = _run_cli(registries.refs["good"], tmp_path=tmp_path)
    assert code == 0
    assert "meta-llama/Llama-3.1-8B-Instruct" in out
    assert "recommended deployments: 4" in out
    assert isinstance(written, DiscoveryResult)
    assert written.image == registries.refs["good"]
    assert json.loads(out[out.index("{") :])["imageMetadata"]["model"]["canonicalName"] == (
        "meta-llama/Llama-3.1-8B-Instruct"
    )


def test_cli_reads_mounted_pull_secrets(registries, tmp_path):
    secret_dir = tmp_path / "secrets" / "regcred"
    secret_dir.mkdir(parents=True)
    (secret_dir / ".dockerconfigjson").write_bytes(_secret(registries.env))
    code, out, _, written = _run_cli(
        registries.refs["private"],
        "--json",
        "--pull-secrets-dir",
        str(tmp_path / "secrets"),
        tmp_path=tmp_path,
    )
    assert code == 0
    assert isinstance(written, DiscoveryResult)
    assert json.loads(out)["digest"] == written.digest


@pytest.mark.parametrize(
    ("image", "code", "reason"),
    [
        ("private", 3, "ImagePullAuthFailure"),
        ("{open}/aim/nothing-here:1", 4, "ImageNotFound"),
        ("missing-name", 5, "MetadataExtractionFailed"),
        ("malformed", 5, "MetadataExtractionFailed"),
        ("Not A Reference", 1, "InvalidImageReference"),
    ],
)
def test_cli_exit_codes_and_failure_messages(registries, tmp_path, image, code, reason):
    ref = registries.refs.get(image, image.format(open=registries.env.registry))
    got, _, err, written = _run_cli(ref, tmp_path=tmp_path)
    assert got == code
    assert isinstance(written, DiscoveryFailure)
    assert written.reason == reason
    assert reason in err


def test_cli_skips_a_termination_path_whose_directory_is_missing(registries, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aimctrl",
            "discover",
            registries.refs["good"],
            "--json",
            "--termination-message-path",
            str(tmp_path / "absent" / "log"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert not (tmp_path / "absent").exists()


# -- retries through a fault-injecting proxy ------------------------------------------------------


class FaultProxy:
    """Forwards GETs to ``upstream``; answers 503 to the first ``failures`` manifest requests."""

    def __init__(self, upstream: str, *, failures: int) -> None:
        self.upstream = upstream
        self.failures = failures
        self.manifest_requests = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                with proxy.lock:
                    is_manifest = "/manifests/" in self.path
                    if is_manifest:
                        proxy.manifest_requests += 1
                    fail = is_manifest and proxy.failures > 0
                    if fail:
                        proxy.failures -= 1
                if fail:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("accept", "authorization")
                }
                reply = httpx.get(f"http://{proxy.upstream}{self.path}", headers=headers)
                self.send_response(reply.status_code)
                for key in ("content-type", "docker-content-digest", "www-authenticate"):
                    if key in reply.headers:
                        self.send_header(key, reply.headers[key])
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy_factory() -> Iterator:
    proxies: list[FaultProxy] = []

    def make(upstream: str, failures: int) -> FaultProxy:
        proxy = FaultProxy(upstream, failures=failures).__enter__()
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        p.__exit__()


def test_transient_503s_are_retried_until_success(registries, proxy_factory):
    proxy = proxy_factory(registries.env.registry, failures=2)
    sample = SAMPLES["good"]
    with RegistryClient(retry=FAST_RETRY) as client:
        result = discover(sample.reference(proxy.addr), client=client)
    assert result.image_metadata.model.canonical_name == sample.expected_canonical_name
    assert proxy.manifest_requests == 3  # 503, 503, 200


def test_401_is_not_retried(registries, proxy_factory):
    proxy = proxy_factory(registries.env.registry_auth, failures=0)
    sample = SAMPLES["private"]
    wrong = parse_dockerconfigjson({"auths": {proxy.addr: {"username": "x", "password": "y"}}})
    with (
        RegistryClient(credentials=wrong, retry=FAST_RETRY) as client,
        pytest.raises(RegistryAuthError),
    ):
        discover(sample.reference(proxy.addr), client=client)
    assert proxy.manifest_requests == 2  # the challenge, then one attempt with the credentials


def test_unreachable_registry_is_unavailable_after_bounded_retries(proxy_factory):
    with RegistryClient(retry=FAST_RETRY, credentials=DockerConfig()) as client:
        ref = parse_reference("127.0.0.1:9/x:1")  # discard port: connection refused
        with pytest.raises(RegistryUnavailableError) as info:
            client.resolve(ref)
    assert info.value.reason.value == "RegistryUnavailable"
    assert "4 attempts" in info.value.message


def test_registries_described_by_env_can_be_stopped_by_pid(tmp_path):
    harness = LocalRegistries(tmp_path / "regs", token=False)
    env = RegistryEnv.from_json(harness.start().to_json())
    try:
        assert httpx.get(f"http://{env.registry}/v2/").status_code == 200
        assert f"REGISTRY_AUTH={env.registry_auth}\n" in env.env_file_text()
        assert env.password not in repr(env)
        assert sorted(stop_registries(env)) == sorted(env.pids)
        assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in env.pids)
        assert stop_registries(env) == []  # gone pids are never signalled again
    finally:
        harness.stop()


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
