//! The IPsec tunnel of a path (`vpn:`): its two ends (the experiment hosts, or the edge
//! routers), the outer addresses IKE and ESP travel between, the traffic each end protects,
//! and the routers that carry the outer packets (where verification looks for ESP).
//!
//! Addresses are `IpAddr`/`IpNet`: an IPv6 tunnel is the same plan with the ends' addresses of
//! the other family (`end_addresses` is the one place that picks them).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Plan, TracerouteExpectation};
use crate::core::spec::{VpnAuth, VpnMode, VpnSpec};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnPlan {
    pub mode: VpnMode,
    pub auth: VpnAuth,
    /// The swanctl connection (and child) name.
    pub name: String,
    /// `[initiator, responder]`: the end behind the first hop starts the IKE exchange.
    pub ends: [VpnEndPlan; 2],
    /// Routers on the forced path that carry the tunnel's outer packets, in path order.
    pub transit: Vec<String>,
    /// The ESP implementation chosen at create by probing the kernel (absent before create).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub engine: Option<VpnEngine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnEndPlan {
    /// Router or host name.
    pub name: String,
    pub container: String,
    pub node: String,
    /// The address IKE and the encapsulated ESP leave from and arrive at.
    pub outer: IpAddr,
    /// The traffic this end protects (its side of the traffic selectors).
    pub protected: Vec<IpNet>,
}

/// Where ESP is done: the kernel's XFRM with its ESP transform, or strongSwan's userspace
/// libipsec over a TUN device (always UDP-encapsulated, port 4500) when the kernel has no ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VpnEngine {
    Kernel,
    Libipsec,
}

impl fmt::Display for VpnEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VpnEngine::Kernel => "kernel ESP",
            VpnEngine::Libipsec => "libipsec (userspace ESP over TUN, UDP 4500)",
        })
    }
}

impl VpnPlan {
    /// How reports name the tunnel: `tunnel src<->dst (host-to-host)`.
    pub fn label(&self) -> String {
        format!("tunnel {}<->{} ({})", self.ends[0].name, self.ends[1].name, self.mode)
    }

    /// The outer and protected addresses the ping burst of verification uses: from the first
    /// host to the second host, which both modes protect.
    pub fn is_end(&self, container: &str) -> bool {
        self.ends.iter().any(|e| e.container == container)
    }

    /// The hosts' addresses the ping burst of verification runs between, in the tunnel's
    /// family: the IPv6 ones when the ends are IPv6 (the counting chain then counts ICMPv6).
    pub fn burst_addresses(&self, plan: &Plan) -> Option<(IpAddr, IpAddr)> {
        let (a, b) = (plan.hosts.first()?, plan.hosts.get(1)?);
        match (self.ends[0].outer, plan.ipv6.as_ref()) {
            (IpAddr::V6(_), Some(six)) => Some((IpAddr::V6(six.hosts.first()?.address), IpAddr::V6(six.hosts.get(1)?.address))),
            _ => Some((IpAddr::V4(a.address), IpAddr::V4(b.address))),
        }
    }
}

/// The tunnel of a spec with a `vpn:` block, over the built plan (hosts and LANs known, and
/// the IPv6 twin of an IPv6-only path, whose tunnel runs between the IPv6 addresses).
pub fn plan(vpn: &VpnSpec, plan: &Plan) -> Option<VpnPlan> {
    let (a, b) = (plan.hosts.first()?, plan.hosts.get(1)?);
    let six = plan.ipv6.as_ref().filter(|s| !s.ipv4);
    let lan = |h: &super::HostPlan| -> Option<IpNet> {
        let n = plan.networks.iter().find(|n| n.name == h.network)?;
        match six {
            Some(six) => six.networks.get(&n.name).map(|p| IpNet::V6(*p)),
            None => Some(IpNet::V4(n.subnet)),
        }
    };
    let host_addr = |i: usize, h: &super::HostPlan| -> Option<IpAddr> {
        match six {
            Some(six) => six.hosts.get(i).map(|h6| IpAddr::V6(h6.address)),
            None => Some(IpAddr::V4(h.address)),
        }
    };
    let loopback = |r: &super::RouterPlan| -> Option<IpAddr> {
        match six {
            Some(six) => six.routers.iter().find(|r6| r6.name == r.name).map(|r6| IpAddr::V6(r6.loopback.addr())),
            None => Some(IpAddr::V4(r.loopback.addr())),
        }
    };
    let ends = match vpn.mode {
        VpnMode::HostToHost => {
            let (aa, ba) = (host_addr(0, a)?, host_addr(1, b)?);
            [end_addresses(&a.name, &a.container, &a.node, aa, vec![IpNet::from(aa)]), end_addresses(&b.name, &b.container, &b.node, ba, vec![IpNet::from(ba)])]
        }
        VpnMode::SiteToSite => {
            let (ra, rb) = (plan.router(plan.path.first()?)?, plan.router(plan.path.last()?)?);
            [
                end_addresses(&ra.name, &ra.container, &ra.node, loopback(ra)?, vec![lan(a)?]),
                end_addresses(&rb.name, &rb.container, &rb.node, loopback(rb)?, vec![lan(b)?]),
            ]
        }
    };
    let transit = match vpn.mode {
        VpnMode::HostToHost => plan.path.clone(),
        VpnMode::SiteToSite => plan.path[1..plan.path.len().saturating_sub(1).max(1)].to_vec(),
    };
    Some(VpnPlan { mode: vpn.mode, auth: vpn.auth, name: "vte".to_string(), ends, transit, engine: None })
}

/// One end with its outer address and protected prefixes, of one family.
fn end_addresses(name: &str, container: &str, node: &str, outer: IpAddr, protected: Vec<IpNet>) -> VpnEndPlan {
    VpnEndPlan { name: name.to_string(), container: container.to_string(), node: node.to_string(), outer, protected }
}

/// The traceroutes a tunnelled path can still be held to. Inside the tunnel the transit
/// routers are invisible (they only forward the outer packets, which the ESP counters of
/// verification follow instead), so: host-to-host traces toward the far edge router's LAN
/// address, which is outside the protected /32s and shows every planned hop; site-to-site
/// keeps none (every host-to-LAN trace enters the tunnel at the first hop).
pub fn plain_traceroutes(plan: &Plan, vpn: &VpnPlan) -> Vec<TracerouteExpectation> {
    match vpn.mode {
        VpnMode::SiteToSite => Vec::new(),
        VpnMode::HostToHost => plan
            .expectations
            .traceroutes
            .iter()
            .filter_map(|t| {
                let far = plan.host(&t.to)?;
                let mut hops: Vec<Ipv4Addr> = t.hops[..t.hops.len().saturating_sub(2)].to_vec();
                hops.push(far.gateway);
                Some(TracerouteExpectation { from: t.from.clone(), to: t.to.clone(), target: far.gateway, hops, rtt_us: Vec::new() })
            })
            .collect(),
    }
}
