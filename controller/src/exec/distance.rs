//! Distance on the running path: delay lines where packets arrive, rates where they leave
//! (`core::objects::impairments` says which), their state for `path show`, and changes at
//! run time (`path impair`).

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use vnet_te_agent::node::{DelayLineStatus, NodeError};

use super::nodes::{DeployError, Nodes, Step, PARALLELISM};
use crate::core::objects::{impairments, line_schedule, Impairment};
use crate::core::plan::distance::underlay_pairs;
use crate::core::plan::{Plan, Underlay};

/// Echoes per pair of nodes when the underlay is measured (100 a second: a tenth of a
/// second, every pair at once).
pub const UNDERLAY_ECHOES: u32 = 10;

/// The underlay between each pair of nodes under the path's links between nodes
/// (`plan::distance::underlay_pairs`), measured from the pair's first node to the other's
/// underlay address, every pair at once; a pair that could not be measured says why.
pub async fn measure_underlay(plan: &Plan, nodes: &Nodes) -> BTreeMap<(String, String), Result<Underlay, String>> {
    let measure = |(a, b): (String, String)| async move {
        let r = async {
            let target = *nodes.underlay.get(&b).ok_or_else(|| format!("node {b} has no known underlay address"))?;
            let rtts = nodes.get(&a).map_err(|e| e.to_string())?.underlay_rtts(target, UNDERLAY_ECHOES).await.map_err(|e| e.to_string())?;
            Underlay::from_rtts(&rtts).ok_or_else(|| format!("none of {UNDERLAY_ECHOES} echoes from {a} to {b} ({target}) came back"))
        }
        .await;
        ((a, b), r)
    };
    futures_util::future::join_all(underlay_pairs(plan).into_iter().map(measure)).await.into_iter().collect()
}

/// Starts every delay line and rate of the path at once (`converge: then-delay`, after the
/// path verified at zero delay). Returns how many link directions were impaired.
pub async fn apply_all(plan: &Plan, nodes: &Nodes) -> Result<usize, DeployError> {
    let all = impairments(plan);
    let results: Vec<Result<(), DeployError>> =
        stream::iter(all.iter()).map(|i| apply_one(nodes, i)).buffer_unordered(PARALLELISM).collect().await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(all.len())
}

/// One direction: its delay line at the receiving end, its rate at the sending end.
pub async fn apply_one(nodes: &Nodes, i: &Impairment) -> Result<(), DeployError> {
    let step = |source: NodeError| DeployError::Step { step: Step::Delays.describe(), source };
    if let Some(line) = i.delay_line() {
        nodes.get(&i.to.node)?.start_delay_line(&line).await.map_err(step)?;
    }
    if i.impair.rate_bps > 0 {
        nodes.get(&i.from.node)?.set_link_rate(&i.from.container, &i.from.ifname, Some(i.impair.rate_bps)).await.map_err(step)?;
    }
    Ok(())
}

/// Changes one direction of a running link to `i.impair` (what `path impair` decided).
pub async fn change(nodes: &Nodes, i: &Impairment) -> Result<(), DeployError> {
    let step = |source: NodeError| DeployError::Step { step: Step::Delays.describe(), source };
    // A start for an end whose line runs sets its settings (zero ones too, as after `--up`).
    nodes.get(&i.to.node)?.start_delay_line(&i.line()).await.map_err(step)?;
    let rate = (i.impair.rate_bps > 0).then_some(i.impair.rate_bps);
    nodes.get(&i.from.node)?.set_link_rate(&i.from.container, &i.from.ifname, rate).await.map_err(step)?;
    Ok(())
}

/// The state of every link direction's delay line (None: none runs there).
pub async fn status(plan: &Plan, nodes: &Nodes) -> Vec<(Impairment, Result<Option<DelayLineStatus>, String>)> {
    stream::iter(impairments(plan))
        .map(|i| async move {
            let r = match nodes.get(&i.to.node) {
                Err(e) => Err(e.to_string()),
                Ok(n) => n
                    .delay_lines(&i.to.container)
                    .await
                    .map(|lines| lines.into_iter().find(|s| s.ifname == i.to.ifname))
                    .map_err(|e| e.to_string()),
            };
            (i, r)
        })
        .buffer_unordered(PARALLELISM)
        .collect()
        .await
}

/// Hands every delay line of a scheduled link its timeline from `start_unix_ms` (each line
/// then applies its changes itself, the controller not needed). Returns how many lines.
pub async fn start_schedule(plan: &Plan, nodes: &Nodes, start_unix_ms: u64) -> Result<usize, DeployError> {
    let lines: Vec<(String, vnet_te_agent::node::DelayLineSpec)> = impairments(plan)
        .into_iter()
        .filter_map(|i| {
            let schedule = line_schedule(plan, &i, start_unix_ms)?;
            Some((i.to.node.clone(), vnet_te_agent::node::DelayLineSpec { schedule: Some(schedule), ..i.line() }))
        })
        .collect();
    let step = |source: NodeError| DeployError::Step { step: Step::Delays.describe(), source };
    let results: Vec<Result<(), DeployError>> = stream::iter(lines.iter())
        .map(|(node, line)| async move { nodes.get(node)?.start_delay_line(line).await.map_err(step) })
        .buffer_unordered(PARALLELISM)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(lines.len())
}
