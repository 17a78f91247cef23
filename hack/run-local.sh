#!/usr/bin/env bash
# hack/run-local.sh [start|stop] — the README's `make run`: aimctrl against a cluster, with samples.
#
#   1. Without $KUBECONFIG: `hack/dev-cluster up` (local control plane, KWOK nodes, registries with
#      the sample images, discovery-pod runner) and use .dev/kubeconfig.
#   2. Install the CRDs (config/crd) and RBAC (config/rbac) into aimctrl-system.
#   3. Run the manager from this checkout in the background as the controller's ServiceAccount
#      (impersonation: it gets exactly the generated RBAC, nothing of the admin kubeconfig), log in
#      .dev/manager.log, pid in .dev/manager.pid; wait for /readyz.
#   4. Apply the samples (dev cluster: hack/samples-dev with the dev registries' images and a pull
#      Secret from .dev/registry.env; other clusters: the seed's config/samples), wait until they
#      are Ready and show `kubectl get aim -A`.
#
# The manager keeps running; stop it with `hack/run-local.sh stop` (or `hack/dev-cluster down`,
# which stops it and the dev cluster). Environment: METRICS_ADDR (127.0.0.1:8080), PROBE_ADDR
# (127.0.0.1:8081), DISCOVERY_MODE (job), WAIT_TIMEOUT (180s).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

NAMESPACE=aimctrl-system
# The ServiceAccount of config/rbac/service_account.yaml, bound to the generated roles.
SERVICE_ACCOUNT=aimctrl-controller-manager
METRICS_ADDR=${METRICS_ADDR:-127.0.0.1:8080}
PROBE_ADDR=${PROBE_ADDR:-127.0.0.1:8081}
DISCOVERY_MODE=${DISCOVERY_MODE:-job}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-180s}
DEV=$root/.dev
PID_FILE=$DEV/manager.pid
LOG_FILE=$DEV/manager.log
KUBECTL=$root/.venv/bin/kubectl
AIMCTRL=$root/.venv/bin/aimctrl

say() { printf 'run-local: %s\n' "$*" >&2; }

stop_manager() {
  [ -f "$PID_FILE" ] || return 0
  local pid
  pid=$(cat "$PID_FILE")
  # Only signal the pid while it is still our manager (pids are recycled).
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'aimctrl run'; then
    say "stopping the manager (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$PID_FILE"
}

if [ "${1:-start}" = stop ]; then
  stop_manager
  exit 0
fi

# ---------------------------------------------------------------- 1. a cluster
dev_cluster=false
if [ -z "${KUBECONFIG:-}" ]; then
  hack/dev-cluster up
  export KUBECONFIG=$DEV/kubeconfig
  dev_cluster=true
fi
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }
mkdir -p "$DEV"

# ---------------------------------------------------------------- 2. CRDs and RBAC
say "installing CRDs and RBAC"
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f - >/dev/null
# Server-side: CRDs with full schemas are too large for the last-applied annotation.
k apply --server-side --force-conflicts -k config/crd >/dev/null
k wait --for=condition=Established --timeout=60s -f config/crd/bases >/dev/null
k apply -k config/rbac >/dev/null

# ---------------------------------------------------------------- 3. the manager
# On the dev cluster, discovery pods are run by the pod runner `hack/dev-cluster up` started
# (python -m aimctrl.testing.podrunner KUBECONFIG .dev/podrunner): it stands in for the kubelet
# for discovery pods only, and keeps their output in .dev/podrunner/<namespace>_<pod>.log.
stop_manager
say "starting the manager as system:serviceaccount:$NAMESPACE:$SERVICE_ACCOUNT (log: $LOG_FILE)"
nohup "$AIMCTRL" run \
  --kubeconfig "$KUBECONFIG" \
  --impersonate-user "system:serviceaccount:$NAMESPACE:$SERVICE_ACCOUNT" \
  --impersonate-group system:serviceaccounts \
  --impersonate-group "system:serviceaccounts:$NAMESPACE" \
  --operator-namespace "$NAMESPACE" \
  --discovery-mode "$DISCOVERY_MODE" \
  --metrics-bind-address "$METRICS_ADDR" \
  --health-probe-bind-address "$PROBE_ADDR" \
  --log-format console \
  >"$LOG_FILE" 2>&1 </dev/null &
echo $! >"$PID_FILE"
ready=false
for _ in $(seq 300); do
  if curl -fsS "http://$PROBE_ADDR/readyz" >/dev/null 2>&1; then ready=true; break; fi
  kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break
  sleep 0.2
done
if ! $ready; then
  say "the manager did not become ready; last lines of $LOG_FILE:"
  tail -n 40 "$LOG_FILE" >&2
  stop_manager
  exit 1
fi
say "manager ready: metrics http://$METRICS_ADDR/metrics, probes http://$PROBE_ADDR/readyz"

# ---------------------------------------------------------------- 4. samples
if $dev_cluster; then
  # REGISTRY, REGISTRY_AUTH, REGISTRY_USER, REGISTRY_PASSWORD (read, not sourced: only these).
  while IFS='=' read -r key value; do
    case $key in
      REGISTRY | REGISTRY_AUTH | REGISTRY_USER | REGISTRY_PASSWORD)
        value=${value#\'}; value=${value%\'}
        export "$key=$value" ;;
    esac
  done <"$DEV/registry.env"
  say "applying hack/samples-dev (images on $REGISTRY and $REGISTRY_AUTH)"
  k apply -f hack/samples-dev/00-namespace.yaml >/dev/null
  secret_dir=$(mktemp -d)
  trap 'rm -rf "$secret_dir"' EXIT
  # The pull secret of the private example, made from the dev registry's credentials; written
  # to a private temp file so the password never appears on a command line.
  "$root/.venv/bin/python" - "$secret_dir/config.json" <<'PY'
import base64, json, os, sys
auth = base64.b64encode(f"{os.environ['REGISTRY_USER']}:{os.environ['REGISTRY_PASSWORD']}".encode())
with open(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
    json.dump({"auths": {os.environ["REGISTRY_AUTH"]: {"auth": auth.decode()}}}, f)
PY
  k -n ml-team create secret generic private-registry \
    --type=kubernetes.io/dockerconfigjson \
    --from-file=.dockerconfigjson="$secret_dir/config.json" \
    --dry-run=client -o yaml | k apply -f - >/dev/null
  for f in hack/samples-dev/[1-9]*.yaml; do
    sed -e "s|\${REGISTRY}|$REGISTRY|g" -e "s|\${REGISTRY_AUTH}|$REGISTRY_AUTH|g" "$f"
    echo "---"
  done | k apply -f -
else
  say "applying config/samples (the seed's examples; their images must be reachable)"
  k apply -k config/samples
fi

say "waiting up to $WAIT_TIMEOUT for the samples to become Ready"
status=0
# One wait per object: with several objects, kubectl shares one deadline and reports the later
# ones as timed out once an earlier one used it up, even when they are Ready.
for obj in aimclustermodel/meta-llama-3-8b-instruct ml-team/aimmodel/meta-llama-3-8b-dev \
  ml-team/aimmodel/proprietary-model ml-team/aimservice/llama-chat ml-team/aimservice/my-service \
  aimclustermodel/llama-3-3-70b-instruct ml-team/aimservice/llama-70b; do
  ns=()
  if [ "${obj%%/*}" = ml-team ]; then ns=(-n ml-team); obj=${obj#ml-team/}; fi
  k "${ns[@]}" wait --for=condition=Ready --timeout="$WAIT_TIMEOUT" "$obj" || status=1
done
k get aim -A
if [ "$status" -ne 0 ]; then
  say "not everything became Ready; see 'kubectl describe' and $LOG_FILE"
fi
pid=$(cat "$PID_FILE")
cat >&2 <<EOF

aimctrl is running (pid $pid, log $LOG_FILE).
  export KUBECONFIG=$KUBECONFIG
  kubectl get aim -A
  kubectl describe aimclustermodel meta-llama-3-8b-instruct
  curl -s http://$METRICS_ADDR/metrics | grep controller_runtime_reconcile_total
Stop it with: hack/run-local.sh stop   (hack/dev-cluster down also stops the dev cluster)
EOF
exit "$status"
