//! The IPsec tunnel of a path: set up at create (the ESP engine probed in an end, the PSK's
//! configuration written into both ends, charon started, the responder first) and observed
//! for `path verify` (SAs at both ends; counters on every transit router around a ping burst
//! between the hosts).

use std::time::{Duration, Instant};

use base64::Engine as _;
use vnet_te_agent::node::{Node, NodeError};
use vnet_te_agent::probe::parse_ping;
use vnet_te_agent::vpn::VpnOp;

use super::nodes::{DeployError, Nodes};
use crate::core::compare::vpn::VpnObserved;
use crate::core::plan::vpn::{VpnEngine, VpnPlan};
use crate::core::plan::Plan;

/// Bytes of a path's pre-shared key (base64 in swanctl.conf).
const PSK_BYTES: usize = 32;
/// Pings of the burst whose ESP the transit routers count (100 a second).
const BURST: u32 = 100;
/// How long verification waits for both ends' SAs.
const SA_WAIT: Duration = Duration::from_secs(30);

/// A fresh pre-shared key from the system's random source, base64.
pub fn new_psk() -> String {
    let mut key = [0u8; PSK_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).expect("the system random source answers");
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn node<'a>(nodes: &'a Nodes, name: &str) -> Result<&'a std::sync::Arc<dyn Node>, DeployError> {
    nodes.by_name.get(name).ok_or_else(|| DeployError::UnknownNode(name.to_string()))
}

fn step(step: &'static str, container: &str, output: String) -> DeployError {
    DeployError::Step { step, source: NodeError::Failed { doing: format!("{step} in {container}"), message: output.trim().to_string() } }
}

/// Probes the engine (recorded in the plan), writes both ends' configuration and starts
/// charon in each, the responder first so the initiator's first exchange is answered.
pub async fn setup(plan: &mut Plan, nodes: &Nodes, psk: &str) -> Result<(), DeployError> {
    let Some(vpn) = plan.vpn.clone() else { return Ok(()) };
    let first = &vpn.ends[0];
    let probe = node(nodes, &first.node)?
        .vpn(&first.container, &VpnOp::ProbeEsp {})
        .await
        .map_err(|source| DeployError::Step { step: "probing kernel ESP", source })?;
    let engine = if probe.success { VpnEngine::Kernel } else { VpnEngine::Libipsec };
    tracing::info!(%engine, probe = %probe.output.trim(), "IPsec engine");
    let mut vpn: VpnPlan = vpn;
    vpn.engine = Some(engine);
    plan.vpn = Some(vpn.clone());
    let files = crate::core::vpn_render::render(plan, &vpn, psk);
    for end in vpn.ends.iter().rev() {
        let n = node(nodes, &end.node)?;
        let specs = crate::core::objects::file_specs(files.get(&end.name));
        n.write_files(&end.container, &specs).await.map_err(|source| DeployError::Step { step: "writing the IPsec configuration", source })?;
        let started = n.vpn(&end.container, &VpnOp::Start {}).await.map_err(|source| DeployError::Step { step: "starting strongSwan", source })?;
        if !started.success {
            return Err(step("starting strongSwan", &end.container, started.output));
        }
    }
    eprintln!("{}: strongSwan IKEv2 between {} and {}, ESP engine: {engine}", vpn.label(), vpn.ends[0].outer, vpn.ends[1].outer);
    Ok(())
}

async fn list_sas(nodes: &Nodes, vpn: &VpnPlan) -> Vec<(String, Result<String, String>)> {
    let reads = vpn.ends.iter().map(|e| async move {
        let r = match nodes.by_name.get(&e.node) {
            None => Err("node not reachable from here".to_string()),
            Some(n) => n.vpn(&e.container, &VpnOp::ListSas {}).await.map(|p| p.output).map_err(|e| e.to_string()),
        };
        (e.name.clone(), r)
    });
    futures_util::future::join_all(reads).await
}

fn established(vpn: &VpnPlan, text: &Result<String, String>) -> bool {
    let Ok(text) = text else { return false };
    let (ike, child) = vnet_te_agent::vpn::parse_sas(text);
    ike.iter().any(|s| s.name == vpn.name && s.state == "ESTABLISHED") && child.iter().any(|s| s.name == vpn.name && s.state == "INSTALLED")
}

/// A transit router: its name, its container, and its node when that answers from here.
type Transit = (String, String, Option<std::sync::Arc<dyn Node>>);

/// What `compare::vpn` judges: the SAs (polled until both ends have them, or `SA_WAIT`), then
/// a burst of pings from the first host to the second with the transit routers counting.
pub async fn observe(plan: &Plan, nodes: &Nodes) -> VpnObserved {
    let mut obs = VpnObserved::default();
    let Some(vpn) = &plan.vpn else { return obs };
    let deadline = Instant::now() + SA_WAIT;
    loop {
        let sas = list_sas(nodes, vpn).await;
        let up = sas.iter().all(|(_, r)| established(vpn, r));
        obs.sas = sas.into_iter().collect();
        if up || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (Some(a), Some((ab, bb))) = (plan.hosts.first(), vpn.burst_addresses(plan)) else { return obs };
    let transit: Vec<Transit> =
        vpn.transit.iter().filter_map(|r| plan.router(r)).map(|r| (r.name.clone(), r.container.clone(), nodes.by_name.get(&r.node).cloned())).collect();
    let count = |op: VpnOp| {
        let transit = &transit;
        async move {
            let jobs = transit.iter().map(|(name, container, n)| {
                let op = op.clone();
                async move {
                    let r = match n {
                        None => Err("node not reachable from here".to_string()),
                        Some(n) => match n.vpn(container, &op).await {
                            Ok(p) if p.success => Ok(p.output),
                            Ok(p) => Err(p.output.trim().to_string()),
                            Err(e) => Err(e.to_string()),
                        },
                    };
                    (name.clone(), r)
                }
            });
            futures_util::future::join_all(jobs).await
        }
    };
    let started = count(VpnOp::CountStart { a: ab, b: bb }).await;
    obs.burst = Some(match nodes.by_name.get(&a.node) {
        None => Err("node not reachable from here".to_string()),
        Some(n) => match n.ping_burst(&a.container, bb, BURST, 1000).await {
            Ok(p) => Ok(parse_ping(&p.output).map_or((BURST, 0), |s| (s.transmitted, s.received))),
            Err(e) => Err(e.to_string()),
        },
    });
    let read = count(VpnOp::CountRead {}).await;
    // The chain goes in every outcome: it only counts, but it is not the path's.
    let _ = count(VpnOp::CountStop {}).await;
    for (name, r) in started {
        if let Err(e) = r {
            obs.counts.insert(name, Err(format!("adding the counting rules: {e}")));
        }
    }
    for (name, r) in read {
        obs.counts.entry(name).or_insert(r);
    }
    obs
}
