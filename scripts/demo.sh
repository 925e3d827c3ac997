#!/usr/bin/env bash
# `npm run demo`: starts a local engine and registry, builds a sample image from scratch and pushes it through
# the action's dist/ exactly as a GitHub runner would run it, shows its log as the Actions page shows it (secrets as
# ***, groups, annotations), then the outputs, the job summary, the README's CLI example and what the registry holds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/rig/engines.sh a >/dev/null
work=$(mktemp -d)
trap 'kill "$(cat "$work/registry.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
htpasswd -Bbn demo "$token" >"$work/htpasswd"
cat >"$work/config.yml" <<CFG
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data}, delete: {enabled: false}}
http: {addr: 127.0.0.1:$port}
auth: {htpasswd: {realm: demo, path: $work/htpasswd}}
CFG
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
echo $! >"$work/registry.pid"
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done

mkdir -p "$work/ctx"
head -c 2000000 /dev/urandom >"$work/ctx/payload.bin"
printf 'demo build %s\n' "$(date -u +%FT%TZ)" >"$work/ctx/VERSION"
printf 'FROM scratch\nCOPY payload.bin /opt/demo/payload.bin\nCOPY VERSION /opt/demo/VERSION\n' >"$work/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t replicated-push-demo:local "$work/ctx" >/dev/null 2>&1

# the steps as the runner runs them, shown as the Actions log shows them (scripts/demo-step.ts checks what it shows)
DEMO_REGISTRY="127.0.0.1:$port" DEMO_TOKEN="$token" DEMO_USERNAME=demo DEMO_IMAGE=replicated-push-demo:local \
  node_modules/.bin/tsx scripts/demo-step.ts
echo
echo "== what the registry holds (skopeo) =="
skopeo inspect --tls-verify=false --creds "demo:$token" --format '{{.Name}} {{.Digest}} tags={{.RepoTags}}' "docker://127.0.0.1:$port/demo-app/replicated-push-demo:1.0.0"
echo
echo "demo passed: pushed, verified, post step clean, no secret and no raw workflow command printed"
docker image rm replicated-push-demo:local >/dev/null 2>&1 || true
