#!/usr/bin/env bash
# Fan-out cost: back up one generated data set to 1, 2 and 3 S3 regions (SeaweedFS on
# loopback), then to 1, 2 and 3 local-disk regions, with `lifeboat apply`, release
# build, and print a Markdown table: wall time, Lifeboat's own CPU time (user + system)
# and peak memory, and the CPU time the S3 servers spent during the run.
# Run it through the suite runner, which starts the servers:
#   bash tests/run.sh --servers benches/regions.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LIFEBOAT_TEST_WEED1_ENDPOINT:?run via: bash tests/run.sh --servers benches/regions.sh}"
size_mib="${1:-512}"
work="${BENCH_DIR:-/tmp/lifeboat-regions-bench}"
cargo build --release --quiet --bin lifeboat
lifeboat="$PWD/target/release/lifeboat"
rm -rf "$work" && mkdir -p "$work/data"
python3 - "$work/data" "$size_mib" <<'PY'
import os, random, sys
rng = random.Random(7)
root, mib = sys.argv[1], int(sys.argv[2])
for i in range(8):
    with open(f"{root}/shard-{i}.bin", "wb") as f:
        f.write(rng.randbytes(mib * 1024 * 1024 // 8))
PY
export AWS_ACCESS_KEY_ID="$LIFEBOAT_TEST_WEED_KEY" AWS_SECRET_ACCESS_KEY="$LIFEBOAT_TEST_WEED_SECRET"
export LIFEBOAT_PASSWORD=bench-password
bucket() { python3 -c 'import sys,boto3; boto3.client("s3",endpoint_url=sys.argv[1],region_name="us-east-1").create_bucket(Bucket=sys.argv[2])' "$1" "$2"; }
# A third region on the first server, in its own bucket.
endpoints=("$LIFEBOAT_TEST_WEED1_ENDPOINT" "$LIFEBOAT_TEST_WEED2_ENDPOINT" "$LIFEBOAT_TEST_WEED1_ENDPOINT")
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }

# CPU seconds (user + system) used so far by a process and its descendants.
cpu_of() {
  local pid=$1 ticks=0 child
  [[ -r /proc/$pid/stat ]] && ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  for child in $(pgrep -P "$pid" 2>/dev/null); do
    ticks=$(( ticks + $(cpu_of "$child" | awk -v hz="$(getconf CLK_TCK)" '{printf "%d", $1 * hz}') ))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}
servers_cpu() {
  local total=0 f
  for f in "$LIFEBOAT_TEST_WEED1_PIDFILE" "$LIFEBOAT_TEST_WEED2_PIDFILE"; do
    total=$(awk -v a="$total" -v b="$(cpu_of "$(cat "$f")")" 'BEGIN {printf "%.2f", a + b}')
  done
  echo "$total"
}

# measure STORAGE N PLAN: one apply, one table row.
measure() {
  local storage=$1 n=$2 plan=$3 before after
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  before=$(servers_cpu)
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$lifeboat" apply --quiet "$plan" >/dev/null
  after=$(servers_cpu)
  read -r secs user sys rss < "$work/time"
  python3 -c "import sys; a=sys.argv; s=float(a[3]); srv='-' if a[1]=='local disk' else f'{float(a[8])-float(a[7]):.2f}'
print(f'| {a[2]} | {a[1]} | {s:.2f} | {int(a[4])/s:.0f} | {float(a[5])+float(a[6]):.2f} | {srv} | {int(a[9])//1024} |')" \
    "$storage" "$n" "$secs" "$size_mib" "$user" "$sys" "$before" "$after" "$rss"
}

plan_head() { printf 'version = 1\n[key]\nenv = "LIFEBOAT_PASSWORD"\n' > "$1"; }
plan_dataset() {
  printf '[datasets.bench]\nkind = "model"\npaths = ["%s"]\nschedule = "@hourly"\nregions = [%s]\nrpo = "2h"\nretention = { keep_last = 3 }\n' "$work/data" "$2" >> "$1"
}

echo "| regions | storage | seconds | MiB/s | lifeboat CPU s | S3 servers CPU s | lifeboat peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for n in 1 2 3; do
  plan="$work/plan-$n.toml"
  plan_head "$plan"
  names=()
  for i in $(seq 1 "$n"); do
    b="bench-$n-$i-$RANDOM"; bucket "${endpoints[$((i-1))]}" "$b"
    printf '[regions.r%s]\naddress = "s3://%s/repo?endpoint=%s&region=us-east-1"\ncreate = true\n' "$i" "$b" "${endpoints[$((i-1))]}" >> "$plan"
    names+=("\"r$i\"")
  done
  plan_dataset "$plan" "$(IFS=,; echo "${names[*]}")"
  # The first apply creates the repositories (well under a second) and uploads everything.
  measure S3 "$n" "$plan"
done
for n in 1 2 3; do
  plan="$work/plan-local-$n.toml"
  plan_head "$plan"
  names=()
  for i in $(seq 1 "$n"); do
    printf '[regions.d%s]\naddress = "%s"\ncreate = true\n' "$i" "$work/local-$n-$i" >> "$plan"
    names+=("\"d$i\"")
  done
  plan_dataset "$plan" "$(IFS=,; echo "${names[*]}")"
  measure "local disk" "$n" "$plan"
done
