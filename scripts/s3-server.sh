#!/usr/bin/env bash
# A real S3 server for tests: a single-node Ceph cluster (one monitor, one
# manager, one in-memory OSD) with the RADOS Gateway on 127.0.0.1, all state
# in one directory. See ../shared/spec/s3-server.md.
#
#   scripts/s3-server.sh install        install the Debian packages if missing
#   scripts/s3-server.sh start DIR      start; writes DIR/env (endpoint, keys)
#   scripts/s3-server.sh stop DIR       stop every daemon, remove DIR
#   scripts/s3-server.sh stop-rgw DIR   stop only the gateway (outage tests)
#   scripts/s3-server.sh start-rgw DIR  start it again
#
# Ports: MUDROCK_S3_PORT (7480), MUDROCK_CEPH_MON_PORT (6789, +1 for v2);
# when a port is taken, the next free one is used (DIR/env says which).
# OSD memory: MUDROCK_CEPH_MEM_BYTES (default 6 GiB; nothing touches disk).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=${MUDROCK_S3_PORT:-7480}
mon_port=${MUDROCK_CEPH_MON_PORT:-6789}
mem=${MUDROCK_CEPH_MEM_BYTES:-6442450944}
access_key=mudrock-test-access
secret_key=mudrock-test-secret-0123456789abcdef

die() { echo "s3-server: $*" >&2; exit 1; }

install() {
  if command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null \
    && command -v ceph-mgr >/dev/null && command -v radosgw-admin >/dev/null && command -v uuidgen >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || die "Ceph is not installed and apt-get is not available"
  echo "s3-server: installing Ceph (ceph-mon ceph-mgr ceph-osd radosgw ceph-common)" >&2
  apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    ceph-mon ceph-mgr ceph-osd radosgw ceph-common uuid-runtime curl >/dev/null \
    || die "installing Ceph failed"
}

conf() { echo "$dir/ceph.conf"; }

# Whether something listens on 127.0.0.1:$1.
busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# The first port from $1 on (step $2) where $1 and $1+1 are free.
free_port() {
  local p=$1
  for _ in $(seq 1 50); do
    if ! busy "$p" && ! busy $((p + 1)); then echo "$p"; return; fi
    p=$((p + $2))
  done
  die "no free port near $1"
}
ceph_() { timeout 60 ceph -c "$(conf)" "$@"; }

start_rgw() {
  [ -f "$dir/rgw-port" ] && port=$(cat "$dir/rgw-port")
  radosgw -c "$(conf)" -n client.rgw.mudrock -k "$dir/rgw/keyring" || die "radosgw did not start (see $dir/log)"
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return; fi
    sleep 0.5
  done
  die "the gateway did not answer on 127.0.0.1:$port within 60 s (see $dir/log)"
}

stop_rgw() {
  local pidf="$dir/run/client.rgw.mudrock.pid"
  if [ -f "$pidf" ]; then
    local pid; pid=$(cat "$pidf")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidf"
  fi
}

start() {
  [ -n "$dir" ] || die "usage: $0 start DIR"
  install
  command -v curl >/dev/null || die "curl is needed to wait for the gateway"
  port=$(free_port "$port" 2)
  mon_port=$(free_port "$mon_port" 10)
  mkdir -p "$dir"/{run,log,mon/ceph-a,mgr/ceph-x,rgw}
  echo "$port" > "$dir/rgw-port"
  local fsid; fsid=$(uuidgen)
  cat > "$(conf)" <<EOF
[global]
fsid = $fsid
mon_initial_members = a
mon_host = v2:127.0.0.1:$((mon_port + 1))/0,v1:127.0.0.1:$mon_port/0
public_network = 127.0.0.0/8
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
run_dir = $dir/run
admin_socket = $dir/run/\$name.asok
pid_file = $dir/run/\$name.pid
log_file = $dir/log/\$name.log
mon_data = $dir/mon/\$cluster-\$id
mgr_data = $dir/mgr/\$cluster-\$id
osd_data = $dir/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = $mem
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
auth_allow_insecure_global_id_reclaim = false

# Only the admin client reads this keyring; each daemon uses its own
# (\$mon_data/keyring, \$mgr_data/keyring, \$osd_data/keyring).
[client.admin]
keyring = $dir/keyring

[client.rgw.mudrock]
keyring = $dir/rgw/keyring
# tcp_nodelay: without it beast writes a response's headers and body in
# two segments and the body waits for the client's delayed ACK, 40 ms per
# GET with a body or copy (MinIO and S3 send at once).
rgw_frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
rgw_dns_name = 127.0.0.1
# Server-side encryption for the tests: SSE-C without TLS between the
# proxy and the gateway, SSE-KMS with a test key (never for production).
rgw_crypt_require_ssl = false
rgw_crypt_s3_kms_backend = testing
rgw_crypt_s3_kms_encryption_keys = mudrock-test=Wk3rMcM9MuF3O7vWQ6oYSYvjv+1iW9wLp07xDvOrQ5E=
EOF
  ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/keyring" >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$((mon_port + 1)),v1:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
  ceph-mon -c "$(conf)" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" || die "ceph-mon --mkfs failed"
  ceph-mon -c "$(conf)" -i a || die "ceph-mon did not start"

  ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$dir/mgr/ceph-x/keyring" >/dev/null
  ceph-mgr -c "$(conf)" -i x || die "ceph-mgr did not start"

  local uuid secret id
  uuid=$(uuidgen)
  secret=$(ceph-authtool --gen-print-key)
  id=$(echo "{\"cephx_secret\": \"$secret\"}" | ceph_ osd new "$uuid" -i -) || die "ceph osd new failed"
  mkdir -p "$dir/osd/ceph-$id"
  ceph-authtool --create-keyring "$dir/osd/ceph-$id/keyring" --name "osd.$id" --add-key "$secret" >/dev/null
  ceph-osd -c "$(conf)" -i "$id" --mkfs --osd-uuid "$uuid" >/dev/null 2>&1 || die "ceph-osd --mkfs failed"
  ceph-osd -c "$(conf)" -i "$id" || die "ceph-osd did not start"
  for _ in $(seq 1 120); do
    if ceph_ osd stat 2>/dev/null | grep -q "1 up"; then break; fi
    sleep 0.5
  done
  ceph_ osd stat | grep -q "1 up" || die "the OSD did not come up (see $dir/log)"

  ceph_ auth get-or-create client.rgw.mudrock mon 'allow rw' osd 'allow rwx' mgr 'allow rw' -o "$dir/rgw/keyring" >/dev/null
  start_rgw
  timeout 60 radosgw-admin -c "$(conf)" user create --uid=mudrock --display-name=mudrock \
    --access-key="$access_key" --secret="$secret_key" >/dev/null || die "creating the S3 user failed"
  cat > "$dir/env" <<EOF
export MUDROCK_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export MUDROCK_TEST_S3_ACCESS_KEY=$access_key
export MUDROCK_TEST_S3_SECRET_KEY=$secret_key
export MUDROCK_TEST_S3_DIR=$dir
EOF
  echo "s3-server: Ceph RGW answering on http://127.0.0.1:$port (state in $dir)" >&2
}

stop() {
  [ -n "$dir" ] && [ -d "$dir/run" ] || return 0
  stop_rgw
  for pidf in "$dir"/run/*.pid; do
    [ -f "$pidf" ] || continue
    kill "$(cat "$pidf")" 2>/dev/null || true
  done
  for pidf in "$dir"/run/*.pid; do
    [ -f "$pidf" ] || continue
    local pid; pid=$(cat "$pidf")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}

case "$cmd" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  stop-rgw) stop_rgw ;;
  start-rgw) start_rgw ;;
  *) die "usage: $0 install | start DIR | stop DIR | stop-rgw DIR | start-rgw DIR" ;;
esac
