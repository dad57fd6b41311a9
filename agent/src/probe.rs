//! Reading traceroute output (`traceroute -n -q 1 -w 1 ...`, Debian's traceroute) and
//! interface counters (`ip -s -j addr show`, iproute2's JSON).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// One address per TTL, `None` where no reply came (`*`). With several probes per TTL
/// (`-q 3`), the first that answered.
pub fn parse_traceroute(text: &str) -> Vec<Option<Ipv4Addr>> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let ttl = words.next()?;
            ttl.parse::<u32>().ok()?;
            Some(words.find_map(|w| w.parse().ok()))
        })
        .collect()
}

/// `parse_traceroute` for `traceroute -6`: one IPv6 address per hop, `None` for `*`.
pub fn parse_traceroute6(text: &str) -> Vec<Option<std::net::Ipv6Addr>> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.next()?.parse::<u32>().ok()?;
            Some(words.find_map(|w| w.parse().ok()))
        })
        .collect()
}

/// The fastest reply's round-trip time at each TTL in milliseconds, `None` where none came
/// (`traceroute -n`: ` 3  10.199.0.11  10.412 ms  10.398 ms  *`).
pub fn parse_traceroute_rtts(text: &str) -> Vec<Option<f64>> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.first()?.parse::<u32>().ok()?;
            let times = words.windows(2).filter(|w| w[1] == "ms").filter_map(|w| w[0].parse::<f64>().ok());
            Some(times.fold(None, |min: Option<f64>, t| Some(min.map_or(t, |m| m.min(t)))))
        })
        .collect()
}

/// Each reply's round-trip time in microseconds, in the order the replies came (iputils
/// ping: `64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.052 ms`).
pub fn parse_ping_times(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.split_once(" time=")?.1;
            let ms: f64 = rest.strip_suffix(" ms").unwrap_or(rest).split_whitespace().next()?.parse().ok()?;
            (ms.is_finite() && ms >= 0.0).then(|| (ms * 1000.0).round() as u64)
        })
        .collect()
}

/// What a ping run reports at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PingSummary {
    pub transmitted: u32,
    pub received: u32,
    /// min / avg / max round-trip time in milliseconds (absent without a reply).
    pub rtt_ms: Option<(f64, f64, f64)>,
}

/// `Node::ping_each`'s output: `<address> ok` or `<address> no-reply` per line, by address.
/// Lines that are neither are ignored (a target without a line was not pinged).
pub fn parse_ping_each(text: &str) -> std::collections::BTreeMap<std::net::Ipv4Addr, bool> {
    text.lines()
        .filter_map(|l| {
            let (addr, verdict) = l.trim().split_once(' ')?;
            let ok = match verdict {
                "ok" => true,
                "no-reply" => false,
                _ => return None,
            };
            Some((addr.parse().ok()?, ok))
        })
        .collect()
}

/// Reads iputils ping's summary lines (`3 packets transmitted, 3 received, …` and
/// `rtt min/avg/max/mdev = 0.045/0.049/0.053/0.004 ms`); None when they are missing.
pub fn parse_ping(text: &str) -> Option<PingSummary> {
    let mut out: Option<PingSummary> = None;
    for line in text.lines() {
        if let Some((tx, rest)) = line.split_once(" packets transmitted, ") {
            let received = rest.split_whitespace().next()?.parse().ok()?;
            out = Some(PingSummary { transmitted: tx.trim().parse().ok()?, received, rtt_ms: None });
        } else if let Some(values) = line.strip_prefix("rtt min/avg/max/mdev = ") {
            let v: Vec<f64> = values.trim_end_matches(" ms").split('/').filter_map(|x| x.parse().ok()).collect();
            if let (Some(s), [min, avg, max, ..]) = (out.as_mut(), v.as_slice()) {
                s.rtt_ms = Some((*min, *avg, *max));
            }
        }
    }
    out
}

/// The receiver's throughput in bits per second from `iperf3 -J`'s report.
pub fn parse_iperf(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["end"]["sum_received"]["bits_per_second"].as_f64()
}

/// Byte and packet counters of one interface, with its IPv4 addresses (interfaces are found
/// by the address the plan gave them: their names follow attach order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceCounters {
    pub name: String,
    pub addresses: Vec<Ipv4Addr>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// Reads `ip -s -j addr show`. Interfaces without statistics count as zero.
pub fn parse_interface_counters(text: &str) -> Result<Vec<InterfaceCounters>, crate::frr::ParseError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| crate::frr::ParseError {
        command: "ip -s -j addr show",
        reason: e.to_string(),
        head: text.chars().take(120).collect(),
    })?;
    let list = v.as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .map(|i| {
            let stat = |dir: &str, what: &str| {
                i.get("stats64").and_then(|s| s.get(dir)).and_then(|d| d.get(what)).and_then(|n| n.as_u64()).unwrap_or(0)
            };
            InterfaceCounters {
                name: i.get("ifname").and_then(|n| n.as_str()).unwrap_or_default().to_string(),
                addresses: i
                    .get("addr_info")
                    .and_then(|a| a.as_array())
                    .map(|a| {
                        a.iter()
                            .filter(|x| x.get("family").and_then(|f| f.as_str()) == Some("inet"))
                            .filter_map(|x| x.get("local").and_then(|l| l.as_str()).and_then(|l| l.parse().ok()))
                            .collect()
                    })
                    .unwrap_or_default(),
                rx_bytes: stat("rx", "bytes"),
                tx_bytes: stat("tx", "bytes"),
                rx_packets: stat("rx", "packets"),
                tx_packets: stat("tx", "packets"),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_replys_round_trip_in_microseconds() {
        let out = "PING 10.196.255.3 (10.196.255.3) 56(84) bytes of data.\n\
                   64 bytes from 10.196.255.3: icmp_seq=1 ttl=64 time=0.052 ms\n\
                   64 bytes from 10.196.255.3: icmp_seq=2 ttl=64 time=1.31 ms\n\
                   From 10.196.255.2 icmp_seq=3 Destination Host Unreachable\n\
                   64 bytes from 10.196.255.3: icmp_seq=4 ttl=64 time=230 ms\n\n\
                   --- 10.196.255.3 ping statistics ---\n\
                   4 packets transmitted, 3 received, 25% packet loss, time 31ms\n\
                   rtt min/avg/max/mdev = 0.052/77.120/230.000/108.100 ms\n";
        assert_eq!(parse_ping_times(out), vec![52, 1310, 230_000]);
        assert!(parse_ping_times("ping: connect: Network is unreachable\n").is_empty());
    }

    #[test]
    fn ping_each_lines_by_address() {
        let seen = parse_ping_each("10.255.0.2 ok\n10.255.0.12 no-reply\nsh: 1: noise\n 10.255.0.3 ok \n");
        assert_eq!(seen.len(), 3);
        assert!(seen[&"10.255.0.2".parse::<std::net::Ipv4Addr>().unwrap()]);
        assert!(!seen[&"10.255.0.12".parse::<std::net::Ipv4Addr>().unwrap()]);
        assert!(parse_ping_each("").is_empty());
    }

    #[test]
    fn reads_hops_and_gaps() {
        let out = "traceroute to 10.210.1.10 (10.210.1.10), 30 hops max, 60 byte packets\n 1  10.210.0.2  0.071 ms\n 2  *\n 3  10.210.1.10  0.120 ms\n";
        assert_eq!(
            parse_traceroute(out),
            vec![Some("10.210.0.2".parse().unwrap()), None, Some("10.210.1.10".parse().unwrap())]
        );
    }

    #[test]
    fn reads_each_hops_round_trip_time() {
        let out = "traceroute to 10.210.1.10 (10.210.1.10), 30 hops max, 60 byte packets\n 1  10.210.0.2  0.071 ms\n 2  *\n 3  10.210.1.10  10.412 ms\n";
        assert_eq!(parse_traceroute_rtts(out), vec![Some(0.071), None, Some(10.412)]);
        let three = " 1  10.210.0.2  0.071 ms  0.050 ms  *\n 2  *  10.199.0.3  5.2 ms  5.1 ms\n 3  * * *\n";
        assert_eq!(parse_traceroute_rtts(three), vec![Some(0.05), Some(5.1), None]);
        assert_eq!(parse_traceroute(three), vec![Some("10.210.0.2".parse().unwrap()), Some("10.199.0.3".parse().unwrap()), None]);
    }

    #[test]
    fn reads_iperf3_throughput() {
        let out = r#"{"start":{},"intervals":[],"end":{"sum_sent":{"bits_per_second":9.9e6},"sum_received":{"bits_per_second":9.61e6}}}"#;
        assert_eq!(parse_iperf(out), Some(9.61e6));
        assert_eq!(parse_iperf(r#"{"error":"unable to connect to server"}"#), None);
        assert_eq!(parse_iperf("iperf3: error"), None);
    }

    #[test]
    fn reads_pings_summary() {
        let out = "PING 10.210.1.10 (10.210.1.10) 56(84) bytes of data.\n64 bytes from 10.210.1.10: icmp_seq=1 ttl=62 time=230 ms\n\n--- 10.210.1.10 ping statistics ---\n10 packets transmitted, 9 received, 10% packet loss, time 202ms\nrtt min/avg/max/mdev = 229.5/230.1/231.9/0.4 ms\n";
        let s = parse_ping(out).unwrap();
        assert_eq!((s.transmitted, s.received), (10, 9));
        assert_eq!(s.rtt_ms, Some((229.5, 230.1, 231.9)));
        let none = "--- x ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2ms\n";
        assert_eq!(parse_ping(none).unwrap().rtt_ms, None);
        assert_eq!(parse_ping("connect: Network is unreachable"), None);
    }

    #[test]
    fn reads_interface_counters_from_real_iproute2_output() {
        let c = parse_interface_counters(include_str!("../fixtures/frr-8.4/ip-s-j-addr-show.json")).unwrap();
        let lo = c.iter().find(|i| i.name == "lo").unwrap();
        assert!(lo.addresses.contains(&"10.255.0.2".parse().unwrap()));
        let link = c.iter().find(|i| i.addresses.contains(&"10.199.0.3".parse().unwrap())).unwrap();
        assert!(link.rx_bytes > 0 && link.tx_packets > 0);
        assert!(parse_interface_counters("Object \"addr\" is unknown").is_err());
    }
}
