//! IPv6 verification: every hop's best IPv6 route to each forced prefix (the IPv4
//! expectations mapped through the plan's IPv6 twin: next hop, exact AS path, the TE
//! preference), routers off the path plain eBGP in IPv6 too, and traceroute6 and ping6 both
//! ways along the planned hops. Pure.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};
use vnet_te_agent::frr::{BgpPath, BgpTable};

use super::report::show_path;
use super::{HopReport, HopStatus, OffPathReport};
use crate::core::plan::ipv6::Ipv6Plan;
use crate::core::plan::{NetworkRole, Plan, RouterPlan, TE_LOCAL_PREF};

/// Reply addresses of one traceroute6, in order (None: no answer at that hop limit).
pub type Hops6 = Vec<Option<Ipv6Addr>>;

/// What was read from the running path over IPv6.
#[derive(Debug, Clone, Default)]
pub struct Observed6 {
    /// Per router: `show bgp ipv6 unicast json`, or why it could not be read.
    pub tables: BTreeMap<String, Result<BgpTable, String>>,
    /// Per (from, to).
    pub traceroutes: BTreeMap<(String, String), Result<Hops6, String>>,
    pub pings: BTreeMap<(String, String), Result<bool, String>>,
}

/// The IPv6 probes of a report, and which families the path carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report6 {
    /// `ipv4, ipv6` or `ipv6`.
    pub family: String,
    pub probes: Vec<Probe6>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe6 {
    /// `traceroute6` or `ping6`.
    pub kind: String,
    pub from: String,
    pub to: String,
    pub target: Ipv6Addr,
    pub expected: Vec<Ipv6Addr>,
    pub observed: Hops6,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<String>,
}

impl fmt::Display for Report6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "family: {}", self.family)?;
        for p in &self.probes {
            let status = if p.ok { "ok".to_string() } else { format!("FAILED: {}", p.problem.clone().unwrap_or_default()) };
            match p.kind.as_str() {
                "traceroute6" => writeln!(f, "traceroute6 {} → {} ({} hops): {status}", p.from, p.to, p.expected.len())?,
                _ => writeln!(f, "ping6 {} → {} ({}): {status}", p.from, p.to, p.target)?,
            }
        }
        Ok(())
    }
}

/// The global next hop of an IPv6 path (FRR lists the neighbour's link-local address beside
/// it, which is what the kernel forwards to).
pub fn next_hop6(p: &BgpPath) -> Option<Ipv6Addr> {
    p.nexthops.iter().filter_map(|n| n.ip.as_deref()?.parse::<Ipv6Addr>().ok()).find(|ip| !ip.is_unspecified() && (ip.segments()[0] & 0xffc0) != 0xfe80)
}

/// " (LAN of dst)", " (loopback of r6)" or "" for an IPv6 prefix of the plan.
fn label(plan: &Plan, six: &Ipv6Plan, prefix: &str) -> String {
    for n in plan.networks.iter().filter(|n| n.role == NetworkRole::Lan) {
        if six.networks.get(&n.name).is_some_and(|s| s.to_string() == prefix) {
            if let Some(h) = plan.hosts.iter().find(|h| h.network == n.name) {
                return format!(" (LAN of {})", h.name);
            }
        }
    }
    match six.routers.iter().find(|r| r.loopback.to_string() == prefix) {
        Some(r) => format!(" (loopback of {})", r.name),
        None => String::new(),
    }
}

fn via(r: &RouterPlan, six: &Ipv6Plan, nh: Option<Ipv6Addr>, path: &[Option<u32>]) -> String {
    let r6 = six.routers.iter().find(|x| x.name == r.name);
    super::via_peer(nh, |nh| r6.and_then(|r6| r6.neighbors.iter().find(|n| n.address == nh)).map(|n| n.peer.as_str()), path)
}

/// The IPv6 problems of one hop, merged into its report: its status falls to the worst of
/// both families, and each problem says IPv6. In an IPv6-only path the observed AS path is
/// the IPv6 one.
pub fn check_hop(plan: &Plan, six: &Ipv6Plan, r: &RouterPlan, obs: &Observed6, hop: &mut HopReport) {
    let mut status = HopStatus::Ok;
    let mut problems = Vec::new();
    let routes = plan.routes_of(&r.name);
    match obs.tables.get(&r.name) {
        None => (status, problems) = (HopStatus::Missing, vec!["IPv6 table not read".to_string()]),
        Some(Err(e)) => (status, problems) = (HopStatus::Down, vec![format!("IPv6: {e}")]),
        Some(Ok(table)) => {
            for e in &routes {
                let Some(prefix) = six.map_prefix(plan, e.prefix) else { continue };
                let key = prefix.to_string();
                let what = label(plan, six, &key);
                let Some(best) = table.routes.get(&key).and_then(|ps| ps.iter().find(|p| p.bestpath)) else {
                    if status == HopStatus::Ok {
                        status = HopStatus::Missing;
                    }
                    problems.push(format!("IPv6: no route to {key}{what}"));
                    continue;
                };
                let want: Vec<Option<u32>> = e.as_path(plan).into_iter().map(Some).collect();
                let want_nh = e.next_hop.and_then(|a| six.map_addr(plan, a));
                let (got_path, got_nh) = (best.as_path(), next_hop6(best));
                if e.toward == crate::core::plan::Toward::Last && e.origin.is_none() && !plan.carries_ipv4() {
                    hop.observed = Some(got_path.clone());
                }
                let peer = e.via.clone().unwrap_or_else(|| "?".into());
                if got_path != want || got_nh != want_nh {
                    status = HopStatus::WrongPath;
                    let mut msg = match want_nh {
                        None => format!("IPv6: best path to {key}{what} via {} instead of this router's own", via(r, six, got_nh, &got_path)),
                        Some(nh) => format!(
                            "IPv6: best path to {key}{what} via {} instead of via {peer} ({nh}, planned AS path {})",
                            via(r, six, got_nh, &got_path),
                            show_path(&want)
                        ),
                    };
                    if let Some(nh) = want_nh {
                        let planned = table.routes.get(&key).and_then(|ps| ps.iter().find(|p| p.valid && next_hop6(p) == Some(nh)));
                        match planned {
                            Some(p) if p.local_pref != Some(TE_LOCAL_PREF) => msg.push_str(&format!(
                                "; the route from {peer} has local-preference {}, planned {TE_LOCAL_PREF}: the IPv6 TE policy toward {peer} is not in effect",
                                p.local_pref.map_or("100 (default)".to_string(), |p| p.to_string())
                            )),
                            Some(_) => {}
                            None => msg.push_str(&format!("; {peer} offers no IPv6 route to it")),
                        }
                    }
                    problems.push(msg);
                } else if want_nh.is_some() && best.local_pref != Some(TE_LOCAL_PREF) {
                    status = HopStatus::WrongPath;
                    problems.push(format!(
                        "IPv6: {key}{what}: via {peer} as planned, but with local-preference {}, planned {TE_LOCAL_PREF}: the IPv6 TE policy toward {peer} is not in effect",
                        best.local_pref.map_or("100 (default)".to_string(), |p| p.to_string())
                    ));
                }
            }
        }
    }
    if hop.status == HopStatus::Ok {
        hop.status = status;
    }
    hop.problems.extend(problems);
}

/// A router off the path: plain eBGP for the experiment LANs' IPv6 prefixes too.
pub fn check_off_path(plan: &Plan, six: &Ipv6Plan, r: &RouterPlan, obs: &Observed6, rep: &mut OffPathReport) {
    let bad = |status: HopStatus, p: String, rep: &mut OffPathReport| {
        if rep.status == HopStatus::Ok {
            rep.status = status;
        }
        rep.problems.push(p);
    };
    let table = match obs.tables.get(&r.name) {
        None => return bad(HopStatus::Missing, "IPv6 table not read".into(), rep),
        Some(Err(e)) => return bad(HopStatus::Down, format!("IPv6: {e}"), rep),
        Some(Ok(t)) => t,
    };
    for n in plan.networks.iter().filter(|n| n.role == NetworkRole::Lan) {
        let Some(key) = six.networks.get(&n.name).map(|s| s.to_string()) else { continue };
        let what = label(plan, six, &key);
        let Some(paths) = table.routes.get(&key) else {
            bad(HopStatus::Missing, format!("IPv6: no route to {key}{what}"), rep);
            continue;
        };
        let Some(best) = paths.iter().find(|p| p.bestpath) else {
            bad(HopStatus::Missing, format!("IPv6: no best path to {key}{what}"), rep);
            continue;
        };
        let shortest = paths.iter().filter(|p| p.valid).map(|p| p.as_path().len()).min().unwrap_or(0);
        if best.local_pref.is_some_and(|p| p != 100) {
            bad(
                HopStatus::WrongPath,
                format!("IPv6: {key}{what}: best path has local-preference {:?}: a TE policy is applied to a router off the path", best.local_pref),
                rep,
            );
        } else if best.as_path().len() > shortest {
            bad(
                HopStatus::WrongPath,
                format!("IPv6: {key}{what}: best path has {} ASes although one with {shortest} is offered: not plain eBGP", best.as_path().len()),
                rep,
            );
        }
    }
}

/// The IPv6 traceroute expectation of each IPv4 one: (from, to, target, hops).
pub fn traceroutes(plan: &Plan, six: &Ipv6Plan) -> Vec<(String, String, Ipv6Addr, Vec<Ipv6Addr>)> {
    plan.expectations
        .traceroutes
        .iter()
        .filter_map(|t| {
            let hops: Option<Vec<Ipv6Addr>> = t.hops.iter().map(|a| six.map_addr(plan, *a)).collect();
            Some((t.from.clone(), t.to.clone(), six.map_addr(plan, t.target)?, hops?))
        })
        .collect()
}

/// traceroute6 and ping6 between the hosts, both ways.
pub fn probes(plan: &Plan, six: &Ipv6Plan, obs: &Observed6) -> Vec<Probe6> {
    let mut out = Vec::new();
    for (from, to, target, hops) in traceroutes(plan, six) {
        let key = (from.clone(), to.clone());
        let (observed, ok, problem) = match obs.traceroutes.get(&key) {
            None => (vec![], false, Some("not run".to_string())),
            Some(Err(e)) => (vec![], false, Some(e.clone())),
            Some(Ok(seen)) => {
                let want: Hops6 = hops.iter().map(|a| Some(*a)).collect();
                let ok = *seen == want;
                let problem = (!ok).then(|| match seen.iter().zip(&want).position(|(a, b)| a != b) {
                    Some(i) => format!(
                        "hop {}: {} replied, expected {}",
                        i + 1,
                        seen[i].map(|a| six.owner_label(a)).unwrap_or_else(|| "nobody".into()),
                        six.owner_label(hops[i])
                    ),
                    None => format!("{} hops, expected {}", seen.len(), want.len()),
                });
                (seen.clone(), ok, problem)
            }
        };
        out.push(Probe6 { kind: "traceroute6".into(), from: from.clone(), to: to.clone(), target, expected: hops, observed, ok, problem });
        let (ok, problem) = match obs.pings.get(&key) {
            None => (false, Some("not run".to_string())),
            Some(Err(e)) => (false, Some(e.clone())),
            Some(Ok(true)) => (true, None),
            Some(Ok(false)) => (false, Some("no reply".to_string())),
        };
        out.push(Probe6 { kind: "ping6".into(), from, to, target, expected: vec![target], observed: vec![], ok, problem });
    }
    out
}

/// The family label of a plan carrying IPv6.
pub fn family(six: &Ipv6Plan) -> String {
    if six.ipv4 { "ipv4, ipv6" } else { "ipv6" }.to_string()
}

#[cfg(test)]
mod tests {
    use vnet_te_agent::frr::NextHop;

    use super::*;
    use crate::core::compare::{compare, Observed};
    use crate::core::plan::{build, Inventory};
    use crate::core::spec;

    fn plan(families: &[spec::ipv6::Family]) -> Plan {
        let mut s = spec::chain("t", 4).unwrap();
        s.family = Some(families.to_vec());
        build(&s, &Inventory::default()).unwrap()
    }

    /// Every path router's IPv6 table as planned: the mapped prefix, next hop (global, and
    /// the link-local FRR lists beside it), AS path and the TE preference.
    fn good6(p: &Plan) -> Observed6 {
        let six = p.ipv6.as_ref().unwrap();
        let mut o = Observed6::default();
        for r in &p.path {
            let mut t = BgpTable::default();
            for e in p.routes_of(r) {
                let nh = e.next_hop.and_then(|a| six.map_addr(p, a));
                let hops = match nh {
                    Some(nh) => vec![
                        NextHop { ip: Some(nh.to_string()), hostname: None, used: false },
                        NextHop { ip: Some("fe80::1".into()), hostname: None, used: true },
                    ],
                    None => vec![NextHop { ip: Some("::".into()), hostname: None, used: true }],
                };
                let path = e.as_path(p).iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
                let best = BgpPath { valid: true, bestpath: true, path, nexthops: hops, local_pref: nh.map(|_| TE_LOCAL_PREF), ..Default::default() };
                t.routes.insert(six.map_prefix(p, e.prefix).unwrap().to_string(), vec![best]);
            }
            o.tables.insert(r.clone(), Ok(t));
        }
        for (from, to, _, hops) in traceroutes(p, six) {
            o.traceroutes.insert((from.clone(), to.clone()), Ok(hops.iter().map(|a| Some(*a)).collect()));
            o.pings.insert((from, to), Ok(true));
        }
        o
    }

    #[test]
    fn an_ipv6_only_path_answered_as_planned_verifies_without_any_ipv4_reading() {
        let p = plan(&[spec::ipv6::Family::Ipv6]);
        let obs = Observed { ipv6: good6(&p), ..Default::default() };
        let r = compare(&p, &obs);
        assert!(r.verified, "{r}");
        assert!(r.probes.is_empty(), "no IPv4 probe: {:?}", r.probes);
        let six = r.ipv6.as_ref().unwrap();
        assert_eq!(six.family, "ipv6");
        assert_eq!(six.probes.len(), 4);
        assert_eq!(r.hops[0].observed.as_ref().unwrap().len(), 3, "the IPv6 AS path is shown");
    }

    #[test]
    fn a_missing_ipv6_preference_and_a_wrong_traceroute6_hop_are_named() {
        let p = plan(&[spec::ipv6::Family::Ipv6]);
        let mut o6 = good6(&p);
        // r2 takes dst's LAN without the TE preference: its IPv6 policy toward r3 is gone.
        let lan_b = p.ipv6.as_ref().unwrap().networks["vte-t-lan-b"].to_string();
        if let Some(Ok(t)) = o6.tables.get_mut("r2") {
            t.routes.get_mut(&lan_b).unwrap()[0].local_pref = None;
        }
        let key = ("src".to_string(), "dst".to_string());
        if let Some(Ok(h)) = o6.traceroutes.get_mut(&key) {
            h[2] = None;
        }
        let r = compare(&p, &Observed { ipv6: o6, ..Default::default() });
        assert!(!r.verified && !r.control_plane_ok);
        let r2 = r.hops.iter().find(|h| h.router == "r2").unwrap();
        assert_eq!(r2.status, HopStatus::WrongPath);
        assert!(r2.problems[0].contains("(LAN of dst): via r3 as planned, but with local-preference 100 (default)"), "{:?}", r2.problems);
        assert!(r2.problems[0].contains("the IPv6 TE policy toward r3 is not in effect"), "{:?}", r2.problems);
        assert!(r.hops.iter().filter(|h| h.router != "r2").all(|h| h.status == HopStatus::Ok));
        let t = &r.ipv6.as_ref().unwrap().probes[0];
        assert_eq!(t.problem.as_deref(), Some("hop 3: nobody replied, expected r3 (fd7e:7e00:0:2::3)"));
    }

    #[test]
    fn dual_stack_needs_both_families_and_each_fails_on_its_own() {
        let p = plan(&[spec::ipv6::Family::Ipv4, spec::ipv6::Family::Ipv6]);
        // IPv4 unread: the hops are not verified although IPv6 is right.
        let r = compare(&p, &Observed { ipv6: good6(&p), ..Default::default() });
        assert!(!r.verified);
        assert!(r.hops.iter().all(|h| h.status == HopStatus::Missing), "{r}");
        // IPv6 unread: named as such.
        let r = compare(&p, &Observed::default());
        assert!(r.hops[0].problems.iter().any(|p| p == "IPv6 table not read"), "{:?}", r.hops[0].problems);
    }
}
