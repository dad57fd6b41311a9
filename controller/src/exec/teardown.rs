//! Finding and removing a path's objects by their labels: containers first, then networks,
//! on every node. A node that does not answer keeps neither the listing nor the removal on
//! the others: each node is done on its own, and what could not be reached is reported.

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
    /// The nodes of containers Docker is already removing (listed without a name), one
    /// entry per container.
    pub removing: Vec<String>,
}

impl Existing {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty()
    }
}

/// Which labelled objects a find or delete is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select<'a> {
    /// Everything of one path (every path with None).
    Path(Option<&'a str>),
    /// What one create run made (`labels::RUN`): a rollback takes only its own objects.
    Run(&'a str),
}

impl Select<'_> {
    fn label(&self) -> (&'static str, Option<&str>) {
        match *self {
            Select::Path(p) => (labels::PATH, p),
            Select::Run(r) => (labels::RUN, Some(r)),
        }
    }
}

/// A node that did not answer: nothing of it was listed or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreached {
    pub node: String,
    pub error: String,
}

/// Finds everything labelled with `path` (or every path, with None) on every node; fails when
/// any node does not answer.
pub async fn find(nodes: &Nodes, path: Option<&str>) -> Result<Existing, DeployError> {
    let (ex, mut unreached) = find_reachable(nodes, Select::Path(path)).await;
    match unreached.is_empty() {
        true => Ok(ex),
        false => {
            let u = unreached.remove(0);
            Err(DeployError::Step {
                step: "listing labelled objects",
                source: NodeError::Failed { doing: "finding the path's objects".into(), message: u.error },
            })
        }
    }
}

/// Finds what `select` names on every node that answers, and the nodes that do not.
pub async fn find_reachable(nodes: &Nodes, select: Select<'_>) -> (Existing, Vec<Unreached>) {
    find_skipping(nodes, select, &[]).await
}

/// As `find_reachable`, leaving out nodes already known not to answer.
async fn find_skipping(nodes: &Nodes, select: Select<'_>, skip: &[Unreached]) -> (Existing, Vec<Unreached>) {
    let (label, value) = select.label();
    let mut ex = Existing::default();
    let all: Vec<(String, Arc<dyn Node>)> =
        nodes.by_name.iter().filter(|(n, _)| !skip.iter().any(|u| u.node == **n)).map(|(n, node)| (n.clone(), node.clone())).collect();
    let found = stream::iter(all)
        .map(|(name, node)| async move {
            let c = node.find_containers(label, value).await;
            let n = match c {
                Ok(_) => node.find_networks(label, value).await,
                Err(_) => Ok(Vec::new()),
            };
            (name, c, n)
        })
        .buffer_unordered(PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    // The manager first: an overlay is listed by every node that uses it, but only the
    // manager can remove it.
    let manager = nodes.manager.name().to_string();
    let mut found = found;
    found.sort_by_key(|(name, _, _)| (*name != manager, name.clone()));
    let mut seen_nets = BTreeSet::new();
    let mut unreached = Vec::new();
    for (node, c, n) in found {
        let (c, n) = match (c, n) {
            (Ok(c), Ok(n)) => (c, n),
            (Err(e), _) | (_, Err(e)) => {
                unreached.push(Unreached { node, error: e.to_string() });
                continue;
            }
        };
        for f in c {
            if f.name.is_empty() {
                ex.removing.push(node.clone());
                continue;
            }
            if f.running && f.labels.contains_key(labels::ATTACH) {
                ex.attached.push((node.clone(), f.name.clone()));
            }
            ex.containers.push((node.clone(), f.name, f.running));
        }
        for f in n {
            // Overlays show up on every node that uses them; remove each once.
            if seen_nets.insert(f.name.clone()) {
                ex.networks.push((node.clone(), f.name));
            }
        }
    }
    ex.containers.sort();
    ex.networks.sort();
    ex.attached.sort();
    (ex, unreached)
}

/// What a delete removed, and the nodes it could not reach (their share may be left).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub networks: usize,
    pub unreached: Vec<Unreached>,
}

/// Removes everything labelled with the path (every path, with None) on every node that
/// answers; see [`delete_selected`]. The controller-side state goes only when every node
/// answered (a node that comes back still holds its share, and a later delete removes it).
pub async fn delete(nodes: &Nodes, path: Option<&str>) -> Result<Removed, DeployError> {
    let removed = delete_selected(nodes, Select::Path(path)).await?;
    if removed.unreached.is_empty() {
        forget_state(nodes, path)?;
    }
    Ok(removed)
}

/// Forgets the controller-side state of the path (every path with None).
pub fn forget_state(nodes: &Nodes, path: Option<&str>) -> Result<(), DeployError> {
    let names = match path {
        Some(name) => vec![name.to_string()],
        None => super::state::stored_names(&nodes.state_dir),
    };
    for name in names {
        super::state::forget(&nodes.state_dir, &name)?;
    }
    Ok(())
}

/// Removes what `select` names on every node that answers: the macvlans of hosts attached to
/// a LAN (so none is left on the LAN's interface while the kernel frees a removed container's
/// namespace), containers, then networks. Idempotent. A node that does not answer is left as
/// it is and named in the result; the others are done all the same. Withdraws the bridge
/// forwarding rule from the nodes that answer where no vnet-te network is left, and the VXLAN
/// filter where no vnet-te container is.
pub async fn delete_selected(nodes: &Nodes, select: Select<'_>) -> Result<Removed, DeployError> {
    let mut removed = Removed::default();
    // Whether the last listing came after the last removal and showed nothing Docker is
    // still removing: then there is nothing to wait for.
    let mut settled = false;
    // Two sweeps: a create interrupted mid-request can land one more object just after
    // the first listing.
    for _sweep in 0..2 {
        // A node that did not answer the first sweep is not asked again (its retries take a while).
        let (ex, unreached) = find_skipping(nodes, select, &removed.unreached).await;
        for u in unreached {
            if !removed.unreached.iter().any(|r| r.node == u.node) {
                removed.unreached.push(u);
            }
        }
        if ex.is_empty() {
            settled = ex.removing.is_empty();
            break;
        }
        let attached: Vec<(&String, &String)> = ex.attached.iter().map(|(n, c)| (n, c)).collect();
        remove_each(nodes, select, &mut removed.unreached, attached, "removing macvlans", |node, c| async move { node.remove_macvlans(&c).await }).await?;
        let containers: Vec<(&String, &String)> = ex.containers.iter().map(|(n, c, _)| (n, c)).collect();
        removed.containers +=
            remove_each(nodes, select, &mut removed.unreached, containers, "removing containers", |node, c| async move { node.remove_container(&c).await })
                .await?;
        tracing::info!("containers removed");
        let networks: Vec<(&String, &String)> = ex.networks.iter().map(|(n, c)| (n, c)).collect();
        removed.networks +=
            remove_each(nodes, select, &mut removed.unreached, networks, "removing networks", |node, n| async move { node.remove_network(&n).await }).await?;
    }
    if !settled {
        finish_removals(nodes, select, &mut removed).await?;
    }
    // A create about to make bridges on a node enables the rule and makes them under the
    // same lock: it is never withdrawn between the two.
    let _rule = super::lock::forwarding(&nodes.state_dir).await?;
    for (name, node) in &nodes.by_name {
        if removed.unreached.iter().any(|u| u.node == *name) {
            continue;
        }
        let left = match node.find_networks(labels::PATH, None).await {
            Ok(left) => left,
            Err(e) => {
                removed.unreached.push(Unreached { node: name.clone(), error: e.to_string() });
                continue;
            }
        };
        if left.is_empty() {
            node.bridge_forwarding(false).await.map_err(|source| DeployError::Step { step: "withdrawing the forwarding rule", source })?;
        }
        // The VXLAN filter stays while any path has a container on the node (only nodes of
        // a cluster have VXLAN links).
        if nodes.underlay.is_empty() {
            continue;
        }
        match node.find_containers(labels::PATH, None).await {
            Ok(left) if left.is_empty() => {
                node.vxlan_filter(None).await.map_err(|source| DeployError::Step { step: "withdrawing the VXLAN filter", source })?;
            }
            Ok(_) => {}
            Err(e) => removed.unreached.push(Unreached { node: name.clone(), error: e.to_string() }),
        }
    }
    removed.unreached.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(removed)
}

/// How long a delete waits for containers Docker is already removing.
const REMOVING_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits until no container of `select` is left that Docker is still removing (on a loaded
/// engine a removal can outlive its request, and the container stays listed, nameless, until
/// Docker has finished): the delete is over only when nothing of the path is listed.
async fn finish_removals(nodes: &Nodes, select: Select<'_>, removed: &mut Removed) -> Result<(), DeployError> {
    let deadline = tokio::time::Instant::now() + REMOVING_WAIT;
    loop {
        let (ex, unreached) = find_skipping(nodes, select, &removed.unreached).await;
        removed.unreached.extend(unreached);
        if ex.removing.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let on: BTreeSet<&str> = ex.removing.iter().map(String::as_str).collect();
            return Err(DeployError::Step {
                step: "removing containers",
                source: NodeError::Failed {
                    doing: "waiting for Docker to finish removing containers".into(),
                    message: format!(
                        "{} still being removed by Docker on {} after {} s (`docker ps -a` lists them as \"Removal In \
                         Progress\"; one that stays there is lost to the engine, and a restart of dockerd clears it)",
                        ex.removing.len(),
                        on.into_iter().collect::<Vec<_>>().join(", "),
                        REMOVING_WAIT.as_secs()
                    ),
                },
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Runs one removal per (node, object), concurrently, skipping nodes in `unreached`, and
/// returns how many succeeded. Every removal is tried, also after one fails (a network a swarm
/// still holds must not keep the others). A node whose removals fail and that then does not
/// answer a listing either (stopped while the delete ran) joins `unreached`, and the others
/// go on; every other failure is reported.
async fn remove_each<F, Fut>(
    nodes: &Nodes,
    select: Select<'_>,
    unreached: &mut Vec<Unreached>,
    objects: Vec<(&String, &String)>,
    step: &'static str,
    f: F,
) -> Result<usize, DeployError>
where
    F: Fn(Arc<dyn Node>, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), NodeError>>,
{
    let jobs = objects
        .into_iter()
        .filter(|(n, _)| !unreached.iter().any(|u| u.node == **n))
        .map(|(n, o)| {
            let removal = f(nodes.get(n)?.clone(), o.clone());
            let n = n.clone();
            Ok(async move { (n, removal.await) })
        })
        .collect::<Result<Vec<_>, DeployError>>()?;
    let total = jobs.len();
    let failures: Vec<(String, NodeError)> =
        stream::iter(jobs).buffer_unordered(PARALLELISM * 2).filter_map(|(n, r)| async move { r.err().map(|e| (n, e)) }).collect().await;
    let done = total - failures.len();
    let failed_nodes: BTreeSet<String> = failures.iter().map(|(n, _)| n.clone()).collect();
    let (label, value) = select.label();
    let mut gone = BTreeSet::new();
    for n in failed_nodes {
        if let Err(e) = nodes.get(&n)?.find_containers(label, value).await {
            tracing::warn!(node = n, error = %e, "node stopped answering during the delete");
            unreached.push(Unreached { node: n.clone(), error: e.to_string() });
            gone.insert(n);
        }
    }
    let mut failed: Vec<NodeError> = failures.into_iter().filter(|(n, _)| !gone.contains(n)).map(|(_, e)| e).collect();
    failed.sort_by_key(|e| e.to_string());
    match failed.len() {
        0 => Ok(done),
        1 => Err(DeployError::Step { step, source: failed.remove(0) }),
        n => Err(DeployError::Step {
            step,
            source: NodeError::Failed { doing: format!("{n} removals"), message: failed.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ") },
        }),
    }
}
