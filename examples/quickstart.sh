#!/usr/bin/env bash
# The Lifeboat quick start: build, then run the main job on the bundled example data
# with a local-disk repository — create it, back up, check, restore and compare.
# Needs nothing but a Rust toolchain; leaves its work in examples/.run/.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin lifeboat
lifeboat=target/debug/lifeboat
work=examples/.run
rm -rf "$work"
mkdir -p "$work"
export LIFEBOAT_PASSWORD="${LIFEBOAT_PASSWORD:-quickstart-only-password}"
repo="$work/repository"

step() { printf '\n== %s\n' "$*"; }

step "create a repository on local disk"
"$lifeboat" init --repo "$repo"

step "back up examples/data"
"$lifeboat" backup --repo "$repo" --tag quickstart examples/data

step "back up again: unchanged files are not read twice"
"$lifeboat" backup --repo "$repo" --tag quickstart examples/data

step "list snapshots"
"$lifeboat" snapshots --repo "$repo"

step "verify every byte in the repository"
"$lifeboat" check --repo "$repo" --read-data

step "restore the latest snapshot and compare with the original"
"$lifeboat" restore --repo "$repo" latest --target "$work/restored"
diff -r examples/data "$work/restored/data"
echo "restored files are identical to examples/data"
