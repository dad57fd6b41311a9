#!/usr/bin/env bash
# build-rootfs.sh — build a vnet-te container image offline (no registry needed).
#
#   images/build-rootfs.sh [--force] [--no-cache] KIND TAG
#
#   KIND   router  FRR + iproute2, iputils-ping, traceroute, tcpdump, iperf3, procps, strongSwan
#          host    iproute2, iputils-ping, traceroute, iperf3, tcpdump, procps, strongSwan
#          node    a "hypervisor" node for the local multi-node cluster (deploy/cluster-up.sh):
#                  docker.io (+ docker-cli from Debian 13 on), openssh-server, iptables
#                  (runs its own dockerd and sshd)
#   TAG    image reference to create, e.g. vnet-te/router:0.1.0
#
#   --force     rebuild even if TAG already exists (without it, a TAG whose recipe label
#               differs from this script's recipe is rebuilt too)
#   --no-cache  do not use the shared .deb cache (/var/cache/vnet-te/debootstrap)
#
# How: `debootstrap --variant=minbase --include=<packages> SUITE DIR MIRROR`, where SUITE is
# bookworm (Debian 12, the default) or trixie (Debian 13) and MIRROR is the Debian archive apt
# on this machine is configured with (override with VNET_TE_DEBIAN_MIRROR), then
# `tar -C DIR -c . | docker import - TAG`. A suite apt does not list itself is fetched from the
# archive that serves this machine's own release: one Debian archive holds every suite.
# Downloaded .debs are kept in /var/cache/vnet-te/debootstrap (override with
# VNET_TE_DEBOOTSTRAP_CACHE) so the second image and later rebuilds download only the
# package indexes. The image runs no service on start: vnet-te gives each container its
# files and a boot script as its command, which starts FRR's daemons itself.
#
# For machines with a registry, images/router/Dockerfile and images/host/Dockerfile build
# equivalent images FROM debian:bookworm-slim.
#
# Environment: VNET_TE_DEBIAN_MIRROR (mirror URI), VNET_TE_DEBIAN_SUITE (bookworm or trixie;
# default bookworm), VNET_TE_DEBOOTSTRAP_CACHE (.deb cache dir), VNET_TE_APT_ETC (default
# /etc/apt), VNET_TE_OS_RELEASE (default /etc/os-release, for this machine's own release).
#
# Needs root, debootstrap and a running Docker engine (see deploy/ensure-docker.sh).
set -euo pipefail

SUITE="${VNET_TE_DEBIAN_SUITE:-bookworm}"
APT_ETC="${VNET_TE_APT_ETC:-/etc/apt}" # where apt_mirror reads the sources from
OS_RELEASE="${VNET_TE_OS_RELEASE:-/etc/os-release}"
CACHE_DIR="${VNET_TE_DEBOOTSTRAP_CACHE:-/var/cache/vnet-te/debootstrap}"
CACHE_MAX_AGE_DAYS=30
COMMON_PACKAGES="iproute2,iputils-ping,traceroute,tcpdump,iperf3,procps,iptables"
# IPsec VPNs (swanctl + charon; kernel-libipsec, the userspace ESP for kernels without it, is
# in the extra plugins).
IPSEC_PACKAGES="strongswan-swanctl,charon-systemd,libcharon-extra-plugins"
# PID 1 of every container: idle, but exit at once on SIGTERM/SIGINT so `docker stop` does
# not wait for its 10 s timeout (a bare `sleep infinity` as PID 1 ignores SIGTERM).
CMD_JSON='["/bin/sh","-c","trap \"exit 0\" TERM INT; sleep infinity & wait"]'

log() { printf 'build-rootfs: %s\n' "$*"; }
die() { printf 'build-rootfs: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- arguments ----------------------------------------------------------------------------
FORCE=0
USE_CACHE=1
ARGS=()
while (($#)); do
    case "$1" in
        --force) FORCE=1 ;;
        --no-cache) USE_CACHE=0 ;;
        -h | --help) usage ;;
        -*) die "unknown option: $1" ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done
((${#ARGS[@]} == 2)) || usage
KIND="${ARGS[0]}"
TAG="${ARGS[1]}"

NODE_BOOT=""
case "$KIND" in
    router) PACKAGES="frr,$COMMON_PACKAGES,$IPSEC_PACKAGES" ;;
    host) PACKAGES="$COMMON_PACKAGES,$IPSEC_PACKAGES" ;;
    node)
        PACKAGES="docker.io,openssh-server,iptables,iproute2,iputils-ping,procps,ca-certificates,kmod"
        # From Debian 13 on, docker.io holds the engine only; the `docker` CLI is docker-cli.
        case "$SUITE" in
            bookworm) ;;
            *) PACKAGES="$PACKAGES,docker-cli" ;;
        esac
        CMD_JSON='["/usr/local/sbin/vnet-te-node-boot"]'
        NODE_BOOT="$(cat <<'BOOT'
#!/bin/sh
# PID 1 of a local-cluster node: sshd (host keys made on first boot), then dockerd.
# VNET_TE_AUTHORIZED_KEY: the public key the cluster manager logs in with.
set -eu
ssh-keygen -A >/dev/null
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
if [ -n "${VNET_TE_AUTHORIZED_KEY:-}" ]; then
    printf '%s\n' "$VNET_TE_AUTHORIZED_KEY" >/root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
fi
/usr/sbin/sshd -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password
# Containers of the inner engine get a cgroup subtree of their own, named after the node's
# container (VNET_TE_NODE_CGROUP), so nodes of clusters side by side never share one and
# what a killed node leaves there is found by name (deploy/cluster-node-cgroups.sh).
exec dockerd --cgroup-parent "/${VNET_TE_NODE_CGROUP:-$(hostname)}" >/var/log/dockerd.log 2>&1
BOOT
)"
        NODE_BOOT+=$'\n'
        ;;
    *) die "KIND must be 'router', 'host' or 'node', not '$KIND'" ;;
esac
case "$SUITE" in
    bookworm | trixie) ;;
    *) printf 'build-rootfs: error: VNET_TE_DEBIAN_SUITE must be bookworm or trixie, not %s\n' "'$SUITE'" >&2; exit 2 ;;
esac

# --- the Debian mirror apt is configured with ---------------------------------------------
# Prints the first URI of a `deb` source for suite $1: deb822 files in sources.list.d first,
# then one-line `deb` entries in /etc/apt/sources.list and sources.list.d/*.list.
apt_mirror() {
    local suite="$1" f uri
    for f in "$APT_ETC"/sources.list.d/*.sources; do
        [[ -r "$f" ]] || continue
        uri="$(awk -v suite="$suite" '
            function flush() {
                if (!done && enabled != "no" && (" " types " ") ~ / deb / &&
                    (" " suites " ") ~ (" " suite " ") && uris != "") {
                    split(uris, u, " "); print u[1]; done = 1
                }
                types = ""; suites = ""; uris = ""; enabled = ""; last = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { if (last == "uris") uris = uris " " $0; next }   # continuation line
            {
                key = tolower($1); sub(/:$/, "", key); $1 = ""; val = $0
                gsub(/^[ \t]+|[ \t]+$/, "", val); last = key
                if (key == "types") types = val
                else if (key == "suites") suites = val
                else if (key == "uris") uris = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush() }' "$f")"
        if [[ -n "$uri" ]]; then
            printf '%s\n' "$uri"
            return 0
        fi
    done
    for f in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
        [[ -r "$f" ]] || continue
        uri="$(awk -v suite="$suite" '
            $1 == "deb" {
                line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
                if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
                split(line, w, /[ \t]+/)
                if (w[2] == suite) { print w[1]; exit }
            }' "$f")"
        if [[ -n "$uri" ]]; then
            printf '%s\n' "$uri"
            return 0
        fi
    done
    return 1
}

# The codename of this machine's own Debian release (empty when it is not Debian).
host_suite() {
    [[ -r "$OS_RELEASE" ]] || return 0
    (
        # shellcheck source=/dev/null
        . "$OS_RELEASE"
        printf '%s\n' "${VERSION_CODENAME:-}"
    )
}

# The mirror for suite $1: apt's own source for it, else apt's source for this machine's
# release (the same archive serves the other suites).
suite_mirror() {
    local own
    apt_mirror "$1" && return 0
    own="$(host_suite)"
    [[ -n "$own" && "$own" != "$1" ]] && apt_mirror "$own"
}

# --- the recipe's hash ---------------------------------------------------------------------
# Everything that decides an image's content (kind, suite, packages, command, added files), so
# a tag built from an older recipe is rebuilt instead of skipped. The trim below is part of the
# recipe too: bump RECIPE_REVISION when it changes.
RECIPE_REVISION=1
RECIPE_HASH="$(printf 'revision=%s\nkind=%s\nsuite=%s\npackages=%s\ncmd=%s\nnode-boot=%s\n' \
    "$RECIPE_REVISION" "$KIND" "$SUITE" "$PACKAGES" "$CMD_JSON" "$NODE_BOOT" | sha256sum | cut -c1-16)"

# --- preconditions ------------------------------------------------------------------------
docker info >/dev/null 2>&1 || die "no Docker engine answers: run deploy/ensure-docker.sh"
# An image that exists needs neither root nor debootstrap (a cluster node has neither tool).
if ((FORCE == 0)) && docker image inspect "$TAG" >/dev/null 2>&1; then
    HAVE_HASH="$(docker image inspect -f '{{index .Config.Labels "vnet-te.recipe"}}' "$TAG" 2>/dev/null || true)"
    if [[ "$HAVE_HASH" == "$RECIPE_HASH" ]]; then
        log "$TAG already exists ($(docker image inspect -f '{{.Id}}' "$TAG" | cut -c1-19), recipe $RECIPE_HASH); skipping (use --force to rebuild)"
        exit 0
    fi
    log "$TAG exists but was built from another recipe (${HAVE_HASH:-none} ≠ $RECIPE_HASH): rebuilding"
fi
((EUID == 0)) || die "must run as root (debootstrap needs it)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found: run deploy/ensure-docker.sh"

MIRROR="${VNET_TE_DEBIAN_MIRROR:-}"
if [[ -z "$MIRROR" ]]; then
    MIRROR="$(suite_mirror "$SUITE")" ||
        die "no 'deb' source for suite '$SUITE' or this machine's release in $APT_ETC/sources.list{,.d/}: set VNET_TE_DEBIAN_MIRROR"
fi

# --- work dir and cleanup -----------------------------------------------------------------
mkdir -p /var/tmp
WORK="$(mktemp -d /var/tmp/vnet-te-rootfs.XXXXXX)"
ROOTFS="$WORK/rootfs"
cleanup() {
    local m
    # debootstrap mounts proc/sys inside the target; never rm -rf through a live mount.
    if [[ -d "$WORK" ]]; then
        while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done < <(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DEBOOTSTRAP_ARGS=(--variant=minbase "--include=$PACKAGES")
if ((USE_CACHE)); then
    mkdir -p "$CACHE_DIR"
    DEBOOTSTRAP_ARGS+=("--cache-dir=$CACHE_DIR")
fi

log "building $KIND image $TAG"
log "  suite $SUITE, mirror $MIRROR"
log "  packages $PACKAGES"
log "  cache $( ((USE_CACHE)) && echo "$CACHE_DIR ($(find "$CACHE_DIR" -maxdepth 1 -name '*.deb' | wc -l) .debs)" || echo off)"

# --- debootstrap --------------------------------------------------------------------------
T0=$(now)
run_debootstrap() {
    if ! debootstrap "${DEBOOTSTRAP_ARGS[@]}" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
        tail -n 40 "$WORK/debootstrap.log" >&2
        [[ -f "$ROOTFS/debootstrap/debootstrap.log" ]] && tail -n 40 "$ROOTFS/debootstrap/debootstrap.log" >&2
        die "debootstrap failed"
    fi
}
if ((USE_CACHE)); then
    # Two builds at once must not write the same .deb into the cache concurrently.
    exec 9>"$CACHE_DIR/.lock"
    flock 9
    run_debootstrap
    # Mark the .debs this build used, then drop the ones no build used for a month.
    for deb in "$ROOTFS"/var/cache/apt/archives/*.deb; do
        [[ -e "$CACHE_DIR/${deb##*/}" ]] && touch "$CACHE_DIR/${deb##*/}"
    done
    find "$CACHE_DIR" -maxdepth 1 -name '*.deb' -mtime +"$CACHE_MAX_AGE_DAYS" -delete
    flock -u 9
    exec 9>&-
else
    run_debootstrap
fi
T1=$(now)
log "debootstrap: $(elapsed "$T0" "$T1") s"

# --- trim ---------------------------------------------------------------------------------
FRR_VERSION="$(dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -W -f='${Version}' frr 2>/dev/null || true)"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/archives/partial/* \
    "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/debootstrap \
    "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
# Keep the copyright files, drop the rest of the documentation (as debian:*-slim does).
find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
: >"$ROOTFS/etc/hostname"
if [[ "$KIND" == node ]]; then
    # No host keys in the image: every node makes its own at first boot, as a real machine
    # would, so that known_hosts checks mean something.
    rm -f "$ROOTFS"/etc/ssh/ssh_host_*
    printf '%s' "$NODE_BOOT" >"$ROOTFS/usr/local/sbin/vnet-te-node-boot"
    chmod 0755 "$ROOTFS/usr/local/sbin/vnet-te-node-boot"
fi
ROOTFS_MB="$(du -sm --one-file-system "$ROOTFS" | cut -f1)"

# --- import -------------------------------------------------------------------------------
CHANGES=(
    -c "CMD $CMD_JSON"
    -c "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    -c "LABEL vnet-te.image=$KIND"
    -c "LABEL vnet-te.debian-suite=$SUITE"
    -c "LABEL vnet-te.recipe=$RECIPE_HASH"
)
[[ -n "$FRR_VERSION" ]] && CHANGES+=(-c "LABEL vnet-te.frr-version=$FRR_VERSION")
OLD_ID="$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)"
IMAGE_ID="$(tar -C "$ROOTFS" --numeric-owner --xattrs -c . |
    docker import "${CHANGES[@]}" -m "vnet-te $KIND rootfs ($SUITE, debootstrap minbase)" - "$TAG")"
T2=$(now)
# --force: drop the image the tag pointed to, unless other tags or containers still use it.
if [[ -n "$OLD_ID" && "$OLD_ID" != "$IMAGE_ID" ]] &&
    [[ "$(docker image inspect -f '{{len .RepoTags}}' "$OLD_ID" 2>/dev/null)" == 0 ]]; then
    if rm_out="$(docker image rm "$OLD_ID" 2>&1)"; then
        log "removed the previous image ${OLD_ID:0:19}"
    else
        log "kept the previous image ${OLD_ID:0:19}: ${rm_out//$'\n'/ }"
    fi
fi
log "import: $(elapsed "$T1" "$T2") s (rootfs ${ROOTFS_MB} MB)"

SIZE="$(docker image inspect -f '{{.Size}}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
log "built $TAG ${IMAGE_ID:0:19}, $SIZE${FRR_VERSION:+, FRR $FRR_VERSION}; total $(elapsed "$T0" "$T2") s"
