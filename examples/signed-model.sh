#!/usr/bin/env bash
# Signed model checkpoints on the bundled example: make a signing key pair, back the
# checkpoint up to two local regions with a signed manifest, restore it with the
# signature checked, export its OpenSSF model signature and, when the `model_signing`
# tool is installed (pip install model-signing==1.1.1 pyopenssl), verify the restored
# checkpoint with it. Leaves its work in examples/.run and examples/regions.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin lifeboat
lifeboat=target/debug/lifeboat
plan=examples/signed-model.toml
work=examples/.run
rm -rf "$work/keys" "$work/signed-restore" examples/regions/signed-a examples/regions/signed-b
mkdir -p "$work/keys"
export LIFEBOAT_PASSWORD="${LIFEBOAT_PASSWORD:-quickstart-only-password}"

step() { printf '\n== %s\n' "$*"; }

step "make the signing key pair (private key mode 0600, never committed)"
"$lifeboat" signing-key generate --out "$work/keys/signing.pem"

step "validate and back up: the manifest is signed and stored in both regions"
"$lifeboat" validate "$plan"
"$lifeboat" apply "$plan" --force

step "snapshots, with the signature checked against the trusted key"
"$lifeboat" snapshots --repo examples/regions/signed-a --trusted "$work/keys/signing.pem.pub"

step "restore by plan: the signature is checked before anything is written"
"$lifeboat" restore --plan "$plan" --dataset checkpoints --target "$work/signed-restore"
diff -r examples/data/models/checkpoint-0001 "$work/signed-restore/checkpoint-0001"

step "export the OpenSSF model signature of the checkpoint"
"$lifeboat" manifest export --plan "$plan" --dataset checkpoints --path checkpoint-0001 --out "$work/model.sig"

if command -v model_signing >/dev/null; then
  step "model_signing verifies the restored checkpoint"
  model_signing verify key --signature "$work/model.sig" --public_key "$work/keys/signing.pem.pub" \
    "$work/signed-restore/checkpoint-0001"
else
  echo "(install model-signing==1.1.1 and pyopenssl to verify $work/model.sig with model_signing)"
fi
