#!/usr/bin/env bash
# Benchmark of the delay line (vnet-te-delay), in two network namespaces of its own joined by
# a veth pair; the line runs in b and holds what arrives there (PREROUTING -i), so only a → b
# is delayed and a ping's RTT is the one-way delay plus the bare veth.
#   1. configured vs measured delay at 1 ms, 10 ms, 100 ms and 1 s, two ways:
#      - ping a → b: RTT − delay, p50 and p99 (ping prints 3 significant digits: 0.1 ms steps
#        at 10 ms, 1 ms steps from 100 ms)
#      - precise ping: ICMP echo a → b stamped at send and at the reply's arrival in the
#        kernel (SO_TIMESTAMPNS): RTT − delay, p50 and p99, to the µs
#      the bare veth is measured the same ways first, for reference
#   2. iperf3 TCP a → b: plain veth, through the delay line at 0 ms and at 10 ms, with the
#      default TCP buffers and with 64 MiB ones (at 10 ms the default window caps the flow)
#   3. the line's CPU (utime + stime from /proc) idle and at 10,000 packets/s (UDP, 100-byte
#      payloads, 10 ms), and its memory (VmRSS, VmHWM) holding 100 Mbit/s × 1.28 s
#   usage: tests/bench/delay-line.sh [IPERF_SECONDS=5] [ROUNDS=3]
#   SKIP_10S=1 leaves out the 10 s delay (about 25 s of pings).
#   CHRT=1 runs the delay line SCHED_FIFO (chrt -f 10): tighter tails on a busy machine.
# Needs root, ping and iperf3 (apt-get install iputils-ping iperf3).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-5}
ROUNDS=${2:-3}
for tool in ping iperf3 iptables; do
    command -v "$tool" >/dev/null || { echo "delay-line.sh: $tool not found (apt-get install iputils-ping iperf3 iptables)" >&2; exit 1; }
done
cargo build --release -q -p vnet-te-agent --bin vnet-te-delay
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/vnet-te-delay

A=vtedl-a-bench$$
B=vtedl-b-bench$$
ctl=$(mktemp -u /tmp/vtedl-bench.XXXXXX.sock)
probe=$(mktemp /tmp/vtedl-probe.XXXXXX.py)
line_pid=""
cleanup() {
    [[ -n "$line_pid" ]] && kill "$line_pid" 2>/dev/null && wait "$line_pid" 2>/dev/null
    # Whatever still runs in the two namespaces was started here (iperf3 server, probes).
    for ns in "$A" "$B"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    done
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -f "$ctl" "$probe"
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

# Precise ping: ICMP echo from a over a raw socket, each request carrying its send time, each
# reply stamped by the kernel on arrival (SO_TIMESTAMPNS), so neither end's scheduling counts
# (b's kernel answers in the verdict's own context). `probe DELAY_MS COUNT INTERVAL DST`.
cat >"$probe" <<'EOF'
import os, socket, struct, sys, threading, time
delay_ms, count, interval, dst = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)  # 35: Linux, Python < 3.12
ident = os.getpid() & 0xFFFF
def checksum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xFFFF)
    return ~(t + (t >> 16)) & 0xFFFF
def send():
    start = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, start + i * interval - time.monotonic()))
        body = struct.pack("!Q", time.time_ns())
        head = struct.pack("!BBHHH", 8, 0, 0, ident, i)
        s.sendto(struct.pack("!BBHHH", 8, 0, checksum(head + body), ident, i) + body, (dst, 0))
threading.Thread(target=send, daemon=True).start()
s.settimeout(delay_ms / 1000 + 3)
e = []
try:
    while len(e) < count:
        data, anc, _, _ = s.recvmsg(256, 64)
        ihl = (data[0] & 0x0F) * 4
        kind, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if kind != 0 or rid != ident:
            continue
        sec, nsec = struct.unpack("qq", anc[0][2][:16])
        sent = struct.unpack("!Q", data[ihl + 8:ihl + 16])[0]
        e.append(((sec * 10**9 + nsec) - sent) / 1e6 - delay_ms)
except socket.timeout:
    pass
e.sort()
if not e:
    sys.exit("no replies")
q = lambda p: e[min(len(e) - 1, int(p * len(e)))]
print("%d replies  p50 %+.3f ms  p99 %+.3f ms  min %+.3f  max %+.3f ms" % (len(e), q(0.5), q(0.99), e[0], e[-1]))
EOF
precise_error() { ip netns exec "$A" python3 "$probe" "$@" "$dst"; }

iperf() {
    ip netns exec "$B" iperf3 -s -1 -B "$dst" >/dev/null 2>&1 &
    local server=$!
    local deadline=$((SECONDS + 5))
    until ip netns exec "$B" ss -ltn | grep -q ":5201 "; do
        ((SECONDS < deadline)) || { echo "iperf3 server did not start" >&2; exit 1; }
        sleep 0.05
    done
    ip netns exec "$A" iperf3 -c "$dst" -t "$SECONDS_PER_RUN" -J |
        python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
    wait "$server" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bare veth   ping:    $(rtt_error 0 200 0.01)"
echo "bare veth   precise: $(precise_error 0 500 0.01)"

chrt=()
[[ "${CHRT:-0}" == 1 ]] && chrt=(chrt -f 10)
ip netns exec "$B" "${chrt[@]}" "$bin" run --queue 0 --control "$ctl" --queue-max-len 65536 2>/dev/null &
line_pid=$!
deadline=$((SECONDS + 5))
until "$bin" status --control "$ctl" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "vnet-te-delay did not start" >&2; exit 1; }
    sleep 0.05
done
rule_add

echo "== through the delay line (error = measured − configured delay; includes the bare veth)"
for spec in "1ms 1 500 0.01" "10ms 10 500 0.01" "100ms 100 300 0.01" "1s 1000 60 0.1" "10s 10000 12 1"; do
    read -r delay ms count interval <<<"$spec"
    [[ "${SKIP_10S:-0}" == 1 && "$delay" == 10s ]] && continue
    "$bin" set --control "$ctl" --delay "$delay" >/dev/null
    printf '%-6s ping:    %s\n' "$delay" "$(rtt_error "$ms" "$count" "$interval")"
    printf '%-6s precise: %s\n' "$delay" "$(precise_error "$ms" "$count" "$interval")"
done

# Throughput swings with the machine's other load: each case runs ROUNDS times, alternating,
# and the median is reported.
echo "== iperf3 TCP a → b, ${SECONDS_PER_RUN} s each, ${ROUNDS} rounds alternating (median; all runs)"
bufs() { for ns in "$A" "$B"; do ip netns exec "$ns" sysctl -qw net.ipv4.tcp_rmem="$1" net.ipv4.tcp_wmem="$2"; done; }
default_rmem=$(ip netns exec "$B" sysctl -n net.ipv4.tcp_rmem)
default_wmem=$(ip netns exec "$A" sysctl -n net.ipv4.tcp_wmem)
declare -A runs
before=$("$bin" status --control "$ctl")
for round in $(seq 1 "$ROUNDS"); do
    rule_del
    runs[plain]+="$(iperf) "
    rule_add
    "$bin" set --control "$ctl" --delay 0 >/dev/null
    runs[d0]+="$(iperf) "
    "$bin" set --control "$ctl" --delay 10ms >/dev/null
    runs[d10]+="$(iperf) "
    bufs "4096 131072 67108864" "4096 16384 67108864"
    runs[d10big]+="$(iperf) "
    bufs "$default_rmem" "$default_wmem"
done
final=$("$bin" status --control "$ctl")
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f Gbit/s", v[int((NR + 1) / 2)] }'; }
for case in "plain:plain veth" "d0:delay line, 0 ms" "d10:delay line, 10 ms" "d10big:delay line, 10 ms, 64 MiB TCP buffers"; do
    printf '%-44s %s  (%s)\n' "${case#*:}:" "$(median <<<"${runs[${case%%:*}]}")" "${runs[${case%%:*}]% }"
done
python3 - "$before" "$final" <<'EOF'
import json, sys
b, f = (json.loads(s)["status"]["counters"] for s in sys.argv[1:])
print("delay line over the iperf3 runs: %d packets (GSO: up to 64 KiB each), max held %d, overruns %d, verdict errors %d"
      % (f["queued"] - b["queued"], f["max_queue_len"], f["overruns"], f["verdict_errors"]))
EOF

# CPU seconds (user + system) the line has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$line_pid/stat"; }
mem() { awk '/^VmRSS|^VmHWM/ { printf "%s %.1f MiB  ", $1, $2 / 1024 }' "/proc/$line_pid/status"; }
udp() { # RATE LEN SECONDS: iperf3 UDP a → b; prints "packets lost" as the server saw them
    ip netns exec "$B" iperf3 -s -1 -B "$dst" >/dev/null 2>&1 &
    local server=$! deadline=$((SECONDS + 5))
    until ip netns exec "$B" ss -ltn | grep -q ":5201 "; do
        ((SECONDS < deadline)) || { echo "iperf3 server did not start" >&2; exit 1; }
        sleep 0.05
    done
    ip netns exec "$A" iperf3 -c "$dst" -u -b "$1" -l "$2" -t "$3" -J |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(s["packets"], s["lost_packets"])'
    wait "$server" 2>/dev/null || true
}
echo "== the line's own cost"
"$bin" set --control "$ctl" --delay 10ms >/dev/null
c0=$(cpu_secs); sleep 10; c1=$(cpu_secs)
echo "idle, 10 s:                    CPU $(python3 -c "print('%.2f %%' % (($c1 - $c0) / 10 * 100))")  $(mem)"
c0=$(cpu_secs)
read -r pkts lost < <(udp 8M 100 10)
c1=$(cpu_secs)
echo "10,000 packets/s, 10 ms, 10 s: CPU $(python3 -c "print('%.1f %% of one core' % (($c1 - $c0) / 10 * 100))")  ($pkts packets, $lost lost)  $(mem)"
"$bin" set --control "$ctl" --delay 1.28s >/dev/null
b=$("$bin" status --control "$ctl")
read -r pkts lost < <(udp 100M 1400 5)
f=$("$bin" status --control "$ctl")
echo "100 Mbit/s at 1.28 s, 5 s:     $(mem) ($pkts packets, $lost lost)"
python3 - "$b" "$f" <<'EOF'
import json, sys
b, f = (json.loads(s)["status"]["counters"] for s in sys.argv[1:])
print("  held at most %d packets (100 Mbit/s × 1.28 s of 1400-byte payloads is about 11,400), overruns %d"
      % (f["max_queue_len"], f["overruns"] - b["overruns"]))
EOF
