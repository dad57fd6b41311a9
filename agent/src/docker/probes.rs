//! Probes run in the host containers (traceroute, ping, interface counters), and pings
//! between nodes.

use std::net::Ipv4Addr;

use crate::node::{NodeError, NodeResult, Probe, MAX_UNDERLAY_PINGS};
use crate::probe::InterfaceCounters;

use super::LocalNode;

/// Seconds between echo requests (ping runs as root in the host containers, where iputils
/// allows intervals under 0.2 s): three replies take 0.05 s instead of 0.2 s at 0.1 s, and a
/// path that has just come up is seen within 0.02 s.
const PING_INTERVAL: &str = "0.02";

/// `wait_ms` as seconds for traceroute's `-w` and ping's `-W`, which take fractions: `1`,
/// `2.5`, `0.001` (at least a millisecond).
pub(super) fn wait_secs(wait_ms: u32) -> String {
    let ms = wait_ms.max(1);
    let (secs, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{frac:03}").trim_end_matches('0').to_string()
    }
}

pub(super) async fn traceroute(node: &LocalNode, host: &str, target: Ipv4Addr, max_hops: u32, wait_ms: u32, one_at_a_time: bool) -> NodeResult<Probe> {
    let t = target.to_string();
    let m = max_hops.to_string();
    let w = wait_secs(wait_ms);
    let mut cmd = vec!["traceroute", "-n", "-q", "1", "-w", &w, "-m", &m];
    if one_at_a_time {
        // Every probe in flight at once but leaving 1 ms apart: probes sent in one burst queue
        // behind each other in the delay lines and come back late, while strictly one probe
        // per round trip makes a long path's traceroute take the sum of all its hops' RTTs.
        cmd.extend(["-N", &m, "-z", "0.001"]);
    }
    cmd.push(&t);
    let (code, output) = node.exec(host, &cmd, &format!("traceroute from {host} to {t}")).await?;
    Ok(Probe { success: code == 0, output })
}

pub(super) async fn ping(node: &LocalNode, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32) -> NodeResult<Probe> {
    let t = target.to_string();
    let s = size.map(|s| s.to_string());
    let w = wait_secs(wait_ms);
    let mut cmd = vec!["ping", "-n", "-c", "3", "-i", PING_INTERVAL, "-W", &w];
    if let Some(s) = &s {
        cmd.extend(["-s", s.as_str()]);
    }
    if dont_fragment {
        cmd.extend(["-M", "do"]);
    }
    cmd.push(&t);
    let (code, output) = node.exec(host, &cmd, &format!("ping from {host} to {t}")).await?;
    Ok(Probe { success: code == 0, output })
}

pub(super) async fn traceroute6(node: &LocalNode, host: &str, target: std::net::Ipv6Addr, max_hops: u32, wait_ms: u32) -> NodeResult<Probe> {
    let (t, m, w) = (target.to_string(), max_hops.to_string(), wait_secs(wait_ms));
    let cmd = ["traceroute", "-6", "-n", "-q", "1", "-w", &w, "-m", &m, &t];
    let (code, output) = node.exec(host, &cmd, &format!("traceroute6 from {host} to {t}")).await?;
    Ok(Probe { success: code == 0, output })
}

pub(super) async fn ping6(node: &LocalNode, host: &str, target: std::net::Ipv6Addr, wait_ms: u32) -> NodeResult<Probe> {
    let (t, w) = (target.to_string(), wait_secs(wait_ms));
    let cmd = ["ping", "-6", "-n", "-c", "3", "-i", PING_INTERVAL, "-W", &w, &t];
    let (code, output) = node.exec(host, &cmd, &format!("ping6 from {host} to {t}")).await?;
    Ok(Probe { success: code == 0, output })
}

/// Seconds between the echoes of `underlay_rtts`: iputils lets any user go down to 2 ms.
const UNDERLAY_INTERVAL: &str = "0.01";

/// Pings another node from this one's own namespace (no container): what a VXLAN link's
/// packets cross between the two nodes.
pub(super) async fn underlay_rtts(target: Ipv4Addr, count: u32) -> NodeResult<Vec<u64>> {
    let doing = || format!("pinging {target} from the node");
    if !(1..=MAX_UNDERLAY_PINGS).contains(&count) {
        return Err(NodeError::Failed { doing: doing(), message: format!("{count} echoes: between 1 and {MAX_UNDERLAY_PINGS}") });
    }
    // The whole run ends a second after the last echo is due, replies or not.
    let deadline = (count / 100 + 2).to_string();
    let out = tokio::process::Command::new("ping")
        .args(["-n", "-c", &count.to_string(), "-i", UNDERLAY_INTERVAL, "-W", "1", "-w", &deadline, &target.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| NodeError::Failed { doing: doing(), message: format!("running ping (iputils-ping): {e}") })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rtts = crate::probe::parse_ping_times(&text);
    if rtts.is_empty() && !out.status.success() && out.status.code() != Some(1) {
        // Exit 1 is "no reply"; anything else is ping itself failing.
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(NodeError::Failed { doing: doing(), message: format!("ping failed ({}): {}", out.status, err.trim()) });
    }
    Ok(rtts)
}

pub(super) async fn iperf_server(node: &LocalNode, host: &str) -> NodeResult<()> {
    // -1: one test, then it exits; -D: in the background, so the exec returns.
    let (code, output) = node.exec(host, &["iperf3", "-s", "-1", "-D"], &format!("starting iperf3 in {host}")).await?;
    if code != 0 {
        return Err(NodeError::Failed { doing: format!("starting iperf3 in {host}"), message: output });
    }
    Ok(())
}

pub(super) async fn iperf_client(node: &LocalNode, host: &str, target: Ipv4Addr, seconds: u32) -> NodeResult<Probe> {
    let t = target.to_string();
    let s = seconds.clamp(1, 60).to_string();
    let cmd = ["iperf3", "-c", &t, "-t", &s, "-J", "--connect-timeout", "5000"];
    let (code, output) = node.exec(host, &cmd, &format!("iperf3 from {host} to {t}")).await?;
    Ok(Probe { success: code == 0, output })
}

/// Pings each target in a shell loop, `PING_EACH_AT_ONCE` at a time: one exec for all of
/// them (an exec costs more than the pings). Targets are addresses, so safe as arguments.
const PING_EACH_SCRIPT: &str = r#"w=$1; k=$2; shift 2; n=0
for t in "$@"; do
  (if ping -n -q -c 3 -i 0.02 -W "$w" "$t" >/dev/null 2>&1; then echo "$t ok"; else echo "$t no-reply"; fi) &
  n=$((n + 1))
  if [ $((n % k)) -eq 0 ]; then wait; fi
done
wait"#;

pub(super) async fn ping_each(node: &LocalNode, host: &str, targets: &[Ipv4Addr], wait_ms: u32) -> NodeResult<Probe> {
    let doing = format!("pinging {} targets from {host}", targets.len());
    if targets.len() > crate::node::PING_EACH_MAX {
        return Err(NodeError::Refused { doing, message: format!("at most {} targets", crate::node::PING_EACH_MAX) });
    }
    let w = wait_secs(wait_ms);
    let k = crate::node::PING_EACH_AT_ONCE.to_string();
    let list: Vec<String> = targets.iter().map(Ipv4Addr::to_string).collect();
    let mut cmd = vec!["sh", "-c", PING_EACH_SCRIPT, "sh", &w, &k];
    cmd.extend(list.iter().map(String::as_str));
    let (_, output) = node.exec(host, &cmd, &doing).await?;
    let seen = crate::probe::parse_ping_each(&output);
    let success = targets.iter().all(|t| seen.get(t) == Some(&true));
    Ok(Probe { success, output })
}

pub(super) async fn ping_burst(node: &LocalNode, host: &str, target: std::net::IpAddr, count: u32, wait_ms: u32) -> NodeResult<Probe> {
    let t = target.to_string();
    let c = count.clamp(1, 1000).to_string();
    let w = wait_secs(wait_ms);
    // -W: a reply later than this counts as lost; 0.01 s apart, so the burst takes count/100 s.
    let family = if target.is_ipv4() { "-4" } else { "-6" };
    let cmd = ["ping", family, "-n", "-q", "-c", &c, "-i", "0.01", "-W", &w, &t];
    let (code, output) = node.exec(host, &cmd, &format!("pinging {t} from {host}")).await?;
    Ok(Probe { success: code == 0, output })
}

pub(super) async fn ping_until(node: &LocalNode, host: &str, target: Ipv4Addr, within_secs: u32) -> NodeResult<Probe> {
    let t = target.to_string();
    // Up to an hour: across deep-space delays the first reply takes minutes.
    let w = within_secs.clamp(1, 3600).to_string();
    // -c 1 with a deadline: ping keeps sending (every PING_INTERVAL) until the first reply.
    let cmd = ["ping", "-n", "-c", "1", "-i", PING_INTERVAL, "-W", "1", "-w", &w, &t];
    let (code, output) = node.exec(host, &cmd, &format!("ping from {host} to {t}")).await?;
    Ok(Probe { success: code == 0, output })
}

pub(super) async fn interface_counters(node: &LocalNode, container: &str) -> NodeResult<Vec<InterfaceCounters>> {
    let (_, out) = node.exec(container, &["ip", "-s", "-j", "addr", "show"], &format!("reading interface counters of {container}")).await?;
    Ok(crate::probe::parse_interface_counters(&out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_given_in_seconds_with_fractions() {
        assert_eq!(wait_secs(1000), "1");
        assert_eq!(wait_secs(2500), "2.5");
        assert_eq!(wait_secs(1234), "1.234");
        assert_eq!(wait_secs(50), "0.05");
        assert_eq!(wait_secs(0), "0.001");
        assert_eq!(wait_secs(u32::MAX), "4294967.295");
    }
}
