#!/usr/bin/env bash
# `npm run demo`: starts a local engine and registry, builds a sample image from scratch and pushes it through
# the action's dist/ exactly as a GitHub runner would run it, then prints the outputs and the job summary.
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

touch "$work/output" "$work/state" "$work/summary"
echo "== running dist/index.js against 127.0.0.1:$port (registry with htpasswd auth) =="
env -i PATH="$PATH" HOME="$work" RUNNER_TEMP="$work" GITHUB_ACTIONS=true \
  GITHUB_OUTPUT="$work/output" GITHUB_STATE="$work/state" GITHUB_STEP_SUMMARY="$work/summary" \
  GITHUB_REF=refs/tags/v1.0.0 \
  INPUT_APP-SLUG=demo-app INPUT_IMAGE=replicated-push-demo:local INPUT_TAG="1.0.0,latest" \
  INPUT_TOKEN="$token" INPUT_USERNAME=demo INPUT_REGISTRY="127.0.0.1:$port" \
  node dist/index.js
# the post step, as the runner runs it: the state main saved comes back as STATE_* variables
state_dir=$(grep -A1 '^dockerConfigDir<<' "$work/state" | tail -1)
env -i PATH="$PATH" HOME="$work" RUNNER_TEMP="$work" STATE_isPost=true STATE_dockerConfigDir="$state_dir" node dist/index.js
echo
echo "== outputs =="
node -e '
const t=require("fs").readFileSync(process.argv[1],"utf8").split("\n");
for(let i=0;i<t.length;i++){const m=/^([^<]+)<<(.+)$/.exec(t[i]); if(!m) continue; const v=[]; for(i++;t[i]!==m[2];i++) v.push(t[i]); console.log(m[1]+": "+v.join(" | "));}' "$work/output"
echo
echo "== job summary =="
cat "$work/summary"
echo "== what the registry holds (skopeo) =="
skopeo inspect --tls-verify=false --creds "demo:$token" --format '{{.Name}} {{.Digest}} tags={{.RepoTags}}' "docker://127.0.0.1:$port/demo-app/replicated-push-demo:1.0.0"
docker image rm replicated-push-demo:local "127.0.0.1:$port/demo-app/replicated-push-demo:1.0.0" "127.0.0.1:$port/demo-app/replicated-push-demo:latest" >/dev/null 2>&1 || true
