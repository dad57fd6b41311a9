#!/usr/bin/env bash
# cluster-node-cgroups.sh NODE... — remove the cgroups a stopped local-cluster node left behind.
# A node's inner dockerd puts its containers under a cgroup named after the node container
# (the node image's boot script). Killing or stopping the node kills those containers with
# their engine, and nothing is left to remove their cgroups: they stay, empty, in every
# hierarchy. Only the groups of a node that is not running are touched, and only empty ones
# (the kernel refuses to remove a group with processes in it).
set -euo pipefail
log() { printf 'cluster-node-cgroups: %s\n' "$*" >&2; }
status=0
for node in "$@"; do
    [[ "$node" =~ ^vnet-te-([a-z][a-z0-9]{0,11}-)?n[0-9]+$ ]] || { log "error: '$node' is not a local-cluster node name"; exit 2; }
    if [[ "$(docker inspect -f '{{.State.Running}}' "$node" 2>/dev/null || echo gone)" == true ]]; then
        log "error: $node is running; its cgroups are in use"
        exit 2
    fi
    removed=0
    for dir in /sys/fs/cgroup/*/"$node" /sys/fs/cgroup/"$node"; do
        [[ -d "$dir" ]] || continue
        # Deepest first, so each parent is empty by the time it is reached.
        while IFS= read -r -d '' g; do
            if rmdir "$g" 2>/dev/null; then removed=$((removed + 1)); else log "$g stays (not empty)"; status=1; fi
        done < <(find "$dir" -depth -type d -print0)
    done
    ((removed == 0)) || log "$node: removed $removed cgroups"
done
exit "$status"
