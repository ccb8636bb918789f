#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts what the
# tests need (PostgreSQL, a real S3 server: Ceph RGW), runs every test of
# the workspace, and stops the services again, whatever happens.
#
# PostgreSQL: DATABASE_URL if set and reachable; else a server on
# 127.0.0.1:5432; else a throwaway cluster made with the system's
# initdb/pg_ctl in a temp dir. Tests make a database each (#[sqlx::test]).
set -euo pipefail
cd "$(dirname "$0")/.."
# Outside the clone, so CI and later runs reuse the (expensive) build.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mudrock-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# sqlx macros must not look for a database while compiling.
export SQLX_OFFLINE=true

# The compose file is checked with docker-compose's own parser.
if ! command -v docker-compose >/dev/null; then
  echo "test.sh: installing docker-compose (to validate docker-compose.yml)" >&2
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose) >/dev/null \
    || { echo "test.sh: could not install docker-compose" >&2; exit 1; }
fi

# `mudrock inspect picture --format svg` renders through Graphviz' dot.
if ! command -v dot >/dev/null; then
  echo "test.sh: installing graphviz (to render pictures of runs)" >&2
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends graphviz) >/dev/null \
    || { echo "test.sh: could not install graphviz" >&2; exit 1; }
fi

# TLS tests make their certificates with the openssl CLI.
if ! command -v openssl >/dev/null; then
  echo "test.sh: installing openssl (test certificates)" >&2
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl) >/dev/null \
    || { echo "test.sh: could not install openssl" >&2; exit 1; }
fi

# Build first: a compile error should not wait for services.
cargo test --workspace --locked --features mudrock/test-support --no-run

s3_dir=$(mktemp -d /tmp/mudrock-s3.XXXXXX)
pg_dir=
cleanup() {
  scripts/s3-server.sh stop "$s3_dir" || true
  if [ -n "$pg_dir" ]; then
    as_pg pg_ctl -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
trap cleanup EXIT

pg_bin() {
  command -v "$1" 2>/dev/null || ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}
# initdb refuses to run as root: run the cluster as the postgres user then.
as_pg() {
  local cmd; cmd=$(pg_bin "$1"); shift
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$cmd" "$@"; else "$cmd" "$@"; fi
}
pg_ok() { "$(pg_bin psql)" "$1" -Atqc 'select 1' >/dev/null 2>&1; }
if [ -n "${DATABASE_URL:-}" ] && pg_ok "$DATABASE_URL"; then
  echo "test.sh: PostgreSQL from DATABASE_URL" >&2
elif pg_ok "postgres://$(id -un)@127.0.0.1:5432/postgres"; then
  export DATABASE_URL="postgres://$(id -un)@127.0.0.1:5432/postgres"
  echo "test.sh: PostgreSQL on 127.0.0.1:5432" >&2
elif pg_ok "postgres://postgres@127.0.0.1:5432/postgres"; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  echo "test.sh: PostgreSQL on 127.0.0.1:5432 (user postgres)" >&2
else
  [ -n "$(pg_bin initdb)" ] || { echo "test.sh: no PostgreSQL answers and initdb is not installed" >&2; exit 1; }
  pg_dir=$(mktemp -d /tmp/mudrock-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  port=${MUDROCK_TEST_PG_PORT:-55432}
  as_pg initdb -D "$pg_dir/data" -A trust -U postgres >/dev/null || { echo "test.sh: initdb failed" >&2; exit 1; }
  as_pg pg_ctl -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
    || { echo "test.sh: the throwaway PostgreSQL did not start (see $pg_dir/log)" >&2; exit 1; }
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "test.sh: throwaway PostgreSQL on 127.0.0.1:$port" >&2
fi
if ! scripts/s3-server.sh start "$s3_dir"; then
  echo "test.sh: could not start the S3 server (Ceph RGW); the S3 tests cannot run" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$s3_dir/env"

cargo test --workspace --locked --features mudrock/test-support "$@"
