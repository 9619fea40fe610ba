#!/usr/bin/env bash
# Fan-out cost: back up one generated data set to 1, 2 and 3 S3 regions (SeaweedFS on
# loopback) with `lifeboat apply --force`, release build, and print a Markdown table.
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
echo "| regions | seconds | MiB/s |"
echo "|---|---|---|"
for n in 1 2 3; do
  plan="$work/plan-$n.toml"
  printf 'version = 1\n[key]\nenv = "LIFEBOAT_PASSWORD"\n' > "$plan"
  names=()
  for i in $(seq 1 "$n"); do
    b="bench-$n-$i-$RANDOM"; bucket "${endpoints[$((i-1))]}" "$b"
    printf '[regions.r%s]\naddress = "s3://%s/repo?endpoint=%s&region=us-east-1"\ncreate = true\n' "$i" "$b" "${endpoints[$((i-1))]}" >> "$plan"
    names+=("\"r$i\"")
  done
  regions=$(IFS=,; echo "${names[*]}")
  printf '[datasets.bench]\nkind = "model"\npaths = ["%s"]\nschedule = "@hourly"\nregions = [%s]\nrpo = "2h"\nretention = { keep_last = 3 }\n' "$work/data" "$regions" >> "$plan"
  sync
  # The first apply creates the repositories (well under a second) and uploads everything.
  start=$(date +%s.%N)
  "$lifeboat" apply --quiet "$plan" >/dev/null
  end=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'| {sys.argv[3]} | {s:.2f} | {int(sys.argv[4])/s:.0f} |')" "$start" "$end" "$n" "$size_mib"
done
