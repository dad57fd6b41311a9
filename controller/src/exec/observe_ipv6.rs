//! Observation over IPv6 (paths that carry it): every router's `show bgp ipv6 unicast json`,
//! traceroute6 and ping6 between the hosts both ways, and, for an IPv6-only path, the wait
//! for the far end to answer before the tables are read.

use std::time::{Duration, Instant};

use vnet_te_agent::probe::parse_traceroute6;

use super::nodes::Nodes;
use super::observe::{per_router, probe_wait_ms};
use crate::core::compare::ipv6::{traceroutes, Observed6};
use crate::core::plan::Plan;

/// The IPv6 BGP table of every router.
pub async fn read_tables(plan: &Plan, nodes: &Nodes, obs: &mut Observed6) {
    if plan.ipv6.is_none() {
        return;
    }
    obs.tables = per_router(nodes, plan.routers.iter().collect(), |n, c| async move { n.bgp_table6(&c).await }).await;
}

/// traceroute6 and ping6 from each host to the other.
pub async fn probe(plan: &Plan, nodes: &Nodes, obs: &mut Observed6) {
    let Some(six) = &plan.ipv6 else { return };
    let max_hops = (plan.path.len() as u32 + 2).min(255);
    let wait = probe_wait_ms(plan);
    let jobs = traceroutes(plan, six).into_iter().map(|(from, to, target, _)| async move {
        let h = plan.host(&from).expect("planned host");
        let key = (from.clone(), to.clone());
        let Some(node) = nodes.by_name.get(&h.node) else {
            let e = "node not reachable from here".to_string();
            return (key, Err(e.clone()), Err(e));
        };
        let (trace, ping) = futures_util::future::join(node.traceroute6(&h.container, target, max_hops, wait), node.ping6(&h.container, target, wait)).await;
        if let Ok(p) = &trace {
            tracing::trace!(from = %from, output = %p.output, "traceroute6");
        }
        (key, trace.map(|p| parse_traceroute6(&p.output)).map_err(|e| e.to_string()), ping.map(|p| p.success).map_err(|e| e.to_string()))
    });
    for (key, trace, ping) in futures_util::future::join_all(jobs).await {
        obs.traceroutes.insert(key.clone(), trace);
        obs.pings.insert(key, ping);
    }
}

/// Pings the far host over IPv6 from the first until it answers or `deadline` passes (an
/// IPv6-only path has no IPv4 route to wait for).
pub async fn reach(plan: &Plan, nodes: &Nodes, deadline: Instant) -> bool {
    let Some(six) = &plan.ipv6 else { return false };
    let Some((from, _, target, _)) = traceroutes(plan, six).into_iter().next() else { return false };
    let Some(h) = plan.host(&from) else { return false };
    let Some(node) = nodes.by_name.get(&h.node) else { return false };
    while Instant::now() < deadline {
        if node.ping6(&h.container, target, 200).await.is_ok_and(|p| p.success) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
