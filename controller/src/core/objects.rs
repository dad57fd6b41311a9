//! The objects a plan becomes: every container (image, command, files, labels, Docker
//! attachments, in boot order), every Docker network and every link vnet-te makes itself,
//! each with the node it goes on. Exactly what the executor makes; pure and golden-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use vnet_te_agent::delay::units::queue_len_for;
use vnet_te_agent::node::{
    labels, Attachment, ContainerSpec, DelayLineSpec, FileSpec, LineSchedule, LineStep, MacvlanSpec, NetworkSpec, VethEnd, VethSpec, VxlanSpec,
};

pub use crate::core::kinds::vyos_image;
use crate::core::kinds::Kind;
use crate::core::plan::schedule;
use crate::core::plan::{start_rank, Driver, Endpoint, HostPlan, NetworkPlan, NetworkRole, Plan, RouterPlan, Underlay};
use crate::core::render::{self, Rendered};
use crate::core::spec::distance::Impair;

/// A node without a known underlay address cannot carry a VXLAN link end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node '{0}' has no known IPv4 address for VXLAN links (its agent address, or the manager's advertise address)")]
pub struct NoUnderlay(pub String);

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
            let mut l = base_labels(
                plan,
                match n.role {
                    NetworkRole::Link => "link",
                    NetworkRole::Lan => "lan",
                },
            );
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectLink {
    /// Both ends on this node.
    Veth(VethSpec),
    /// This node's end of a link to another node.
    Vxlan(VxlanSpec),
    /// An experiment host on a LAN of this node.
    Macvlan(MacvlanSpec),
}

impl DirectLink {
    /// (container, interface) of each end this node makes.
    pub fn ends(&self) -> Vec<(&str, &str)> {
        match self {
            DirectLink::Veth(v) => vec![(&v.a.container, &v.a.ifname), (&v.b.container, &v.b.ifname)],
            DirectLink::Vxlan(v) => vec![(&v.container, &v.ifname)],
            DirectLink::Macvlan(m) => vec![(&m.container, &m.ifname)],
        }
    }

    /// The containers that must be ready before the link can be made.
    pub fn needs(&self) -> Vec<&str> {
        match self {
            DirectLink::Veth(v) => vec![&v.a.container, &v.b.container],
            DirectLink::Vxlan(v) => vec![&v.container],
            DirectLink::Macvlan(m) => vec![&m.container],
        }
    }
}

/// Every direct link of a plan with the node it is made on: one veth pair per same-node
/// link or LAN, one VXLAN end on each side of a link between nodes, and a macvlan per host
/// attached to a LAN of its node (in either wiring).
pub fn direct_links(plan: &Plan, underlay: &BTreeMap<String, Ipv4Addr>, zebra_first: &BTreeSet<&str>) -> Result<Vec<(String, DirectLink)>, NoUnderlay> {
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
    let addr = |node: &str| underlay.get(node).copied().ok_or_else(|| NoUnderlay(node.to_string()));
    let mut out = Vec::new();
    for n in plan.networks.iter().filter(|n| !n.driver.is_docker()) {
        let [ea, eb] = &n.ends[..] else { continue };
        let (Some(a), Some(b)) = (end(&ea.name, &n.name), end(&eb.name, &n.name)) else { continue };
        let net = |ip: Ipv4Addr, ours: bool| ipnet::Ipv4Net::new(ip, n.subnet.prefix_len()).ok().filter(|_| ours);
        if n.driver == Driver::Veth {
            // The listening end of a session goes in as `b` (made first: see `b_listens`)
            // when its zebra addresses it.
            let listens = |e: &Endpoint, zebra_addresses: bool| {
                zebra_addresses && plan.router(&e.name).is_some_and(|r| r.neighbors.iter().any(|nb| nb.network == n.name && nb.passive))
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
                vni: crate::core::plan::link_vni(n.subnet),
                local: addr(&me.1)?,
                remote: addr(&other.1)?,
                port: crate::core::plan::LINK_VXLAN_PORT,
                mtu: n.mtu,
                address: net(my_addr, me.3),
            };
            out.push((me.1.clone(), DirectLink::Vxlan(vxlan)));
        }
    }
    for h in &plan.hosts {
        let Some(a) = &h.attach else { continue };
        let address = ipnet::Ipv4Net::new(a.address, a.subnet.prefix_len()).expect("planned prefix length");
        let link = MacvlanSpec { container: h.container.clone(), ifname: a.ifname.clone(), parent: a.parent.clone(), address };
        out.push((h.node.clone(), DirectLink::Macvlan(link)));
    }
    Ok(out)
}

/// Every container of a plan with its node, files and Docker attachments, in start order:
/// the hosts, then the routers by `plan::start_rank` (frr.conf's passive ends follow it),
/// in plan order within a rank.
pub fn container_specs(plan: &Plan, files: &Rendered) -> Vec<(String, ContainerSpec)> {
    let network: BTreeMap<&str, &NetworkPlan> = plan.networks.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut out: Vec<((usize, usize), String, ContainerSpec)> = Vec::new();
    for (i, r) in plan.routers.iter().enumerate() {
        let rank = (start_rank(plan.path.len(), r.hop).saturating_add(1), i);
        out.push((rank, r.node.clone(), router_spec(plan, r, &network, files)));
    }
    for h in &plan.hosts {
        out.push(((0, 0), h.node.clone(), host_spec(plan, h, &network, files)));
    }
    out.sort_by_key(|(rank, _, _)| *rank);
    out.into_iter().map(|(_, node, spec)| (node, spec)).collect()
}

fn router_spec(plan: &Plan, r: &RouterPlan, network: &BTreeMap<&str, &NetworkPlan>, files: &Rendered) -> ContainerSpec {
    let mut l = base_labels(plan, "router");
    l.insert(labels::OBJECT.into(), r.name.clone());
    l.insert(labels::NODE.into(), r.node.clone());
    l.insert(labels::ASN.into(), r.asn.to_string());
    if let Some(h) = r.hop {
        l.insert(labels::HOP.into(), h.to_string());
    }
    let direct_subnets: Vec<String> =
        r.interfaces.iter().filter_map(|i| network.get(i.network.as_str())).filter(|n| !n.driver.is_docker()).map(|n| n.subnet.to_string()).collect();
    if !direct_subnets.is_empty() {
        l.insert(labels::SUBNETS.into(), direct_subnets.join(","));
    }
    let kind = Kind::of(r.kind);
    let mut files = file_specs(files.get(&r.name));
    let mut cmd = kind.boot_cmd();
    let mut env = Vec::new();
    if kind.files_in_env() {
        if let Some((c, e)) = files_in_env(&files, &cmd) {
            (cmd, env) = (c, e);
            files.clear();
        }
    }
    let docker_net = |name: &str| network.get(name).is_some_and(|n| n.driver.is_docker());
    ContainerSpec {
        name: r.container.clone(),
        hostname: r.name.clone(),
        image: kind.image(),
        role: kind.role(),
        attachments: r.interfaces.iter().filter(|i| docker_net(&i.network)).map(|i| Attachment { network: i.network.clone(), address: i.address }).collect(),
        files,
        env,
        cmd,
        labels: l,
        sysctls: {
            let mut s = tcp_sysctls(r);
            if plan.ipv6.is_some() {
                s.extend(ipv6_sysctls(true));
            }
            s
        },
        devices: vpn_devices(plan, &r.container),
        limits: r.limits,
    }
}

/// A VPN end gets the TUN device (libipsec's `ipsec0`; unused where the kernel does ESP).
fn vpn_devices(plan: &Plan, container: &str) -> Vec<String> {
    match &plan.vpn {
        Some(v) if v.is_end(container) => vnet_te_agent::vpn::ALLOWED_DEVICES.iter().map(|d| d.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// IPv6 on in a container of an IPv6 path (Docker turns it off in every namespace), without
/// duplicate address detection (each link's two ends are planned: waiting for it only delays
/// the sessions), and ICMPv6 errors not rate-limited (each traceroute6 hop needs its reply).
/// Routers also forward IPv6.
fn ipv6_sysctls(router: bool) -> BTreeMap<String, String> {
    let mut s: BTreeMap<String, String> = vnet_te_agent::node::IPV6_SYSCTLS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if router {
        s.insert("net.ipv6.conf.all.forwarding".to_string(), "1".to_string());
    }
    s
}

/// The router namespace's TCP settings for sessions across long delays (`plan::TcpPlan`).
fn tcp_sysctls(r: &RouterPlan) -> BTreeMap<String, String> {
    let Some(t) = r.tcp else { return BTreeMap::new() };
    BTreeMap::from([
        ("net.ipv4.tcp_syn_retries".to_string(), t.syn_retries.to_string()),
        ("net.ipv4.tcp_synack_retries".to_string(), t.synack_retries.to_string()),
        ("net.ipv4.tcp_retries2".to_string(), t.retries2.to_string()),
    ])
}

fn host_spec(plan: &Plan, h: &HostPlan, network: &BTreeMap<&str, &NetworkPlan>, files: &Rendered) -> ContainerSpec {
    let mut l = base_labels(plan, "host");
    l.insert(labels::OBJECT.into(), h.name.clone());
    l.insert(labels::NODE.into(), h.node.clone());
    let mut sysctls = BTreeMap::new();
    if let Some(a) = &h.attach {
        l.insert(labels::ATTACH.into(), a.parent.clone());
        // The attached LAN's subnet is on no Docker network and no router link: other paths
        // learn that it is taken from here.
        l.insert(labels::SUBNETS.into(), a.subnet.to_string());
        // The host routes between that LAN and its edge router.
        sysctls.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
    }
    if plan.ipv6.is_some() {
        sysctls.extend(ipv6_sysctls(false));
    }
    let f = file_specs(files.get(&h.name));
    let docker_net = network.get(h.network.as_str()).is_some_and(|n| n.driver.is_docker());
    ContainerSpec {
        name: h.container.clone(),
        hostname: h.name.clone(),
        image: Kind::Host.image(),
        role: Kind::Host.role(),
        attachments: if docker_net { vec![Attachment { network: h.network.clone(), address: h.address }] } else { Vec::new() },
        files: f,
        env: Vec::new(),
        cmd: Kind::Host.boot_cmd(),
        labels: l,
        sysctls,
        devices: vpn_devices(plan, &h.container),
        limits: h.limits,
    }
}

/// The prologue of a container whose files travel in its environment (see `files_in_env`).
const UNPACK_ENV: &str = include_str!("../../scripts/unpack-env.sh");
/// Largest file, and largest sum, sent through the environment (Linux takes 128 KiB per
/// variable and about 2 MiB of arguments and environment in all).
const ENV_FILE_MAX: usize = 96 * 1024;
const ENV_TOTAL_MAX: usize = 512 * 1024;

/// A container's files as environment variables of its create call, and the command that
/// writes them out before running `cmd`; `None` when they do not fit (the caller uploads
/// them instead). This spares an upload per container: Docker unpacks every upload in a
/// fresh process of the whole dockerd binary.
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
        .flat_map(|(i, f)| [format!("VNET_TE_F{i}_PATH={}", f.path), format!("VNET_TE_F{i}_MODE={:o}", f.mode), format!("VNET_TE_F{i}={}", f.content)])
        .collect();
    let mut full = vec!["/bin/bash".to_string(), "-c".to_string(), UNPACK_ENV.to_string(), "vnet-te-unpack".to_string()];
    full.extend(cmd.iter().cloned());
    Some((full, env))
}

/// The files of one container as the node takes them.
pub fn file_specs(files: Option<&Vec<render::RenderedFile>>) -> Vec<FileSpec> {
    files.map(|v| v.iter().map(|f| FileSpec { path: f.container_path.clone(), mode: f.mode, content: f.content.clone() }).collect()).unwrap_or_default()
}

/// One end of a link with distance: the router (or host) container and its interface
/// there, and the queue number the delay line takes (the interface's place in the
/// container, so unique in its namespace).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkEnd {
    pub node: String,
    pub container: String,
    pub ifname: String,
    pub queue: u16,
}

/// Where each direction of each link with distance is realised: its delay line where its
/// packets arrive, its rate where they leave. In plan order; directions without a delay,
/// jitter or loss have no delay line, directions without a rate no rate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Impairment {
    /// `r3–r4` in the direction of the packets.
    pub link: String,
    /// The plan's network of the link.
    pub network: String,
    pub from: LinkEnd,
    pub to: LinkEnd,
    pub impair: Impair,
    /// The underlay under a link between nodes, as measured at create: the delay line holds
    /// packets for the delay less its share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub underlay: Option<Underlay>,
    /// The link has a schedule: a delay line at each end whatever its settings, sized for
    /// the largest delay the schedule gives.
    pub scheduled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_max_len: Option<u32>,
}

/// Every direction of every link with distance that is impaired or scheduled.
pub fn impairments(plan: &Plan) -> Vec<Impairment> {
    link_directions(plan).into_iter().filter(|i| !i.impair.is_none() || i.scheduled).collect()
}

/// The timeline of the delay line that `arriving` has at its receiving end, from
/// `start_unix_ms`: the arriving direction's delay, jitter, loss and down, and the rate of the
/// opposite direction, which leaves through the same interface. None for an unscheduled link.
pub fn line_schedule(plan: &Plan, arriving: &Impairment, start_unix_ms: u64) -> Option<LineSchedule> {
    let sched = plan.schedule.as_ref()?;
    let dir = |from: &str| sched.directions.iter().find(|d| d.network == arriving.network && plan.router(&d.from).is_some_and(|r| r.container == from));
    let inbound = dir(&arriving.from.container)?;
    let outbound = dir(&arriving.to.container);
    let mut offsets: Vec<u64> = inbound.steps.iter().chain(outbound.iter().flat_map(|d| &d.steps)).map(|s| s.at_ms).collect();
    offsets.sort();
    offsets.dedup();
    let mut rate = outbound.map_or(0, |d| d.initial.impair.rate_bps);
    let steps = offsets
        .into_iter()
        .map(|at_ms| {
            let (state, _, _) = schedule::position(inbound, at_ms);
            let out_rate = outbound.map_or(0, |d| schedule::position(d, at_ms).0.impair.rate_bps);
            let rate_bps = (out_rate != rate).then_some(out_rate);
            rate = out_rate;
            LineStep {
                at_ms,
                // As `line()`: the underlay's share of a link between nodes is not held again.
                delay_us: crate::core::plan::distance::line_delay_us(state.impair.delay_us, arriving.underlay),
                jitter_us: state.impair.jitter_us,
                loss_ppm: state.impair.loss_ppm,
                down: state.down,
                rate_bps,
            }
        })
        .collect();
    Some(LineSchedule { start_unix_ms, steps })
}

/// Both directions of every link with distance settings (some may be all zero, as after
/// `path impair --up`).
pub fn link_directions(plan: &Plan) -> Vec<Impairment> {
    let end = |name: &str, network: &str| -> Option<LinkEnd> {
        let r = plan.router(name)?;
        let (i, iface) = r.interfaces.iter().enumerate().find(|(_, i)| i.network == network)?;
        Some(LinkEnd { node: r.node.clone(), container: r.container.clone(), ifname: iface.ifname.clone()?, queue: i as u16 })
    };
    let scheduled = |network: &str| plan.schedule.iter().flat_map(|s| &s.directions).filter(|d| d.network == network).collect::<Vec<_>>();
    let mut out = Vec::new();
    for n in &plan.networks {
        let (Some(imp), [ea, eb]) = (n.impair, &n.ends[..]) else { continue };
        let timelines = scheduled(&n.name);
        let (Some(a), Some(b)) = (end(&ea.name, &n.name), end(&eb.name, &n.name)) else { continue };
        for (from, to, impair, names) in [(&a, &b, imp.from_a, (ea, eb)), (&b, &a, imp.from_b, (eb, ea))] {
            out.push(Impairment {
                link: format!("{}–{}", names.0.name, names.1.name),
                network: n.name.clone(),
                from: from.clone(),
                to: to.clone(),
                impair,
                underlay: n.underlay,
                scheduled: !timelines.is_empty(),
                queue_max_len: timelines.iter().find(|d| d.from == names.0.name).and_then(|d| {
                    let w = schedule::worst(d);
                    (w.delay_us + w.jitter_us > impair.delay_us + impair.jitter_us).then(|| {
                        queue_len_for(vnet_te_agent::delay::units::DEFAULT_LINE_RATE_BPS, std::time::Duration::from_micros(w.delay_us + w.jitter_us), 1500)
                    })
                }),
            });
        }
    }
    out
}

impl Impairment {
    /// The delay line that holds this direction's packets where they arrive, if it needs one.
    pub fn delay_line(&self) -> Option<DelayLineSpec> {
        (self.impair.needs_delay_line() || self.scheduled).then(|| self.line())
    }

    /// This direction's delay line with its settings, zero or not (less the underlay's share
    /// on a link between nodes).
    pub fn line(&self) -> DelayLineSpec {
        DelayLineSpec {
            container: self.to.container.clone(),
            ifname: self.to.ifname.clone(),
            queue: self.to.queue,
            delay_us: crate::core::plan::distance::line_delay_us(self.impair.delay_us, self.underlay),
            jitter_us: self.impair.jitter_us,
            loss_ppm: self.impair.loss_ppm,
            queue_max_len: self.queue_max_len,
            schedule: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{sessions::routers_waiting_for_bgp, Inventory};

    #[test]
    fn a_scheduled_delay_on_a_link_between_nodes_leaves_out_the_underlays_share() {
        let s = crate::core::spec::parse_yaml("s.yaml", "name: s\nrouters: [{ name: r1 }, { name: r2 }]\nschedule: [{ at: 5s, link: r1-r2, delay: 100ms }]\n")
            .unwrap();
        let inv = Inventory { nodes: vec!["n1".into(), "n2".into()], taken: vec![], interfaces: None };
        let mut plan = crate::core::plan::build(&s, &inv).unwrap();
        let u = crate::core::plan::Underlay { rtt_us: 600, one_way_us: 300 };
        crate::core::plan::distance::set_underlay(&mut plan, &BTreeMap::from([(("n1".to_string(), "n2".to_string()), u)]));
        let lines: Vec<_> = impairments(&plan).into_iter().filter(|i| i.underlay.is_some()).collect();
        assert_eq!(lines.len(), 2, "both directions of r1–r2 cross the nodes");
        for i in &lines {
            let steps = line_schedule(&plan, i, 0).unwrap().steps;
            assert_eq!(steps.iter().map(|s| s.delay_us).collect::<Vec<_>>(), [99_700], "{}", i.link);
        }
    }

    #[test]
    fn the_listening_end_of_each_session_is_made_first() {
        let plan = crate::core::plan::build(&crate::core::spec::chain("p", 6).unwrap(), &Inventory::default()).unwrap();
        let waiting = routers_waiting_for_bgp(&plan);
        let links = direct_links(&plan, &BTreeMap::new(), &waiting).unwrap();
        let veths: Vec<&VethSpec> = links
            .iter()
            .filter_map(|(_, l)| match l {
                DirectLink::Veth(v) => Some(v),
                DirectLink::Vxlan(_) | DirectLink::Macvlan(_) => None,
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
            let passive = |r: &crate::core::plan::RouterPlan, peer: &str| r.neighbors.iter().find(|n| n.peer == peer).unwrap().passive;
            assert!(v.b_listens, "{v:?}");
            assert!(passive(b, &a.name) && !passive(a, &b.name), "{} listens, {} connects", b.name, a.name);
            assert_eq!((v.a.address, v.b.address), (None, None), "zebra addresses router ends");
        }
        assert_eq!(sessions, 5);
    }
}
