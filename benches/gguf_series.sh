#!/usr/bin/env bash
# GGUF checkpoints, Lifeboat against restic: bytes each file of a generated series
# (benches/gen_gguf.py: a quantised model, a fine-tune of its upper blocks, the model
# re-saved with one more metadata key, the model with its tensors in reverse order)
# adds to a repository that holds the files before it. Each file is backed up as
# `model.gguf` in one directory, one backup each.
# Usage: LIFEBOAT=path/to/lifeboat benches/gguf_series.sh   (BENCH_DIR, default
#   /tmp/lifeboat-gguf-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${BENCH_DIR:-/tmp/lifeboat-gguf-bench}"
lifeboat="${LIFEBOAT:-${CARGO_TARGET_DIR:-$PWD/target}/release/lifeboat}"
rm -rf "$work" && mkdir -p "$work/src"
python3 benches/gen_gguf.py "$work/gen"
export LIFEBOAT_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
"$lifeboat" init --quiet --repo "$work/lb" >/dev/null
restic init --quiet --repo "$work/restic" >/dev/null
printf '| file | MB | lifeboat added MB | restic added MB |\n|---|---|---|---|\n'
for f in base finetune resaved reordered; do
  cp "$work/gen/$f.gguf" "$work/src/model.gguf"
  lb0=$(du -sb "$work/lb" | cut -f1); r0=$(du -sb "$work/restic" | cut -f1)
  "$lifeboat" backup --quiet --repo "$work/lb" "$work/src" >/dev/null
  restic backup --quiet --repo "$work/restic" "$work/src" >/dev/null
  lb1=$(du -sb "$work/lb" | cut -f1); r1=$(du -sb "$work/restic" | cut -f1)
  size=$(stat -c %s "$work/src/model.gguf")
  awk -v f="$f.gguf" -v s="$size" -v l=$((lb1 - lb0)) -v r=$((r1 - r0)) \
    'BEGIN { printf "| %s | %.1f | %.2f | %.2f |\n", f, s / 1e6, l / 1e6, r / 1e6 }'
done
