#!/usr/bin/env bash
# Fan-out cost: back up one generated data set to 1, 2 and 3 S3 regions (SeaweedFS on
# loopback), then to 1, 2 and 3 local-disk regions, with `lifeboat apply`, release
# build, and print a Markdown table: wall time, Lifeboat's own CPU time (user + system)
# and peak memory, and the CPU time the S3 servers spent during the run; then 1 and 2
# S3 regions again with each server behind its own bandwidth-limited link (tc on lo).
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

# measure STORAGE N PLAN: one apply; appends "storage n secs cpu server_cpu rss_kib".
measure() {
  local storage=$1 n=$2 plan=$3 before after
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  before=$(servers_cpu)
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$lifeboat" apply --quiet "$plan" >"$work/apply.log" 2>&1 || {
    echo "error: apply to $n $storage region(s) failed:" >&2; cat "$work/apply.log" >&2; exit 1; }
  after=$(servers_cpu)
  read -r secs user sys rss < "$work/time"
  echo "$storage $n $secs $(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') \
    $(awk -v a="$before" -v b="$after" 'BEGIN {print b - a}') $rss" >> "$work/rows"
}

plan_head() { printf 'version = 1\n[key]\nenv = "LIFEBOAT_PASSWORD"\n' > "$1"; }
plan_dataset() {
  printf '[datasets.bench]\nkind = "model"\npaths = ["%s"]\nschedule = "@hourly"\nregions = [%s]\nrpo = "2h"\nretention = { keep_last = 3 }\n' "$work/data" "$2" >> "$1"
}

# One bucket per region for each round (the third on the first server); each
# measurement writes a fresh repository under its own prefix. Every round starts on
# freshly wiped servers, so stored data does not pile up on a small disk.
buckets=()
make_buckets() {
  buckets=()
  local i b
  for i in 1 2 3; do b="bench-$i-$RANDOM"; bucket "${endpoints[$((i-1))]}" "$b"; buckets+=("$b"); done
}
# Restart both servers on empty data folders: a round stores several GiB per server.
wipe_servers() {
  local n dir
  for n in 1 2; do
    dir_var="LIFEBOAT_TEST_WEED${n}_DIR"; stop_var="LIFEBOAT_TEST_WEED${n}_STOP"; start_var="LIFEBOAT_TEST_WEED${n}_START"
    dir="${!dir_var}"
    "${!stop_var}"
    rm -rf "$dir" && mkdir -p "$dir"
    "${!start_var}" >/dev/null
  done
}
# s3_regions PLAN N PREFIX: N S3 regions r1..rN, repositories under PREFIX.
s3_regions() {
  local plan=$1 n=$2 prefix=$3 i names=()
  for i in $(seq 1 "$n"); do
    printf '[regions.r%s]\naddress = "s3://%s/%s?endpoint=%s&region=us-east-1"\ncreate = true\n' \
      "$i" "${buckets[$((i-1))]}" "$prefix" "${endpoints[$((i-1))]}" >> "$plan"
    names+=("\"r$i\"")
  done
  plan_dataset "$plan" "$(IFS=,; echo "${names[*]}")"
}

# REPS rounds (default 3), each into fresh repositories; medians are printed.
: > "$work/rows"
for round in $(seq 1 "${REPS:-3}"); do
  wipe_servers
  make_buckets
  for n in 1 2 3; do
    plan="$work/plan-$round-$n.toml"
    plan_head "$plan"
    s3_regions "$plan" "$n" "s3-$round-$n"
    # The first apply creates the repositories (well under a second) and uploads everything.
    measure S3 "$n" "$plan"
  done
  for n in 1 2 3; do
    plan="$work/plan-local-$round-$n.toml"
    plan_head "$plan"
    names=()
    for i in $(seq 1 "$n"); do
      printf '[regions.d%s]\naddress = "%s"\ncreate = true\n' "$i" "$work/local-$round-$n-$i" >> "$plan"
      names+=("\"d$i\"")
    done
    plan_dataset "$plan" "$(IFS=,; echo "${names[*]}")"
    measure local "$n" "$plan"
  done
  rm -rf "$work"/local-*
done

# Each S3 server behind its own link: client-to-server traffic to each server's port is
# shaped to LINK_MIB MiB/s (default 40) with tc on loopback, so the servers are no longer
# CPU-bound and the regions' own bandwidth sets the pace, as with remote regions.
link_mib="${LINK_MIB:-40}"
shape_links() {
  tc qdisc add dev lo root handle 1: htb default 99 r2q 1000
  tc class add dev lo parent 1: classid 1:99 htb rate 50gbit quantum 200000
  local i=1 ep
  for ep in "$LIFEBOAT_TEST_WEED1_ENDPOINT" "$LIFEBOAT_TEST_WEED2_ENDPOINT"; do
    local rate=$(( link_mib * 8 * 1048576 / 1000000 ))
    tc class add dev lo parent 1: classid "1:$i" htb rate "${rate}mbit" ceil "${rate}mbit"
    tc filter add dev lo protocol ip parent 1: prio 1 u32 match ip dport "${ep##*:}" 0xffff flowid "1:$i"
    i=$((i + 1))
  done
}
trap 'tc qdisc del dev lo root 2>/dev/null || true' EXIT
shape_links
for round in $(seq 1 "${REPS:-3}"); do
  wipe_servers
  make_buckets
  for n in 1 2; do
    plan="$work/plan-link-$round-$n.toml"
    plan_head "$plan"
    s3_regions "$plan" "$n" "link-$round-$n"
    measure link "$n" "$plan"
  done
done
tc qdisc del dev lo root

python3 - "$work/rows" "$size_mib" "${REPS:-3}" "$link_mib" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    storage, n, secs, cpu, server, rss = line.split()
    rows.setdefault((storage, int(n)), []).append((float(secs), float(cpu), float(server), int(rss) / 1024))
mib = int(sys.argv[2])
print(f"Medians of {sys.argv[3]} rounds.\n")
print("| regions | storage | seconds | MiB/s | lifeboat CPU s | S3 servers CPU s | lifeboat peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
labels = {"S3": "S3", "local": "local disk", "link": f"S3, {sys.argv[4]} MiB/s link each"}
for storage in ["S3", "local", "link"]:
    for n in [1, 2, 3]:
        runs = rows.get((storage, n))
        if not runs:
            continue
        med = lambda i: statistics.median(r[i] for r in runs)
        server = "-" if storage == "local" else f"{med(2):.2f}"
        label = labels[storage]
        print(f"| {n} | {label} | {med(0):.2f} | {mib / med(0):.0f} | {med(1):.2f} | {server} | {med(3):.0f} |")
PY
