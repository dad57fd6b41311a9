//! Observation: polls the nodes until the running path matches its plan or time runs out
//! (BGP tables over the vty socket, traceroutes, pings, EVPN reads, interface counters) and
//! hands what it saw to `core::compare`.
//!
//! A BGP session that is up proves nothing about the data plane (internal bridges can drop
//! transit traffic while sessions stay up), so a path is verified only when every hop's
//! best routes match *and* traceroutes both ways follow the planned hops *and* pings pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use vnet_te_agent::frr::BgpTable;
use vnet_te_agent::node::{Node, Probe};
use vnet_te_agent::probe::{parse_ping, parse_ping_each, parse_traceroute, parse_traceroute_rtts, InterfaceCounters};

use super::nodes::{Nodes, PARALLELISM};
use crate::core::compare::distance::{hops_within, BURST};
use crate::core::compare::{attach_targets, compare, evpn_edges, HopStatus, Observed, Report, ICMP_OVERHEAD, L2_PING, L2_PING_DF};
use crate::core::plan::distance::round_trip_delivery;
use crate::core::plan::{Plan, RouterPlan};

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
pub(super) async fn per_router<T, F, Fut>(nodes: &Nodes, routers: Vec<&RouterPlan>, f: F) -> BTreeMap<String, Result<T, String>>
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
        na.ping(&a.container, lb.addr(), None, false, probe_wait_ms(plan)),
        nb.ping(&b.container, la.addr(), None, false, probe_wait_ms(plan)),
    )
    .await;
    obs.l2_pings.insert((L2_PING.into(), a.name.clone(), b.name.clone()), ok(ab));
    obs.l2_pings.insert((L2_PING.into(), b.name.clone(), a.name.clone()), ok(ba));
    obs.counters_before = read_counters(plan, nodes).await;
    let df = na.ping(&a.container, lb.addr(), Some(e.mtu.saturating_sub(ICMP_OVERHEAD)), true, probe_wait_ms(plan)).await;
    obs.counters_after = read_counters(plan, nodes).await;
    obs.l2_pings.insert((L2_PING_DF.into(), a.name.clone(), b.name.clone()), ok(df));
}

/// Seconds of the throughput test.
const RATE_SECONDS: u32 = 5;

/// TCP throughput from the first host to the last (iperf3), bits per second.
pub async fn measure_rate(plan: &Plan, nodes: &Nodes) -> Result<u64, String> {
    let (Some(a), Some(b)) = (plan.hosts.first(), plan.hosts.get(1)) else { return Err("no hosts".into()) };
    let (Some(na), Some(nb)) = (node_of(nodes, &a.node), node_of(nodes, &b.node)) else {
        return Err("node not reachable from here".into());
    };
    nb.iperf_server(&b.container).await.map_err(|e| e.to_string())?;
    // The server listens a moment after it went to the background.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = na.iperf_client(&a.container, b.address, RATE_SECONDS).await.map_err(|e| e.to_string())?;
        if let Some(bps) = vnet_te_agent::probe::parse_iperf(&out.output) {
            return Ok(bps as u64);
        }
        if Instant::now() > deadline {
            return Err(format!("iperf3 gave no result: {}", out.output.chars().take(200).collect::<String>()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long a probe waits for a reply: a second, or twice the path's round trip and a second.
pub fn probe_wait_ms(plan: &Plan) -> u32 {
    let rtt_ms = plan.distance.as_ref().map_or(0, |d| (d.one_way_us + d.back_us) / 1000);
    (1000 + 2 * rtt_ms).min(u64::from(u32::MAX)) as u32
}

/// The longest single wait for the far end's first reply: 10 s; on a path whose round trip
/// is longer, one ping that runs until the deadline. Its first reply comes one round trip after
/// the path is up, where rounds of a fixed length answer only requests sent in their first
/// seconds and would add up to two round trips more.
fn reach_window_secs(plan: &Plan) -> u64 {
    let rtt_secs = plan.distance.as_ref().map_or(0, |d| (d.one_way_us + d.back_us).div_ceil(1_000_000));
    if rtt_secs < 10 {
        10
    } else {
        3600
    }
}

/// Traceroutes per direction on a path with distance: two at once, and a third when the
/// faster of the two is not within its allowance at every hop. Each hop's time is the fastest
/// sample, so one late reply on a busy machine does not fail a link, and a second round trip
/// is spent only when both samples had one.
const DELAY_SAMPLES: usize = 2;
const DELAY_SAMPLES_AT_MOST: usize = 3;

/// A burst of pings each way on a path with loss, once per verification: its count of
/// replies is judged against the planned loss, and measuring again until one passes would
/// only hide a loss that is off.
async fn loss_bursts(plan: &Plan, nodes: &Nodes, obs: &mut Observed) {
    let wait = probe_wait_ms(plan);
    let bursts = stream::iter(plan.expectations.traceroutes.iter())
        .map(|t| async move {
            let h = plan.host(&t.from).expect("planned host");
            let summary = match node_of(nodes, &h.node) {
                Some(n) => n.ping_burst(&h.container, t.target.into(), BURST, wait).await.ok().and_then(|p| parse_ping(&p.output)),
                None => None,
            };
            ((t.from.clone(), t.to.clone()), summary)
        })
        .buffer_unordered(2)
        .collect::<Vec<_>>()
        .await;
    obs.bursts.extend(bursts);
}

/// Pings from the first host to every hop's loopback (`announce: all`): one exec in the
/// host for all of them (the node pings a few at a time), since an exec per hop would cost
/// more than the pings.
async fn hop_pings(plan: &Plan, nodes: &Nodes) -> BTreeMap<std::net::Ipv4Addr, Result<bool, String>> {
    let targets: Vec<std::net::Ipv4Addr> = plan.hop_loopbacks().into_iter().map(|(_, _, t)| t).collect();
    let Some(h) = plan.hosts.first().filter(|_| !targets.is_empty()) else { return BTreeMap::new() };
    let answer = match node_of(nodes, &h.node) {
        None => Err("node not reachable from here".to_string()),
        Some(n) => n.ping_each(&h.container, &targets, probe_wait_ms(plan)).await.map_err(|e| e.to_string()),
    };
    let seen = answer.as_ref().map(|p| parse_ping_each(&p.output));
    targets
        .into_iter()
        .map(|t| {
            let r = match &seen {
                Err(e) => Err(e.to_string()),
                Ok(seen) => seen.get(&t).copied().ok_or_else(|| "not pinged".to_string()),
            };
            (t, r)
        })
        .collect()
}

/// Pings from the far host to each attached host's address on its LAN.
async fn attach_pings(plan: &Plan, nodes: &Nodes) -> BTreeMap<String, Result<bool, String>> {
    let wait = probe_wait_ms(plan);
    let pings = attach_targets(plan).into_iter().map(|(from, to, target)| async move {
        let r = match node_of(nodes, &from.node) {
            None => Err("node not reachable from here".to_string()),
            Some(n) => n.ping(&from.container, target, None, false, wait).await.map(|p| p.success).map_err(|e| e.to_string()),
        };
        (to.name.clone(), r)
    });
    futures_util::future::join_all(pings).await.into_iter().collect()
}

async fn probe(plan: &Plan, nodes: &Nodes, obs: &mut Observed) {
    if !plan.carries_ipv4() {
        return;
    }
    // traceroute's -m stops at 255, as does the IPv4 TTL.
    let max_hops = (plan.path.len() as u32 + 2).min(255);
    let wait = probe_wait_ms(plan);
    let jobs: Vec<_> = plan
        .expectations
        .traceroutes
        .iter()
        .map(|t| {
            let h = plan.host(&t.from).expect("planned host");
            (t.clone(), h.container.clone(), node_of(nodes, &h.node).cloned())
        })
        .collect();
    let traces = stream::iter(jobs)
        .map(|(t, container, node)| async move {
            let Some(node) = node else {
                let e = "node not reachable from here".to_string();
                return (t, Err(e.clone()), Err(e), Vec::new(), None);
            };
            // Both at once: they do not disturb each other (ICMP echo vs. UDP probes).
            let t0 = Instant::now();
            let trace = || node.traceroute(&container, t.target, max_hops, wait, plan.distance.is_some());
            let samples = if plan.distance.is_some() { DELAY_SAMPLES } else { 1 };
            let traces = futures_util::future::join_all((0..samples).map(|_| trace()));
            let (mut traces, ping) = futures_util::future::join(traces, node.ping(&container, t.target, None, false, wait)).await;
            let rtts_of = |r: &Result<Probe, _>| r.as_ref().ok().map(|p| micros(parse_traceroute_rtts(&p.output)));
            let mut rtts = fastest(traces.iter().filter_map(rtts_of));
            if !hops_within(plan, &t, &rtts) {
                let more = futures_util::future::join_all((samples..DELAY_SAMPLES_AT_MOST).map(|_| trace())).await;
                rtts = fastest(std::iter::once(rtts).chain(more.iter().filter_map(rtts_of)));
            }
            let raw = traces.swap_remove(0);
            tracing::debug!(from = %t.from, ms = t0.elapsed().as_millis() as u64, "traceroute and ping");
            if let Ok(p) = &raw {
                tracing::trace!(from = %t.from, output = %p.output, "traceroute");
            }
            let ping_rtt = ping.as_ref().ok().and_then(|p| parse_ping(&p.output)).and_then(|s| s.rtt_ms).map(|(min, _, _)| (min * 1000.0) as u64);
            let tr = raw.map(|p| parse_traceroute(&p.output)).map_err(|e| e.to_string());
            let ping = ping.map(|p| p.success).map_err(|e| e.to_string());
            (t, tr, ping, rtts, ping_rtt)
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>();
    let (results, hops, attached) = futures_util::future::join3(traces, hop_pings(plan, nodes), attach_pings(plan, nodes)).await;
    obs.hop_pings = hops;
    obs.attach_pings = attached;
    for (t, tr, ping, rtts, ping_rtt) in results {
        let key = (t.from.clone(), t.to.clone());
        obs.traceroutes.insert(key.clone(), tr);
        obs.trace_rtts.insert(key.clone(), rtts);
        obs.ping_rtts.insert(key.clone(), ping_rtt);
        obs.pings.insert(key, ping);
    }
}

/// Polls until the path matches the plan or `timeout` passes; then explains each failing
/// hop (session states) and returns the report. A path with an IPsec tunnel whose routes are
/// right is then held to the tunnel's evidence too (`exec::vpn::observe`).
pub async fn verify(plan: &Plan, nodes: &Nodes, timeout: Duration, progress: &dyn VerifyProgress) -> Report {
    let mut report = verify_routing(plan, nodes, timeout, progress).await;
    if let Some(v) = plan.vpn.as_ref().filter(|_| report.control_plane_ok) {
        let start = Instant::now();
        progress.update(report.hops.len(), plan.path.len(), "IPsec: SAs, and ESP counters during a ping burst");
        let obs = super::vpn::observe(plan, nodes).await;
        let probes = crate::core::compare::vpn::compare(plan, v, &obs);
        report.verified &= probes.iter().all(|p| p.ok);
        report.probes.extend(probes);
        report.elapsed_ms += start.elapsed().as_millis() as u64;
    }
    report
}

async fn verify_routing(plan: &Plan, nodes: &Nodes, timeout: Duration, progress: &dyn VerifyProgress) -> Report {
    let start = Instant::now();
    let deadline = start + timeout;
    let total = plan.path.len();
    let mut obs = Observed::default();
    // While the routers boot, one cheap end-to-end ping per round instead of reading every
    // router's table: on a small machine two dozen vtysh runs per round slow FRR's own start.
    let mut reachable = false;
    let full = plan.verify.is_full();
    if full && !plan.carries_ipv4() {
        progress.update(0, total, "waiting for end-to-end reachability (IPv6)");
        reachable = super::observe_ipv6::reach(plan, nodes, deadline).await;
    }
    if let Some(t) = plan.expectations.traceroutes.first().filter(|_| full && plan.carries_ipv4()) {
        if let Some(h) = plan.host(&t.from) {
            if let Some(node) = node_of(nodes, &h.node) {
                progress.update(0, total, "waiting for end-to-end reachability");
                while Instant::now() < deadline {
                    // One exec per round that returns at the first reply; each round at least
                    // one round trip long, or a reply across minutes of delay is never awaited.
                    let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                    let left = left.clamp(1, reach_window_secs(plan)) as u32;
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
        super::observe_ipv6::read_tables(plan, nodes, &mut obs.ipv6).await;
        if probed {
            super::observe_ipv6::probe(plan, nodes, &mut obs.ipv6).await;
        }
        if evpn {
            read_evpn(plan, nodes, &mut obs).await;
        }
        let report = compare(plan, &obs);
        let ok_hops = report.hops.iter().filter(|h| h.status == HopStatus::Ok).count();
        tracing::debug!(elapsed_ms = start.elapsed().as_millis() as u64, ok_hops, probed, "round");
        progress.update(ok_hops, total, if evpn { "BGP best paths and EVPN routes" } else { "BGP best paths" });
        if report.control_plane_ok && !full {
            return finish(report, start);
        }
        if report.control_plane_ok {
            tracing::info!(elapsed_ms = start.elapsed().as_millis() as u64, "control plane verified");
            progress.update(ok_hops, total, "traceroute and ping");
            if !(probed && report.probes.iter().all(|p| p.ok)) {
                probe(plan, nodes, &mut obs).await;
            }
            if !(probed && report.ipv6.as_ref().is_none_or(|r| r.probes.iter().all(|p| p.ok))) {
                super::observe_ipv6::probe(plan, nodes, &mut obs.ipv6).await;
            }
            if evpn {
                progress.update(ok_hops, total, "L2 pings, DF ping and VXLAN counters");
                l2_probe(plan, nodes, &mut obs).await;
            }
            if obs.bursts.is_empty() && round_trip_delivery(plan).is_some() {
                progress.update(ok_hops, total, "loss (a burst of pings each way)");
                loss_bursts(plan, nodes, &mut obs).await;
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
    if full && report.hops.iter().all(|h| matches!(h.status, HopStatus::Ok | HopStatus::WrongPath)) {
        progress.update(0, total, "traceroute and ping (to show the deviation)");
        probe(plan, nodes, &mut obs).await;
        super::observe_ipv6::probe(plan, nodes, &mut obs.ipv6).await;
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

/// Per hop, the fastest of several traceroutes' times.
fn fastest(runs: impl Iterator<Item = Vec<Option<u64>>>) -> Vec<Option<u64>> {
    runs.fold(Vec::new(), |best, run| {
        let n = best.len().max(run.len());
        (0..n)
            .map(|i| match (best.get(i).copied().flatten(), run.get(i).copied().flatten()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            })
            .collect()
    })
}

fn micros(ms: Vec<Option<f64>>) -> Vec<Option<u64>> {
    ms.into_iter().map(|m| m.map(|m| (m * 1000.0).round() as u64)).collect()
}
