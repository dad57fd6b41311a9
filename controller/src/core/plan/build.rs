//! `build`: a valid spec and an inventory → the plan, as ordered passes. Each pass reads
//! what the earlier ones decided and adds its own part:
//!
//! asns → placement → addressing → routers → lans → links (with `sessions`: who listens)
//! → te → announce (`all`: every loopback) → evpn → expectations → hash.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::*;
use super::{cidr, distance, schedule, sessions};
use crate::core::spec::{self, L2vpnMode, PathSpec, Placement, Problem, Wiring};

/// What every pass needs to know about the spec, resolved once.
pub(super) struct Cx<'a> {
    pub(super) spec: &'a PathSpec,
    /// `vte-<path>-`: the prefix of every object name.
    prefix: String,
    /// Short tag for Linux bridge names.
    tag: String,
    wiring: Wiring,
    /// Direct links get interface names vnet-te chooses; Docker names its networks' own.
    direct: bool,
    pub(super) path: Vec<String>,
    pub(super) links: Vec<spec::LinkSpec>,
    index_of: BTreeMap<&'a str, usize>,
    hop_of: BTreeMap<String, usize>,
}

impl<'a> Cx<'a> {
    fn new(spec: &'a PathSpec) -> Self {
        let path = spec::effective_path(spec);
        let hop_of = path.iter().enumerate().map(|(i, r)| (r.clone(), i)).collect();
        Cx {
            spec,
            prefix: object_prefix(&spec.name),
            tag: short_tag(&spec.name),
            wiring: spec.wiring(),
            direct: spec.wiring() == Wiring::Direct,
            links: spec::effective_links(spec),
            index_of: spec.routers.iter().enumerate().map(|(i, r)| (r.name.as_str(), i)).collect(),
            hop_of,
            path,
        }
    }

    /// The top-level container limits (validated: a problem here cannot happen).
    fn limits(&self) -> spec::Limits {
        spec::limits::resolve("limits", self.spec.limits.as_ref(), spec::Limits::default(), &mut Vec::new())
    }

    fn first(&self) -> usize {
        self.index_of[self.path[0].as_str()]
    }

    fn last(&self) -> usize {
        self.index_of[self.path[self.path.len() - 1].as_str()]
    }

    /// Gives router `r` its next interface, on `network` toward `peer`.
    fn attach(&self, r: &mut RouterPlan, network: &str, address: Ipv4Addr, prefix_len: u8, peer: &str) {
        let ifname = self.direct.then(|| format!("eth{}", r.interfaces.len()));
        r.interfaces.push(InterfacePlan { network: network.to_string(), address, prefix_len, peer: peer.to_string(), ifname });
    }
}

/// The subnets a plan takes from its pools.
struct Subnets {
    links: Vec<Ipv4Net>,
    /// LAN a, LAN b, and with EVPN the shared L2 subnet.
    lans: Vec<Ipv4Net>,
    /// The LAN host a, then host b, is attached to (if it is).
    attached: [Option<Ipv4Net>; 2],
}

/// Builds the plan. `spec` must be valid (`spec::validate` returned no problem).
pub fn build(spec: &PathSpec, inv: &Inventory) -> Result<Plan, PlanError> {
    let err = |problems: Vec<Problem>| PlanError { path: spec.name.clone(), problems };
    debug_assert!(spec::validate(spec).is_empty(), "plan::build needs a valid spec");
    if inv.nodes.is_empty() {
        return Err(err(vec![Problem::new("inventory", "no nodes to place routers on")]));
    }
    let cx = Cx::new(spec);
    let asns = asns(spec);
    let (nodes, mut problems) = placement(&cx, inv);
    let (subnets, more) = addressing(&cx, inv);
    problems.extend(more);
    problems.extend(parents(&cx, inv, &nodes));
    if !problems.is_empty() {
        return Err(err(problems));
    }
    let loopbacks = loopbacks(spec);
    let evpn = evpn_plan(&cx, &asns, &subnets);
    let mut routers = routers(&cx, &asns, &nodes, &loopbacks);
    let mut networks = Vec::new();
    let hosts = lans(&cx, &mut routers, &mut networks, &subnets, evpn.as_ref());
    links(&cx, &mut routers, &mut networks, &subnets.links);
    let bgp = BgpTimersPlan { keepalive: spec.bgp.keepalive, hold: spec.bgp.hold, connect_retry: spec.bgp.connect_retry };
    let timed = schedule::resolve(spec);
    let distance = distance::impairments(&cx, &mut networks, !timed.is_empty());
    let schedule = schedule::compile(&cx, timed, &networks);
    if distance.is_some() {
        // Sessions must hold across the largest delay the schedule gives each link.
        let worst = schedule::at_worst(&networks, schedule.as_ref());
        distance::session_profile(spec.converge, &bgp, &mut routers, &worst);
    }
    // Prefixes forced along the path, per direction: the far LAN and the far edge loopback
    // (the VTEP address EVPN's VXLAN rides on).
    // An attached LAN is forced like the LAN of its host.
    let toward_a = dedup([subnets.lans[0], loopbacks[cx.first()]].into_iter().chain(subnets.attached[0]).collect());
    let toward_b = dedup([subnets.lans[1], loopbacks[cx.last()]].into_iter().chain(subnets.attached[1]).collect());
    te(&cx, &mut routers, &toward_a, &toward_b, evpn.is_some());
    let hop_prefixes = announce_all(&cx, &mut routers, &toward_a, &toward_b);
    if let Some(e) = &evpn {
        vteps(&cx, &mut routers, e, &subnets);
    }
    let mut expectations = expectations(&cx, &routers, &hosts, &subnets, &toward_a, &toward_b);
    expectations.hop_prefixes = hop_prefixes;
    let mut plan = Plan {
        version: PLAN_VERSION,
        name: spec.name.clone(),
        hash: String::new(),
        l2vpn: spec.l2vpn,
        wiring: cx.wiring,
        nodes: inv.nodes.clone(),
        path_asns: cx.path.iter().map(|r| asns[cx.index_of[r.as_str()]]).collect(),
        path: cx.path.clone(),
        routers,
        hosts,
        networks,
        bgp,
        evpn,
        distance,
        schedule,
        verify: spec.verify,
        announce: spec.announce,
        vpn: None,
        expectations,
        ipv6: None,
    };
    // IPv6 first: its twin is built from the plain IPv4 plan, before a VPN rewrites the
    // traceroutes of the tunnel's ends.
    plan.ipv6 = super::ipv6::plan(spec, &plan);
    if let Some(v) = &spec.vpn {
        plan.vpn = super::vpn::plan(v, &plan);
        if let Some(v) = &plan.vpn {
            plan.expectations.traceroutes = super::vpn::plain_traceroutes(&plan, v);
        }
    }
    if plan.distance.is_some() {
        distance::recompute(&mut plan);
    }
    plan.hash = plan_hash(&plan);
    Ok(plan)
}

/// Explicit ASNs stay; the rest count up from the base, skipping used and reserved ones.
fn asns(spec: &PathSpec) -> Vec<u32> {
    let explicit: BTreeSet<u32> = spec.routers.iter().filter_map(|r| r.asn).collect();
    let mut next_asn = spec.asn_base;
    spec.routers
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
        .collect()
}

/// The node of every router (in spec order): pinned ones where they are pinned, the rest
/// spread round-robin or packed, path routers in path order first, then off-path routers.
fn placement(cx: &Cx, inv: &Inventory) -> (Vec<String>, Vec<Problem>) {
    let spec = cx.spec;
    let mut order: Vec<usize> = cx.path.iter().map(|r| cx.index_of[r.as_str()]).collect();
    order.extend((0..spec.routers.len()).filter(|i| !cx.hop_of.contains_key(spec.routers[*i].name.as_str())));
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
    let known: BTreeSet<&str> = inv.nodes.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    for (i, r) in spec.routers.iter().enumerate() {
        if let Some(n) = &r.node {
            if !known.contains(n.as_str()) {
                problems.push(Problem::new(format!("routers[{i}].node"), format!("unknown node '{n}' (known: {})", inv.nodes.join(", "))));
            }
            nodes[i] = n.clone();
        }
    }
    (nodes, problems)
}

/// A /29 per link and a /24 per LAN from the pools, skipping subnets already taken.
fn addressing(cx: &Cx, inv: &Inventory) -> (Subnets, Vec<Problem>) {
    let spec = cx.spec;
    let mut problems = Vec::new();
    let mut link_alloc = Allocator::new(spec.pools.links, 29, &inv.taken);
    let mut links = Vec::new();
    for _ in &cx.links {
        match link_alloc.take() {
            Some(n) => links.push(n),
            None => {
                problems.push(Problem::new("pools.links", format!("{} has no free /29 left for {} links", spec.pools.links, cx.links.len())));
                break;
            }
        }
    }
    let n_lans = spec::lan_count(spec) as usize;
    let mut lan_alloc = Allocator::new(spec.pools.lans, 24, &inv.taken);
    let lans: Vec<Ipv4Net> = (0..n_lans).filter_map(|_| lan_alloc.take()).collect();
    if lans.len() < n_lans {
        problems.push(Problem::new("pools.lans", format!("{} has no free /24 left for {n_lans} LANs", spec.pools.lans)));
    }
    // The attached LANs come after the others, so attaching a host moves no other subnet.
    let mut rest = lans.iter().skip(if spec.l2vpn == L2vpnMode::Evpn { 3 } else { 2 }).copied();
    let attached = spec.hosts.sides().map(|(_, h)| h.attach.as_ref().and_then(|_| rest.next()));
    (Subnets { links, lans, attached }, problems)
}

/// Each attached host's parent interface exists on its node (the node of its edge router),
/// where the inventory knows the nodes' interfaces.
fn parents(cx: &Cx, inv: &Inventory, nodes: &[String]) -> Vec<Problem> {
    let Some(known) = &inv.interfaces else { return Vec::new() };
    let ends = [cx.first(), cx.last()];
    let mut problems = Vec::new();
    for ((field, h), router) in cx.spec.hosts.sides().into_iter().zip(ends) {
        let Some(a) = &h.attach else { continue };
        let node = &nodes[router];
        if !known.get(node).is_some_and(|names| names.contains(&a.macvlan)) {
            problems.push(Problem::new(
                format!("{field}.attach.macvlan"),
                format!("no interface '{}' on node '{node}' (the node of {}, behind {})", a.macvlan, h.name, cx.spec.routers[router].name),
            ));
        }
    }
    problems
}

/// Loopbacks: .1, .2, ... of the pool in router order.
fn loopbacks(spec: &PathSpec) -> Vec<Ipv4Net> {
    (0..spec.routers.len()).map(|i| Ipv4Net::new(host(spec.pools.loopbacks, i as u32 + 1), 32).expect("/32")).collect()
}

fn evpn_plan(cx: &Cx, asns: &[u32], subnets: &Subnets) -> Option<EvpnPlan> {
    let spec = cx.spec;
    (spec.l2vpn == L2vpnMode::Evpn).then(|| EvpnPlan {
        vni: spec.vni.unwrap_or(spec::DEFAULT_VNI),
        subnet: subnets.lans[2],
        route_target: format!("{}:{}", asns[cx.first()], spec.vni.unwrap_or(spec::DEFAULT_VNI)),
        mtu: EVPN_LAN_MTU,
    })
}

fn routers(cx: &Cx, asns: &[u32], nodes: &[String], loopbacks: &[Ipv4Net]) -> Vec<RouterPlan> {
    cx.spec
        .routers
        .iter()
        .enumerate()
        .map(|(i, r)| RouterPlan {
            name: r.name.clone(),
            container: format!("{}{}", cx.prefix, r.name),
            kind: r.kind,
            asn: asns[i],
            router_id: loopbacks[i].addr(),
            loopback: loopbacks[i],
            node: nodes[i].clone(),
            hop: cx.hop_of.get(r.name.as_str()).copied(),
            interfaces: Vec::new(),
            neighbors: Vec::new(),
            originate: Vec::new(),
            vtep: None,
            tcp: None,
            statics: Vec::new(),
            limits: spec::limits::resolve("", r.limits.as_ref(), cx.limits(), &mut Vec::new()),
        })
        .collect()
}

/// The two experiment LANs, each the first interface of its edge router, and their hosts.
/// Both edge routers originate their LAN and their loopback.
fn lans(cx: &Cx, routers: &mut [RouterPlan], networks: &mut Vec<NetworkPlan>, subnets: &Subnets, evpn: Option<&EvpnPlan>) -> Vec<HostPlan> {
    let (first, last) = (cx.first(), cx.last());
    let mut hosts = Vec::new();
    let ends = [(&cx.spec.hosts.a, first, subnets.lans[0]), (&cx.spec.hosts.b, last, subnets.lans[1])];
    for (side, (hspec, ri, subnet)) in ends.into_iter().enumerate() {
        let hname = &hspec.name;
        let letter = if side == 0 { 'a' } else { 'b' };
        let net_name = format!("{}lan-{letter}", cx.prefix);
        let (raddr, haddr) = (host(subnet, 2), host(subnet, 10));
        let r = &mut routers[ri];
        cx.attach(r, &net_name, raddr, 24, hname);
        r.originate.push(subnet);
        networks.push(NetworkPlan {
            name: net_name.clone(),
            role: NetworkRole::Lan,
            index: 0,
            driver: Driver::of_link(false, cx.wiring),
            bridge: format!("vte{}{letter}", cx.tag),
            subnet,
            gateway: host(subnet, 1),
            ip_range: Ipv4Net::new(host(subnet, 128), 25).expect("/25"),
            mtu: evpn.map(|e| e.mtu),
            nodes: vec![r.node.clone()],
            cross_host: false,
            ends: vec![Endpoint { name: r.name.clone(), address: raddr }, Endpoint { name: hname.clone(), address: haddr }],
            impair: None,
            underlay: None,
        });
        hosts.push(HostPlan {
            name: hname.clone(),
            container: format!("{}{hname}", cx.prefix),
            node: r.node.clone(),
            router: r.name.clone(),
            network: net_name,
            address: haddr,
            prefix_len: 24,
            gateway: raddr,
            ifname: cx.direct.then(|| "eth0".to_string()),
            l2_address: evpn.map(|e| Ipv4Net::new(host(e.subnet, side as u32 + 1), 24).expect("/24")),
            attach: None,
            limits: cx.limits(),
        });
        if let (Some(a), Some(lan)) = (&hspec.attach, subnets.attached[side]) {
            let r = &mut routers[ri];
            r.statics.push(StaticRoutePlan { prefix: lan, via: haddr });
            r.originate.push(lan);
            hosts[side].attach = Some(AttachPlan { parent: a.macvlan.clone(), ifname: ATTACH_IFNAME.to_string(), subnet: lan, address: host(lan, 1) });
        }
    }
    for r in [first, last] {
        let lo = routers[r].loopback;
        if !routers[r].originate.contains(&lo) {
            routers[r].originate.push(lo);
        }
    }
    hosts
}

/// Every router-to-router link: its network, an interface and a BGP neighbour on each end.
/// Which end listens is `sessions::listens`.
fn links(cx: &Cx, routers: &mut [RouterPlan], networks: &mut Vec<NetworkPlan>, subnets: &[Ipv4Net]) {
    for (li, (l, subnet)) in cx.links.iter().zip(subnets).enumerate() {
        let (ia, ib) = (cx.index_of[l.a.as_str()], cx.index_of[l.b.as_str()]);
        let (aa, ab) = (host(*subnet, 2), host(*subnet, 3));
        let name = format!("{}l{}", cx.prefix, li + 1);
        let cross = routers[ia].node != routers[ib].node;
        let driver = Driver::of_link(cross, cx.wiring);
        let password = l.password.clone().or_else(|| cx.spec.bgp.password.clone());
        let mut nodes = vec![routers[ia].node.clone(), routers[ib].node.clone()];
        nodes.sort();
        nodes.dedup();
        networks.push(NetworkPlan {
            name: name.clone(),
            role: NetworkRole::Link,
            index: li + 1,
            driver,
            bridge: format!("vte{}l{}", cx.tag, li + 1),
            subnet: *subnet,
            gateway: host(*subnet, 1),
            ip_range: Ipv4Net::new(host(*subnet, 4), 30).expect("/30"),
            // VXLAN takes 50 bytes of the nodes' 1500 (as swarm's overlays do).
            mtu: (driver == Driver::Vxlan).then_some(UNDERLAY_MTU),
            nodes,
            cross_host: cross,
            ends: vec![Endpoint { name: l.a.clone(), address: aa }, Endpoint { name: l.b.clone(), address: ab }],
            impair: None,
            underlay: None,
        });
        let listens = sessions::listens(cx.path.len(), (&routers[ia], ia), (&routers[ib], ib));
        for (k, (me, other, my_addr, other_addr)) in [(ia, ib, aa, ab), (ib, ia, ab, aa)].into_iter().enumerate() {
            let (other_name, other_as) = (routers[other].name.clone(), routers[other].asn);
            let r = &mut routers[me];
            cx.attach(r, &name, my_addr, 29, &other_name);
            r.neighbors.push(NeighborPlan {
                peer: other_name,
                address: other_addr,
                remote_as: other_as,
                network: name.clone(),
                password: password.clone(),
                prefer: Vec::new(),
                prefer_loopbacks: Vec::new(),
                evpn: false,
                passive: listens[k],
                timers: None,
            });
        }
    }
}

/// Traffic engineering: on every router of the path, routes toward the far end are
/// preferred from the next planned hop, routes toward the near end from the previous one.
/// With EVPN, those two sessions also carry EVPN routes.
fn te(cx: &Cx, routers: &mut [RouterPlan], toward_a: &[Ipv4Net], toward_b: &[Ipv4Net], evpn: bool) {
    for (h, rname) in cx.path.iter().enumerate() {
        let ri = cx.index_of[rname.as_str()];
        let next = cx.path.get(h + 1);
        let prev = h.checked_sub(1).map(|p| &cx.path[p]);
        for n in &mut routers[ri].neighbors {
            if Some(&n.peer) == next {
                n.prefer.extend(toward_b.iter().copied());
            }
            if Some(&n.peer) == prev {
                n.prefer.extend(toward_a.iter().copied());
            }
            n.prefer.sort();
            n.prefer.dedup();
            n.evpn = evpn && (Some(&n.peer) == next || Some(&n.peer) == prev);
        }
    }
}

/// `announce: all`: every router originates its loopback too (off the path as well, so a
/// `path update` that moves the path changes no router's originated prefixes), and the TE
/// policy of every router of the path covers the loopbacks of the hops between the ends:
/// those beyond the next hop are preferred from it, those behind from the previous one.
/// Returns the hop prefixes verification expects (the ends' are expected already).
fn announce_all(cx: &Cx, routers: &mut [RouterPlan], toward_a: &[Ipv4Net], toward_b: &[Ipv4Net]) -> Vec<HopPrefix> {
    if cx.spec.announce != spec::Announce::All {
        return Vec::new();
    }
    for r in routers.iter_mut() {
        let lo = r.loopback;
        if !r.originate.contains(&lo) {
            r.originate.push(lo);
        }
    }
    let forced: BTreeSet<Ipv4Net> = toward_a.iter().chain(toward_b).copied().collect();
    let hop_prefixes: Vec<HopPrefix> = cx
        .path
        .iter()
        .enumerate()
        .map(|(hop, name)| HopPrefix { hop, router: name.clone(), prefix: routers[cx.index_of[name.as_str()]].loopback })
        .filter(|p| !forced.contains(&p.prefix))
        .collect();
    for (h, rname) in cx.path.iter().enumerate() {
        let ri = cx.index_of[rname.as_str()];
        let next = cx.path.get(h + 1);
        let prev = h.checked_sub(1).map(|p| &cx.path[p]);
        let beyond = cidr::blocks(hop_prefixes.iter().filter(|p| p.hop > h).map(|p| p.prefix.addr()));
        let behind = cidr::blocks(hop_prefixes.iter().filter(|p| p.hop < h).map(|p| p.prefix.addr()));
        for n in &mut routers[ri].neighbors {
            if Some(&n.peer) == next {
                n.prefer_loopbacks.extend(beyond.iter().copied());
            }
            if Some(&n.peer) == prev {
                n.prefer_loopbacks.extend(behind.iter().copied());
            }
        }
    }
    hop_prefixes
}

/// The two edge routers bridge their LAN into the VXLAN toward each other's loopback.
fn vteps(cx: &Cx, routers: &mut [RouterPlan], e: &EvpnPlan, subnets: &Subnets) {
    let (first, last) = (cx.first(), cx.last());
    for (me, far, lan) in [(first, last, subnets.lans[0]), (last, first, subnets.lans[1])] {
        let remote = routers[far].loopback.addr();
        routers[me].vtep = Some(VtepPlan { vni: e.vni, lan_address: Ipv4Net::new(host(lan, 2), 24).expect("/24"), remote_vtep: remote, mtu: e.mtu });
    }
}

/// What verification checks: every path router's best route to each forced prefix (next
/// hop and the hops left toward that end), and the reply address of every traceroute hop.
fn expectations(cx: &Cx, routers: &[RouterPlan], hosts: &[HostPlan], subnets: &Subnets, toward_a: &[Ipv4Net], toward_b: &[Ipv4Net]) -> Expectations {
    let path = &cx.path;
    // The address of router `me` on its link to `peer`.
    let addr_on = |me: usize, peer: &str| -> Ipv4Addr {
        let net = &routers[me].neighbors.iter().find(|n| n.peer == peer).expect("link on path").network;
        routers[me].interfaces.iter().find(|i| &i.network == net).expect("interface").address
    };
    let mut routes = Vec::new();
    for (h, rname) in path.iter().enumerate() {
        for (prefixes, toward) in [(toward_a, Toward::First), (toward_b, Toward::Last)] {
            let nearest = match toward {
                Toward::Last => path.get(h + 1),
                Toward::First => h.checked_sub(1).map(|p| &path[p]),
            };
            let (next_hop, via) = match nearest {
                Some(peer) => (Some(addr_on(cx.index_of[peer.as_str()], rname)), Some(peer.clone())),
                None => (None, None),
            };
            for prefix in prefixes {
                routes.push(RouteExpectation { router: rname.clone(), hop: h, prefix: *prefix, toward, next_hop, via: via.clone(), origin: None });
            }
        }
    }
    let mut there = vec![host(subnets.lans[0], 2)];
    for w in path.windows(2) {
        there.push(addr_on(cx.index_of[w[1].as_str()], &w[0]));
    }
    there.push(hosts[1].address);
    let mut back = vec![host(subnets.lans[1], 2)];
    for w in path.windows(2).rev() {
        back.push(addr_on(cx.index_of[w[0].as_str()], &w[1]));
    }
    back.push(hosts[0].address);
    let (a, b) = (&cx.spec.hosts.a.name, &cx.spec.hosts.b.name);
    let traceroutes = vec![
        TracerouteExpectation { from: a.clone(), to: b.clone(), target: hosts[1].address, hops: there, rtt_us: Vec::new() },
        TracerouteExpectation { from: b.clone(), to: a.clone(), target: hosts[0].address, hops: back, rtt_us: Vec::new() },
    ];
    Expectations { routes, traceroutes, hop_prefixes: Vec::new() }
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

fn dedup(mut v: Vec<Ipv4Net>) -> Vec<Ipv4Net> {
    v.sort();
    v.dedup();
    v
}
