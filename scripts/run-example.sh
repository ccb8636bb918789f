#!/usr/bin/env bash
# Runs the sales example on the configured store (by default the embedded
# one: ./mudrock-data): uploads its data to shared/sales/ in the bucket
# project-local, then runs it. Extra arguments go to `mudrock run`
# (e.g. --no-cache, --json). With MUDROCK_STORE__KIND=s3 and the
# MUDROCK_STORE__S3__* variables it runs against S3/MinIO instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mudrock-target}
cargo build --quiet --bin mudrock
mudrock="$CARGO_TARGET_DIR/debug/mudrock"
"$mudrock" upload examples/sales/data --to shared/sales/ >/dev/null
"$mudrock" run examples/sales/pipeline.json "$@"
