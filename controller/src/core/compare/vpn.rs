//! The IPsec evidence of a path with a `vpn:` block, judged from what the ends and transit
//! routers printed: both ends hold an established IKE SA and an installed CHILD SA; during a
//! ping burst between the hosts every transit router on the forced path counted ESP or NAT-T
//! (UDP 4500) packets (so the outer packets took the planned hops) and no plaintext ICMP
//! between the protected addresses.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use vnet_te_agent::vpn::{parse_counts, parse_sas};

use super::ProbeReport;
use crate::core::plan::vpn::VpnPlan;
use crate::core::plan::Plan;

pub const IPSEC_SA: &str = "ipsec-sa";
pub const IPSEC_BURST: &str = "ipsec-burst";
pub const IPSEC_ESP: &str = "ipsec-esp";
pub const IPSEC_PLAIN: &str = "ipsec-plaintext";

/// What observation saw: `swanctl --list-sas` per end, the burst's replies, and the counting
/// chain per transit router, by name (an error says why it could not be read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpnObserved {
    pub sas: BTreeMap<String, Result<String, String>>,
    /// Echo requests sent and replies received.
    pub burst: Option<Result<(u32, u32), String>>,
    pub counts: BTreeMap<String, Result<String, String>>,
}

fn report(kind: &str, from: &str, to: &str, target: Ipv4Addr, problem: Option<String>, detail: String) -> ProbeReport {
    ProbeReport {
        kind: kind.into(),
        from: from.into(),
        to: to.into(),
        target,
        expected: Vec::new(),
        observed: Vec::new(),
        ok: problem.is_none(),
        problem,
        detail: Some(detail),
    }
}

/// One report per end (SAs), one for the burst, two per transit router (encrypted packets
/// seen, plaintext not seen). Each problem names the tunnel.
pub fn compare(plan: &Plan, vpn: &VpnPlan, obs: &VpnObserved) -> Vec<ProbeReport> {
    let tunnel = vpn.label();
    let (Some(a), Some(b), Some((ab, bb))) = (plan.hosts.first(), plan.hosts.get(1), vpn.burst_addresses(plan)) else { return Vec::new() };
    let engine = vpn.engine.map_or("engine not probed".to_string(), |e| format!("engine {e}"));
    let mut out = Vec::new();
    for (i, end) in vpn.ends.iter().enumerate() {
        let peer = &vpn.ends[1 - i];
        let problem = match obs.sas.get(&end.name) {
            None => Some(format!("{tunnel}: the SAs of {} were not read", end.name)),
            Some(Err(e)) => Some(format!("{tunnel}: reading the SAs of {}: {e}", end.name)),
            Some(Ok(text)) => {
                let (ike, child) = parse_sas(text);
                let ike_up = ike.iter().any(|s| s.name == vpn.name && s.state == "ESTABLISHED");
                let child_up = child.iter().any(|s| s.name == vpn.name && s.state == "INSTALLED");
                match (ike_up, child_up) {
                    (true, true) => None,
                    (false, _) => {
                        let seen: Vec<String> = ike.iter().map(|s| format!("{} {}", s.name, s.state)).collect();
                        let seen = if seen.is_empty() { String::new() } else { format!(" (seen: {})", seen.join(", ")) };
                        Some(format!("{tunnel}: no IKE SA established on {}{seen}", end.name))
                    }
                    (true, false) => Some(format!("{tunnel}: IKE SA established on {} but no CHILD SA installed", end.name)),
                }
            }
        };
        out.push(report(IPSEC_SA, &end.name, &peer.name, b.address, problem, engine.clone()));
    }
    let (sent, replies, problem) = match &obs.burst {
        None => (0, 0, Some(format!("{tunnel}: no ping burst ran"))),
        Some(Err(e)) => (0, 0, Some(format!("{tunnel}: ping burst {} → {}: {e}", a.name, b.name))),
        Some(Ok((sent, got))) if *got == 0 => (*sent, 0, Some(format!("{tunnel}: no reply to {sent} pings {} → {}", a.name, b.name))),
        Some(Ok((sent, got))) => (*sent, *got, None),
    };
    out.push(report(IPSEC_BURST, &a.name, &b.name, b.address, problem, format!("{replies}/{sent} replies")));
    for r in &vpn.transit {
        let (esp, plain, problem) = match obs.counts.get(r) {
            None => (0, 0, Some(format!("{tunnel}: the counters of {r} were not read"))),
            Some(Err(e)) => (0, 0, Some(format!("{tunnel}: reading the counters of {r}: {e}"))),
            Some(Ok(text)) => {
                let c = parse_counts(text);
                let get = |k: &str| c.get(k).copied().unwrap_or(0);
                (get("esp") + get("nat-t"), get("plain-ab") + get("plain-ba"), None)
            }
        };
        let esp_problem = problem.clone().or_else(|| {
            (esp < u64::from(replies.max(1)))
                .then(|| format!("{tunnel}: {esp} ESP/NAT-T packets on {r} during {sent} pings: the outer packets did not all cross it"))
        });
        out.push(report(IPSEC_ESP, r, &b.name, b.address, esp_problem, format!("{esp} ESP/NAT-T packets")));
        let plain_problem = problem.or_else(|| (plain > 0).then(|| format!("{tunnel}: {plain} plaintext ICMP packets between {ab} and {bb} on {r}")));
        out.push(report(IPSEC_PLAIN, r, &b.name, b.address, plain_problem, format!("{plain} plaintext ICMP packets")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{plan, spec};

    const UP: &str = "vte: #1, ESTABLISHED, IKEv2, 1_i* 2_r\n  vte: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-128\n";

    fn host_plan() -> Plan {
        let s = spec::parse_yaml("t.yaml", "name: t\nrouters: [{name: r1}, {name: r2}]\nvpn: { mode: host-to-host }\n").unwrap();
        plan::build(&s, &plan::Inventory::default()).unwrap()
    }

    fn good() -> VpnObserved {
        let counts = "  200 30000 17 -- * * 0/0 0/0 udp dpt:4500 /* nat-t */\n    0 0 1 -- * * a b /* plain-ab */\n    0 0 1 -- * * b a /* plain-ba */\n";
        VpnObserved {
            sas: [("src".to_string(), Ok(UP.to_string())), ("dst".to_string(), Ok(UP.to_string()))].into(),
            burst: Some(Ok((100, 100))),
            counts: [("r1".to_string(), Ok(counts.to_string())), ("r2".to_string(), Ok(counts.to_string()))].into(),
        }
    }

    #[test]
    fn a_tunnel_with_its_evidence_passes() {
        let p = host_plan();
        let r = compare(&p, p.vpn.as_ref().unwrap(), &good());
        assert_eq!(r.len(), 2 + 1 + 2 * 2);
        assert!(r.iter().all(|p| p.ok), "{r:?}");
    }

    #[test]
    fn a_missing_sa_plaintext_and_a_router_without_esp_are_named() {
        let p = host_plan();
        let mut obs = good();
        obs.sas.insert("dst".into(), Ok("vte: #3, CONNECTING, IKEv2, 1_i 0_r\n".into()));
        obs.counts.insert("r2".into(), Ok("  0 0 17 -- * * 0/0 0/0 /* nat-t */\n  100 8400 1 -- * * a b /* plain-ab */\n".into()));
        let r = compare(&p, p.vpn.as_ref().unwrap(), &obs);
        let problems: Vec<&str> = r.iter().filter_map(|p| p.problem.as_deref()).collect();
        assert_eq!(
            problems,
            [
                "tunnel src<->dst (host-to-host): no IKE SA established on dst (seen: vte CONNECTING)",
                "tunnel src<->dst (host-to-host): 0 ESP/NAT-T packets on r2 during 100 pings: the outer packets did not all cross it",
                "tunnel src<->dst (host-to-host): 100 plaintext ICMP packets between 10.210.0.10 and 10.210.1.10 on r2",
            ]
        );
    }
}
