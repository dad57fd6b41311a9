//! The planner: a valid `PathSpec` plus an `Inventory` → a complete, resolved `Plan`.
//!
//! Pure and deterministic: the same inputs give a byte-identical plan (no clock, no
//! randomness, ordered collections only). The plan is the single desired state that the
//! renderer, the executor and the verifier all read; nothing downstream re-derives an
//! address, an ASN or a placement.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::{self, L2vpnMode, PathSpec, Placement, Problem, RouterKind, Wiring};

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
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory { nodes: vec![LOCAL_NODE.to_string()], taken: Vec::new() }
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
    /// How links are made (plans stored before this field existed used Docker networks).
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
    pub expectations: Expectations,
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
    /// Carry EVPN routes over this session (routers on the path, with `l2vpn: evpn`).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub evpn: bool,
    /// Wait for the peer to connect. Set on one end of each FRR–FRR session (the end that
    /// boots later, `start_rank`): two ends that open at the same instant can collide again
    /// and again.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub passive: bool,
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
    /// the forwarding rule in DOCKER-USER matches (see PLATFORM notes on internal bridges).
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
    /// The exact AS path expected: ASNs of the remaining hops, nearest first.
    pub fn as_path(&self, plan: &Plan) -> Vec<u32> {
        match self.toward {
            Toward::Last => plan.path_asns[self.hop + 1..].to_vec(),
            Toward::First => plan.path_asns[..self.hop].iter().rev().copied().collect(),
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

struct Allocator {
    pool: Ipv4Net,
    each: u8,
    next: u64,
    taken: Vec<Ipv4Net>,
}

impl Allocator {
    fn new(pool: Ipv4Net, each: u8, taken: &[Ipv4Net]) -> Self {
        Allocator { pool, each, next: 0, taken: taken.to_vec() }
    }

    fn take(&mut self) -> Option<Ipv4Net> {
        let count = 1u64 << (self.each - self.pool.prefix_len().min(self.each));
        let base = u32::from(self.pool.network()) as u64;
        let step = 1u64 << (32 - self.each);
        while self.next < count {
            let addr = Ipv4Addr::from((base + self.next * step) as u32);
            self.next += 1;
            let net = Ipv4Net::new(addr, self.each).expect("prefix length checked");
            if !self.taken.iter().any(|t| t.contains(&net) || net.contains(t)) {
                return Some(net);
            }
        }
        None
    }
}

fn host(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + n)
}

/// Builds the plan. `spec` must be valid (`spec::validate` returned no problem).
pub fn build(spec: &PathSpec, inv: &Inventory) -> Result<Plan, PlanError> {
    let mut problems = Vec::new();
    let err = |problems: Vec<Problem>| PlanError { path: spec.name.clone(), problems };
    debug_assert!(spec::validate(spec).is_empty(), "plan::build needs a valid spec");
    if inv.nodes.is_empty() {
        return Err(err(vec![Problem::new("inventory", "no nodes to place routers on")]));
    }
    let node_set: BTreeSet<&str> = inv.nodes.iter().map(String::as_str).collect();
    let prefix = object_prefix(&spec.name);
    let tag = short_tag(&spec.name);
    let wiring = spec.wiring();
    // Direct links get names vnet-te chooses; Docker names its networks' interfaces.
    let direct = wiring == Wiring::Direct;
    let path = spec::effective_path(spec);
    let links = spec::effective_links(spec);
    let index_of: BTreeMap<&str, usize> =
        spec.routers.iter().enumerate().map(|(i, r)| (r.name.as_str(), i)).collect();
    let hop_of: BTreeMap<&str, usize> =
        path.iter().enumerate().map(|(i, r)| (r.as_str(), i)).collect();

    // ASNs: explicit ones stay, the rest count up from the base skipping used/reserved ones.
    let explicit: BTreeSet<u32> = spec.routers.iter().filter_map(|r| r.asn).collect();
    let mut next_asn = spec.asn_base;
    let asns: Vec<u32> = spec
        .routers
        .iter()
        .map(|r| {
            r.asn.unwrap_or_else(|| {
                while explicit.contains(&next_asn) || spec::asn_reserved(next_asn) {
                    next_asn += 1;
                }
                next_asn += 1;
                next_asn - 1
            })
        })
        .collect();

    // Placement. Order: path routers in path order, then off-path routers in spec order.
    let mut order: Vec<usize> = path.iter().map(|r| index_of[r.as_str()]).collect();
    order.extend((0..spec.routers.len()).filter(|i| !hop_of.contains_key(spec.routers[*i].name.as_str())));
    let mut nodes = vec![String::new(); spec.routers.len()];
    let free: Vec<usize> = order.iter().copied().filter(|i| spec.routers[*i].node.is_none()).collect();
    let share = free.len().div_ceil(inv.nodes.len()).max(1);
    for (k, i) in free.iter().enumerate() {
        let n = match spec.placement {
            Placement::Pack => k / share,
            Placement::Spread | Placement::Explicit => k % inv.nodes.len(),
        };
        nodes[*i] = inv.nodes[n].clone();
    }
    for (i, r) in spec.routers.iter().enumerate() {
        if let Some(n) = &r.node {
            if !node_set.contains(n.as_str()) {
                problems.push(Problem::new(
                    format!("routers[{i}].node"),
                    format!("unknown node '{n}' (known: {})", inv.nodes.join(", ")),
                ));
            }
            nodes[i] = n.clone();
        }
    }

    // Loopbacks: .1, .2, ... of the pool in router order.
    let loopbacks: Vec<Ipv4Net> = (0..spec.routers.len())
        .map(|i| Ipv4Net::new(host(spec.pools.loopbacks, i as u32 + 1), 32).expect("/32"))
        .collect();

    // Subnets.
    let mut link_alloc = Allocator::new(spec.pools.links, 29, &inv.taken);
    let mut lan_alloc = Allocator::new(spec.pools.lans, 24, &inv.taken);
    let mut link_subnets = Vec::new();
    for _ in &links {
        match link_alloc.take() {
            Some(n) => link_subnets.push(n),
            None => {
                problems.push(Problem::new(
                    "pools.links",
                    format!("{} has no free /29 left for {} links", spec.pools.links, links.len()),
                ));
                break;
            }
        }
    }
    let n_lans = if spec.l2vpn == L2vpnMode::Evpn { 3 } else { 2 };
    let lan_subnets: Vec<Ipv4Net> = (0..n_lans).filter_map(|_| lan_alloc.take()).collect();
    if lan_subnets.len() < n_lans {
        problems.push(Problem::new(
            "pools.lans",
            format!("{} has no free /24 left for {n_lans} LANs", spec.pools.lans),
        ));
    }
    if !problems.is_empty() {
        return Err(err(problems));
    }

    let first = index_of[path[0].as_str()];
    let last = index_of[path[path.len() - 1].as_str()];
    let lan_a = lan_subnets[0];
    let lan_b = lan_subnets[1];
    let evpn = (spec.l2vpn == L2vpnMode::Evpn).then(|| EvpnPlan {
        vni: spec.vni.unwrap_or(spec::DEFAULT_VNI),
        subnet: lan_subnets[2],
        route_target: format!("{}:{}", asns[first], spec.vni.unwrap_or(spec::DEFAULT_VNI)),
        mtu: EVPN_LAN_MTU,
    });
    // Prefixes forced along the path, per direction: the far LAN and the far edge loopback
    // (the VTEP address EVPN's VXLAN rides on).
    let toward_b = dedup(vec![lan_b, loopbacks[last]]);
    let toward_a = dedup(vec![lan_a, loopbacks[first]]);

    let mut routers: Vec<RouterPlan> = spec
        .routers
        .iter()
        .enumerate()
        .map(|(i, r)| RouterPlan {
            name: r.name.clone(),
            container: format!("{prefix}{}", r.name),
            kind: r.kind,
            asn: asns[i],
            router_id: loopbacks[i].addr(),
            loopback: loopbacks[i],
            node: nodes[i].clone(),
            hop: hop_of.get(r.name.as_str()).copied(),
            interfaces: Vec::new(),
            neighbors: Vec::new(),
            originate: Vec::new(),
            vtep: None,
        })
        .collect();

    let mut networks = Vec::new();
    let lan_mtu = evpn.as_ref().map(|e| e.mtu);
    let (host_a, host_b) = (&spec.hosts.a, &spec.hosts.b);
    let mut hosts = Vec::new();
    // LANs first: the LAN is each edge router's first interface.
    for (side, (hname, ri, subnet)) in
        [(host_a, first, lan_a), (host_b, last, lan_b)].into_iter().enumerate()
    {
        let letter = if side == 0 { 'a' } else { 'b' };
        let net_name = format!("{prefix}lan-{letter}");
        let (raddr, haddr) = (host(subnet, 2), host(subnet, 10));
        let r = &mut routers[ri];
        r.interfaces.push(InterfacePlan {
            network: net_name.clone(),
            address: raddr,
            prefix_len: 24,
            peer: hname.clone(),
            ifname: direct.then(|| format!("eth{}", r.interfaces.len())),
        });
        r.originate.push(subnet);
        networks.push(NetworkPlan {
            name: net_name.clone(),
            role: NetworkRole::Lan,
            index: 0,
            driver: Driver::of_link(false, wiring),
            bridge: format!("vte{tag}{letter}"),
            subnet,
            gateway: host(subnet, 1),
            ip_range: Ipv4Net::new(host(subnet, 128), 25).expect("/25"),
            mtu: lan_mtu,
            nodes: vec![r.node.clone()],
            cross_host: false,
            ends: vec![
                Endpoint { name: r.name.clone(), address: raddr },
                Endpoint { name: hname.clone(), address: haddr },
            ],
        });
        hosts.push(HostPlan {
            name: hname.clone(),
            container: format!("{prefix}{hname}"),
            node: r.node.clone(),
            router: r.name.clone(),
            network: net_name,
            address: haddr,
            prefix_len: 24,
            gateway: raddr,
            ifname: direct.then(|| "eth0".to_string()),
            l2_address: evpn
                .as_ref()
                .map(|e| Ipv4Net::new(host(e.subnet, side as u32 + 1), 24).expect("/24")),
        });
    }
    for r in [first, last] {
        let lo = routers[r].loopback;
        if !routers[r].originate.contains(&lo) {
            routers[r].originate.push(lo);
        }
    }

    for (li, (l, subnet)) in links.iter().zip(&link_subnets).enumerate() {
        let (ia, ib) = (index_of[l.a.as_str()], index_of[l.b.as_str()]);
        let (aa, ab) = (host(*subnet, 2), host(*subnet, 3));
        let name = format!("{prefix}l{}", li + 1);
        let cross = routers[ia].node != routers[ib].node;
        let password = l.password.clone().or_else(|| spec.bgp.password.clone());
        let mut nodes = vec![routers[ia].node.clone(), routers[ib].node.clone()];
        nodes.sort();
        nodes.dedup();
        networks.push(NetworkPlan {
            name: name.clone(),
            role: NetworkRole::Link,
            index: li + 1,
            driver: Driver::of_link(cross, wiring),
            bridge: format!("vte{tag}l{}", li + 1),
            subnet: *subnet,
            gateway: host(*subnet, 1),
            ip_range: Ipv4Net::new(host(*subnet, 4), 30).expect("/30"),
            // VXLAN takes 50 bytes of the nodes' 1500 (as swarm's overlays do).
            mtu: (Driver::of_link(cross, wiring) == Driver::Vxlan).then_some(UNDERLAY_MTU),
            nodes,
            cross_host: cross,
            ends: vec![
                Endpoint { name: l.a.clone(), address: aa },
                Endpoint { name: l.b.clone(), address: ab },
            ],
        });
        let both_frr = routers[ia].kind == RouterKind::Frr && routers[ib].kind == RouterKind::Frr;
        let starts = |i: usize| (start_rank(path.len(), routers[i].hop), i);
        let later = [starts(ia) > starts(ib), starts(ib) > starts(ia)];
        for (k, (me, other, my_addr, other_addr)) in [(ia, ib, aa, ab), (ib, ia, ab, aa)].into_iter().enumerate() {
            let (other_name, other_as) = (routers[other].name.clone(), routers[other].asn);
            let r = &mut routers[me];
            r.interfaces.push(InterfacePlan {
                network: name.clone(),
                address: my_addr,
                prefix_len: 29,
                peer: other_name.clone(),
                ifname: direct.then(|| format!("eth{}", r.interfaces.len())),
            });
            r.neighbors.push(NeighborPlan {
                peer: other_name,
                address: other_addr,
                remote_as: other_as,
                network: name.clone(),
                password: password.clone(),
                prefer: Vec::new(),
                evpn: false,
                // The end that boots later listens; the one up first (its 1 s start timer
                // run out) connects the moment the link appears, which is once the
                // listener's bgpd listens (see `deploy::DirectLink`).
                passive: both_frr && later[k],
            });
        }
    }

    // Traffic engineering: on every router of the path, routes toward the far end are
    // preferred from the next planned hop, routes toward the near end from the previous one.
    for (h, rname) in path.iter().enumerate() {
        let ri = index_of[rname.as_str()];
        let next = path.get(h + 1).cloned();
        let prev = if h > 0 { Some(path[h - 1].clone()) } else { None };
        for n in &mut routers[ri].neighbors {
            if Some(&n.peer) == next.as_ref() {
                n.prefer.extend(toward_b.iter().copied());
            }
            if Some(&n.peer) == prev.as_ref() {
                n.prefer.extend(toward_a.iter().copied());
            }
            n.prefer.sort();
            n.prefer.dedup();
            n.evpn = evpn.is_some() && (Some(&n.peer) == next.as_ref() || Some(&n.peer) == prev.as_ref());
        }
    }
    if let Some(e) = &evpn {
        for (me, far, side) in [(first, last, 0u32), (last, first, 1)] {
            let remote = routers[far].loopback.addr();
            let lan = if side == 0 { lan_a } else { lan_b };
            routers[me].vtep = Some(VtepPlan {
                vni: e.vni,
                lan_address: Ipv4Net::new(host(lan, 2), 24).expect("/24"),
                remote_vtep: remote,
                mtu: e.mtu,
            });
        }
    }

    // Expectations.
    let addr_on = |me: usize, peer: &str| -> Ipv4Addr {
        let net = &routers[me].neighbors.iter().find(|n| n.peer == peer).expect("link on path").network;
        routers[me].interfaces.iter().find(|i| &i.network == net).expect("interface").address
    };
    let mut routes = Vec::new();
    for (h, rname) in path.iter().enumerate() {
        for (prefixes, toward_end) in [(&toward_a, false), (&toward_b, true)] {
            let rest: Vec<&String> = if toward_end {
                path[h + 1..].iter().collect()
            } else {
                path[..h].iter().rev().collect()
            };
            let (next_hop, via) = match rest.first() {
                Some(peer) => {
                    let pi = index_of[peer.as_str()];
                    (Some(addr_on(pi, rname)), Some((*peer).clone()))
                }
                None => (None, None),
            };
            for prefix in prefixes.iter() {
                routes.push(RouteExpectation {
                    router: rname.clone(),
                    hop: h,
                    prefix: *prefix,
                    toward: if toward_end { Toward::Last } else { Toward::First },
                    next_hop,
                    via: via.clone(),
                });
            }
        }
    }
    let mut tr_hops = vec![host(lan_a, 2)];
    for w in path.windows(2) {
        tr_hops.push(addr_on(index_of[w[1].as_str()], &w[0]));
    }
    tr_hops.push(hosts[1].address);
    let mut back_hops = vec![host(lan_b, 2)];
    for w in path.windows(2).rev() {
        back_hops.push(addr_on(index_of[w[0].as_str()], &w[1]));
    }
    back_hops.push(hosts[0].address);
    let traceroutes = vec![
        TracerouteExpectation {
            from: host_a.clone(),
            to: host_b.clone(),
            target: hosts[1].address,
            hops: tr_hops,
        },
        TracerouteExpectation {
            from: host_b.clone(),
            to: host_a.clone(),
            target: hosts[0].address,
            hops: back_hops,
        },
    ];

    let mut plan = Plan {
        version: PLAN_VERSION,
        name: spec.name.clone(),
        hash: String::new(),
        l2vpn: spec.l2vpn,
        wiring,
        nodes: inv.nodes.clone(),
        path_asns: path.iter().map(|r| asns[index_of[r.as_str()]]).collect(),
        path,
        routers,
        hosts,
        networks,
        bgp: BgpTimersPlan {
            keepalive: spec.bgp.keepalive,
            hold: spec.bgp.hold,
            connect_retry: spec.bgp.connect_retry,
        },
        evpn,
        expectations: Expectations { routes, traceroutes },
    };
    plan.hash = plan_hash(&plan);
    Ok(plan)
}

fn dedup(mut v: Vec<Ipv4Net>) -> Vec<Ipv4Net> {
    v.sort();
    v.dedup();
    v
}

/// First 12 hex digits of SHA-256 over the plan's JSON with an empty hash field.
pub fn plan_hash(plan: &Plan) -> String {
    let mut p = plan.clone();
    p.hash.clear();
    let json = serde_json::to_vec(&p).expect("plan serialises");
    let d = Sha256::digest(&json);
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// When a router boots in a create, as a rank (lower first). Along the path, every other
/// router connects (hops 1, 3, 5, ...) and its neighbours listen (see `passive`); each
/// kind boots from both path ends inward, and a listening router boots `LISTEN_LAG`
/// places after the connecting routers as far from the ends as it is. So:
/// - a connecting router is about a second ahead of its listeners: its bgpd's fixed 1 s start
///   timer has run out when their link appears, and it connects at once;
/// - the sessions at the path ends, whose routes have the whole path left to cross, come up
///   first, and the last ones to come up sit mid-path, half the path from either end;
/// - a listener never waits for a connecting router that boots after it.
///
/// Routers off the path boot last.
pub fn start_rank(path_len: usize, hop: Option<usize>) -> usize {
    match hop {
        Some(h) => h.min(path_len.saturating_sub(h + 1)) + (h % 2) * LISTEN_LAG,
        None => usize::MAX,
    }
}

/// How many places a listening router boots after the connecting routers at its distance
/// from the path ends: about a second of container starts on a two-core machine (one every
/// 0.1 s or so when they queue), the connecting bgpd's start timer. At least 2, so a
/// listener always ranks after both its neighbours (whose distances differ from its own by
/// at most one).
pub const LISTEN_LAG: usize = 8;

impl Plan {
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
}

impl fmt::Display for Plan {
    /// A human table of the plan: one line per router, then the networks summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "path {} (plan {}): {} routers, {} on the path, {} networks, {} node(s), l2vpn {}",
            self.name,
            self.hash,
            self.routers.len(),
            self.path.len(),
            self.networks.len(),
            self.nodes.len(),
            match self.l2vpn {
                L2vpnMode::None => "none",
                L2vpnMode::Evpn => "evpn",
            }
        )?;
        writeln!(f, "{:>4}  {:<12} {:<5} {:>10}  {:<15} {:<10} interfaces", "hop", "router", "kind", "asn", "loopback", "node")?;
        let mut rows: Vec<&RouterPlan> = self.path_routers().collect();
        rows.extend(self.routers.iter().filter(|r| r.hop.is_none()));
        for r in rows {
            let ifs: Vec<String> =
                r.interfaces.iter().map(|i| format!("{}/{}→{}", i.address, i.prefix_len, i.peer)).collect();
            writeln!(
                f,
                "{:>4}  {:<12} {:<5} {:>10}  {:<15} {:<10} {}",
                r.hop.map(|h| (h + 1).to_string()).unwrap_or_else(|| "-".into()),
                r.name,
                r.kind.to_string(),
                r.asn,
                r.loopback.addr().to_string(),
                r.node,
                ifs.join(" ")
            )?;
        }
        for h in &self.hosts {
            writeln!(f, "host {} {}/{} via {} on {}", h.name, h.address, h.prefix_len, h.router, h.node)?;
        }
        let cross = self.networks.iter().filter(|n| n.cross_host).count();
        writeln!(f, "links crossing hosts: {cross}")?;
        for t in &self.expectations.traceroutes {
            let hops: Vec<String> = t.hops.iter().map(|h| h.to_string()).collect();
            writeln!(f, "traceroute {} → {}: {}", t.from, t.to, hops.join(" "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_boot_after_their_neighbours_and_the_path_ends_before_the_middle() {
        let n = 24;
        let rank = |h: usize| start_rank(n, Some(h));
        for h in (1..n).step_by(2) {
            assert!(rank(h) > rank(h - 1), "hop {h} listens to hop {}", h - 1);
            if h + 1 < n {
                assert!(rank(h) > rank(h + 1), "hop {h} listens to hop {}", h + 1);
            }
        }
        // The listener of the session at the source end boots before the connecting
        // routers mid-path, not after all of them.
        assert!(rank(1) < rank(n / 2));
        assert_eq!(start_rank(n, None), usize::MAX);
    }

    #[test]
    fn chain_addresses_and_expectations() {
        let s = spec::chain("p", 3).unwrap();
        let p = build(&s, &Inventory::default()).unwrap();
        assert_eq!(p.networks.iter().filter(|n| n.role == NetworkRole::Link).count(), 2);
        let r1 = p.router("r1").unwrap();
        assert_eq!(r1.asn, 4_200_000_001);
        assert_eq!(r1.interfaces[1].address.to_string(), "10.199.0.2");
        let e = p.expectations.routes.iter().find(|e| e.router == "r1" && e.prefix.to_string() == "10.210.1.0/24").unwrap();
        assert_eq!(e.as_path(&p), vec![4_200_000_002, 4_200_000_003]);
        assert_eq!(e.next_hop.unwrap().to_string(), "10.199.0.3");
        let t = &p.expectations.traceroutes[0];
        let hops: Vec<String> = t.hops.iter().map(|h| h.to_string()).collect();
        assert_eq!(hops, ["10.210.0.2", "10.199.0.3", "10.199.0.11", "10.210.1.10"]);
    }

    #[test]
    fn taken_subnets_are_skipped() {
        let s = spec::chain("p", 2).unwrap();
        let inv = Inventory {
            nodes: vec!["local".into()],
            taken: vec!["10.199.0.0/29".parse().unwrap(), "10.210.0.0/24".parse().unwrap()],
        };
        let p = build(&s, &inv).unwrap();
        let link = p.networks.iter().find(|n| n.role == NetworkRole::Link).unwrap();
        assert_eq!(link.subnet.to_string(), "10.199.0.8/29");
        assert_eq!(p.hosts[0].address.to_string(), "10.210.1.10");
    }

    #[test]
    fn spread_and_pack() {
        let s = spec::chain("p", 6).unwrap();
        let inv = Inventory { nodes: vec!["n1".into(), "n2".into(), "n3".into()], taken: vec![] };
        let p = build(&s, &inv).unwrap();
        let nodes: Vec<&str> = p.routers.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["n1", "n2", "n3", "n1", "n2", "n3"]);
        assert!(p.networks.iter().filter(|n| n.role == NetworkRole::Link).all(|n| n.cross_host));
        let mut s2 = s.clone();
        s2.placement = Placement::Pack;
        let p = build(&s2, &inv).unwrap();
        let nodes: Vec<&str> = p.routers.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["n1", "n1", "n2", "n2", "n3", "n3"]);
    }
}
