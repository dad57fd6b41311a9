#!/usr/bin/env bash
# overlay-attach.sh — what one swarm overlay attach costs, and what bounds many of them, on the
# local cluster (deploy/cluster-up.sh 3): plain Docker, no vnet-te.
#
#   tests/bench/overlay-attach.sh [N]          (default N=15 attaches per step)
#
# On the manager, attachable overlays; on the second and third nodes, containers on a local
# bridge. Each step joins overlays its node has not had before:
#   1. a container on the second node joins N of them one after another;
#   2. another there joins N others all at once (one `docker network connect` each);
#   3. a container on the second and one on the third node each join N more one after another,
#      both nodes at once.
# If (2) is no faster than (1) and (3) no slower, the attaches queue in each node's engine; if
# (3) took twice (1), they would queue in the manager. Removes what it made.
set -euo pipefail
N="${1:-15}"
M=vnet-te-n1
A=vnet-te-n2
B=vnet-te-n3
IMAGE=vnet-te/host:0.1.0
log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

for n in "$M" "$A" "$B"; do
    docker exec "$n" docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null | grep -qx active ||
        { log "$n is not in a swarm: run deploy/cluster-up.sh 3 first"; exit 1; }
done
cleanup() {
    local n
    for n in "$A" "$B"; do
        docker exec "$n" sh -c 'docker ps -aq --filter label=bench=attach | xargs -r docker rm -f >/dev/null
            docker network ls -q --filter label=bench=attach --filter driver=bridge | xargs -r docker network rm >/dev/null' || true
    done
    # The manager refuses an overlay while a worker still detaches from it: retry for 10 s.
    for _ in $(seq 50); do
        [[ -z "$(docker exec "$M" docker network ls -q --filter label=bench=attach)" ]] && return 0
        docker exec "$M" sh -c 'docker network ls -q --filter label=bench=attach | xargs -r docker network rm >/dev/null 2>&1' || true
        sleep 0.2
    done
    log "overlays labelled bench=attach are still on the manager"
}
trap cleanup EXIT

overlays() { local i; for i in $(seq "$1" "$2"); do printf 'ab%d ' "$i"; done; }
for i in $(seq 1 $((3 * N))); do
    docker exec "$M" docker network create -d overlay --attachable --internal \
        --subnet "10.77.$((i / 32)).$((i % 32 * 8))/29" --label bench=attach "ab$i" >/dev/null
done
for n in "$A" "$B"; do
    docker exec "$n" docker network create -d bridge --internal --subnet 10.78.0.0/24 --label bench=attach abl >/dev/null
done
container() { # node name
    docker exec "$1" docker create --name "$2" --label bench=attach --network abl "$IMAGE" sleep 1d >/dev/null
    docker exec "$1" docker start "$2" >/dev/null
}
sequential() { # node container overlays...
    local node=$1 c=$2
    shift 2
    docker exec "$node" sh -c 'c=$1; shift; for n in "$@"; do docker network connect "$n" "$c"; done' sh "$c" "$@"
}

container "$A" seq
t0=$(now)
sequential "$A" seq $(overlays 1 "$N")
printf 'one node, %d attaches one after another: %s s\n' "$N" "$(secs "$t0" "$(now)")"

container "$A" par
t0=$(now)
docker exec "$A" sh -c 'c=$1; shift; for n in "$@"; do docker network connect "$n" "$c" & done; wait' sh par $(overlays $((N + 1)) $((2 * N)))
printf 'one node, %d attaches at once: %s s\n' "$N" "$(secs "$t0" "$(now)")"

container "$A" two
container "$B" two
t0=$(now)
sequential "$A" two $(overlays $((2 * N + 1)) $((3 * N))) &
pa=$!
sequential "$B" two $(overlays $((2 * N + 1)) $((3 * N))) &
pb=$!
wait "$pa"
ta=$(now)
wait "$pb"
tb=$(now)
printf 'two nodes at once, %d attaches one after another on each: %s s and %s s\n' "$N" "$(secs "$t0" "$ta")" "$(secs "$t0" "$tb")"
