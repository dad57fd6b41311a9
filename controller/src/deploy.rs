//! The executor: turns a plan and its rendered files into Docker objects on the nodes, and
//! finds and removes them again by their labels.
//!
//! All I/O goes through the `Node` interface, so the same code drives the local engine
//! in-process or remote agents, and unit tests drive a recording fake.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use vnet_te_agent::node::{
    labels, Attachment, ContainerRole, ContainerSpec, FileSpec, NetworkSpec, Node, NodeError, VethEnd, VethSpec,
    VxlanSpec,
};

use crate::plan::{Driver, NetworkRole, Plan};
use crate::pool::RankedPool;
use crate::render::{self, Rendered, BOOT_PATH};
use crate::spec::RouterKind;

/// How many Docker requests run at once per step. Docker serialises some of its own work
/// (network attach, IPAM), so more does not help; fewer leaves the engine idle.
pub const PARALLELISM: usize = 12;
/// Where each experiment host keeps a copy of the plan, so `path verify/show` work
/// without the spec file.
pub const PLAN_PATH: &str = "/etc/vnet-te/plan.json";

/// Image references, versioned with vnet-te.
pub fn router_image() -> String {
    format!("vnet-te/router:{}", env!("CARGO_PKG_VERSION"))
}
pub fn host_image() -> String {
    format!("vnet-te/host:{}", env!("CARGO_PKG_VERSION"))
}
/// VyOS images cannot be built offline; users supply one (`docker load`) under this name
/// or point VNET_TE_VYOS_IMAGE at theirs.
pub fn vyos_image() -> String {
    std::env::var("VNET_TE_VYOS_IMAGE").unwrap_or_else(|_| "vyos/vyos:1.4".to_string())
}

/// The nodes of the deployment: the manager (overlays are created there) and every node
/// by name. In the embedded default both are the local engine.
#[derive(Clone)]
pub struct Nodes {
    pub manager: Arc<dyn Node>,
    pub by_name: BTreeMap<String, Arc<dyn Node>>,
    /// Node names in placement order (the manager first, then nodes as they were added).
    pub order: Vec<String>,
    /// Each node's address on the network between nodes (VXLAN links ride on it).
    pub underlay: BTreeMap<String, std::net::Ipv4Addr>,
}

impl Nodes {
    pub fn single(node: Arc<dyn Node>) -> Self {
        let name = node.name().to_string();
        Nodes {
            manager: node.clone(),
            by_name: BTreeMap::from([(name.clone(), node)]),
            order: vec![name],
            underlay: BTreeMap::new(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.order.clone()
    }

    fn get(&self, name: &str) -> Result<&Arc<dyn Node>, DeployError> {
        self.by_name.get(name).ok_or_else(|| DeployError::UnknownNode(name.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("path '{0}' already exists; delete it first (`vnet-te path delete {0}`) or pass --replace")]
    Exists(String),
    #[error("image {image} is missing on node {node}; {hint}")]
    ImageMissing { image: String, node: String, hint: String },
    #[error("node '{0}' is not part of this deployment")]
    UnknownNode(String),
    #[error("container '{0}' is not part of this plan")]
    UnknownContainer(String),
    #[error("node '{0}' has no known IPv4 address for VXLAN links (its agent address, or the manager's advertise address)")]
    NoUnderlay(String),
    #[error("{step}: {source}")]
    Step {
        step: &'static str,
        #[source]
        source: NodeError,
    },
    #[error("rendering configs: {0}")]
    Render(#[from] render::RenderError),
}

/// What one step of a create is about; reported on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Preflight,
    Networks,
    Containers,
    Links,
}

impl Step {
    pub fn describe(self) -> &'static str {
        match self {
            Step::Preflight => "checking images and names",
            Step::Networks => "creating networks",
            Step::Containers => "creating containers, uploading configs, starting them",
            Step::Links => "linking containers (veth, VXLAN)",
        }
    }
}

/// Progress callbacks (a progress bar in the CLI, nothing in tests).
pub trait Progress: Send + Sync {
    fn step(&self, _step: Step, _total: usize) {}
    fn tick(&self) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

fn base_labels(plan: &Plan, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::PATH.to_string(), plan.name.clone()),
        (labels::ROLE.to_string(), role.to_string()),
        (labels::PLAN_HASH.to_string(), plan.hash.clone()),
    ])
}

/// The Docker networks of a plan, each with the nodes it is created on (veth links are
/// not Docker networks).
pub fn network_specs(plan: &Plan) -> Vec<(Vec<String>, NetworkSpec)> {
    plan.networks
        .iter()
        .filter(|n| n.driver.is_docker())
        .map(|n| {
            let mut l = base_labels(plan, match n.role {
                NetworkRole::Link => "link",
                NetworkRole::Lan => "lan",
            });
            l.insert(labels::OBJECT.into(), n.name.clone());
            let spec = NetworkSpec {
                name: n.name.clone(),
                driver: match n.driver {
                    Driver::Overlay => "overlay".into(),
                    Driver::Bridge | Driver::Veth | Driver::Vxlan => "bridge".into(),
                },
                subnet: n.subnet.to_string(),
                gateway: n.gateway.to_string(),
                ip_range: n.ip_range.to_string(),
                bridge_name: (n.driver == Driver::Bridge).then(|| n.bridge.clone()),
                mtu: n.mtu,
                labels: l,
            };
            (n.nodes.clone(), spec)
        })
        .collect()
}

/// A link vnet-te makes itself (`wiring: direct`), on one node, addresses included.
enum DirectLink {
    /// Both ends on this node.
    Veth(VethSpec),
    /// This node's end of a link to another node.
    Vxlan(VxlanSpec),
}

impl DirectLink {
    /// The containers that must be ready (see `Up::Ready`) before the link can be made.
    fn needs(&self) -> Vec<&str> {
        match self {
            DirectLink::Veth(v) => vec![&v.a.container, &v.b.container],
            DirectLink::Vxlan(v) => vec![&v.container],
        }
    }

    async fn make(&self, node: &dyn Node) -> Result<(), NodeError> {
        match self {
            DirectLink::Veth(v) => node.connect_veth(v).await,
            DirectLink::Vxlan(v) => node.connect_vxlan(v).await,
        }
    }
}

/// How long a router that listens on a session waits after its bgpd listens before its links
/// are made. bgpd opens its port before it has taken in zebra's list of interfaces and
/// addresses; a session accepted in between is reset ("nexthop_set failed", with FRR's
/// "Cannot find IF" in the log) and both ends retry only a second later. Seen within 50 ms of
/// bgpd's start, in about one create in five, before this wait.
const BGPD_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a router's links wait for its bgpd before they are made anyway (verification
/// then names a router whose BGP never came up).
const BGPD_WAIT_SECS: u32 = 15;

/// The routers whose links wait until their bgpd listens (zebra, started before it, is up
/// then too): FRR routers whose boot script starts the daemons before the
/// links arrive (all but VXLAN tunnel ends, which set their tunnel up over the links first).
/// zebra sets each link's address and brings it up (zebra.conf). Two reasons:
/// - zebra must not be starting when a link appears (FRR 8.4 can then miss it);
/// - a link made while one end's bgpd listens already and the other's start timer has run
///   out comes up at once: the connecting end tries the moment its route to the neighbour
///   appears. Made earlier, that try fails and bgpd retries only a second later.
fn routers_waiting_for_bgp(plan: &Plan) -> BTreeSet<&str> {
    plan.routers
        .iter()
        .filter(|r| r.kind == RouterKind::Frr && r.vtep.is_none() && r.interfaces.iter().any(|i| i.ifname.is_some()))
        .map(|r| r.container.as_str())
        .collect()
}

/// Which routers start only once others are up (`Up::Ready`): a router that listens on a
/// session starts after the neighbour that connects, so that neighbour's bgpd is past its
/// 1 s start timer when the link appears and connects at once. It also keeps the early
/// routers' FRR start from competing for CPU with the later routers' container starts.
/// Only among `waiting` routers (their readiness is their bgpd); containers are created
/// meanwhile, only the start waits. Listening ends boot later by `plan::start_rank`, so
/// this never waits in a circle.
fn start_after<'a>(plan: &'a Plan, waiting: &BTreeSet<&str>) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in plan.routers.iter().filter(|r| waiting.contains(r.container.as_str())) {
        for n in r.neighbors.iter().filter(|n| n.passive) {
            if let Some(peer) = plan.router(&n.peer).filter(|p| waiting.contains(p.container.as_str())) {
                out.entry(r.container.as_str()).or_default().push(peer.container.as_str());
            }
        }
    }
    out
}

/// Every direct link of a plan with the node it is made on: one veth pair per same-node
/// link or LAN, and one VXLAN end on each side of a link between nodes.
fn direct_links(
    plan: &Plan,
    underlay: &BTreeMap<String, std::net::Ipv4Addr>,
    zebra_first: &BTreeSet<&str>,
) -> Result<Vec<(String, DirectLink)>, DeployError> {
    // (container, node, interface name, vnet-te addresses it) of a link's end. A router whose
    // zebra runs when its links arrive (`routers_waiting_for_bgp`) has zebra address them
    // (zebra.conf).
    let end = |name: &str, network: &str| -> Option<(String, String, String, bool)> {
        if let Some(r) = plan.router(name) {
            let i = r.interfaces.iter().find(|i| i.network == network)?;
            let ours = !zebra_first.contains(r.container.as_str());
            return Some((r.container.clone(), r.node.clone(), i.ifname.clone()?, ours));
        }
        let h = plan.hosts.iter().find(|h| h.name == name && h.network == network)?;
        Some((h.container.clone(), h.node.clone(), h.ifname.clone()?, true))
    };
    let addr = |node: &str| underlay.get(node).copied().ok_or_else(|| DeployError::NoUnderlay(node.to_string()));
    let mut out = Vec::new();
    for n in plan.networks.iter().filter(|n| !n.driver.is_docker()) {
        let [ea, eb] = &n.ends[..] else { continue };
        let (Some(a), Some(b)) = (end(&ea.name, &n.name), end(&eb.name, &n.name)) else { continue };
        let net = |ip: std::net::Ipv4Addr, ours: bool| ipnet::Ipv4Net::new(ip, n.subnet.prefix_len()).ok().filter(|_| ours);
        if n.driver == Driver::Veth {
            // The listening end of a session goes in as `b` (made first: see `b_listens`)
            // when its zebra addresses it.
            let listens = |e: &crate::plan::Endpoint, zebra_addresses: bool| {
                zebra_addresses
                    && plan.router(&e.name).is_some_and(|r| r.neighbors.iter().any(|nb| nb.network == n.name && nb.passive))
            };
            let (a_listens, b_listens) = (listens(ea, !a.3), listens(eb, !b.3));
            let node = a.1.clone();
            let mut ends = [
                VethEnd { container: a.0, ifname: a.2, address: net(ea.address, a.3) },
                VethEnd { container: b.0, ifname: b.2, address: net(eb.address, b.3) },
            ];
            if a_listens && !b_listens {
                ends.reverse();
            }
            let [a, b] = ends;
            let veth = VethSpec { a, b, mtu: n.mtu, b_listens: a_listens || b_listens };
            out.push((node, DirectLink::Veth(veth)));
            continue;
        }
        for (me, my_addr, other) in [(&a, ea.address, &b), (&b, eb.address, &a)] {
            let vxlan = VxlanSpec {
                container: me.0.clone(),
                ifname: me.2.clone(),
                vni: crate::plan::link_vni(n.subnet),
                local: addr(&me.1)?,
                remote: addr(&other.1)?,
                port: crate::plan::LINK_VXLAN_PORT,
                mtu: n.mtu,
                address: net(my_addr, me.3),
            };
            out.push((me.1.clone(), DirectLink::Vxlan(vxlan)));
        }
    }
    Ok(out)
}

/// Every container of a plan with its node, files and Docker attachments, in start order:
/// the hosts, then the routers by `plan::start_rank`.
pub fn container_specs(plan: &Plan, files: &Rendered) -> Vec<(String, ContainerSpec)> {
    let plan_json = serde_json::to_string(plan).expect("plan serialises");
    let network: BTreeMap<&str, &crate::plan::NetworkPlan> = plan.networks.iter().map(|n| (n.name.as_str(), n)).collect();
    let docker_net = |name: &str| network.get(name).is_some_and(|n| n.driver.is_docker());
    let mut out = Vec::new();
    // (start rank, node, spec), sorted by rank at the end.
    for (i, r) in plan.routers.iter().enumerate() {
        let mut l = base_labels(plan, "router");
        l.insert(labels::OBJECT.into(), r.name.clone());
        l.insert(labels::NODE.into(), r.node.clone());
        l.insert(labels::ASN.into(), r.asn.to_string());
        if let Some(h) = r.hop {
            l.insert(labels::HOP.into(), h.to_string());
        }
        let direct_subnets: Vec<String> = r
            .interfaces
            .iter()
            .filter_map(|i| network.get(i.network.as_str()))
            .filter(|n| !n.driver.is_docker())
            .map(|n| n.subnet.to_string())
            .collect();
        if !direct_subnets.is_empty() {
            l.insert(labels::SUBNETS.into(), direct_subnets.join(","));
        }
        let mut files = file_specs(files.get(&r.name));
        let (image, cmd, env) = match r.kind {
            RouterKind::Frr => {
                let boot = vec!["/bin/bash".to_string(), BOOT_PATH.to_string()];
                match files_in_env(&files, &boot) {
                    Some((cmd, env)) => {
                        files.clear();
                        (router_image(), cmd, env)
                    }
                    None => (router_image(), boot, Vec::new()),
                }
            }
            RouterKind::Vyos => (vyos_image(), vec!["/sbin/init".to_string()], Vec::new()),
        };
        // Hosts first, then routers by `plan::start_rank` (frr.conf's passive ends follow
        // it), in plan order within a rank.
        let rank = (crate::plan::start_rank(plan.path.len(), r.hop).saturating_add(1), i);
        out.push((
            rank,
            r.node.clone(),
            ContainerSpec {
                name: r.container.clone(),
                hostname: r.name.clone(),
                image,
                role: ContainerRole::Router,
                attachments: r
                    .interfaces
                    .iter()
                    .filter(|i| docker_net(&i.network))
                    .map(|i| Attachment { network: i.network.clone(), address: i.address })
                    .collect(),
                files,
                env,
                cmd,
                labels: l,
            },
        ));
    }
    for h in &plan.hosts {
        let mut l = base_labels(plan, "host");
        l.insert(labels::OBJECT.into(), h.name.clone());
        l.insert(labels::NODE.into(), h.node.clone());
        let mut f = file_specs(files.get(&h.name));
        f.push(FileSpec { path: PLAN_PATH.into(), mode: 0o644, content: plan_json.clone() });
        out.push((
            (0, 0),
            h.node.clone(),
            ContainerSpec {
                name: h.container.clone(),
                hostname: h.name.clone(),
                image: host_image(),
                role: ContainerRole::Host,
                attachments: if docker_net(&h.network) {
                    vec![Attachment { network: h.network.clone(), address: h.address }]
                } else {
                    Vec::new()
                },
                files: f,
                env: Vec::new(),
                cmd: vec!["/bin/bash".to_string(), BOOT_PATH.to_string()],
                labels: l,
            },
        ));
    }
    out.sort_by_key(|(rank, _, _)| *rank);
    out.into_iter().map(|(_, node, spec)| (node, spec)).collect()
}

/// The prologue of a container whose files travel in its environment (see `files_in_env`).
const UNPACK_ENV: &str = include_str!("../scripts/unpack-env.sh");
/// Largest file, and largest sum, sent through the environment (Linux takes 128 KiB per
/// variable and about 2 MiB of arguments and environment in all).
const ENV_FILE_MAX: usize = 96 * 1024;
const ENV_TOTAL_MAX: usize = 512 * 1024;

/// A container's files as environment variables of its create call, and the command that
/// writes them out before running `cmd`; `None` when they do not fit (the caller uploads
/// them instead). This spares an upload per container: Docker unpacks every upload in a
/// fresh process of the whole dockerd binary, about 0.08 CPU-s each on this kind of machine.
/// Needs bash in the image (ours).
pub fn files_in_env(files: &[FileSpec], cmd: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    let total: usize = files.iter().map(|f| f.content.len() + f.path.len()).sum();
    let fits = |f: &FileSpec| f.content.len() <= ENV_FILE_MAX && !f.content.contains('\0') && !f.path.contains('\0');
    if total > ENV_TOTAL_MAX || !files.iter().all(fits) {
        return None;
    }
    let env = files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            [
                format!("VNET_TE_F{i}_PATH={}", f.path),
                format!("VNET_TE_F{i}_MODE={:o}", f.mode),
                format!("VNET_TE_F{i}={}", f.content),
            ]
        })
        .collect();
    let mut full = vec!["/bin/bash".to_string(), "-c".to_string(), UNPACK_ENV.to_string(), "vnet-te-unpack".to_string()];
    full.extend(cmd.iter().cloned());
    Some((full, env))
}

fn file_specs(files: Option<&Vec<render::RenderedFile>>) -> Vec<FileSpec> {
    files
        .map(|v| {
            v.iter()
                .map(|f| FileSpec { path: f.container_path.clone(), mode: f.mode, content: f.content.clone() })
                .collect()
        })
        .unwrap_or_default()
}

/// What exists of a path on the nodes.
#[derive(Debug, Default, Clone)]
pub struct Existing {
    /// (node, container name, running)
    pub containers: Vec<(String, String, bool)>,
    /// (node, network name)
    pub networks: Vec<(String, String)>,
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
    Ok(ex)
}

/// Creates every network and container of the plan and starts them. On any error the
/// caller rolls back with `delete` (labels find everything this created).
pub async fn create(plan: &Plan, nodes: &Nodes, progress: &dyn Progress) -> Result<(), DeployError> {
    let files = render::render(plan)?;
    let containers = container_specs(plan, &files);
    let networks = network_specs(plan);

    // Preflight: nothing is created before these pass.
    progress.step(Step::Preflight, 1);
    let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (node, c) in &containers {
        needed.entry(node.clone()).or_default().insert(c.image.clone());
    }
    for (node, images) in &needed {
        let n = nodes.get(node)?;
        let refs: Vec<String> = images.iter().cloned().collect();
        let present = n
            .images_present(&refs)
            .await
            .map_err(|source| DeployError::Step { step: Step::Preflight.describe(), source })?;
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

    let used_nodes: BTreeSet<&String> = containers.iter().map(|(n, _)| n).collect();
    for node in &used_nodes {
        if plan.networks.iter().any(|n| n.driver == Driver::Bridge && n.nodes.contains(node)) {
            nodes
                .get(node)?
                .bridge_forwarding(true)
                .await
                .map_err(|source| DeployError::Step { step: Step::Networks.describe(), source })?;
        }
    }

    let t0 = std::time::Instant::now();
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
    run_all(net_jobs, Step::Networks, progress, |(node, spec)| async move { node.create_network(spec).await })
        .await?;

    tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, "networks created");
    // Each container is started as soon as it is created (its files in its environment or
    // uploaded before start), so starts overlap the remaining creates; a router that listens
    // on a session waits for the routers that connect to it (`start_after`). Each node does
    // a few operations at a time, in boot order (`run_per_node`): a single host one more than
    // its CPUs (`local_parallelism`); in a cluster every overlay attach is a round trip
    // through the manager that times out after 20 s, so each node gets only a few.
    progress.step(Step::Containers, containers.len());
    let per_node = std::env::var("VNET_TE_NODE_PARALLELISM")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(if plan.networks.iter().any(|n| n.driver == Driver::Overlay) {
            CLUSTER_PER_NODE
        } else if nodes.by_name.len() == 1 {
            local_parallelism()
        } else {
            (PARALLELISM / nodes.by_name.len()).max(CLUSTER_PER_NODE)
        });
    let jobs: Vec<(Arc<dyn Node>, &ContainerSpec)> =
        containers.iter().map(|(n, c)| Ok((nodes.get(n)?.clone(), c))).collect::<Result<_, DeployError>>()?;
    // Each link is made as soon as its containers are ready (see `Up`), overlapping the
    // remaining starts.
    // On a failure nothing in flight is abandoned: requests already sent finish (Docker
    // completes them even if we stop listening, and the rollback must see what they made),
    // no new one starts, and the first error is returned.
    let waiting = &routers_waiting_for_bgp(plan);
    let links = direct_links(plan, &nodes.underlay, waiting)?;
    let start_after = &start_after(plan, waiting);
    let state: BTreeMap<&str, tokio::sync::watch::Sender<Up>> =
        containers.iter().map(|(_, c)| (c.name.as_str(), tokio::sync::watch::channel(Up::Pending).0)).collect();
    let (state, failed) = (&state, &std::sync::atomic::AtomicBool::new(false));
    let starts = run_per_node(jobs, per_node, progress, |node, pool, place, c| async move {
        let up = &state[c.name.as_str()];
        if failed.load(std::sync::atomic::Ordering::SeqCst) {
            up.send_replace(Up::No);
            return Ok(());
        }
        let t = std::time::Instant::now();
        let r = async {
            {
                // A start goes before a create of the same place and of every later one.
                let _permit = pool.acquire(2 * place + 1).await;
                node.create_container(c).await?;
            }
            let created = t.elapsed().as_millis() as u64;
            for dep in start_after.get(c.name.as_str()).into_iter().flatten() {
                let mut rx = state[dep].subscribe();
                if !rx.wait_for(|u| matches!(u, Up::Ready | Up::No)).await.map(|u| *u == Up::Ready).unwrap_or(false) {
                    return Ok(false); // the create fails on that router's own error
                }
            }
            {
                let _permit = pool.acquire(2 * place).await;
                start_with_retry(&*node, &c.name).await?;
            }
            tracing::debug!(container = %c.name, created_ms = created, started_ms = t.elapsed().as_millis() as u64 - created, "container up");
            Ok(true)
        }
        .await;
        if r.is_err() {
            failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        up.send_replace(match r {
            Err(_) | Ok(false) => Up::No,
            Ok(true) if waiting.contains(c.name.as_str()) => Up::Started,
            Ok(true) => Up::Ready,
        });
        r.map(|_| ())
    });
    // Routers become ready once their bgpd is up (waited for apart from the starts, which
    // go on meanwhile).
    let listeners: &BTreeSet<&str> = &plan
        .routers
        .iter()
        .filter(|r| r.neighbors.iter().any(|n| n.passive))
        .map(|r| r.container.as_str())
        .collect();
    let bgpd_up = stream::iter(containers.iter().filter(|(_, c)| waiting.contains(c.name.as_str())))
        .map(|(node, c)| async move {
            let up = &state[c.name.as_str()];
            let mut rx = up.subscribe();
            if rx.wait_for(|u| *u != Up::Pending).await.map(|u| *u != Up::Started).unwrap_or(true) {
                return;
            }
            let t = std::time::Instant::now();
            if let Ok(n) = nodes.get(node) {
                match n.wait_bgpd(&c.name, BGPD_WAIT_SECS).await {
                    Ok(true) => {
                        tracing::debug!(container = %c.name, ms = t.elapsed().as_millis() as u64, "bgpd up");
                        if listeners.contains(c.name.as_str()) {
                            tokio::time::sleep(BGPD_SETTLE).await;
                        }
                    }
                    Ok(false) => tracing::warn!(container = %c.name, "bgpd not up after {BGPD_WAIT_SECS} s; linking anyway"),
                    Err(e) => tracing::debug!(container = %c.name, error = %e, "cannot watch for bgpd; linking at once"),
                }
            }
            up.send_replace(Up::Ready);
        })
        .buffer_unordered(containers.len().max(1))
        .collect::<Vec<()>>();
    // A veth waits for both its containers; a VXLAN end only for its own (the other end's
    // node may still be starting).
    let made = stream::iter(links.iter())
        .map(|(node, link)| async move {
            for container in link.needs() {
                let Some(up) = state.get(container) else {
                    return Err(DeployError::UnknownContainer(container.to_string()));
                };
                // The senders live as long as `state`.
                let mut rx = up.subscribe();
                if !rx.wait_for(|u| matches!(u, Up::Ready | Up::No)).await.map(|u| *u == Up::Ready).unwrap_or(false) {
                    return Ok(()); // the create fails on that container's own error
                }
            }
            link.make(&**nodes.get(node)?).await.map_err(|source| {
                failed.store(true, std::sync::atomic::Ordering::SeqCst);
                DeployError::Step { step: Step::Links.describe(), source }
            })
        })
        .buffer_unordered(links.len().max(1))
        .collect::<Vec<_>>();
    let (starts, made, _) = futures_util::join!(starts, made, bgpd_up);
    starts.map_err(|source| DeployError::Step { step: Step::Containers.describe(), source })?;
    made.into_iter().collect::<Result<Vec<()>, DeployError>>()?;
    tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, links = links.len(), "containers created, started and linked");
    Ok(())
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

/// Starts a container, retrying when a swarm overlay attach timed out in the manager
/// ("attaching to network failed … context deadline exceeded"): the start did not happen
/// and a second attempt usually goes through once the manager's queue drains.
async fn start_with_retry(node: &dyn Node, name: &str) -> Result<(), NodeError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match node.start_container(name).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 && {
                let m = e.to_string();
                m.contains("attaching to network failed") || m.contains("context deadline exceeded")
            } => {
                tracing::warn!(container = name, attempt, error = %e, "overlay attach timed out; retrying the start");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

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
async fn run_per_node<J, F, Fut>(
    jobs: Vec<(Arc<dyn Node>, J)>,
    per_node: usize,
    progress: &dyn Progress,
    f: F,
) -> Result<(), NodeError>
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

/// What a delete removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub networks: usize,
}

/// Removes everything labelled with the path (every path, with None) on every node:
/// containers first, then networks. Idempotent. Withdraws the bridge forwarding rule from
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
    Ok(removed)
}

/// Runs one removal per (node, object), concurrently.
async fn remove_each<F, Fut>(nodes: &Nodes, objects: Vec<(&String, &String)>, step: &'static str, f: F) -> Result<(), DeployError>
where
    F: Fn(Arc<dyn Node>, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), NodeError>>,
{
    let jobs = objects
        .into_iter()
        .map(|(n, o)| Ok(f(nodes.get(n)?.clone(), o.clone())))
        .collect::<Result<Vec<_>, DeployError>>()?;
    stream::iter(jobs)
        .buffer_unordered(PARALLELISM * 2)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
        .map_err(|source| DeployError::Step { step, source })
}

/// Reads the plan a running path was created from (kept in its experiment hosts).
/// A node that does not answer is skipped (a path stays verifiable with a node lost) as
/// long as another node holds a copy; with none readable, the first error is returned.
pub async fn load_plan(nodes: &Nodes, path: &str) -> Result<Option<Plan>, DeployError> {
    let mut first_err = None;
    for node in nodes.by_name.values() {
        let hosts = match node.find_containers(labels::PATH, Some(path)).await {
            Ok(h) => h,
            Err(source) => {
                tracing::warn!(node = node.name(), error = %source, "cannot list containers");
                first_err.get_or_insert(DeployError::Step { step: "listing containers", source });
                continue;
            }
        };
        for h in hosts.iter().filter(|h| h.labels.get(labels::ROLE).map(String::as_str) == Some("host")) {
            if let Ok(Some(text)) = node.read_file(&h.name, PLAN_PATH).await {
                if let Ok(plan) = serde_json::from_str::<Plan>(&text) {
                    return Ok(Some(plan));
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Inventory;

    #[test]
    fn the_listening_end_of_each_session_is_made_first() {
        let plan = crate::plan::build(&crate::spec::chain("p", 6).unwrap(), &Inventory::default()).unwrap();
        let waiting = routers_waiting_for_bgp(&plan);
        let links = direct_links(&plan, &BTreeMap::new(), &waiting).unwrap();
        let veths: Vec<&VethSpec> = links
            .iter()
            .filter_map(|(_, l)| match l {
                DirectLink::Veth(v) => Some(v),
                DirectLink::Vxlan(_) => None,
            })
            .collect();
        let router = |container: &str| plan.routers.iter().find(|r| r.container == container);
        let mut sessions = 0;
        for v in &veths {
            let (Some(a), Some(b)) = (router(&v.a.container), router(&v.b.container)) else {
                // A router and a host: no session, nothing to order.
                assert!(!v.b_listens, "{v:?}");
                continue;
            };
            sessions += 1;
            let passive = |r: &crate::plan::RouterPlan, peer: &str| r.neighbors.iter().find(|n| n.peer == peer).unwrap().passive;
            assert!(v.b_listens, "{v:?}");
            assert!(passive(b, &a.name) && !passive(a, &b.name), "{} listens, {} connects", b.name, a.name);
            assert_eq!((v.a.address, v.b.address), (None, None), "zebra addresses router ends");
        }
        assert_eq!(sessions, 5);
    }
}
