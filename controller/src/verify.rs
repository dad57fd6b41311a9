//! Verification: read what the routers and hosts see (`observe`, I/O through the nodes)
//! and compare it with the plan's expectations (`compare`, pure).
//!
//! A BGP session that is up proves nothing about the data plane (internal bridges can drop
//! transit traffic while sessions stay up), so a path is verified only when every hop's
//! best routes match (planned next hop, exact AS path, and the TE local preference that
//! forces it) *and* traceroutes both ways follow the planned hops *and* pings pass.
//! Routers off the path must be plain eBGP speakers (no TE preference, shortest AS path).
//! With `l2vpn: evpn` also: EVPN routes for the VNI at both edges (type 3 from the remote
//! VTEP along the planned AS path, type 2 MACs), L2 pings between the hosts' shared-subnet
//! addresses, a full-size DF ping at the planned MTU, and interface counters showing that
//! the VXLAN packets crossed exactly the planned links.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use vnet_te_agent::frr::{BgpSummary, BgpTable, EvpnRoutes, EvpnVnis};
use vnet_te_agent::node::Node;
use vnet_te_agent::probe::{parse_traceroute, InterfaceCounters};

use crate::deploy::{Nodes, PARALLELISM};
use crate::plan::{NetworkRole, Plan, RouterPlan, Toward, TE_LOCAL_PREF};

/// Hop addresses of one traceroute, in order (None: no answer at that TTL).
pub type Hops = Vec<Option<Ipv4Addr>>;

/// What was read from the running path.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Per router: its BGP table, or why it could not be read.
    pub tables: BTreeMap<String, Result<BgpTable, String>>,
    /// Per router, read only to explain failures.
    pub summaries: BTreeMap<String, BgpSummary>,
    /// Per (from, to): reply addresses per TTL, or why the probe failed.
    pub traceroutes: BTreeMap<(String, String), Result<Hops, String>>,
    pub pings: BTreeMap<(String, String), Result<bool, String>>,
    /// EVPN edges: `show bgp l2vpn evpn json` and `show evpn vni json`, per router.
    pub evpn_routes: BTreeMap<String, Result<EvpnRoutes, String>>,
    pub evpn_vnis: BTreeMap<String, Result<EvpnVnis, String>>,
    /// L2 probes per (kind, from, to): `l2-ping` (default size) and `l2-ping-df` (full
    /// size at the planned MTU, DF set), between the hosts' EVPN addresses.
    pub l2_pings: BTreeMap<(String, String, String), Result<bool, String>>,
    /// Interface counters of every router just before and just after the DF ping.
    pub counters_before: BTreeMap<String, Result<Vec<InterfaceCounters>, String>>,
    pub counters_after: BTreeMap<String, Result<Vec<InterfaceCounters>, String>>,
}

/// Kinds of L2 probes (the `kind` of their `ProbeReport`).
pub const L2_PING: &str = "l2-ping";
pub const L2_PING_DF: &str = "l2-ping-df";
pub const EVPN: &str = "evpn";
pub const VXLAN_PATH: &str = "vxlan-path";
/// IPv4 + ICMP headers: a DF ping fills the MTU with a payload this much smaller.
const ICMP_OVERHEAD: u32 = 28;
/// Packets per ping probe (`Node::ping` sends three).
const PINGS: u64 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HopStatus {
    Ok,
    /// Not read yet or no routes yet.
    Missing,
    WrongPath,
    Down,
}

impl fmt::Display for HopStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HopStatus::Ok => "ok",
            HopStatus::Missing => "MISSING",
            HopStatus::WrongPath => "WRONG PATH",
            HopStatus::Down => "DOWN",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopReport {
    /// 1-based position on the path.
    pub hop: usize,
    pub router: String,
    pub asn: u32,
    pub node: String,
    /// Expected AS path toward the last hop's LAN.
    pub expected: Vec<u32>,
    /// Observed AS path toward the last hop's LAN (None: no route).
    pub observed: Option<Vec<Option<u32>>>,
    pub status: HopStatus,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub kind: String,
    pub from: String,
    pub to: String,
    pub target: Ipv4Addr,
    pub expected: Vec<Ipv4Addr>,
    pub observed: Vec<Option<Ipv4Addr>>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<String>,
    /// What was seen, for kinds whose evidence is not a list of addresses.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
}

/// A router off the forced path: it must stay a plain eBGP speaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffPathReport {
    pub router: String,
    pub asn: u32,
    pub node: String,
    pub status: HopStatus,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub path: String,
    pub plan_hash: String,
    pub verified: bool,
    pub control_plane_ok: bool,
    pub hops: Vec<HopReport>,
    /// Routers off the path (absent when every router is on it).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub off_path: Vec<OffPathReport>,
    pub probes: Vec<ProbeReport>,
    /// Wall time to the verdict, in milliseconds (set by `verify`, not by `compare`).
    pub elapsed_ms: u64,
}

/// A router's BGP table, or the status and problem to report when it could not be read.
fn table_of<'a>(obs: &'a Observed, router: &str) -> Result<&'a BgpTable, (HopStatus, String)> {
    match obs.tables.get(router) {
        None => Err((HopStatus::Missing, "not read".into())),
        Some(Err(e)) => Err((HopStatus::Down, e.clone())),
        Some(Ok(table)) => Ok(table),
    }
}

/// Compares observations with the plan. Pure.
pub fn compare(plan: &Plan, obs: &Observed) -> Report {
    let mut hops = Vec::new();
    for r in plan.path_routers() {
        let hop = r.hop.unwrap_or(0);
        let exps: Vec<_> = plan.expectations.routes.iter().filter(|e| e.router == r.name).collect();
        let main_prefix = plan.expectations.routes.iter().find(|e| e.router == r.name && e.toward == Toward::Last);
        let expected = main_prefix.map(|e| e.as_path(plan)).unwrap_or_default();
        let mut problems = Vec::new();
        let mut status = HopStatus::Ok;
        let mut observed = None;
        match table_of(obs, &r.name) {
            Err((s, problem)) => {
                status = s;
                problems.push(problem);
            }
            Ok(table) => {
                for e in &exps {
                    let want = e.as_path(plan);
                    let prefix = e.prefix.to_string();
                    let what = prefix_label(plan, &prefix);
                    let Some(best) = table.best(&prefix) else {
                        if status == HopStatus::Ok {
                            status = HopStatus::Missing;
                        }
                        problems.push(format!("no route to {prefix}{what}"));
                        continue;
                    };
                    if Some(e) == main_prefix.as_ref() {
                        observed = Some(best.as_path.clone());
                    }
                    let want_opt: Vec<Option<u32>> = want.iter().map(|a| Some(*a)).collect();
                    let planned_peer = e.via.clone().unwrap_or_else(|| "?".into());
                    if best.as_path != want_opt || best.next_hop != e.next_hop {
                        status = HopStatus::WrongPath;
                        let Some(planned_nh) = e.next_hop else {
                            // Planned as originated here; something else won.
                            problems.push(format!(
                                "best path to {prefix}{what} via {} instead of this router's own",
                                via_text(r, best.next_hop, &best.as_path),
                            ));
                            continue;
                        };
                        let mut msg = format!(
                            "best path to {prefix}{what} via {} instead of via {planned_peer} ({planned_nh}, planned AS path {})",
                            via_text(r, best.next_hop, &best.as_path),
                            show_path(&want_opt),
                        );
                        // Why: the planned neighbour's route, if there, lost on preference.
                        let from_planned = table
                            .routes
                            .get(&prefix)
                            .and_then(|paths| paths.iter().find(|p| p.valid && p.next_hop() == Some(planned_nh)));
                        match from_planned {
                            Some(p) if p.local_pref != Some(TE_LOCAL_PREF) => msg.push_str(&format!(
                                "; the route from {planned_peer} has local-preference {}, planned {TE_LOCAL_PREF}: the TE policy toward {planned_peer} is not in effect",
                                show_pref(p.local_pref)
                            )),
                            Some(_) => {}
                            None => msg.push_str(&format!("; {planned_peer} offers no route to it")),
                        }
                        problems.push(msg);
                    } else if e.next_hop.is_some() && best.local_pref != Some(TE_LOCAL_PREF) {
                        // Right way today, but only because nothing shorter exists: the
                        // policy that forces it is gone.
                        status = HopStatus::WrongPath;
                        problems.push(format!(
                            "{prefix}{what}: via {planned_peer} as planned, but with local-preference {}, planned {TE_LOCAL_PREF}: the TE policy toward {planned_peer} is not in effect",
                            show_pref(best.local_pref)
                        ));
                    }
                }
            }
        }
        if status != HopStatus::Ok {
            if let Some(s) = obs.summaries.get(&r.name) {
                for (addr, p) in s.peers() {
                    if p.state != "Established" {
                        let who = r.neighbors.iter().find(|n| n.address.to_string() == addr).map(|n| n.peer.clone());
                        problems.push(format!(
                            "session to {} ({addr}) is {}",
                            who.unwrap_or_else(|| "?".into()),
                            p.state
                        ));
                    }
                }
            }
        }
        hops.push(HopReport {
            hop: hop + 1,
            router: r.name.clone(),
            asn: r.asn,
            node: r.node.clone(),
            expected,
            observed,
            status,
            problems,
        });
    }
    let off_path: Vec<OffPathReport> =
        plan.routers.iter().filter(|r| r.hop.is_none()).map(|r| compare_off_path(plan, r, obs)).collect();
    let mut probes = evpn_probes(plan, obs);
    let control_plane_ok = hops.iter().all(|h| h.status == HopStatus::Ok)
        && off_path.iter().all(|h| h.status == HopStatus::Ok)
        && probes.iter().all(|p| p.ok);

    for t in &plan.expectations.traceroutes {
        let key = (t.from.clone(), t.to.clone());
        let (observed, ok, problem) = match obs.traceroutes.get(&key) {
            None => (vec![], false, Some("not run".to_string())),
            Some(Err(e)) => (vec![], false, Some(e.clone())),
            Some(Ok(seen)) => {
                let want: Vec<Option<Ipv4Addr>> = t.hops.iter().map(|a| Some(*a)).collect();
                let ok = *seen == want;
                let problem = (!ok).then(|| {
                    match seen.iter().zip(&want).position(|(a, b)| a != b) {
                        Some(i) => format!(
                            "hop {}: {} replied, expected {}",
                            i + 1,
                            seen[i].map(|a| owner_label(plan, a)).unwrap_or_else(|| "nobody".into()),
                            owner_label(plan, t.hops[i])
                        ),
                        None => format!("{} hops, expected {}", seen.len(), want.len()),
                    }
                });
                (seen.clone(), ok, problem)
            }
        };
        probes.push(ProbeReport {
            kind: "traceroute".into(),
            from: t.from.clone(),
            to: t.to.clone(),
            target: t.target,
            expected: t.hops.clone(),
            observed,
            ok,
            problem,
            detail: None,
        });
        let (ok, problem) = ping_result(obs.pings.get(&key));
        probes.push(ProbeReport {
            kind: "ping".into(),
            from: t.from.clone(),
            to: t.to.clone(),
            target: t.target,
            expected: vec![t.target],
            observed: vec![],
            ok,
            problem,
            detail: None,
        });
    }
    probes.extend(l2_probes(plan, obs));
    let verified = control_plane_ok && probes.iter().all(|p| p.ok);
    Report {
        path: plan.name.clone(),
        plan_hash: plan.hash.clone(),
        verified,
        control_plane_ok,
        hops,
        off_path,
        probes,
        elapsed_ms: 0,
    }
}

fn ping_result(r: Option<&Result<bool, String>>) -> (bool, Option<String>) {
    match r {
        None => (false, Some("not run".to_string())),
        Some(Err(e)) => (false, Some(e.clone())),
        Some(Ok(true)) => (true, None),
        Some(Ok(false)) => (false, Some("no reply".to_string())),
    }
}

/// " (LAN of dst)", " (loopback of r6)" or "" for a prefix of the plan.
fn prefix_label(plan: &Plan, prefix: &str) -> String {
    if let Some(n) = plan.networks.iter().find(|n| n.role == NetworkRole::Lan && n.subnet.to_string() == prefix) {
        if let Some(h) = plan.hosts.iter().find(|h| h.network == n.name) {
            return format!(" (LAN of {})", h.name);
        }
    }
    match plan.routers.iter().find(|r| r.loopback.to_string() == prefix) {
        Some(r) => format!(" (loopback of {})", r.name),
        None => String::new(),
    }
}

/// Where a best path leads: "r5 (10.199.0.35, AS path 65005 65009)", the neighbour named
/// when the next hop is one of `r`'s planned neighbours.
fn via_text(r: &RouterPlan, next_hop: Option<Ipv4Addr>, as_path: &[Option<u32>]) -> String {
    let path = show_path_or_local(as_path);
    match next_hop {
        None => format!("this router itself (AS path {path})"),
        Some(nh) => match r.neighbors.iter().find(|n| n.address == nh) {
            Some(n) => format!("{} ({nh}, AS path {path})", n.peer),
            None => format!("{nh} (AS path {path})"),
        },
    }
}

/// Who owns an address of the plan: "r3 (10.199.0.11)", "dst (10.210.1.10)", or the address.
fn owner_label(plan: &Plan, a: Ipv4Addr) -> String {
    for r in &plan.routers {
        if r.interfaces.iter().any(|i| i.address == a) || r.loopback.addr() == a {
            return format!("{} ({a})", r.name);
        }
    }
    match plan.hosts.iter().find(|h| h.address == a || h.l2_address.is_some_and(|l| l.addr() == a)) {
        Some(h) => format!("{} ({a})", h.name),
        None => a.to_string(),
    }
}

fn show_pref(p: Option<u32>) -> String {
    match p {
        Some(p) => p.to_string(),
        None => "100 (default)".into(),
    }
}

fn show_path_or_local(p: &[Option<u32>]) -> String {
    if p.is_empty() {
        "empty: originated here".into()
    } else {
        show_path(p)
    }
}

/// An off-path router: its best route to each experiment LAN must carry no TE preference
/// and have the shortest AS path it was offered (plain eBGP best-path selection).
fn compare_off_path(plan: &Plan, r: &RouterPlan, obs: &Observed) -> OffPathReport {
    let mut problems = Vec::new();
    let mut status = HopStatus::Ok;
    match table_of(obs, &r.name) {
        Err((s, problem)) => {
            status = s;
            problems.push(problem);
        }
        Ok(table) => {
            for n in plan.networks.iter().filter(|n| n.role == NetworkRole::Lan) {
                let prefix = n.subnet.to_string();
                let what = prefix_label(plan, &prefix);
                let Some(paths) = table.routes.get(&prefix) else {
                    if status == HopStatus::Ok {
                        status = HopStatus::Missing;
                    }
                    problems.push(format!("no route to {prefix}{what}"));
                    continue;
                };
                let Some(best) = paths.iter().find(|p| p.bestpath) else {
                    if status == HopStatus::Ok {
                        status = HopStatus::Missing;
                    }
                    problems.push(format!("no best path to {prefix}{what}"));
                    continue;
                };
                let shortest = paths.iter().filter(|p| p.valid).map(|p| p.as_path().len()).min().unwrap_or(0);
                if best.local_pref.is_some_and(|p| p != 100) {
                    status = HopStatus::WrongPath;
                    problems.push(format!(
                        "{prefix}{what}: best path has local-preference {}: a TE policy is applied to a router off the path",
                        show_pref(best.local_pref)
                    ));
                } else if best.as_path().len() > shortest {
                    status = HopStatus::WrongPath;
                    problems.push(format!(
                        "{prefix}{what}: best path via {} has {} ASes although one with {shortest} is offered: not plain eBGP",
                        via_text(r, best.next_hop(), &best.as_path()),
                        best.as_path().len()
                    ));
                }
            }
        }
    }
    OffPathReport { router: r.name.clone(), asn: r.asn, node: r.node.clone(), status, problems }
}

/// The two EVPN edges as (edge, remote edge, planned AS path from the edge to the remote).
fn evpn_edges(plan: &Plan) -> Vec<(&RouterPlan, &RouterPlan, Vec<u32>)> {
    let (Some(first), Some(last)) = (plan.path.first(), plan.path.last()) else { return vec![] };
    let (Some(a), Some(b)) = (plan.router(first), plan.router(last)) else { return vec![] };
    if plan.evpn.is_none() || first == last {
        return vec![];
    }
    let n = plan.path_asns.len();
    vec![
        (a, b, plan.path_asns[1..].to_vec()),
        (b, a, plan.path_asns[..n - 1].iter().rev().copied().collect()),
    ]
}

/// Control-plane L2 checks: at each edge, the VNI with the remote VTEP in its flood list, the
/// remote VTEP's type-3 route (best, planned AS path, planned route target) and its type-2
/// MAC routes.
fn evpn_probes(plan: &Plan, obs: &Observed) -> Vec<ProbeReport> {
    let Some(e) = &plan.evpn else { return vec![] };
    let mut out = Vec::new();
    for (edge, remote, want_path) in evpn_edges(plan) {
        let vtep = remote.loopback.addr();
        let vtep_s = vtep.to_string();
        let mut problems = Vec::new();
        let mut observed = Vec::new();
        let mut detail = Vec::new();
        match obs.evpn_vnis.get(&edge.name) {
            None => problems.push("VNIs not read".to_string()),
            Some(Err(err)) => problems.push(err.clone()),
            Some(Ok(v)) => match v.get(e.vni) {
                None => problems.push(format!("VNI {} is not configured (no VXLAN device seen by zebra)", e.vni)),
                Some(vni) => {
                    observed = vni.remote_vteps.iter().filter_map(|a| a.parse().ok()).map(Some).collect();
                    if vni.remote_vteps.contains(&vtep_s) {
                        detail.push(format!("VNI {} floods to {vtep_s}", e.vni));
                    } else {
                        problems.push(format!(
                            "VNI {}: remote VTEP {vtep_s} not in the flood list [{}]",
                            e.vni,
                            vni.remote_vteps.join(" ")
                        ));
                    }
                }
            },
        }
        match obs.evpn_routes.get(&edge.name) {
            None => problems.push("EVPN routes not read".to_string()),
            Some(Err(err)) => problems.push(err.clone()),
            Some(Ok(t)) => {
                let want_opt: Vec<Option<u32>> = want_path.iter().map(|a| Some(*a)).collect();
                let imet = t.routes.iter().find(|r| r.route_type == 3 && r.ip.as_deref() == Some(vtep_s.as_str()) && r.bestpath);
                match imet {
                    None => problems.push(format!("no EVPN type-3 route from VTEP {vtep_s} ({})", remote.name)),
                    Some(r) => {
                        if r.as_path() != want_opt {
                            problems.push(format!(
                                "type-3 route from {vtep_s} has AS path [{}], planned [{}]",
                                show_path(&r.as_path()),
                                show_path(&want_opt)
                            ));
                        }
                        if !r.route_targets.contains(&e.route_target) {
                            problems.push(format!(
                                "type-3 route from {vtep_s} carries route targets [{}], planned {}",
                                r.route_targets.join(" "),
                                e.route_target
                            ));
                        }
                        detail.push(format!("type-3 from {vtep_s} with AS path {}", show_path(&want_opt)));
                    }
                }
                let macs = t
                    .routes
                    .iter()
                    .filter(|r| r.route_type == 2 && r.valid && r.next_hop.as_deref() == Some(vtep_s.as_str()))
                    .filter(|r| r.route_targets.contains(&e.route_target))
                    .count();
                if macs == 0 {
                    problems.push(format!("no EVPN type-2 (MAC) route from VTEP {vtep_s} for VNI {}", e.vni));
                } else {
                    detail.push(format!("{macs} type-2 routes from it"));
                }
            }
        }
        out.push(ProbeReport {
            kind: EVPN.into(),
            from: edge.name.clone(),
            to: remote.name.clone(),
            target: vtep,
            expected: vec![vtep],
            observed,
            ok: problems.is_empty(),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
            detail: Some(detail.join(", ")),
        });
    }
    out
}

/// The L2 data-plane checks between the hosts' EVPN addresses: plain pings both ways, one
/// full-size DF ping at the planned MTU, and the VXLAN counters evidence.
fn l2_probes(plan: &Plan, obs: &Observed) -> Vec<ProbeReport> {
    let Some(e) = &plan.evpn else { return vec![] };
    let (Some(a), Some(b)) = (plan.hosts.first(), plan.hosts.get(1)) else { return vec![] };
    let (Some(la), Some(lb)) = (a.l2_address, b.l2_address) else { return vec![] };
    let mut out = Vec::new();
    for (from, to, target) in [(a, b, lb.addr()), (b, a, la.addr())] {
        let (ok, problem) = ping_result(obs.l2_pings.get(&(L2_PING.to_string(), from.name.clone(), to.name.clone())));
        out.push(ProbeReport {
            kind: L2_PING.into(),
            from: from.name.clone(),
            to: to.name.clone(),
            target,
            expected: vec![target],
            observed: vec![],
            ok,
            problem,
            detail: ok.then(|| format!("same subnet {}: ARP resolves across the path", e.subnet)),
        });
    }
    let df_key = (L2_PING_DF.to_string(), a.name.clone(), b.name.clone());
    let df_run = obs.l2_pings.contains_key(&df_key);
    let (df_ok, problem) = ping_result(obs.l2_pings.get(&df_key));
    out.push(ProbeReport {
        kind: L2_PING_DF.into(),
        from: a.name.clone(),
        to: b.name.clone(),
        target: lb.addr(),
        expected: vec![lb.addr()],
        observed: vec![],
        ok: df_ok,
        problem,
        detail: df_run.then(|| {
            format!(
                "{}-byte packets ({}-byte ICMP payload), DF set, planned MTU {}",
                e.mtu,
                e.mtu.saturating_sub(ICMP_OVERHEAD),
                e.mtu
            )
        }),
    });
    let (ok, problem, detail) = if !df_run {
        (false, Some("not run".to_string()), None)
    } else if obs.counters_before.is_empty() {
        (false, Some("not measured".to_string()), None)
    } else {
        let (ok, problem, detail) = vxlan_counters(plan, e.mtu, obs);
        if df_ok {
            (ok, problem, detail)
        } else {
            // Counters still show where the packets went, but a failed DF ping cannot pass.
            let p = problem.map(|p| format!("the DF ping did not pass; {p}"));
            (false, p.or(Some("the DF ping did not pass".to_string())), detail)
        }
    };
    out.push(ProbeReport {
        kind: VXLAN_PATH.into(),
        from: a.name.clone(),
        to: b.name.clone(),
        target: lb.addr(),
        expected: plan.expectations.traceroutes.first().map(|t| t.hops.clone()).unwrap_or_default(),
        observed: vec![],
        ok,
        problem,
        detail,
    });
    out
}

/// During the DF ping (three full-size VXLAN packets each way), every planned link must
/// carry at least one full-size packet each way at both its ends, and no other link may
/// carry even one (BGP keepalives are a few hundred bytes in that window).
fn vxlan_counters(plan: &Plan, mtu: u32, obs: &Observed) -> (bool, Option<String>, Option<String>) {
    let full = u64::from(mtu);
    let planned: Vec<(&str, &str)> = plan.path.windows(2).map(|w| (w[0].as_str(), w[1].as_str())).collect();
    let is_planned = |x: &str, y: &str| planned.iter().any(|(a, b)| (*a == x && *b == y) || (*a == y && *b == x));
    let mut problems = Vec::new();
    let (mut planned_seen, mut quiet) = (0usize, 0usize);
    for r in &plan.routers {
        let (before, after) = match (obs.counters_before.get(&r.name), obs.counters_after.get(&r.name)) {
            (Some(Ok(b)), Some(Ok(a))) => (b, a),
            (Some(Err(e)), _) | (_, Some(Err(e))) => {
                problems.push(format!("{}: {e}", r.name));
                continue;
            }
            _ => {
                problems.push(format!("{}: counters not read", r.name));
                continue;
            }
        };
        let link_ifaces = r.interfaces.iter().filter(|i| {
            plan.networks.iter().any(|n| n.name == i.network && n.role == NetworkRole::Link)
        });
        for i in link_ifaces {
            let find = |l: &[InterfaceCounters]| l.iter().find(|c| c.addresses.contains(&i.address)).cloned();
            let (Some(b), Some(a)) = (find(before), find(after)) else {
                problems.push(format!("{}: no interface holds {}", r.name, i.address));
                continue;
            };
            let (rx, tx) = (a.rx_bytes.saturating_sub(b.rx_bytes), a.tx_bytes.saturating_sub(b.tx_bytes));
            if is_planned(&r.name, &i.peer) {
                if rx < full || tx < full {
                    problems.push(format!(
                        "planned link {} — {} ({} on {}): {tx} bytes out, {rx} in during the DF ping: VXLAN did not cross it",
                        r.name, i.peer, i.address, r.name
                    ));
                } else {
                    planned_seen += 1;
                }
            } else if rx + tx >= full {
                problems.push(format!(
                    "link {} — {} off the path ({} on {}) carried {} bytes during the DF ping: VXLAN took a shortcut",
                    r.name,
                    i.peer,
                    i.address,
                    r.name,
                    rx + tx
                ));
            } else {
                quiet += 1;
            }
        }
    }
    let links = planned.len();
    let detail = format!(
        "{PINGS} full-size VXLAN packets each way: seen on {} of {} planned link ends, {quiet} other link ends quiet",
        planned_seen,
        links * 2
    );
    if problems.is_empty() {
        (true, None, Some(detail))
    } else {
        (false, Some(problems.join("; ")), Some(detail))
    }
}

fn show_path(p: &[Option<u32>]) -> String {
    let words: Vec<String> = p.iter().map(|a| a.map(|a| a.to_string()).unwrap_or_else(|| "{set}".into())).collect();
    if words.len() > 6 {
        format!("{} … {} ({} ASes)", words[..3].join(" "), words[words.len() - 1], words.len())
    } else {
        words.join(" ")
    }
}

/// Progress of verification (a bar in the CLI).
pub trait VerifyProgress: Send + Sync {
    fn update(&self, _ok_hops: usize, _total: usize, _phase: &str) {}
}

pub struct Quiet;
impl VerifyProgress for Quiet {}

fn node_of<'a>(nodes: &'a Nodes, name: &str) -> Option<&'a Arc<dyn Node>> {
    nodes.by_name.get(name)
}

/// Runs one read per router (concurrently) and collects the results by router name.
async fn per_router<T, F, Fut>(nodes: &Nodes, routers: Vec<&RouterPlan>, f: F) -> BTreeMap<String, Result<T, String>>
where
    F: Fn(Arc<dyn Node>, String) -> Fut,
    Fut: std::future::Future<Output = vnet_te_agent::node::NodeResult<T>>,
{
    let jobs: Vec<_> = routers
        .into_iter()
        .map(|r| {
            let fut = node_of(nodes, &r.node).cloned().map(|n| f(n, r.container.clone()));
            (r.name.clone(), fut)
        })
        .collect();
    stream::iter(jobs)
        .map(|(name, fut)| async move {
            let r = match fut {
                None => Err("node not reachable from here".to_string()),
                Some(fut) => fut.await.map_err(|e| e.to_string()),
            };
            (name, r)
        })
        .buffer_unordered(PARALLELISM * 2)
        .collect()
        .await
}

/// BGP tables of every router: on the path (expectations) and off it (plain eBGP).
async fn read_tables(plan: &Plan, nodes: &Nodes) -> BTreeMap<String, Result<BgpTable, String>> {
    per_router(nodes, plan.routers.iter().collect(), |n, c| async move { n.bgp_table(&c).await }).await
}

/// EVPN routes and VNIs of the two edge routers.
async fn read_evpn(plan: &Plan, nodes: &Nodes, obs: &mut Observed) {
    let edges: Vec<&RouterPlan> = evpn_edges(plan).into_iter().map(|(e, _, _)| e).collect();
    obs.evpn_routes = per_router(nodes, edges.clone(), |n, c| async move { n.bgp_evpn_routes(&c).await }).await;
    obs.evpn_vnis = per_router(nodes, edges, |n, c| async move { n.evpn_vnis(&c).await }).await;
}

async fn read_counters(plan: &Plan, nodes: &Nodes) -> BTreeMap<String, Result<Vec<InterfaceCounters>, String>> {
    per_router(nodes, plan.routers.iter().collect(), |n, c| async move { n.interface_counters(&c).await }).await
}

/// L2 probes between the hosts' EVPN addresses: pings both ways, then a full-size DF ping
/// with every router's interface counters read just before and just after it.
async fn l2_probe(plan: &Plan, nodes: &Nodes, obs: &mut Observed) {
    let Some(e) = &plan.evpn else { return };
    let (Some(a), Some(b)) = (plan.hosts.first(), plan.hosts.get(1)) else { return };
    let (Some(la), Some(lb)) = (a.l2_address, b.l2_address) else { return };
    let (Some(na), Some(nb)) = (node_of(nodes, &a.node), node_of(nodes, &b.node)) else {
        let e = Err("node not reachable from here".to_string());
        obs.l2_pings.insert((L2_PING.into(), a.name.clone(), b.name.clone()), e.clone());
        obs.l2_pings.insert((L2_PING.into(), b.name.clone(), a.name.clone()), e);
        return;
    };
    let ok = |r: vnet_te_agent::node::NodeResult<vnet_te_agent::node::Probe>| r.map(|p| p.success).map_err(|e| e.to_string());
    let (ab, ba) = futures_util::future::join(
        na.ping(&a.container, lb.addr(), None, false),
        nb.ping(&b.container, la.addr(), None, false),
    )
    .await;
    obs.l2_pings.insert((L2_PING.into(), a.name.clone(), b.name.clone()), ok(ab));
    obs.l2_pings.insert((L2_PING.into(), b.name.clone(), a.name.clone()), ok(ba));
    obs.counters_before = read_counters(plan, nodes).await;
    let df = na.ping(&a.container, lb.addr(), Some(e.mtu.saturating_sub(ICMP_OVERHEAD)), true).await;
    obs.counters_after = read_counters(plan, nodes).await;
    obs.l2_pings.insert((L2_PING_DF.into(), a.name.clone(), b.name.clone()), ok(df));
}

async fn probe(plan: &Plan, nodes: &Nodes, obs: &mut Observed) {
    // traceroute's -m stops at 255, as does the IPv4 TTL.
    let max_hops = (plan.path.len() as u32 + 2).min(255);
    let jobs: Vec<_> = plan
        .expectations
        .traceroutes
        .iter()
        .map(|t| {
            let h = plan.host(&t.from).expect("planned host");
            (t.clone(), h.container.clone(), node_of(nodes, &h.node).cloned())
        })
        .collect();
    let results = stream::iter(jobs)
        .map(|(t, container, node)| async move {
            let Some(node) = node else {
                let e = "node not reachable from here".to_string();
                return (t, Err(e.clone()), Err(e));
            };
            // Both at once: they do not disturb each other (ICMP echo vs. UDP probes).
            let t0 = Instant::now();
            let (raw, ping) = futures_util::future::join(
                node.traceroute(&container, t.target, max_hops),
                node.ping(&container, t.target, None, false),
            )
            .await;
            tracing::debug!(from = %t.from, ms = t0.elapsed().as_millis() as u64, "traceroute and ping");
            if let Ok(p) = &raw {
                tracing::trace!(from = %t.from, output = %p.output, "traceroute");
            }
            let tr = raw.map(|p| parse_traceroute(&p.output)).map_err(|e| e.to_string());
            let ping = ping.map(|p| p.success).map_err(|e| e.to_string());
            (t, tr, ping)
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    for (t, tr, ping) in results {
        obs.traceroutes.insert((t.from.clone(), t.to.clone()), tr);
        obs.pings.insert((t.from, t.to), ping);
    }
}

/// Polls until the path matches the plan or `timeout` passes; then explains each failing
/// hop (session states) and returns the report.
pub async fn verify(plan: &Plan, nodes: &Nodes, timeout: Duration, progress: &dyn VerifyProgress) -> Report {
    let start = Instant::now();
    let deadline = start + timeout;
    let total = plan.path.len();
    let mut obs = Observed::default();
    // While the routers boot, one cheap end-to-end ping per round instead of reading every
    // router's table: on a small machine two dozen vtysh runs per round slow FRR's own start.
    let mut reachable = false;
    if let Some(t) = plan.expectations.traceroutes.first() {
        if let Some(h) = plan.host(&t.from) {
            if let Some(node) = node_of(nodes, &h.node) {
                progress.update(0, total, "waiting for end-to-end reachability");
                while Instant::now() < deadline {
                    // One exec per round that returns at the first reply (10 pings a second).
                    let left = deadline.saturating_duration_since(Instant::now()).as_secs().clamp(1, 10) as u32;
                    if node.ping_until(&h.container, t.target, left).await.is_ok_and(|p| p.success) {
                        reachable = true;
                        tracing::debug!(elapsed_ms = start.elapsed().as_millis() as u64, "far end answers");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let evpn = plan.evpn.is_some();
    // Once the far end answers, the first round traces and pings while it reads the tables
    // (the probes are only judged if the control plane is right). Later rounds, and a path
    // that never answered, read tables only: a traceroute into a broken path waits a second
    // per missing hop.
    let mut probe_now = reachable;
    loop {
        let probed = std::mem::take(&mut probe_now);
        obs.tables = if probed {
            tokio::join!(read_tables(plan, nodes), probe(plan, nodes, &mut obs)).0
        } else {
            read_tables(plan, nodes).await
        };
        if evpn {
            read_evpn(plan, nodes, &mut obs).await;
        }
        let report = compare(plan, &obs);
        let ok_hops = report.hops.iter().filter(|h| h.status == crate::verify::HopStatus::Ok).count();
        tracing::debug!(elapsed_ms = start.elapsed().as_millis() as u64, ok_hops, probed, "round");
        progress.update(ok_hops, total, if evpn { "BGP best paths and EVPN routes" } else { "BGP best paths" });
        if report.control_plane_ok {
            tracing::info!(elapsed_ms = start.elapsed().as_millis() as u64, "control plane verified");
            progress.update(ok_hops, total, "traceroute and ping");
            if !(probed && report.probes.iter().all(|p| p.ok)) {
                probe(plan, nodes, &mut obs).await;
            }
            if evpn {
                progress.update(ok_hops, total, "L2 pings, DF ping and VXLAN counters");
                l2_probe(plan, nodes, &mut obs).await;
            }
            let report = compare(plan, &obs);
            if report.verified || Instant::now() >= deadline {
                return finish(report, start);
            }
        } else if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Timed out in the control plane: read the sessions of failing hops to say why.
    let report = compare(plan, &obs);
    let failing: Vec<String> =
        report.hops.iter().filter(|h| h.status != HopStatus::Ok).map(|h| h.router.clone()).collect();
    for r in plan.path_routers().filter(|r| failing.contains(&r.name)) {
        if let Some(node) = node_of(nodes, &r.node) {
            if let Ok(s) = node.bgp_summary(&r.container).await {
                obs.summaries.insert(r.name.clone(), s);
            }
        }
    }
    // Every router answered but some chose another way: show where the traffic goes too.
    if report.hops.iter().all(|h| matches!(h.status, HopStatus::Ok | HopStatus::WrongPath)) {
        progress.update(0, total, "traceroute and ping (to show the deviation)");
        probe(plan, nodes, &mut obs).await;
        if evpn {
            l2_probe(plan, nodes, &mut obs).await;
        }
    }
    finish(compare(plan, &obs), start)
}

fn finish(mut report: Report, start: Instant) -> Report {
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    report
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>4}  {:<12} {:>10}  {:<10} {:<40} {:<24} status", "hop", "router", "AS", "node", "expected AS path (to last hop)", "observed")?;
        for h in &self.hops {
            let exp: Vec<Option<u32>> = h.expected.iter().map(|a| Some(*a)).collect();
            let expected = if exp.is_empty() { "(originates)".to_string() } else { show_path(&exp) };
            let observed = match &h.observed {
                None => "-".to_string(),
                Some(o) if *o == exp => "= expected".to_string(),
                Some(o) if o.is_empty() => "(originates)".to_string(),
                Some(o) => show_path(o),
            };
            writeln!(f, "{:>4}  {:<12} {:>10}  {:<10} {:<40} {:<24} {}", h.hop, h.router, h.asn, h.node, expected, observed, h.status)?;
            for p in &h.problems {
                writeln!(f, "        {p}")?;
            }
        }
        for h in &self.off_path {
            let note = if h.status == HopStatus::Ok { "ok (plain eBGP: no TE preference, shortest AS path)".to_string() } else { h.status.to_string() };
            writeln!(f, "{:>4}  {:<12} {:>10}  {:<10} off the path: {note}", "-", h.router, h.asn, h.node)?;
            for p in &h.problems {
                writeln!(f, "        {p}")?;
            }
        }
        for p in &self.probes {
            let mut status = if p.ok { "ok".to_string() } else { format!("FAILED: {}", p.problem.clone().unwrap_or_default()) };
            if let Some(d) = p.detail.as_ref().filter(|d| !d.is_empty()) {
                status.push_str(&format!(" ({d})"));
            }
            match p.kind.as_str() {
                "traceroute" => writeln!(f, "traceroute {} → {} ({} hops): {}", p.from, p.to, p.expected.len(), status)?,
                EVPN => writeln!(f, "evpn {} ← {} (VTEP {}): {}", p.from, p.to, p.target, status)?,
                L2_PING => writeln!(f, "l2 ping {} → {} ({}): {}", p.from, p.to, p.target, status)?,
                L2_PING_DF => writeln!(f, "l2 ping DF {} → {} ({}): {}", p.from, p.to, p.target, status)?,
                VXLAN_PATH => writeln!(f, "vxlan {} → {} on the planned links: {}", p.from, p.to, status)?,
                _ => writeln!(f, "ping {} → {} ({}): {}", p.from, p.to, p.target, status)?,
            }
        }
        writeln!(
            f,
            "path {}: {} ({} hops, {:.1} s)",
            self.path,
            if self.verified { "VERIFIED" } else { "NOT VERIFIED" },
            self.hops.len(),
            self.elapsed_ms as f64 / 1000.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{plan, spec};
    use vnet_te_agent::frr::{BgpPath, NextHop};

    fn table_for(plan: &Plan, router: &str) -> BgpTable {
        let mut t = BgpTable::default();
        for e in plan.expectations.routes.iter().filter(|e| e.router == router) {
            t.routes.insert(
                e.prefix.to_string(),
                vec![BgpPath {
                    valid: true,
                    bestpath: true,
                    path: e.as_path(plan).iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "),
                    nexthops: vec![NextHop {
                        ip: Some(e.next_hop.map(|a| a.to_string()).unwrap_or_else(|| "0.0.0.0".into())),
                        hostname: None,
                        used: true,
                    }],
                    local_pref: e.next_hop.map(|_| TE_LOCAL_PREF),
                    ..Default::default()
                }],
            );
        }
        t
    }

    fn good(plan: &Plan) -> Observed {
        let mut o = Observed::default();
        for r in &plan.path {
            o.tables.insert(r.clone(), Ok(table_for(plan, r)));
        }
        for t in &plan.expectations.traceroutes {
            o.traceroutes.insert((t.from.clone(), t.to.clone()), Ok(t.hops.iter().map(|a| Some(*a)).collect()));
            o.pings.insert((t.from.clone(), t.to.clone()), Ok(true));
        }
        o
    }

    fn spec_file(name: &str) -> spec::PathSpec {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../paths").join(name);
        spec::parse_yaml(name, &std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn path_of(asns: &[u32], via: &str, lp: Option<u32>) -> BgpPath {
        BgpPath {
            valid: true,
            bestpath: false,
            path: asns.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "),
            nexthops: vec![NextHop { ip: Some(via.to_string()), hostname: None, used: true }],
            local_pref: lp,
            ..Default::default()
        }
    }

    /// An off-path router's table: both LANs learned plainly, the shortest path best.
    fn plain_table(p: &Plan, r: &RouterPlan) -> BgpTable {
        let mut t = BgpTable::default();
        for n in p.networks.iter().filter(|n| n.role == NetworkRole::Lan) {
            let nb = &r.neighbors[0];
            let mut best = path_of(&[nb.remote_as], &nb.address.to_string(), None);
            best.bestpath = true;
            let longer = path_of(&[nb.remote_as, 1, 2], &nb.address.to_string(), None);
            t.routes.insert(n.subnet.to_string(), vec![best, longer]);
        }
        t
    }

    #[test]
    fn a_hand_removed_policy_is_named_with_the_path_that_won() {
        // Ring: r1's best way to dst's LAN is r2 (5 ASes); without the policy, r6 (1 AS) wins.
        let p = plan::build(&spec_file("ring-detour.yaml"), &plan::Inventory::default()).unwrap();
        let mut o = good(&p);
        assert!(compare(&p, &o).verified);
        let e = p.expectations.routes.iter().find(|e| e.router == "r1" && e.toward == Toward::Last).unwrap();
        let r1 = p.router("r1").unwrap();
        let r6 = r1.neighbors.iter().find(|n| n.peer == "r6").unwrap();
        let mut t = table_for(&p, "r1");
        let paths = t.routes.get_mut(&e.prefix.to_string()).unwrap();
        paths[0].bestpath = false;
        paths[0].local_pref = None;
        let mut short = path_of(&[r6.remote_as], &r6.address.to_string(), None);
        short.bestpath = true;
        paths.push(short);
        o.tables.insert("r1".into(), Ok(t));
        let r = compare(&p, &o);
        assert!(!r.verified && !r.control_plane_ok);
        let h = r.hops.iter().find(|h| h.router == "r1").unwrap();
        assert_eq!(h.status, HopStatus::WrongPath);
        let msg = &h.problems[0];
        assert!(msg.contains("(LAN of dst) via r6 (") && msg.contains("instead of via r2"), "{msg}");
        assert!(msg.contains("local-preference 100 (default), planned 200"), "{msg}");
        assert!(r.hops.iter().filter(|h| h.router != "r1").all(|h| h.status == HopStatus::Ok));
    }

    #[test]
    fn a_missing_policy_is_found_even_when_the_best_path_did_not_move() {
        let p = plan::build(&spec::chain("v", 4).unwrap(), &plan::Inventory::default()).unwrap();
        let mut o = good(&p);
        let mut t = table_for(&p, "r3");
        for paths in t.routes.values_mut() {
            paths[0].local_pref = None;
        }
        o.tables.insert("r3".into(), Ok(t));
        let r = compare(&p, &o);
        let h = r.hops.iter().find(|h| h.router == "r3").unwrap();
        assert_eq!(h.status, HopStatus::WrongPath);
        assert!(h.problems.iter().any(|m| m.contains("as planned, but with local-preference 100 (default)")), "{:?}", h.problems);
        // Locally originated routes carry no preference and need none.
        let r4 = r.hops.iter().find(|h| h.router == "r4").unwrap();
        assert_eq!(r4.status, HopStatus::Ok);
    }

    #[test]
    fn off_path_routers_must_be_plain_ebgp_speakers() {
        let mut s = spec_file("ring-detour.yaml");
        s.path = Some(vec!["r1".into(), "r2".into(), "r3".into()]);
        let p = plan::build(&s, &plan::Inventory::default()).unwrap();
        let mut o = good(&p);
        let r = compare(&p, &o);
        assert_eq!(r.off_path.len(), 3);
        assert!(r.off_path.iter().all(|h| h.status == HopStatus::Missing));
        for name in ["r4", "r5", "r6"] {
            o.tables.insert(name.into(), Ok(plain_table(&p, p.router(name).unwrap())));
        }
        let r = compare(&p, &o);
        assert!(r.verified, "{r}");
        // A leftover TE preference on r5.
        let mut t = plain_table(&p, p.router("r5").unwrap());
        for paths in t.routes.values_mut() {
            paths[0].local_pref = Some(TE_LOCAL_PREF);
        }
        o.tables.insert("r5".into(), Ok(t));
        // r6 prefers the longer path.
        let mut t = plain_table(&p, p.router("r6").unwrap());
        for paths in t.routes.values_mut() {
            paths[0].bestpath = false;
            paths[1].bestpath = true;
        }
        o.tables.insert("r6".into(), Ok(t));
        let r = compare(&p, &o);
        assert!(!r.verified);
        let r5 = r.off_path.iter().find(|h| h.router == "r5").unwrap();
        assert!(r5.problems[0].contains("TE policy is applied to a router off the path"), "{:?}", r5.problems);
        let r6 = r.off_path.iter().find(|h| h.router == "r6").unwrap();
        assert!(r6.problems[0].contains("has 3 ASes although one with 1 is offered"), "{:?}", r6.problems);
        assert!(format!("{r}").contains("off the path: WRONG PATH"), "{r}");
    }

    #[test]
    fn matching_observations_verify() {
        let p = plan::build(&spec::chain("v", 4).unwrap(), &plan::Inventory::default()).unwrap();
        let r = compare(&p, &good(&p));
        assert!(r.verified, "{r}");
    }

    #[test]
    fn a_down_router_and_a_wrong_path_are_named() {
        let p = plan::build(&spec::chain("v", 4).unwrap(), &plan::Inventory::default()).unwrap();
        let mut o = good(&p);
        o.tables.insert("r3".into(), Err("container vte-v-r3 is not running".into()));
        let mut t = table_for(&p, "r2");
        let lan_b = p.expectations.routes.iter().find(|e| e.router == "r2" && e.toward == Toward::Last).unwrap().prefix;
        t.routes.get_mut(&lan_b.to_string()).unwrap()[0].path = "4200000003 4200000099".into();
        o.tables.insert("r2".into(), Ok(t));
        let r = compare(&p, &o);
        assert!(!r.verified);
        let r3 = r.hops.iter().find(|h| h.router == "r3").unwrap();
        assert_eq!(r3.status, HopStatus::Down);
        let r2 = r.hops.iter().find(|h| h.router == "r2").unwrap();
        assert_eq!(r2.status, HopStatus::WrongPath);
        assert!(r2.problems[0].contains("4200000099"), "{:?}", r2.problems);
        assert_eq!(r.hops.iter().filter(|h| h.status == HopStatus::Ok).count(), 2);
    }

    #[test]
    fn a_traceroute_detour_is_reported() {
        let p = plan::build(&spec::chain("v", 3).unwrap(), &plan::Inventory::default()).unwrap();
        let mut o = good(&p);
        let t = &p.expectations.traceroutes[0];
        let mut seen: Vec<Option<Ipv4Addr>> = t.hops.iter().map(|a| Some(*a)).collect();
        seen[1] = None;
        o.traceroutes.insert((t.from.clone(), t.to.clone()), Ok(seen));
        let r = compare(&p, &o);
        assert!(r.control_plane_ok && !r.verified);
        assert!(r.probes[0].problem.as_ref().unwrap().starts_with("hop 2: nobody replied"));
    }

    fn evpn_good(p: &Plan) -> Observed {
        use vnet_te_agent::frr::{EvpnRoute, EvpnVni};
        let mut o = good(p);
        let e = p.evpn.as_ref().unwrap();
        for (edge, remote, want) in evpn_edges(p) {
            let vtep = remote.loopback.addr().to_string();
            let path = want.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
            let route = |t: u8, ip: &str| EvpnRoute {
                rd: format!("{vtep}:2"),
                prefix: String::new(),
                route_type: t,
                mac: None,
                ip: Some(ip.to_string()),
                valid: true,
                bestpath: true,
                path: path.clone(),
                next_hop: Some(vtep.clone()),
                route_targets: vec![e.route_target.clone()],
            };
            o.evpn_routes.insert(
                edge.name.clone(),
                Ok(EvpnRoutes { local_as: Some(edge.asn), routes: vec![route(3, &vtep), route(2, "10.210.1.10")] }),
            );
            let vni = EvpnVni { vni: e.vni, kind: "L2".into(), vxlan_if: None, num_macs: Some(2), remote_vteps: vec![vtep.clone()] };
            o.evpn_vnis.insert(edge.name.clone(), Ok(EvpnVnis { vnis: BTreeMap::from([(e.vni.to_string(), vni)]) }));
        }
        let (a, b) = (&p.hosts[0].name, &p.hosts[1].name);
        o.l2_pings.insert((L2_PING.into(), a.clone(), b.clone()), Ok(true));
        o.l2_pings.insert((L2_PING.into(), b.clone(), a.clone()), Ok(true));
        o.l2_pings.insert((L2_PING_DF.into(), a.clone(), b.clone()), Ok(true));
        // Counters: every planned link end moved 3 full packets each way, other links 200 bytes.
        let planned: Vec<(String, String)> = p.path.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
        for r in &p.routers {
            let mut before = Vec::new();
            let mut after = Vec::new();
            for (k, i) in r.interfaces.iter().enumerate() {
                let on = planned.iter().any(|(x, y)| (*x == r.name && *y == i.peer) || (*y == r.name && *x == i.peer));
                let c = InterfaceCounters { name: format!("eth{k}"), addresses: vec![i.address], rx_bytes: 1000, tx_bytes: 1000, ..Default::default() };
                let moved = if on { 3 * 1464 } else { 200 };
                after.push(InterfaceCounters { rx_bytes: c.rx_bytes + moved, tx_bytes: c.tx_bytes + moved, ..c.clone() });
                before.push(c);
            }
            o.counters_before.insert(r.name.clone(), Ok(before));
            o.counters_after.insert(r.name.clone(), Ok(after));
        }
        o
    }

    #[test]
    fn evpn_checks_pass_on_good_observations_and_name_what_is_missing() {
        let p = plan::build(&spec_file("evpn-pair.yaml"), &plan::Inventory::default()).unwrap();
        // Without any L2 observation the L3 checks alone do not verify an EVPN path.
        assert!(!compare(&p, &good(&p)).verified);
        let o = evpn_good(&p);
        let r = compare(&p, &o);
        assert!(r.verified, "{r}");
        let kinds: Vec<&str> = r.probes.iter().map(|p| p.kind.as_str()).collect();
        for k in [EVPN, L2_PING, L2_PING_DF, VXLAN_PATH] {
            assert!(kinds.contains(&k), "{kinds:?}");
        }
        let df = r.probes.iter().find(|p| p.kind == L2_PING_DF).unwrap();
        assert!(df.detail.as_ref().unwrap().contains("1400-byte packets (1372-byte ICMP payload)"), "{df:?}");

        // pe2 lost the type-3 route and the flood list entry.
        let mut bad = o.clone();
        if let Some(Ok(t)) = bad.evpn_routes.get_mut("pe2") {
            t.routes.retain(|r| r.route_type != 3);
        }
        if let Some(Ok(v)) = bad.evpn_vnis.get_mut("pe2") {
            v.vnis.values_mut().for_each(|v| v.remote_vteps.clear());
        }
        let r = compare(&p, &bad);
        assert!(!r.verified && !r.control_plane_ok);
        let pe2 = r.probes.iter().find(|p| p.kind == EVPN && p.from == "pe2").unwrap();
        let msg = pe2.problem.as_ref().unwrap();
        assert!(msg.contains("no EVPN type-3 route from VTEP 10.255.0.1 (pe1)"), "{msg}");
        assert!(msg.contains("remote VTEP 10.255.0.1 not in the flood list"), "{msg}");
        assert!(r.probes.iter().find(|p| p.kind == EVPN && p.from == "pe1").unwrap().ok);

        // The DF ping failed: named, and the counters are not judged.
        let mut bad = o.clone();
        bad.l2_pings.insert((L2_PING_DF.into(), "src".into(), "dst".into()), Ok(false));
        let r = compare(&p, &bad);
        assert!(r.control_plane_ok && !r.verified);
        let v = r.probes.iter().find(|p| p.kind == VXLAN_PATH).unwrap();
        assert!(v.problem.as_ref().unwrap().contains("DF ping did not pass"));
        let mut unrun = o.clone();
        unrun.l2_pings.clear();
        unrun.counters_before.clear();
        let r = compare(&p, &unrun);
        assert!(r.probes.iter().filter(|p| p.kind.starts_with("l2") || p.kind == VXLAN_PATH).all(|p| !p.ok && p.problem.as_deref() == Some("not run")));
    }

    #[test]
    fn vxlan_on_a_shortcut_is_reported() {
        let mut s = spec_file("ring-detour.yaml");
        s.l2vpn = spec::L2vpnMode::Evpn;
        let p = plan::build(&s, &plan::Inventory::default()).unwrap();
        let mut o = evpn_good(&p);
        for name in p.path.clone() {
            o.tables.insert(name.clone(), Ok(table_for(&p, &name)));
        }
        assert!(compare(&p, &o).verified);
        // The VXLAN packets went r1 → r6 directly; r2..r5 saw nothing.
        let r1 = p.router("r1").unwrap();
        let shortcut = r1.interfaces.iter().find(|i| i.peer == "r6").unwrap().address;
        let r3 = p.router("r3").unwrap();
        if let Some(Ok(after)) = o.counters_after.get_mut("r1") {
            let c = after.iter_mut().find(|c| c.addresses.contains(&shortcut)).unwrap();
            c.rx_bytes += 5000;
            c.tx_bytes += 5000;
        }
        let before = o.counters_before["r3"].clone();
        o.counters_after.insert("r3".into(), before);
        let r = compare(&p, &o);
        assert!(r.control_plane_ok && !r.verified);
        let v = r.probes.iter().find(|p| p.kind == VXLAN_PATH).unwrap();
        let msg = v.problem.as_ref().unwrap();
        assert!(msg.contains("link r1 — r6 off the path"), "{msg}");
        assert!(msg.contains("VXLAN took a shortcut"), "{msg}");
        assert!(msg.contains(&format!("planned link r3 — r2 ({}", r3.interfaces.iter().find(|i| i.peer == "r2").unwrap().address)), "{msg}");
        assert!(format!("{r}").contains("vxlan src → dst on the planned links: FAILED"), "{r}");
    }
}
