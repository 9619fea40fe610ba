#!/usr/bin/env bash
# Many small files, side by side with restic (Debian's package): 200,000 files of
# 1-8 KiB in 400 directories (the count is the first argument). One first backup, then
# REPS (default 3) no-change backups of each tool, then a restore of each; `sync` and a
# dropped page cache before every timed command. Prints a Markdown table of medians.
# Usage: benches/small-files.sh [FILES]
set -euo pipefail
cd "$(dirname "$0")/.."

files="${1:-200000}"
work="${BENCH_DIR:-/tmp/lifeboat-small-bench}"
command -v restic >/dev/null || apt-get install -y -qq restic >/dev/null
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
[ -n "${LIFEBOAT:-}" ] || cargo build --release --quiet --bin lifeboat
lifeboat="${LIFEBOAT:-${CARGO_TARGET_DIR:-$PWD/target}/release/lifeboat}"

rm -rf "$work" && mkdir -p "$work"
python3 - "$work/data" "$files" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(n):
    d = f"{root}/dir-{i % 400:03}"
    if i < 400:
        os.makedirs(d)
    with open(f"{d}/file-{i:06}.txt", "wb") as f:
        f.write(rng.randbytes(rng.randint(512, 4096)).hex().encode())
PY
export LIFEBOAT_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
: > "$work/results"

timed() { # LABEL CMD...
  local label=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
    echo "error: $label failed:" >&2; cat "$work/err" >&2; exit 1; }
  echo "$label $(cat "$work/time")" >> "$work/results"
}

"$lifeboat" init --repo "$work/lb-repo" >/dev/null
restic init --repo "$work/restic-repo" >/dev/null 2>&1
timed lifeboat-first "$lifeboat" backup --quiet --repo "$work/lb-repo" "$work/data"
timed restic-first restic backup --quiet --repo "$work/restic-repo" "$work/data"
for _ in $(seq 1 "${REPS:-3}"); do
  timed lifeboat-nochange "$lifeboat" backup --quiet --repo "$work/lb-repo" "$work/data"
  timed restic-nochange restic backup --quiet --repo "$work/restic-repo" "$work/data"
done
rm -rf "$work/lb-out" "$work/restic-out"
timed lifeboat-restore "$lifeboat" restore --quiet --repo "$work/lb-repo" latest --target "$work/lb-out"
diff -rq "$work/data" "$work/lb-out/data" >/dev/null || { echo "error: lifeboat restore differs" >&2; exit 1; }
timed restic-restore restic restore --quiet --repo "$work/restic-repo" latest --target "$work/restic-out"

python3 - "$work/results" "$files" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, secs, rss = line.split()
    rows.setdefault(label, []).append((float(secs), int(rss) / 1024))
print(f"{int(sys.argv[2]):,} files; medians; peak RSS the highest of the runs.\n")
print("| operation | lifeboat s | restic s | speed-up | lifeboat peak RSS MiB | restic peak RSS MiB |")
print("|---|---|---|---|---|---|")
for op in ["first", "nochange", "restore"]:
    l, r = rows[f"lifeboat-{op}"], rows[f"restic-{op}"]
    ls, rs = statistics.median(x[0] for x in l), statistics.median(x[0] for x in r)
    print(f"| {op} | {ls:.2f} | {rs:.2f} | {rs/max(ls,0.01):.2f}x | {max(x[1] for x in l):.0f} | {max(x[1] for x in r):.0f} |")
PY
rm -rf "$work/lb-out" "$work/restic-out"
