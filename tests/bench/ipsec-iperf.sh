#!/usr/bin/env bash
# ipsec-iperf.sh — TCP throughput between the experiment hosts through a 6-hop path, plain and
# inside a host-to-host IPsec tunnel (strongSwan, PSK, aes128-sha256; the ESP engine the create
# probe picks: libipsec where the kernel has no ESP). iperf3, one stream, SECONDS each.
#
#   tests/bench/ipsec-iperf.sh [SECONDS]      (default 10; needs the release build and images)
#
# Both paths are deleted on exit, whatever the outcome.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SECONDS_EACH="${1:-10}"
BIN=target/release/vnet-te
PLAIN=bench-plain6
TUNNEL=bench-ipsec6
SPEC="$(mktemp /tmp/bench-ipsec.XXXXXX.yaml)"
cleanup() {
    "$BIN" path delete "$PLAIN" >/dev/null 2>&1 || true
    "$BIN" path delete "$TUNNEL" >/dev/null 2>&1 || true
    rm -f "$SPEC"
}
trap cleanup EXIT

# Mbit/s received by dst from src in path $1.
iperf() {
    local path="$1" dst
    dst="$("$BIN" path show "$path" --output json | python3 -c 'import json,sys; p=json.load(sys.stdin)["plan"]; print(p["hosts"][1]["address"])')"
    docker exec "vte-$path-dst" iperf3 -s -1 -D >/dev/null
    local i=0
    until docker exec "vte-$path-dst" sh -c 'ss -ltn | grep -q ":5201 "'; do
        i=$((i + 1)); ((i < 50)) || { echo "iperf3 server did not listen" >&2; exit 1; }
        sleep 0.1
    done
    docker exec "vte-$path-src" iperf3 -c "$dst" -t "$SECONDS_EACH" -J |
        python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))'
}

sed "s/^name: .*/name: $TUNNEL/" paths/ipsec-host.yaml >"$SPEC"
"$BIN" path create --hops 6 --name "$PLAIN" --replace >/dev/null 2>&1 || { echo "creating $PLAIN failed" >&2; exit 1; }
"$BIN" path create -f "$SPEC" --replace --output json >/tmp/bench-ipsec-report.json 2>/dev/null || { echo "creating $TUNNEL failed" >&2; exit 1; }
ENGINE="$(python3 -c 'import json; r=json.load(open("/tmp/bench-ipsec-report.json")); print([p["detail"] for p in r["probes"] if p["kind"]=="ipsec-sa"][0])')"
rm -f /tmp/bench-ipsec-report.json
P="$(iperf "$PLAIN")"
T="$(iperf "$TUNNEL")"
echo "6 hops, iperf3 TCP ${SECONDS_EACH} s, one stream: plain ${P} Mbit/s; host-to-host IPsec ${T} Mbit/s ($ENGINE)"
