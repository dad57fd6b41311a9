//! IPv6 in a spec: the `family` key, the IPv6 pools and what IPv6 does not combine with.

use std::fmt;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use super::{effective_links, lan_count, L2vpnMode, PathSpec, Problem, RouterKind, Wiring};

/// An address family a path carries (BGP sessions, TE policy, verification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        })
    }
}

/// One /48 of the unique local space (RFC 4193) for every path, split in three.
pub const DEFAULT_LOOPBACKS6: &str = "fd7e:7e00:0:1::/64";
pub const DEFAULT_LINKS6: &str = "fd7e:7e00:0:2::/64";
pub const DEFAULT_LANS6: &str = "fd7e:7e00:0:100::/56";
/// Prefix lengths taken from each pool: RFC 6164 point-to-point links, host loopbacks, LANs.
pub const LINK6_LEN: u8 = 127;
pub const LOOPBACK6_LEN: u8 = 128;
pub const LAN6_LEN: u8 = 64;

impl PathSpec {
    /// Whether the path carries IPv4 (absent `family`: IPv4 only).
    pub fn has_ipv4(&self) -> bool {
        self.family.as_ref().is_none_or(|f| f.contains(&Family::Ipv4))
    }

    /// Whether the path carries IPv6.
    pub fn has_ipv6(&self) -> bool {
        self.family.as_ref().is_some_and(|f| f.contains(&Family::Ipv6))
    }

    /// The IPv6 pools in effect: links, loopbacks, LANs.
    pub fn pools6(&self) -> (Ipv6Net, Ipv6Net, Ipv6Net) {
        let d = |s: &str| s.parse::<Ipv6Net>().expect("valid literal");
        (
            self.pools.links6.unwrap_or_else(|| d(DEFAULT_LINKS6)),
            self.pools.loopbacks6.unwrap_or_else(|| d(DEFAULT_LOOPBACKS6)),
            self.pools.lans6.unwrap_or_else(|| d(DEFAULT_LANS6)),
        )
    }
}

/// Parses `--family ipv4,ipv6` (the CLI's form of the key).
pub fn parse_families(text: &str) -> Result<Vec<Family>, String> {
    text.split(',')
        .map(|w| match w.trim() {
            "ipv4" => Ok(Family::Ipv4),
            "ipv6" => Ok(Family::Ipv6),
            other => Err(format!("unknown family '{other}' (known: ipv4, ipv6)")),
        })
        .collect()
}

/// `family` not empty and without repeats; with IPv6, pools that are unique local, aligned,
/// large enough and apart, and none of what IPv6 is not made for here.
pub(super) fn validate(spec: &PathSpec, p: &mut Vec<Problem>) {
    if let Some(f) = &spec.family {
        if f.is_empty() {
            p.push(Problem::new("family", "at least one of ipv4, ipv6 is required"));
        }
        for (i, fam) in f.iter().enumerate() {
            if f[..i].contains(fam) {
                p.push(Problem::new(format!("family[{i}]"), format!("{fam} is listed twice")));
            }
        }
    }
    let given = [("pools.links6", spec.pools.links6), ("pools.loopbacks6", spec.pools.loopbacks6), ("pools.lans6", spec.pools.lans6)];
    if !spec.has_ipv6() {
        for (loc, net) in given {
            if net.is_some() {
                p.push(Problem::new(loc, "only used with ipv6 in `family`"));
            }
        }
        return;
    }
    pools(spec, p);
    combinations(spec, p);
}

fn pools(spec: &PathSpec, p: &mut Vec<Problem>) {
    let (links, loopbacks, lans) = spec.pools6();
    let ula: Ipv6Net = "fc00::/7".parse().expect("valid literal");
    let pools = [
        ("pools.links6", links, LINK6_LEN, effective_links(spec).len() as u128, "links"),
        // Loopbacks skip the pool's first address, as the IPv4 ones skip .0.
        ("pools.loopbacks6", loopbacks, LOOPBACK6_LEN, spec.routers.len() as u128 + 1, "loopbacks"),
        ("pools.lans6", lans, LAN6_LEN, lan_count(spec) as u128, "LANs"),
    ];
    for (loc, net, each, need, what) in pools {
        if !ula.contains(&net) {
            p.push(Problem::new(loc, format!("{net} is not unique local address space (fc00::/7)")));
        }
        if net.network() != net.addr() {
            p.push(Problem::new(loc, format!("{net} has host bits set (did you mean {}?)", net.trunc())));
        }
        let have = if net.prefix_len() > each { 0 } else { 1u128.checked_shl(u32::from(each - net.prefix_len())).unwrap_or(u128::MAX) };
        if have < need {
            let need = if each == LOOPBACK6_LEN { need - 1 } else { need };
            let have = if each == LOOPBACK6_LEN { have.saturating_sub(1) } else { have };
            p.push(Problem::new(loc, format!("{net} holds {have} /{each} {what}; this path needs {need}")));
        }
    }
    for (i, (la, a, ..)) in pools.iter().enumerate() {
        for (lb, b, ..) in pools.iter().skip(i + 1) {
            if a.contains(b) || b.contains(a) {
                p.push(Problem::new(*lb, format!("{b} overlaps {la} ({a})")));
            }
        }
    }
}

/// What IPv6 does not combine with: each refused with the reason rather than left
/// unprotected or unverified.
fn combinations(spec: &PathSpec, p: &mut Vec<Problem>) {
    if spec.wiring() == Wiring::Docker {
        p.push(Problem::new("wiring", "ipv6 needs `wiring: direct` (Docker networks are made IPv4-only)"));
    }
    for (i, r) in spec.routers.iter().enumerate() {
        if r.kind == RouterKind::Vyos {
            p.push(Problem::new(format!("routers[{i}].kind"), "ipv6 is rendered for FRR routers only"));
        }
    }
    if spec.l2vpn == L2vpnMode::Evpn {
        p.push(Problem::new("l2vpn", "evpn over ipv6 is not supported (VTEPs are IPv4 loopbacks)"));
    }
    for (field, h) in spec.hosts.sides() {
        if h.attach.is_some() {
            p.push(Problem::new(format!("{field}.attach"), "not with ipv6 (an attached LAN is IPv4 only)"));
        }
    }
    let delay_lines = "not with ipv6: the delay lines queue IPv4 packets only, so IPv6 traffic would pass undelayed";
    if spec.link_defaults.is_some() {
        p.push(Problem::new("link_defaults", delay_lines));
    }
    if spec.latency.is_some() {
        p.push(Problem::new("latency", delay_lines));
    }
    if spec.schedule.is_some() {
        p.push(Problem::new("schedule", delay_lines));
    }
    if spec.contact_plan.is_some() {
        p.push(Problem::new("contact_plan", delay_lines));
    }
    for (i, l) in spec.links.iter().flatten().enumerate() {
        if !l.impair().is_empty() || l.from_a.is_some() || l.from_b.is_some() {
            p.push(Problem::new(format!("links[{i}]"), delay_lines));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::parse_yaml;

    fn problems(yaml: &str) -> Vec<String> {
        match parse_yaml("t.yaml", yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn families_default_to_ipv4_and_are_checked() {
        let s = parse_yaml("t.yaml", "name: t\nrouters: [{name: r1}]\n").unwrap();
        assert!(s.has_ipv4() && !s.has_ipv6());
        assert!(problems("name: t\nrouters: [{name: r1}]\nfamily: [ipv6, ipv4]\n").is_empty());
        let p = problems("name: t\nrouters: [{name: r1}]\nfamily: []\n");
        assert!(p[0].starts_with("family: at least one"), "{p:?}");
        let p = problems("name: t\nrouters: [{name: r1}]\nfamily: [ipv6, ipv6]\n");
        assert!(p[0].starts_with("family[1]: ipv6 is listed twice"), "{p:?}");
        assert_eq!(parse_families("ipv4,ipv6"), Ok(vec![Family::Ipv4, Family::Ipv6]));
        assert!(parse_families("ipv5").is_err());
    }

    #[test]
    fn pools_are_unique_local_aligned_large_enough_and_apart() {
        let p = problems(
            "name: t\nrouters: [{name: r1}, {name: r2}, {name: r3}]\nfamily: [ipv6]\n\
             pools: { links6: 'fd00::/127', loopbacks6: '2001:db8::/64', lans6: 'fd00::1/56' }\n",
        );
        let joined = p.join("\n");
        assert!(joined.contains("pools.links6: fd00::/127 holds 1 /127 links; this path needs 2"), "{joined}");
        assert!(joined.contains("pools.loopbacks6: 2001:db8::/64 is not unique local"), "{joined}");
        assert!(joined.contains("pools.lans6: fd00::1/56 has host bits set"), "{joined}");
        assert!(joined.contains("pools.lans6: fd00::1/56 overlaps pools.links6"), "{joined}");
        let p = problems("name: t\nrouters: [{name: r1}]\npools: { links6: 'fd00::/64' }\n");
        assert_eq!(p, ["pools.links6: only used with ipv6 in `family`"]);
    }

    #[test]
    fn what_ipv6_does_not_combine_with_is_refused() {
        let p = problems("name: t\nrouters: [{name: r1}, {name: r2, kind: vyos}]\nfamily: [ipv4, ipv6]\nl2vpn: evpn\nlink_defaults: { delay: 5ms }\n");
        let joined = p.join("\n");
        for want in ["wiring: ipv6 needs", "routers[1].kind: ipv6 is rendered for FRR", "l2vpn: evpn over ipv6", "link_defaults: not with ipv6"] {
            assert!(joined.contains(want), "{want} in {joined}");
        }
    }
}
