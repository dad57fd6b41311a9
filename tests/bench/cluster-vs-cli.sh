#!/usr/bin/env bash
# cluster-vs-cli.sh — on the local 3-node cluster (deploy/cluster-up.sh), one run side by side:
#
#   baseline  a plain docker-CLI script building the same chain over overlays (written from the
#             vnet-te plan by cli-from-plan.py: overlays on the manager, then one script per
#             node in parallel: LAN bridges, docker create/network connect/cp/start), timed
#             until the first ping between the experiment hosts succeeds;
#   vnet-te   `vnet-te path create --hops N` on the manager, timed to its verdict (every
#             hop's AS path, traceroute both ways, pings: more than the baseline checks).
#
#   tests/bench/cluster-vs-cli.sh [HOPS] [ROUNDS]     (defaults 24 and 1)
#
# VNET_TE_BENCH_WIRING=docker makes vnet-te wire over swarm overlays too, as the baseline does
# (default: direct, VXLAN pairs). Prints each time and the ratio vnet-te / baseline (target
# <= 0.5). Removes what it made.
set -euo pipefail
HOPS="${1:-24}"
ROUNDS="${2:-1}"
WIRING="${VNET_TE_BENCH_WIRING:-direct}"
case "$WIRING" in
    direct | docker) ;;
    *) printf 'bench: VNET_TE_BENCH_WIRING must be direct or docker, not %s\n' "'$WIRING'" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
M=vnet-te-n1
WORK="$(mktemp -d)"
log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# The machine's busy CPU time so far, in seconds (/proc/stat: user, nice, system, irq, softirq,
# steal). Both sides drive the same engines on the same cores: when their busy time per second
# nears the core count, the side that asks the engines for less work is the faster one.
cpu_busy() { awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat; }

docker exec "$M" vnet-te cluster status >/dev/null ||
    { log "no local cluster answers: run deploy/cluster-up.sh 3 first"; exit 1; }
mapfile -t NODES < <(docker ps --filter label=vnet-te.object=local-cluster --format '{{.Names}}' | sort)
names="$(printf '%s\n' "${NODES[@]}" | sed 's/^vnet-te-//' | paste -sd, -)"

cleanup_cli() {
    local n
    for n in "${NODES[@]}"; do
        docker exec "$n" sh -c 'docker ps -aq --filter label=bench=cli | xargs -r docker rm -f >/dev/null' || true
    done
    for n in "${NODES[@]}"; do
        docker exec "$n" sh -c 'docker network ls -q --filter label=bench=cli | xargs -r docker network rm >/dev/null 2>&1' || true
    done
    docker exec "$M" sh -c 'for i in $(seq 50); do [ -z "$(docker network ls -q --filter label=bench=cli)" ] && exit 0;
        docker network ls -q --filter label=bench=cli | xargs -r docker network rm >/dev/null 2>&1; sleep 0.2; done' || true
}
trap 'cleanup_cli; docker exec "$M" vnet-te path delete bench >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

# The plan a user would build by hand: same names, addresses and placement as vnet-te's.
docker exec "$M" vnet-te path plan --hops "$HOPS" --name bench --nodes "$names" --wiring docker --output json >"$WORK/plan.json"
docker exec "$M" sh -c "rm -rf /tmp/bench-render && vnet-te path render --hops $HOPS --name bench --nodes $names --wiring docker --out /tmp/bench-render >/dev/null"
docker cp "$M:/tmp/bench-render" "$WORK/render"
# render writes frr.conf 0600 (it may carry BGP passwords); bind-mounted, the routers' frr
# user must read it. This chain has no passwords, and the directory is the bench's own.
chmod -R a+rX "$WORK/render"
python3 "$ROOT/tests/bench/cli-from-plan.py" "$WORK/plan.json" "$WORK/render" "$WORK/cli" /bench
for n in "${NODES[@]}"; do
    docker exec "$n" rm -rf /bench
    docker cp "$WORK/cli" "$n:/bench"
done
src_node="$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["hosts"][0]["node"])' "$WORK/plan.json")"
src="cli-$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["hosts"][0]["container"])' "$WORK/plan.json")"
dst_ip="$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["hosts"][1]["address"])' "$WORK/plan.json")"

for round in $(seq 1 "$ROUNDS"); do
    cleanup_cli
    t0=$(now)
    c0=$(cpu_busy)
    docker exec "$M" sh /bench/manager.sh
    pids=()
    for n in "${NODES[@]}"; do
        short="${n#vnet-te-}"
        [[ -f "$WORK/cli/node-$short.sh" ]] || continue
        docker exec "$n" sh "/bench/node-$short.sh" & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    deadline=$((SECONDS + 120))
    until docker exec "vnet-te-$src_node" docker exec "$src" ping -c1 -W1 "$dst_ip" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { log "baseline: no ping within 120 s"; exit 1; }
    done
    t1=$(now)
    base="$(secs "$t0" "$t1")"
    base_cpu="$(secs "$c0" "$(cpu_busy)")"
    cleanup_cli

    t0=$(now)
    c0=$(cpu_busy)
    docker exec "$M" vnet-te path create --hops "$HOPS" --name bench --wiring "$WIRING" >"$WORK/report.txt" 2>"$WORK/create.log" ||
        { cat "$WORK/create.log" "$WORK/report.txt" >&2; log "vnet-te create failed"; exit 1; }
    t1=$(now)
    ours="$(secs "$t0" "$t1")"
    ours_cpu="$(secs "$c0" "$(cpu_busy)")"
    t0=$(now)
    docker exec "$M" vnet-te path delete bench >/dev/null 2>&1
    t1=$(now)
    del="$(secs "$t0" "$t1")"
    ratio="$(awk -v a="$ours" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
    printf 'round %d: %d hops over %d nodes: cli-script %s s, vnet-te create->verified %s s (ratio %s, target <= 0.5; wiring %s); vnet-te delete %s s\n' \
        "$round" "$HOPS" "${#NODES[@]}" "$base" "$ours" "$ratio" "$WIRING" "$del"
    printf 'round %d: busy CPU of the machine (%d cores): cli-script %s s, vnet-te %s s\n' "$round" "$(nproc)" "$base_cpu" "$ours_cpu"
done
