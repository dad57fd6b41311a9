//! The nodes of a deployment and what every executor step shares: errors, steps, progress.

use std::collections::BTreeMap;
use std::sync::Arc;

use vnet_te_agent::node::{Node, NodeError};

use crate::core::objects::NoUnderlay;
use crate::core::render;


/// How many Docker requests run at once per step. Docker serialises some of its own work
/// (network attach, IPAM), so more does not help; fewer leaves the engine idle.
pub const PARALLELISM: usize = 12;

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
    /// Where the running paths' plans are kept, on the controller's side (`state`).
    pub state_dir: std::path::PathBuf,
}

impl Nodes {
    pub fn single(node: Arc<dyn Node>, state_dir: std::path::PathBuf) -> Self {
        let name = node.name().to_string();
        Nodes {
            manager: node.clone(),
            by_name: BTreeMap::from([(name.clone(), node)]),
            order: vec![name],
            underlay: BTreeMap::new(),
            state_dir,
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.order.clone()
    }

    /// Every subnet in use on any node (ours or not): the planner skips them.
    pub async fn taken_subnets(&self) -> Result<Vec<ipnet::Ipv4Net>, DeployError> {
        let mut taken = Vec::new();
        for node in self.by_name.values() {
            let subnets = node
                .taken_subnets()
                .await
                .map_err(|source| DeployError::Step { step: "listing the engine's networks", source })?;
            taken.extend(subnets.iter().filter_map(|s| s.parse::<ipnet::Ipv4Net>().ok()));
        }
        Ok(taken)
    }

    /// The interfaces of every node's own network namespace, by node.
    pub async fn own_interfaces(&self) -> Result<BTreeMap<String, std::collections::BTreeSet<String>>, DeployError> {
        let mut out = BTreeMap::new();
        for (name, node) in &self.by_name {
            let names = node
                .own_interfaces()
                .await
                .map_err(|source| DeployError::Step { step: "listing the nodes' interfaces", source })?;
            out.insert(name.clone(), names.into_iter().collect());
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<&Arc<dyn Node>, DeployError> {
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
    #[error(transparent)]
    NoUnderlay(#[from] NoUnderlay),
    #[error("{step}: {source}")]
    Step {
        step: &'static str,
        #[source]
        source: NodeError,
    },
    #[error("interrupted by {0}")]
    Interrupted(&'static str),
    #[error("rendering configs: {0}")]
    Render(#[from] render::RenderError),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error("taking the lock of the bridge forwarding rule ({file}): {source}")]
    Lock {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// What one step of a create is about; reported on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Preflight,
    Networks,
    Containers,
    Links,
    Delays,
}

impl Step {
    pub fn describe(self) -> &'static str {
        match self {
            Step::Preflight => "checking images and names",
            Step::Networks => "creating networks",
            Step::Containers => "creating containers, uploading configs, starting them",
            Step::Links => "linking containers (veth, VXLAN, macvlan)",
            Step::Delays => "starting delay lines and rates",
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
