#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts what the
# tests need (a real S3 server: Ceph RGW), runs every test of the
# workspace, and stops the services again, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
# Outside the clone, so CI and later runs reuse the (expensive) build.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mudrock-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# The compose file is checked with docker-compose's own parser.
if ! command -v docker-compose >/dev/null; then
  echo "test.sh: installing docker-compose (to validate docker-compose.yml)" >&2
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose) >/dev/null \
    || { echo "test.sh: could not install docker-compose" >&2; exit 1; }
fi

# Build first: a compile error should not wait for services.
cargo test --workspace --locked --no-run

s3_dir=$(mktemp -d /tmp/mudrock-s3.XXXXXX)
cleanup() { scripts/s3-server.sh stop "$s3_dir" || true; }
trap cleanup EXIT
if ! scripts/s3-server.sh start "$s3_dir"; then
  echo "test.sh: could not start the S3 server (Ceph RGW); the S3 tests cannot run" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$s3_dir/env"

cargo test --workspace --locked "$@"
