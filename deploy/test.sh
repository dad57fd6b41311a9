#!/usr/bin/env bash
# test.sh — the project's test command, as CI runs it.
#
# Every VNET_TE_REQUIRE_<X>=1 the suite knows is exported below; each makes tests that need
# that thing fail when it is missing, instead of reporting a skip (the list, and the one
# helper that reads them, are in tests/common/skip.rs):
#   VNET_TE_REQUIRE_DOCKER   a Docker engine that answers and the vnet-te images
#   VNET_TE_REQUIRE_FRR      FRR's vtysh
#   VNET_TE_REQUIRE_SSH      OpenSSH's sshd and ssh-keygen
#   VNET_TE_REQUIRE_CLUSTER  what the local multi-node cluster is built from
#   VNET_TE_REQUIRE_DELAY    what the packet-delay line needs to delay packets
#   VNET_TE_REQUIRE_VYOS_CHECK  ../shared/tools/vyos/vyos_check.py (VyOS 1.4's CLI schema)
# The cluster tests build their own 3-node cluster (deploy/cluster-up.sh) and remove it: from
# Debian 12 nodes (Docker 20.10) and, named docker26_*, from Debian 13 nodes (Docker 26).
# Extra arguments go to the test harness, e.g. `deploy/test.sh frr_` to filter by name.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

# What the end-to-end tests need, so this works on a fresh machine too (each step is a quick
# no-op when already done, as after .ci/run): the engine and tools, both binaries, the
# router/host/agent images and the local-cluster node image.
bash deploy/ensure-docker.sh
cargo build --release --workspace
VERSION="$(awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version *=/ { print $2; exit }' Cargo.toml)"
target/release/vnet-te images build
bash images/build-rootfs.sh node "vnet-te/node:${VERSION:?}"
VNET_TE_DEBIAN_SUITE=trixie bash images/build-rootfs.sh node "vnet-te/node:${VERSION:?}-trixie"

export VNET_TE_REQUIRE_DOCKER=1
export VNET_TE_REQUIRE_FRR=1
export VNET_TE_REQUIRE_SSH=1
export VNET_TE_REQUIRE_CLUSTER=1
export VNET_TE_REQUIRE_DELAY=1
export VNET_TE_REQUIRE_VYOS_CHECK=1
exec cargo test --workspace --release -- --test-threads=2 "$@"
