#!/usr/bin/env bash
# Build the fuzz targets with libFuzzer on the stable toolchain and run them.
#
#   bash fuzz/run.sh smoke [SECONDS]          every target for SECONDS (default 5), starting
#                                             from the seeds and saved regressions; exits 1
#                                             if any input crashes a target
#   bash fuzz/run.sh long TARGET [SECONDS] [LIBFUZZER FLAGS...]
#                                             one target (default 3600 s), its corpus kept in
#                                             fuzz/corpus/TARGET, crashes in fuzz/artifacts/TARGET
#   bash fuzz/run.sh build                    only build
#
# Nothing is installed: the coverage instrumentation is the one cargo-fuzz uses
# (`cargo fuzz build -s none`), given as stable rustc flags, and libfuzzer-sys builds
# libFuzzer from source with the system C++ compiler. Why: docs/decisions/0005-fuzzing.md.
# The instrumented build goes to $LIFEBOAT_FUZZ_TARGET_DIR (default fuzz/target).
set -euo pipefail
cd "$(dirname "$0")"

triple="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${LIFEBOAT_FUZZ_TARGET_DIR:-$PWD/target}"
bin="$target_dir/$triple/release"
targets=(blob safetensors gguf pack_header index tree snapshot config key_file lease prune_record plan address api_request)

build() {
  local started=$SECONDS
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    CARGO_TARGET_DIR="$target_dir" \
    cargo build --quiet --release --target "$triple" --bins
  echo "fuzz targets built in $((SECONDS - started)) s"
}

# run TARGET SECONDS CORPUS ARTIFACTS [FLAGS...]: one libFuzzer run; prints its last
# status line (executions, exec/s, corpus size).
run() {
  local t=$1 secs=$2 corpus=$3 artifacts=$4
  shift 4
  local dirs=("$corpus" "seeds/$t")
  [ -d "regressions/$t" ] && dirs+=("regressions/$t")
  mkdir -p "$corpus" "$artifacts"
  local log="$artifacts/last-run.log" rc=0
  "$bin/$t" -max_total_time="$secs" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  local last; last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  printf '%-13s %s\n' "$t" "${last:-no status line}"
  if [ "$rc" != 0 ]; then
    echo "error: fuzz target $t failed (exit $rc) — the input is in $artifacts; the log:" >&2
    grep -v -E '^#[0-9]+|NEW_FUNC' "$log" | tail -40 >&2
    echo "Keep the input as fuzz/regressions/$t/<what-it-found> once the bug is fixed." >&2
    return 1
  fi
}

case "${1:-smoke}" in
  build)
    build
    ;;
  smoke)
    secs="${2:-5}"
    build
    scratch="$(mktemp -d /tmp/lifeboat-fuzz.XXXXXX)"
    failed=0
    for t in "${targets[@]}"; do
      run "$t" "$secs" "$scratch/corpus/$t" "$scratch/artifacts/$t" || failed=1
    done
    if [ "$failed" = 1 ]; then
      echo "error: a fuzz target crashed — inputs kept in $scratch/artifacts" >&2
      exit 1
    fi
    rm -rf "$scratch"
    ;;
  long)
    t="${2:?give a target: ${targets[*]}}"
    secs="${3:-3600}"
    shift $(( $# < 3 ? $# : 3 ))
    build
    run "$t" "$secs" "corpus/$t" "artifacts/$t" "$@"
    ;;
  *)
    echo "usage: fuzz/run.sh smoke [SECONDS] | long TARGET [SECONDS] [FLAGS...] | build" >&2
    exit 2
    ;;
esac
