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
#                     2 cores; the diff it produces is mediasoup-<ver>-debian-sysdeps.diff),
#                     with libsrtp built from Debian's source package against OpenSSL and
#                     linked in statically (build_srtp below): Debian's own libsrtp2 uses
#                     NSS (or its built-in AES), which costs the worker 6-8 µs a packet
#                     where OpenSSL's AES-GCM takes under 1 µs.
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

build_debs=(meson ninja-build pkg-config g++ python3 dpkg-dev libuv1-dev libssl-dev
            libabsl-dev libflatbuffers-dev flatbuffers-compiler)
# Debian bookworm's libsrtp source package, built against OpenSSL (build_srtp). Pinned: the
# cache key names it without asking the network; a mirror that no longer has it fails loudly.
srtp_source=libsrtp2=2.5.0-3
offline_key() {
  local libvers
  libvers="$(dpkg-query -W -f='${Package}=${Version};' libuv1 libssl3 libabsl20220623 libflatbuffers-dev 2>/dev/null || true)"
  printf '%s\n%s\n%s\n%s\n' "$ms_ver" \
    "$(cat "$here/patch_worker.py" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)" \
    "$libvers" "$srtp_source" | sha256sum | cut -c1-16
}

# libsrtp from Debian's source package ($srtp_source), configured for OpenSSL's ciphers and
# built as a static library into $1/prefix (lib/, include/, lib/pkgconfig/libsrtp2.pc). The
# source comes through apt with a deb-src list of its own in $1 (the system's apt sources are
# not touched), unpacked with Debian's patches applied.
build_srtp() {
  local dir="$1" apt_opts
  mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/apt/sources"
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: %s\n' \
    "${MS_DEBIAN_MIRROR:-http://deb.debian.org/debian}" /usr/share/keyrings/debian-archive-keyring.gpg \
    > "$dir/apt/sources/src.sources"
  apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/apt/sources"
            -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
            -o APT::Sandbox::User=root)
  log "fetching the source of $srtp_source (deb-src)"
  apt-get "${apt_opts[@]}" update -qq
  (cd "$dir" && apt-get "${apt_opts[@]}" source --download-only -qq "$srtp_source" >/dev/null)
  dpkg-source -x --no-check "$dir"/libsrtp2_*.dsc "$dir/src" >/dev/null
  (cd "$dir/src" &&
    meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true \
      -Dcrypto-library=openssl -Ddefault_library=static -Db_staticpic=true \
      -Dtests=disabled -Ddoc=disabled --prefix "$dir/prefix" --libdir lib build >/dev/null &&
    ninja -C build -j "${MS_JOBS:-$(nproc)}" >/dev/null &&
    ninja -C build install >/dev/null)
  [ -f "$dir/prefix/lib/libsrtp2.a" ] || { log "libsrtp did not build" >&2; exit 1; }
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
build_srtp "$build/srtp"
cp -r "$ms_dir/worker" "$build/worker"
rm -rf "$build/worker/out"
python3 "$here/patch_worker.py" "$build/worker"
# The worker finds libsrtp2 through pkg-config: the static OpenSSL build above, not Debian's.
(cd "$build/worker" &&
  PKG_CONFIG_PATH="$build/srtp/prefix/lib/pkgconfig" \
    meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true out/Release >/dev/null &&
  ninja -C out/Release -j "${MS_JOBS:-$(nproc)}" mediasoup-worker)
worker_bin="$build/worker/out/Release/mediasoup-worker"
strip "$worker_bin"
selfcheck "$worker_bin" || { log "built worker failed its self-check" >&2; exit 1; }
if ldd "$worker_bin" | grep -Eq 'libsrtp|libnss3'; then
  log "the built worker loads a shared libsrtp or NSS: libsrtp was not linked in statically" >&2
  exit 1
fi
cache_put "$build/worker/out/Release/mediasoup-worker" "$offline_dir"
install_from "$offline_dir/mediasoup-worker" "offline Debian build"
