#!/usr/bin/env bash
# ensure-docker.sh — make sure a Docker engine answers and the tools vnet-te needs are present.
#
# Idempotent. On a machine without systemd (CI, containers) it:
#   1. installs the missing Debian packages (docker.io, debootstrap, frr, docker-compose,
#      iptables, iproute2, iputils-ping, util-linux, ca-certificates, openssh-server, openssh-client,
#      and docker-cli where the release has it: from Debian 13 on, docker.io holds the engine
#      only) with apt-get, running `apt-get update` once first (ping and nsenter for the delay
#      tests);
#   2. starts `dockerd` in the background (log: /var/log/dockerd.log) when `docker info` fails;
#   3. polls `docker info` until it answers or the deadline (60 s) passes.
# It prints every action it takes. Must run as root (Debian 12 "bookworm" or 13 "trixie").
#
# Environment:
#   VNET_TE_DOCKER_DEADLINE   seconds to wait for the engine (default 60)
#   VNET_TE_DOCKERD_LOG       dockerd log file (default /var/log/dockerd.log)
set -euo pipefail

DEADLINE="${VNET_TE_DOCKER_DEADLINE:-60}"
DOCKERD_LOG="${VNET_TE_DOCKERD_LOG:-/var/log/dockerd.log}"
# ca-certificates: debootstrap needs it when the apt mirror is an https:// URI.
PACKAGES=(docker.io debootstrap frr docker-compose iptables iproute2 iputils-ping util-linux ca-certificates openssh-server openssh-client)
OS_RELEASE="${VNET_TE_OS_RELEASE:-/etc/os-release}"
# Debian 12 and older ship the `docker` CLI inside docker.io; later releases in docker-cli.
case "$(. "$OS_RELEASE" 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")" in
    bookworm | bullseye | buster | '') ;;
    *) PACKAGES+=(docker-cli) ;;
esac

log() { printf 'ensure-docker: %s\n' "$*"; }
die() { printf 'ensure-docker: error: %s\n' "$*" >&2; exit 1; }

docker_answers() { docker info >/dev/null 2>&1; }

# Packages from PACKAGES that dpkg does not report as installed.
missing_packages() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
        [[ "$status" == installed ]] || printf '%s\n' "$p"
    done
}

# The commands we actually rely on; a package can be "installed" with a binary missing.
missing_commands() {
    local c
    for c in docker dockerd debootstrap vtysh docker-compose iptables ip; do
        command -v "$c" >/dev/null 2>&1 || printf '%s\n' "$c"
    done
}

install_packages() {
    local -a missing
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        log "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    ((EUID == 0)) || die "must run as root to install: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found (this script supports Debian 12 and 13)"
    export DEBIAN_FRONTEND=noninteractive
    log "installing missing packages: ${missing[*]}"
    local out
    out="$(mktemp)"
    log "running apt-get update"
    if ! apt-get update -qq >"$out" 2>&1; then
        cat "$out" >&2; rm -f "$out"; die "apt-get update failed"
    fi
    # A release whose archive has no docker-cli (a derivative keeping the CLI in docker.io).
    if [[ " ${missing[*]} " == *" docker-cli "* ]] && ! apt-cache show docker-cli >/dev/null 2>&1; then
        log "docker-cli is not in this release's archive; the docker CLI must come with docker.io"
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | grep -vx docker-cli)
        ((${#missing[@]})) || { rm -f "$out"; return 0; }
    fi
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$out" 2>&1; then
        cat "$out" >&2; rm -f "$out"; die "apt-get install failed"
    fi
    rm -f "$out"
    log "installed: ${missing[*]}"
}

start_dockerd() {
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd already running (pid $(pgrep -x dockerd | tr '\n' ' ')); waiting for it to answer"
        return 0
    fi
    ((EUID == 0)) || die "must run as root to start dockerd"
    command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    # setsid: keep the daemon alive after this script and its caller exit.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    log "dockerd started, pid $!"
}

wait_for_docker() {
    local start now
    start=$(date +%s)
    while ! docker_answers; do
        now=$(date +%s)
        if ((now - start >= DEADLINE)); then
            echo "---- last lines of $DOCKERD_LOG ----" >&2
            tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
            die "docker info did not answer within ${DEADLINE}s"
        fi
        if ! pgrep -x dockerd >/dev/null 2>&1; then
            echo "---- last lines of $DOCKERD_LOG ----" >&2
            tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
            die "dockerd exited"
        fi
        sleep 0.5
    done
    log "docker answers after $(($(date +%s) - start))s: server $(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo '?')"
}

main() {
    local -a missing_cmds
    mapfile -t missing_cmds < <(missing_commands)
    if docker_answers; then
        if ((${#missing_cmds[@]} == 0)); then
            log "docker answers and all tools are present; nothing to do"
            return 0
        fi
        log "docker answers but commands are missing: ${missing_cmds[*]}"
        install_packages
        return 0
    fi
    log "docker info failed; preparing the engine"
    install_packages
    start_dockerd
    wait_for_docker
}

main "$@"
