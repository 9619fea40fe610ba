#!/usr/bin/env bash
# Side-by-side benchmark of Lifeboat and restic (Debian's package) on one generated
# data set, in the same run, on the same disk:
#   first backup, no-change backup, restore, and peak resident memory of each.
# The data set mixes large float32 checkpoint shards (safetensors files of normally
# distributed weights, made with numpy and the `safetensors` package in a virtualenv)
# with thousands of small compressible text files.
# Usage: benches/compare-restic.sh [SIZE_MIB] (default 1024; LIFEBOAT=path runs that
# binary instead of building the release one; BENCH_VENV names the virtualenv).
# Each step runs in REPS rounds (default 3); the table shows medians.
# Prints a Markdown table; docs/benchmarks.md records its output.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib="${1:-1024}"
work="${BENCH_DIR:-/tmp/lifeboat-bench}"
command -v restic >/dev/null || { apt-get install -y -qq restic >/dev/null; }
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
[ -n "${LIFEBOAT:-}" ] || cargo build --release --quiet --bin lifeboat
lifeboat="${LIFEBOAT:-${CARGO_TARGET_DIR:-$PWD/target}/release/lifeboat}"

# The data set is kept between runs (same size, same seed: same bytes); all else is fresh.
data="$work/data-$size_mib"
[ -e "$data/.complete" ] || rm -rf "$work"
mkdir -p "$work" && find "$work" -mindepth 1 -maxdepth 1 ! -name "data-$size_mib" -exec rm -rf {} +
venv="${BENCH_VENV:-$work-venv}"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q numpy safetensors; }
[ -e "$data/.complete" ] || "$venv/bin/python" - "$data" "$size_mib" <<'PY'
import os, random, sys
import numpy as np
from safetensors.numpy import save_file
root, size_mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
big = size_mib * 3 // 4          # checkpoint shards: float32 weights, safetensors headers
small = size_mib - big           # text-like, compressible
os.makedirs(f"{root}/checkpoints", exist_ok=True)
n_big = 4
weights = np.random.default_rng(42)
for i in range(n_big):
    # Tensors of 256 KiB to 8 MiB drawn like trained weights (normal, small scale),
    # so the float bytes compress as real checkpoints do: the exponents, little else.
    left, tensors, n = big * 2**20 // n_big // 4, {}, 0
    while left:
        count = min(left, 1 << int(weights.integers(16, 22)))
        tensors[f"layers.{n}.weight"] = weights.normal(0, 0.02, count).astype(np.float32)
        left -= count; n += 1
    save_file(tensors, f"{root}/checkpoints/shard-{i:02}.safetensors", metadata={"format": "pt"})
words = [bytes(rng.choice("abcdefghijklmnopqrstuvwxyz") * rng.randint(2, 9), "ascii") for _ in range(2000)]
n_small = 4000
per = small * 1024 * 1024 // n_small
for i in range(n_small):
    d = f"{root}/features/part-{i // 200:03}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/rows-{i:05}.csv", "wb") as f:
        out, n = [], 0
        while n < per:
            w = b",".join(rng.choice(words) for _ in range(12)) + b"," + str(rng.random()).encode() + b"\n"
            out.append(w); n += len(w)
        f.write(b"".join(out)[:per])
open(f"{root}/.complete", "w").close()
PY
bytes=$(du -sb "$data" | cut -f1)
export LIFEBOAT_PASSWORD=bench-password RESTIC_PASSWORD=bench-password

# run LABEL CMD... : wall seconds and peak RSS (KiB) of one command, caches dropped first.
run() {
  local label=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %M" -o "$work/time.$label" "$@" >/dev/null 2>"$work/err.$label" || {
    echo "error: $label failed:" >&2; cat "$work/err.$label" >&2; exit 1; }
  read -r secs rss < "$work/time.$label"
  echo "$label $secs $rss" >> "$work/results"
}

# One tool's step: first backup, no-change backup or restore.
step() {
  local tool=$1 op=$2
  case "$tool-$op" in
    lifeboat-first)    run lifeboat-first "$lifeboat" backup --quiet --repo "$work/lb-repo" "$data" ;;
    lifeboat-nochange) run lifeboat-nochange "$lifeboat" backup --quiet --repo "$work/lb-repo" "$data" ;;
    lifeboat-restore)  rm -rf "$work/lb-out"
                       run lifeboat-restore "$lifeboat" restore --quiet --repo "$work/lb-repo" latest --target "$work/lb-out"
                       diff -rq "$data" "$work/lb-out/$(basename "$data")" >/dev/null || { echo "error: lifeboat restore differs" >&2; exit 1; } ;;
    restic-first)      run restic-first restic backup --quiet --repo "$work/restic-repo" "$data" ;;
    restic-nochange)   run restic-nochange restic backup --quiet --repo "$work/restic-repo" "$data" ;;
    restic-restore)    rm -rf "$work/restic-out"
                       run restic-restore restic restore --quiet --repo "$work/restic-repo" latest --target "$work/restic-out" ;;
  esac
}

# REPS rounds (default 3), each on fresh repositories; the tool that goes first
# alternates from round to round, so neither always meets the disk in the same state.
reps="${REPS:-3}"
: > "$work/results"
for round in $(seq 1 "$reps"); do
  rm -rf "$work/lb-repo" "$work/restic-repo"
  "$lifeboat" init --repo "$work/lb-repo" >/dev/null
  restic init --repo "$work/restic-repo" >/dev/null 2>&1
  if (( round % 2 )); then order="lifeboat restic"; else order="restic lifeboat"; fi
  for op in first nochange restore; do
    for tool in $order; do step "$tool" "$op"; done
  done
done

lb_size=$(du -sb "$work/lb-repo" | cut -f1); rs_size=$(du -sb "$work/restic-repo" | cut -f1)
python3 - "$work/results" "$bytes" "$lb_size" "$rs_size" "$(restic version | head -1)" "$reps" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, secs, rss = line.split()
    rows.setdefault(label, []).append((float(secs), int(rss) / 1024))
data = int(sys.argv[2]); mib = data / 2**20
print(f"Data set: {mib:.0f} MiB ({sys.argv[5]}); repository size: lifeboat {int(sys.argv[3])/2**20:.0f} MiB, restic {int(sys.argv[4])/2**20:.0f} MiB")
print(f"Medians of {sys.argv[6]} rounds; peak RSS as median (lowest-highest).\n")
print("| operation | lifeboat s | restic s | lifeboat MiB/s | restic MiB/s | speed-up | lifeboat peak RSS MiB | restic peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
def rss(runs):
    r = [x[1] for x in runs]
    return f"{statistics.median(r):.0f} ({min(r):.0f}-{max(r):.0f})"
for op in ["first", "nochange", "restore"]:
    l, r = rows[f"lifeboat-{op}"], rows[f"restic-{op}"]
    ls, rs = statistics.median(x[0] for x in l), statistics.median(x[0] for x in r)
    print(f"| {op} | {ls:.2f} | {rs:.2f} | {mib/max(ls,0.01):.0f} | {mib/max(rs,0.01):.0f} | {rs/max(ls,0.01):.2f}x | {rss(l)} | {rss(r)} |")
PY
