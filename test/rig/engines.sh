#!/usr/bin/env bash
# Brings up the real parts the end-to-end tests and the demo push through, idempotently:
#   engine A  Debian bookworm docker.io 20.10 (classic image store) on the default socket
#   engine B  Docker 28.x from Debian sid (containerd image store, buildx), extracted, not installed,
#             on its own socket: the store GitHub's Ubuntu runners move to with Docker 29
# Registries are started per test suite (test/support/registry.ts), not here.
# Each engine is checked for the image store it must have (A classic, B containerd); an engine of the wrong
# store is not recorded and the script fails: the tests never run one engine's cases on the other.
# Idempotent and fast (under a second) when the engines are up; `npm test` runs it first (test/rig/global-setup.mjs).
# Usage: engines.sh [a|all]   (default all). Prints the env file path it wrote.
set -euo pipefail
want=${1:-all}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="$root/.rig"
mkdir -p "$state"
B_HOME=/opt/rp-engine-b
B_RUN=/run/rp-engine-b

log() { echo "[rig] $*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { log "needs root (apt-get, dockerd)"; exit 1; }; }

apt_updated=
apt_update() { [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }; }

install_debs() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v skopeo >/dev/null || missing+=(skopeo)
  command -v htpasswd >/dev/null || missing+=(apache2-utils)
  # zstd fixtures of the unit tests (Node 20's zlib has no zstd); the relayer's zstd-command path runs it too
  command -v zstd >/dev/null || missing+=(zstd)
  if [ ${#missing[@]} -gt 0 ]; then
    need_root; apt_update
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

wait_engine() { # host seconds
  for _ in $(seq "$2"); do DOCKER_HOST=$1 docker version --format "{{.Server.Version}}" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}

# record engine $1 at $2 when it answers with image store $3 (classic | containerd: what the engine says, not
# what its socket suggests); a wrong store is an error, never a stand-in
failed=
record() {
  local status store=classic
  if ! status=$(DOCKER_HOST=$2 docker info --format '{{json .DriverStatus}}' 2>/dev/null); then
    if [ "$want" = all ] || [ "$1" = A ]; then log "engine $1 does not answer at $2"; failed=1; fi
    return 0
  fi
  case $status in *containerd.snapshotter*) store=containerd ;; esac
  if [ "$store" != "$3" ]; then
    log "engine $1 at $2 uses the $store image store; it must be the $3 store (stop that engine, then rerun)"
    failed=1
    return 0
  fi
  echo "ENGINE_$1=$2"
}

start_engine_a() {
  if wait_engine unix:///var/run/docker.sock 1; then return; fi
  need_root; log "starting engine A (dockerd 20.10, classic store)"
  # a session of its own: a test run's time limit (.ci/tests: timeout kills its process group) never takes it along
  setsid nohup dockerd >"$state/engine-a.log" 2>&1 &
  wait_engine unix:///var/run/docker.sock 60 || { tail -20 "$state/engine-a.log" >&2; exit 1; }
}

fetch_engine_b() {
  [ -x "$B_HOME/usr/sbin/dockerd" ] && return
  need_root
  if [ ! -f /etc/apt/sources.list.d/rp-sid.sources ]; then
    # Low pin: sid is only a place to download from; nothing installs from it.
    cat >/etc/apt/sources.list.d/rp-sid.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    printf 'Package: *\nPin: release n=sid\nPin-Priority: 50\n' >/etc/apt/preferences.d/rp-sid-low
    apt_updated=
  fi
  apt_update
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  log "downloading Docker 28 (engine B) from Debian sid"
  (cd "$tmp" && apt-get download -qq docker.io/sid docker-buildx/sid containerd/sid >/dev/null 2>&1)
  mkdir -p "$B_HOME"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$B_HOME"; done
  rm -rf "$tmp"
}

install_buildx() {
  local dst=/usr/local/lib/docker/cli-plugins/docker-buildx
  [ -x "$dst" ] && return
  mkdir -p "$(dirname "$dst")"
  cp "$B_HOME/usr/libexec/docker/cli-plugins/docker-buildx" "$dst"
}

start_engine_b() {
  local host="unix://$B_RUN/docker.sock"
  if wait_engine "$host" 1; then return; fi
  need_root; mkdir -p "$B_RUN"
  echo '{"features":{"containerd-snapshotter":true}}' >"$B_RUN/daemon.json"
  log "starting engine B (dockerd 28, containerd image store)"
  # sid's runc needs a newer libc; bookworm's runc (from docker.io) is found first on PATH.
  PATH="$B_HOME/usr/bin:$B_HOME/usr/sbin:$PATH" setsid nohup "$B_HOME/usr/sbin/dockerd" \
    --config-file "$B_RUN/daemon.json" -H "$host" --data-root /var/lib/rp-engine-b \
    --exec-root "$B_RUN/exec" --pidfile "$B_RUN/docker.pid" --bridge none --iptables=false \
    >"$state/engine-b.log" 2>&1 &
  wait_engine "$host" 60 || { tail -20 "$state/engine-b.log" >&2; exit 1; }
}

install_debs
start_engine_a
if [ "$want" = all ]; then
  fetch_engine_b; install_buildx; start_engine_b
fi
# written whole, then renamed: a test reading it meanwhile sees the old file or the new one
tmp_env="$state/engines.env.$$"
{
  record A unix:///var/run/docker.sock classic
  # engine B is recorded whenever it is up, so `engines.sh a` (the demo) does not hide it from the tests
  record B "unix://$B_RUN/docker.sock" containerd
} >"$tmp_env"
mv -f "$tmp_env" "$state/engines.env"
log "engines up: $(tr '\n' ' ' <"$state/engines.env")"
[ -z "$failed" ] || exit 1
echo "$state/engines.env"
