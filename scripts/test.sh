#!/usr/bin/env bash
# The whole test suite, on a fresh machine: builds and runs every test of
# the workspace. Later layers (PostgreSQL, S3) add the services they need
# here, started and stopped by this script.
set -euo pipefail
cd "$(dirname "$0")/.."
# Outside the clone, so CI and later runs reuse the (expensive) build.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mudrock-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo test --workspace --locked "$@"
