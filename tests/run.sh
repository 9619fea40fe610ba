#!/usr/bin/env bash
# The whole Lifeboat test suite, with the real components it needs.
#
# Installs (once, into a cache folder) and starts on loopback: an S3-compatible server
# (moto) for object-storage regions. Installs Knot DNS and nginx (apt) for the drill
# tests, which start their own knotd and nginx on free ports in temporary folders.
# Then runs formatting, lint and every cargo test target (unit, integration, chaos).
# Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${LIFEBOAT_TOOLS:-$HOME/.cache/lifeboat-tools}"
run="$(mktemp -d /tmp/lifeboat-test.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*"; }

install_python_tools() {
  if [ ! -x "$tools/venv/bin/moto_server" ]; then
    log "installing moto (S3-compatible server) into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q 'moto[server]==5.2.5' boto3
  fi
}

install_drill_tools() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if command -v knotd >/dev/null && command -v keymgr >/dev/null && command -v kdig >/dev/null \
     && command -v nginx >/dev/null; then
    return 0
  fi
  log "installing knot, knot-dnsutils and nginx-light (drill tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q knot knot-dnsutils nginx-light >"$run/apt.log" 2>&1 \
    || { apt-get update -q >>"$run/apt.log" 2>&1 && apt-get install -y -q knot knot-dnsutils nginx-light >>"$run/apt.log" 2>&1; } \
    || { echo "error: could not install knot/nginx — see $run/apt.log" >&2; return 1; }
}

export_drill_tools() {
  LIFEBOAT_TEST_KNOTD="$(command -v knotd)"; LIFEBOAT_TEST_KEYMGR="$(command -v keymgr)"
  LIFEBOAT_TEST_KDIG="$(command -v kdig)"; LIFEBOAT_TEST_NGINX="$(command -v nginx)"
  export LIFEBOAT_TEST_KNOTD LIFEBOAT_TEST_KEYMGR LIFEBOAT_TEST_KDIG LIFEBOAT_TEST_NGINX
  log "drill tools: $LIFEBOAT_TEST_KNOTD, $LIFEBOAT_TEST_NGINX (tests pick their own free ports)"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.2
  done
  echo "error: server on port $1 did not start — see $run/*.log" >&2
  return 1
}

start_moto() {
  local port; port=$(free_port)
  "$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$run/moto.log" 2>&1 &
  pids+=($!)
  wait_http "$port"
  export LIFEBOAT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=lifeboat-test AWS_SECRET_ACCESS_KEY=lifeboat-test-secret
  export PATH="$tools/venv/bin:$PATH"
  log "moto S3 server on 127.0.0.1:$port"
}

install_python_tools
start_moto
install_drill_tools
export_drill_tools

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
log "cargo test"
cargo test --all-targets 2>&1 | tee "$run/cargo-test.log"
grep -q "test result:" "$run/cargo-test.log"
