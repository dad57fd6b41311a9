//! The cluster: what the controller on the swarm manager knows about its nodes, and the
//! commands that change it (`cluster init|status|rotate`, `node add|list|remove|reissue`).
//!
//! State lives in one directory on the manager (`$VNET_TE_HOME`, default `~/.vnet-te`):
//!
//! ```text
//! cluster.json              manager name and address, the nodes and their agent addresses
//! pki/ca.pem ca-key.pem     the cluster CA (made at `cluster init`; the key never leaves)
//! pki/revoked.txt           certificates the CA no longer vouches for (copied to every agent)
//! pki/agents/NODE.pem       each agent's current certificate (to revoke it)
//! controller/{ca,cert,key}.pem   the controller's client certificate for the agents
//! paths/NAME.json           the plan each running path was made from (`exec::state`)
//! ```
//!
//! The manager's own engine is driven in-process (`LocalNode`); every other node through
//! its agent over mutual TLS (`RemoteNode`). Both are `Node`s, so the executor and the
//! verifier do not care which is which. No cluster state means the embedded single-host
//! default: the local engine is the only node.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use vnet_te_agent::docker::LocalNode;
use vnet_te_agent::node::Node;
use vnet_te_agent::remote::RemoteNode;
use vnet_te_agent::revocation::{RevocationList, REVOKED_FILE};
use vnet_te_agent::tls;

use crate::core::plan::LOCAL_NODE;
use crate::exec::nodes::Nodes;

/// The agent's TCP port unless `node add --agent-port` says otherwise.
pub const DEFAULT_AGENT_PORT: u16 = 7443;
/// Name of the agent container on every node (labelled `vnet-te.object=agent`).
pub const AGENT_CONTAINER: &str = "vnet-te-agent";
/// Where `node add` writes the agent's certificate, key and the cluster CA on the node.
pub const AGENT_CERT_DIR: &str = "/etc/vnet-te/agent";
const STATE_VERSION: u32 = 1;

pub fn agent_image() -> String {
    format!("vnet-te/agent:{}", env!("CARGO_PKG_VERSION"))
}

/// The state directory: `$VNET_TE_HOME`, else `~/.vnet-te`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("VNET_TE_HOME") {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    base.join(".vnet-te")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterState {
    pub version: u32,
    /// The manager's node name (its swarm hostname): placement uses it like any node.
    pub manager: String,
    /// The address the manager advertises to the swarm.
    pub advertise_addr: IpAddr,
    /// Every other node, in the order they were added.
    pub nodes: Vec<NodeEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: String,
    /// How `node add` reached it (`user@host[:port]`).
    pub ssh: String,
    /// The agent's address.
    pub agent: SocketAddr,
}

impl ClusterState {
    pub fn node_names(&self) -> Vec<String> {
        std::iter::once(self.manager.clone()).chain(self.nodes.iter().map(|n| n.name.clone())).collect()
    }
}

fn state_file(home: &Path) -> PathBuf {
    home.join("cluster.json")
}

/// The cluster state, or None when no cluster was initialised here.
pub fn load_state(home: &Path) -> anyhow::Result<Option<ClusterState>> {
    let f = state_file(home);
    match std::fs::read_to_string(&f) {
        Ok(text) => {
            let s: ClusterState = serde_json::from_str(&text).with_context(|| format!("reading cluster state {}", f.display()))?;
            if s.version != STATE_VERSION {
                bail!("{} has version {}, this vnet-te reads version {STATE_VERSION}", f.display(), s.version);
            }
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", f.display())),
    }
}

/// Writes the state atomically (temp file + rename), so a crash never leaves half a file.
pub fn save_state(home: &Path, s: &ClusterState) -> anyhow::Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let f = state_file(home);
    let tmp = f.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(s)? + "\n").with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &f).with_context(|| format!("replacing {}", f.display()))?;
    Ok(())
}

/// The controller's TLS client configuration: its certificate, trusting only the cluster CA
/// and refusing agents whose certificates the CA's revocation list names.
fn controller_tls(home: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let dir = controller_dir(home);
    let id = tls::IssuedCert::load(&dir).with_context(|| format!("loading the controller certificate from {} (run `vnet-te cluster init`)", dir.display()))?;
    Ok(tls::client_config_with(&id, load_revocations(home)?)?)
}

/// The CA's revocation list (`pki/revoked.txt`; none yet: empty).
fn load_revocations(home: &Path) -> anyhow::Result<RevocationList> {
    RevocationList::load(&revoked_file(home)).map_err(|e| anyhow::anyhow!("the cluster's revocation list: {e}"))
}

fn revoked_file(home: &Path) -> PathBuf {
    pki_dir(home).join(REVOKED_FILE)
}

/// Where the controller keeps each agent's current certificate (public), so that `node
/// remove` and `node reissue` can revoke it without asking the node.
fn issued_agent_file(home: &Path, node: &str) -> PathBuf {
    pki_dir(home).join("agents").join(format!("{node}.pem"))
}

/// Where the running paths' plans are kept (`exec::state`).
fn paths_dir(home: &Path) -> PathBuf {
    home.join("paths")
}

fn pki_dir(home: &Path) -> PathBuf {
    home.join("pki")
}
fn controller_dir(home: &Path) -> PathBuf {
    home.join("controller")
}

/// The nodes a path command works on: the cluster's (manager in-process, the rest through
/// their agents) or, with no cluster, the local engine alone.
pub async fn nodes() -> anyhow::Result<Nodes> {
    let home = home();
    let Some(state) = load_state(&home)? else {
        let node =
            LocalNode::connect(LOCAL_NODE).await.context("no Docker engine answered; start one (`bash deploy/ensure-docker.sh` installs and starts it)")?;
        return Ok(Nodes::single(Arc::new(node), paths_dir(&home)));
    };
    let manager = Arc::new(connect_manager(&state).await?);
    cluster_nodes(&home, &state, manager)
}

/// The manager's own engine, driven in-process.
async fn connect_manager(state: &ClusterState) -> anyhow::Result<LocalNode> {
    LocalNode::connect(&state.manager).await.context("the manager's Docker engine does not answer (is dockerd running?)")
}

/// How long before a certificate expires its warning begins.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One warning per certificate of the cluster that expires within [`EXPIRY_WARNING_DAYS`] of
/// `now` (or has), with the command that replaces it. `certs`: (what, PEM, command).
pub fn expiry_warnings(certs: &[(String, String, String)], now: i64) -> Vec<String> {
    let mut out = Vec::new();
    for (what, pem, fix) in certs {
        let Ok(end) = tls::not_after_unix(pem) else {
            out.push(format!("warning: the {what} cannot be read; `{fix}` replaces it"));
            continue;
        };
        let days = (end - now).div_euclid(86_400);
        if end <= now {
            out.push(format!("warning: the {what} has expired; run `{fix}`"));
        } else if days < EXPIRY_WARNING_DAYS {
            out.push(format!("warning: the {what} expires in {days} day(s); run `{fix}`"));
        }
    }
    out
}

/// The cluster's certificates the controller keeps: the CA, its own, each agent's.
fn cluster_certs(home: &Path, state: &ClusterState) -> Vec<(String, String, String)> {
    let mut certs = Vec::new();
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    if let Some(pem) = read(pki_dir(home).join(tls::CA_CERT_FILE)) {
        certs.push(("cluster CA".to_string(), pem, "vnet-te cluster rotate --ca".to_string()));
    }
    if let Some(pem) = read(controller_dir(home).join(tls::CERT_FILE)) {
        certs.push(("controller certificate".to_string(), pem, "vnet-te cluster rotate".to_string()));
    }
    for n in &state.nodes {
        if let Some(pem) = read(issued_agent_file(home, &n.name)) {
            certs.push((format!("agent certificate of {}", n.name), pem, format!("vnet-te node reissue {}", n.name)));
        }
    }
    certs
}

/// Says on stderr which of the cluster's certificates expire soon.
fn warn_expiring(home: &Path, state: &ClusterState) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    for w in expiry_warnings(&cluster_certs(home, state), now) {
        eprintln!("{w}");
    }
}

/// The cluster's nodes around an already connected manager: the others through their agents.
/// Every command that reaches the agents comes here, and hears of certificates about to expire.
fn cluster_nodes(home: &Path, state: &ClusterState, manager: Arc<LocalNode>) -> anyhow::Result<Nodes> {
    warn_expiring(home, state);
    let client = controller_tls(home)?;
    let manager: Arc<dyn Node> = manager;
    let mut by_name: BTreeMap<String, Arc<dyn Node>> = BTreeMap::new();
    by_name.insert(state.manager.clone(), manager.clone());
    for n in &state.nodes {
        let remote = RemoteNode::new(&n.name, n.agent, &client).with_context(|| format!("setting up the client for node {}", n.name))?;
        by_name.insert(n.name.clone(), Arc::new(remote));
    }
    // Each node's own address carries the VXLAN links between nodes.
    let mut underlay = BTreeMap::new();
    if let IpAddr::V4(a) = state.advertise_addr {
        underlay.insert(state.manager.clone(), a);
    }
    for n in &state.nodes {
        if let IpAddr::V4(a) = n.agent.ip() {
            underlay.insert(n.name.clone(), a);
        }
    }
    Ok(Nodes { manager, by_name, order: state.node_names(), underlay, state_dir: paths_dir(home) })
}

// ---------------------------------------------------------------------------------------
// cluster init

mod bootstrap;

pub use bootstrap::{add, init, print_status, reissue, remove, rotate, rotate_ca, status, AddArgs, InitArgs, NodeStatus, RemoveArgs, SshArgs};

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn certificates_within_30_days_of_their_end_are_named_with_the_command_that_replaces_them() {
        let ca = tls::ClusterCa::generate().unwrap();
        let controller = ca.issue_controller("vnet-te-controller").unwrap().cert_pem;
        let agent = ca.issue_agent("n2", &["n2".to_string()], &[]).unwrap().cert_pem;
        let certs = vec![
            ("cluster CA".to_string(), ca.cert_pem().to_string(), "vnet-te cluster rotate --ca".to_string()),
            ("controller certificate".to_string(), controller, "vnet-te cluster rotate".to_string()),
            ("agent certificate of n2".to_string(), agent, "vnet-te node reissue n2".to_string()),
            ("agent certificate of n3".to_string(), "not a certificate".to_string(), "vnet-te node reissue n3".to_string()),
        ];
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let day = 86_400;
        assert_eq!(expiry_warnings(&certs[..3], now), Vec::<String>::new(), "fresh certificates");
        // 80 days on, the controller's (90 days) has 9 or 10 left; the agents' (365) many.
        let w = expiry_warnings(&certs, now + 80 * day);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("warning: the controller certificate expires in ") && w[0].ends_with("day(s); run `vnet-te cluster rotate`"), "{w:?}");
        assert_eq!(w[1], "warning: the agent certificate of n3 cannot be read; `vnet-te node reissue n3` replaces it");
        let w = expiry_warnings(&certs[..3], now + 400 * day);
        assert_eq!(
            w,
            [
                "warning: the controller certificate has expired; run `vnet-te cluster rotate`",
                "warning: the agent certificate of n2 has expired; run `vnet-te node reissue n2`"
            ]
        );
    }
}
