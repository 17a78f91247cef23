import json
import random

import pytest

from aimctrl.discovery.discover import DiscoveryResult, GPURequirements, ModelSource, derive_gpu
from aimctrl.discovery.errors import LabelParseError, Reason
from aimctrl.discovery.labels import ImageMetadata, ModelMetadata, RecommendedDeployment
from aimctrl.discovery.termination import (
    COMPRESSED_MARKER,
    DiscoveryFailure,
    TerminationMessageError,
    decode_termination_message,
    encode_termination_message,
)

WORDS = (
    "optimised", "latency", "throughput", "serving", "profile", "tensor", "parallel", "batch",
    "tokens", "memory", "kernel", "quantised", "accuracy", "context", "window", "vLLM",
    "attention", "prefill", "decode", "speculative", "cache", "GPU",
)  # fmt: skip


def _result(deployments: int, description_chars: int, seed: int = 7) -> DiscoveryResult:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data

    def text() -> str:
        words: list[str] = []
        while len(" ".join(words)) < description_chars:
            words.append(rng.choice(WORDS))
        return " ".join(words)[:description_chars]

    deps = [
        RecommendedDeployment(
            gpu_model=rng.choice(["MI300X", "MI325X", "MI355X"]),
            gpu_count=rng.choice([1, 2, 4, 8]),
            precision=rng.choice(["fp8", "fp16", "bf16"]),
            metric=rng.choice(["latency", "throughput"]),
            description=text(),
            profile_id=f"profile-{i:02d}-{rng.getrandbits(32):08x}",
        )
        for i in range(deployments)
    ]
    return DiscoveryResult(
        image="ghcr.io/amd/aim-llama-3.1-70b-instruct:0.8.4",
        digest="sha256:" + "ab" * 32,
        platform="linux/amd64",
        discovered_at="2026-01-01T00:00:00Z",
        image_metadata=ImageMetadata(
            model=ModelMetadata(
                canonical_name="meta-llama/Llama-3.1-70B-Instruct",
                source="hf://meta-llama/Llama-3.1-70B-Instruct",
                tags=["text-generation", "chat"],
                description_full=text(),
                recommended_deployments=deps,
            )
        ),
        model_sources=[ModelSource(name="meta-llama/Llama-3.1-70B-Instruct", source_uri="hf://x")],
        gpu=derive_gpu(deps),
    )


def test_small_result_is_plain_compact_json_and_round_trips():
    result = _result(2, 40)
    text = encode_termination_message(result)
    assert text.startswith('{"v":1,"result":')
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    assert decode_termination_message(text) == result


def test_realistic_result_with_30_long_descriptions_fits_compressed():
    result = _result(30, 200)
    plain = json.dumps(result.model_dump(by_alias=True, exclude_none=True), separators=(",", ":"))
    assert len(plain) > 4096
    text = encode_termination_message(result)
    assert text.startswith(COMPRESSED_MARKER)
    assert len(text.encode()) <= 4096
    assert decode_termination_message(text) == result


def test_result_that_cannot_fit_becomes_an_explicit_failure_never_truncated():
    result = _result(400, 300)
    text = encode_termination_message(result)
    assert len(text.encode()) <= 4096
    decoded = decode_termination_message(text)
    assert isinstance(decoded, DiscoveryFailure)
    assert decoded.reason is Reason.METADATA_TOO_LARGE
    assert "400 recommended deployments" in decoded.message


@pytest.mark.parametrize("limit", [4096, 512, 200])
def test_failures_always_fit_the_limit(limit):
    error = LabelParseError(
        "org.amd.silogen.model.deployments", position="entry 1", detail="é" * 9000
    )
    text = encode_termination_message(error, limit=limit)
    assert len(text.encode()) <= limit
    decoded = decode_termination_message(text)
    assert isinstance(decoded, DiscoveryFailure)
    assert decoded.reason is Reason.METADATA_EXTRACTION_FAILED
    assert decoded.message.startswith("image label 'org.amd.silogen.model.deployments'")
    assert decoded.message.endswith("…")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        '{"v":2,"result":{}}',
        '{"v":1}',
        '{"v":1,"result":{"image":1}}',
        COMPRESSED_MARKER + "!!",
        COMPRESSED_MARKER + "aGVsbG8=",
    ],
)
def test_decoding_rejects_anything_the_encoder_did_not_write(text):
    with pytest.raises(TerminationMessageError):
        decode_termination_message(text)


def test_gpu_requirements_are_derived_from_deployments():
    deps = [
        RecommendedDeployment(gpu_model="MI300X", gpu_count=8),
        RecommendedDeployment(gpu_model="MI325X", gpu_count=2),
        RecommendedDeployment(gpu_model="MI300X"),
        RecommendedDeployment(metric="latency"),
    ]
    assert derive_gpu(deps) == GPURequirements(models=["MI300X", "MI325X"], min_count=2)
    assert derive_gpu([]) == GPURequirements(models=[], min_count=None)
