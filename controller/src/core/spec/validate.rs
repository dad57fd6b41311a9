//! `validate`: every problem of a parsed spec, each with its location, in document order.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// Every problem in a parsed spec, in document order. Empty means valid.
pub fn validate(spec: &PathSpec) -> Vec<Problem> {
    let mut p = Vec::new();
    if let Some(m) = name_problem(&spec.name) {
        p.push(Problem::new("name", m));
    }
    let asns = routers_and_hosts(spec, &mut p);
    asn_base(spec, asns, &mut p);
    let known: BTreeSet<&str> = spec.routers.iter().map(|r| r.name.as_str()).collect();
    let pairs = links(spec, &known, &mut p);
    path(spec, &known, &pairs, &mut p);
    l2vpn_and_wiring(spec, &mut p);
    attachments(spec, &mut p);
    pools(spec, &mut p);
    bgp(&spec.bgp, &mut p);
    distance(spec, &pairs, &mut p);
    schedule::resolve(spec, &mut p);
    vpn::validate(spec, &mut p);
    container_limits(spec, &mut p);
    ipv6::validate(spec, &mut p);
    p
}

/// Top-level and per-router limits within the agent's bounds.
fn container_limits(spec: &PathSpec, p: &mut Vec<Problem>) {
    let top = limits::resolve("limits", spec.limits.as_ref(), Limits::default(), p);
    for (i, r) in spec.routers.iter().enumerate() {
        limits::resolve(&format!("routers[{i}].limits"), r.limits.as_ref(), top, p);
    }
}

/// Router and host names (one namespace: container names), explicit ASNs and nodes.
/// Returns how many distinct explicit ASNs there are.
fn routers_and_hosts(spec: &PathSpec, p: &mut Vec<Problem>) -> usize {
    if spec.routers.is_empty() {
        p.push(Problem::new("routers", "at least one router is required"));
    }
    if spec.routers.len() > MAX_ROUTERS {
        p.push(Problem::new("routers", format!("{} routers; at most {MAX_ROUTERS} allowed", spec.routers.len())));
    }
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    let mut asns: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, r) in spec.routers.iter().enumerate() {
        let loc = format!("routers[{i}]");
        if let Some(m) = name_problem(&r.name) {
            p.push(Problem::new(format!("{loc}.name"), m));
        } else if let Some(first) = seen.get(r.name.as_str()) {
            p.push(Problem::new(format!("{loc}.name"), format!("duplicate name '{}' (first used at {first})", r.name)));
        } else {
            seen.insert(&r.name, format!("{loc}.name"));
        }
        if let Some(asn) = r.asn {
            if asn_reserved(asn) {
                p.push(Problem::new(format!("{loc}.asn"), format!("{asn} is a reserved ASN")));
            } else if let Some(first) = asns.get(&asn) {
                p.push(Problem::new(format!("{loc}.asn"), format!("duplicate ASN {asn} (also routers[{first}].asn)")));
            } else {
                asns.insert(asn, i);
            }
        }
        match (&r.node, spec.placement) {
            (Some(n), _) => {
                if let Some(m) = name_problem(n) {
                    p.push(Problem::new(format!("{loc}.node"), m));
                }
            }
            (None, Placement::Explicit) => p.push(Problem::new(format!("{loc}.node"), "required with placement: explicit")),
            (None, _) => {}
        }
    }
    for (field, host) in spec.hosts.sides().map(|(f, h)| (f, &h.name)) {
        if let Some(m) = name_problem(host) {
            p.push(Problem::new(field, m));
        } else if let Some(first) = seen.get(host.as_str()) {
            p.push(Problem::new(field, format!("duplicate name '{host}' (first used at {first})")));
        } else {
            seen.insert(host, field.to_string());
        }
    }
    asns.len()
}

/// Auto-assigned ASNs count up from the base and must stay assignable.
fn asn_base(spec: &PathSpec, explicit: usize, p: &mut Vec<Problem>) {
    let auto = spec.routers.iter().filter(|r| r.asn.is_none()).count() as u64;
    if asn_reserved(spec.asn_base) {
        p.push(Problem::new("asn_base", format!("{} is a reserved ASN", spec.asn_base)));
    } else if u64::from(spec.asn_base) + auto + explicit as u64 + 2 > u64::from(u32::MAX) {
        p.push(Problem::new("asn_base", format!("{} leaves too few ASNs for {auto} routers", spec.asn_base)));
    }
}

/// Links between known routers, no loops or duplicates, valid passwords. Returns each
/// valid link's (ordered) pair of ends with its index.
fn links(spec: &PathSpec, known: &BTreeSet<&str>, p: &mut Vec<Problem>) -> BTreeMap<(String, String), usize> {
    let known_hint = known_list(&spec.routers);
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    if let Some(explicit) = &spec.links {
        if explicit.is_empty() && spec.routers.len() > 1 {
            p.push(Problem::new("links", "empty: routers need links (omit 'links' for a chain)"));
        }
    }
    for (i, l) in effective_links(spec).iter().enumerate() {
        let loc = format!("links[{i}]");
        let mut ok = true;
        for (end, name) in [("a", &l.a), ("b", &l.b)] {
            if !known.contains(name.as_str()) {
                ok = false;
                p.push(Problem::new(format!("{loc}.{end}"), format!("unknown router '{}' (known: {known_hint})", printable(name))));
            }
        }
        if ok && l.a == l.b {
            p.push(Problem::new(format!("{loc}.b"), format!("link from '{}' to itself", l.a)));
            ok = false;
        }
        if ok {
            let key = ordered_pair(&l.a, &l.b);
            if let Some(first) = pairs.get(&key) {
                p.push(Problem::new(loc.clone(), format!("duplicate link {}-{} (also links[{first}])", l.a, l.b)));
            } else {
                pairs.insert(key, i);
            }
        }
        if let Some(pw) = &l.password {
            if let Some(m) = password_problem(pw) {
                p.push(Problem::new(format!("{loc}.password"), m));
            }
        }
    }
    pairs
}

/// The path: a simple path along existing links.
fn path(spec: &PathSpec, known: &BTreeSet<&str>, pairs: &BTreeMap<(String, String), usize>, p: &mut Vec<Problem>) {
    let known_hint = known_list(&spec.routers);
    let path = effective_path(spec);
    if spec.path.is_some() && path.is_empty() {
        p.push(Problem::new("path", "must name at least one router"));
    }
    if path.len() > MAX_DATA_PLANE_HOPS && spec.verify.is_full() {
        p.push(Problem::new(
            "path",
            format!(
                "{} hops: no IPv4 packet crosses more than {MAX_DATA_PLANE_HOPS} routers (its TTL is 8 bits), so traffic \
                 cannot be verified end to end; `verify: control-plane` (or `--verify control-plane`) creates it and \
                 verifies every hop's BGP table only",
                path.len()
            ),
        ));
    }
    let mut on_path: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, hop) in path.iter().enumerate() {
        let loc = format!("path[{i}]");
        if !known.contains(hop.as_str()) {
            p.push(Problem::new(loc, format!("unknown router '{}' (known: {known_hint})", printable(hop))));
            continue;
        }
        if let Some(first) = on_path.get(hop.as_str()) {
            p.push(Problem::new(loc.clone(), format!("'{hop}' is already hop path[{first}]: a path visits each router once")));
        } else {
            on_path.insert(hop, i);
        }
        if i > 0 {
            let prev = &path[i - 1];
            if known.contains(prev.as_str()) && prev != hop && !pairs.contains_key(&ordered_pair(prev, hop)) {
                p.push(Problem::new(loc, format!("no link between '{prev}' and '{hop}'")));
            }
        }
    }
}

fn l2vpn_and_wiring(spec: &PathSpec, p: &mut Vec<Problem>) {
    match (spec.l2vpn, spec.vni) {
        (L2vpnMode::None, Some(_)) => p.push(Problem::new("vni", "only used with l2vpn: evpn")),
        (_, Some(v)) if v == 0 || v > 16_777_215 => p.push(Problem::new("vni", format!("{v} is not a VXLAN VNI (1..16777215)"))),
        _ => {}
    }
    if spec.wiring == Some(Wiring::Direct) {
        for (i, r) in spec.routers.iter().enumerate() {
            if r.kind == RouterKind::Vyos {
                p.push(Problem::new(format!("routers[{i}].kind"), "VyOS routers configure their interfaces at boot and need `wiring: docker`"));
            }
        }
    }
}

/// Hosts attached to a LAN of their node: a plain interface name, and an L3 path (with EVPN
/// the hosts' LANs are one bridged segment across the path).
fn attachments(spec: &PathSpec, p: &mut Vec<Problem>) {
    for (field, host) in spec.hosts.sides() {
        let Some(a) = &host.attach else { continue };
        if let Some(m) = ifname_problem(&a.macvlan) {
            p.push(Problem::new(format!("{field}.attach.macvlan"), m));
        }
        if spec.l2vpn == L2vpnMode::Evpn {
            p.push(Problem::new(
                format!("{field}.attach"),
                "not with l2vpn: evpn (an attached LAN is routed into the path, the EVPN LANs are bridged across it)",
            ));
        }
    }
}

/// LANs a spec takes from `pools.lans`: one per experiment host, the EVPN subnet, one per
/// attached LAN.
pub(crate) fn lan_count(spec: &PathSpec) -> u64 {
    let evpn = u64::from(spec.l2vpn == L2vpnMode::Evpn);
    let attached = spec.hosts.sides().iter().filter(|(_, h)| h.attach.is_some()).count() as u64;
    2 + evpn + attached
}

/// Pools: large enough, IPv4 prefixes that do not overlap.
fn pools(spec: &PathSpec, p: &mut Vec<Problem>) {
    let n_links = effective_links(spec).len() as u64;
    let n_lans = lan_count(spec);
    let pools = [
        ("pools.links", spec.pools.links, 29u8, n_links, "links"),
        ("pools.loopbacks", spec.pools.loopbacks, 32, spec.routers.len() as u64, "loopbacks"),
        ("pools.lans", spec.pools.lans, 24, n_lans, "LANs"),
    ];
    for (loc, net, each, need, what) in pools {
        let have = if net.prefix_len() > each { 0 } else { 1u64 << (each - net.prefix_len()) };
        // Loopbacks skip the network's .0; keep one spare.
        let have = if each == 32 { have.saturating_sub(1) } else { have };
        if have < need {
            p.push(Problem::new(loc, format!("{net} holds {have} /{each} {what}; this path needs {need}")));
        }
        if net.network() != net.addr() {
            p.push(Problem::new(loc, format!("{net} has host bits set (did you mean {}?)", net.trunc())));
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

/// Delays, jitter, loss and rate on links, the latency budget and the tolerances: each
/// value parses with its unit and range, delays need links vnet-te makes itself, and the
/// budget covers the delays the path's links already have.
fn distance(spec: &PathSpec, pairs: &BTreeMap<(String, String), usize>, p: &mut Vec<Problem>) {
    use super::distance::{duration, percent, resolve};
    let mut any = false;
    if let Some(d) = &spec.link_defaults {
        resolve("link_defaults", d, p);
        any |= !d.is_empty();
    }
    let mut fixed_us = 0;
    let on_path: BTreeSet<(String, String)> = effective_path(spec).windows(2).map(|w| ordered_pair(&w[0], &w[1])).collect();
    for (i, l) in spec.links.iter().flatten().enumerate() {
        let loc = format!("links[{i}]");
        let own = resolve(&loc, &l.impair(), p);
        any |= !l.impair().is_empty();
        let mut path_delay = own.delay_us;
        for (side, s) in [("from_a", &l.from_a), ("from_b", &l.from_b)] {
            if let Some(s) = s {
                let d = resolve(&format!("{loc}.{side}"), s, p);
                any |= !s.is_empty();
                if s.delay.is_some() {
                    path_delay = path_delay.max(d.delay_us);
                }
            }
        }
        if on_path.contains(&ordered_pair(&l.a, &l.b)) && pairs.contains_key(&ordered_pair(&l.a, &l.b)) {
            fixed_us += path_delay;
        }
    }
    if let Some(budget) = &spec.latency {
        any = true;
        let us = duration("latency.one_way", &budget.one_way, p);
        if effective_path(spec).len() < 2 {
            p.push(Problem::new("latency", "a path of one router has no links to spread a budget over"));
        } else if us < fixed_us {
            p.push(Problem::new(
                "latency.one_way",
                format!("{} is less than the delays the path's links already have ({} ms)", budget.one_way.0, fixed_us as f64 / 1000.0),
            ));
        }
    }
    if let Some(t) = &spec.tolerance {
        duration("tolerance.absolute", &t.absolute, p);
        percent("tolerance.relative", &t.relative, p);
    }
    any |= spec.schedule.is_some() || spec.contact_plan.is_some();
    if any && spec.wiring() == Wiring::Docker {
        p.push(Problem::new("wiring", "delays, loss and rates are applied on links vnet-te makes itself: they need `wiring: direct` (and FRR routers)"));
    }
}

/// BGP timers and the default password.
fn bgp(b: &BgpSpec, p: &mut Vec<Problem>) {
    if b.hold != 0 && b.hold < 3 {
        p.push(Problem::new("bgp.hold", format!("{} s: must be 0 or at least 3", b.hold)));
    }
    if b.keepalive == 0 || (b.hold != 0 && b.keepalive > b.hold / 3) {
        p.push(Problem::new("bgp.keepalive", format!("{} s: must be at least 1 and at most a third of hold ({} s)", b.keepalive, b.hold)));
    }
    if b.connect_retry == 0 {
        p.push(Problem::new("bgp.connect_retry", "must be at least 1 second"));
    }
    if let Some(pw) = &b.password {
        if let Some(m) = password_problem(pw) {
            p.push(Problem::new("bgp.password", m));
        }
    }
}

fn ordered_pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

fn known_list(routers: &[RouterSpec]) -> String {
    let mut seen = BTreeSet::new();
    let names: Vec<&str> = routers.iter().map(|r| r.name.as_str()).filter(|n| seen.insert(*n)).collect();
    if names.len() <= 6 {
        names.join(", ")
    } else {
        format!("{}, ... {} ({} routers)", names[..3].join(", "), names[names.len() - 1], names.len())
    }
}
