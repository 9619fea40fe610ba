#!/usr/bin/env bash
# The Lifeboat quick start: the whole cycle on the bundled example, with two local
# folders standing in for two regions and no outside services. Validate the plan,
# apply it (create both region repositories, back up examples/data once to both),
# show the plan's status, restore by plan and compare, verify each region with a test
# restore, and run a failover drill whose endpoint is a file confirmed by a command,
# printing the drill report at the end.
# Needs nothing but a Rust toolchain; leaves its work in examples/regions and examples/.run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin lifeboat
lifeboat=target/debug/lifeboat
plan=examples/quickstart.toml
work=examples/.run
rm -rf "$work" examples/regions
mkdir -p "$work"
# The plan reads its password from this variable; a real plan would use a file or command.
export LIFEBOAT_PASSWORD="${LIFEBOAT_PASSWORD:-quickstart-only-password}"

step() { printf '\n== %s\n' "$*"; }

step "validate the plan"
"$lifeboat" validate "$plan"

step "apply: create both region repositories and back up what is due"
"$lifeboat" apply "$plan"

step "apply again: nothing is due, nothing is done"
"$lifeboat" apply "$plan"

step "plan: every dataset within its objectives, in every region"
"$lifeboat" plan "$plan"

step "restore by plan (the reachable region holding the newest snapshot)"
"$lifeboat" restore --plan "$plan" --dataset example-data --target "$work/restored"
diff -r examples/data "$work/restored/data"
echo "restored files are identical to examples/data"

step "restore from region b alone, then verify every byte of both regions"
"$lifeboat" restore --plan "$plan" --dataset example-data --region b --target "$work/from-b"
diff -r examples/data "$work/from-b/data"
for region in a b; do
  "$lifeboat" check --repo "examples/regions/$region" --read-data
done

step "verify: a test restore from each region alone, compared with the recorded hashes"
"$lifeboat" verify --plan "$plan" --sample 1

step "drill: restore from the standby, probe, move traffic to it and back"
"$lifeboat" drill --plan "$plan" --state "$work/state" quick

step "the drill report"
cat "$(ls -t "$work"/state/reports/*.md | head -1)"
