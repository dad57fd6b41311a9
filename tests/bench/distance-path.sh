#!/usr/bin/env bash
# Benchmark: what distance costs a whole path, side by side in one run, alternating:
#   A  vnet-te path create --hops N --delay D (create → verified with every hop's round trip)
#   B  vnet-te path create --hops N            (the same chain without delays)
# and prints the medians and the ratio A / (B + the planned round trip), which the delays
# themselves add and nothing can save. Then, once, TCP throughput from the first host to the
# last through N hops at 1 ms per link (iperf3, default and 64 MiB TCP buffers).
#   usage: tests/bench/distance-path.sh [HOPS=24] [RUNS=3] [DELAY=5ms]
# Needs the engine, the images, root (delay lines) and NFQUEUE, as `path create --delay` does.
set -euo pipefail
cd "$(dirname "$0")/../.."
HOPS=${1:-24}
RUNS=${2:-3}
DELAY=${3:-5ms}
cargo build --release -q --workspace
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/vnet-te
work=$(mktemp -d)
name=benchdist$HOPS
cleanup() {
    "$bin" path delete "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# Waits (at most 20 s) until the CPUs are at least 90 % idle over half a second, so a run is
# not billed for the previous one's teardown.
settle() {
    local end=$(( $(date +%s) + 20 )) a b
    while (( $(date +%s) < end )); do
        a=($(awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5}' /proc/stat)); sleep 0.5
        b=($(awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5}' /proc/stat))
        (( (b[1] - a[1]) * 10 >= ((b[0] - a[0]) + (b[1] - a[1])) * 9 )) && return 0
    done
    echo "note: machine not idle after 20 s; measuring anyway" >&2
}
create() { # ARGS...: create → verified in ms, then delete
    settle
    local t; t=$(date +%s%N)
    "$bin" path create --hops "$HOPS" --name "$name" "$@" >"$work/create.out" 2>&1 || { cat "$work/create.out" >&2; exit 1; }
    ms "$t"
    "$bin" path delete "$name" >/dev/null 2>&1
}
rtt_ms=$("$bin" path plan --hops "$HOPS" --name "$name" --delay "$DELAY" --output json |
    python3 -c 'import json,sys; d=json.load(sys.stdin)["distance"]; print((d["one_way_us"] + d["back_us"]) // 1000)')
echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); planned round trip ${rtt_ms} ms"
declare -a A B
for run in $(seq 1 "$RUNS"); do
    A+=($(create --delay "$DELAY"))
    B+=($(create))
    echo "run $run: with delays ${A[-1]} ms, without ${B[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ma=$(median "${A[@]}"); mb=$(median "${B[@]}")
echo "medians ($HOPS hops, $RUNS runs): with $DELAY per link ${ma} ms, without ${mb} ms;" \
     "with / (without + round trip) = $(awk -v a="$ma" -v b="$mb" -v r="$rtt_ms" 'BEGIN{printf "%.2f", a/(b+r)}')×"

# Throughput through the whole path at 1 ms per link.
"$bin" path create --hops "$HOPS" --name "$name" --delay 1ms --output json >"$work/plan.out" 2>"$work/create.err" || { cat "$work/create.err" >&2; exit 1; }
read -r src dst_c dst < <("$bin" path show "$name" --output json | python3 -c '
import json,sys
p = json.load(sys.stdin)["plan"]
h = {x["name"]: x for x in p["hosts"]}
print(h["src"]["container"], h["dst"]["container"], h["dst"]["address"])')
iperf() {
    docker exec "$dst_c" iperf3 -s -1 -D >/dev/null
    local deadline=$((SECONDS + 5))
    until docker exec "$dst_c" ss -ltn | grep -q ":5201 "; do
        ((SECONDS < deadline)) || { echo "iperf3 server did not start" >&2; exit 1; }
        sleep 0.05
    done
    docker exec "$src" iperf3 -c "$dst" -t 5 -J | python3 -c 'import json,sys; print("%.2f Gbit/s" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}
echo "iperf3 TCP src → dst through $HOPS hops at 1 ms per link, default buffers: $(iperf)"
for c in "$src" "$dst_c"; do
    # /proc/sys is read-only inside the container: from the host, in its network namespace.
    nsenter -t "$(docker inspect -f '{{.State.Pid}}' "$c")" -n sysctl -qw net.ipv4.tcp_rmem="4096 131072 67108864" net.ipv4.tcp_wmem="4096 16384 67108864"
done
echo "the same, 64 MiB TCP buffers at both ends: $(iperf)"
