"""Running one model's discovery, inline or as a Job, and what the run came to.

The model reconciler decides *whether* to discover; :class:`DiscoveryRunner` does it and answers
with :class:`Final` (a result, or a failure retrying will not fix) or :class:`Pending` (running,
retrying, or blocked on a missing pull secret). Guarantees:

* pull secrets are looked up in the model's credential namespace (its own; the operator
  namespace for cluster models); a missing one gives ``Pending(failed=True)`` with reason
  ``PullSecretMissing`` and starts nothing;
* inline mode reads the Secrets through the API (the Secret cache holds no ``data``) and calls
  :func:`~aimctrl.discovery.discover` through a :class:`~aimctrl.discovery.cache.DiscoveryCache`
  (one per runner, :data:`CACHE_TTL` seconds): models naming the same image with the same
  credentials and rediscover token within that time read the registry once;
  ``RegistryUnavailable`` is transient (never cached), anything else final;
* Job mode creates at most one Job per model (:mod:`aimctrl.controllers.discoveryjob`), and
  reads a result only from a Job this model owns for the current image and rediscover token; any
  other Job is deleted (uid precondition, propagation Background) before a new one is made. A
  Job that failed without a result is deleted at once and reported as transient;
* :class:`Backoff` spaces transient retries 10 s apart, doubling to 5 min, per request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aimctrl.api.v1alpha1.common import API_VERSION
from aimctrl.api.v1alpha1.enums import Reason
from aimctrl.controllers.context import Context, EventType
from aimctrl.controllers.discoveryjob import (
    ANNOTATION_IMAGE,
    ANNOTATION_TOKEN,
    DISCOVERY_JOB_LABEL,
    DiscoveryJobSpec,
    JobFailed,
    JobOutcome,
    JobRunning,
    JobSucceeded,
    build_discovery_job,
    discovery_job_name,
    read_job_outcome,
)
from aimctrl.discovery.cache import DiscoveryCache
from aimctrl.discovery.discover import DiscoveryResult, discover
from aimctrl.discovery.dockerconfig import DockerConfig, parse_dockerconfigjson
from aimctrl.discovery.errors import DiscoveryError, PullSecretError
from aimctrl.discovery.errors import Reason as DiscoveryReason
from aimctrl.kube.errors import AlreadyExists, NotFound
from aimctrl.kube.resources import JOB, SECRET
from aimctrl.machinery.lister import Lister
from aimctrl.machinery.reconcile import Request
from aimctrl.resolve.runtimeconfig import RuntimeResolution, resolve_credentials
from aimctrl.resolve.templates import AnyModel

__all__ = [
    "ANNOTATION_REDISCOVER",
    "CACHE_TTL",
    "Backoff",
    "DiscoveryRunner",
    "Final",
    "Pending",
    "docker_config",
    "rediscover_token",
    "retry_delay",
]

ANNOTATION_REDISCOVER = "aim.silogen.ai/rediscover"

_BACKOFF_BASE = 10.0
_BACKOFF_MAX = 300.0
_SAFETY_REQUEUE_SLACK = 30.0
_DELETE_WAIT = 1.0
#: How long one inline registry read answers other models naming the same image.
CACHE_TTL = 30.0

EmitEvent = Callable[[AnyModel, EventType, str, str], None]


@dataclass(frozen=True)
class Final:
    """Discovery finished: a result, or a failure that retrying will not fix."""

    result: DiscoveryResult | None
    reason: str = ""
    message: str = ""
    job_name: str | None = None


@dataclass(frozen=True)
class Pending:
    """Discovery did not finish in this reconcile (running, retrying, blocked)."""

    reason: str
    message: str
    requeue_after: float = 0.0
    failed: bool = False  # blocked on something the user must create (a pull secret)
    transient: bool = False  # a failed attempt: retry after the backoff


def retry_delay(attempt: int) -> float:
    """Backoff before retry ``attempt`` (1-based) of a transient failure: 10 s doubling to 5 min."""
    return float(min(_BACKOFF_BASE * 2.0 ** max(attempt - 1, 0), _BACKOFF_MAX))


def rediscover_token(model: AnyModel) -> str:
    """The model's ``aim.silogen.ai/rediscover`` annotation (``""`` when absent)."""
    return model.metadata.annotations.get(ANNOTATION_REDISCOVER, "")


class Backoff:
    """Per-request retry schedule of transient failures; safe for concurrent workers."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._attempts: dict[Request, int] = {}
        self._retry_at: dict[Request, float] = {}

    def left(self, request: Request) -> float:
        """Seconds until ``request`` may be retried (0 when it may now)."""
        with self._lock:
            at = self._retry_at.get(request)
        return 0.0 if at is None else max(at - self._now(), 0.0)

    def forget(self, request: Request) -> None:
        with self._lock:
            self._attempts.pop(request, None)
            self._retry_at.pop(request, None)

    def next(self, request: Request) -> float:
        """Count one more failed attempt; return the delay before the next."""
        with self._lock:
            attempt = self._attempts.get(request, 0) + 1
            self._attempts[request] = attempt
            delay = retry_delay(attempt)
            self._retry_at[request] = self._now() + delay
        return delay


def docker_config(secret: Mapping[str, Any], name: str) -> DockerConfig:
    """The registry credentials of a ``kubernetes.io/dockerconfigjson`` (or dockercfg) Secret."""
    data = secret.get("data") or {}
    for key in (".dockerconfigjson", ".dockercfg"):
        if key in data:
            try:
                payload = base64.b64decode(data[key], validate=True)
            except (binascii.Error, ValueError):
                raise PullSecretError(f"pull secret {name!r}: {key} is not base64") from None
            return parse_dockerconfigjson(payload, source=f"pull secret {name!r}")
    raise PullSecretError(f"pull secret {name!r} holds neither .dockerconfigjson nor .dockercfg")


def _discover(image: str, **kwargs: Any) -> DiscoveryResult:
    """:func:`~aimctrl.discovery.discover`, looked up at call time (tests replace it)."""
    return discover(image, **kwargs)


class DiscoveryRunner:
    """Runs discovery for the models of one kind (see the module docstring)."""

    def __init__(
        self,
        ctx: Context,
        *,
        cluster: bool,
        jobs: Lister,
        pods: Lister,
        secrets: Lister,
        event: EmitEvent,
        field_manager: str,
    ) -> None:
        self._ctx = ctx
        self._cluster = cluster
        self._jobs = jobs
        self._pods = pods
        self._secrets = secrets
        self._event = event
        self._field_manager = field_manager
        self._cache = DiscoveryCache(ttl=CACHE_TTL, clock=ctx.clock, discover_fn=_discover)

    def run(self, model: AnyModel, runtime: RuntimeResolution) -> Final | Pending:
        """Discover in the configured mode (inline, or one step of the Job's life)."""
        if self._ctx.settings.discovery_mode == "inline":
            return self._inline(model, runtime)
        return self._with_job(model, runtime)

    def delete_own_job(self, model: AnyModel) -> None:
        """Delete the model's discovery Job, if it has one (discovery was switched off)."""
        job = self._jobs.get(self._job_name(model), self._credential_namespace(model))
        if job is not None and self._owns(model, job):
            self._delete_job(job)

    # ------------------------------------------------------------------ credentials
    def _credential_namespace(self, model: AnyModel) -> str:
        if self._cluster:
            return self._ctx.settings.operator_namespace
        return model.metadata.namespace or ""

    @staticmethod
    def _pull_secrets(
        model: AnyModel, runtime: RuntimeResolution
    ) -> tuple[str | None, tuple[str, ...]]:
        creds = resolve_credentials(
            (model.spec.service_account_name, model.spec.image_pull_secrets),
            (runtime.spec.service_account_name, runtime.spec.image_pull_secrets),
        )
        return creds.service_account_name, creds.image_pull_secrets

    def _missing_secret(self, namespace: str, names: Iterable[str]) -> Pending | None:
        missing = [n for n in names if self._secrets.get(n, namespace) is None]
        if not missing:
            return None
        return Pending(
            reason=Reason.PULL_SECRET_MISSING,
            message=(
                f"pull secret(s) {', '.join(missing)} not found in namespace {namespace}; "
                "discovery starts when they exist"
            ),
            failed=True,
        )

    # ------------------------------------------------------------------ inline mode
    def _inline(self, model: AnyModel, runtime: RuntimeResolution) -> Final | Pending:
        namespace = self._credential_namespace(model)
        _, secrets = self._pull_secrets(model, runtime)
        configs: list[DockerConfig] = []
        for name in secrets:
            try:
                secret = self._ctx.client.get(SECRET, name, namespace=namespace)
            except NotFound:
                return Pending(
                    reason=Reason.PULL_SECRET_MISSING,
                    message=(
                        f"pull secret {name} not found in namespace {namespace}; "
                        "discovery starts when it exists"
                    ),
                    failed=True,
                )
            try:
                configs.append(docker_config(secret, name))
            except PullSecretError as e:
                return Final(result=None, reason=e.reason.value, message=e.message)
        # No "started" event inline: the outcome event follows within the same reconcile.
        started = self._ctx.clock.now()
        try:
            result = self._cache.discover(
                model.spec.image,
                credentials=DockerConfig.merge(configs),
                insecure_registries=self._ctx.settings.insecure_registries,
                stop=self._ctx.stop,
                token=rediscover_token(model),
            )
        except DiscoveryError as e:
            self._observe(e.reason.value, started)
            if e.reason == DiscoveryReason.REGISTRY_UNAVAILABLE:
                return Pending(reason=Reason.DISCOVERY_RETRYING, message=e.message, transient=True)
            return Final(result=None, reason=e.reason.value, message=e.message)
        self._observe("Succeeded", started)
        return Final(result=result)

    def _observe(self, outcome: str, started: float) -> None:
        if self._ctx.prometheus is not None:
            seconds = max(self._ctx.clock.now() - started, 0.0)
            self._ctx.prometheus.observe_discovery(mode="inline", outcome=outcome, seconds=seconds)

    # ------------------------------------------------------------------ job mode
    def _job_name(self, model: AnyModel) -> str:
        return discovery_job_name(
            model.metadata.name,
            cluster_scoped=self._cluster,
            in_operator_namespace=(
                self._credential_namespace(model) == self._ctx.settings.operator_namespace
            ),
        )

    @staticmethod
    def _owns(model: AnyModel, job: Mapping[str, Any]) -> bool:
        refs = (job.get("metadata") or {}).get("ownerReferences") or ()
        return any(r.get("uid") == model.metadata.uid and r.get("controller") for r in refs)

    def _delete_job(self, job: Mapping[str, Any]) -> None:
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            return
        with contextlib.suppress(NotFound):  # already gone: what we wanted
            self._ctx.client.delete(
                JOB,
                meta["name"],
                namespace=meta["namespace"],
                propagation_policy="Background",
                preconditions={"uid": meta["uid"]},
            )

    def _with_job(self, model: AnyModel, runtime: RuntimeResolution) -> Final | Pending:
        namespace, name = self._credential_namespace(model), self._job_name(model)
        job = self._jobs.get(name, namespace)
        if job is not None:
            annotations = job["metadata"].get("annotations") or {}
            current = (
                self._owns(model, job)
                and annotations.get(ANNOTATION_IMAGE) == model.spec.image
                and annotations.get(ANNOTATION_TOKEN, "") == rediscover_token(model)
            )
            if job["metadata"].get("deletionTimestamp") or not current:
                # A Job for another image, request or model incarnation: never read it.
                self._delete_job(job)
                return Pending(
                    reason=Reason.DISCOVERY_RUNNING,
                    message=f"replacing discovery Job {namespace}/{name}",
                    requeue_after=_DELETE_WAIT,
                )
            return self._job_outcome(job)
        service_account, secrets = self._pull_secrets(model, runtime)
        missing = self._missing_secret(namespace, secrets)
        if missing is not None:
            return missing
        self._create_job(model, namespace, name, service_account, secrets)
        return Pending(
            reason=Reason.DISCOVERY_RUNNING,
            message=f"discovery Job {namespace}/{name} created for {model.spec.image}",
            requeue_after=self._ctx.settings.discovery_active_deadline_seconds
            + _SAFETY_REQUEUE_SLACK,
        )

    def _create_job(
        self,
        model: AnyModel,
        namespace: str,
        name: str,
        service_account: str | None,
        secrets: tuple[str, ...],
    ) -> None:
        settings = self._ctx.settings
        body = build_discovery_job(
            DiscoveryJobSpec(
                job_name=name,
                namespace=namespace,
                model_api_version=API_VERSION,
                model_kind=model.kind,
                model_name=model.metadata.name,
                model_namespace="" if self._cluster else (model.metadata.namespace or ""),
                model_uid=model.metadata.uid or "",
                image=model.spec.image,
                discovery_image=settings.discovery_image,
                rediscover_token=rediscover_token(model),
                pull_secrets=secrets,
                service_account_name=service_account,
                insecure_registries=settings.insecure_registries,
                active_deadline_seconds=settings.discovery_active_deadline_seconds,
                ttl_seconds_after_finished=settings.discovery_ttl_seconds_after_finished,
            )
        )
        try:
            self._ctx.client.create(
                JOB, body, namespace=namespace, field_manager=self._field_manager
            )
        except AlreadyExists:
            return  # the cache is behind; the Job's event brings the model back
        self._event(
            model,
            EventType.NORMAL,
            "DiscoveryStarted",
            f"created discovery Job {namespace}/{name} for {model.spec.image}",
        )

    def _job_outcome(self, job: Mapping[str, Any]) -> Final | Pending:
        meta = job["metadata"]
        pods = self._pods.list(meta["namespace"], {DISCOVERY_JOB_LABEL: meta["name"]})
        outcome: JobOutcome = read_job_outcome(job, pods)
        if isinstance(outcome, JobRunning):
            return Pending(reason=Reason.DISCOVERY_RUNNING, message=outcome.message)
        self._observe_job(job, outcome)
        if isinstance(outcome, JobSucceeded):
            return Final(result=outcome.result, job_name=meta["name"])
        assert isinstance(outcome, JobFailed)
        if outcome.transient:
            self._delete_job(job)
            return Pending(
                reason=Reason.DISCOVERY_RETRYING, message=outcome.message, transient=True
            )
        return Final(
            result=None, reason=outcome.reason, message=outcome.message, job_name=meta["name"]
        )

    def _observe_job(self, job: Mapping[str, Any], outcome: JobSucceeded | JobFailed) -> None:
        created = (job.get("metadata") or {}).get("creationTimestamp")
        if self._ctx.prometheus is None or not created:
            return
        started = datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()
        label = "Succeeded" if isinstance(outcome, JobSucceeded) else outcome.reason
        seconds = max(self._ctx.clock.wall() - started, 0.0)
        self._ctx.prometheus.observe_discovery(mode="job", outcome=label, seconds=seconds)
