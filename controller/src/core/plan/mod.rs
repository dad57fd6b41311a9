//! The planner: a valid `PathSpec` plus an `Inventory` → a complete, resolved `Plan`.
//!
//! Pure and deterministic: the same inputs give a byte-identical plan (no clock, no
//! randomness, ordered collections only). The plan is the single desired state that the
//! renderer, the executor and the verifier all read; nothing downstream re-derives an
//! address, an ASN or a placement.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::spec::distance::Impair;
use crate::core::spec::{Announce, Converge, L2vpnMode, Limits, Problem, RouterKind, VerifyMode, Wiring};

mod build;
pub mod cidr;
mod display;
pub mod distance;
pub mod ipv6;
pub mod neighbours;
pub mod schedule;
pub mod sessions;
pub mod timeouts;
pub mod vpn;

pub use build::build;
pub use schedule::SchedulePlan;
pub use display::ms;
pub use sessions::{start_rank, LISTEN_LAG};

/// Format version of the serialised plan (bump on incompatible changes).
pub const PLAN_VERSION: u32 = 1;
/// Local preference given to routes toward the path's end learned from the planned next
/// hop. Anything above the default 100 wins the first step of BGP best-path selection.
pub const TE_LOCAL_PREF: u32 = 200;
/// VXLAN adds 50 bytes; overlay segments are already VXLAN (1450), so an inner VXLAN over
/// them leaves at most 1400 for the experiment LAN.
pub const UNDERLAY_MTU: u32 = 1450;
pub const EVPN_LAN_MTU: u32 = 1400;

/// What the planner needs to know about the world: the nodes to place on and the subnets
/// already taken on them (by other paths or anything else), which the allocator skips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub nodes: Vec<String>,
    #[serde(default)]
    pub taken: Vec<Ipv4Net>,
    /// The interfaces of each node's own network namespace, where known (a create of a path
    /// whose hosts attach to a LAN asks the nodes): an attachment's parent must be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<BTreeMap<String, BTreeSet<String>>>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory { nodes: vec![LOCAL_NODE.to_string()], taken: Vec::new(), interfaces: None }
    }
}

/// The node name used for the embedded single-host default.
pub const LOCAL_NODE: &str = "local";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub name: String,
    /// Short hash of everything below; labels every Docker object (`vnet-te.plan-hash`).
    pub hash: String,
    pub l2vpn: L2vpnMode,
    /// How links are made. A stored plan without this field describes a path wired with
    /// Docker networks, so that is what it reads as.
    #[serde(default = "docker_wiring")]
    pub wiring: Wiring,
    pub nodes: Vec<String>,
    /// Router names in path order (first to last hop).
    pub path: Vec<String>,
    /// Their ASNs, in the same order.
    pub path_asns: Vec<u32>,
    pub routers: Vec<RouterPlan>,
    pub hosts: Vec<HostPlan>,
    pub networks: Vec<NetworkPlan>,
    pub bgp: BgpTimersPlan,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub evpn: Option<EvpnPlan>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub distance: Option<DistancePlan>,
    /// Timelines of the links the spec schedules.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub schedule: Option<SchedulePlan>,
    #[serde(skip_serializing_if = "VerifyMode::is_full", default)]
    pub verify: VerifyMode,
    #[serde(skip_serializing_if = "Announce::is_ends", default)]
    pub announce: Announce,
    /// The IPsec tunnel between the path's ends, if the spec asks for one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vpn: Option<vpn::VpnPlan>,
    pub expectations: Expectations,
    /// The IPv6 twin of the addressing, sessions and policy (`family` with ipv6).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ipv6: Option<ipv6::Ipv6Plan>,
}

fn docker_wiring() -> Wiring {
    Wiring::Docker
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterPlan {
    pub name: String,
    pub container: String,
    pub kind: RouterKind,
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub loopback: Ipv4Net,
    pub node: String,
    /// Position on the forced path (0 = first hop), or none for routers off the path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hop: Option<usize>,
    /// In attach order: the first is given at container create, the rest connected after.
    pub interfaces: Vec<InterfacePlan>,
    pub neighbors: Vec<NeighborPlan>,
    /// Prefixes this router originates into BGP.
    pub originate: Vec<Ipv4Net>,
    /// Edge-router role in the EVPN L2VPN, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vtep: Option<VtepPlan>,
    /// TCP settings for sessions across long delays.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tcp: Option<TcpPlan>,
    /// Static routes (an edge router's way to the LAN its host is attached to).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub statics: Vec<StaticRoutePlan>,
    /// Memory and process limits of its container.
    #[serde(skip_serializing_if = "Limits::is_default", default)]
    pub limits: Limits,
}

/// The name of an attached host's macvlan inside it (its LAN toward the path is `eth0`).
pub const ATTACH_IFNAME: &str = "eth1";

/// A static route: `prefix` via the neighbour at `via`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoutePlan {
    pub prefix: Ipv4Net,
    pub via: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfacePlan {
    pub network: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The router or host at the other end.
    pub peer: String,
    /// Interface name inside the container, for direct links (vnet-te names them); Docker
    /// names the interfaces of its networks itself.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ifname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborPlan {
    pub peer: String,
    pub address: Ipv4Addr,
    pub remote_as: u32,
    pub network: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub password: Option<String>,
    /// Prefixes whose routes from this neighbour get `TE_LOCAL_PREF` (traffic engineering).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub prefer: Vec<Ipv4Net>,
    /// With `announce: all`: blocks of loopbacks whose /32 routes from this neighbour get
    /// `TE_LOCAL_PREF` too — the loopbacks of the hops between the ends that lie beyond it,
    /// as the fewest CIDR blocks that hold exactly them (a chain's are one range), so the
    /// plan and the prefix-lists stay near-linear in the path length.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub prefer_loopbacks: Vec<Ipv4Net>,
    /// Carry EVPN routes over this session (routers on the path, with `l2vpn: evpn`).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub evpn: bool,
    /// Wait for the peer to connect. Set on one end of each FRR–FRR session (the end that
    /// boots later, `start_rank`): two ends that open at the same instant can collide again
    /// and again.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub passive: bool,
    /// Timers for a session across a long delay (see `distance`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timers: Option<SessionTimers>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VtepPlan {
    pub vni: u32,
    /// The router's address on the LAN it bridges into the VXLAN.
    pub lan_address: Ipv4Net,
    pub remote_vtep: Ipv4Addr,
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    pub name: String,
    pub container: String,
    pub node: String,
    /// The edge router this host sits behind.
    pub router: String,
    pub network: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// Interface name for a direct (veth) LAN.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ifname: Option<String>,
    /// Extra address in the shared EVPN subnet.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub l2_address: Option<Ipv4Net>,
    /// The host's place on a LAN of its node, if it is attached to one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attach: Option<AttachPlan>,
    /// Memory and process limits of its container.
    #[serde(skip_serializing_if = "Limits::is_default", default)]
    pub limits: Limits,
}

/// An experiment host on a LAN of its node: a macvlan (bridge mode) on the node's interface
/// `parent`, named `ifname` in the host, holding `address` in `subnet`. Machines on that LAN
/// take other addresses of `subnet` and reach the path through `address`; the host forwards
/// between the LAN and its edge router, which routes `subnet` to the host and announces it,
/// forced along the path like the host's own LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachPlan {
    pub parent: String,
    pub ifname: String,
    pub subnet: Ipv4Net,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkRole {
    Link,
    Lan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// An internal Docker bridge network (single node, `wiring: docker`).
    Bridge,
    /// A swarm overlay network (the two ends on different nodes).
    Overlay,
    /// A veth pair made by vnet-te (one node, `wiring: direct`): no Docker object.
    Veth,
    /// A point-to-point VXLAN pair made by vnet-te (two nodes, `wiring: direct`): each end a
    /// VXLAN device whose underlay is its node's own network. No Docker object.
    Vxlan,
}

impl Driver {
    /// What carries a link (or LAN) whose ends sit on different nodes (`cross`) or not.
    pub fn of_link(cross: bool, wiring: Wiring) -> Driver {
        match (cross, wiring) {
            (true, Wiring::Direct) => Driver::Vxlan,
            (true, Wiring::Docker) => Driver::Overlay,
            (false, Wiring::Direct) => Driver::Veth,
            (false, Wiring::Docker) => Driver::Bridge,
        }
    }

    /// A Docker network (bridge or overlay), as opposed to a link vnet-te makes itself.
    pub fn is_docker(self) -> bool {
        matches!(self, Driver::Bridge | Driver::Overlay)
    }
}

/// UDP port of `Driver::Vxlan` links between nodes (swarm's overlays use 4789).
pub const LINK_VXLAN_PORT: u16 = 4790;

/// The VXLAN network identifier of a `Driver::Vxlan` link: from its /29, which is unique in
/// the cluster, so two links never share one on a node.
pub fn link_vni(subnet: Ipv4Net) -> u32 {
    ((u32::from(subnet.network()) >> 3) & 0x00FF_FFFF).max(1)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// Docker network name.
    pub name: String,
    pub role: NetworkRole,
    /// 1-based link number, or 0 for LANs.
    pub index: usize,
    pub driver: Driver,
    /// Linux bridge name for bridge networks: short (≤ 15) and with the `vte` prefix that
    /// the forwarding rule in DOCKER-USER matches (Docker's internal bridges drop routed
    /// transit traffic without it; see docs/links.md).
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// Docker's own address (.1).
    pub gateway: Ipv4Addr,
    /// Fenced dynamic range: swarm puts its per-node "lb-" endpoints here, away from the
    /// static router addresses.
    pub ip_range: Ipv4Net,
    pub mtu: Option<u32>,
    /// Nodes with a container on this network.
    pub nodes: Vec<String>,
    pub cross_host: bool,
    pub ends: Vec<Endpoint>,
    /// Delay, jitter, loss and rate per direction (router links with distance only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub impair: Option<LinkImpair>,
    /// The network between the link's two nodes, measured at create (links between nodes on
    /// a path with distance): the link's delay lines hold each packet for its delay minus
    /// this (`distance::line_delay_us`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub underlay: Option<Underlay>,
}

/// The delay of the network under a link between two nodes: the fastest of a burst of echoes
/// between the nodes' underlay addresses (queueing only ever adds to it), and half of it as
/// each direction's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Underlay {
    pub rtt_us: u64,
    pub one_way_us: u64,
}

impl NetworkPlan {
    /// A link between routers (or a router and a host) `a` and `b`, either way round.
    pub fn joins(&self, a: &str, b: &str) -> bool {
        matches!(&self.ends[..], [x, y] if (x.name == a && y.name == b) || (x.name == b && y.name == a))
    }
}

/// A link's impairments per direction: `from_a` holds packets sent by `ends[0]` (delayed
/// where they arrive, at `ends[1]`), `from_b` the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkImpair {
    pub from_a: Impair,
    pub from_b: Impair,
}

/// The distance of a path: how it converges, its planned one-way delays end to end, and
/// the tolerance verify judges measured delays with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistancePlan {
    pub converge: Converge,
    /// Sum of the path's link delays from the first hop to the last, and back.
    pub one_way_us: u64,
    pub back_us: u64,
    pub tolerance_us: u64,
    /// Relative tolerance in parts per million (2 % = 20000).
    pub tolerance_ppm: u32,
}

impl DistancePlan {
    /// How far a measured value may be from `planned_us`: the larger of the two tolerances.
    pub fn allowance_us(&self, planned_us: u64) -> u64 {
        self.tolerance_us.max(planned_us * u64::from(self.tolerance_ppm) / 1_000_000)
    }
}

/// TCP settings of a router's network namespace for sessions across long delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpPlan {
    pub syn_retries: u8,
    pub synack_retries: u8,
    pub retries2: u8,
}

/// BGP timers of one session, when its link's delay needs other than the path's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTimers {
    pub keepalive: u16,
    pub hold: u16,
    pub connect_retry: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpTimersPlan {
    pub keepalive: u16,
    pub hold: u16,
    pub connect_retry: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvpnPlan {
    pub vni: u32,
    pub subnet: Ipv4Net,
    pub route_target: String,
    pub mtu: u32,
}

/// What verification will check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectations {
    pub routes: Vec<RouteExpectation>,
    pub traceroutes: Vec<TracerouteExpectation>,
    /// With `announce: all`: the prefix each hop between the ends originates (its loopback).
    /// Every router of the path expects each of them along the path, like the ends' prefixes
    /// (`Plan::routes_of` derives those expectations; storing them per router would make the
    /// plan quadratic).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub hop_prefixes: Vec<HopPrefix>,
}

/// A prefix originated by the router at `hop` (0-based position on the path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopPrefix {
    pub hop: usize,
    pub router: String,
    pub prefix: Ipv4Net,
}

/// On `router`, the best route to `prefix` is via `next_hop` with exactly the AS path of the
/// hops between this router and the end of the path it leads `toward` (empty and no next
/// hop: originated by this router). The AS path itself is `as_path(plan)`: storing it would
/// make the plan quadratic in the path length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteExpectation {
    pub router: String,
    pub hop: usize,
    pub prefix: Ipv4Net,
    pub toward: Toward,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_hop: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub via: Option<String>,
    /// The hop that originates the prefix, when it is not the end of the path it leads
    /// `toward` (`announce: all`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub origin: Option<usize>,
}

/// Which end of the path a route leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toward {
    /// The first hop (the LAN of host a).
    First,
    /// The last hop (the LAN of host b).
    Last,
}

impl RouteExpectation {
    /// The exact AS path expected: ASNs of the hops up to the origin (the end of the path by
    /// default), nearest first; empty where this router originates the prefix.
    pub fn as_path(&self, plan: &Plan) -> Vec<u32> {
        match self.toward {
            Toward::Last => {
                let origin = self.origin.unwrap_or(plan.path_asns.len() - 1);
                plan.path_asns[self.hop + 1..=origin.max(self.hop)].to_vec()
            }
            Toward::First => {
                let origin = self.origin.unwrap_or(0).min(self.hop);
                plan.path_asns[origin..self.hop].iter().rev().copied().collect()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracerouteExpectation {
    pub from: String,
    pub to: String,
    pub target: Ipv4Addr,
    /// Reply addresses in order, the target last.
    pub hops: Vec<Ipv4Addr>,
    /// Planned round-trip time to each of `hops`, microseconds (paths with distance).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub rtt_us: Vec<u64>,
}

/// Problems that depend on the inventory (unknown node, pool exhausted by taken subnets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot plan path '{path}': {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
pub struct PlanError {
    pub path: String,
    pub problems: Vec<Problem>,
}

/// Name prefix of everything a path owns: `vte-<path>-`.
pub fn object_prefix(path: &str) -> String {
    format!("vte-{path}-")
}

/// Short stable tag of a path name, for names that must fit in 15 bytes (Linux interfaces).
pub fn short_tag(path: &str) -> String {
    let d = Sha256::digest(path.as_bytes());
    format!("{:02x}{:02x}{:02x}", d[0], d[1], d[2])
}

/// First 12 hex digits of SHA-256 over the plan's JSON with an empty hash field.
pub fn plan_hash(plan: &Plan) -> String {
    let mut p = plan.clone();
    p.hash.clear();
    let json = serde_json::to_vec(&p).expect("plan serialises");
    let d = Sha256::digest(&json);
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

impl Plan {
    /// Whether IPv4 is carried (sessions, policy, verification): all but IPv6-only paths.
    pub fn carries_ipv4(&self) -> bool {
        self.ipv6.as_ref().is_none_or(|s| s.ipv4)
    }

    pub fn router(&self, name: &str) -> Option<&RouterPlan> {
        self.routers.iter().find(|r| r.name == name)
    }

    pub fn host(&self, name: &str) -> Option<&HostPlan> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Routers in path order.
    pub fn path_routers(&self) -> impl Iterator<Item = &RouterPlan> {
        self.path.iter().filter_map(|n| self.router(n))
    }

    /// With `announce: all`, what the first host pings: every hop's loopback, in path order
    /// (hop, router, address). Empty otherwise.
    pub fn hop_loopbacks(&self) -> Vec<(usize, &str, Ipv4Addr)> {
        if self.announce != Announce::All {
            return Vec::new();
        }
        self.path_routers().enumerate().map(|(h, r)| (h, r.name.as_str(), r.loopback.addr())).collect()
    }

    /// Every route `router` (on the path) must have: the stored expectations (LANs and edge
    /// loopbacks) and, with `announce: all`, one per hop prefix, taken the way the ends'
    /// prefixes in that direction are (same next hop), with the AS path up to its origin.
    pub fn routes_of(&self, router: &str) -> Vec<RouteExpectation> {
        let own: Vec<&RouteExpectation> = self.expectations.routes.iter().filter(|e| e.router == router).collect();
        let mut out: Vec<RouteExpectation> = own.iter().map(|e| (*e).clone()).collect();
        let Some(h) = own.first().map(|e| e.hop) else { return out };
        for p in &self.expectations.hop_prefixes {
            let toward = if p.hop < h { Toward::First } else { Toward::Last };
            let (next_hop, via) = if p.hop == h {
                (None, None)
            } else {
                own.iter().find(|e| e.toward == toward).map_or((None, None), |e| (e.next_hop, e.via.clone()))
            };
            out.push(RouteExpectation { router: router.to_string(), hop: h, prefix: p.prefix, toward, next_hop, via, origin: Some(p.hop) });
        }
        out
    }
}

#[cfg(test)]
mod tests;
