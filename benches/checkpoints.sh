#!/usr/bin/env bash
# Model checkpoints, side by side: Lifeboat, restic (Debian's package) and borg
# (Debian's borgbackup, when installed), in one run, on the same disk.
#
# The workload is made here (benches/gen_checkpoints.py, numpy + the `safetensors`
# package in a virtualenv under $BENCH_DIR): a small model really trained, saved
# every K steps in float32 and bfloat16 (series a32, a16); fine-tunes of its last
# checkpoint with the embedding and lower blocks frozen (b); checkpoints re-saved in
# another tensor order and with one more metadata key (c). Each series goes into a
# fresh repository per tool, one checkpoint per backup (the backed-up directory holds
# the current checkpoint as `model.safetensors`, as a training job overwrites it).
# Reported: repository bytes after each backup, bytes each checkpoint added, backup
# and restore time. `sync` and a dropped page cache before every timed command.
# Usage: benches/checkpoints.sh   (BENCH_DIR, default /tmp/lifeboat-ckpt-bench;
#   TOOLS, default "lifeboat restic borg"; FRESH=0 appends to the previous results
#   instead of starting over, so tools run one after another are tabled together;
#   LIFEBOAT=path runs that binary instead of building the release one)
set -euo pipefail
cd "$(dirname "$0")/.."

work="${BENCH_DIR:-/tmp/lifeboat-ckpt-bench}"
mkdir -p "$work"
command -v restic >/dev/null || apt-get install -y -qq restic >/dev/null
command -v borg >/dev/null || apt-get install -y -qq borgbackup >/dev/null || true
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
tools="${TOOLS:-lifeboat restic borg}"
command -v borg >/dev/null || tools="${tools/borg/}"
if [[ $tools == *lifeboat* && -z ${LIFEBOAT:-} ]]; then cargo build --release --quiet --bin lifeboat; fi
lifeboat="${LIFEBOAT:-${CARGO_TARGET_DIR:-$PWD/target}/release/lifeboat}"

venv="$work/venv"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q numpy safetensors zstandard; }
gen="$work/gen"
[ -e "$gen/done" ] || { rm -rf "$gen"; "$venv/bin/python" benches/gen_checkpoints.py "$gen" && touch "$gen/done"; }

export LIFEBOAT_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
export BORG_PASSPHRASE=bench-password BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# timed LABEL CMD...: wall seconds of one command, appended to results.
timed() {
  local label=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
    echo "error: $label failed:" >&2; cat "$work/err" >&2; exit 1; }
  echo "$label $(cat "$work/time")" >> "$work/results"
}

init() {
  case $1 in
    lifeboat) "$lifeboat" init --repo "$2" >/dev/null ;;
    restic) restic init --repo "$2" >/dev/null 2>&1 ;;
    borg) borg init --encryption repokey "$2" >/dev/null 2>&1 ;;
  esac
}

backup() { # tool repo label n
  case $1 in
    lifeboat) timed "$3" "$lifeboat" backup --quiet --repo "$2" "$work/src" ;;
    restic) timed "$3" restic backup --quiet --repo "$2" "$work/src" ;;
    borg) timed "$3" borg create --compression zstd,3 "$2::ckpt-$4" "$work/src" ;;
  esac
}

restore() { # tool repo label
  rm -rf "$work/out" && mkdir -p "$work/out"
  case $1 in
    lifeboat) timed "$3" "$lifeboat" restore --quiet --repo "$2" latest --target "$work/out" ;;
    restic) timed "$3" restic restore --quiet --repo "$2" latest --target "$work/out" ;;
    borg) (cd "$work/out" && timed "$3" borg extract "$2::$(borg list --short --last 1 "$2")") ;;
  esac
  cmp -s "$(find "$work/out" -name model.safetensors)" "$work/src/model.safetensors" || {
    echo "error: $1 restored a different checkpoint" >&2; exit 1; }
}

# series NAME FILE...: every tool backs up each file in turn, then restores the last.
series() {
  local name=$1; shift
  for tool in $tools; do
    local repo="$work/repo-$tool" n=0
    rm -rf "$repo" && init "$tool" "$repo"
    for f in "$@"; do
      n=$((n + 1))
      rm -rf "$work/src" && mkdir -p "$work/src" && cp "$f" "$work/src/model.safetensors"
      backup "$tool" "$repo" "$name $tool backup $n $(basename "$f")" "$n"
      echo "$name $tool size $n $(du -sb "$repo" | cut -f1) $(stat -c %s "$f")" >> "$work/results"
    done
    restore "$tool" "$repo" "$name $tool restore $n"
    rm -rf "$repo"
  done
}

[ "${FRESH:-1}" = 0 ] || : > "$work/results"
series a32 "$gen"/a/fp32/*.safetensors
series a16 "$gen"/a/bf16/*.safetensors
series b "$gen"/b/base.safetensors "$gen"/b/tune-*.safetensors
last=$(ls "$gen"/a/fp32/ | tail -1); step=${last#step-}
series c "$gen/a/fp32/$last" "$gen/c/reordered-$step" "$gen/c/meta-$step"
rm -rf "$work/src" "$work/out"
python3 benches/checkpoints_table.py "$work/results" "$("$lifeboat" --version 2>/dev/null || echo 'lifeboat not run')" \
  "$(restic version | head -1)" "$(borg --version 2>/dev/null || echo 'borg not installed')"
