//! Finding and removing a path's objects by their labels: containers first, then networks,
//! on every node.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use vnet_te_agent::node::{labels, Node, NodeError};

use super::nodes::{DeployError, Nodes, PARALLELISM};

/// What exists of a path on the nodes.
#[derive(Debug, Default, Clone)]
pub struct Existing {
    /// (node, container name, running)
    pub containers: Vec<(String, String, bool)>,
    /// (node, network name)
    pub networks: Vec<(String, String)>,
    /// (node, container name) of the running hosts attached to a LAN of their node.
    pub attached: Vec<(String, String)>,
}

impl Existing {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty()
    }
}

/// Finds everything labelled with `path` (or every path, with None) on every node.
pub async fn find(nodes: &Nodes, path: Option<&str>) -> Result<Existing, DeployError> {
    let mut ex = Existing::default();
    let all: Vec<(String, Arc<dyn Node>)> =
        nodes.by_name.iter().map(|(n, node)| (n.clone(), node.clone())).collect();
    let found = stream::iter(all)
        .map(|(name, node)| async move {
            let c = node.find_containers(labels::PATH, path).await;
            let n = node.find_networks(labels::PATH, path).await;
            (name, c, n)
        })
        .buffer_unordered(PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    // The manager first: an overlay is listed by every node that uses it, but only the
    // manager can remove it.
    let manager = nodes.manager.name().to_string();
    let mut found = found;
    found.sort_by_key(|(name, _, _)| *name != manager);
    let mut seen_nets = BTreeSet::new();
    for (node, c, n) in found {
        let step = "listing labelled objects";
        for f in c.map_err(|source| DeployError::Step { step, source })? {
            if f.running && f.labels.contains_key(labels::ATTACH) {
                ex.attached.push((node.clone(), f.name.clone()));
            }
            ex.containers.push((node.clone(), f.name, f.running));
        }
        for f in n.map_err(|source| DeployError::Step { step, source })? {
            // Overlays show up on every node that uses them; remove each once.
            if seen_nets.insert(f.name.clone()) {
                ex.networks.push((node.clone(), f.name));
            }
        }
    }
    ex.containers.sort();
    ex.networks.sort();
    ex.attached.sort();
    Ok(ex)
}

/// What a delete removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub networks: usize,
}

/// Removes everything labelled with the path (every path, with None) on every node:
/// the macvlans of hosts attached to a LAN (so none is left on the LAN's interface while the
/// kernel frees a removed container's namespace), containers, then networks. Idempotent. Withdraws the bridge forwarding rule from
/// nodes where no vnet-te network is left.
pub async fn delete(nodes: &Nodes, path: Option<&str>) -> Result<Removed, DeployError> {
    let mut removed = Removed::default();
    // Two sweeps: a create interrupted mid-request can land one more object just after
    // the first listing.
    for _sweep in 0..2 {
        let ex = find(nodes, path).await?;
        if ex.is_empty() {
            break;
        }
        let attached: Vec<(&String, &String)> = ex.attached.iter().map(|(n, c)| (n, c)).collect();
        remove_each(nodes, attached, "removing macvlans", |node, c| async move { node.remove_macvlans(&c).await }).await?;
        let containers: Vec<(&String, &String)> = ex.containers.iter().map(|(n, c, _)| (n, c)).collect();
        removed.containers += containers.len();
        remove_each(nodes, containers, "removing containers", |node, c| async move { node.remove_container(&c).await }).await?;
        tracing::info!("containers removed");
        let networks: Vec<(&String, &String)> = ex.networks.iter().map(|(n, c)| (n, c)).collect();
        removed.networks += networks.len();
        remove_each(nodes, networks, "removing networks", |node, n| async move { node.remove_network(&n).await }).await?;
    }
    for node in nodes.by_name.values() {
        let left = node
            .find_networks(labels::PATH, None)
            .await
            .map_err(|source| DeployError::Step { step: "listing networks", source })?;
        if left.is_empty() {
            node.bridge_forwarding(false)
                .await
                .map_err(|source| DeployError::Step { step: "withdrawing the forwarding rule", source })?;
        }
    }
    let names = match path {
        Some(name) => vec![name.to_string()],
        None => super::state::stored_names(&nodes.state_dir),
    };
    for name in names {
        super::state::forget(&nodes.state_dir, &name)?;
    }
    Ok(removed)
}

/// Runs one removal per (node, object), concurrently. Every removal is tried, also after one
/// fails (a network a swarm still holds must not keep the others); every failure is reported.
async fn remove_each<F, Fut>(nodes: &Nodes, objects: Vec<(&String, &String)>, step: &'static str, f: F) -> Result<(), DeployError>
where
    F: Fn(Arc<dyn Node>, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), NodeError>>,
{
    let jobs = objects
        .into_iter()
        .map(|(n, o)| Ok(f(nodes.get(n)?.clone(), o.clone())))
        .collect::<Result<Vec<_>, DeployError>>()?;
    let mut failed: Vec<NodeError> =
        stream::iter(jobs).buffer_unordered(PARALLELISM * 2).filter_map(|r| async move { r.err() }).collect().await;
    failed.sort_by_key(|e| e.to_string());
    match failed.len() {
        0 => Ok(()),
        1 => Err(DeployError::Step { step, source: failed.remove(0) }),
        n => Err(DeployError::Step {
            step,
            source: NodeError::Failed {
                doing: format!("{n} removals"),
                message: failed.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "),
            },
        }),
    }
}
