#!/usr/bin/env bash
# Wall time of the sales example, whole process, median of N runs (default
# 5): cold (a fresh store each time) and fully cached (the same store).
# Usage: scripts/time-example.sh [BINARY] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/mudrock-target}/release/mudrock}
n=${2:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seed() {
  rm -rf "$work/store"
  mkdir -p "$work/store/project-local/shared/sales"
  cp examples/sales/data/* "$work/store/project-local/shared/sales/"
}
ms() { local s e; s=$(date +%s%N); "$bin" run examples/sales/pipeline.json --store "$work/store" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cold=$(for _ in $(seq "$n"); do seed; ms; done | median)
seed; ms >/dev/null
cached=$(for _ in $(seq "$n"); do ms; done | median)
echo "binary: $bin"
echo "example cold:   ${cold} ms (median of $n)"
echo "example cached: ${cached} ms (median of $n)"
