//! Cluster bootstrap over SSH: `cluster init`, `node add`, `node remove`, `cluster status`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use vnet_te_agent::docker::LocalNode;
use vnet_te_agent::node::labels;
use vnet_te_agent::remote::RemoteNode;
use vnet_te_agent::revocation::REVOKED_FILE;
use vnet_te_agent::tls::{self, ClusterCa};

use super::*;
use crate::core::kinds::{vyos_image, Kind};
use crate::error::BadInput;
use crate::exec::ssh::{quote, HostKeyPolicy, Session, SshTarget};

pub struct InitArgs {
    pub advertise_addr: Option<IpAddr>,
}

pub async fn init(a: InitArgs) -> anyhow::Result<()> {
    let home = home();
    let local = LocalNode::connect(LOCAL_NODE).await.context("no Docker engine answers on this machine")?;
    let docker = local.docker().clone();
    let info = docker.info().await.context("reading the engine's info")?;
    let swarm = info.swarm.clone().unwrap_or_default();
    let state_str = swarm.local_node_state.map(|s| s.to_string()).unwrap_or_default();
    let advertise: IpAddr = if state_str == "active" {
        if swarm.control_available != Some(true) {
            bail!("this engine is a swarm worker; run `vnet-te cluster init` on a swarm manager");
        }
        let addr = swarm.node_addr.clone().unwrap_or_default();
        let addr: IpAddr = addr.parse().with_context(|| format!("the swarm's node address '{addr}'"))?;
        if let Some(want) = a.advertise_addr {
            if want != addr {
                bail!("the swarm already advertises {addr}, not {want}; leave it first (`docker swarm leave --force`) or drop --advertise-addr");
            }
        }
        eprintln!("swarm: already active, this engine is a manager at {addr}");
        addr
    } else {
        let Some(addr) = a.advertise_addr else {
            return Err(BadInput("this engine is not in a swarm: pass --advertise-addr <IP of this machine that the other nodes reach>".into()).into());
        };
        // The swarm's listeners (2377, and 7946 follows) on the advertised address only,
        // not on every interface of the machine.
        let req = bollard::models::SwarmInitRequest {
            listen_addr: Some(SocketAddr::new(addr, SWARM_PORT).to_string()),
            advertise_addr: Some(addr.to_string()),
            ..Default::default()
        };
        docker.init_swarm(req).await.context("docker swarm init")?;
        eprintln!("swarm: initialised, manager at {addr}");
        addr
    };
    let manager = info.name.clone().filter(|n| !n.is_empty()).context("the engine reports no host name")?;

    // The CA is made once; a second init keeps it (agents already trust it).
    let pki = pki_dir(&home);
    let ca = if pki.join("ca.pem").exists() {
        eprintln!("pki: keeping the cluster CA in {}", pki.display());
        ClusterCa::load(&pki).with_context(|| format!("loading the cluster CA from {}", pki.display()))?
    } else {
        let ca = ClusterCa::generate().context("generating the cluster CA")?;
        ca.save(&pki).with_context(|| format!("saving the cluster CA to {}", pki.display()))?;
        eprintln!("pki: new cluster CA in {}", pki.display());
        ca
    };
    let ctl = controller_dir(&home);
    if !ctl.join("cert.pem").exists() {
        let id = ca.issue_controller("vnet-te-controller").context("issuing the controller certificate")?;
        id.save(&ctl).with_context(|| format!("saving the controller certificate to {}", ctl.display()))?;
    }

    let state = match load_state(&home)? {
        Some(mut s) => {
            s.manager = manager.clone();
            s.advertise_addr = advertise;
            s
        }
        None => ClusterState { version: STATE_VERSION, manager: manager.clone(), advertise_addr: advertise, nodes: vec![] },
    };
    save_state(&home, &state)?;
    eprintln!("cluster: manager {manager} ({advertise}); add nodes with `vnet-te node add user@host`");
    Ok(())
}

fn require_state(home: &Path) -> anyhow::Result<ClusterState> {
    load_state(home)?.ok_or_else(|| BadInput(format!("no cluster here ({} is missing): run `vnet-te cluster init` first", state_file(home).display())).into())
}

// ---------------------------------------------------------------------------------------
// cluster status / node list

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: &'static str,
    pub address: String,
    /// Swarm's view of the node (ready, down, …).
    pub swarm: String,
    /// `ok` or why the agent (or, for the manager, the engine) cannot be reached.
    pub agent: String,
    pub containers: usize,
}

/// The state of every node: swarm membership from the manager, reachability of each agent
/// (in parallel), and how many labelled containers each runs.
pub async fn status() -> anyhow::Result<(ClusterState, Vec<NodeStatus>)> {
    let home = home();
    let state = require_state(&home)?;
    let local = Arc::new(connect_manager(&state).await?);
    let nodes = cluster_nodes(&home, &state, local.clone())?;
    let swarm_nodes = local.docker().list_nodes(None).await.context("listing swarm nodes")?;
    let swarm_state: BTreeMap<String, String> = swarm_nodes
        .into_iter()
        .filter_map(|n| {
            let host = n.description.and_then(|d| d.hostname)?;
            let st = n.status.and_then(|s| s.state).map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
            Some((host, st))
        })
        .collect();
    let mut out = Vec::new();
    let checks = futures_util::future::join_all(nodes.order.iter().map(|name| {
        let node = nodes.by_name.get(name).cloned();
        async move {
            let Some(node) = node else { return (0, "not configured".to_string()) };
            match tokio::time::timeout(Duration::from_secs(10), node.find_containers(labels::PATH, None)).await {
                Ok(Ok(c)) => (c.len(), "ok".to_string()),
                Ok(Err(e)) => (0, e.to_string()),
                Err(_) => (0, "no answer within 10 s".to_string()),
            }
        }
    }))
    .await;
    for (name, (containers, agent)) in nodes.order.iter().zip(checks) {
        let (role, address) = if *name == state.manager {
            ("manager", state.advertise_addr.to_string())
        } else {
            let e = state.nodes.iter().find(|n| &n.name == name).expect("node from state");
            ("worker", e.agent.to_string())
        };
        out.push(NodeStatus {
            name: name.clone(),
            role,
            address,
            swarm: swarm_state.get(name).cloned().unwrap_or_else(|| "not in swarm".into()),
            agent,
            containers,
        });
    }
    Ok((state, out))
}

pub fn print_status(rows: &[NodeStatus]) {
    println!("{:<16} {:<8} {:<22} {:<13} {:>10}  AGENT", "NODE", "ROLE", "ADDRESS", "SWARM", "CONTAINERS");
    for r in rows {
        println!("{:<16} {:<8} {:<22} {:<13} {:>10}  {}", r.name, r.role, r.address, r.swarm, r.containers, r.agent);
    }
}

// ---------------------------------------------------------------------------------------
// node add

pub struct AddArgs {
    pub target: String,
    pub name: Option<String>,
    pub accept_new_host_key: bool,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub agent_port: u16,
    /// The address the agent listens on, when not the node's swarm address.
    pub agent_listen: Option<IpAddr>,
}

/// Runs one command over SSH and fails with its stderr unless it exits 0. Swarm join
/// tokens in the command or its output never reach the error ([`redact_tokens`]).
async fn run(ssh: &Session, what: &str, cmd: &str) -> anyhow::Result<String> {
    let out = ssh.exec(cmd).await.with_context(|| format!("{what}: running `{}`", redact_tokens(cmd)))?;
    if !out.success() {
        return Err(failed(what, cmd, out.status, &out.stderr_lossy()));
    }
    Ok(out.stdout_lossy().trim().to_string())
}

/// The error of a command that exited `status`, tokens redacted.
fn failed(what: &str, cmd: &str, status: impl std::fmt::Display, stderr: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: `{}` exited {status}: {}", redact_tokens(cmd), redact_tokens(stderr.trim()))
}

/// The prefix of every Docker swarm join token (`SWMTKN-1-<cluster key>-<secret>`).
const SWARM_TOKEN_PREFIX: &str = "SWMTKN-";

/// `text` with each swarm join token cut to its prefix: whoever holds one joins the swarm.
pub fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(SWARM_TOKEN_PREFIX) {
        let after = &rest[at + SWARM_TOKEN_PREFIX.len()..];
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(after.len());
        out.push_str(&rest[..at]);
        out.push_str(SWARM_TOKEN_PREFIX);
        out.push_str("<redacted>");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Bootstraps one node over SSH, every step idempotent so a failed `node add` can simply
/// be run again: Docker checked, swarm joined, images streamed (only those whose ID differs),
/// the agent's certificate written and the agent (re)started, then reached over mTLS.
pub async fn add(a: AddArgs) -> anyhow::Result<()> {
    let home = home();
    let mut state = require_state(&home)?;
    let target: SshTarget = a.target.parse().map_err(|e| BadInput(format!("{}: {e}", a.target)))?;
    let policy = if a.accept_new_host_key { HostKeyPolicy::AcceptNew } else { HostKeyPolicy::Strict };
    let known_hosts = a.known_hosts.clone().unwrap_or_else(crate::exec::ssh::default_known_hosts);
    let t0 = Instant::now();
    let ssh = Session::connect(&target, a.identity.as_deref(), &known_hosts, policy).await.with_context(|| format!("connecting to {}", a.target))?;
    eprintln!("ssh: connected to {} (host key checked against {})", a.target, known_hosts.display());

    // Docker.
    let api = run(&ssh, "checking Docker", "docker version --format '{{.Server.APIVersion}}'")
        .await
        .context("Docker is not usable on the node: install the engine (e.g. `apt-get install docker.io`) and start it")?;
    let hostname = run(&ssh, "reading the node's name", "docker info --format '{{.Name}}'").await?;
    let name = a.name.clone().unwrap_or(hostname);
    if let Some(problem) = crate::core::spec::name_problem(&name) {
        return Err(BadInput(format!("node name '{name}': {problem}; choose one with --name")).into());
    }
    if name == state.manager {
        return Err(BadInput(format!("'{name}' is the manager's name; give the node another with --name")).into());
    }
    eprintln!("docker: engine API {api} on node {name}");

    let local = connect_manager(&state).await?;
    let docker = local.docker().clone();
    join_swarm(&ssh, &state, &docker, &name).await?;
    let addr_txt = run(&ssh, "reading the node's swarm address", "docker info --format '{{.Swarm.NodeAddr}}'").await?;
    let address: IpAddr = addr_txt.parse().with_context(|| format!("node {name} advertises '{addr_txt}', not an IP address"))?;
    load_images(&ssh, &docker, &name).await?;
    start_agent(&ssh, &home, &name, address, SocketAddr::new(a.agent_listen.unwrap_or(address), a.agent_port)).await?;
    ssh.close().await;

    let agent = SocketAddr::new(address, a.agent_port);
    wait_for_agent(&home, &name, agent).await?;
    state.nodes.retain(|n| n.name != name);
    state.nodes.push(NodeEntry { name: name.clone(), ssh: a.target.clone(), agent });
    save_state(&home, &state)?;
    eprintln!("node {name} added: agent at {agent} answers over mutual TLS ({:.1} s)", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Joins the node to the manager's swarm, unless it is a member already; refuses a node of
/// another swarm.
async fn join_swarm(ssh: &Session, state: &ClusterState, docker: &bollard::Docker, name: &str) -> anyhow::Result<()> {
    let swarm = docker.inspect_swarm().await.context("reading the swarm (is this machine the manager?)")?;
    let swarm_id = swarm.id.clone().unwrap_or_default();
    let node_state = run(ssh, "reading swarm state", "docker info --format '{{.Swarm.LocalNodeState}}'").await?;
    if node_state == "active" {
        let cluster = run(ssh, "reading swarm state", "docker info --format '{{.Swarm.Cluster.ID}}'").await.unwrap_or_default();
        // Workers do not see the cluster ID; compare the manager list instead.
        let managers = run(ssh, "reading swarm state", "docker info --format '{{range .Swarm.RemoteManagers}}{{.Addr}} {{end}}'").await?;
        let ours = managers.split_whitespace().any(|m| m.starts_with(&format!("{}:", state.advertise_addr))) || (!cluster.is_empty() && cluster == swarm_id);
        if !ours {
            bail!("node {name} is in another swarm (managers: {managers}); run `docker swarm leave --force` on it first");
        }
        eprintln!("swarm: {name} is already a member");
    } else {
        let token = swarm.join_tokens.and_then(|t| t.worker).context("the swarm has no worker join token")?;
        // The node's address towards the manager is what it advertises and the only one its
        // swarm listeners bind.
        let route = run(ssh, "finding the node's address", &format!("ip -o route get {}", quote(&state.advertise_addr.to_string()))).await?;
        let own = route_source(&route).with_context(|| format!("node {name}: no source address in `ip route get {}`: {route}", state.advertise_addr))?;
        let cmd = format!(
            "docker swarm join --token {} --listen-addr {} --advertise-addr {} {}",
            quote(&token),
            quote(&SocketAddr::new(own, SWARM_PORT).to_string()),
            quote(&own.to_string()),
            quote(&SocketAddr::new(state.advertise_addr, SWARM_PORT).to_string())
        );
        run(ssh, "joining the swarm", &cmd).await?;
        eprintln!("swarm: {name} joined, listening on {own}");
    }
    Ok(())
}

/// The swarm's management port.
const SWARM_PORT: u16 = 2377;

/// The `src` address of `ip -o route get` output.
fn route_source(text: &str) -> Option<IpAddr> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// Streams `docker save` from the manager into `docker load` on the node, for every image
/// the node lacks.
async fn load_images(ssh: &Session, docker: &bollard::Docker, name: &str) -> anyhow::Result<()> {
    for image in [Kind::Frr.image(), Kind::Host.image(), agent_image()] {
        let local_id = docker
            .inspect_image(&image)
            .await
            .with_context(|| format!("image {image} is missing on the manager: run `vnet-te images build`"))?
            .id
            .unwrap_or_default();
        let remote_id = ssh.exec(&format!("docker image inspect --format '{{{{.Id}}}}' {}", quote(&image))).await?;
        if remote_id.success() && remote_id.stdout_lossy().trim() == local_id {
            eprintln!("images: {image} already on {name}");
            continue;
        }
        let t = Instant::now();
        let stream = futures_util::TryStreamExt::map_err(docker.export_image(&image), std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(stream);
        let out = ssh.exec_with_stdin("docker load", reader).await.with_context(|| format!("streaming {image} to {name}"))?;
        if !out.success() {
            bail!("loading {image} on {name}: {}", out.stderr_lossy().trim());
        }
        eprintln!("images: {image} loaded on {name} in {:.1} s", t.elapsed().as_secs_f64());
    }

    Ok(())
}

/// The agent: its own certificate (node name and address as SANs), then its container.
/// The agent listens on `listen`: by default the node's swarm address only (not every
/// interface of the node, as it shares the node's network namespace).
async fn start_agent(ssh: &Session, home: &Path, name: &str, address: IpAddr, listen: SocketAddr) -> anyhow::Result<()> {
    issue_and_write_agent_files(ssh, home, name, address).await?;
    // Host PID namespace and NET_ADMIN: veth links are made by naming the two containers'
    // init PIDs in one netlink request. SYS_PTRACE: FRR's sockets in a router are read
    // through /proc/<pid>/root (no exec). SYS_ADMIN: setns(2) into a router's network
    // namespace (link addresses, ARP tuning, is bgpd listening). The Docker socket already
    // gives root on the node.
    let run_agent = format!(
        "docker rm -f {c} >/dev/null 2>&1; docker run -d --name {c} --restart unless-stopped --network host \
         --pid host --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_PTRACE --cap-add SYS_ADMIN --label {obj}=agent \
         -e {vyos_env}={vyos} -v /var/run/docker.sock:/var/run/docker.sock -v {dir}:{dir}:ro {img} \
         --node-name {n} --listen {l} --cert-dir {dir}",
        c = AGENT_CONTAINER,
        obj = labels::OBJECT,
        dir = quote(AGENT_CERT_DIR),
        img = quote(&agent_image()),
        n = quote(name),
        l = quote(&listen.to_string()),
        vyos_env = vnet_te_agent::scope::VYOS_IMAGE_ENV,
        vyos = quote(&vyos_image()),
    );
    run(ssh, "starting the agent", &run_agent).await?;

    Ok(())
}

/// A certificate for the node's agent, written to the node with the CA and the revocation
/// list; the certificate it replaces (the one the controller keeps, else the node's own) is
/// revoked first.
async fn issue_and_write_agent_files(ssh: &Session, home: &Path, name: &str, address: IpAddr) -> anyhow::Result<()> {
    let pki = pki_dir(home);
    let ca = ClusterCa::load(&pki).with_context(|| format!("loading the cluster CA from {}", pki.display()))?;
    issue_and_write_agent_files_of(ssh, home, name, address, &ca, ca.cert_pem()).await
}

/// As `issue_and_write_agent_files`, by `ca`, the agent trusting the CA certificates `trust`.
async fn issue_and_write_agent_files_of(ssh: &Session, home: &Path, name: &str, address: IpAddr, ca: &ClusterCa, trust: &str) -> anyhow::Result<()> {
    let issued = ca.issue_agent(name, &[name.to_string()], &[address]).context("issuing the agent certificate")?;
    if let Some(old) = current_agent_cert(home, name, Some(ssh)).await {
        if old != issued.cert_pem {
            let fp = revoke(home, &old, &format!("agent of node {name}, replaced"))?;
            eprintln!("pki: revoked the previous agent certificate of {name} ({fp})");
        }
    }
    let list = load_revocations(home)?.render();
    run(ssh, "preparing the certificate directory", &format!("mkdir -p {}", quote(AGENT_CERT_DIR))).await?;
    for (file, content, mode) in [
        (tls::CA_CERT_FILE, trust, 0o644),
        (tls::CERT_FILE, issued.cert_pem.as_str(), 0o644),
        (tls::KEY_FILE, issued.key_pem.as_str(), 0o600),
        (REVOKED_FILE, list.as_str(), 0o644),
    ] {
        ssh.write_file(&format!("{AGENT_CERT_DIR}/{file}"), content.as_bytes(), mode)
            .await
            .with_context(|| format!("writing {AGENT_CERT_DIR}/{file} on {name}"))?;
    }
    let kept = issued_agent_file(home, name);
    if let Some(dir) = kept.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&kept, &issued.cert_pem).with_context(|| format!("writing {}", kept.display()))?;
    Ok(())
}

/// The agent certificate of `name` the controller keeps, else the one on the node (read over
/// `ssh`), else none.
async fn current_agent_cert(home: &Path, name: &str, ssh: Option<&Session>) -> Option<String> {
    if let Ok(pem) = std::fs::read_to_string(issued_agent_file(home, name)) {
        return Some(pem);
    }
    let ssh = ssh?;
    let pem = run(ssh, "reading the agent's certificate", &format!("cat {}", quote(&format!("{AGENT_CERT_DIR}/{}", tls::CERT_FILE)))).await.ok()?;
    pem.contains("BEGIN CERTIFICATE").then_some(pem)
}

/// Adds a certificate to the CA's revocation list (saved at once); its fingerprint.
fn revoke(home: &Path, cert_pem: &str, note: &str) -> anyhow::Result<String> {
    let mut list = load_revocations(home)?;
    let fp = list.revoke_pem(cert_pem, note).map_err(|e| anyhow::anyhow!("revoking a certificate: {e}"))?;
    write_public(&revoked_file(home), &list.render())?;
    Ok(fp)
}

/// Writes a file that holds nothing secret whole (temporary file, rename).
fn write_public(path: &Path, content: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// How the controller logs in to nodes for commands that reach them over SSH.
#[derive(Debug, Clone, Default)]
pub struct SshArgs {
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

impl SshArgs {
    async fn connect(&self, entry: &NodeEntry) -> anyhow::Result<Session> {
        let target: SshTarget = entry.ssh.parse().map_err(|e| BadInput(format!("{}: {e}", entry.ssh)))?;
        let known_hosts = self.known_hosts.clone().unwrap_or_else(crate::exec::ssh::default_known_hosts);
        Session::connect(&target, self.identity.as_deref(), &known_hosts, HostKeyPolicy::Strict)
            .await
            .with_context(|| format!("connecting to {} (node {})", entry.ssh, entry.name))
    }
}

/// Copies the CA's revocation list to the agent of every node in `to`, over SSH; the
/// agents re-read it at their next handshake. The nodes it could not reach, with why.
async fn push_revocations(home: &Path, to: &[NodeEntry], ssh: &SshArgs) -> anyhow::Result<Vec<(String, anyhow::Error)>> {
    let list = load_revocations(home)?;
    let text = list.render();
    let mut failed = Vec::new();
    for entry in to {
        let result = async {
            let session = ssh.connect(entry).await?;
            let written = session.write_file(&format!("{AGENT_CERT_DIR}/{REVOKED_FILE}"), text.as_bytes(), 0o644).await;
            session.close().await;
            written.with_context(|| format!("writing {AGENT_CERT_DIR}/{REVOKED_FILE} on {}", entry.name))
        }
        .await;
        match result {
            Ok(()) => eprintln!("pki: revocation list ({} entries) on {}", list.len(), entry.name),
            Err(e) => failed.push((entry.name.clone(), e)),
        }
    }
    Ok(failed)
}

fn report_unreached(failed: Vec<(String, anyhow::Error)>, again: &str) -> anyhow::Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = failed.iter().map(|(n, e)| format!("{n}: {e:#}")).collect();
    bail!("the revocation list did not reach {} node(s) ({}); run `{again}` once they answer", failed.len(), list.join("; "))
}

/// Waits until the new agent answers over mutual TLS.
async fn wait_for_agent(home: &Path, name: &str, agent: SocketAddr) -> anyhow::Result<()> {
    let client = controller_tls(home)?;
    let remote = RemoteNode::new(name, agent, &client)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match remote.health().await {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => {
                bail!("the agent on {name} ({agent}) did not answer over mutual TLS within 30 s: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// node remove

pub struct RemoveArgs {
    pub name: String,
    pub force: bool,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

/// Takes a node out: refuses while path containers run on it (unless --force, which removes
/// them first), stops its agent, makes it leave the swarm, and forgets it.
pub async fn remove(a: RemoveArgs) -> anyhow::Result<()> {
    let home = home();
    let mut state = require_state(&home)?;
    let Some(entry) = state.nodes.iter().find(|n| n.name == a.name).cloned() else {
        if a.name == state.manager {
            return Err(BadInput(format!("'{}' is the manager; it cannot be removed", a.name)).into());
        }
        return Err(BadInput(format!("no node named '{}' (see `vnet-te node list`)", a.name)).into());
    };
    let local = Arc::new(connect_manager(&state).await?);
    let nodes = cluster_nodes(&home, &state, local.clone())?;
    if let Some(node) = nodes.by_name.get(&a.name) {
        match node.find_containers(labels::PATH, None).await {
            Ok(c) if !c.is_empty() && !a.force => {
                let mut paths: Vec<&String> = c.iter().filter_map(|f| f.labels.get(labels::PATH)).collect();
                paths.sort();
                paths.dedup();
                return Err(
                    BadInput(format!("node {} runs {} containers of paths {:?}; delete those paths first or pass --force", a.name, c.len(), paths)).into()
                );
            }
            Ok(c) => {
                for f in c {
                    node.remove_container(&f.name).await?;
                }
            }
            Err(e) if a.force => eprintln!("warning: node {} does not answer ({e}); removing it anyway", a.name),
            Err(e) => bail!("node {} does not answer ({e}); pass --force to remove it anyway", a.name),
        }
    }
    let target: SshTarget = entry.ssh.parse().map_err(|e| BadInput(format!("{}: {e}", entry.ssh)))?;
    let known_hosts = a.known_hosts.clone().unwrap_or_else(crate::exec::ssh::default_known_hosts);
    let mut agent_cert = current_agent_cert(&home, &a.name, None).await;
    match Session::connect(&target, a.identity.as_deref(), &known_hosts, HostKeyPolicy::Strict).await {
        Ok(ssh) => {
            if agent_cert.is_none() {
                agent_cert = current_agent_cert(&home, &a.name, Some(&ssh)).await;
            }
            run(&ssh, "stopping the agent", &format!("docker rm -f {AGENT_CONTAINER} >/dev/null 2>&1 || true")).await?;
            // The agent's key is a credential of the cluster's CA: it does not stay behind.
            run(&ssh, "removing the agent's key and certificates", &format!("rm -rf -- {d} && test ! -e {d}", d = quote(AGENT_CERT_DIR))).await?;
            eprintln!("node {}: agent stopped, {AGENT_CERT_DIR} removed", a.name);
            run(&ssh, "leaving the swarm", "docker swarm leave --force >/dev/null 2>&1 || true").await?;
            ssh.close().await;
        }
        Err(e) if a.force => {
            eprintln!("warning: cannot reach {} over SSH ({e}); forgetting it anyway", entry.ssh);
            // Its certificate is revoked below, yet the key is a credential of the cluster's
            // CA until someone removes it there.
            eprintln!(
                "warning: node {}'s agent and its key ({AGENT_CERT_DIR}) are still on that machine; run there, as root:\n  {}",
                a.name,
                leftover_cleanup()
            );
        }
        Err(e) => return Err(anyhow::Error::from(e).context(format!("reaching {} (pass --force to forget it anyway)", entry.ssh))),
    }
    let docker = local.docker();
    if let Ok(list) = docker.list_nodes(None).await {
        for n in list {
            if n.description.as_ref().and_then(|d| d.hostname.as_deref()) == Some(a.name.as_str()) {
                if let Some(id) = n.id {
                    let opts = bollard::query_parameters::DeleteNodeOptionsBuilder::default().force(true).build();
                    docker.delete_node(&id, Some(opts)).await.with_context(|| format!("removing swarm node {id}"))?;
                }
            }
        }
    }
    state.nodes.retain(|n| n.name != a.name);
    save_state(&home, &state)?;
    match agent_cert {
        Some(pem) => {
            let fp = revoke(&home, &pem, &format!("agent of node {}, removed", a.name))?;
            eprintln!("pki: revoked the agent certificate of {} ({fp})", a.name);
        }
        None => eprintln!("warning: no agent certificate of {} is known here; nothing revoked", a.name),
    }
    let _ = std::fs::remove_file(issued_agent_file(&home, &a.name));
    let ssh = SshArgs { identity: a.identity.clone(), known_hosts: a.known_hosts.clone() };
    for (node, e) in push_revocations(&home, &state.nodes, &ssh).await? {
        eprintln!("warning: the revocation list did not reach {node}: {e:#}");
    }
    eprintln!("node {} removed", a.name);
    Ok(())
}

/// What `node remove` does on a node over SSH, as one command for an operator to run there.
fn leftover_cleanup() -> String {
    format!("docker rm -f {AGENT_CONTAINER}; rm -rf -- {}; docker swarm leave --force", quote(AGENT_CERT_DIR))
}

// ---------------------------------------------------------------------------------------
// node reissue, cluster rotate

/// A fresh key and certificate for a node's agent, the old certificate revoked: written over
/// SSH, the agent restarted (same settings), reached with the new certificate, and the list
/// copied to the other agents.
pub async fn reissue(name: &str, ssh: SshArgs) -> anyhow::Result<()> {
    let home = home();
    let state = require_state(&home)?;
    let Some(entry) = state.nodes.iter().find(|n| n.name == name).cloned() else {
        if name == state.manager {
            return Err(BadInput(format!("'{name}' is the manager; its engine is driven in-process and has no agent certificate")).into());
        }
        return Err(BadInput(format!("no node named '{name}' (see `vnet-te node list`)")).into());
    };
    let t0 = Instant::now();
    let session = ssh.connect(&entry).await?;
    issue_and_write_agent_files(&session, &home, name, entry.agent.ip()).await?;
    run(&session, "restarting the agent", &format!("docker restart {AGENT_CONTAINER} >/dev/null")).await?;
    session.close().await;
    // The controller refuses the revoked certificate: an answer comes from the new one.
    wait_for_agent(&home, name, entry.agent).await?;
    eprintln!("node {name}: agent answers with its reissued certificate ({:.1} s)", t0.elapsed().as_secs_f64());
    let others: Vec<NodeEntry> = state.nodes.iter().filter(|n| n.name != name).cloned().collect();
    report_unreached(push_revocations(&home, &others, &ssh).await?, &format!("vnet-te node reissue {name}"))
}

/// A fresh controller certificate; the one it replaces is revoked on every agent, and every
/// agent is reached with the new one. Works with an expired or lost certificate too (the
/// list travels over SSH).
pub async fn rotate(ssh: SshArgs) -> anyhow::Result<()> {
    let home = home();
    let state = require_state(&home)?;
    let pki = pki_dir(&home);
    let ca = ClusterCa::load(&pki).with_context(|| format!("loading the cluster CA from {}", pki.display()))?;
    let dir = controller_dir(&home);
    let old = tls::IssuedCert::load(&dir).ok();
    let fresh = ca.issue_controller("vnet-te-controller").context("issuing the controller certificate")?;
    if let Some(old) = &old {
        let fp = revoke(&home, &old.cert_pem, "controller certificate, replaced by cluster rotate")?;
        eprintln!("pki: revoked the controller certificate {fp}");
    }
    fresh.save(&dir).with_context(|| format!("saving the controller certificate to {}", dir.display()))?;
    eprintln!("pki: controller certificate replaced in {}", dir.display());
    report_unreached(push_revocations(&home, &state.nodes, &ssh).await?, "vnet-te cluster rotate")?;
    for n in &state.nodes {
        wait_for_agent(&home, &n.name, n.agent).await?;
    }
    eprintln!("cluster: every agent ({}) answers the new controller certificate", state.nodes.len());
    Ok(())
}

/// The new CA of a rotation under way (`cluster rotate --ca`), beside the cluster's CA until
/// every node has a certificate of it.
fn next_ca_dir(home: &Path) -> PathBuf {
    pki_dir(home).join("next")
}

/// Replaces the cluster CA without losing a node: a new CA; the controller and every agent
/// trust both while each agent gets a certificate of the new one (restarted, reached again);
/// then the controller's certificate; then the old CA is dropped everywhere. A node it cannot
/// reach over SSH stops the rotation with both CAs trusted (the cluster works as before) and
/// names the node: the same command, once it answers, goes on with the same new CA.
pub async fn rotate_ca(ssh: SshArgs) -> anyhow::Result<()> {
    let home = home();
    let state = require_state(&home)?;
    let pki = pki_dir(&home);
    let old = ClusterCa::load(&pki).with_context(|| format!("loading the cluster CA from {}", pki.display()))?;
    let next_dir = next_ca_dir(&home);
    let next = if next_dir.join(tls::CA_CERT_FILE).exists() {
        eprintln!("pki: a CA rotation is under way ({}): going on with its new CA", next_dir.display());
        ClusterCa::load(&next_dir).with_context(|| format!("loading the new CA from {}", next_dir.display()))?
    } else {
        let next = ClusterCa::generate().context("generating the new CA")?;
        next.save(&next_dir).with_context(|| format!("saving the new CA to {}", next_dir.display()))?;
        eprintln!("pki: new CA in {}", next_dir.display());
        next
    };
    let both = format!("{}\n{}", old.cert_pem().trim_end(), next.cert_pem());
    let dir = controller_dir(&home);
    let mut mine = tls::IssuedCert::load(&dir).with_context(|| format!("loading the controller certificate from {}", dir.display()))?;
    mine.ca_pem = both.clone();
    mine.save(&dir).with_context(|| format!("saving {}", dir.display()))?;
    eprintln!("pki: the controller trusts the old and the new CA");
    let mut unreached = Vec::new();
    for n in &state.nodes {
        let t0 = Instant::now();
        let result = async {
            let session = ssh.connect(n).await?;
            let written = issue_and_write_agent_files_of(&session, &home, &n.name, n.agent.ip(), &next, &both).await;
            let restarted = match written {
                Ok(()) => run(&session, "restarting the agent", &format!("docker restart {AGENT_CONTAINER} >/dev/null")).await.map(drop),
                Err(e) => Err(e),
            };
            session.close().await;
            restarted?;
            wait_for_agent(&home, &n.name, n.agent).await
        }
        .await;
        match result {
            Ok(()) => eprintln!("node {}: agent answers with a certificate of the new CA, trusting both ({:.1} s)", n.name, t0.elapsed().as_secs_f64()),
            Err(e) => unreached.push((n.name.clone(), e)),
        }
    }
    if !unreached.is_empty() {
        let list: Vec<String> = unreached.iter().map(|(n, e)| format!("{n}: {e:#}")).collect();
        bail!(
            "CA rotation stopped half-way: {} node(s) not reached ({}); every node reached trusts the old and the new CA and the cluster works as before; \
             run `vnet-te cluster rotate --ca` again once they answer over SSH (it goes on with the same new CA)",
            unreached.len(),
            list.join("; ")
        );
    }
    let mut fresh = next.issue_controller("vnet-te-controller").context("issuing the controller certificate")?;
    fresh.ca_pem = both.clone();
    let replaced = mine.cert_pem.clone();
    fresh.save(&dir).with_context(|| format!("saving the controller certificate to {}", dir.display()))?;
    let fp = revoke(&home, &replaced, "controller certificate, replaced by cluster rotate --ca")?;
    eprintln!("pki: controller certificate of the new CA; the old one revoked ({fp})");
    // The old CA goes: each agent trusts the new one only.
    let mut dropped = Vec::new();
    for n in &state.nodes {
        let result = async {
            let session = ssh.connect(n).await?;
            let written = session.write_file(&format!("{AGENT_CERT_DIR}/{}", tls::CA_CERT_FILE), next.cert_pem().as_bytes(), 0o644).await;
            let restarted = match written {
                Ok(()) => run(&session, "restarting the agent", &format!("docker restart {AGENT_CONTAINER} >/dev/null")).await.map(drop),
                Err(e) => Err(anyhow::Error::from(e)),
            };
            session.close().await;
            restarted?;
            wait_for_agent(&home, &n.name, n.agent).await
        }
        .await;
        if let Err(e) = result {
            dropped.push((n.name.clone(), e));
        }
    }
    if !dropped.is_empty() {
        let list: Vec<String> = dropped.iter().map(|(n, e)| format!("{n}: {e:#}")).collect();
        bail!(
            "CA rotation: every certificate is of the new CA, but {} node(s) still trust the old one too ({}); \
             run `vnet-te cluster rotate --ca` again once they answer over SSH",
            dropped.len(),
            list.join("; ")
        );
    }
    fresh.ca_pem = next.cert_pem().to_string();
    fresh.save(&dir).with_context(|| format!("saving {}", dir.display()))?;
    write_public(&pki.join("ca-retired.pem"), old.cert_pem())?;
    next.save(&pki).with_context(|| format!("saving the new CA to {}", pki.display()))?;
    std::fs::remove_dir_all(&next_dir).with_context(|| format!("removing {}", next_dir.display()))?;
    for n in &state.nodes {
        wait_for_agent(&home, &n.name, n.agent).await?;
    }
    eprintln!("cluster: CA replaced; the old CA is trusted nowhere; every agent ({}) answers", state.nodes.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx";

    #[test]
    fn a_failed_join_names_its_command_without_the_token() {
        let cmd = format!("docker swarm join --token {} {}", quote(TOKEN), quote("10.0.0.1:2377"));
        let stderr = format!("Error response from daemon: rejected {TOKEN}\n");
        let e = failed("joining the swarm", &cmd, 1, &stderr).to_string();
        assert_eq!(
            e,
            "joining the swarm: `docker swarm join --token SWMTKN-<redacted> '10.0.0.1:2377'` exited 1: \
             Error response from daemon: rejected SWMTKN-<redacted>"
        );
    }

    #[test]
    fn the_source_address_of_a_route() {
        let out = "10.196.251.2 dev eth0 src 10.196.251.3 uid 0 \\    cache ";
        assert_eq!(route_source(out), Some("10.196.251.3".parse().unwrap()));
        assert_eq!(route_source("local 10.0.0.1 dev lo table local src 10.0.0.1 uid 0"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(route_source("unreachable 10.0.0.9"), None);
        assert_eq!(route_source("10.0.0.9 dev eth0 src"), None);
    }

    #[test]
    fn join_tokens_are_cut_wherever_they_appear() {
        let stderr = format!("Error response from daemon: invalid join token {TOKEN}\nand {TOKEN}.");
        let shown = redact_tokens(&stderr);
        assert!(!shown.contains("3pu6hszjas") && !shown.contains("1awxwuwd"), "{shown}");
        assert_eq!(shown.matches("SWMTKN-<redacted>").count(), 2);
        assert!(shown.ends_with("SWMTKN-<redacted>."), "what follows a token stays: {shown}");
        assert_eq!(redact_tokens("no token here"), "no token here");
    }
}
