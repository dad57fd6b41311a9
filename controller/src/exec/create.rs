//! Create: schedules a plan's objects onto the nodes. Containers start in boot order with a
//! per-node permit pool, each router's links are made once its bgpd listens, and the
//! first failure stops new work while everything in flight finishes (the caller rolls back
//! by labels).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;
use vnet_te_agent::node::{ContainerSpec, Node, NodeError};

use super::nodes::{DeployError, Nodes, Progress, Step, PARALLELISM};
use super::pool::RankedPool;
use super::teardown::{self, find, Select};
use crate::core::objects::{container_specs, direct_links, impairments, network_specs, vyos_image, DirectLink, Impairment};
use crate::core::plan::sessions::{routers_waiting_for_bgp, start_after};
use crate::core::plan::{Driver, Plan};
use crate::core::render;
use crate::core::spec::Converge;
use crate::error::BadInput;

/// How long a router that listens on a session waits after its bgpd listens before its links
/// are made. bgpd opens its port before it has taken in zebra's list of interfaces and
/// addresses; a session accepted in between is reset ("nexthop_set failed", with FRR's
/// "Cannot find IF" in the log) and both ends retry only a second later.
const BGPD_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a router's links wait for its bgpd before they are made anyway (verification
/// then names a router whose BGP never came up).
pub(super) const BGPD_WAIT_SECS: u32 = 15;

/// One create (or repair) run: its id labels every object it makes (`labels::RUN`), so its
/// rollback removes what this run made and nothing another run made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run(String);

impl Run {
    /// An id no other run on this controller has: the clock in ns and the process id.
    pub fn new() -> Self {
        let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Run(format!("{:x}-{:x}", ns, std::process::id()))
    }

    pub fn id(&self) -> &str {
        &self.0
    }

    /// Puts the run's label on a container or network's labels.
    pub fn label(&self, labels: &mut BTreeMap<String, String>) {
        labels.insert(vnet_te_agent::node::labels::RUN.to_string(), self.0.clone());
    }
}

impl Default for Run {
    fn default() -> Self {
        Self::new()
    }
}

/// Creates every network and container of the plan and starts them, each labelled with
/// `run`. On any error the caller rolls back (`roll_back`: the run's label finds everything
/// this created).
pub async fn create(plan: &Plan, nodes: &Nodes, run: &Run, progress: &dyn Progress) -> Result<(), DeployError> {
    let files = render::render(plan)?;
    let mut containers = container_specs(plan, &files);
    for (_, c) in &mut containers {
        run.label(&mut c.labels);
    }
    preflight(plan, nodes, &containers, progress).await?;
    let t0 = std::time::Instant::now();
    let waiting = routers_waiting_for_bgp(plan);
    let links = direct_links(plan, &nodes.underlay, &waiting)?;
    let vxlan_nodes: BTreeSet<&String> = links.iter().filter(|(_, l)| matches!(l, DirectLink::Vxlan(_))).map(|(n, _)| n).collect();
    make_networks(plan, nodes, run, &containers, &vxlan_nodes, progress).await?;
    tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, "networks created");
    // With `converge: with-delay` the delays are there before the links: BGP forms across them.
    let with_delay = plan.distance.as_ref().is_some_and(|d| d.converge == Converge::WithDelay);
    let impaired = if with_delay { impairments(plan) } else { Vec::new() };
    let boot = Boot {
        nodes,
        state: containers.iter().map(|(_, c)| (c.name.as_str(), watch::channel(Up::Pending).0)).collect(),
        failed: AtomicBool::new(false),
        start_after: start_after(plan, &waiting),
        listeners: plan.routers.iter().filter(|r| r.neighbors.iter().any(|n| n.passive)).map(|r| r.container.as_str()).collect(),
        waiting,
        impaired,
    };
    // Each container starts as soon as it is created, each router's links wait for its
    // bgpd, and each link is made as soon as its containers are ready: the three overlap.
    // On a failure nothing in flight is abandoned: requests already sent finish (Docker
    // completes them even if we stop listening, and the rollback must see what they made),
    // no new one starts, and the first error is returned.
    progress.step(Step::Containers, containers.len());
    let jobs: Vec<(Arc<dyn Node>, &ContainerSpec)> = containers.iter().map(|(n, c)| Ok((nodes.get(n)?.clone(), c))).collect::<Result<_, DeployError>>()?;
    let boot = &boot;
    let starts = run_per_node(jobs, per_node(plan, nodes), progress, |node, pool, place, c| async move { boot.start(node, pool, place, c).await });
    let bgpd_up = stream::iter(containers.iter().filter(|(_, c)| boot.waiting.contains(c.name.as_str())))
        .map(|(node, c)| boot.bgpd_up(node, c))
        .buffer_unordered(containers.len().max(1))
        .collect::<Vec<()>>();
    let made = stream::iter(links.iter()).map(|(node, link)| boot.link(node, link)).buffer_unordered(links.len().max(1)).collect::<Vec<_>>();
    let (starts, made, _) = futures_util::join!(starts, made, bgpd_up);
    starts.map_err(|source| DeployError::Step { step: Step::Containers.describe(), source })?;
    made.into_iter().collect::<Result<Vec<()>, DeployError>>()?;
    tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, links = links.len(), "containers created, started and linked");
    Ok(())
}

/// Nothing is created before these pass: every image present on its node, no path of
/// this name.
async fn preflight(plan: &Plan, nodes: &Nodes, containers: &[(String, ContainerSpec)], progress: &dyn Progress) -> Result<(), DeployError> {
    progress.step(Step::Preflight, 1);
    let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (node, c) in containers {
        needed.entry(node.clone()).or_default().insert(c.image.clone());
    }
    for (node, images) in &needed {
        let n = nodes.get(node)?;
        let refs: Vec<String> = images.iter().cloned().collect();
        let present = n.images_present(&refs).await.map_err(|source| DeployError::Step { step: Step::Preflight.describe(), source })?;
        if let Some((image, _)) = present.iter().find(|(_, p)| !**p) {
            let hint = if *image == vyos_image() {
                format!(
                    "VyOS images cannot be built offline: supply one with `docker load -i <VyOS image tar>` \
                     and tag it {image} (or set VNET_TE_VYOS_IMAGE to the name it has)"
                )
            } else {
                "build it with `vnet-te images build`".to_string()
            };
            return Err(DeployError::ImageMissing { image: image.clone(), node: node.clone(), hint });
        }
    }
    if !find(nodes, Some(&plan.name)).await?.is_empty() {
        return Err(DeployError::Exists(plan.name.clone()));
    }
    Ok(())
}

/// The plan's Docker networks (overlays on the manager), the forwarding rule on nodes
/// with bridges, and the VXLAN filter on nodes with VXLAN links.
async fn make_networks(
    plan: &Plan,
    nodes: &Nodes,
    run: &Run,
    containers: &[(String, ContainerSpec)],
    vxlan_nodes: &BTreeSet<&String>,
    progress: &dyn Progress,
) -> Result<(), DeployError> {
    let used_nodes: BTreeSet<&String> = containers.iter().map(|(n, _)| n).collect();
    // Until the bridges (or the containers with VXLAN links) exist, a delete of another path
    // must not withdraw the rule (or the filter) they need.
    let _rule = if plan.networks.iter().any(|n| n.driver == Driver::Bridge) || !vxlan_nodes.is_empty() {
        Some(super::lock::forwarding(&nodes.state_dir).await?)
    } else {
        None
    };
    for node in &used_nodes {
        if plan.networks.iter().any(|n| n.driver == Driver::Bridge && n.nodes.contains(node)) {
            nodes.get(node)?.bridge_forwarding(true).await.map_err(|source| DeployError::Step { step: Step::Networks.describe(), source })?;
        }
    }
    // Link VXLAN is taken from the cluster's nodes only (every node, so that a path made
    // later between other nodes needs no change here).
    let allow: Vec<std::net::Ipv4Addr> = nodes.underlay.values().copied().collect();
    for node in vxlan_nodes {
        nodes.get(node)?.vxlan_filter(Some(&allow)).await.map_err(|source| DeployError::Step { step: Step::Networks.describe(), source })?;
    }
    let mut networks = network_specs(plan);
    for (_, spec) in &mut networks {
        run.label(&mut spec.labels);
    }
    progress.step(Step::Networks, networks.len());
    let mut net_jobs = Vec::new();
    for (on, spec) in &networks {
        if spec.driver == "overlay" {
            net_jobs.push((nodes.manager.clone(), spec));
        } else {
            for n in on {
                net_jobs.push((nodes.get(n)?.clone(), spec));
            }
        }
    }
    run_all(net_jobs, Step::Networks, progress, |(node, spec)| async move { node.create_network(spec).await }).await
}

/// Container operations at once per node, in boot order (`run_per_node`): a single host one
/// more than its CPUs (`local_parallelism`); in a cluster every overlay attach is a round
/// trip through the manager that times out after 20 s, so each node gets only a few.
fn per_node(plan: &Plan, nodes: &Nodes) -> usize {
    std::env::var("VNET_TE_NODE_PARALLELISM").ok().and_then(|v| v.parse::<usize>().ok()).filter(|n| *n > 0).unwrap_or(
        if plan.networks.iter().any(|n| n.driver == Driver::Overlay) {
            CLUSTER_PER_NODE
        } else if nodes.by_name.len() == 1 {
            local_parallelism()
        } else {
            (PARALLELISM / nodes.by_name.len()).max(CLUSTER_PER_NODE)
        },
    )
}

/// Where every container of one create is, and what waits for what.
struct Boot<'a> {
    nodes: &'a Nodes,
    state: BTreeMap<&'a str, watch::Sender<Up>>,
    /// Set at the first failure: nothing new starts.
    failed: AtomicBool,
    /// Routers whose links wait for their bgpd (`routers_waiting_for_bgp`).
    waiting: BTreeSet<&'a str>,
    /// Routers that start only once these neighbours are ready (`start_after`).
    start_after: BTreeMap<&'a str, Vec<&'a str>>,
    /// Routers that listen on a session: they settle after bgpd listens.
    listeners: BTreeSet<&'a str>,
    /// Link directions whose delay line starts with the receiving container (before its
    /// links: the queue rule names the interface) and whose rate is set once the link exists.
    impaired: Vec<Impairment>,
}

impl Boot<'_> {
    /// Whether `container` became ready (false: it failed or was never tried).
    async fn ready(&self, container: &str) -> bool {
        // The senders live as long as `self`.
        let mut rx = self.state[container].subscribe();
        rx.wait_for(|u| matches!(u, Up::Ready | Up::No)).await.map(|u| *u == Up::Ready).unwrap_or(false)
    }

    /// Creates and starts one container: a start goes before a create of the same place and
    /// of every later one, and waits for the neighbours it listens to.
    async fn start(&self, node: Arc<dyn Node>, pool: Arc<RankedPool>, place: usize, c: &ContainerSpec) -> Result<(), NodeError> {
        let up = &self.state[c.name.as_str()];
        if self.failed.load(Ordering::SeqCst) {
            up.send_replace(Up::No);
            return Ok(());
        }
        let t = std::time::Instant::now();
        let r = async {
            {
                let _permit = pool.acquire(2 * place + 1).await;
                node.create_container(c).await?;
            }
            let created = t.elapsed().as_millis() as u64;
            for dep in self.start_after.get(c.name.as_str()).into_iter().flatten() {
                if !self.ready(dep).await {
                    return Ok(false); // the create fails on that router's own error
                }
            }
            {
                let _permit = pool.acquire(2 * place).await;
                node.start_container(&c.name).await?;
            }
            // A router's lines (one per impaired link end) start side by side.
            let lines: Vec<_> = self.impaired.iter().filter(|i| i.to.container == c.name).filter_map(Impairment::delay_line).collect();
            futures_util::future::try_join_all(lines.iter().map(|l| node.start_delay_line(l))).await?;
            tracing::debug!(container = %c.name, created_ms = created, started_ms = t.elapsed().as_millis() as u64 - created, "container up");
            Ok(true)
        }
        .await;
        if r.is_err() {
            self.failed.store(true, Ordering::SeqCst);
        }
        up.send_replace(match r {
            Err(_) | Ok(false) => Up::No,
            Ok(true) if self.waiting.contains(c.name.as_str()) => Up::Started,
            Ok(true) => Up::Ready,
        });
        r.map(|_| ())
    }

    /// A started router becomes ready once its bgpd listens (waited for apart from the
    /// starts, which go on meanwhile).
    async fn bgpd_up(&self, node: &str, c: &ContainerSpec) {
        let up = &self.state[c.name.as_str()];
        let mut rx = up.subscribe();
        if rx.wait_for(|u| *u != Up::Pending).await.map(|u| *u != Up::Started).unwrap_or(true) {
            return;
        }
        let t = std::time::Instant::now();
        if let Ok(n) = self.nodes.get(node) {
            match n.wait_bgpd(&c.name, BGPD_WAIT_SECS).await {
                Ok(true) => {
                    tracing::debug!(container = %c.name, ms = t.elapsed().as_millis() as u64, "bgpd up");
                    if self.listeners.contains(c.name.as_str()) {
                        tokio::time::sleep(BGPD_SETTLE).await;
                    }
                }
                Ok(false) => tracing::warn!(container = %c.name, "bgpd not up after {BGPD_WAIT_SECS} s; linking anyway"),
                Err(e) => tracing::debug!(container = %c.name, error = %e, "cannot watch for bgpd; linking at once"),
            }
        }
        up.send_replace(Up::Ready);
    }

    /// Makes one link once its containers are ready: a veth waits for both, a VXLAN end only
    /// for its own (the other end's node may still be starting).
    async fn link(&self, node: &str, link: &DirectLink) -> Result<(), DeployError> {
        for container in link.needs() {
            if !self.state.contains_key(container) {
                return Err(DeployError::UnknownContainer(container.to_string()));
            }
            if !self.ready(container).await {
                return Ok(()); // the create fails on that container's own error
            }
        }
        make_link(link, &**self.nodes.get(node)?).await.map_err(|source| {
            self.failed.store(true, Ordering::SeqCst);
            DeployError::Step { step: Step::Links.describe(), source }
        })?;
        let ends = link.ends();
        for i in self.impaired.iter().filter(|i| i.impair.rate_bps > 0 && ends.contains(&(i.from.container.as_str(), i.from.ifname.as_str()))) {
            let n = self.nodes.get(&i.from.node)?;
            n.set_link_rate(&i.from.container, &i.from.ifname, Some(i.impair.rate_bps)).await.map_err(|source| {
                self.failed.store(true, Ordering::SeqCst);
                DeployError::Step { step: Step::Delays.describe(), source }
            })?;
        }
        Ok(())
    }
}

/// Concurrent container operations on a single host: one more than its CPUs. Creates and
/// starts are CPU-bound in dockerd, containerd and runc; more at once only makes every
/// container (and the early routers' FRR) come up later, and the boot order (`start_rank`),
/// which decides how soon the sessions at the path ends come up, stops mattering (on two
/// cores, 12 at once made each start take about a second).
fn local_parallelism() -> usize {
    std::thread::available_parallelism().map_or(PARALLELISM, |n| n.get() + 1).clamp(CLUSTER_PER_NODE, PARALLELISM)
}

/// Concurrent container operations per node in a cluster (VNET_TE_NODE_PARALLELISM overrides,
/// for measurements).
pub const CLUSTER_PER_NODE: usize = 2;

/// Where a container of a create is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up {
    Pending,
    /// Running; its links wait for its bgpd (`routers_waiting_for_bgp`).
    Started,
    /// Running, and its links can be made.
    Ready,
    /// Failed, or not tried after another failure.
    No,
}

/// Runs `f` for every (node, job) at once, each with its node's pool of `per_node` permits
/// and its place in `jobs` (the boot order): each Docker operation of a job takes a permit
/// asked for with that place as its key. So a container waiting for its neighbours
/// (`start_after`) holds no permit, and one that becomes ready goes before operations of
/// containers that boot after it. Every job runs to its end (`f` decides whether to skip
/// after a failure); the first error is returned.
async fn run_per_node<J, F, Fut>(jobs: Vec<(Arc<dyn Node>, J)>, per_node: usize, progress: &dyn Progress, f: F) -> Result<(), NodeError>
where
    F: Fn(Arc<dyn Node>, Arc<RankedPool>, usize, J) -> Fut,
    Fut: std::future::Future<Output = Result<(), NodeError>>,
{
    let mut pools: BTreeMap<String, Arc<RankedPool>> = BTreeMap::new();
    let f = &f;
    let all: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(place, (node, j))| {
            let pool = pools.entry(node.name().to_string()).or_insert_with(|| RankedPool::new(per_node)).clone();
            let fut = f(node, pool, place, j);
            async move {
                let r = fut.await;
                progress.tick();
                r
            }
        })
        .collect();
    let n = all.len().max(1);
    stream::iter(all).buffer_unordered(n).collect::<Vec<Result<(), NodeError>>>().await.into_iter().collect()
}

async fn run_all<J, F, Fut>(jobs: Vec<J>, step: Step, progress: &dyn Progress, f: F) -> Result<(), DeployError>
where
    F: Fn(J) -> Fut,
    Fut: std::future::Future<Output = Result<(), NodeError>>,
{
    stream::iter(jobs)
        .map(|j| {
            let fut = f(j);
            async move {
                let r = fut.await;
                progress.tick();
                r
            }
        })
        .buffer_unordered(PARALLELISM)
        // Every request sent runs to its end (see `create`); then the first error.
        .collect::<Vec<Result<(), NodeError>>>()
        .await
        .into_iter()
        .collect::<Result<(), NodeError>>()
        .map_err(|source| DeployError::Step { step: step.describe(), source })
}

pub(super) async fn make_link(link: &DirectLink, node: &dyn Node) -> Result<(), NodeError> {
    match link {
        DirectLink::Veth(v) => node.connect_veth(v).await,
        DirectLink::Vxlan(v) => node.connect_vxlan(v).await,
        DirectLink::Macvlan(m) => node.connect_macvlan(m).await,
    }
}

/// After a create failed or was interrupted: removes what this run made (its run label finds
/// everything, and nothing another run made) on every node that answers, and returns the
/// error with what happened, what is left where and what to run next. A create refused
/// before it made anything (the path exists, an image is missing) removes nothing.
pub async fn roll_back(plan: &Plan, nodes: &Nodes, run: &Run, e: DeployError) -> anyhow::Error {
    match e {
        DeployError::Exists(_) => return anyhow::Error::new(e).context(BadInput(format!("cannot create path '{}'", plan.name))),
        DeployError::ImageMissing { .. } => return anyhow::Error::new(e).context(format!("cannot create path '{}' (nothing was created)", plan.name)),
        _ => {}
    }
    let undo = match roll_back_patiently(nodes, run).await {
        Ok(r) if r.unreached.is_empty() => format!("rolled back: removed {} containers and {} networks", r.containers, r.networks),
        Ok(r) => format!(
            "rolled back on the nodes that answer: removed {} containers and {} networks; {}; once {} answer{} again, \
             remove what is left with `vnet-te path delete {}` (or forget it with `vnet-te path delete --force {}`)",
            r.containers,
            r.networks,
            left_on(plan, &r.unreached),
            r.unreached.iter().map(|u| u.node.as_str()).collect::<Vec<_>>().join(", "),
            if r.unreached.len() == 1 { "s" } else { "" },
            plan.name,
            plan.name
        ),
        Err(re) => format!("rollback failed too ({re}); remove the rest with `vnet-te path delete {}`", plan.name),
    };
    let next =
        if matches!(e, DeployError::Interrupted(_)) { "run the same command again to create it" } else { "fix the cause and run the same command again" };
    anyhow::Error::new(e).context(format!("creating path '{}' failed; {undo}; {next}", plan.name))
}

/// How long a rollback keeps trying a node that does not answer: an agent or engine that
/// restarts answers again within it.
#[cfg(not(test))]
const ROLLBACK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// Short for the unit tests, whose fake nodes answer (or not) at once.
#[cfg(test)]
const ROLLBACK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Removes the run's objects; a node that did not answer is tried again (every 2 s, for up to
/// `ROLLBACK_PATIENCE`) before it is reported.
async fn roll_back_patiently(nodes: &Nodes, run: &Run) -> Result<teardown::Removed, DeployError> {
    let deadline = std::time::Instant::now() + ROLLBACK_PATIENCE;
    let mut done = teardown::delete_selected(nodes, Select::Run(run.id())).await?;
    while !done.unreached.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let again = teardown::delete_selected(nodes, Select::Run(run.id())).await?;
        done = teardown::Removed { containers: done.containers + again.containers, networks: done.networks + again.networks, unreached: again.unreached };
    }
    Ok(done)
}

/// What of `plan` may be left on the nodes that did not answer: "node n3 did not answer
/// (why): r3, r6, dst may be left there".
pub fn left_on(plan: &Plan, unreached: &[teardown::Unreached]) -> String {
    unreached
        .iter()
        .map(|u| {
            let there: Vec<&str> = plan
                .routers
                .iter()
                .filter(|r| r.node == u.node)
                .map(|r| r.name.as_str())
                .chain(plan.hosts.iter().filter(|h| h.node == u.node).map(|h| h.name.as_str()))
                .collect();
            let what = if there.is_empty() { "its networks of the path".to_string() } else { there.join(", ") };
            format!("node {} did not answer ({}): {what} may be left there", u.node, u.error)
        })
        .collect::<Vec<_>>()
        .join("; ")
}
