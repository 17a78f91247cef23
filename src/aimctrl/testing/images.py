"""Build and push tiny OCI/Docker images over the registry HTTP API — no Docker engine needed.

Guarantees:

* images are deterministic: the same labels and form give the same digests (fixed timestamps,
  gzip without mtime); each has one small gzip tar layer and a config whose ``config.Labels`` are
  exactly the labels given;
* every form the discovery client must read is available: OCI manifest, OCI index, Docker schema2
  manifest and Docker manifest list; the multi-arch forms list arm64 *before* amd64 (plus an
  ``unknown/unknown`` attestation-like entry) and give arm64 different labels, so a test reading
  the amd64 labels proves the platform was chosen, not the first entry;
* pushing is blob upload (``POST`` → ``PUT ?digest=``, skipped when the blob exists) then manifest
  ``PUT`` (children of an index by digest first); Basic and Bearer registries are handled by
  :class:`PushAuth`.

:func:`sample_images` is the documented sample set used by integration tests and the dev cluster.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

from aimctrl.discovery.auth import basic_header, parse_www_authenticate, pick_challenge
from aimctrl.discovery.dockerconfig import Credentials
from aimctrl.discovery.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

__all__ = [
    "BuiltImage",
    "ImageForm",
    "PushAuth",
    "SampleImage",
    "build_image",
    "push_image",
    "push_samples",
    "sample_images",
]

_CREATED = "2025-01-01T00:00:00Z"
_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class ImageForm(StrEnum):
    OCI = "oci"
    OCI_INDEX = "oci-index"
    DOCKER = "docker"
    DOCKER_LIST = "docker-list"


@dataclass(frozen=True)
class BuiltImage:
    """Blobs and manifests ready to push; the last manifest is the top level."""

    blobs: Mapping[str, bytes]
    manifests: tuple[tuple[str, bytes], ...]  # (media type, body); children before the index

    @property
    def digest(self) -> str:
        return _digest(self.manifests[-1][1])


@dataclass(frozen=True)
class SampleImage:
    """One image of the sample set and what discovering it should give."""

    name: str
    repository: str
    tag: str
    form: ImageForm
    labels: Mapping[str, str]
    summary: str
    arm64_labels: Mapping[str, str] | None = None
    private: bool = False
    expected_reason: str | None = None  # None: discovery succeeds
    expected_canonical_name: str | None = None
    expected_deployments: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def reference(self, registry_addr: str) -> str:
        return f"{registry_addr}/{self.repository}:{self.tag}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def _layer(text: str) -> tuple[bytes, bytes]:
    """(gzip tar, uncompressed tar) holding ``model/README``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        payload = text.encode()
        info = tarfile.TarInfo("model/README")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), tar_bytes


def _single(
    labels: Mapping[str, str], *, architecture: str, docker: bool, blobs: dict[str, bytes]
) -> tuple[str, bytes]:
    layer, tar_bytes = _layer(f"tiny model for {architecture}\n")
    config = _json(
        {
            "architecture": architecture,
            "os": "linux",
            "created": _CREATED,
            "config": {"Labels": dict(labels)},
            "rootfs": {"type": "layers", "diff_ids": [_digest(tar_bytes)]},
        }
    )
    blobs[_digest(layer)] = layer
    blobs[_digest(config)] = config
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": _DOCKER_CONFIG if docker else _OCI_CONFIG,
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": _DOCKER_LAYER if docker else _OCI_LAYER,
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    )
    return media_type, manifest


def build_image(
    labels: Mapping[str, str],
    *,
    form: ImageForm = ImageForm.OCI,
    arm64_labels: Mapping[str, str] | None = None,
) -> BuiltImage:
    """Build ``labels`` into an image of ``form`` (multi-arch forms use ``arm64_labels`` too)."""
    blobs: dict[str, bytes] = {}
    docker = form in (ImageForm.DOCKER, ImageForm.DOCKER_LIST)
    if form in (ImageForm.OCI, ImageForm.DOCKER):
        single = _single(labels, architecture="amd64", docker=docker, blobs=blobs)
        return BuiltImage(blobs=blobs, manifests=(single,))
    arm = _single(arm64_labels or labels, architecture="arm64", docker=docker, blobs=blobs)
    amd = _single(labels, architecture="amd64", docker=docker, blobs=blobs)
    attestation = _single({}, architecture="unknown", docker=docker, blobs=blobs)
    entries = [
        (arm, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
        (amd, {"architecture": "amd64", "os": "linux"}),
        (attestation, {"architecture": "unknown", "os": "unknown"}),
    ]
    index_type = DOCKER_LIST if docker else OCI_INDEX
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": [
                {"mediaType": mt, "digest": _digest(body), "size": len(body), "platform": plat}
                for (mt, body), plat in entries
            ],
        }
    )
    return BuiltImage(blobs=blobs, manifests=(arm, amd, attestation, (index_type, index)))


class PushAuth(httpx.Auth):
    """Answers a registry's 401 challenge: Basic directly, Bearer via the token realm."""

    requires_response_body = True

    def __init__(self, username: str, password: str) -> None:
        self._creds = Credentials(username=username, password=password)
        self._header: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._header:
            request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code != 401:
            return
        challenge = pick_challenge(
            parse_www_authenticate(response.headers.get("www-authenticate", ""))
        )
        if challenge is None:
            return
        if challenge.scheme == "basic":
            self._header = basic_header(self._creds)
        else:
            params = {k: v for k, v in challenge.params.items() if k in ("service", "scope")}
            token_request = httpx.Request(
                "GET",
                challenge.params["realm"],
                params=params,
                headers={"Authorization": basic_header(self._creds)},
            )
            token_response = yield token_request
            token_response.raise_for_status()
            answer = token_response.json()
            self._header = f"Bearer {answer.get('token') or answer.get('access_token')}"
        request.headers["Authorization"] = self._header
        yield request


def push_image(
    client: httpx.Client, base_url: str, repository: str, tag: str, image: BuiltImage
) -> str:
    """Push ``image`` as ``repository:tag``; return the top-level manifest digest."""
    for digest, data in image.blobs.items():
        if client.head(f"{base_url}/v2/{repository}/blobs/{digest}").status_code == 200:
            continue
        started = client.post(f"{base_url}/v2/{repository}/blobs/uploads/")
        _expect(started, 202, f"start upload of {digest}")
        location = started.headers["Location"]
        url = location if location.startswith("http") else base_url + location
        # httpx replaces (not merges) a URL's query with params=, and Location carries _state.
        done = client.put(
            httpx.URL(url).copy_merge_params({"digest": digest}),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        _expect(done, 201, f"upload of {digest}")
    *children, (top_type, top_body) = image.manifests
    for media_type, body in children:
        _put_manifest(client, base_url, repository, _digest(body), media_type, body)
    _put_manifest(client, base_url, repository, tag, top_type, top_body)
    return image.digest


def _put_manifest(
    client: httpx.Client, base_url: str, repository: str, ref: str, media_type: str, body: bytes
) -> None:
    response = client.put(
        f"{base_url}/v2/{repository}/manifests/{ref}",
        content=body,
        headers={"Content-Type": media_type},
    )
    _expect(response, 201, f"manifest {repository}:{ref}")


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"push failed: {what}: HTTP {response.status_code}: {response.text[:300]}"
        )


# -- the sample set --------------------------------------------------------------------------------

_S = "org.amd.silogen."
_A = "com.amd.aim."
_OCI = "org.opencontainers.image."


def _deployments_json(entries: Iterable[tuple[int, str, str]], gpu: str = "MI300X") -> str:
    return json.dumps(
        [
            {
                "gpuModel": gpu,
                "gpuCount": count,
                "precision": precision,
                "metric": metric,
                "description": f"{metric.title()}-optimised {precision} on {count}x {gpu}",
            }
            for count, metric, precision in entries
        ]
    )


_FOUR = [
    (1, "latency", "fp8"),
    (1, "throughput", "fp16"),
    (8, "latency", "fp8"),
    (8, "throughput", "fp16"),
]

_GOOD = {
    _S + "model.canonicalName": "meta-llama/Llama-3.1-8B-Instruct",
    _S + "model.deployments": _deployments_json(_FOUR),
    _S + "model.source": "hf://meta-llama/Llama-3.1-8B-Instruct",
    _S + "model.tags": "text-generation, chat, instruction",
    _S + "model.versions": "0.8.4",
    _S + "model.variants": "8B, 8B-fp8",
    _S + "hfToken.required": "true",
    _S + "title": "Llama 3.1 8B Instruct",
    _S + "description.full": "Meta's Llama 3.1 8B instruction-tuned model, served by vLLM.",
    _S + "release.notes": "First release.",
    _OCI + "title": "aim-llama-3.1-8b-instruct",
    _OCI + "description": "AIM image for Llama 3.1 8B Instruct",
    _OCI + "licenses": "Apache-2.0",
    _OCI + "vendor": "AMD",
    _OCI + "version": "0.8.4",
    _OCI + "created": _CREATED,
}

_AIM = {
    _A + "model.canonicalName": "HuggingFaceTB/SmolLM2-135M",
    _A + "model.recommendedDeployments": json.dumps(
        [
            {
                "gpuModel": "MI300X",
                "gpuCount": 1,
                "precision": "fp16",
                "metric": "latency",
                "description": "Low latency",
                "profileId": "mi300x-fp16-latency",
            },
            {
                "gpuModel": "MI325X",
                "gpuCount": 2,
                "precision": "bf16",
                "metric": "throughput",
                "description": "High throughput",
            },
        ]
    ),
    _A + "model.source": "hf://HuggingFaceTB/SmolLM2-135M",
    _A + "model.tags": "text-generation, chat, instruction",
    _A + "hfToken.required": "False",
}

_DICT_STYLE = {
    _A + "model.canonicalName": "Qwen/Qwen2.5-7B-Instruct",
    _A + "model.recommendedDeployments": (
        "{'gpuModel': 'MI300X', 'gpuCount': 1, 'precision': 'fp8', 'metric': 'latency', "
        "'description': \"Qwen's fastest single-GPU profile\"}, "
        "{'gpuModel': 'MI300X', 'gpuCount': 4, 'precision': 'fp16', 'metric': 'throughput', "
        "'description': 'It\\'s tuned for batch serving', 'profileId': 'mi300x-fp16-thr'}"
    ),
    _A + "hfToken.required": "False",
}


# An image recommending GPUs a fleet may lack (SPEC §8): MI300X profiles and MI355X fp4 ones.
# On the test fleet (MI300X, MI325X, MI210) its MI355X templates are NotAvailable. The entries'
# shape follows AMD's public AIM image metadata (amd-enterprise-ai/aim-build, metadata/<org>/
# <model>/metadata.yaml: recommendedDeployments of gpuModel, gpuCount, precision, metric,
# description, and profile ids such as "vllm-mi325x-fp8-tp1-latency"); the values are ours.
_MIXED_GPUS = {
    _A + "model.canonicalName": "meta-llama/Llama-3.3-70B-Instruct",
    _A + "model.recommendedDeployments": json.dumps(
        [
            {
                "gpuModel": gpu,
                "gpuCount": count,
                "precision": precision,
                "metric": metric,
                "description": f"{metric.title()}-optimised {precision} on {count}x {gpu}",
                "profileId": f"vllm-{gpu.lower()}-{precision}-tp{count}-{metric}",
            }
            for gpu, count, precision, metric in (
                ("MI300X", 1, "fp8", "latency"),
                ("MI300X", 8, "fp8", "throughput"),
                ("MI355X", 1, "fp4", "latency"),
                ("MI355X", 8, "fp4", "throughput"),
            )
        ]
    ),
    _A + "model.source": "hf://meta-llama/Llama-3.3-70B-Instruct",
    _A + "hfToken.required": "True",
    _OCI + "title": "aim-llama-3.3-70b-instruct",
    _OCI + "vendor": "AMD",
    _OCI + "version": "0.9.0",
}


def sample_images() -> list[SampleImage]:
    """The documented sample set (names are stable; tests and the dev cluster refer to them)."""
    return [
        SampleImage(
            name="good",
            repository="aim/llama-3.1-8b-instruct",
            tag="0.8.4",
            form=ImageForm.OCI,
            labels=_GOOD,
            expected_canonical_name="meta-llama/Llama-3.1-8B-Instruct",
            expected_deployments=4,
            summary="org.amd.silogen. labels, 4 deployments (MI300X x1/x8, lat/thr, fp8/fp16)",
        ),
        SampleImage(
            name="aim-prefix",
            repository="aim/smollm2-135m",
            tag="0.1.0",
            form=ImageForm.OCI,
            labels=_AIM,
            expected_canonical_name="HuggingFaceTB/SmolLM2-135M",
            expected_deployments=2,
            summary="com.amd.aim. prefix with model.recommendedDeployments",
        ),
        SampleImage(
            name="dict-style",
            repository="aim/qwen2.5-7b-instruct",
            tag="1.0",
            form=ImageForm.OCI,
            labels=_DICT_STYLE,
            expected_canonical_name="Qwen/Qwen2.5-7B-Instruct",
            expected_deployments=2,
            summary="Python-dict deployments without brackets; apostrophes in descriptions",
        ),
        SampleImage(
            name="mixed-gpus",
            repository="aim/llama-3.3-70b-instruct",
            tag="0.9.0",
            form=ImageForm.OCI,
            labels=_MIXED_GPUS,
            expected_canonical_name="meta-llama/Llama-3.3-70B-Instruct",
            expected_deployments=4,
            summary="MI300X fp8 x1/x8 and MI355X fp4 x1/x8: NotAvailable on a fleet without MI355X",
        ),
        SampleImage(
            name="missing-name",
            repository="broken/missing-name",
            tag="1",
            form=ImageForm.OCI,
            labels={_S + "model.deployments": _deployments_json(_FOUR[:1])},
            expected_reason="MetadataExtractionFailed",
            summary="no model.canonicalName label",
        ),
        SampleImage(
            name="malformed",
            repository="broken/malformed",
            tag="1",
            form=ImageForm.OCI,
            labels={
                _S + "model.canonicalName": "broken/malformed",
                _S + "model.deployments": '[{"gpuModel": "MI300X", "gpuCount": 1 "metric": "x"}]',
            },
            expected_reason="MetadataExtractionFailed",
            summary="deployments JSON missing a comma (line 1, column 39)",
        ),
        SampleImage(
            name="empty",
            repository="aim/empty-deployments",
            tag="1",
            form=ImageForm.OCI,
            labels={_S + "model.canonicalName": "example/empty", _S + "model.deployments": "[]"},
            expected_canonical_name="example/empty",
            expected_deployments=0,
            summary="an empty deployments list: discovery succeeds with nothing to recommend",
        ),
        SampleImage(
            name="multiarch",
            repository="aim/multiarch",
            tag="2",
            form=ImageForm.OCI_INDEX,
            labels={**_GOOD, _S + "model.canonicalName": "example/amd64-model"},
            arm64_labels={**_GOOD, _S + "model.canonicalName": "example/arm64-model"},
            expected_canonical_name="example/amd64-model",
            expected_deployments=4,
            summary="OCI index: arm64 (listed first, other labels) + amd64 + attestation",
        ),
        SampleImage(
            name="docker",
            repository="aim/docker-v2",
            tag="3",
            form=ImageForm.DOCKER,
            labels=_GOOD,
            expected_canonical_name="meta-llama/Llama-3.1-8B-Instruct",
            expected_deployments=4,
            summary="Docker schema2 manifest",
        ),
        SampleImage(
            name="docker-list",
            repository="aim/docker-list",
            tag="3",
            form=ImageForm.DOCKER_LIST,
            labels={**_AIM, _A + "model.canonicalName": "example/amd64-docker"},
            arm64_labels={**_AIM, _A + "model.canonicalName": "example/arm64-docker"},
            expected_canonical_name="example/amd64-docker",
            expected_deployments=2,
            summary="Docker manifest list: arm64 first, amd64 chosen",
        ),
        SampleImage(
            name="private",
            repository="private/llama",
            tag="1",
            form=ImageForm.OCI,
            labels=_GOOD,
            private=True,
            expected_canonical_name="meta-llama/Llama-3.1-8B-Instruct",
            expected_deployments=4,
            summary="only on the Basic-auth (and token) registry",
        ),
    ]


def push_samples(
    registry_addr: str,
    auth_registry_addr: str,
    user: str,
    password: str,
    *,
    token_registry_addr: str | None = None,
) -> dict[str, str]:
    """Push the sample set; return ``name → reference`` (private ones on the auth registry).

    Every sample goes to the open registry except private ones; every sample goes to the
    Basic-auth registry; with a token registry, private samples go there as ``private/…`` and the
    good one also as ``public/llama`` (anonymously pullable).
    """
    refs: dict[str, str] = {}
    with (
        httpx.Client(timeout=30.0) as open_client,
        httpx.Client(timeout=30.0, auth=PushAuth(user, password)) as basic_client,
        httpx.Client(timeout=30.0, auth=PushAuth(user, password)) as token_client,
    ):
        for sample in sample_images():
            image = build_image(sample.labels, form=sample.form, arm64_labels=sample.arm64_labels)
            auth_base = f"http://{auth_registry_addr}"
            push_image(basic_client, auth_base, sample.repository, sample.tag, image)
            if sample.private:
                refs[sample.name] = sample.reference(auth_registry_addr)
            else:
                open_base = f"http://{registry_addr}"
                push_image(open_client, open_base, sample.repository, sample.tag, image)
                refs[sample.name] = sample.reference(registry_addr)
            if token_registry_addr and sample.name in ("good", "private"):
                repo = "public/llama" if sample.name == "good" else sample.repository
                token_base = f"http://{token_registry_addr}"
                push_image(token_client, token_base, repo, sample.tag, image)
                refs[f"token-{sample.name}"] = f"{token_registry_addr}/{repo}:{sample.tag}"
    return refs
