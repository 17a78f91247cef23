#!/usr/bin/env bash
# hack/kind-e2e.sh — the e2e suite (test/e2e) against kind with the real container image.
#
# For machines with a Docker engine, kind and kubectl (the development machines of this project
# have no Docker engine: this script is checked with shellcheck only, never run there).
#
#   1. create a kind cluster (reused when it exists), and two registries as containers on kind's
#      network: open (kind-registry:5000) and basic auth (kind-registry-auth:5000), published on
#      127.0.0.1:5001 / :5002 for the sample-image push from this host;
#   2. docker build the image, kind load it;
#   3. kubectl apply -k config/default with that image and --insecure-registry for both
#      registries (discovery reads them over plain HTTP from inside the cluster);
#   4. pytest test/e2e with AIMCTRL_E2E_KUBECONFIG and the registry variables test/e2e/conftest.py
#      reads.
#
# Environment: KIND_CLUSTER (aimctrl-e2e), IMG (aimctrl:e2e), KEEP_CLUSTER=1 keeps the cluster and
# registries afterwards. Extra arguments go to pytest.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

CLUSTER=${KIND_CLUSTER:-aimctrl-e2e}
IMG=${IMG:-aimctrl:e2e}
KEEP=${KEEP_CLUSTER:-0}
REG=kind-registry
REG_AUTH=kind-registry-auth
REG_USER=aimtest
REG_PASSWORD=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done
PYTEST=${PYTEST:-$root/.venv/bin/pytest}
[ -x "$PYTEST" ] || { echo "kind-e2e: $PYTEST missing; run 'make setup'" >&2; exit 1; }

work=$(mktemp -d)
kubeconfig=$work/kubeconfig

cleanup() {
  if [ "$KEEP" != 1 ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    docker rm -f "$REG" "$REG_AUTH" >/dev/null 2>&1 || true
  else
    echo "kind-e2e: kept cluster $CLUSTER (kubeconfig: kind get kubeconfig --name $CLUSTER)" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1. cluster and registries
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 180s
fi
kind get kubeconfig --name "$CLUSTER" >"$kubeconfig"
k() { kubectl --kubeconfig "$kubeconfig" "$@"; }

docker rm -f "$REG" "$REG_AUTH" >/dev/null 2>&1 || true
docker run -d --restart=no --name "$REG" -p 127.0.0.1:5001:5000 registry:2 >/dev/null
mkdir -p "$work/auth"
docker run --rm --entrypoint htpasswd httpd:2 -Bbn "$REG_USER" "$REG_PASSWORD" >"$work/auth/htpasswd"
docker run -d --restart=no --name "$REG_AUTH" -p 127.0.0.1:5002:5000 \
  -v "$work/auth:/auth:ro" \
  -e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM=aimctrl-e2e \
  -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd \
  registry:2 >/dev/null
# Discovery pods reach the registries by container name on kind's network.
docker network connect kind "$REG" 2>/dev/null || true
docker network connect kind "$REG_AUTH" 2>/dev/null || true

# ---------------------------------------------------------------- 2. image
docker build -t "$IMG" .
kind load docker-image "$IMG" --name "$CLUSTER"

# ---------------------------------------------------------------- 3. install
# config/default names the image aimctrl:dev (Deployment image and AIMCTRL_IMAGE, which discovery
# Jobs run); both become $IMG. The registries are plain HTTP inside the cluster.
kubectl kustomize config/default \
  | sed -e "s|aimctrl:dev|$IMG|g" \
        -e "s|^\( *\)- --operator-namespace=aimctrl-system|&\n\1- --insecure-registry=$REG:5000\n\1- --insecure-registry=$REG_AUTH:5000|" \
  >"$work/install.yaml"
k apply --server-side --force-conflicts -f "$work/install.yaml"
k wait --for=condition=Established --timeout=60s -f config/crd/bases
k -n aimctrl-system rollout status deployment/aimctrl-controller-manager --timeout=180s

# ---------------------------------------------------------------- 4. tests
export AIMCTRL_E2E_KUBECONFIG=$kubeconfig
export AIMCTRL_E2E_REGISTRY_PUSH=127.0.0.1:5001 AIMCTRL_E2E_REGISTRY=$REG:5000
export AIMCTRL_E2E_REGISTRY_AUTH_PUSH=127.0.0.1:5002 AIMCTRL_E2E_REGISTRY_AUTH=$REG_AUTH:5000
export AIMCTRL_E2E_REGISTRY_USER=$REG_USER AIMCTRL_E2E_REGISTRY_PASSWORD=$REG_PASSWORD
"$PYTEST" test/e2e "$@"
