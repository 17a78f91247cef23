"""Foundation check (c): an image pushed to the basic-auth registry is read back over the
registry HTTP API with credentials that come from a ``kubernetes.io/dockerconfigjson`` Secret
stored in (and read back from) the real apiserver."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from aimctrl.discovery.discover import discover
from aimctrl.discovery.dockerconfig import parse_dockerconfigjson
from aimctrl.discovery.errors import RegistryAuthError
from aimctrl.testing.helpers import Kubectl
from aimctrl.testing.images import PushAuth, build_image, push_image

pytestmark = pytest.mark.integration


def test_pushed_image_labels_read_with_credentials_from_a_secret(
    registries,
    kubectl: Kubectl,
    namespace: str,  # type: ignore[no-untyped-def]
) -> None:
    env = registries.env
    repo, tag = f"foundation/check-{uuid.uuid4().hex[:6]}", "v1"
    labels = {
        "org.amd.silogen.model.canonicalName": "example/secret-check",
        "org.amd.silogen.model.deployments": json.dumps(
            [{"gpuModel": "MI300X", "gpuCount": 1, "metric": "latency", "precision": "fp8"}]
        ),
        "org.opencontainers.image.title": "secret check",
    }
    with httpx.Client(timeout=30, auth=PushAuth(env.user, env.password)) as client:
        push_image(client, f"http://{env.registry_auth}", repo, tag, build_image(labels))

    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "pull", "namespace": namespace},
            "data": {".dockerconfigjson": base64.b64encode(env.dockerconfigjson()).decode()},
        }
    )
    stored = kubectl.json("get", "secret", "pull", "-n", namespace)
    assert stored["type"] == "kubernetes.io/dockerconfigjson"
    payload = base64.b64decode(stored["data"][".dockerconfigjson"])

    image = f"{env.registry_auth}/{repo}:{tag}"
    result = discover(image, credentials=parse_dockerconfigjson(payload))
    model = result.image_metadata.model
    assert model.canonical_name == "example/secret-check"
    assert [d.gpu_model for d in model.recommended_deployments] == ["MI300X"]
    assert result.digest.startswith("sha256:")

    # Without the Secret's credentials the same read is refused.
    with pytest.raises(RegistryAuthError):
        discover(image, credentials=parse_dockerconfigjson(b'{"auths": {}}'))
