//! An in-memory `Node` that records every call, for the executor's unit tests: they assert
//! on the operations the executor *intends* (which, on which node, in what order, how many
//! at once), with no Docker.
//!
//! A `FakeNode` keeps containers (labels, running state, files, interfaces), networks and
//! links, and answers like an engine would: creating a name that exists, starting or
//! linking a container that is not there, removing a network that still has containers all
//! fail. It can be told to fail chosen calls (`fail_on`, `fail_nth`), to be lost (every call
//! fails as for a node that does not answer), and to answer BGP tables, traceroutes and
//! pings as the routers of a plan would once the path works (`answer_from`).
//!
//! `Fakes` is a set of them sharing one journal (calls in order across nodes, with when each
//! began and ended), with the `Nodes` the executor takes.
//!
//! One file, longer than the others: one implementation of every `Node` operation over one
//! shared state, which splitting would only scatter.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use vnet_te_agent::delay::{Counters, Settings, Status};
use vnet_te_agent::docker::delay::{check_container, check_ifname};
use vnet_te_agent::frr::{AfSummary, BgpPath, BgpSummary, BgpTable, EvpnRoutes, EvpnVnis, NextHop, PeerSummary};
use vnet_te_agent::node::{
    ContainerSpec, DelayLineSpec, DelayLineStatus, DelaySettings, FileSpec, Found, MacvlanSpec, NetworkSpec, Node, NodeError, NodeResult, Probe, VethSpec,
    VxlanSpec,
};
use vnet_te_agent::probe::InterfaceCounters;
use vnet_te_agent::vpn::VpnOp;

use super::nodes::Nodes;
use crate::core::plan::{NetworkRole, Plan, RouterPlan, TE_LOCAL_PREF};

/// One call to a node, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    ImagesPresent(Vec<String>),
    TakenSubnets,
    FindContainers { label: String, value: Option<String> },
    FindNetworks { label: String, value: Option<String> },
    CreateNetwork(NetworkSpec),
    RemoveNetwork(String),
    CreateContainer(ContainerSpec),
    StartContainer(String),
    RemoveContainer(String),
    ReadFile { container: String, path: String },
    BgpTable(String),
    BgpSummary(String),
    Traceroute { host: String, target: Ipv4Addr, wait_ms: u32 },
    Ping { host: String, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32 },
    BridgeForwarding(bool),
    VxlanFilter(Option<Vec<Ipv4Addr>>),
    BgpEvpnRoutes(String),
    EvpnVnis(String),
    InterfaceCounters(String),
    ApplyFrrConfig { router: String, config: String, remove: String },
    WriteFiles { container: String, files: Vec<FileSpec> },
    ConnectVeth(VethSpec),
    ConnectVxlan(VxlanSpec),
    OwnInterfaces,
    ConnectMacvlan(MacvlanSpec),
    RemoveMacvlans(String),
    WaitBgpd(String),
    PingUntil { host: String, target: Ipv4Addr },
    PingBurst { host: String, target: std::net::IpAddr, count: u32 },
    PingEach { host: String, targets: Vec<Ipv4Addr> },
    IperfServer { host: String },
    IperfClient { host: String, target: Ipv4Addr },
    StartDelayLine(DelayLineSpec),
    SetDelayLine { container: String, ifname: String, settings: DelaySettings },
    DelayLines(String),
    SetLinkRate { container: String, ifname: String, rate_bps: Option<u64> },
    UnderlayRtts { target: Ipv4Addr, count: u32 },
    Vpn { container: String, op: VpnOp },
}

impl Call {
    /// The `Node` method called.
    pub fn kind(&self) -> &'static str {
        match self {
            Call::ImagesPresent(_) => "images_present",
            Call::TakenSubnets => "taken_subnets",
            Call::FindContainers { .. } => "find_containers",
            Call::FindNetworks { .. } => "find_networks",
            Call::CreateNetwork(_) => "create_network",
            Call::RemoveNetwork(_) => "remove_network",
            Call::CreateContainer(_) => "create_container",
            Call::StartContainer(_) => "start_container",
            Call::RemoveContainer(_) => "remove_container",
            Call::ReadFile { .. } => "read_file",
            Call::BgpTable(_) => "bgp_table",
            Call::BgpSummary(_) => "bgp_summary",
            Call::Traceroute { .. } => "traceroute",
            Call::Ping { .. } => "ping",
            Call::BridgeForwarding(_) => "bridge_forwarding",
            Call::VxlanFilter(_) => "vxlan_filter",
            Call::BgpEvpnRoutes(_) => "bgp_evpn_routes",
            Call::EvpnVnis(_) => "evpn_vnis",
            Call::InterfaceCounters(_) => "interface_counters",
            Call::ApplyFrrConfig { .. } => "apply_frr_config",
            Call::WriteFiles { .. } => "write_files",
            Call::ConnectVeth(_) => "connect_veth",
            Call::ConnectVxlan(_) => "connect_vxlan",
            Call::OwnInterfaces => "own_interfaces",
            Call::ConnectMacvlan(_) => "connect_macvlan",
            Call::RemoveMacvlans(_) => "remove_macvlans",
            Call::WaitBgpd(_) => "wait_bgpd",
            Call::PingUntil { .. } => "ping_until",
            Call::PingBurst { .. } => "ping_burst",
            Call::PingEach { .. } => "ping_each",
            Call::IperfServer { .. } => "iperf_server",
            Call::IperfClient { .. } => "iperf_client",
            Call::StartDelayLine(_) => "start_delay_line",
            Call::SetDelayLine { .. } => "set_delay_line",
            Call::DelayLines(_) => "delay_lines",
            Call::SetLinkRate { .. } => "set_link_rate",
            Call::UnderlayRtts { .. } => "underlay_rtts",
            Call::Vpn { .. } => "vpn",
        }
    }

    /// What the call is about: a container or network name (both ends of a veth), or the
    /// label asked for.
    pub fn subject(&self) -> String {
        match self {
            Call::ImagesPresent(refs) => refs.join(","),
            Call::TakenSubnets | Call::OwnInterfaces => String::new(),
            Call::FindContainers { label, value } | Call::FindNetworks { label, value } => match value {
                Some(v) => format!("{label}={v}"),
                None => label.clone(),
            },
            Call::CreateNetwork(s) => s.name.clone(),
            Call::CreateContainer(s) => s.name.clone(),
            Call::RemoveNetwork(n)
            | Call::StartContainer(n)
            | Call::RemoveContainer(n)
            | Call::BgpTable(n)
            | Call::BgpSummary(n)
            | Call::BgpEvpnRoutes(n)
            | Call::EvpnVnis(n)
            | Call::InterfaceCounters(n)
            | Call::WaitBgpd(n)
            | Call::RemoveMacvlans(n)
            | Call::DelayLines(n) => n.clone(),
            Call::IperfServer { host } => host.clone(),
            Call::PingBurst { host, target, .. } => format!("{host} {target}"),
            Call::PingEach { host, targets } => format!("{host} {} targets", targets.len()),
            Call::ReadFile { container, path } => format!("{container}:{path}"),
            Call::Traceroute { host, target, .. } | Call::Ping { host, target, .. } | Call::PingUntil { host, target } | Call::IperfClient { host, target } => {
                format!("{host} {target}")
            }
            Call::BridgeForwarding(on) => on.to_string(),
            Call::VxlanFilter(allow) => format!("{allow:?}"),
            Call::ApplyFrrConfig { router, .. } => router.clone(),
            Call::WriteFiles { container, .. } => container.clone(),
            Call::ConnectVeth(v) => format!("{} {}", v.a.container, v.b.container),
            Call::ConnectVxlan(v) => v.container.clone(),
            Call::ConnectMacvlan(m) => format!("{} {}", m.container, m.parent),
            Call::StartDelayLine(d) => format!("{}:{}", d.container, d.ifname),
            Call::SetDelayLine { container, ifname, .. } | Call::SetLinkRate { container, ifname, .. } => {
                format!("{container}:{ifname}")
            }
            Call::UnderlayRtts { target, .. } => target.to_string(),
            Call::Vpn { container, .. } => container.clone(),
        }
    }

    /// Changes something on the node (reads and waits do not).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Call::CreateNetwork(_)
                | Call::RemoveNetwork(_)
                | Call::CreateContainer(_)
                | Call::StartContainer(_)
                | Call::RemoveContainer(_)
                | Call::BridgeForwarding(_)
                | Call::VxlanFilter(_)
                | Call::ApplyFrrConfig { .. }
                | Call::WriteFiles { .. }
                | Call::ConnectVeth(_)
                | Call::ConnectVxlan(_)
                | Call::ConnectMacvlan(_)
                | Call::RemoveMacvlans(_)
                | Call::StartDelayLine(_)
                | Call::SetDelayLine { .. }
                | Call::SetLinkRate { .. }
                | Call::Vpn { op: VpnOp::Start {} | VpnOp::CountStart { .. } | VpnOp::CountStop {}, .. }
        )
    }

    /// The containers a call involves (a veth: both ends).
    pub fn containers(&self) -> Vec<&str> {
        match self {
            Call::CreateContainer(s) => vec![&s.name],
            Call::StartContainer(n) | Call::RemoveContainer(n) | Call::WaitBgpd(n) | Call::RemoveMacvlans(n) => vec![n],
            Call::ConnectVeth(v) => vec![&v.a.container, &v.b.container],
            Call::ConnectVxlan(v) => vec![&v.container],
            Call::ConnectMacvlan(m) => vec![&m.container],
            Call::ApplyFrrConfig { router, .. } => vec![router],
            Call::WriteFiles { container, .. } | Call::Vpn { container, .. } => vec![container],
            Call::StartDelayLine(d) => vec![&d.container],
            Call::SetDelayLine { container, .. } | Call::SetLinkRate { container, .. } | Call::DelayLines(container) => {
                vec![container]
            }
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Call {
    /// `create_container vte-p-r1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.subject();
        if s.is_empty() {
            f.write_str(self.kind())
        } else {
            write!(f, "{} {s}", self.kind())
        }
    }
}

/// One recorded call: on which node, and when it began and ended on the journal's clock
/// (one tick per event), so tests can say "A began after B ended".
#[derive(Debug, Clone)]
pub struct Entry {
    pub node: String,
    pub call: Call,
    pub began: u64,
    /// None while the call runs.
    pub ended: Option<u64>,
    pub ok: Option<bool>,
}

/// The calls of a set of fake nodes, in the order they began.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<JournalState>>);

#[derive(Default)]
struct JournalState {
    entries: Vec<Entry>,
    clock: u64,
}

impl Journal {
    fn begin(&self, node: &str, call: Call) -> usize {
        let mut j = self.0.lock().expect("journal lock");
        j.clock += 1;
        let began = j.clock;
        j.entries.push(Entry { node: node.to_string(), call, began, ended: None, ok: None });
        j.entries.len() - 1
    }

    fn end(&self, id: usize, ok: bool) {
        let mut j = self.0.lock().expect("journal lock");
        j.clock += 1;
        let clock = j.clock;
        let e = &mut j.entries[id];
        e.ended = Some(clock);
        e.ok = Some(ok);
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.0.lock().expect("journal lock").entries.clone()
    }

    /// Calls matching `f`, in order.
    pub fn find(&self, f: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        self.entries().into_iter().filter(|e| f(e)).collect()
    }

    /// Calls of one kind on any node, in order.
    pub fn of_kind(&self, kind: &str) -> Vec<Entry> {
        self.find(|e| e.call.kind() == kind)
    }

    /// Every call as `node: kind subject`, one a line (for failure messages).
    pub fn dump(&self) -> String {
        self.entries().iter().map(|e| format!("{}: {}\n", e.node, e.call)).collect()
    }

    pub fn clear(&self) {
        self.0.lock().expect("journal lock").entries.clear();
    }
}

/// A container as the fake engine holds it.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub spec: ContainerSpec,
    pub running: bool,
    /// By path: what was uploaded at create or written since.
    pub files: BTreeMap<String, String>,
    /// Interfaces made by `connect_veth` / `connect_vxlan` / `connect_macvlan`, in the order
    /// they appeared.
    pub interfaces: Vec<String>,
    /// Of those, the macvlans, each with its parent on the node.
    pub macvlans: Vec<(String, String)>,
    /// Delay lines by interface: as started, with the settings changed since.
    pub delay_lines: BTreeMap<String, DelayLineSpec>,
    /// Rate limits by interface, in bit/s.
    pub rates: BTreeMap<String, u64>,
}

impl FakeContainer {
    fn new(spec: ContainerSpec, running: bool, files: BTreeMap<String, String>) -> Self {
        FakeContainer { spec, running, files, interfaces: Vec::new(), macvlans: Vec::new(), delay_lines: BTreeMap::new(), rates: BTreeMap::new() }
    }
}

type Predicate = Arc<dyn Fn(&Call) -> bool + Send + Sync>;

enum Rule {
    /// Every call for which the predicate holds (evaluated once per call, as it begins).
    On(Predicate),
    /// The `n`-th call (from 0) of a kind on this node.
    Nth { kind: &'static str, n: usize },
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    /// Containers whose removal outlives its request: (name, listings left).
    lingering: BTreeMap<String, usize>,
    /// Removed containers Docker still lists without a name: (labels, listings left).
    removing: Vec<(BTreeMap<String, String>, usize)>,
    networks: BTreeMap<String, NetworkSpec>,
    missing_images: BTreeSet<String>,
    lost: bool,
    rules: Vec<Rule>,
    counts: BTreeMap<&'static str, usize>,
    /// Container creates, starts and removals running now, and the most ever at once.
    container_ops: usize,
    peak_container_ops: usize,
    forwarding: bool,
    vxlan_filter: Option<Vec<Ipv4Addr>>,
    answers: Option<Arc<Plan>>,
    tables: BTreeMap<String, BgpTable>,
    /// What `underlay_rtts` answers per target (µs); others get [`UNDERLAY_RTTS`].
    underlay: BTreeMap<Ipv4Addr, Vec<u64>>,
    /// The node's own interfaces (`own_interfaces`); [`OWN_INTERFACES`] until set.
    own_interfaces: Option<Vec<String>>,
}

/// The interfaces a fake node has of its own by default.
pub const OWN_INTERFACES: [&str; 3] = ["lo", "eth0", "eth1"];

/// The round trips a fake node measures to another by default (µs).
pub const UNDERLAY_RTTS: [u64; 3] = [130, 100, 180];

/// Overlay networks are made on the manager and used by containers on every node.
#[derive(Default)]
struct Swarm {
    overlays: Mutex<BTreeSet<String>>,
}

pub struct FakeNode {
    name: String,
    addr: Ipv4Addr,
    journal: Journal,
    swarm: Arc<Swarm>,
    state: Mutex<State>,
}

/// How often a call gives way to other tasks while it runs, as a request to an engine
/// would: enough for concurrent callers to overlap.
const YIELDS: usize = 3;

impl FakeNode {
    /// A node on its own (its own journal).
    pub fn new(name: &str) -> Arc<Self> {
        Self::joined(name, Ipv4Addr::new(192, 0, 2, 1), Journal::default(), Arc::default())
    }

    fn joined(name: &str, addr: Ipv4Addr, journal: Journal, swarm: Arc<Swarm>) -> Arc<Self> {
        Arc::new(FakeNode { name: name.to_string(), addr, journal, swarm, state: Mutex::default() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake node lock")
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Fails every call for which `f` holds (from now on).
    pub fn fail_on(&self, f: impl Fn(&Call) -> bool + Send + Sync + 'static) {
        self.state().rules.push(Rule::On(Arc::new(f)));
    }

    /// Fails the `n`-th call (from 0, counted on this node from its start) of `kind`
    /// (`Call::kind`).
    pub fn fail_nth(&self, kind: &'static str, n: usize) {
        self.state().rules.push(Rule::Nth { kind, n });
    }

    /// The removal of `container` returns while the engine goes on listing it, nameless (as
    /// Docker lists a container it is still removing), for `listings` more listings.
    pub fn linger_on_removal(&self, container: &str, listings: usize) {
        self.state().lingering.insert(container.to_string(), listings);
    }

    /// A lost node: every call fails as for a node that does not answer.
    pub fn set_lost(&self, lost: bool) {
        self.state().lost = lost;
    }

    /// `images_present` answers false for this image.
    pub fn remove_image(&self, image: &str) {
        self.state().missing_images.insert(image.to_string());
    }

    /// Answers reads as the running path of `plan` would (see `table_for`, `trace_for`).
    pub fn answer_from(&self, plan: &Plan) {
        self.state().answers = Some(Arc::new(plan.clone()));
    }

    /// This router container's BGP table, instead of the one from the plan.
    pub fn set_table(&self, container: &str, table: BgpTable) {
        self.state().tables.insert(container.to_string(), table);
    }

    /// The round trips (µs) `underlay_rtts` answers for echoes to `target`.
    pub fn set_underlay_rtts(&self, target: Ipv4Addr, rtts: &[u64]) {
        self.state().underlay.insert(target, rtts.to_vec());
    }

    /// The node's own interfaces, as `own_interfaces` answers.
    pub fn set_own_interfaces(&self, names: &[&str]) {
        self.state().own_interfaces = Some(names.iter().map(|n| n.to_string()).collect());
    }

    /// Macvlans on the node's interface `parent`: (container, interface) of each.
    pub fn macvlans_on(&self, parent: &str) -> Vec<(String, String)> {
        let s = self.state();
        s.containers.values().flat_map(|c| c.macvlans.iter().filter(|(_, p)| p == parent).map(|(i, _)| (c.spec.name.clone(), i.clone()))).collect()
    }

    /// A container that vnet-te did not make itself (or made earlier), running.
    pub fn add_container(&self, name: &str, labels: &[(&str, &str)]) {
        let spec = ContainerSpec {
            name: name.to_string(),
            hostname: name.to_string(),
            image: "other:latest".into(),
            role: vnet_te_agent::node::ContainerRole::Host,
            attachments: Vec::new(),
            files: Vec::new(),
            env: Vec::new(),
            cmd: Vec::new(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            sysctls: BTreeMap::new(),
            devices: Vec::new(),
            limits: Default::default(),
        };
        self.state().containers.insert(name.to_string(), FakeContainer::new(spec, true, BTreeMap::new()));
    }

    /// A network that vnet-te did not make itself (or made earlier).
    pub fn add_network(&self, name: &str, subnet: &str, labels: &[(&str, &str)]) {
        let spec = NetworkSpec {
            name: name.to_string(),
            driver: "bridge".into(),
            subnet: subnet.to_string(),
            gateway: String::new(),
            ip_range: subnet.to_string(),
            bridge_name: None,
            mtu: None,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        self.state().networks.insert(name.to_string(), spec);
    }

    pub fn containers(&self) -> BTreeMap<String, FakeContainer> {
        self.state().containers.clone()
    }

    pub fn networks(&self) -> BTreeMap<String, NetworkSpec> {
        self.state().networks.clone()
    }

    /// The most container creates, starts and removals that ever ran at once here.
    pub fn peak_container_ops(&self) -> usize {
        self.state().peak_container_ops
    }

    pub fn forwarding(&self) -> bool {
        self.state().forwarding
    }

    /// The node addresses the VXLAN filter lets in, if one is in place.
    pub fn vxlan_filter(&self) -> Option<Vec<Ipv4Addr>> {
        self.state().vxlan_filter.clone()
    }

    /// Records the call, applies the failure rules, lets other tasks run as a real
    /// request would, then runs `f` on the node's state.
    async fn op<T>(&self, call: Call, f: impl FnOnce(&mut State, &Swarm) -> Result<T, Refusal>) -> NodeResult<T> {
        let container_op = matches!(call, Call::CreateContainer(_) | Call::StartContainer(_) | Call::RemoveContainer(_));
        let doing = call.to_string();
        let id = self.journal.begin(&self.name, call.clone());
        let refused = {
            let mut s = self.state();
            let n = s.counts.entry(call.kind()).or_default();
            let nth = *n;
            *n += 1;
            if s.lost {
                Some(NodeError::Failed {
                    doing: format!("node {} ({}): {doing}", self.name, self.addr),
                    message: "error sending request: connection refused".into(),
                })
            } else if s
                .rules
                .iter()
                // Every rule sees every call (a predicate may count calls).
                .filter(|r| match r {
                    Rule::On(p) => p(&call),
                    Rule::Nth { kind, n } => *kind == call.kind() && *n == nth,
                })
                .count()
                > 0
            {
                Some(NodeError::Failed { doing: doing.clone(), message: "injected failure".into() })
            } else {
                if container_op {
                    s.container_ops += 1;
                    s.peak_container_ops = s.peak_container_ops.max(s.container_ops);
                }
                None
            }
        };
        if let Some(e) = refused {
            self.journal.end(id, false);
            return Err(e);
        }
        for _ in 0..YIELDS {
            tokio::task::yield_now().await;
        }
        let r = {
            let mut s = self.state();
            if container_op {
                s.container_ops -= 1;
            }
            f(&mut s, &self.swarm).map_err(|message| NodeError::Failed { doing: doing.clone(), message })
        };
        self.journal.end(id, r.is_ok());
        r
    }
}

/// What an engine would refuse, as a message.
type Refusal = String;

fn matches_label(l: &BTreeMap<String, String>, label: &str, value: Option<&str>) -> bool {
    match (l.get(label), value) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(want)) => v == want,
    }
}

fn running<'a>(s: &'a mut State, name: &str) -> Result<&'a mut FakeContainer, Refusal> {
    match s.containers.get_mut(name) {
        None => Err(format!("no such container: {name}")),
        Some(c) if !c.running => Err(format!("container {name} is not running")),
        Some(c) => Ok(c),
    }
}

#[async_trait]
impl Node for FakeNode {
    fn name(&self) -> &str {
        &self.name
    }

    async fn images_present(&self, refs: &[String]) -> NodeResult<BTreeMap<String, bool>> {
        self.op(Call::ImagesPresent(refs.to_vec()), |s, _| Ok(refs.iter().map(|r| (r.clone(), !s.missing_images.contains(r))).collect())).await
    }

    async fn taken_subnets(&self) -> NodeResult<Vec<String>> {
        self.op(Call::TakenSubnets, |s, _| Ok(s.networks.values().map(|n| n.subnet.clone()).collect())).await
    }

    async fn find_containers(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        let call = Call::FindContainers { label: label.into(), value: value.map(str::to_string) };
        self.op(call, |s, _| {
            let mut found: Vec<Found> = s
                .containers
                .values()
                .filter(|c| matches_label(&c.spec.labels, label, value))
                .map(|c| Found { name: c.spec.name.clone(), labels: c.spec.labels.clone(), running: c.running, subnets: vec![] })
                .collect();
            for (labels, left) in &mut s.removing {
                if matches_label(labels, label, value) {
                    found.push(Found { name: String::new(), labels: labels.clone(), running: false, subnets: vec![] });
                    *left -= 1;
                }
            }
            s.removing.retain(|(_, left)| *left > 0);
            Ok(found)
        })
        .await
    }

    async fn find_networks(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        let call = Call::FindNetworks { label: label.into(), value: value.map(str::to_string) };
        self.op(call, |s, _| {
            Ok(s.networks
                .values()
                .filter(|n| matches_label(&n.labels, label, value))
                .map(|n| Found { name: n.name.clone(), labels: n.labels.clone(), running: true, subnets: vec![n.subnet.clone()] })
                .collect())
        })
        .await
    }

    async fn create_network(&self, spec: &NetworkSpec) -> NodeResult<()> {
        self.op(Call::CreateNetwork(spec.clone()), |s, swarm| {
            // As the real node refuses it: the controller's specs must pass.
            vnet_te_agent::scope::check_network_spec(spec).map_err(|m| format!("refused: {m}"))?;
            if s.networks.contains_key(&spec.name) {
                return Err(format!("network with name {} already exists", spec.name));
            }
            if spec.driver == "overlay" {
                swarm.overlays.lock().expect("swarm lock").insert(spec.name.clone());
            }
            s.networks.insert(spec.name.clone(), spec.clone());
            Ok(())
        })
        .await
    }

    async fn remove_network(&self, name: &str) -> NodeResult<()> {
        self.op(Call::RemoveNetwork(name.into()), |s, swarm| {
            if let Some(c) = s.containers.values().find(|c| c.spec.attachments.iter().any(|a| a.network == name)) {
                return Err(format!("network {name} has active endpoints ({})", c.spec.name));
            }
            if s.networks.remove(name).is_some_and(|n| n.driver == "overlay") {
                swarm.overlays.lock().expect("swarm lock").remove(name);
            }
            Ok(())
        })
        .await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> NodeResult<()> {
        self.op(Call::CreateContainer(spec.clone()), |s, swarm| {
            vnet_te_agent::scope::check_container_spec(spec).map_err(|m| format!("refused: {m}"))?;
            if s.containers.contains_key(&spec.name) {
                return Err(format!("Conflict. The container name \"/{}\" is already in use", spec.name));
            }
            if s.missing_images.contains(&spec.image) {
                return Err(format!("No such image: {}", spec.image));
            }
            let overlays = swarm.overlays.lock().expect("swarm lock");
            let known = |n: &String| s.networks.contains_key(n) || overlays.contains(n);
            if let Some(a) = spec.attachments.iter().find(|a| !known(&a.network)) {
                return Err(format!("network {} not found", a.network));
            }
            let files = spec.files.iter().map(|f| (f.path.clone(), f.content.clone())).collect();
            s.containers.insert(spec.name.clone(), FakeContainer::new(spec.clone(), false, files));
            Ok(())
        })
        .await
    }

    async fn start_container(&self, name: &str) -> NodeResult<()> {
        self.op(Call::StartContainer(name.into()), |s, _| match s.containers.get_mut(name) {
            None => Err(format!("no such container: {name}")),
            Some(c) => {
                c.running = true;
                Ok(())
            }
        })
        .await
    }

    async fn remove_container(&self, name: &str) -> NodeResult<()> {
        self.op(Call::RemoveContainer(name.into()), |s, _| {
            if let (Some(c), Some(n)) = (s.containers.remove(name), s.lingering.remove(name)) {
                s.removing.push((c.spec.labels, n));
            }
            Ok(())
        })
        .await
    }

    async fn read_file(&self, container: &str, path: &str) -> NodeResult<Option<String>> {
        let call = Call::ReadFile { container: container.into(), path: path.into() };
        self.op(call, |s, _| match s.containers.get(container) {
            None => Err(format!("no such container: {container}")),
            Some(c) => Ok(c.files.get(path).cloned()),
        })
        .await
    }

    async fn bgp_table(&self, router: &str) -> NodeResult<BgpTable> {
        self.op(Call::BgpTable(router.into()), |s, _| {
            running(s, router)?;
            if let Some(t) = s.tables.get(router) {
                return Ok(t.clone());
            }
            let plan = s.answers.clone();
            let r = plan.as_deref().and_then(|p| p.routers.iter().find(|r| r.container == router).map(|r| (p, r)));
            Ok(r.map(|(p, r)| table_for(p, r)).unwrap_or_default())
        })
        .await
    }

    async fn bgp_summary(&self, router: &str) -> NodeResult<BgpSummary> {
        self.op(Call::BgpSummary(router.into()), |s, _| {
            running(s, router)?;
            let plan = s.answers.clone();
            let r = plan.as_deref().and_then(|p| p.routers.iter().find(|r| r.container == router));
            Ok(r.map(summary_for).unwrap_or_default())
        })
        .await
    }

    async fn traceroute(&self, host: &str, target: Ipv4Addr, max_hops: u32, wait_ms: u32, _one_at_a_time: bool) -> NodeResult<Probe> {
        self.op(Call::Traceroute { host: host.into(), target, wait_ms }, |s, _| {
            running(s, host)?;
            let hops = s.answers.as_deref().and_then(|p| trace_for(p, host, target));
            Ok(match hops {
                Some(hops) => Probe { success: true, output: traceroute_output(target, max_hops, &hops) },
                None => Probe { success: false, output: traceroute_output(target, max_hops, &[]) },
            })
        })
        .await
    }

    async fn ping(&self, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32) -> NodeResult<Probe> {
        self.op(Call::Ping { host: host.into(), target, size, dont_fragment, wait_ms }, |s, _| {
            running(s, host)?;
            let success = s
                .answers
                .as_deref()
                .is_some_and(|p| trace_for(p, host, target).is_some() || p.hosts.iter().any(|h| h.attach.as_ref().is_some_and(|a| a.address == target)));
            Ok(Probe { success, output: String::new() })
        })
        .await
    }

    async fn bridge_forwarding(&self, enable: bool) -> NodeResult<()> {
        self.op(Call::BridgeForwarding(enable), |s, _| {
            s.forwarding = enable;
            Ok(())
        })
        .await
    }

    async fn vxlan_filter(&self, allow: Option<&[Ipv4Addr]>) -> NodeResult<()> {
        self.op(Call::VxlanFilter(allow.map(<[Ipv4Addr]>::to_vec)), |s, _| {
            s.vxlan_filter = allow.map(<[Ipv4Addr]>::to_vec);
            Ok(())
        })
        .await
    }

    async fn bgp_evpn_routes(&self, router: &str) -> NodeResult<EvpnRoutes> {
        self.op(Call::BgpEvpnRoutes(router.into()), |s, _| running(s, router).map(|_| EvpnRoutes::default())).await
    }

    async fn evpn_vnis(&self, router: &str) -> NodeResult<EvpnVnis> {
        self.op(Call::EvpnVnis(router.into()), |s, _| running(s, router).map(|_| EvpnVnis::default())).await
    }

    async fn interface_counters(&self, container: &str) -> NodeResult<Vec<InterfaceCounters>> {
        self.op(Call::InterfaceCounters(container.into()), |s, _| running(s, container).map(|_| Vec::new())).await
    }

    async fn apply_frr_config(&self, router: &str, config: &str, remove: &str) -> NodeResult<()> {
        let call = Call::ApplyFrrConfig { router: router.into(), config: config.into(), remove: remove.into() };
        self.op(call, |s, _| {
            running(s, router)?.files.insert("/etc/frr/frr.conf".into(), config.into());
            Ok(())
        })
        .await
    }

    async fn write_files(&self, container: &str, files: &[FileSpec]) -> NodeResult<()> {
        let call = Call::WriteFiles { container: container.into(), files: files.to_vec() };
        self.op(call, |s, _| {
            vnet_te_agent::scope::check_writable(files).map_err(|m| format!("refused: {m}"))?;
            let c = s.containers.get_mut(container).ok_or_else(|| format!("no such container: {container}"))?;
            for f in files {
                c.files.insert(f.path.clone(), f.content.clone());
            }
            Ok(())
        })
        .await
    }

    async fn connect_veth(&self, link: &VethSpec) -> NodeResult<()> {
        self.op(Call::ConnectVeth(link.clone()), |s, _| {
            running(s, &link.a.container)?;
            // The listening end first (`VethSpec::b_listens`), as the agent makes them.
            running(s, &link.b.container)?.interfaces.push(link.b.ifname.clone());
            running(s, &link.a.container)?.interfaces.push(link.a.ifname.clone());
            Ok(())
        })
        .await
    }

    async fn connect_vxlan(&self, link: &VxlanSpec) -> NodeResult<()> {
        self.op(Call::ConnectVxlan(link.clone()), |s, _| {
            running(s, &link.container)?.interfaces.push(link.ifname.clone());
            Ok(())
        })
        .await
    }

    async fn own_interfaces(&self) -> NodeResult<Vec<String>> {
        self.op(Call::OwnInterfaces, |s, _| Ok(s.own_interfaces.clone().unwrap_or_else(|| OWN_INTERFACES.iter().map(|i| i.to_string()).collect()))).await
    }

    async fn connect_macvlan(&self, link: &MacvlanSpec) -> NodeResult<()> {
        self.op(Call::ConnectMacvlan(link.clone()), |s, _| {
            check_end(&link.container, Some(&link.ifname))?;
            let known = s.own_interfaces.clone().unwrap_or_else(|| OWN_INTERFACES.iter().map(|i| i.to_string()).collect());
            if !known.contains(&link.parent) {
                return Err(format!("{}: no such interface", link.parent));
            }
            let c = running(s, &link.container)?;
            c.interfaces.push(link.ifname.clone());
            c.macvlans.push((link.ifname.clone(), link.parent.clone()));
            Ok(())
        })
        .await
    }

    async fn remove_macvlans(&self, container: &str) -> NodeResult<()> {
        self.op(Call::RemoveMacvlans(container.into()), |s, _| {
            check_end(container, None)?;
            if let Some(c) = s.containers.get_mut(container).filter(|c| c.running) {
                let gone: Vec<String> = c.macvlans.drain(..).map(|(i, _)| i).collect();
                c.interfaces.retain(|i| !gone.contains(i));
            }
            Ok(())
        })
        .await
    }

    async fn wait_bgpd(&self, router: &str, _within_secs: u32) -> NodeResult<bool> {
        self.op(Call::WaitBgpd(router.into()), |s, _| running(s, router).map(|_| true)).await
    }

    async fn iperf_server(&self, host: &str) -> NodeResult<()> {
        self.op(Call::IperfServer { host: host.into() }, |s, _| running(s, host).map(|_| ())).await
    }

    async fn iperf_client(&self, host: &str, target: Ipv4Addr, _seconds: u32) -> NodeResult<Probe> {
        self.op(Call::IperfClient { host: host.into(), target }, |s, _| {
            running(s, host)?;
            Ok(Probe { success: false, output: "{}".into() })
        })
        .await
    }

    /// Answered for every hop loopback of the plan the node answers from.
    async fn ping_each(&self, host: &str, targets: &[Ipv4Addr], _wait_ms: u32) -> NodeResult<Probe> {
        self.op(Call::PingEach { host: host.into(), targets: targets.to_vec() }, |s, _| {
            running(s, host)?;
            let answers = |t: &Ipv4Addr| s.answers.as_deref().is_some_and(|p| p.hop_loopbacks().iter().any(|h| h.2 == *t));
            let output: String = targets.iter().map(|t| format!("{t} {}\n", if answers(t) { "ok" } else { "no-reply" })).collect();
            Ok(Probe { success: targets.iter().all(answers), output })
        })
        .await
    }

    async fn ping_burst(&self, host: &str, target: std::net::IpAddr, count: u32, _wait_ms: u32) -> NodeResult<Probe> {
        self.op(Call::PingBurst { host: host.into(), target, count }, |s, _| {
            running(s, host)?;
            // A planned host answers (a tunnelled path plans no trace to it).
            let answers = s.answers.as_deref().is_some_and(|p| match target {
                std::net::IpAddr::V4(t) => trace_for(p, host, t).is_some() || p.hosts.iter().any(|h| h.address == t),
                std::net::IpAddr::V6(t) => p.ipv6.as_ref().is_some_and(|six| six.hosts.iter().any(|h| h.address == t)),
            });
            let received = if answers { count } else { 0 };
            let output = format!("{count} packets transmitted, {received} received, 0% packet loss, time 1ms\n");
            Ok(Probe { success: received > 0, output })
        })
        .await
    }

    async fn ping_until(&self, host: &str, target: Ipv4Addr, _within_secs: u32) -> NodeResult<Probe> {
        self.op(Call::PingUntil { host: host.into(), target }, |s, _| {
            running(s, host)?;
            let success = s.answers.as_deref().is_some_and(|p| trace_for(p, host, target).is_some() || p.hop_loopbacks().iter().any(|h| h.2 == target));
            Ok(Probe { success, output: String::new() })
        })
        .await
    }

    async fn start_delay_line(&self, spec: &DelayLineSpec) -> NodeResult<()> {
        self.op(Call::StartDelayLine(spec.clone()), |s, _| {
            check_end(&spec.container, Some(&spec.ifname))?;
            let c = running(s, &spec.container)?;
            match c.delay_lines.get_mut(&spec.ifname) {
                // A second start sets the settings of the line already there.
                Some(line) if line.queue != spec.queue => Err(format!("its delay line runs on queue {}, not {}", line.queue, spec.queue)),
                Some(line) => {
                    (line.delay_us, line.jitter_us, line.loss_ppm) = (spec.delay_us, spec.jitter_us, spec.loss_ppm);
                    if spec.schedule.is_some() {
                        line.schedule = spec.schedule.clone();
                    }
                    Ok(())
                }
                None => {
                    c.delay_lines.insert(spec.ifname.clone(), spec.clone());
                    Ok(())
                }
            }
        })
        .await
    }

    async fn set_delay_line(&self, container: &str, ifname: &str, settings: DelaySettings) -> NodeResult<()> {
        let call = Call::SetDelayLine { container: container.into(), ifname: ifname.into(), settings };
        self.op(call, |s, _| {
            check_end(container, Some(ifname))?;
            let line =
                s.containers.get_mut(container).and_then(|c| c.delay_lines.get_mut(ifname)).ok_or_else(|| format!("no delay line on {container}:{ifname}"))?;
            line.delay_us = settings.delay_us.unwrap_or(line.delay_us);
            line.jitter_us = settings.jitter_us.unwrap_or(line.jitter_us);
            line.loss_ppm = settings.loss_ppm.unwrap_or(line.loss_ppm);
            Ok(())
        })
        .await
    }

    async fn delay_lines(&self, container: &str) -> NodeResult<Vec<DelayLineStatus>> {
        self.op(Call::DelayLines(container.into()), |s, _| {
            check_end(container, None)?;
            let lines = s.containers.get(container).map(|c| c.delay_lines.values().map(line_status).collect());
            Ok(lines.unwrap_or_default())
        })
        .await
    }

    async fn set_link_rate(&self, container: &str, ifname: &str, rate_bps: Option<u64>) -> NodeResult<()> {
        let call = Call::SetLinkRate { container: container.into(), ifname: ifname.into(), rate_bps };
        self.op(call, |s, _| {
            check_end(container, Some(ifname))?;
            let c = running(s, container)?;
            if !c.interfaces.iter().any(|i| i == ifname) {
                return Err(format!("Cannot find device \"{ifname}\""));
            }
            match rate_bps {
                Some(rate) => c.rates.insert(ifname.to_string(), rate),
                None => c.rates.remove(ifname),
            };
            Ok(())
        })
        .await
    }

    async fn underlay_rtts(&self, target: Ipv4Addr, count: u32) -> NodeResult<Vec<u64>> {
        self.op(Call::UnderlayRtts { target, count }, |s, _| {
            if !(1..=vnet_te_agent::node::MAX_UNDERLAY_PINGS).contains(&count) {
                return Err(format!("{count} echoes"));
            }
            let rtts = s.underlay.get(&target).cloned().unwrap_or_else(|| UNDERLAY_RTTS.to_vec());
            Ok(rtts.into_iter().take(count as usize).collect())
        })
        .await
    }

    /// No kernel ESP; an end lists one established tunnel; transit routers count 100
    /// NAT-T packets and no plaintext ICMP.
    async fn vpn(&self, container: &str, op: &VpnOp) -> NodeResult<Probe> {
        self.op(Call::Vpn { container: container.into(), op: op.clone() }, |s, _| {
            running(s, container)?;
            let (success, output) = match op {
                VpnOp::ProbeEsp {} => (false, "kernel ESP: no (Requested type not found)".to_string()),
                VpnOp::ListSas {} => (true, "vte: #1, ESTABLISHED, IKEv2, 1_i* 2_r\n  vte: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-128\n".into()),
                VpnOp::CountRead {} => (true, "  100 1 17 -- * * 0/0 0/0 /* nat-t */\n    0 0 1 -- * * 0/0 0/0 /* plain-ab */\n".into()),
                _ => (true, String::new()),
            };
            Ok(Probe { success, output })
        })
        .await
    }
}

/// Refuses what the agent refuses: containers that are not vnet-te's, interface names that
/// are not plain.
fn check_end(container: &str, ifname: Option<&str>) -> Result<(), Refusal> {
    check_container(container).map_err(|e| format!("refused: {e}"))?;
    ifname.map_or(Ok(()), |i| check_ifname(i).map_err(|e| format!("refused: {e}")))
}

/// A delay line's answer to `status`: its settings, nothing counted yet.
fn line_status(spec: &DelayLineSpec) -> DelayLineStatus {
    let status = Status {
        queue: spec.queue,
        settings: Settings {
            delay_ms: spec.delay_us as f64 / 1000.0,
            jitter_ms: spec.jitter_us as f64 / 1000.0,
            loss_percent: f64::from(spec.loss_ppm) / 10_000.0,
        },
        reorder: false,
        queue_max_len: spec.queue_max_len.unwrap_or(vnet_te_agent::delay::units::MIN_QUEUE_LEN),
        counters: Counters::default(),
        down: false,
        schedule: spec.schedule.as_ref().map(|s| vnet_te_agent::delay::schedule::Progress {
            start_unix_ms: s.start_unix_ms,
            steps: s.steps.len(),
            applied: 0,
            rate_errors: 0,
        }),
    };
    DelayLineStatus { ifname: spec.ifname.clone(), status: Some(status), error: None }
}

/// A router's `show bgp ipv4 unicast json` once the path works: on the path, the planned
/// best route for every expectation (planned next hop and AS path, the TE preference on
/// learned routes); off the path, each LAN learned plainly from its first neighbour.
pub fn table_for(plan: &Plan, r: &RouterPlan) -> BgpTable {
    let mut t = BgpTable { router_id: Some(r.router_id.to_string()), local_as: Some(r.asn), ..Default::default() };
    let path = |asns: &[u32]| asns.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
    let via = |ip: String| vec![NextHop { ip: Some(ip), hostname: None, used: true }];
    if r.hop.is_some() {
        for e in plan.routes_of(&r.name) {
            let best = BgpPath {
                valid: true,
                bestpath: true,
                path: path(&e.as_path(plan)),
                local_pref: e.next_hop.map(|_| TE_LOCAL_PREF),
                peer_id: Some(e.next_hop.map_or_else(|| "(unspec)".into(), |a| a.to_string())),
                nexthops: via(e.next_hop.map_or_else(|| "0.0.0.0".into(), |a| a.to_string())),
            };
            t.routes.insert(e.prefix.to_string(), vec![best]);
        }
    } else if let Some(nb) = r.neighbors.first() {
        for n in plan.networks.iter().filter(|n| n.role == NetworkRole::Lan) {
            let best = BgpPath {
                valid: true,
                bestpath: true,
                path: path(&[nb.remote_as]),
                local_pref: None,
                peer_id: Some(nb.address.to_string()),
                nexthops: via(nb.address.to_string()),
            };
            t.routes.insert(n.subnet.to_string(), vec![best]);
        }
    }
    t
}

/// `show bgp summary json` with every planned session established.
pub fn summary_for(r: &RouterPlan) -> BgpSummary {
    let peers = r
        .neighbors
        .iter()
        .map(|n| {
            let p = PeerSummary { hostname: Some(n.peer.clone()), remote_as: Some(n.remote_as), state: "Established".into(), prefixes_received: Some(1) };
            (n.address.to_string(), p)
        })
        .collect();
    BgpSummary { ipv4_unicast: Some(AfSummary { peers }) }
}

/// The planned reply addresses of a traceroute from host container `host` to `target`.
pub fn trace_for(plan: &Plan, host: &str, target: Ipv4Addr) -> Option<Vec<Ipv4Addr>> {
    let h = plan.hosts.iter().find(|h| h.container == host)?;
    plan.expectations.traceroutes.iter().find(|t| t.from == h.name && t.target == target).map(|t| t.hops.clone())
}

/// What Debian's `traceroute -n -q 1 -w 1` prints (no reply: `*` up to `max_hops`).
pub fn traceroute_output(target: Ipv4Addr, max_hops: u32, hops: &[Ipv4Addr]) -> String {
    let mut out = format!("traceroute to {target} ({target}), {max_hops} hops max, 60 byte packets\n");
    if hops.is_empty() {
        for ttl in 1..=max_hops {
            out.push_str(&format!("{ttl:2}  *\n"));
        }
    }
    for (i, h) in hops.iter().enumerate() {
        out.push_str(&format!("{:2}  {h}  0.{:03} ms\n", i + 1, 50 + i));
    }
    out
}

/// Fake nodes sharing one journal: the first is the manager; node `i` has underlay
/// address 10.0.0.(i+1).
pub struct Fakes {
    pub journal: Journal,
    pub nodes: Vec<Arc<FakeNode>>,
    /// The controller's state directory for these nodes (removed with them).
    pub state_dir: std::path::PathBuf,
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

impl Fakes {
    pub fn new(names: &[&str]) -> Self {
        let journal = Journal::default();
        let swarm = Arc::new(Swarm::default());
        let nodes = names.iter().enumerate().map(|(i, n)| FakeNode::joined(n, Ipv4Addr::new(10, 0, 0, i as u8 + 1), journal.clone(), swarm.clone())).collect();
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let state_dir = std::env::temp_dir().join(format!("vnet-te-fakes-{}-{seq}", std::process::id()));
        Fakes { journal, nodes, state_dir }
    }

    /// The deployment the executor takes: these nodes, the first the manager.
    pub fn nodes(&self) -> Nodes {
        let as_dyn = |n: &Arc<FakeNode>| -> Arc<dyn Node> { n.clone() };
        Nodes {
            manager: as_dyn(&self.nodes[0]),
            by_name: self.nodes.iter().map(|n| (n.name.clone(), as_dyn(n))).collect(),
            order: self.nodes.iter().map(|n| n.name.clone()).collect(),
            underlay: self.nodes.iter().map(|n| (n.name.clone(), n.addr)).collect(),
            state_dir: self.state_dir.clone(),
        }
    }

    pub fn node(&self, name: &str) -> &Arc<FakeNode> {
        self.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no fake node {name}"))
    }

    /// Fails every call on any node for which `f` holds.
    pub fn fail_on(&self, f: impl Fn(&Call) -> bool + Send + Sync + 'static) {
        let f: Predicate = Arc::new(f);
        for n in &self.nodes {
            let f = f.clone();
            n.fail_on(move |c| f(c));
        }
    }

    /// Fails the `k`-th (from 0) mutating call made on any node from now on.
    pub fn fail_nth_mutating(&self, k: usize) {
        let seen = Arc::new(AtomicUsize::new(0));
        self.fail_on(move |c| c.is_mutating() && seen.fetch_add(1, Ordering::SeqCst) == k);
    }

    pub fn answer_from(&self, plan: &Plan) {
        for n in &self.nodes {
            n.answer_from(plan);
        }
    }

    /// Every container on every node: (node, name).
    pub fn containers(&self) -> BTreeSet<(String, String)> {
        self.nodes.iter().flat_map(|n| n.containers().into_keys().map(|c| (n.name.clone(), c))).collect()
    }

    /// Every network on every node: (node, name).
    pub fn networks(&self) -> BTreeSet<(String, String)> {
        self.nodes.iter().flat_map(|n| n.networks().into_keys().map(|c| (n.name.clone(), c))).collect()
    }
}

#[path = "tests/mod.rs"]
mod tests;
