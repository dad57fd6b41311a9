//! Verification: read what the routers and hosts see (`observe`, I/O through the nodes)
//! and compare it with the plan's expectations (`compare`, pure).
//!
//! A BGP session that is up proves nothing about the data plane (internal bridges can drop
//! transit traffic while sessions stay up), so a path is verified only when every hop's
//! best routes match *and* traceroutes both ways follow the planned hops *and* pings pass.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use vnet_te_agent::frr::{BgpSummary, BgpTable};
use vnet_te_agent::node::Node;
use vnet_te_agent::probe::parse_traceroute;

use crate::deploy::{Nodes, PARALLELISM};
use crate::plan::{Plan, Toward};

/// What was read from the running path.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Per router: its BGP table, or why it could not be read.
    pub tables: BTreeMap<String, Result<BgpTable, String>>,
    /// Per router, read only to explain failures.
    pub summaries: BTreeMap<String, BgpSummary>,
    /// Per (from, to): reply addresses per TTL, or why the probe failed.
    pub traceroutes: BTreeMap<(String, String), Result<Vec<Option<Ipv4Addr>>, String>>,
    pub pings: BTreeMap<(String, String), Result<bool, String>>,
}

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub path: String,
    pub plan_hash: String,
    pub verified: bool,
    pub control_plane_ok: bool,
    pub hops: Vec<HopReport>,
    pub probes: Vec<ProbeReport>,
    /// Wall time to the verdict, in milliseconds (set by `verify`, not by `compare`).
    pub elapsed_ms: u64,
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
        match obs.tables.get(&r.name) {
            None => {
                status = HopStatus::Missing;
                problems.push("not read".into());
            }
            Some(Err(e)) => {
                status = HopStatus::Down;
                problems.push(e.clone());
            }
            Some(Ok(table)) => {
                for e in &exps {
                    let want = e.as_path(plan);
                    let prefix = e.prefix.to_string();
                    let Some(best) = table.best(&prefix) else {
                        if status == HopStatus::Ok {
                            status = HopStatus::Missing;
                        }
                        problems.push(format!("no route to {prefix}"));
                        continue;
                    };
                    if Some(e) == main_prefix.as_ref() {
                        observed = Some(best.as_path.clone());
                    }
                    let want_opt: Vec<Option<u32>> = want.iter().map(|a| Some(*a)).collect();
                    if best.as_path != want_opt {
                        status = HopStatus::WrongPath;
                        problems.push(format!(
                            "{prefix}: AS path [{}], expected [{}]",
                            show_path(&best.as_path),
                            show_path(&want_opt)
                        ));
                    } else if best.next_hop != e.next_hop {
                        status = HopStatus::WrongPath;
                        problems.push(format!(
                            "{prefix}: next hop {}, expected {}{}",
                            best.next_hop.map(|a| a.to_string()).unwrap_or_else(|| "local".into()),
                            e.next_hop.map(|a| a.to_string()).unwrap_or_else(|| "local".into()),
                            e.via.as_ref().map(|v| format!(" ({v})")).unwrap_or_default()
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
    let control_plane_ok = hops.iter().all(|h| h.status == HopStatus::Ok);

    let mut probes = Vec::new();
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
                            seen[i].map(|a| a.to_string()).unwrap_or_else(|| "nobody".into()),
                            t.hops[i]
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
        });
        let (ok, problem) = match obs.pings.get(&key) {
            None => (false, Some("not run".to_string())),
            Some(Err(e)) => (false, Some(e.clone())),
            Some(Ok(true)) => (true, None),
            Some(Ok(false)) => (false, Some("no reply".to_string())),
        };
        probes.push(ProbeReport {
            kind: "ping".into(),
            from: t.from.clone(),
            to: t.to.clone(),
            target: t.target,
            expected: vec![t.target],
            observed: vec![],
            ok,
            problem,
        });
    }
    let verified = control_plane_ok && probes.iter().all(|p| p.ok);
    Report {
        path: plan.name.clone(),
        plan_hash: plan.hash.clone(),
        verified,
        control_plane_ok,
        hops,
        probes,
        elapsed_ms: 0,
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

async fn read_tables(plan: &Plan, nodes: &Nodes, only: Option<&[String]>) -> BTreeMap<String, Result<BgpTable, String>> {
    let jobs: Vec<(String, String, Option<Arc<dyn Node>>)> = plan
        .path_routers()
        .filter(|r| only.is_none_or(|o| o.contains(&r.name)))
        .map(|r| (r.name.clone(), r.container.clone(), node_of(nodes, &r.node).cloned()))
        .collect();
    stream::iter(jobs)
        .map(|(name, container, node)| async move {
            let r = match node {
                None => Err("node not reachable from here".to_string()),
                Some(n) => n.bgp_table(&container).await.map_err(|e| e.to_string()),
            };
            (name, r)
        })
        .buffer_unordered(PARALLELISM * 2)
        .collect()
        .await
}

async fn probe(plan: &Plan, nodes: &Nodes, obs: &mut Observed) {
    let max_hops = plan.path.len() as u32 + 2;
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
            let tr = node
                .traceroute(&container, t.target, max_hops)
                .await
                .map(|p| parse_traceroute(&p.output))
                .map_err(|e| e.to_string());
            let ping = node.ping(&container, t.target, None, false).await.map(|p| p.success).map_err(|e| e.to_string());
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
    if let Some(t) = plan.expectations.traceroutes.first() {
        if let Some(h) = plan.host(&t.from) {
            if let Some(node) = node_of(nodes, &h.node) {
                progress.update(0, total, "waiting for end-to-end reachability");
                while Instant::now() < deadline {
                    if node.ping(&h.container, t.target, None, false).await.is_ok_and(|p| p.success) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    loop {
        obs.tables = read_tables(plan, nodes, None).await;
        let report = compare(plan, &obs);
        let ok_hops = report.hops.iter().filter(|h| h.status == crate::verify::HopStatus::Ok).count();
        progress.update(ok_hops, total, "BGP best paths");
        if report.control_plane_ok {
            tracing::info!(elapsed_ms = start.elapsed().as_millis() as u64, "control plane verified");
            progress.update(ok_hops, total, "traceroute and ping");
            probe(plan, nodes, &mut obs).await;
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
        for p in &self.probes {
            let status = if p.ok { "ok".to_string() } else { format!("FAILED: {}", p.problem.clone().unwrap_or_default()) };
            if p.kind == "traceroute" {
                writeln!(f, "traceroute {} → {} ({} hops): {}", p.from, p.to, p.expected.len(), status)?;
            } else {
                writeln!(f, "ping {} → {} ({}): {}", p.from, p.to, p.target, status)?;
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
}
