#!/usr/bin/env bash
# Benchmark: how creation, memory and delete scale with the number of routers on one box.
#   24, 100, 250 hops: one chain each, create → verified (full: tables, traceroutes, pings)
#   500 hops: one chain with `--verify control-plane` (no IPv4 packet crosses 500 routers)
#   1000 routers: four 250-hop chains side by side, created one after another, all verified
#   grid: 1000 routers in a 25x40 grid (1935 links), one path of 250 hops forced through it
#         (tests/bench/grid-spec.py; the grid's own shortest way between the ends is 15 hops)
# For each: create → verified (s), s per router, MiB per router (docker stats of the routers,
# and the host's MemAvailable drop), delete (s).
#   usage: tests/bench/scale.sh [SIZES="24 100 250 500 1000 grid"]
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${1:-24 100 250 500 1000 grid}
cargo build --release -q --workspace
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/vnet-te
names=()
# The kernel's IPv4 neighbour table is one for all network namespaces, 1024 entries by
# default (gc_thresh3): a router has an entry per link end, so beyond about 500 routers new
# neighbours fail ("No buffer space available") and sessions never form. Raised for the run,
# restored after.
thresholds=(net.ipv4.neigh.default.gc_thresh1 net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3)
saved=$(sysctl -n "${thresholds[@]}" | tr '\n' ' ')
cleanup() {
    for n in "${names[@]}"; do "$bin" path delete "$n" >/dev/null 2>&1 || true; done
    read -r t1 t2 t3 <<<"$saved"
    sysctl -qw "${thresholds[0]}=$t1" "${thresholds[1]}=$t2" "${thresholds[2]}=$t3"
}
trap cleanup EXIT
sysctl -qw "${thresholds[0]}=4096" "${thresholds[1]}=8192" "${thresholds[2]}=16384"

now() { date +%s%N; }
# The kernel tears namespaces down after a delete returns: each size starts once the CPUs
# are at least 90 % idle over half a second (at most 60 s).
settle() {
    local end=$(( $(date +%s) + 60 )) a b
    while (( $(date +%s) < end )); do
        a=($(awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5}' /proc/stat)); sleep 0.5
        b=($(awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5}' /proc/stat))
        (( (b[1] - a[1]) * 10 >= ((b[0] - a[0]) + (b[1] - a[1])) * 9 )) && return 0
    done
    echo "note: machine not idle after 60 s; measuring anyway" >&2
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
avail_kib() { awk '/^MemAvailable/ { print $2 }' /proc/meminfo; }
# Mean MiB per router container of the named paths, as docker stats reports it.
router_mib() {
    local re; re=$(printf '%s|' "$@"); re=${re%|}
    docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' | awk -v re="^vte-($re)-(r[0-9]+|g[0-9]+x[0-9]+)$" '
        $1 ~ re { v=$2; u=v; gsub(/[0-9.]/,"",u); gsub(/[A-Za-z]/,"",v);
          f = (u=="GiB") ? 1024 : (u=="KiB") ? 1/1024 : 1; s += v*f; c++ }
        END { if (c) printf "%.1f", s/c; else printf "?" }'
}
echo "machine: $(nproc) cores, $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
settle
printf '%-8s %-26s %10s %10s %12s %14s %9s\n' routers shape create_s s/router MiB/router host_MiB/router delete_s
for size in $SIZES; do
    grid=0
    case $size in
        500) shape="1 chain, control plane"; chains=1; hops=500; extra=(--verify control-plane) ;;
        1000) shape="4 chains of 250"; chains=4; hops=250; extra=() ;;
        grid) shape="25x40 grid, 250 forced"; chains=1; hops=250; grid=1; extra=() ;;
        *) shape="1 chain"; chains=1; hops=$size; extra=() ;;
    esac
    names=()
    for i in $(seq 1 "$chains"); do names+=("scale$size-$i"); done
    routers=$((chains * hops))
    if ((grid)); then
        routers=1000
        python3 tests/bench/grid-spec.py 25 40 "$hops" "${names[0]}" >/tmp/vnet-te-scale-grid.yaml
        extra=(-f /tmp/vnet-te-scale-grid.yaml)
    fi
    before=$(avail_kib)
    t0=$(now)
    for n in "${names[@]}"; do
        if ((grid)); then set -- "${extra[@]}"; else set -- --hops "$hops" --name "$n" "${extra[@]}"; fi
        "$bin" path create "$@" >/tmp/vnet-te-scale.out 2>&1 || { tail -20 /tmp/vnet-te-scale.out >&2; exit 1; }
    done
    t1=$(now)
    mib=$(router_mib "${names[@]}")
    host=$(awk -v a="$before" -v b="$(avail_kib)" -v n="$routers" 'BEGIN { printf "%.1f", (a - b) / 1024 / n }')
    t2=$(now)
    for n in "${names[@]}"; do "$bin" path delete "$n" >/dev/null 2>&1; done
    t3=$(now)
    names=()
    printf '%-8s %-26s %10s %10s %12s %14s %9s\n' "$routers" "$shape" "$(secs "$t0" "$t1")" \
        "$(awk -v a="$t0" -v b="$t1" -v n="$routers" 'BEGIN { printf "%.3f", (b - a) / 1e9 / n }')" "$mib" "$host" "$(secs "$t2" "$t3")"
    settle
done
