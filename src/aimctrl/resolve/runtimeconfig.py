"""Runtime config resolution (SPEC §3): pure functions, no I/O.

A consumer (model, template or service) names a runtime config, or gets ``default``. For a
namespaced consumer the ``AIMRuntimeConfig`` of that name in its namespace is merged field by
field over the ``AIMClusterRuntimeConfig`` of the same name: a field set in the namespaced config
wins, an unset one is inherited (scope ``Merged`` when both exist). A cluster-scoped consumer sees
only the cluster config.

Outcomes, as the ``RuntimeResolved`` condition reports them:

* found → True / ``RuntimeResolved``;
* an explicitly named config is absent → False / ``RuntimeConfigMissing``: the consumer cannot
  proceed (:attr:`RuntimeResolution.blocking`), and recovers by itself when the config appears;
* the implicit ``default`` is absent → False / ``DefaultRuntimeConfigMissing``: a warning only,
  reconciliation continues with built-in defaults.

``default`` is treated as implicit even when written out, because the schema defaults the field
to it and the two cannot be told apart on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aimctrl.api.v1alpha1.common import LocalObjectReference, ResolvedReference
from aimctrl.api.v1alpha1.enums import ConditionStatus, Reason, ResolvedScope
from aimctrl.api.v1alpha1.runtimeconfig import (
    AIMClusterRuntimeConfig,
    AIMRuntimeConfig,
    AIMRuntimeConfigSpec,
    RuntimeConfigModelPolicy,
)

__all__ = [
    "DEFAULT_RUNTIME_CONFIG",
    "Credentials",
    "RuntimeResolution",
    "merge_specs",
    "resolve_credentials",
    "resolve_runtime_config",
]

DEFAULT_RUNTIME_CONFIG = "default"

GetNamespaced = Callable[[str, str], AIMRuntimeConfig | None]
GetCluster = Callable[[str], AIMClusterRuntimeConfig | None]


@dataclass(frozen=True)
class RuntimeResolution:
    """The merged config a consumer runs with, and how it was found."""

    name: str
    spec: AIMRuntimeConfigSpec
    status: ConditionStatus
    reason: Reason
    message: str
    reference: ResolvedReference | None = None

    @property
    def blocking(self) -> bool:
        """An explicitly named config is missing: the consumer must not proceed."""
        return self.reason == Reason.RUNTIME_CONFIG_MISSING

    @property
    def model_policy(self) -> RuntimeConfigModelPolicy:
        return self.spec.model or RuntimeConfigModelPolicy()


def merge_specs(
    namespaced: AIMRuntimeConfigSpec, cluster: AIMRuntimeConfigSpec
) -> AIMRuntimeConfigSpec:
    """Field-by-field merge: every field set in ``namespaced`` wins over ``cluster``."""
    ns_model = namespaced.model or RuntimeConfigModelPolicy()
    cl_model = cluster.model or RuntimeConfigModelPolicy()
    model = RuntimeConfigModelPolicy(
        creation_scope=ns_model.creation_scope or cl_model.creation_scope,
        auto_discovery=(
            ns_model.auto_discovery
            if ns_model.auto_discovery is not None
            else cl_model.auto_discovery
        ),
    )
    return AIMRuntimeConfigSpec(
        service_account_name=namespaced.service_account_name or cluster.service_account_name,
        image_pull_secrets=(
            namespaced.image_pull_secrets
            if namespaced.image_pull_secrets is not None
            else cluster.image_pull_secrets
        ),
        model=model if (namespaced.model or cluster.model) else None,
    )


def resolve_runtime_config(
    *,
    consumer_namespace: str,
    name: str | None,
    get_namespaced: GetNamespaced,
    get_cluster: GetCluster,
) -> RuntimeResolution:
    """Resolve the runtime config a consumer in ``consumer_namespace`` ("" = cluster) names."""
    wanted = name or DEFAULT_RUNTIME_CONFIG
    explicit = wanted != DEFAULT_RUNTIME_CONFIG
    ns_cfg = get_namespaced(consumer_namespace, wanted) if consumer_namespace else None
    cl_cfg = get_cluster(wanted)

    if ns_cfg is not None and cl_cfg is not None:
        spec = merge_specs(
            ns_cfg.spec or AIMRuntimeConfigSpec(), cl_cfg.spec or AIMRuntimeConfigSpec()
        )
        ref = ResolvedReference(
            name=wanted,
            namespace=consumer_namespace,
            scope=ResolvedScope.MERGED,
            kind="AIMRuntimeConfig",
            uid=ns_cfg.metadata.uid,
        )
        msg = (
            f"AIMRuntimeConfig {consumer_namespace}/{wanted} merged over "
            f"AIMClusterRuntimeConfig {wanted}"
        )
    elif ns_cfg is not None:
        spec = ns_cfg.spec or AIMRuntimeConfigSpec()
        ref = ResolvedReference(
            name=wanted,
            namespace=consumer_namespace,
            scope=ResolvedScope.NAMESPACE,
            kind="AIMRuntimeConfig",
            uid=ns_cfg.metadata.uid,
        )
        msg = f"AIMRuntimeConfig {consumer_namespace}/{wanted}"
    elif cl_cfg is not None:
        spec = cl_cfg.spec or AIMRuntimeConfigSpec()
        ref = ResolvedReference(
            name=wanted,
            scope=ResolvedScope.CLUSTER,
            kind="AIMClusterRuntimeConfig",
            uid=cl_cfg.metadata.uid,
        )
        msg = f"AIMClusterRuntimeConfig {wanted}"
    else:
        where = (
            f"AIMRuntimeConfig {consumer_namespace}/{wanted} or AIMClusterRuntimeConfig {wanted}"
            if consumer_namespace
            else f"AIMClusterRuntimeConfig {wanted}"
        )
        if explicit:
            return RuntimeResolution(
                name=wanted,
                spec=AIMRuntimeConfigSpec(),
                status=ConditionStatus.FALSE,
                reason=Reason.RUNTIME_CONFIG_MISSING,
                message=f"runtime config {wanted!r} not found: create {where}",
            )
        return RuntimeResolution(
            name=wanted,
            spec=AIMRuntimeConfigSpec(),
            status=ConditionStatus.FALSE,
            reason=Reason.DEFAULT_RUNTIME_CONFIG_MISSING,
            message=f"no {where}; continuing with built-in defaults",
        )
    return RuntimeResolution(
        name=wanted,
        spec=spec,
        status=ConditionStatus.TRUE,
        reason=Reason.RUNTIME_RESOLVED,
        message=f"using {msg}",
        reference=ref,
    )


@dataclass(frozen=True)
class Credentials:
    """Service account and pull secrets a consumer's pods run with."""

    service_account_name: str | None
    image_pull_secrets: tuple[str, ...]


def resolve_credentials(
    *layers: tuple[str | None, list[LocalObjectReference] | None],
) -> Credentials:
    """First layer that sets each field wins (e.g. service > template > model > runtime config).

    Each layer is ``(service_account_name, image_pull_secrets)``; an empty secret list counts as
    unset so that a consumer cannot accidentally drop the runtime config's credentials.
    """
    account: str | None = None
    secrets: tuple[str, ...] = ()
    for sa, pulls in layers:
        if account is None and sa:
            account = sa
        if not secrets and pulls:
            secrets = tuple(s.name for s in pulls)
    return Credentials(service_account_name=account, image_pull_secrets=secrets)
