//! Comparison: what was observed on the running path (`exec::observe`) against the plan's
//! expectations → a report. Pure.
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
use std::net::Ipv4Addr;

use vnet_te_agent::frr::{BestRoute, BgpSummary, BgpTable, EvpnRoutes, EvpnVnis};
use vnet_te_agent::probe::InterfaceCounters;

use crate::core::plan::{HostPlan, NetworkRole, Plan, RouteExpectation, RouterPlan, Toward, TE_LOCAL_PREF};

pub mod distance;
mod evpn;
pub mod ipv6;
mod report;
mod schedule;
pub mod vpn;

pub use evpn::evpn_edges;
pub use schedule::{down_by_schedule, schedule_note};
use evpn::{evpn_probes, l2_probes};
pub use report::{HopReport, HopStatus, OffPathReport, ProbeReport, Report};
use report::show_path;

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
    /// Per (from, to): the fastest reply's round-trip time to each traceroute hop, µs.
    pub trace_rtts: BTreeMap<(String, String), Vec<Option<u64>>>,
    /// Per (from, to): the fastest ping's round-trip time, µs (None: no reply).
    pub ping_rtts: BTreeMap<(String, String), Option<u64>>,
    /// Per hop loopback (`announce: all`): pings from the first host to it.
    pub hop_pings: BTreeMap<Ipv4Addr, Result<bool, String>>,
    /// Per host attached to a LAN: pings from the other host to its address on that LAN.
    pub attach_pings: BTreeMap<String, Result<bool, String>>,
    /// Per (from, to): a burst of pings on a path with loss (None: it did not run).
    pub bursts: BTreeMap<(String, String), Option<vnet_te_agent::probe::PingSummary>>,
    /// What was read over IPv6 (paths that carry it).
    pub ipv6: ipv6::Observed6,
}

/// Kinds of L2 probes (the `kind` of their `ProbeReport`).
pub const L2_PING: &str = "l2-ping";
pub const L2_PING_DF: &str = "l2-ping-df";
pub const EVPN: &str = "evpn";
pub const VXLAN_PATH: &str = "vxlan-path";
/// Pings from the first host to a hop's loopback (`announce: all`).
pub const HOP_PING: &str = "ping-hop";
/// Pings from one host to the other's address on the LAN it is attached to.
pub const ATTACH_PING: &str = "ping-attach";
/// IPv4 + ICMP headers: a DF ping fills the MTU with a payload this much smaller.
pub const ICMP_OVERHEAD: u32 = 28;
/// Packets per ping probe (`Node::ping` sends three).
const PINGS: u64 = 3;


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
    let mut hops: Vec<HopReport> = plan.path_routers().map(|r| compare_hop(plan, r, obs)).collect();
    let mut off_path: Vec<OffPathReport> =
        plan.routers.iter().filter(|r| r.hop.is_none()).map(|r| compare_off_path(plan, r, obs)).collect();
    if let Some(six) = &plan.ipv6 {
        for (h, r) in hops.iter_mut().zip(plan.path_routers()) {
            ipv6::check_hop(plan, six, r, &obs.ipv6, h);
        }
        for (o, r) in off_path.iter_mut().zip(plan.routers.iter().filter(|r| r.hop.is_none())) {
            ipv6::check_off_path(plan, six, r, &obs.ipv6, o);
        }
    }
    let mut probes = evpn_probes(plan, obs);
    let control_plane_ok = hops.iter().all(|h| h.status == HopStatus::Ok)
        && off_path.iter().all(|h| h.status == HopStatus::Ok)
        && probes.iter().all(|p| p.ok);
    let full = plan.verify.is_full();
    if full && plan.carries_ipv4() {
        probes.extend(path_probes(plan, obs));
        probes.extend(hop_probes(plan, obs));
        probes.extend(attach_probes(plan, obs));
    }
    let report6 = plan.ipv6.as_ref().map(|six| ipv6::Report6 {
        family: ipv6::family(six),
        probes: if full { ipv6::probes(plan, six, &obs.ipv6) } else { Vec::new() },
    });
    probes.extend(l2_probes(plan, obs));
    let distance = if full { distance::delay_reports(plan, obs) } else { Vec::new() };
    let note = (!full).then(|| {
        let why = if plan.path.len() > crate::core::spec::MAX_DATA_PLANE_HOPS {
            format!(": no packet crosses {} routers", plan.path.len())
        } else {
            String::new()
        };
        format!("data plane not checked (verify: control-plane){why}")
    });
    let verified = control_plane_ok
        && probes.iter().all(|p| p.ok)
        && distance.iter().all(|d| d.ok)
        && report6.as_ref().is_none_or(|r| r.probes.iter().all(|p| p.ok));
    Report {
        path: plan.name.clone(),
        plan_hash: plan.hash.clone(),
        verified,
        control_plane_ok,
        hops,
        off_path,
        probes,
        distance,
        rate: None,
        down_by_schedule: Vec::new(),
        note,
        elapsed_ms: 0,
        ipv6: report6,
    }
}

/// One router of the path: its best route to every forced prefix against the plan, and
/// when that fails, the state of its sessions.
fn compare_hop(plan: &Plan, r: &RouterPlan, obs: &Observed) -> HopReport {
    let routes = plan.routes_of(&r.name);
    let main_prefix = routes.iter().find(|e| e.toward == Toward::Last && e.origin.is_none());
    let expected = main_prefix.map(|e| e.as_path(plan)).unwrap_or_default();
    let mut problems = Vec::new();
    let mut status = HopStatus::Ok;
    let mut observed = None;
    match table_of(obs, &r.name) {
        // An IPv6-only path has no IPv4 routes to check (`ipv6::check_hop` reads its own).
        _ if !plan.carries_ipv4() => {}
        Err((s, problem)) => {
            status = s;
            problems.push(problem);
        }
        Ok(table) => {
            for e in &routes {
                let prefix = e.prefix.to_string();
                let Some(best) = table.best(&prefix) else {
                    if status == HopStatus::Ok {
                        status = HopStatus::Missing;
                    }
                    problems.push(format!("no route to {prefix}{}", prefix_label(plan, &prefix)));
                    continue;
                };
                if Some(e) == main_prefix {
                    observed = Some(best.as_path.clone());
                }
                if let Some(problem) = route_problem(plan, r, e, table, &best) {
                    status = HopStatus::WrongPath;
                    problems.push(problem);
                }
            }
        }
    }
    if status != HopStatus::Ok {
        problems.extend(session_problems(r, obs));
    }
    HopReport {
        hop: r.hop.unwrap_or(0) + 1,
        router: r.name.clone(),
        asn: r.asn,
        node: r.node.clone(),
        expected,
        observed,
        status,
        problems,
    }
}

/// What is wrong with the best route `best` for expectation `e`, if anything: another way
/// than planned (and why, when the planned neighbour's route is there), or the planned way
/// without the TE preference that forces it.
fn route_problem(
    plan: &Plan,
    r: &RouterPlan,
    e: &RouteExpectation,
    table: &BgpTable,
    best: &BestRoute,
) -> Option<String> {
    let prefix = e.prefix.to_string();
    let what = prefix_label(plan, &prefix);
    let want_opt: Vec<Option<u32>> = e.as_path(plan).iter().map(|a| Some(*a)).collect();
    let planned_peer = e.via.clone().unwrap_or_else(|| "?".into());
    if best.as_path != want_opt || best.next_hop != e.next_hop {
        let Some(planned_nh) = e.next_hop else {
            // Planned as originated here; something else won.
            return Some(format!(
                "best path to {prefix}{what} via {} instead of this router's own",
                via_text(r, best.next_hop, &best.as_path),
            ));
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
        return Some(msg);
    }
    if e.next_hop.is_some() && best.local_pref != Some(TE_LOCAL_PREF) {
        // Right way today, but only because nothing shorter exists: the policy that forces
        // it is gone.
        return Some(format!(
            "{prefix}{what}: via {planned_peer} as planned, but with local-preference {}, planned {TE_LOCAL_PREF}: the TE policy toward {planned_peer} is not in effect",
            show_pref(best.local_pref)
        ));
    }
    None
}

/// Sessions of a failing hop that are not established (read only to explain failures).
fn session_problems(r: &RouterPlan, obs: &Observed) -> Vec<String> {
    let Some(s) = obs.summaries.get(&r.name) else { return Vec::new() };
    s.peers()
        .into_iter()
        .filter(|(_, p)| p.state != "Established")
        .map(|(addr, p)| {
            let who = r.neighbors.iter().find(|n| n.address.to_string() == addr).map(|n| n.peer.clone());
            format!("session to {} ({addr}) is {}", who.unwrap_or_else(|| "?".into()), p.state)
        })
        .collect()
}

/// Traceroute and ping between the hosts, both ways.
fn path_probes(plan: &Plan, obs: &Observed) -> Vec<ProbeReport> {
    let mut probes = Vec::new();
    for t in &plan.expectations.traceroutes {
        let key = (t.from.clone(), t.to.clone());
        let (observed, ok, problem) = match obs.traceroutes.get(&key) {
            None => (vec![], false, Some("not run".to_string())),
            Some(Err(e)) => (vec![], false, Some(e.clone())),
            Some(Ok(seen)) => {
                let want: Vec<Option<Ipv4Addr>> = t.hops.iter().map(|a| Some(*a)).collect();
                let ok = *seen == want;
                let problem = (!ok).then(|| match seen.iter().zip(&want).position(|(a, b)| a != b) {
                    Some(i) => format!(
                        "hop {}: {} replied, expected {}",
                        i + 1,
                        seen[i].map(|a| owner_label(plan, a)).unwrap_or_else(|| "nobody".into()),
                        owner_label(plan, t.hops[i])
                    ),
                    None => format!("{} hops, expected {}", seen.len(), want.len()),
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
        probes.push(ping_probe("ping", &t.from, &t.to, t.target, obs.pings.get(&key), None));
    }
    probes
}

/// Pings from the first host to every hop's loopback (`announce: all`): each hop reachable.
fn hop_probes(plan: &Plan, obs: &Observed) -> Vec<ProbeReport> {
    let Some(from) = plan.hosts.first() else { return Vec::new() };
    plan.hop_loopbacks()
        .into_iter()
        .map(|(hop, router, target)| {
            let what = format!("loopback of {router}, hop {}", hop + 1);
            ping_probe(HOP_PING, &from.name, router, target, obs.hop_pings.get(&target), Some(what))
        })
        .collect()
}

/// Pings from the far host to each attached host's address on its LAN: the attached LAN is
/// routed back along the path and the host is on it.
fn attach_probes(plan: &Plan, obs: &Observed) -> Vec<ProbeReport> {
    attach_targets(plan)
        .into_iter()
        .map(|(from, to, target)| {
            let what = format!("{} on the LAN of {}", to.name, to.attach.as_ref().map_or("?", |a| a.parent.as_str()));
            ping_probe(ATTACH_PING, &from.name, &to.name, target, obs.attach_pings.get(&to.name), Some(what))
        })
        .collect()
}

/// For each host attached to a LAN: the other host, that host, and its address on the LAN.
pub fn attach_targets(plan: &Plan) -> Vec<(&HostPlan, &HostPlan, Ipv4Addr)> {
    let (Some(a), Some(b)) = (plan.hosts.first(), plan.hosts.get(1)) else { return Vec::new() };
    [(b, a), (a, b)].into_iter().filter_map(|(from, to)| to.attach.as_ref().map(|at| (from, to, at.address))).collect()
}

/// A ping probe of `kind` as `r` answered; a problem names the target as `target (what)`
/// where `what` is given.
fn ping_probe(kind: &str, from: &str, to: &str, target: Ipv4Addr, r: Option<&Result<bool, String>>, what: Option<String>) -> ProbeReport {
    let (ok, problem) = ping_result(r);
    ProbeReport {
        kind: kind.into(),
        from: from.to_string(),
        to: to.to_string(),
        target,
        expected: vec![target],
        observed: vec![],
        ok,
        problem: problem.map(|e| match &what {
            Some(w) => format!("{target} ({w}): {e}"),
            None => e,
        }),
        detail: None,
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
    if let Some(h) = plan.hosts.iter().find(|h| h.attach.as_ref().is_some_and(|a| a.subnet.to_string() == prefix)) {
        return format!(" (LAN {} is attached to)", h.name);
    }
    match plan.routers.iter().find(|r| r.loopback.to_string() == prefix) {
        Some(r) => format!(" (loopback of {})", r.name),
        None => String::new(),
    }
}

/// Where a best path leads: "r5 (10.199.0.35, AS path 65005 65009)", the neighbour named
/// when the next hop is one of `r`'s planned neighbours.
fn via_text(r: &RouterPlan, next_hop: Option<Ipv4Addr>, as_path: &[Option<u32>]) -> String {
    via_peer(next_hop, |nh| r.neighbors.iter().find(|n| n.address == nh).map(|n| n.peer.as_str()), as_path)
}

/// The same for either family: `peer_of` names the planned neighbour at a next hop.
fn via_peer<'a, A: Copy + std::fmt::Display>(next_hop: Option<A>, peer_of: impl Fn(A) -> Option<&'a str>, as_path: &[Option<u32>]) -> String {
    let path = show_path_or_local(as_path);
    match next_hop {
        None => format!("this router itself (AS path {path})"),
        Some(nh) => match peer_of(nh) {
            Some(peer) => format!("{peer} ({nh}, AS path {path})"),
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
    let of_host = |h: &&HostPlan| {
        h.address == a || h.l2_address.is_some_and(|l| l.addr() == a) || h.attach.as_ref().is_some_and(|at| at.address == a)
    };
    match plan.hosts.iter().find(of_host) {
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
        _ if !plan.carries_ipv4() => {}
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

#[cfg(test)]
mod tests;
