//! The IPv6 part of the template contexts: a router's IPv6 loopback, link addresses,
//! sessions and TE policy, a host's IPv6 address and gateway. Pure, like `render`.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::Serialize;

use crate::core::plan::ipv6::{Host6, Router6};
use crate::core::plan::{HostPlan, Plan, RouterPlan, TE_LOCAL_PREF};

/// Inbound route-map giving the planned neighbour `peer`'s IPv6 routes the TE preference.
pub fn route_map_name(peer: &str) -> String {
    format!("VTE6-IN-{peer}")
}

/// IPv6 prefix-list that route-map matches.
pub fn prefix_list_name(peer: &str) -> String {
    format!("VTE6-PREFER-{peer}")
}

#[derive(Serialize)]
pub(crate) struct Router6Ctx {
    loopback: Ipv6Net,
    /// Direct links: interface name and IPv6 address (zebra sets them, as the IPv4 ones).
    links: Vec<Link6Ctx>,
    neighbors: Vec<Neighbor6Ctx>,
    policies: Vec<Policy6Ctx>,
    originate: Vec<Ipv6Net>,
}

#[derive(Serialize)]
struct Link6Ctx {
    ifname: String,
    address: Ipv6Net,
}

#[derive(Serialize)]
struct Neighbor6Ctx {
    address: Ipv6Addr,
    remote_as: u32,
    peer: String,
    password: Option<String>,
    route_map: Option<String>,
    passive: bool,
    connect_retry: u16,
    timers: Option<Timers6Ctx>,
}

#[derive(Serialize)]
struct Timers6Ctx {
    keepalive: u16,
    hold: u16,
}

#[derive(Serialize)]
struct Policy6Ctx {
    route_map: String,
    prefix_list: String,
    local_pref: u32,
    prefixes: Vec<Prefix6Entry>,
}

#[derive(Serialize)]
struct Prefix6Entry {
    seq: usize,
    prefix: Ipv6Net,
    ge: Option<u8>,
}

/// Prefix-list entries: the preferred prefixes exactly, then blocks of loopbacks matching
/// the /128s inside them (as the IPv4 list does with /32s).
fn entries(n: &crate::core::plan::ipv6::Neighbor6) -> Vec<Prefix6Entry> {
    let exact = n.prefer.iter().map(|p| (*p, None));
    let blocks = n.prefer_loopbacks.iter().map(|b| (*b, (b.prefix_len() < 128).then_some(128)));
    exact.chain(blocks).enumerate().map(|(i, (prefix, ge))| Prefix6Entry { seq: (i + 1) * 5, prefix, ge }).collect()
}

/// The IPv6 context of router `r` (whose twin is `r6`).
pub(crate) fn router(plan: &Plan, r: &RouterPlan, r6: &Router6) -> Router6Ctx {
    let policies = r6
        .neighbors
        .iter()
        .filter(|n| !(n.prefer.is_empty() && n.prefer_loopbacks.is_empty()))
        .map(|n| Policy6Ctx { route_map: route_map_name(&n.peer), prefix_list: prefix_list_name(&n.peer), local_pref: TE_LOCAL_PREF, prefixes: entries(n) })
        .collect();
    Router6Ctx {
        loopback: r6.loopback,
        links: r
            .interfaces
            .iter()
            .zip(&r6.interfaces)
            .filter_map(|(i, i6)| {
                Some(Link6Ctx { ifname: i.ifname.clone()?, address: Ipv6Net::new(i6.address, i6.prefix_len).expect("planned prefix length") })
            })
            .collect(),
        neighbors: r
            .neighbors
            .iter()
            .zip(&r6.neighbors)
            .map(|(n, n6)| Neighbor6Ctx {
                address: n6.address,
                remote_as: n.remote_as,
                peer: n.peer.clone(),
                password: n.password.clone(),
                route_map: (!(n6.prefer.is_empty() && n6.prefer_loopbacks.is_empty())).then(|| route_map_name(&n.peer)),
                passive: n.passive,
                connect_retry: n.timers.map_or(plan.bgp.connect_retry, |t| t.connect_retry),
                timers: n.timers.map(|t| Timers6Ctx { keepalive: t.keepalive, hold: t.hold }),
            })
            .collect(),
        policies,
        originate: r6.originate.clone(),
    }
}

#[derive(Serialize)]
pub(crate) struct Host6Ctx {
    address: Ipv6Net,
    gateway: Ipv6Addr,
}

pub(crate) fn host(_h: &HostPlan, h6: &Host6) -> Host6Ctx {
    Host6Ctx { address: Ipv6Net::new(h6.address, h6.prefix_len).expect("planned prefix length"), gateway: h6.gateway }
}

/// The IPv6 contexts of a router, if the plan carries IPv6.
pub(crate) fn of_router(plan: &Plan, r: &RouterPlan) -> Option<Router6Ctx> {
    let six = plan.ipv6.as_ref()?;
    let r6 = six.routers.iter().find(|x| x.name == r.name)?;
    Some(router(plan, r, r6))
}

pub(crate) fn of_host(plan: &Plan, h: &HostPlan) -> Option<Host6Ctx> {
    let six = plan.ipv6.as_ref()?;
    six.hosts.iter().find(|x| x.name == h.name).map(|h6| host(h, h6))
}
