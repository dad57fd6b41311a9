#!/usr/bin/env bash
# Benchmark: plan + render of a 1000-hop chain (release build), whole process, 10 runs.
# Target: < 100 ms. Prints min / median / max wall time in ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p vnet-te
bin=target/release/vnet-te
# tmpfs: measure planning and rendering, not the disk's inode allocator.
out=$(mktemp -d -p /dev/shm)
trap 'rm -rf "$out"' EXIT
runs=${RUNS:-10}
"$bin" path render --hops 1000 --verify control-plane --out "$out/warm" >/dev/null
times=()
for i in $(seq 1 "$runs"); do
  s=$(date +%s%N)
  "$bin" path render --hops 1000 --verify control-plane --out "$out/r$i" >/dev/null
  e=$(date +%s%N)
  times+=($(( (e - s) / 1000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
echo "plan+render 1000 hops ($(ls "$out/r1" | wc -l) containers, $(find "$out/r1" -type f | wc -l) files), $runs runs:"
echo "  min $(ms "${sorted[0]}") ms  median $(ms "${sorted[$((runs / 2))]}") ms  max $(ms "${sorted[$((runs - 1))]}") ms"
