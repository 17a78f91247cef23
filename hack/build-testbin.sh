#!/usr/bin/env bash
# Builds the real control-plane binaries used by the integration and e2e tests from the Go module
# proxy: kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes, through the
# wrapper module in hack/testbin/k8s), etcd (go.etcd.io/etcd/server/v3) and kwok.
#
# Binaries land in $AIMCTRL_TESTBIN (default ~/.cache/aimctrl/testbin/<versions>), outside git.
# A warm cache is detected per binary and nothing is rebuilt. Prints the bin directory last.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${AIMCTRL_CACHE:-$HOME/.cache/aimctrl}
out=${AIMCTRL_TESTBIN:-$cache_root/testbin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION}
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { echo "build-testbin: $*" >&2; }

build_k8s() {
  local need=()
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$out/$b" ] || need+=("k8s.io/kubernetes/cmd/$b")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  # The wrapper module's go.mod replaces every staging module with its published tag; copy it to a
  # scratch dir so the checkout stays clean.
  local work="$cache_root/src/k8s-$K8S_VERSION"
  mkdir -p "$work"
  cp "$here/testbin/k8s/go.mod" "$work/go.mod"
  [ -f "$here/testbin/k8s/go.sum" ] && cp "$here/testbin/k8s/go.sum" "$work/go.sum"
  cat >"$work/tools.go" <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ver=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ver+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  log "building ${need[*]} $K8S_VERSION (cold: tens of minutes on 2 cores)"
  (cd "$work" && go get "k8s.io/kubernetes@$K8S_VERSION" && go mod tidy \
     && go build -trimpath -tags=selinux,notest -ldflags "-s -w -buildid= $ver" -o "$out/" "${need[@]}")
}

build_etcd() {
  [ -x "$out/etcd" ] && return 0
  local work="$cache_root/src/etcd-$ETCD_VERSION"
  mkdir -p "$work"
  cp "$here/testbin/etcd/go.mod" "$work/go.mod"
  [ -f "$here/testbin/etcd/go.sum" ] && cp "$here/testbin/etcd/go.sum" "$work/go.sum"
  log "building etcd $ETCD_VERSION"
  (cd "$work" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
     && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() {
  [ -x "$out/kwok" ] && [ -f "$out/kwok-stages.yaml" ] && return 0
  log "installing kwok $KWOK_VERSION"
  GOBIN="$out" GOFLAGS="" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  local src
  src="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  {
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"; cat "$src/$f"
    done
  } >"$out/kwok-stages.yaml"
}

# helm renders charts/aimctrl in the chart tests; it is a Go module too.
build_helm() {
  local dir="$cache_root/tools/helm-$HELM_VERSION"
  [ -x "$dir/helm" ] && return 0
  log "installing helm $HELM_VERSION"
  mkdir -p "$dir"
  GOBIN="$dir" GOFLAGS="" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

case "${1:-all}" in
  all) build_etcd; build_kwok; build_k8s; build_helm ;;
  helm) build_helm ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  k8s) build_k8s ;;
  *) echo "usage: $0 [all|etcd|kwok|k8s|helm]" >&2; exit 2 ;;
esac
echo "$out"
