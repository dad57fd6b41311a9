#!/usr/bin/env bash
# Benchmark of the delay line (vnet-te-delay), in two network namespaces of its own joined by
# a veth pair; the line runs in b and holds what arrives there (PREROUTING -i), so only a → b
# is delayed and a ping's RTT is the one-way delay plus the bare veth.
#   1. configured vs measured RTT at 1 ms, 10 ms, 100 ms and 1 s: p50 and p99 of RTT − delay
#      (ping from a to b; the bare veth's own RTT is printed first for reference)
#   2. iperf3 TCP a → b: plain veth, through the delay line at 0 ms and at 10 ms
#   usage: tests/bench/delay-line.sh [IPERF_SECONDS=5]
# Needs root, ping and iperf3 (apt-get install iputils-ping iperf3).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-5}
for tool in ping iperf3 iptables; do
    command -v "$tool" >/dev/null || { echo "delay-line.sh: $tool not found (apt-get install iputils-ping iperf3 iptables)" >&2; exit 1; }
done
cargo build --release -q -p vnet-te-agent --bin vnet-te-delay
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/vnet-te-delay

A=vtedl-a-bench$$
B=vtedl-b-bench$$
ctl=$(mktemp -u /tmp/vtedl-bench.XXXXXX.sock)
line_pid=""
iperf_pid=""
cleanup() {
    [[ -n "$iperf_pid" ]] && kill "$iperf_pid" 2>/dev/null && wait "$iperf_pid" 2>/dev/null
    [[ -n "$line_pid" ]] && kill "$line_pid" 2>/dev/null && wait "$line_pid" 2>/dev/null
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -f "$ctl"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
for ns in "$A" "$B"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip -n "$A" link add vtedl-a type veth peer name vtedl-b netns "$B"
ip -n "$A" addr add 10.254.1.1/30 dev vtedl-a
ip -n "$B" addr add 10.254.1.2/30 dev vtedl-b
ip -n "$A" link set vtedl-a up
ip -n "$B" link set vtedl-b up
dst=10.254.1.2
rule=(-w -t mangle PREROUTING -i vtedl-b -m comment --comment "vnet-te delay" -j NFQUEUE --queue-num 0)
rule_add() { ip netns exec "$B" iptables "${rule[@]:0:3}" -A "${rule[@]:3}"; }
rule_del() { ip netns exec "$B" iptables "${rule[@]:0:3}" -D "${rule[@]:3}"; }

# RTT − delay statistics over COUNT pings at INTERVAL: "p50 p99 max" in ms.
rtt_error() {
    local delay_ms=$1 count=$2 interval=$3
    ip netns exec "$A" ping -n -q -c 1 -W 2 "$dst" >/dev/null # ARP, not measured
    ip netns exec "$A" ping -n -c "$count" -i "$interval" -W 5 "$dst" | python3 -c '
import sys
d = float(sys.argv[1])
e = sorted(float(l.split("time=")[1].split()[0]) - d for l in sys.stdin if "time=" in l)
if not e:
    sys.exit("no replies")
q = lambda p: e[min(len(e) - 1, int(p * len(e)))]
print("%d replies  p50 %+.3f ms  p99 %+.3f ms  max %+.3f ms" % (len(e), q(0.5), q(0.99), e[-1]))' "$delay_ms"
}

iperf() {
    ip netns exec "$B" iperf3 -s -1 -B "$dst" >/dev/null 2>&1 &
    iperf_pid=$!
    local deadline=$((SECONDS + 5))
    until ip netns exec "$B" ss -ltn | grep -q ":5201 "; do
        ((SECONDS < deadline)) || { echo "iperf3 server did not start" >&2; exit 1; }
        sleep 0.05
    done
    ip netns exec "$A" iperf3 -c "$dst" -t "$SECONDS_PER_RUN" -J |
        python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print("%.2f Gbit/s (retransmits %d)" % (e["sum_received"]["bits_per_second"]/1e9, e["sum_sent"].get("retransmits", 0)))'
    wait "$iperf_pid" 2>/dev/null || true
    iperf_pid=""
}

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bare veth RTT: $(rtt_error 0 200 0.01)"

ip netns exec "$B" "$bin" run --queue 0 --control "$ctl" --queue-max-len 65536 2>/dev/null &
line_pid=$!
deadline=$((SECONDS + 5))
until "$bin" status --control "$ctl" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "vnet-te-delay did not start" >&2; exit 1; }
    sleep 0.05
done
rule_add

echo "== RTT through the delay line (error = RTT − configured delay; includes the bare veth RTT)"
for spec in "1ms 1 500 0.01" "10ms 10 500 0.01" "100ms 100 300 0.01" "1s 1000 60 0.1"; do
    read -r delay ms count interval <<<"$spec"
    "$bin" set --control "$ctl" --delay "$delay" >/dev/null
    printf '%-6s %s\n' "$delay" "$(rtt_error "$ms" "$count" "$interval")"
done

echo "== iperf3 TCP a → b, ${SECONDS_PER_RUN} s each"
rule_del
echo "plain veth:            $(iperf)"
rule_add
"$bin" set --control "$ctl" --delay 0 >/dev/null
before=$("$bin" status --control "$ctl")
echo "delay line, 0 ms:      $(iperf)"
after=$("$bin" status --control "$ctl")
"$bin" set --control "$ctl" --delay 10ms >/dev/null
echo "delay line, 10 ms:     $(iperf)"
final=$("$bin" status --control "$ctl")
python3 - "$before" "$after" "$final" <<'EOF'
import json, sys
b, a, f = (json.loads(s)["status"]["counters"] for s in sys.argv[1:])
print("packets through the line at 0 ms: %d; at 10 ms: %d (max held %d, overruns %d, verdict errors %d)"
      % (a["queued"] - b["queued"], f["queued"] - a["queued"], f["max_queue_len"], f["overruns"], f["verdict_errors"]))
EOF
