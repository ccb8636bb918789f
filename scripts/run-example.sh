#!/usr/bin/env bash
# Runs the sales example on the embedded default: copies its data into the
# local store (./mudrock-data/project-local/shared/sales/) and runs it.
# Extra arguments go to `mudrock run` (e.g. --no-cache, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
store=${MUDROCK_STORE_DIR:-mudrock-data}
mkdir -p "$store/project-local/shared/sales"
cp examples/sales/data/* "$store/project-local/shared/sales/"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mudrock-target}
cargo build --quiet --bin mudrock
"$CARGO_TARGET_DIR/debug/mudrock" run examples/sales/pipeline.json --store "$store" "$@"
