#!/usr/bin/env bash
# quickstart.sh — from a fresh machine to a verified 24-hop path on the local engine.
#
# Installs and starts the Docker engine and tools when absent (deploy/ensure-docker.sh),
# builds vnet-te, builds the router and host images offline, then creates the path and
# prints the verification table. Re-running replaces the path. Remove it with
#   target/release/vnet-te path delete chain24
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
bash deploy/ensure-docker.sh
cargo build --release --workspace   # vnet-te, its agent and its delay line (for distance)
target/release/vnet-te images build
exec target/release/vnet-te path create --hops "${HOPS:-24}" --replace
