#!/usr/bin/env bash
# overlay-docker-versions.sh — the swarm-overlay create (`--wiring docker`) on Docker 20.10
# and Docker 26, side by side in one run: a local 3-node cluster from Debian 12 nodes, then one
# from Debian 13 nodes (deploy/cluster-up.sh, VNET_TE_DEBIAN_SUITE), the same path on each.
#
#   tests/bench/overlay-docker-versions.sh [HOPS] [ROUNDS]     (defaults 24 and 3)
#
# Per round: `vnet-te path create --hops HOPS --wiring docker` on the manager, timed to its
# verdict, then `path delete`, timed until no labelled object is left on any node. Prints every
# round, the median create of each engine and the ratio Docker 26 / Docker 20.10 (target
# <= 1.2). The rounds of an engine run on one cluster; the clusters are built one after the other
# (their containers share names). Needs what deploy/cluster-up.sh needs; VNET_TE_BIN_DIR as
# there. Tears every cluster down, in every outcome.
set -euo pipefail
HOPS="${1:-24}"
ROUNDS="${2:-3}"
[[ "$HOPS" =~ ^[0-9]+$ && "$ROUNDS" =~ ^[0-9]+$ ]] && ((HOPS >= 2 && ROUNDS >= 1)) ||
    { printf 'bench: usage: %s [HOPS>=2] [ROUNDS>=1]\n' "$0" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
M=vnet-te-n1
NODES=(vnet-te-n1 vnet-te-n2 vnet-te-n3)
log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
trap '"$ROOT/deploy/cluster-down.sh" >/dev/null 2>&1 || true' EXIT

left_on_nodes() {
    local n total=0
    for n in "${NODES[@]}"; do
        total=$((total + $(docker exec "$n" sh -c 'docker ps -aq --filter label=vnet-te.path=ovbench; docker network ls -q --filter label=vnet-te.path=ovbench' | wc -l)))
    done
    echo "$total"
}

declare -A CREATES
for suite in bookworm trixie; do
    "$ROOT/deploy/cluster-down.sh" >/dev/null 2>&1
    VNET_TE_DEBIAN_SUITE="$suite" "$ROOT/deploy/cluster-up.sh" 3 >/dev/null 2>"/tmp/vnet-te-bench-up-$suite.log" ||
        { cat "/tmp/vnet-te-bench-up-$suite.log" >&2; log "cluster-up ($suite) failed"; exit 1; }
    rm -f "/tmp/vnet-te-bench-up-$suite.log"
    engine="$(docker exec "$M" docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
    for round in $(seq 1 "$ROUNDS"); do
        t0=$(now)
        docker exec "$M" vnet-te path create --hops "$HOPS" --name ovbench --wiring docker >/dev/null 2>/tmp/vnet-te-bench-create.log ||
            { cat /tmp/vnet-te-bench-create.log >&2; log "create on $suite failed"; exit 1; }
        t1=$(now)
        docker exec "$M" vnet-te path delete ovbench >/dev/null 2>&1 || { log "delete on $suite failed"; exit 1; }
        deadline=$((SECONDS + 60))
        until (($(left_on_nodes) == 0)); do
            ((SECONDS < deadline)) || { log "objects of ovbench left on the nodes after 60 s ($suite)"; exit 1; }
        done
        t2=$(now)
        printf 'Debian %s nodes, Docker %s, round %d: %d hops over overlays: create->verified %s s, delete->nothing left %s s\n' \
            "$suite" "$engine" "$round" "$HOPS" "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")"
        CREATES[$suite]+="$(secs "$t0" "$t1") "
    done
    rm -f /tmp/vnet-te-bench-create.log
done
d20="$(tr ' ' '\n' <<<"${CREATES[bookworm]}" | grep . | median)"
d26="$(tr ' ' '\n' <<<"${CREATES[trixie]}" | grep . | median)"
printf 'median create->verified: Docker 20.10 %s s, Docker 26 %s s: ratio %s (target <= 1.2)\n' \
    "$d20" "$d26" "$(awk -v a="$d26" -v b="$d20" 'BEGIN { printf "%.2f", a / b }')"
