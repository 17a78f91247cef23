#!/usr/bin/env bash
# Everything a fresh machine needs for aimctrl's tests and dev cluster, idempotent:
#   1. Debian packages: docker-registry (the real OCI registry), apache2-utils (htpasswd),
#      prometheus (promtool + a server for the e2e scrape), skopeo (cross-checks images).
#   2. A virtualenv in .venv with the locked dependencies and aimctrl installed editable.
#   3. The control-plane binaries built from the Go module proxy (hack/build-testbin.sh, cached).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need_apt=()
for pair in docker-registry:docker-registry htpasswd:apache2-utils promtool:prometheus skopeo:skopeo; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair##*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.aimctrl-lock-$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python dependencies" >&2
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.lock
  .venv/bin/pip install -q --no-deps -e .
  rm -f .venv/.aimctrl-lock-*
  touch "$stamp"
fi

start=$(date +%s)
bindir=$(hack/build-testbin.sh all)
echo "setup: control-plane binaries in $bindir ($(( $(date +%s) - start )) s)" >&2
