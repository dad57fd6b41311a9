#!/usr/bin/env bash
# test.sh — the project's test command, as CI runs it.
#
# VNET_TE_REQUIRE_DOCKER=1, VNET_TE_REQUIRE_FRR=1, VNET_TE_REQUIRE_SSH=1 and
# VNET_TE_REQUIRE_CLUSTER=1 make tests that need a Docker engine, FRR (vtysh), OpenSSH's sshd
# or the local multi-node cluster fail when those are missing, instead of reporting a skip.
# The cluster test builds its own 3-node cluster (deploy/cluster-up.sh) and removes it.
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

export VNET_TE_REQUIRE_DOCKER=1
export VNET_TE_REQUIRE_FRR=1
export VNET_TE_REQUIRE_SSH=1
export VNET_TE_REQUIRE_CLUSTER=1
exec cargo test --workspace --release -- --test-threads=2 "$@"
