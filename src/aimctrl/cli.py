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
    return parser


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
