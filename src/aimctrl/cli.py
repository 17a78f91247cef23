"""The ``aimctrl`` command line: one argparse sub-command per verb.

``aimctrl discover IMAGE`` runs one discovery (the body of the discovery Job, and a way for people
to check an image). It prints a human summary and the result JSON to stdout (only the JSON with
``--json``), writes the encoded result or failure to the termination-message path, and exits with
0 on success, 3 when the registry refused access, 4 when the image does not exist, 5 when its
labels are missing, unparseable or too large, and 1 for anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aimctrl.discovery.discover import DiscoveryResult, discover
from aimctrl.discovery.dockerconfig import DockerConfig, load_pull_secrets_dir
from aimctrl.discovery.errors import DiscoveryError, Reason
from aimctrl.discovery.termination import (
    DiscoveryFailure,
    decode_termination_message,
    encode_termination_message,
)
from aimctrl.log import configure_logging

__all__ = ["EXIT_CODES", "build_parser", "main"]

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
EXIT_CODES: dict[Reason, int] = {
    Reason.IMAGE_PULL_AUTH_FAILURE: 3,
    Reason.IMAGE_NOT_FOUND: 4,
    Reason.METADATA_EXTRACTION_FAILED: 5,
    Reason.METADATA_TOO_LARGE: 5,
    Reason.REGISTRY_UNAVAILABLE: 1,
    Reason.INVALID_IMAGE_REFERENCE: 1,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aimctrl", description="Kubernetes controller for the AIM model catalog."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    disc = commands.add_parser(
        "discover",
        help="read an image's AIM labels from its registry (no pull)",
        description="Discover one image: manifest, linux/amd64 config, labels.",
    )
    disc.add_argument("image", metavar="IMAGE", help="image reference, e.g. docker.io/org/x:tag")
    disc.add_argument(
        "--pull-secrets-dir",
        type=Path,
        help="directory of mounted pull secrets (sub-directories holding .dockerconfigjson)",
    )
    disc.add_argument(
        "--termination-message-path",
        default=DEFAULT_TERMINATION_PATH,
        help="where to write the encoded result (skipped if its directory does not exist)",
    )
    disc.add_argument("--json", action="store_true", help="print only the result JSON")
    disc.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="use plain HTTP for this registry (loopback registries always do)",
    )
    disc.add_argument(
        "--log-format",
        choices=("json", "console"),
        default="console",
        help="format of the log lines on stderr (stdout carries only the result)",
    )
    disc.set_defaults(handler=_run_discover)
    _add_run_parser(commands)
    return parser


def _add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run the manager (all reconcilers, metrics, probes, leader election)",
        description="Run the aimctrl manager against the cluster of --kubeconfig or in-cluster.",
    )
    env = os.environ.get
    run.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: in-cluster)")
    run.add_argument("--metrics-bind-address", default=":8080", help='"0" disables metrics')
    run.add_argument("--health-probe-bind-address", default=":8081", help='"0" disables probes')
    run.add_argument("--leader-elect", action="store_true", help="hold a Lease before working")
    run.add_argument("--leader-election-namespace", default=None)
    run.add_argument(
        "--leader-elect-lease-duration",
        type=float,
        default=15.0,
        help="seconds a Lease is valid after its last renewal: how long a standby waits after "
        "the leader dies (takeover comes within this plus about two retry periods)",
    )
    run.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=10.0,
        help="seconds the leader keeps trying to renew before it gives up and exits",
    )
    run.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=2.0,
        help="seconds between attempts to acquire or renew the Lease",
    )
    run.add_argument("--workers", type=int, default=4, help="worker threads per controller")
    run.add_argument(
        "--operator-namespace",
        default=env("AIM_OPERATOR_NAMESPACE", "kaiwo-system"),
        help="namespace of cluster models' discovery Jobs and secrets (env AIM_OPERATOR_NAMESPACE)",
    )
    run.add_argument("--discovery-mode", choices=("job", "inline"), default="job")
    run.add_argument(
        "--discovery-image",
        default=env("AIMCTRL_IMAGE", "aimctrl:dev"),
        help="image of discovery Jobs (env AIMCTRL_IMAGE: the manager's own image)",
    )
    run.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="registries reached over plain HTTP (loopback registries always are)",
    )
    run.add_argument("--log-format", choices=("json", "console"), default="json")
    run.add_argument("--log-level", default="info")
    run.add_argument("--impersonate-user", default=None, help=argparse.SUPPRESS)
    run.add_argument("--impersonate-group", action="append", default=[], help=argparse.SUPPRESS)
    run.set_defaults(handler=_run_manager)


def _run_manager(args: argparse.Namespace) -> int:
    from aimctrl.machinery.leaderelection import check_timings

    try:
        check_timings(
            args.leader_elect_lease_duration,
            args.leader_elect_renew_deadline,
            args.leader_elect_retry_period,
        )
    except ValueError as e:
        print(f"aimctrl run: error: --leader-elect-*: {e}", file=sys.stderr)
        return 2
    configure_logging(format=args.log_format, level=args.log_level)
    # Imported here: the discover sub-command (the discovery Job) needs none of the manager.
    from aimctrl.controllers.context import DiscoveryMode, Settings
    from aimctrl.manager import Manager, ManagerOptions

    options = ManagerOptions(
        kubeconfig=args.kubeconfig,
        metrics_bind_address=args.metrics_bind_address,
        health_probe_bind_address=args.health_probe_bind_address,
        leader_elect=args.leader_elect,
        leader_election_namespace=args.leader_election_namespace,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
        impersonate_user=args.impersonate_user,
        impersonate_groups=tuple(args.impersonate_group),
        tune_gc=True,
        settings=Settings(
            operator_namespace=args.operator_namespace,
            discovery_mode=DiscoveryMode(args.discovery_mode),
            discovery_image=args.discovery_image,
            insecure_registries=tuple(args.insecure_registry),
            workers=args.workers,
        ),
    )
    return Manager(options).run()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


def _run_discover(args: argparse.Namespace) -> int:
    configure_logging(format=args.log_format)
    outcome: DiscoveryResult | DiscoveryFailure
    try:
        credentials = (
            load_pull_secrets_dir(args.pull_secrets_dir)
            if args.pull_secrets_dir
            else DockerConfig()
        )
        outcome = discover(
            args.image, credentials=credentials, insecure_registries=args.insecure_registry
        )
    except DiscoveryError as e:
        outcome = DiscoveryFailure.from_error(e)
    encoded = encode_termination_message(outcome)
    _write_termination_message(args.termination_message_path, encoded)
    written = decode_termination_message(encoded)
    if isinstance(written, DiscoveryFailure):
        outcome = written  # e.g. a good result too large for the termination message
    if isinstance(outcome, DiscoveryFailure):
        print(
            f"discovery of {args.image} failed: {outcome.reason}: {outcome.message}",
            file=sys.stderr,
        )
        if args.json:
            print(json.dumps({"error": outcome.model_dump(by_alias=True)}, indent=2))
        return EXIT_CODES.get(outcome.reason, 1)
    if not args.json:
        print(_summary(outcome))
    print(json.dumps(outcome.model_dump(by_alias=True, exclude_none=True), indent=2))
    return 0


def _summary(result: DiscoveryResult) -> str:
    model = result.image_metadata.model
    lines = [
        f"image:      {result.image}",
        f"digest:     {result.digest}",
        f"platform:   {result.platform}",
        f"model:      {model.canonical_name}",
    ]
    if model.source:
        lines.append(f"source:     {model.source}")
    if result.gpu.models:
        lines.append(f"gpus:       {', '.join(result.gpu.models)} (min {result.gpu.min_count})")
    lines.append(f"recommended deployments: {len(model.recommended_deployments)}")
    for d in model.recommended_deployments:
        count = f"{d.gpu_count}x " if d.gpu_count else ""
        parts = [f"{count}{d.gpu_model or '?'}", d.metric or "-", d.precision or "-"]
        if d.profile_id:
            parts.append(f"profile {d.profile_id}")
        lines.append("  - " + "  ".join(parts))
    return "\n".join(lines)


def _write_termination_message(path: str, text: str) -> None:
    target = Path(path)
    if path == DEFAULT_TERMINATION_PATH and not target.exists():
        return  # outside a pod: never create files under /dev
    if not target.parent.is_dir():
        return
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        print(f"warning: cannot write termination message to {path}: {e}", file=sys.stderr)
