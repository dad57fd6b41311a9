#!/usr/bin/env bash
# Benchmark: on the same N-router chain, side by side in one run, alternating:
#   A  vnet-te path create --hops N (create → verified: every hop's BGP best path, traceroute
#      and ping both ways) and vnet-te path delete
#   B  docker-compose up -d of the same chain (compose file written from the plan, configs
#      bind-mounted) + polling until src pings dst, and docker-compose down
# Prints each run and the medians and ratios A/B. Targets: create ≤ 0.4×, delete ≤ 0.3×.
#   usage: tests/bench/single-host-vs-compose.sh [HOPS=24] [RUNS=3]
# Then, for HOPS≥100 set MEM=1 to print memory per router (docker stats) after create.
set -euo pipefail
cd "$(dirname "$0")/../.."
HOPS=${1:-24}
RUNS=${2:-3}
cargo build --release -q -p vnet-te
bin=$PWD/target/release/vnet-te
work=$(mktemp -d)
name=bench$HOPS
cleanup() {
    "$bin" path delete "$name" >/dev/null 2>&1 || true
    [[ -f "$work/docker-compose.yml" ]] && docker-compose -p cmp -f "$work/docker-compose.yml" down -t 0 >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# The compose chain cannot have veth links: it gets the same plan with one Docker network
# per link (`--wiring docker`), the same configs and the same boot scripts.
"$bin" path plan --hops "$HOPS" --name "$name" --wiring docker --output json >"$work/plan.json"
"$bin" path render --hops "$HOPS" --name "$name" --wiring docker --out "$work/render" >/dev/null
# render writes frr.conf 0600 (it may carry BGP passwords); bind-mounted, the routers' frr
# user must read it. This chain has no passwords, and the directory is the bench's own.
chmod -R a+rX "$work/render"
python3 tests/bench/compose-from-plan.py "$work/plan.json" "$work/render" >"$work/docker-compose.yml"
dst=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hosts"][1]["address"])' "$work/plan.json")
# The compose chain needs the same forwarding rule vnet-te keeps (vnet-te delete withdraws
# it with the last path, so put it back before every compose run).
forward() { iptables -w -C DOCKER-USER -i vte+ -o vte+ -m physdev --physdev-is-bridged -j ACCEPT 2>/dev/null || iptables -w -I DOCKER-USER -i vte+ -o vte+ -m physdev --physdev-is-bridged -j ACCEPT; }

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# Each create starts on a quiet machine: a delete or `down` returns while the kernel still
# tears down namespaces in the background, which would bill the next run for the previous
# one. Waits (at most 20 s) until the CPUs are at least 90 % idle over half a second.
settle() {
    local end=$(( $(date +%s) + 20 )) a b
    while (( $(date +%s) < end )); do
        a=($(awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5}' /proc/stat)); sleep 0.5
        b=($(awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5}' /proc/stat))
        (( (b[1] - a[1]) * 10 >= ((b[0] - a[0]) + (b[1] - a[1])) * 9 )) && return 0
    done
    echo "note: machine not idle after 20 s; measuring anyway" >&2
}
declare -a AC AD BC BD
for run in $(seq 1 "$RUNS"); do
    settle
    t=$(date +%s%N)
    "$bin" path create --hops "$HOPS" --name "$name" --timeout 300 >"$work/create.out" 2>&1 || { cat "$work/create.out"; exit 1; }
    AC+=($(ms "$t"))
    if [[ "${MEM:-0}" == 1 && $run == 1 ]]; then
        docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' | awk -v n="$HOPS" '
            $1 ~ /-r[0-9]+$/ { v=$2; u=v; gsub(/[0-9.]/,"",u); gsub(/[A-Za-z]/,"",v);
              f = (u=="GiB") ? 1024 : (u=="KiB") ? 1/1024 : 1; s += v*f; c++ }
            END { printf "memory: %.1f MiB per router (%d routers, %.0f MiB total)\n", s/c, c, s }'
    fi
    t=$(date +%s%N); "$bin" path delete "$name" >/dev/null 2>&1; AD+=($(ms "$t"))

    forward
    settle
    t=$(date +%s%N)
    docker-compose -p cmp -f "$work/docker-compose.yml" up -d >/dev/null 2>&1
    deadline=$(( $(date +%s) + 300 ))
    until docker exec cmp-src ping -c1 -W1 "$dst" >/dev/null 2>&1; do
        (( $(date +%s) < deadline )) || { echo "compose chain did not converge"; exit 1; }
        sleep 0.2
    done
    BC+=($(ms "$t"))
    t=$(date +%s%N); docker-compose -p cmp -f "$work/docker-compose.yml" down -t 0 >/dev/null 2>&1; BD+=($(ms "$t"))
    echo "run $run: vnet-te create→verified ${AC[-1]} ms, delete ${AD[-1]} ms | compose up→converged ${BC[-1]} ms, down ${BD[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mac=$(median "${AC[@]}"); mad=$(median "${AD[@]}"); mbc=$(median "${BC[@]}"); mbd=$(median "${BD[@]}")
echo "medians ($HOPS hops, $RUNS runs): create ${mac} ms vs compose ${mbc} ms → $(awk -v a="$mac" -v b="$mbc" 'BEGIN{printf "%.2f", a/b}')×;" \
     "delete ${mad} ms vs compose down ${mbd} ms → $(awk -v a="$mad" -v b="$mbd" 'BEGIN{printf "%.2f", a/b}')×"
