//! The `vpn:` block: an IPsec tunnel (strongSwan IKEv2) between the path's ends, whose outer
//! packets cross the forced path. `host-to-host` joins the two experiment hosts;
//! `site-to-site` joins the two edge routers, protecting the hosts' LANs.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{effective_path, PathSpec, Problem, RouterKind};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VpnSpec {
    pub mode: VpnMode,
    #[serde(default)]
    pub auth: VpnAuth,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum VpnMode {
    /// Between the two experiment hosts: each host's own address is protected.
    HostToHost,
    /// Between the two edge routers (first and last hop): the two host LANs are protected.
    SiteToSite,
}

impl fmt::Display for VpnMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VpnMode::HostToHost => "host-to-host",
            VpnMode::SiteToSite => "site-to-site",
        })
    }
}

/// How the two ends authenticate each other.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum VpnAuth {
    /// A pre-shared key per path, generated at create and kept on the controller's side.
    #[default]
    Psk,
}

impl fmt::Display for VpnAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VpnAuth::Psk => "psk",
        })
    }
}

/// Problems of a spec's `vpn:` block against the rest of the spec.
pub(super) fn validate(spec: &PathSpec, p: &mut Vec<Problem>) {
    let Some(vpn) = &spec.vpn else { return };
    let path = effective_path(spec);
    if !spec.verify.is_full() {
        p.push(Problem::new("vpn", "needs `verify: full`: the tunnel is proven with traffic between the hosts"));
    }
    if spec.l2vpn != super::L2vpnMode::None {
        p.push(Problem::new("vpn", "cannot be combined with l2vpn: evpn (the hosts share one subnet there)"));
    }
    if spec.has_ipv6() && spec.has_ipv4() {
        // One family per tunnel: IKE and ESP run between addresses of one family, and a
        // dual-stack path would carry the other family's traffic past the transit routers in
        // clear beside the tunnel.
        p.push(Problem::new("vpn", "tunnels one family: on a path with a vpn, `family` is [ipv4] or [ipv6], not both"));
    }
    for (loc, h) in spec.hosts.sides() {
        if h.attach.is_some() {
            p.push(Problem::new(format!("{loc}.attach"), "a host attached to a LAN of its node cannot be a VPN end"));
        }
    }
    let first_last = [path.first(), path.last()];
    match vpn.mode {
        VpnMode::HostToHost => {}
        VpnMode::SiteToSite => {
            // The two edge routers terminate the tunnel; at least one router between them
            // carries it (and shows that it is encrypted).
            if path.len() < 3 {
                p.push(Problem::new(
                    "vpn.mode",
                    format!("site-to-site needs a path of at least 3 hops (two edge routers and a transit router), not {}", path.len()),
                ));
            }
            for (i, hop) in [0, path.len().saturating_sub(1)].into_iter().zip(first_last) {
                let Some(hop) = hop else { continue };
                if let Some(r) = spec.routers.iter().find(|r| &r.name == hop) {
                    if r.kind == RouterKind::Vyos {
                        p.push(Problem::new(
                            format!("path[{i}]"),
                            format!("'{hop}' is a VyOS router: site-to-site IPsec is rendered for FRR edge routers only"),
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::spec::{parse_yaml, validate, SpecError};

    /// The problems `parse_yaml` (which validates) refuses a spec with.
    fn problems(yaml: &str) -> Vec<String> {
        match parse_yaml("t.yaml", yaml) {
            Ok(_) => Vec::new(),
            Err(SpecError::Invalid { problems, .. }) => problems.into_iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn both_modes_parse_and_psk_is_the_default() {
        let s = parse_yaml("t.yaml", "name: t\nrouters: [{name: r1}, {name: r2}, {name: r3}]\nvpn: { mode: site-to-site }\n").unwrap();
        assert_eq!(s.vpn.as_ref().unwrap().auth, super::VpnAuth::Psk);
        assert!(validate(&s).is_empty());
        let s = parse_yaml("t.yaml", "name: t\nrouters: [{name: r1}]\nvpn: { mode: host-to-host, auth: psk }\n").unwrap();
        assert!(validate(&s).is_empty());
    }

    #[test]
    fn unknown_modes_and_keys_are_refused_with_their_place() {
        let e = parse_yaml("t.yaml", "name: t\nrouters: [{name: r1}]\nvpn: { mode: tunnel }\n").unwrap_err().to_string();
        assert!(e.contains("vpn.mode") || e.contains("unknown variant `tunnel`"), "{e}");
        let e = parse_yaml("t.yaml", "name: t\nrouters: [{name: r1}]\nvpn: { mode: host-to-host, cipher: x }\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `cipher`"), "{e}");
    }

    #[test]
    fn site_to_site_needs_a_transit_router_and_frr_edges() {
        let p = problems("name: t\nrouters: [{name: r1}, {name: r2}]\nvpn: { mode: site-to-site }\n");
        assert_eq!(p, ["vpn.mode: site-to-site needs a path of at least 3 hops (two edge routers and a transit router), not 2"]);
        let p = problems("name: t\nrouters: [{name: r1, kind: vyos}, {name: r2}, {name: r3}]\nvpn: { mode: site-to-site }\n");
        assert_eq!(p, ["path[0]: 'r1' is a VyOS router: site-to-site IPsec is rendered for FRR edge routers only"]);
    }

    #[test]
    fn evpn_control_plane_and_attached_hosts_are_refused() {
        let p = problems(
            "name: t\nrouters: [{name: r1}, {name: r2}]\nl2vpn: evpn\nverify: control-plane\nhosts: { a: { name: s, attach: { macvlan: eth1 } }, b: d }\nvpn: { mode: host-to-host }\n",
        );
        assert!(p.iter().any(|m| m.starts_with("vpn: needs `verify: full`")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("vpn: cannot be combined with l2vpn")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("hosts.a.attach: a host attached")), "{p:?}");
    }

    #[test]
    fn ipv6_only_and_ipv4_only_paths_are_accepted_and_dual_stack_is_refused() {
        let with = |family: &str, mode: &str| {
            problems(&format!("name: t\nrouters: [{{name: r1}}, {{name: r2}}, {{name: r3}}]\nfamily: {family}\nvpn: {{ mode: {mode} }}\n"))
        };
        for mode in ["host-to-host", "site-to-site"] {
            assert_eq!(with("[ipv4, ipv6]", mode), ["vpn: tunnels one family: on a path with a vpn, `family` is [ipv4] or [ipv6], not both"], "{mode}");
            assert!(with("[ipv6]", mode).is_empty(), "{mode}");
            assert!(with("[ipv4]", mode).is_empty(), "{mode}");
        }
    }
}
