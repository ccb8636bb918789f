#!/usr/bin/env bash
# Wall time of the sales example, whole process, median of N runs (default
# 5), on the configured store (local by default; set MUDROCK_STORE__KIND=s3
# and MUDROCK_STORE__S3__* for S3): cold (a fresh project bucket each time:
# no cache, no source hash index) and fully cached (one bucket, run again).
# Uploading the data is not timed.
# Usage: scripts/time-example.sh [BINARY] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/mudrock-target}/release/mudrock}
n=${2:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A local store goes to a temp dir unless one is configured.
if [ "${MUDROCK_STORE__KIND:-local}" = local ]; then export MUDROCK_STORE__DIR=${MUDROCK_STORE__DIR:-$work/store}; fi
tag=$(date +%s)
seed() { "$bin" upload examples/sales/data --to shared/sales/ --project "$1" >/dev/null; }
ms() {
  local s e
  s=$(date +%s%N)
  "$bin" run examples/sales/pipeline.json --project "$1" >/dev/null
  e=$(date +%s%N)
  echo $(((e - s) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cold=$(for i in $(seq "$n"); do seed "t$tag-cold-$i"; ms "t$tag-cold-$i"; done | median)
seed "t$tag-warm"
ms "t$tag-warm" >/dev/null
cached=$(for _ in $(seq "$n"); do ms "t$tag-warm"; done | median)
echo "binary: $bin; store: ${MUDROCK_STORE__KIND:-local}"
echo "example cold:   ${cold} ms (median of $n)"
echo "example cached: ${cached} ms (median of $n)"
