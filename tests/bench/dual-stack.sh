#!/usr/bin/env bash
# 24 hops IPv4-only against 24 hops dual-stack (`--family ipv4,ipv6`) on this engine:
# create → verified (one `path create`, which verifies) and delete, alternating v4, dual,
# v4, dual … so drift in the machine's speed hits both alike. Prints each run, the medians
# and the median of the per-pair ratios dual / v4 of create → verified.
#   usage: tests/bench/dual-stack.sh [PAIRS=5] [HOPS=24]
# Needs the engine and the images (deploy/test.sh or deploy/quickstart.sh made them).
set -euo pipefail
cd "$(dirname "$0")/../.."
PAIRS=${1:-5}
HOPS=${2:-24}
cargo build --release -q -p vnet-te
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/vnet-te
v4=bench-v4-$$
v6=bench-ds-$$
log=$(mktemp /tmp/vnet-te-bench-dual.XXXXXX.log)
cleanup() { "$bin" path delete "$v4" >/dev/null 2>&1 || true; "$bin" path delete "$v6" >/dev/null 2>&1 || true; rm -f "$log"; }
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# run NAME [ARGS…]: prints "create_ms delete_ms"; a create that does not verify stops the bench.
run() {
    local name=$1; shift
    local t0 t1 t2
    t0=$(now_ms)
    "$bin" path create --hops "$HOPS" --name "$name" --timeout 300 "$@" >>"$log" 2>&1 || { cat "$log" >&2; echo "dual-stack.sh: $name did not verify" >&2; exit 1; }
    t1=$(now_ms)
    "$bin" path delete "$name" >>"$log" 2>&1
    t2=$(now_ms)
    echo "$((t1 - t0)) $((t2 - t1))"
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# One warm-up pair (images and page cache), not counted.
run "$v4" >/dev/null
run "$v6" --family ipv4,ipv6 >/dev/null
printf '%-5s %14s %14s %14s %14s %8s\n' pair "v4 create ms" "v4 delete ms" "ds create ms" "ds delete ms" "ratio"
c4=(); c6=(); d4=(); d6=(); ratios=()
for i in $(seq 1 "$PAIRS"); do
    read -r a b < <(run "$v4")
    read -r c d < <(run "$v6" --family ipv4,ipv6)
    r=$(awk -v x="$c" -v y="$a" 'BEGIN { printf "%.3f", x / y }')
    printf '%-5s %14s %14s %14s %14s %8s\n' "$i" "$a" "$b" "$c" "$d" "$r"
    c4+=("$a"); d4+=("$b"); c6+=("$c"); d6+=("$d"); ratios+=("$r")
done
m4=$(printf '%s\n' "${c4[@]}" | median)
m6=$(printf '%s\n' "${c6[@]}" | median)
echo "median create→verified: IPv4-only $m4 ms, dual-stack $m6 ms"
echo "median delete: IPv4-only $(printf '%s\n' "${d4[@]}" | median) ms, dual-stack $(printf '%s\n' "${d6[@]}" | median) ms"
echo "median ratio dual-stack / IPv4-only (create→verified, per pair): $(printf '%s\n' "${ratios[@]}" | median)"
