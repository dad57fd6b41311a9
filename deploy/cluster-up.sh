#!/usr/bin/env bash
# cluster-up.sh — a local multi-node vnet-te cluster on this one machine, for tests and demos.
#
#   deploy/cluster-up.sh [N]        (default N=3; tear down with deploy/cluster-down.sh)
#
# N docker-in-docker "hypervisor" nodes (containers vnet-te-n1..N, hostnames n1..nN), each
# running its own dockerd and sshd, on one internal Docker network (no route out). n1 is the
# swarm manager and runs the controller, as an operator would on a real cluster:
#
#   1. the vnet-te binaries, the router and host images and an SSH key go to n1 only, and n1
#      builds the agent image from those binaries (`vnet-te images build` there: this
#      machine's own vnet-te/agent tag stays as it is);
#   2. n1's known_hosts gets the other nodes' host keys, read from the nodes themselves
#      (the out-of-band check an operator does; nothing is accepted blindly);
#   3. on n1: `vnet-te cluster init`, then `vnet-te node add root@nK` for every other node —
#      the real SSH bootstrap path: Docker checked, swarm joined, images streamed, agent
#      certificate written, agent started and reached over mutual TLS.
#
# Then run the controller on n1:  docker exec -it vnet-te-n1 vnet-te path create --hops 24
#
# More than one local cluster can run side by side: VNET_TE_CLUSTER=NAME names one (containers
# vnet-te-NAME-n1..N, network vnet-te-cluster-NAME, label vnet-te.object=local-cluster-NAME) and
# then needs a subnet of its own in VNET_TE_CLUSTER_SUBNET. Unset: the default cluster above.
#
# The nodes' Debian release (and with it their Docker engine): VNET_TE_DEBIAN_SUITE=bookworm
# (the default: Docker 20.10) or trixie (Docker 26), image vnet-te/node:VERSION or
# vnet-te/node:VERSION-trixie, built when missing. VNET_TE_NODE_IMAGE names another image.
#
# Needs: a running Docker engine (deploy/ensure-docker.sh), a release build
# (cargo build --release), and the router and host images (target/release/vnet-te images
# build; run for them when missing, as build-rootfs.sh is for the node image). Idempotent for a running
# cluster of the same size: it says so and exits 0.
set -euo pipefail

N="${1:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${VNET_TE_BIN_DIR:-$ROOT/target/release}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
SUITE="${VNET_TE_DEBIAN_SUITE:-bookworm}"
case "$SUITE" in
    bookworm) NODE_IMAGE="vnet-te/node:$VERSION" ;;
    trixie) NODE_IMAGE="vnet-te/node:$VERSION-trixie" ;;
    *) printf 'cluster-up: error: VNET_TE_DEBIAN_SUITE must be bookworm or trixie, not %s\n' "'$SUITE'" >&2; exit 2 ;;
esac
NODE_IMAGE="${VNET_TE_NODE_IMAGE:-$NODE_IMAGE}"
IMAGES=("vnet-te/router:$VERSION" "vnet-te/host:$VERSION")
CLUSTER="${VNET_TE_CLUSTER:-}"
[[ -z "$CLUSTER" || "$CLUSTER" =~ ^[a-z][a-z0-9]{0,11}$ ]] || { printf 'cluster-up: error: VNET_TE_CLUSTER must be 1-12 lower-case letters or digits, starting with a letter, not %s\n' "'$CLUSTER'" >&2; exit 2; }
if [[ -n "$CLUSTER" && -z "${VNET_TE_CLUSTER_SUBNET:-}" ]]; then
    printf 'cluster-up: error: the cluster %s needs a subnet of its own in VNET_TE_CLUSTER_SUBNET (the default cluster has 10.196.255.0/24)\n' "'$CLUSTER'" >&2
    exit 2
fi
P="vnet-te-${CLUSTER:+$CLUSTER-}"
NET="vnet-te-cluster${CLUSTER:+-$CLUSTER}"
SUBNET="${VNET_TE_CLUSTER_SUBNET:-10.196.255.0/24}"
LABEL="vnet-te.object=local-cluster${CLUSTER:+-$CLUSTER}"
# What a dockerd needs inside a container where --privileged is refused: these capabilities,
# plus unconfined seccomp/AppArmor/system paths and a writable cgroup tree (below).
CAPS=(SYS_ADMIN NET_ADMIN NET_RAW SYS_PTRACE IPC_LOCK SYS_MODULE MKNOD DAC_READ_SEARCH SYSLOG
    MAC_ADMIN MAC_OVERRIDE SYS_NICE LINUX_IMMUTABLE SYS_TIME AUDIT_CONTROL LEASE SYS_RAWIO AUDIT_READ)

log() { printf 'cluster-up: %s\n' "$*" >&2; }
die() { printf 'cluster-up: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
T0=$(now)
since() { awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[[ "$N" =~ ^[0-9]+$ ]] && ((N >= 1 && N <= 16)) || die "N must be 1..16, not '$N'"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run deploy/ensure-docker.sh"
for b in vnet-te vnet-te-agent vnet-te-delay; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b not found: run 'cargo build --release' first"
done

# --- images on this engine ----------------------------------------------------------------
if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    [[ -z "${VNET_TE_NODE_IMAGE:-}" ]] || die "node image $NODE_IMAGE (VNET_TE_NODE_IMAGE) not found"
    log "building $NODE_IMAGE from Debian $SUITE (debootstrap, about a minute)"
    VNET_TE_DEBIAN_SUITE="$SUITE" bash "$ROOT/images/build-rootfs.sh" node "$NODE_IMAGE" >&2
fi
for i in "${IMAGES[@]}"; do
    docker image inspect "$i" >/dev/null 2>&1 && continue
    "$BIN/vnet-te" images build >&2 || die "building the router/host images failed"
    break
done

# --- already up? --------------------------------------------------------------------------
running="$(docker ps -q --filter "label=$LABEL" --filter status=running | wc -l)"
existing="$(docker ps -aq --filter "label=$LABEL" | wc -l)"
if ((existing > 0)); then
    if ((running == N)) && docker exec "${P}n1" vnet-te cluster status >/dev/null 2>&1; then
        log "a local cluster of $N nodes is already up (docker exec ${P}n1 vnet-te cluster status)"
        exit 0
    fi
    die "a different or broken local cluster exists ($running/$existing running): run ${CLUSTER:+VNET_TE_CLUSTER=$CLUSTER }deploy/cluster-down.sh first"
fi

# From here on, a failure tears down what this run made.
WORK="$(mktemp -d)"
trap 'rc=$?; rm -rf "$WORK"; if ((rc != 0)); then log "failed (exit $rc): removing the partial cluster"; VNET_TE_CLUSTER="$CLUSTER" "$ROOT/deploy/cluster-down.sh" >&2 || true; fi' EXIT

# --- network and nodes --------------------------------------------------------------------
log "creating network $NET ($SUBNET, internal)"
docker network create --internal --subnet "$SUBNET" --label "$LABEL" "$NET" >/dev/null
ssh-keygen -q -t ed25519 -N '' -C vnet-te-cluster-manager -f "$WORK/id_ed25519"

cap_args=()
for c in "${CAPS[@]}"; do cap_args+=(--cap-add "$c"); done
for i in $(seq 1 "$N"); do
    # --init: a reaping PID 1 above dockerd. The delay lines the controller starts on n1
    # outlive the command that started them and are then the init's children: dockerd as PID 1
    # would leave every ended line a zombie.
    docker run -d --init --name "${P}n$i" --hostname "n$i" \
        --network "$NET" --network-alias "n$i" --label "$LABEL" \
        "${cap_args[@]}" \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --security-opt systempaths=unconfined \
        -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run \
        --mount "type=volume,source=${P}n$i-docker,target=/var/lib/docker,volume-label=$LABEL" \
        -e "VNET_TE_AUTHORIZED_KEY=$(cat "$WORK/id_ed25519.pub")" -e "VNET_TE_NODE_CGROUP=${P}n$i" \
        "$NODE_IMAGE" >/dev/null
done
log "started $N nodes from $NODE_IMAGE ($(since) s)"

wait_engine() {
    local node="$1" deadline=$((SECONDS + 60))
    until docker exec "$node" docker info >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { docker exec "$node" tail -20 /var/log/dockerd.log >&2 || true; die "dockerd in $node did not answer within 60 s"; }
        sleep 0.3
    done
}
for i in $(seq 1 "$N"); do wait_engine "${P}n$i"; done
log "all inner engines answer ($(since) s)"

# --- the manager: binaries, key, known_hosts, images ----------------------------------------
M="${P}n1"
docker cp "$BIN/vnet-te" "$M:/usr/local/bin/vnet-te"
docker cp "$BIN/vnet-te-agent" "$M:/usr/local/bin/vnet-te-agent"
docker cp "$BIN/vnet-te-delay" "$M:/usr/local/bin/vnet-te-delay"
docker exec "$M" mkdir -p /root/.ssh
docker cp "$WORK/id_ed25519" "$M:/root/.ssh/id_ed25519"
: >"$WORK/known_hosts"
for i in $(seq 2 "$N"); do
    key="$(docker exec "${P}n$i" cat /etc/ssh/ssh_host_ed25519_key.pub | awk '{ print $1, $2 }')"
    [[ -n "$key" ]] || die "could not read the host key of ${P}n$i"
    printf 'n%s %s\n' "$i" "$key" >>"$WORK/known_hosts"
done
docker cp "$WORK/known_hosts" "$M:/root/.ssh/known_hosts"
docker exec "$M" sh -c 'chown root:root /root/.ssh/*; chmod 600 /root/.ssh/id_ed25519'
log "loading ${IMAGES[*]} into the manager"
docker save "${IMAGES[@]}" | docker exec -i "$M" docker load >/dev/null
docker exec "$M" vnet-te images build >&2 || die "building the agent image on the manager failed"
log "manager ready ($(since) s)"

# --- the cluster, through the product's own commands --------------------------------------
ADDR="$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$M")"
docker exec "$M" vnet-te cluster init --advertise-addr "$ADDR" >&2
for i in $(seq 2 "$N"); do
    docker exec "$M" vnet-te node add "root@n$i" >&2
done
docker exec "$M" vnet-te cluster status >&2
log "local cluster of $N nodes up in $(since) s; run the controller with: docker exec -it $M vnet-te ..."
