//! IPv6 of a plan: a twin of the IPv4 addressing, sessions and TE policy, built from the
//! finished IPv4 plan so that both families take the same links, listening ends, timers
//! and preferences. Each IPv4 link, LAN and loopback maps to its IPv6 counterpart in the
//! IPv6 pools by its place (link number, LAN order, router order), so the expectations are
//! the IPv4 ones mapped too (`map_prefix`, `map_addr`), not stored twice.
//!
//! BGP runs one native IPv6 session per link beside the IPv4 one: IPv6-only needs IPv6
//! sessions anyway, so one mechanism serves both, and the families fail independently.
//! The router ID stays the 32-bit IPv4 loopback (BGP needs one), also in IPv6-only paths,
//! whose interfaces keep their IPv4 link addresses as the executor's plumbing while no
//! IPv4 route is exchanged.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::{NetworkRole, Plan};
use crate::core::spec::ipv6::{LAN6_LEN, LINK6_LEN, LOOPBACK6_LEN};
use crate::core::spec::PathSpec;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Plan {
    /// IPv4 is carried too (dual-stack); false: IPv6 only.
    pub ipv4: bool,
    /// The IPv4 loopback pool the loopbacks map from.
    pub loopbacks4: Ipv4Net,
    pub loopbacks6: Ipv6Net,
    /// In the order of `Plan::routers`.
    pub routers: Vec<Router6>,
    /// In the order of `Plan::hosts`.
    pub hosts: Vec<Host6>,
    /// Every link and LAN of the plan with its IPv6 subnet.
    pub networks: BTreeMap<String, Ipv6Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router6 {
    pub name: String,
    pub loopback: Ipv6Net,
    /// In the order of the router's IPv4 interfaces.
    pub interfaces: Vec<Interface6>,
    /// In the order of the router's IPv4 neighbours (same peer, listening end and timers).
    pub neighbors: Vec<Neighbor6>,
    pub originate: Vec<Ipv6Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface6 {
    pub network: String,
    pub address: Ipv6Addr,
    pub prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor6 {
    pub peer: String,
    pub address: Ipv6Addr,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub prefer: Vec<Ipv6Net>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub prefer_loopbacks: Vec<Ipv6Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host6 {
    pub name: String,
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    pub gateway: Ipv6Addr,
}

/// The `n`-th address of `net`.
fn nth(net: Ipv6Net, n: u128) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net.network()) + n)
}

/// The `i`-th subnet of length `len` in `pool`.
fn subnet(pool: Ipv6Net, len: u8, i: u128) -> Ipv6Net {
    Ipv6Net::new(nth(pool, i << (128 - u32::from(len))), len).expect("length checked by validation")
}

/// The IPv6 part of a plan whose spec carries IPv6; `plan` is the finished IPv4 plan.
pub fn plan(spec: &PathSpec, plan: &Plan) -> Option<Ipv6Plan> {
    if !spec.has_ipv6() {
        return None;
    }
    let (links6, loopbacks6, lans6) = spec.pools6();
    let mut networks = BTreeMap::new();
    // IPv4 address → IPv6 address, for every end of every link and LAN.
    let mut addrs: BTreeMap<(String, Ipv4Addr), Ipv6Addr> = BTreeMap::new();
    let mut lan = 0u128;
    for n in &plan.networks {
        let (net, first) = match n.role {
            NetworkRole::Link => (subnet(links6, LINK6_LEN, n.index as u128 - 1), 0),
            NetworkRole::Lan => {
                lan += 1;
                (subnet(lans6, LAN6_LEN, lan - 1), 1)
            }
        };
        networks.insert(n.name.clone(), net);
        for (k, e) in n.ends.iter().enumerate() {
            addrs.insert((n.name.clone(), e.address), nth(net, first + k as u128));
        }
    }
    let mut six = Ipv6Plan { ipv4: spec.has_ipv4(), loopbacks4: spec.pools.loopbacks, loopbacks6, routers: Vec::new(), hosts: Vec::new(), networks };
    let loopback = |i: usize| Ipv6Net::new(nth(loopbacks6, i as u128 + 1), LOOPBACK6_LEN).expect("/128");
    six.routers = plan
        .routers
        .iter()
        .enumerate()
        .map(|(i, r)| Router6 {
            name: r.name.clone(),
            loopback: loopback(i),
            interfaces: r
                .interfaces
                .iter()
                .map(|f| Interface6 {
                    network: f.network.clone(),
                    address: addrs[&(f.network.clone(), f.address)],
                    prefix_len: six.networks[&f.network].prefix_len(),
                })
                .collect(),
            neighbors: Vec::new(),
            originate: Vec::new(),
        })
        .collect();
    for (i, r) in plan.routers.iter().enumerate() {
        let originate = r.originate.iter().filter_map(|p| six.map_prefix(plan, *p)).collect();
        let neighbors = r
            .neighbors
            .iter()
            .map(|n| Neighbor6 {
                peer: n.peer.clone(),
                address: addrs[&(n.network.clone(), n.address)],
                prefer: n.prefer.iter().filter_map(|p| six.map_prefix(plan, *p)).collect(),
                prefer_loopbacks: n.prefer_loopbacks.iter().filter_map(|b| six.map_block(*b)).collect(),
            })
            .collect();
        (six.routers[i].originate, six.routers[i].neighbors) = (originate, neighbors);
    }
    six.hosts = plan
        .hosts
        .iter()
        .map(|h| {
            let router = plan.router(&h.router).expect("planned router");
            let gw = router.interfaces.iter().find(|f| f.network == h.network).expect("router on the host's LAN");
            Host6 {
                name: h.name.clone(),
                address: addrs[&(h.network.clone(), h.address)],
                prefix_len: LAN6_LEN,
                gateway: addrs[&(h.network.clone(), gw.address)],
            }
        })
        .collect();
    Some(six)
}

impl Ipv6Plan {
    /// The IPv6 counterpart of a prefix of the plan: a LAN's /64 or a loopback's /128.
    pub fn map_prefix(&self, plan: &Plan, p: Ipv4Net) -> Option<Ipv6Net> {
        if let Some(n) = plan.networks.iter().find(|n| n.subnet == p) {
            return self.networks.get(&n.name).copied();
        }
        let i = plan.routers.iter().position(|r| r.loopback == p)?;
        Some(self.routers[i].loopback)
    }

    /// A block of IPv4 loopbacks (`announce: all`) as the block of their IPv6 loopbacks:
    /// both pools count routers from the same first address.
    pub fn map_block(&self, b: Ipv4Net) -> Option<Ipv6Net> {
        let offset = u32::from(b.network()).checked_sub(u32::from(self.loopbacks4.network()))?;
        Ipv6Net::new(nth(self.loopbacks6, u128::from(offset)), 128 - (32 - b.prefix_len())).ok()
    }

    /// The IPv6 address of whatever holds `a` in the plan (an interface, a host, a loopback).
    pub fn map_addr(&self, plan: &Plan, a: Ipv4Addr) -> Option<Ipv6Addr> {
        for (r, r6) in plan.routers.iter().zip(&self.routers) {
            if r.loopback.addr() == a {
                return Some(r6.loopback.addr());
            }
            if let Some(k) = r.interfaces.iter().position(|f| f.address == a) {
                return Some(r6.interfaces[k].address);
            }
        }
        plan.hosts.iter().zip(&self.hosts).find(|(h, _)| h.address == a).map(|(_, h6)| h6.address)
    }

    /// Who holds an IPv6 address of the plan: "r3 (fd7e:…)", or the address.
    pub fn owner_label(&self, a: Ipv6Addr) -> String {
        let of_router = self.routers.iter().find(|r| r.loopback.addr() == a || r.interfaces.iter().any(|f| f.address == a));
        match (of_router.map(|r| &r.name), self.hosts.iter().find(|h| h.address == a).map(|h| &h.name)) {
            (Some(n), _) | (None, Some(n)) => format!("{n} ({a})"),
            (None, None) => a.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::plan::{build, Inventory};
    use crate::core::spec;

    fn dual(hops: usize) -> crate::core::plan::Plan {
        let mut s = spec::chain("t", hops).unwrap();
        s.family = Some(vec![spec::ipv6::Family::Ipv4, spec::ipv6::Family::Ipv6]);
        build(&s, &Inventory::default()).unwrap()
    }

    #[test]
    fn every_link_lan_and_loopback_has_its_ipv6_twin() {
        let p = dual(3);
        let six = p.ipv6.as_ref().unwrap();
        assert!(six.ipv4);
        assert_eq!(six.routers[0].loopback.to_string(), "fd7e:7e00:0:1::1/128");
        assert_eq!(six.routers[2].loopback.to_string(), "fd7e:7e00:0:1::3/128");
        assert_eq!(six.networks["vte-t-l1"].to_string(), "fd7e:7e00:0:2::/127");
        assert_eq!(six.networks["vte-t-l2"].to_string(), "fd7e:7e00:0:2::2/127");
        assert_eq!(six.networks["vte-t-lan-a"].to_string(), "fd7e:7e00:0:100::/64");
        assert_eq!(six.networks["vte-t-lan-b"].to_string(), "fd7e:7e00:0:101::/64");
        // r2 prefers dst's LAN and r3's loopback from r3, at r3's end of link 2.
        let r2 = &six.routers[1];
        let to_r3 = r2.neighbors.iter().find(|n| n.peer == "r3").unwrap();
        assert_eq!(to_r3.address.to_string(), "fd7e:7e00:0:2::3");
        let prefer: Vec<String> = to_r3.prefer.iter().map(|p| p.to_string()).collect();
        assert_eq!(prefer, ["fd7e:7e00:0:101::/64", "fd7e:7e00:0:1::3/128"]);
        assert_eq!(six.hosts[1].address.to_string(), "fd7e:7e00:0:101::2");
        assert_eq!(six.hosts[1].gateway.to_string(), "fd7e:7e00:0:101::1");
        // Addresses map both ways through the plan.
        let nh = p.routes_of("r2").iter().find(|e| e.via.as_deref() == Some("r3")).unwrap().next_hop.unwrap();
        assert_eq!(six.map_addr(&p, nh), Some(to_r3.address));
    }

    #[test]
    fn a_plan_without_ipv6_has_no_twin_and_loopback_blocks_map_by_offset() {
        let p = build(&spec::chain("t", 3).unwrap(), &Inventory::default()).unwrap();
        assert!(p.ipv6.is_none());
        let six = dual(3).ipv6.unwrap();
        assert_eq!(six.map_block("10.255.0.4/30".parse().unwrap()).unwrap().to_string(), "fd7e:7e00:0:1::4/126");
    }
}
