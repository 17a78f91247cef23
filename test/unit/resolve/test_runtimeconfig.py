from __future__ import annotations

from typing import Any

import pytest

from aimctrl.api.v1alpha1.common import LocalObjectReference
from aimctrl.api.v1alpha1.enums import ConditionStatus, CreationScope, Reason, ResolvedScope
from aimctrl.api.v1alpha1.runtimeconfig import AIMClusterRuntimeConfig, AIMRuntimeConfig
from aimctrl.resolve.runtimeconfig import resolve_credentials, resolve_runtime_config


def _ns(name: str, ns: str, spec: dict[str, Any]) -> AIMRuntimeConfig:
    return AIMRuntimeConfig.model_validate(
        {
            "kind": "AIMRuntimeConfig",
            "metadata": {"name": name, "namespace": ns, "uid": "ns-uid"},
            "spec": spec,
        }
    )


def _cl(name: str, spec: dict[str, Any]) -> AIMClusterRuntimeConfig:
    return AIMClusterRuntimeConfig.model_validate(
        {
            "kind": "AIMClusterRuntimeConfig",
            "metadata": {"name": name, "uid": "cl-uid"},
            "spec": spec,
        }
    )


def _resolve(
    ns_objs: list[AIMRuntimeConfig],
    cl_objs: list[AIMClusterRuntimeConfig],
    *,
    namespace: str,
    name: str | None,
):
    nsd = {(o.metadata.namespace, o.metadata.name): o for o in ns_objs}
    cld = {o.metadata.name: o for o in cl_objs}
    return resolve_runtime_config(
        consumer_namespace=namespace,
        name=name,
        get_namespaced=lambda n, m: nsd.get((n, m)),
        get_cluster=cld.get,
    )


def test_namespaced_config_merges_field_by_field_over_cluster_config() -> None:
    ns = _ns(
        "default",
        "team",
        {"imagePullSecrets": [{"name": "team-pull"}], "model": {"autoDiscovery": False}},
    )
    cl = _cl(
        "default",
        {
            "serviceAccountName": "platform",
            "imagePullSecrets": [{"name": "p"}],
            "model": {"creationScope": "Cluster", "autoDiscovery": True},
        },
    )
    res = _resolve([ns], [cl], namespace="team", name=None)
    assert res.status == ConditionStatus.TRUE
    assert res.reason == Reason.RUNTIME_RESOLVED
    assert res.reference is not None
    assert res.reference.scope == ResolvedScope.MERGED
    assert res.spec.service_account_name == "platform"
    assert [s.name for s in res.spec.image_pull_secrets or []] == ["team-pull"]
    assert res.model_policy.effective_creation_scope == CreationScope.CLUSTER
    assert res.model_policy.effective_auto_discovery is False


def test_cluster_consumer_ignores_namespaced_configs() -> None:
    ns = _ns("gpu", "team", {"serviceAccountName": "team-sa"})
    res = _resolve([ns], [], namespace="", name="gpu")
    assert res.reason == Reason.RUNTIME_CONFIG_MISSING
    assert res.blocking
    assert "AIMClusterRuntimeConfig gpu" in res.message


@pytest.mark.parametrize(
    ("name", "reason", "blocking"),
    [
        ("private", Reason.RUNTIME_CONFIG_MISSING, True),
        (None, Reason.DEFAULT_RUNTIME_CONFIG_MISSING, False),
        ("default", Reason.DEFAULT_RUNTIME_CONFIG_MISSING, False),
    ],
)
def test_missing_config_explicit_blocks_implicit_warns(
    name: str | None, reason: Reason, blocking: bool
) -> None:
    res = _resolve([], [], namespace="team", name=name)
    assert res.status == ConditionStatus.FALSE
    assert res.reason == reason
    assert res.blocking is blocking
    assert res.model_policy.effective_creation_scope == CreationScope.NAMESPACE
    assert res.model_policy.effective_auto_discovery is True


def test_only_cluster_config_resolves_with_cluster_scope() -> None:
    res = _resolve([], [_cl("default", {"serviceAccountName": "sa"})], namespace="team", name=None)
    assert res.reference is not None
    assert res.reference.scope == ResolvedScope.CLUSTER
    assert res.reference.namespace is None
    assert res.spec.service_account_name == "sa"


def test_credentials_first_layer_that_sets_a_field_wins() -> None:
    creds = resolve_credentials(
        (None, []),
        ("template-sa", None),
        ("model-sa", [LocalObjectReference(name="model-pull")]),
        ("runtime-sa", [LocalObjectReference(name="rt-pull")]),
    )
    assert creds.service_account_name == "template-sa"
    assert creds.image_pull_secrets == ("model-pull",)
    assert resolve_credentials((None, None)).service_account_name is None
