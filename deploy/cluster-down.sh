#!/usr/bin/env bash
# cluster-down.sh — remove the local multi-node cluster completely: the node containers
# (and with them every path container and network inside their engines), their Docker
# volumes and the cluster network. Everything is found by the label
# vnet-te.object=local-cluster (with VNET_TE_CLUSTER=NAME: the cluster of that name, label
# vnet-te.object=local-cluster-NAME). Idempotent.
set -euo pipefail
CLUSTER="${VNET_TE_CLUSTER:-}"
[[ -z "$CLUSTER" || "$CLUSTER" =~ ^[a-z][a-z0-9]{0,11}$ ]] || { printf 'cluster-down: error: VNET_TE_CLUSTER must be 1-12 lower-case letters or digits, starting with a letter\n' >&2; exit 2; }
LABEL="vnet-te.object=local-cluster${CLUSTER:+-$CLUSTER}"
log() { printf 'cluster-down: %s\n' "$*" >&2; }

docker info >/dev/null 2>&1 || { log "no Docker engine answers; nothing to remove"; exit 0; }
mapfile -t nodes < <(docker ps -a --format '{{.Names}}' --filter "label=$LABEL")
if ((${#nodes[@]})); then
    # The inner engines' containers die with their node (SIGKILL is enough), and their
    # cgroups stay behind, empty: removed here.
    docker rm -f -v "${nodes[@]}" >/dev/null
    "$(dirname "$0")/cluster-node-cgroups.sh" "${nodes[@]}"
fi
mapfile -t vols < <(docker volume ls -q --filter "label=$LABEL")
((${#vols[@]})) && docker volume rm -f "${vols[@]}" >/dev/null
mapfile -t nets < <(docker network ls -q --filter "label=$LABEL")
((${#nets[@]})) && docker network rm "${nets[@]}" >/dev/null
log "removed ${#nodes[@]} nodes, ${#vols[@]} volumes, ${#nets[@]} networks"
left=$(( $(docker ps -aq --filter "label=$LABEL" | wc -l) + $(docker volume ls -q --filter "label=$LABEL" | wc -l) + $(docker network ls -q --filter "label=$LABEL" | wc -l) ))
((left == 0)) || { log "error: $left labelled objects are still present"; exit 1; }
