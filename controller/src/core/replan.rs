//! `path update`: re-point a running path at another chosen sequence of hops over the same
//! topology, without recreating a container or a network.
//!
//! The new spec is planned with the running path's own subnets as the only free ones, so the
//! same links and LANs get the same addresses. Anything that would need different Docker
//! objects (routers, links, addresses, ASNs, placement, the path's two ends where the hosts
//! sit, EVPN settings) is refused as bad input. What may change: the hops in between, hence
//! each router's TE policy and EVPN sessions (plus BGP timers and passwords).
//!
//! Applying is per router: its new `frr.conf` is written (what FRR boots from) and applied
//! through vtysh after the lines the new config no longer has are taken out (`removal`),
//! then every IPv4 unicast neighbour is asked to resend its routes through the new inbound
//! policy. No daemon restarts; sessions stay up except where EVPN is (de)activated on one,
//! which renegotiates that session. Every router is brought to the new plan, not only the
//! ones whose config text changed, so hand edits to the TE policy are repaired too.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use crate::core::plan::cidr::cover;
use crate::core::plan::{self, Inventory, NetworkRole, Plan, PlanError, RouterPlan};
use crate::core::render;
use crate::core::spec::{PathSpec, RouterKind};

/// The inventory that makes the planner reuse the running path's subnets: within the new
/// spec's pools, everything except those subnets counts as taken.
pub fn inventory_for_update(old: &Plan, spec: &PathSpec) -> Inventory {
    let mut ours_links = Vec::new();
    let mut ours_lans = Vec::new();
    for n in &old.networks {
        match n.role {
            NetworkRole::Link => ours_links.push(n.subnet),
            NetworkRole::Lan => ours_lans.push(n.subnet),
        }
    }
    if let Some(e) = &old.evpn {
        ours_lans.push(e.subnet);
    }
    ours_lans.extend(old.hosts.iter().filter_map(|h| h.attach.as_ref().map(|a| a.subnet)));
    let mut taken = complement(spec.pools.links, &ours_links);
    taken.extend(complement(spec.pools.lans, &ours_lans));
    Inventory { nodes: old.nodes.clone(), taken, interfaces: None }
}

/// The parts of `pool` not covered by `ours`, as few CIDR blocks as possible.
fn complement(pool: Ipv4Net, ours: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut inside: Vec<(u64, u64)> =
        ours.iter().filter(|n| pool.contains(*n)).map(|n| (u64::from(u32::from(n.network())), u64::from(u32::from(n.broadcast())))).collect();
    inside.sort();
    let mut out = Vec::new();
    let mut next = u64::from(u32::from(pool.network()));
    let end = u64::from(u32::from(pool.broadcast()));
    for (a, b) in inside {
        if a > next {
            out.extend(cover(next, a - 1));
        }
        next = next.max(b + 1);
    }
    if next <= end {
        out.extend(cover(next, end));
    }
    out
}

/// Plans `spec` over the running path `old`: same subnets, same nodes.
pub fn replan(old: &Plan, spec: &PathSpec) -> Result<Plan, PlanError> {
    // A running router stays on the node it runs on: `spread` and `pack` place routers by
    // their position on the path, so a new path would otherwise move them.
    let mut spec = spec.clone();
    for r in spec.routers.iter_mut().filter(|r| r.node.is_none()) {
        if let Some(o) = old.routers.iter().find(|o| o.name == r.name) {
            r.node = Some(o.node.clone());
        }
    }
    // Links stay as they were made unless the spec says otherwise.
    spec.wiring.get_or_insert(old.wiring);
    let mut new = plan::build(&spec, &inventory_for_update(old, &spec))?;
    // Which end of a session listens follows the boot order of the create (by position on
    // the path), so a new path would move it; a running session keeps its ends as they are
    // (two listening ends never meet again after a reset).
    for r in &mut new.routers {
        let Some(o) = old.router(&r.name) else { continue };
        for n in &mut r.neighbors {
            if let Some(on) = o.neighbors.iter().find(|on| on.peer == n.peer && on.address == n.address) {
                n.passive = on.passive;
            }
        }
    }
    new.hash = plan::plan_hash(&new);
    // The underlay measured at create stays with the links it was measured under (their ends
    // stay on their nodes); like the measurement, it is no part of the hash.
    for n in &mut new.networks {
        let distance = n.impair.is_some();
        n.underlay = old.networks.iter().find(|o| o.name == n.name && o.ends == n.ends).and_then(|o| o.underlay).filter(|_| distance);
    }
    if new.distance.is_some() {
        plan::distance::recompute(&mut new);
    }
    Ok(new)
}

/// Why `new` cannot be applied to the running `old` in place (empty: it can).
pub fn conflicts(old: &Plan, new: &Plan) -> Vec<String> {
    let mut c = Vec::new();
    if old.name != new.name {
        c.push(format!("the spec is for path '{}', not '{}'", new.name, old.name));
        return c;
    }
    let ends = |p: &Plan| (p.path.first().cloned(), p.path.last().cloned());
    if ends(old) != ends(new) {
        c.push(format!(
            "the path's ends change ({} … {} → {} … {}): the experiment hosts' LANs would move to other routers",
            old.path.first().map_or("?", String::as_str),
            old.path.last().map_or("?", String::as_str),
            new.path.first().map_or("?", String::as_str),
            new.path.last().map_or("?", String::as_str),
        ));
    }
    if old.wiring != new.wiring {
        c.push(format!("the wiring changes ({} → {}): every link would be remade", old.wiring, new.wiring));
    }
    if old.nodes != new.nodes {
        c.push(format!("the nodes change ({} → {})", old.nodes.join(","), new.nodes.join(",")));
    }
    if old.announce != new.announce {
        c.push(format!("announce changes ({} → {}): every router would originate other prefixes", old.announce, new.announce));
    }
    if old.ipv6.is_some() || new.ipv6.is_some() {
        // Update removes and refreshes IPv4 policies and sessions only.
        c.push("the path carries IPv6: `path update` re-points IPv4-only paths; delete and create it instead".to_string());
    }
    c.extend(evpn_conflicts(old, new));
    c.extend(router_conflicts(old, new));
    c.extend(host_and_network_conflicts(old, new));
    if let Some(r) = new.routers.iter().find(|r| r.kind == RouterKind::Vyos) {
        c.push(format!("router {} is VyOS: `path update` applies FRR configurations only", r.name));
    }
    c
}

fn evpn_conflicts(old: &Plan, new: &Plan) -> Vec<String> {
    let mut c = Vec::new();
    if old.l2vpn != new.l2vpn {
        c.push(format!("l2vpn changes ({:?} → {:?})", old.l2vpn, new.l2vpn).to_lowercase());
    } else if let (Some(o), Some(n)) = (&old.evpn, &new.evpn) {
        let mut what = Vec::new();
        if o.vni != n.vni {
            what.push(format!("VNI {} → {}", o.vni, n.vni));
        }
        if o.route_target != n.route_target {
            what.push(format!("route target {} → {} (it follows the first hop's AS)", o.route_target, n.route_target));
        }
        if o.subnet != n.subnet || o.mtu != n.mtu {
            what.push(format!("L2 subnet/MTU {} {} → {} {}", o.subnet, o.mtu, n.subnet, n.mtu));
        }
        if !what.is_empty() {
            c.push(format!("EVPN settings change: {}", what.join(", ")));
        }
    }
    let timelines = |p: &Plan| p.schedule.as_ref().map(|s| s.directions.clone());
    if timelines(old) != timelines(new) {
        c.push("the schedule or contact plan changes (the delay lines run their timelines already)".to_string());
    }
    c
}

/// Routers added, removed, or changed in what their container was made with.
fn router_conflicts(old: &Plan, new: &Plan) -> Vec<String> {
    let mut c = Vec::new();
    let old_names: BTreeSet<&str> = old.routers.iter().map(|r| r.name.as_str()).collect();
    let new_names: BTreeSet<&str> = new.routers.iter().map(|r| r.name.as_str()).collect();
    for r in new_names.difference(&old_names) {
        c.push(format!("router {r} is not in the running path (routers cannot be added in place)"));
    }
    for r in old_names.difference(&new_names) {
        c.push(format!("router {r} would be removed (routers cannot be removed in place)"));
    }
    for o in &old.routers {
        let Some(n) = new.router(&o.name) else { continue };
        let mut what = Vec::new();
        if o.kind != n.kind {
            what.push(format!("kind {} → {}", o.kind, n.kind));
        }
        if o.asn != n.asn {
            what.push(format!("ASN {} → {}", o.asn, n.asn));
        }
        if o.loopback != n.loopback {
            what.push(format!("loopback {} → {}", o.loopback, n.loopback));
        }
        if o.node != n.node {
            what.push(format!("node {} → {}", o.node, n.node));
        }
        if o.interfaces != n.interfaces {
            let show = |r: &RouterPlan| r.interfaces.iter().map(|i| format!("{}→{}", i.address, i.peer)).collect::<Vec<_>>().join(" ");
            what.push(format!("interfaces [{}] → [{}]", show(o), show(n)));
        }
        // A change of `announce` is named once, not per router.
        if (o.originate != n.originate && old.announce == new.announce) || o.vtep != n.vtep {
            what.push("originated prefixes or VTEP".to_string());
        }
        if o.container != n.container {
            what.push(format!("container {} → {}", o.container, n.container));
        }
        if o.limits != n.limits {
            what.push(format!("limits {} → {}", show_limits(&o.limits), show_limits(&n.limits)));
        }
        if !what.is_empty() {
            c.push(format!("router {}: {}", o.name, what.join(", ")));
        }
    }
    c
}

fn host_and_network_conflicts(old: &Plan, new: &Plan) -> Vec<String> {
    let mut c = Vec::new();
    if old.hosts != new.hosts {
        let attached = |h: &crate::core::plan::HostPlan| match &h.attach {
            Some(a) => format!("attached to {} ({})", a.parent, a.subnet),
            None => "not attached".to_string(),
        };
        for (o, n) in old.hosts.iter().zip(&new.hosts) {
            if o.limits != n.limits {
                c.push(format!("host {}: limits {} → {}", o.name, show_limits(&o.limits), show_limits(&n.limits)));
            } else if o.attach != n.attach {
                c.push(format!("host {}: {} → {}", o.name, attached(o), attached(n)));
            } else if o != n {
                c.push(format!(
                    "host {}: {} {}/{} behind {} → host {}: {} {}/{} behind {}",
                    o.name, o.network, o.address, o.prefix_len, o.router, n.name, n.network, n.address, n.prefix_len, n.router
                ));
            }
        }
        if old.hosts.len() != new.hosts.len() {
            c.push("the experiment hosts change".to_string());
        }
    }
    if old.networks != new.networks {
        let old_n: BTreeSet<(String, String)> = old.networks.iter().map(|n| (n.name.clone(), n.subnet.to_string())).collect();
        let new_n: BTreeSet<(String, String)> = new.networks.iter().map(|n| (n.name.clone(), n.subnet.to_string())).collect();
        let gone: Vec<String> = old_n.difference(&new_n).map(|(n, s)| format!("{n} {s}")).collect();
        let added: Vec<String> = new_n.difference(&old_n).map(|(n, s)| format!("{n} {s}")).collect();
        if gone.is_empty() && added.is_empty() {
            c.push("network settings change (ends, MTU or driver)".to_string());
        } else {
            c.push(format!("networks change (running: {}; new: {})", or_none(&gone), or_none(&added)));
        }
    }
    c
}

/// `memory 256 MiB, pids 512`.
fn show_limits(l: &crate::core::spec::Limits) -> String {
    format!("memory {} MiB, pids {}", l.memory >> 20, l.pids)
}

fn or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// One router's part of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterChange {
    pub router: String,
    pub container: String,
    pub node: String,
    pub config: String,
    pub remove: String,
}

/// What to apply to every router (all of them: see the module notes).
pub fn changes(old: &Plan, new: &Plan) -> Result<Vec<RouterChange>, render::RenderError> {
    new.routers
        .iter()
        .map(|n| {
            let remove = old.router(&n.name).map(|o| render::render_removal(o, n)).transpose()?.unwrap_or_default();
            Ok(RouterChange { router: n.name.clone(), container: n.container.clone(), node: n.node.clone(), config: render::render_frr_conf(new, n)?, remove })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec;
    use std::collections::BTreeSet;

    fn spec_file(name: &str) -> PathSpec {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../paths").join(name);
        spec::parse_yaml(name, &std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn inv_with_others() -> Inventory {
        // Other paths hold the first subnets of each pool.
        Inventory { nodes: vec!["local".into()], taken: vec!["10.199.0.0/27".parse().unwrap(), "10.210.0.0/23".parse().unwrap()], interfaces: None }
    }

    #[test]
    fn the_underlay_measured_at_create_stays_with_its_links_through_an_update() {
        let mut s = spec::chain("p", 3).unwrap();
        s.link_defaults = Some(spec::ImpairSpec { delay: Some("5ms".into()), ..Default::default() });
        let inv = plan::Inventory { nodes: vec!["n1".into(), "n2".into()], taken: vec![], interfaces: None };
        let mut old = plan::build(&s, &inv).unwrap();
        let u = plan::Underlay { rtt_us: 600, one_way_us: 300 };
        plan::distance::set_underlay(&mut old, &std::collections::BTreeMap::from([(("n1".to_string(), "n2".to_string()), u)]));
        let new = replan(&old, &s).unwrap();
        assert_eq!(new.hash, old.hash, "a measurement is no change of the path");
        assert_eq!(new.networks.iter().filter(|n| n.underlay == Some(u)).count(), 2);
        assert_eq!(new.expectations, old.expectations);
    }

    #[test]
    fn complement_is_exact_and_minimal() {
        let pool: Ipv4Net = "10.199.0.0/16".parse().unwrap();
        let ours: Vec<Ipv4Net> = vec!["10.199.0.32/29".parse().unwrap(), "10.199.0.48/29".parse().unwrap()];
        let rest = complement(pool, &ours);
        assert!(rest.iter().all(|r| !ours.iter().any(|o| r.contains(o) || o.contains(r))));
        let total: u64 = rest.iter().map(|r| 1u64 << (32 - r.prefix_len())).sum::<u64>() + 16;
        assert_eq!(total, 1 << 16);
        assert!(rest.len() < 40, "{}", rest.len());
    }

    #[test]
    fn a_new_path_over_the_same_topology_keeps_every_address() {
        let old = plan::build(&spec_file("grid-detour.yaml"), &inv_with_others()).unwrap();
        let mut s = spec_file("grid-detour.yaml");
        s.path = Some(["g11", "g21", "g22", "g23", "g33"].iter().map(|r| r.to_string()).collect());
        let new = replan(&old, &s).unwrap();
        assert!(conflicts(&old, &new).is_empty(), "{:?}", conflicts(&old, &new));
        assert_eq!(old.networks, new.networks);
        assert_ne!(old.hash, new.hash);
        assert_eq!(new.router("g12").unwrap().hop, None);
        // Planned from scratch instead, the same spec would take the free subnets first.
        let fresh = plan::build(&s, &Inventory::default()).unwrap();
        assert_ne!(fresh.networks, old.networks);
        // Every running session keeps its listening end (a fresh plan would move some: the
        // boot order follows the path), so each still has exactly one.
        let passive = |p: &Plan| -> BTreeSet<(String, String)> {
            p.routers.iter().flat_map(|r| r.neighbors.iter().filter(|n| n.passive).map(|n| (r.name.clone(), n.peer.clone()))).collect()
        };
        assert_eq!(passive(&new), passive(&old));
        assert_ne!(passive(&fresh), passive(&old), "the test no longer exercises a move");
        for r in &new.routers {
            for n in &r.neighbors {
                let back = new.router(&n.peer).unwrap().neighbors.iter().find(|b| b.peer == r.name).unwrap();
                assert!(n.passive != back.passive, "{} - {}: exactly one end listens", r.name, n.peer);
            }
        }
    }

    #[test]
    fn a_path_that_carries_ipv6_is_not_updated() {
        let s = spec_file("ring-detour-ipv6.yaml");
        let old = plan::build(&s, &Inventory::default()).unwrap();
        let c = conflicts(&old, &old.clone());
        assert_eq!(c, ["the path carries IPv6: `path update` re-points IPv4-only paths; delete and create it instead"]);
    }

    #[test]
    fn changes_that_need_other_containers_are_refused() {
        let old = plan::build(&spec_file("ring-detour.yaml"), &inv_with_others()).unwrap();
        // Other ends: the hosts would move.
        let mut s = spec_file("ring-detour.yaml");
        s.path = Some(vec!["r2".into(), "r1".into(), "r6".into()]);
        let c = conflicts(&old, &replan(&old, &s).unwrap());
        assert!(c.iter().any(|m| m.contains("the path's ends change (r1 … r6 → r2 … r6)")), "{c:?}");
        // One more link: no subnet for it among the running path's own.
        let mut s = spec_file("ring-detour.yaml");
        s.links.as_mut().unwrap().push(spec::LinkSpec::between("r2", "r5"));
        assert!(replan(&old, &s).is_err());
        // A different ASN.
        let mut s = spec_file("ring-detour.yaml");
        s.routers[2].asn = Some(65003);
        let c = conflicts(&old, &replan(&old, &s).unwrap());
        assert!(c.iter().any(|m| m.starts_with("router r3: ASN 4200000003 → 65003")), "{c:?}");
        // The same spec again: nothing to refuse.
        assert!(conflicts(&old, &replan(&old, &spec_file("ring-detour.yaml")).unwrap()).is_empty());
    }

    #[test]
    fn an_attached_lan_stays_through_an_update_and_cannot_change_in_place() {
        let old = plan::build(&spec_file("lan-attach.yaml"), &inv_with_others()).unwrap();
        // The shortcut instead of the long way: the attached LAN keeps its subnet and route.
        let mut s = spec_file("lan-attach.yaml");
        s.path = Some(vec!["r1".into(), "r4".into()]);
        let new = replan(&old, &s).unwrap();
        assert!(conflicts(&old, &new).is_empty(), "{:?}", conflicts(&old, &new));
        assert_eq!(new.hosts[0].attach, old.hosts[0].attach);
        let lan = old.hosts[0].attach.as_ref().unwrap().subnet;
        let r4 = new.router("r4").unwrap().neighbors.iter().find(|n| n.peer == "r1").unwrap();
        assert!(r4.prefer.contains(&lan), "{:?}", r4.prefer);
        // Another parent, or none: refused, named.
        let mut s = spec_file("lan-attach.yaml");
        s.hosts.a.attach = Some(spec::AttachSpec { macvlan: "eth2".into() });
        let c = conflicts(&old, &replan(&old, &s).unwrap());
        assert!(c.iter().any(|m| m.starts_with(&format!("host src: attached to eth1 ({lan}) → attached to eth2"))), "{c:?}");
        s.hosts.a.attach = None;
        let c = conflicts(&old, &replan(&old, &s).unwrap());
        assert!(c.contains(&format!("host src: attached to eth1 ({lan}) → not attached")), "{c:?}");
    }

    #[test]
    fn a_running_schedule_cannot_be_changed_in_place() {
        let old = plan::build(&spec_file("leo-schedule.yaml"), &Inventory::default()).unwrap();
        let same = replan(&old, &spec_file("leo-schedule.yaml")).unwrap();
        assert!(conflicts(&old, &same).is_empty(), "{:?}", conflicts(&old, &same));
        let mut s = spec_file("leo-schedule.yaml");
        s.schedule.as_mut().unwrap().pop();
        let c = conflicts(&old, &replan(&old, &s).unwrap());
        assert!(c.iter().any(|c| c.contains("the schedule or contact plan changes")), "{c:?}");
    }

    #[test]
    fn removal_takes_out_exactly_the_policy_the_new_plan_drops() {
        let old = plan::build(&spec_file("grid-detour.yaml"), &Inventory::default()).unwrap();
        let mut s = spec_file("grid-detour.yaml");
        s.path = Some(["g11", "g21", "g31", "g32", "g33"].iter().map(|r| r.to_string()).collect());
        let new = replan(&old, &s).unwrap();
        // g11 now prefers g21 instead of g12.
        let g12 = old.router("g11").unwrap().neighbors.iter().find(|n| n.peer == "g12").unwrap().address;
        let r = render::render_removal(old.router("g11").unwrap(), new.router("g11").unwrap()).unwrap();
        assert_eq!(
            r,
            format!(
                "router bgp 4200000001\n address-family ipv4 unicast\n  no neighbor {g12} route-map VTE-IN-g12 in\n exit-address-family\nexit\nno route-map VTE-IN-g12\nno ip prefix-list VTE-PREFER-g12\n"
            )
        );
        // g13 leaves the path: both its policies go.
        let r = render::render_removal(old.router("g13").unwrap(), new.router("g13").unwrap()).unwrap();
        assert_eq!(r.matches("route-map VTE-IN-").count(), 4, "{r}");
        // g31 stays on the path with the same neighbours: nothing to remove.
        assert_eq!(render::render_removal(old.router("g31").unwrap(), new.router("g31").unwrap()).unwrap(), "");
        // Every router gets its new frr.conf.
        let c = changes(&old, &new).unwrap();
        assert_eq!(c.len(), 9);
        assert!(c.iter().find(|c| c.router == "g11").unwrap().config.contains("route-map VTE-IN-g21 permit 10"));
        assert!(!c.iter().find(|c| c.router == "g13").unwrap().config.contains("VTE-IN-"));
    }

    #[test]
    fn announce_all_moves_the_loopback_blocks_with_the_path_and_refuses_a_switch() {
        let mut s = spec_file("grid-detour.yaml");
        s.announce = spec::Announce::All;
        let old = plan::build(&s, &Inventory::default()).unwrap();
        s.path = Some(["g11", "g21", "g31", "g32", "g33"].iter().map(|r| r.to_string()).collect());
        let new = replan(&old, &s).unwrap();
        // Every router originates its loopback on and off the path: nothing to refuse.
        assert!(conflicts(&old, &new).is_empty(), "{:?}", conflicts(&old, &new));
        // g31 prefers from g21 the hops behind it: g12 g13 g23 g22 g21 before, g21 alone now.
        let r = render::render_removal(old.router("g31").unwrap(), new.router("g31").unwrap()).unwrap();
        assert_eq!(
            r,
            "no ip prefix-list VTE-PREFER-g21 seq 15 permit 10.255.0.2/31 ge 32\n\
             no ip prefix-list VTE-PREFER-g21 seq 20 permit 10.255.0.4/31 ge 32\n\
             no ip prefix-list VTE-PREFER-g21 seq 25 permit 10.255.0.6/32\n"
        );
        let conf = render::render_frr_conf(&new, new.router("g31").unwrap()).unwrap();
        assert!(conf.contains("ip prefix-list VTE-PREFER-g21 seq 15 permit 10.255.0.4/32\n"), "{conf}");
        // Switching announce is refused, named once.
        let mut ends = spec_file("grid-detour.yaml");
        ends.path = s.path.clone();
        let c = conflicts(&old, &replan(&old, &ends).unwrap());
        assert_eq!(c, ["announce changes (all → ends): every router would originate other prefixes"]);
    }

    #[test]
    fn evpn_sessions_move_with_the_path() {
        let mut s = spec_file("ring-detour.yaml");
        s.l2vpn = spec::L2vpnMode::Evpn;
        let old = plan::build(&s, &Inventory::default()).unwrap();
        s.path = Some(vec!["r1".into(), "r6".into()]);
        let new = replan(&old, &s).unwrap();
        assert!(conflicts(&old, &new).is_empty(), "{:?}", conflicts(&old, &new));
        let r = render::render_removal(old.router("r1").unwrap(), new.router("r1").unwrap()).unwrap();
        assert!(r.contains(" address-family l2vpn evpn\n  no neighbor 10.199.0.3 activate\n"), "{r}");
        let r3 = render::render_removal(old.router("r3").unwrap(), new.router("r3").unwrap()).unwrap();
        assert_eq!(r3.matches("activate").count(), 2, "{r3}");
    }
}
