#!/usr/bin/env bash
# Provide the mediasoup-worker binary for the installed `mediasoup` npm package.
#
# mediasoup's own postinstall is disabled (pnpm-workspace.yaml: allowBuilds) because
# it downloads a prebuilt worker from GitHub and, failing that, builds one with meson
# subprojects that download more sources. This script is the project's install step:
#
#   1. cache hit   -> copy the cached binary into place (a fresh clone costs ~0 s);
#   2. prebuilt    -> the official prebuilt worker from mediasoup's GitHub release,
#                     when that host is reachable and the binary runs here;
#   3. offline     -> build the same-version worker from the npm tarball's sources
#                     against Debian bookworm libraries (patch_worker.py; ~5 min on
#                     2 cores; the diff it produces is mediasoup-<ver>-debian-sysdeps.diff).
#
# The binary is cached OUTSIDE the clone, keyed by mediasoup version + how it was
# obtained (+ patch hash and Debian library versions for the offline build), so a
# version bump or a library upgrade rebuilds and CI's fresh clones reuse the cache.
# It is installed where mediasoup looks by default:
#   node_modules/mediasoup/worker/out/Release/mediasoup-worker
#
# Env: SWITCHBOARD_CACHE (cache root, default ${XDG_CACHE_HOME:-$HOME/.cache}/switchboard),
#      MS_SKIP_APT=1 (don't apt-get the build deps), MS_JOBS (ninja -j),
#      MS_NO_PREBUILT=1 (skip the download attempt), NODE (node binary).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
node_bin="${NODE:-$root/node_modules/.bin/node}"
cache_root="${SWITCHBOARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard}/mediasoup-worker"
log() { echo "[mediasoup-worker] $*"; }

ms_dir="$(readlink -f "$root/services/media/node_modules/mediasoup")"
[ -f "$ms_dir/package.json" ] || { log "mediasoup is not installed (run pnpm install first)" >&2; exit 1; }
ms_ver="$("$node_bin" -p "require('$ms_dir/package.json').version")"
dest="$ms_dir/worker/out/Release/mediasoup-worker"

# The worker exits with code 41 when started without MEDIASOUP_VERSION: that proves
# the binary and all of its shared libraries load on this host.
selfcheck() {
  local rc=0
  env -i "$1" >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 41 ]
}

install_from() {
  mkdir -p "$(dirname "$dest")"
  cp "$1" "$dest.tmp" && chmod 0755 "$dest.tmp" && mv "$dest.tmp" "$dest"
  selfcheck "$dest" || { log "installed worker failed its self-check" >&2; exit 1; }
  log "installed $dest (mediasoup $ms_ver, $2)"
}

cache_put() { # src dir
  mkdir -p "$2"
  cp "$1" "$2/mediasoup-worker.tmp" && mv "$2/mediasoup-worker.tmp" "$2/mediasoup-worker"
}

# Already in place and healthy (same clone, second run)? Check it is the cached one.
prebuilt_dir="$cache_root/$ms_ver-prebuilt-linux-$(uname -m)-kernel$(uname -r | cut -d. -f1)"

build_debs=(meson ninja-build pkg-config g++ python3 libuv1-dev libssl-dev libsrtp2-dev
            libabsl-dev libflatbuffers-dev flatbuffers-compiler)
offline_key() {
  local libvers
  libvers="$(dpkg-query -W -f='${Package}=${Version};' libuv1 libssl3 libsrtp2-1 libabsl20220623 libflatbuffers-dev 2>/dev/null || true)"
  printf '%s\n%s\n%s\n' "$ms_ver" "$(sha256sum "$here/patch_worker.py" | cut -c1-16)" "$libvers" | sha256sum | cut -c1-16
}

# 1. cache hit (prebuilt first, then an offline build for the current libraries)
if [ -x "$prebuilt_dir/mediasoup-worker" ] && selfcheck "$prebuilt_dir/mediasoup-worker"; then
  cmp -s "$prebuilt_dir/mediasoup-worker" "$dest" 2>/dev/null && { log "up to date ($dest)"; exit 0; }
  install_from "$prebuilt_dir/mediasoup-worker" "cached prebuilt"; exit 0
fi
if dpkg -s libflatbuffers-dev >/dev/null 2>&1; then
  offline_dir="$cache_root/$ms_ver-debian-$(offline_key)"
  if [ -x "$offline_dir/mediasoup-worker" ] && selfcheck "$offline_dir/mediasoup-worker"; then
    cmp -s "$offline_dir/mediasoup-worker" "$dest" 2>/dev/null && { log "up to date ($dest)"; exit 0; }
    install_from "$offline_dir/mediasoup-worker" "cached offline build"; exit 0
  fi
fi

# 2. the official prebuilt binary
if [ "${MS_NO_PREBUILT:-0}" != 1 ]; then
  url="https://github.com/versatica/mediasoup/releases/download/$ms_ver/mediasoup-worker-$ms_ver-linux-x64-kernel$(uname -r | cut -d. -f1).tgz"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/ms-worker-dl.XXXXXX")"
  if [ "$(uname -m)" = x86_64 ] && curl -fsSL --connect-timeout 5 --max-time 120 -o "$tmp/w.tgz" "$url" 2>/dev/null &&
     tar -xzf "$tmp/w.tgz" -C "$tmp" 2>/dev/null && [ -f "$tmp/mediasoup-worker" ] && selfcheck "$tmp/mediasoup-worker"; then
    cache_put "$tmp/mediasoup-worker" "$prebuilt_dir"
    rm -rf "$tmp"
    install_from "$prebuilt_dir/mediasoup-worker" "official prebuilt"; exit 0
  fi
  rm -rf "$tmp"
  log "official prebuilt worker unavailable here ($url); building offline"
fi

# 3. offline build against Debian libraries
if [ "${MS_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${build_debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
offline_dir="$cache_root/$ms_ver-debian-$(offline_key)"
build="$(mktemp -d "${TMPDIR:-/tmp}/ms-worker-build.XXXXXX")"
trap 'rm -rf "$build"' EXIT
log "building mediasoup $ms_ver worker in $build (takes a few minutes; cached afterwards in $offline_dir)"
cp -r "$ms_dir/worker" "$build/worker"
rm -rf "$build/worker/out"
python3 "$here/patch_worker.py" "$build/worker"
(cd "$build/worker" &&
  meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true out/Release >/dev/null &&
  ninja -C out/Release -j "${MS_JOBS:-$(nproc)}" mediasoup-worker)
strip "$build/worker/out/Release/mediasoup-worker"
selfcheck "$build/worker/out/Release/mediasoup-worker" || { log "built worker failed its self-check" >&2; exit 1; }
cache_put "$build/worker/out/Release/mediasoup-worker" "$offline_dir"
install_from "$offline_dir/mediasoup-worker" "offline Debian build"
