//! Path specs: what the user asks for, exactly as written.
//!
//! A `PathSpec` is raw user input. It is parsed strictly (unknown keys are errors, with the
//! line and column serde reports) and then validated as a whole: `validate` returns *every*
//! problem it finds, each with a location such as `links[3].b`, so a user fixes a spec in one
//! round. Nothing here knows about nodes, Docker or addresses already in use: that is the
//! planner's job (`plan::build`), which turns a valid spec plus an inventory into a `Plan`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Largest number of routers (and so hops) a spec may ask for. Bounded by the /29 link pool
/// (8192 links in a /16), by ASNs from the default base, and by what one swarm can hold; 2000
/// keeps every default pool comfortably large enough.
pub const MAX_ROUTERS: usize = 2000;
/// Names end up in container names (`vte-<path>-<router>`), hostnames and Linux bridge
/// names; 20 characters keeps all of them within Docker's and Linux's limits.
pub const MAX_NAME_LEN: usize = 20;
/// Linux TCP-MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
pub const MAX_PASSWORD_LEN: usize = 80;
pub const DEFAULT_ASN_BASE: u32 = 4_200_000_001;
pub const DEFAULT_VNI: u32 = 100;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    /// Path name: `[a-z0-9-]`, used in every Docker object name and label.
    pub name: String,
    /// Routers, one BGP AS each. Order matters: the default path is this order.
    pub routers: Vec<RouterSpec>,
    /// Links between routers. Absent: a chain in router order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<LinkSpec>>,
    /// The ordered hops traffic is forced through. Absent: all routers in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<String>>,
    /// Names of the two experiment hosts at the ends of the path.
    #[serde(default)]
    pub hosts: HostsSpec,
    #[serde(default)]
    pub l2vpn: L2vpnMode,
    /// VXLAN network identifier for `l2vpn: evpn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    #[serde(default)]
    pub pools: PoolsSpec,
    /// First ASN handed to routers without an explicit one.
    #[serde(default = "default_asn_base")]
    pub asn_base: u32,
    #[serde(default)]
    pub placement: Placement,
    /// How links are made. Absent: `direct`, or `docker` when the spec has VyOS routers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiring: Option<Wiring>,
    #[serde(default)]
    pub bgp: BgpSpec,
}

fn default_asn_base() -> u32 {
    DEFAULT_ASN_BASE
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    pub name: String,
    #[serde(default)]
    pub kind: RouterKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Pin this router to a node (required for every router with `placement: explicit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum RouterKind {
    #[default]
    Frr,
    Vyos,
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouterKind::Frr => "frr",
            RouterKind::Vyos => "vyos",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub a: String,
    pub b: String,
    /// TCP-MD5 password for this link's BGP session (overrides `bgp.password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostsSpec {
    /// Host behind the first hop of the path.
    #[serde(default = "default_host_a")]
    pub a: String,
    /// Host behind the last hop of the path.
    #[serde(default = "default_host_b")]
    pub b: String,
}

fn default_host_a() -> String {
    "src".into()
}
fn default_host_b() -> String {
    "dst".into()
}

impl Default for HostsSpec {
    fn default() -> Self {
        HostsSpec { a: default_host_a(), b: default_host_b() }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum L2vpnMode {
    #[default]
    None,
    Evpn,
}

/// How links (and experiment LANs) are made.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Wiring {
    /// vnet-te makes each link itself, directly in the two containers' network namespaces:
    /// a veth pair on one node, a point-to-point VXLAN pair between two nodes. No Docker
    /// network, no bridge or iptables rule on the host; links go with their containers.
    #[default]
    Direct,
    /// One Docker network per link (visible in `docker network ls`): an internal bridge on
    /// one node, an attachable internal swarm overlay between nodes.
    Docker,
}

impl fmt::Display for Wiring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wiring::Direct => "direct",
            Wiring::Docker => "docker",
        })
    }
}

impl PathSpec {
    /// The wiring in effect: as given, else `direct` unless a VyOS router needs its
    /// interfaces at boot (`docker`).
    pub fn wiring(&self) -> Wiring {
        self.wiring.unwrap_or(if self.routers.iter().any(|r| r.kind == RouterKind::Vyos) {
            Wiring::Docker
        } else {
            Wiring::Direct
        })
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Round-robin along the path over the nodes: every link crosses hosts when N > 1.
    #[default]
    Spread,
    /// Fill nodes in order, an equal share each: as few cross-host links as possible.
    Pack,
    /// Every router names its node.
    Explicit,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolsSpec {
    /// Point-to-point links: one /29 each.
    #[serde(default = "default_link_pool")]
    pub links: Ipv4Net,
    /// Router loopbacks: one /32 each (also the BGP router-id).
    #[serde(default = "default_loopback_pool")]
    pub loopbacks: Ipv4Net,
    /// Experiment LANs: one /24 each (two, three with EVPN).
    #[serde(default = "default_lan_pool")]
    pub lans: Ipv4Net,
}

fn default_link_pool() -> Ipv4Net {
    "10.199.0.0/16".parse().expect("valid literal")
}
fn default_loopback_pool() -> Ipv4Net {
    "10.255.0.0/16".parse().expect("valid literal")
}
fn default_lan_pool() -> Ipv4Net {
    "10.210.0.0/16".parse().expect("valid literal")
}

impl Default for PoolsSpec {
    fn default() -> Self {
        PoolsSpec {
            links: default_link_pool(),
            loopbacks: default_loopback_pool(),
            lans: default_lan_pool(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BgpSpec {
    /// Seconds. FRR's `datacenter` profile uses 3/9; we default to the same.
    #[serde(default = "default_keepalive")]
    pub keepalive: u16,
    #[serde(default = "default_hold")]
    pub hold: u16,
    /// Seconds between connect attempts. Low, because the first attempt often fails while
    /// the peer's link is still being attached (FRR would otherwise wait 10 s).
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u16,
    /// TCP-MD5 password for every session without a per-link one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

fn default_keepalive() -> u16 {
    3
}
fn default_hold() -> u16 {
    9
}
fn default_connect_retry() -> u16 {
    1
}

impl Default for BgpSpec {
    fn default() -> Self {
        BgpSpec {
            keepalive: default_keepalive(),
            hold: default_hold(),
            connect_retry: default_connect_retry(),
            password: None,
        }
    }
}

/// One problem found in a spec: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

impl Problem {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { location: location.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why a spec was refused. Both variants mean "bad input" (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{source_name}: {}", render_problems(.problems))]
    Invalid { source_name: String, problems: Vec<Problem> },
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = format!("{} problem(s)", problems.len());
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

impl SpecError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            SpecError::Invalid { problems, .. } => problems,
        }
    }
}

/// Parses and validates a YAML spec. `source_name` (a file name) prefixes every message.
pub fn parse_yaml(source_name: &str, text: &str) -> Result<PathSpec, SpecError> {
    let spec: PathSpec = serde_yaml_ng::from_str(text).map_err(|e| {
        let location = match e.location() {
            Some(l) => format!("line {} column {}", l.line(), l.column()),
            None => "document".to_string(),
        };
        // serde_yaml_ng prefixes some messages with the location again; keep one copy.
        let message = strip_location_suffix(&e.to_string());
        SpecError::Invalid {
            source_name: source_name.to_string(),
            problems: vec![Problem::new(location, message)],
        }
    })?;
    let problems = validate(&spec);
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(SpecError::Invalid { source_name: source_name.to_string(), problems })
    }
}

fn strip_location_suffix(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The spec that `--hops N` stands for: a chain of N FRR routers `r1..rN`, each its own AS.
pub fn chain(name: &str, hops: usize) -> Result<PathSpec, SpecError> {
    let mut problems = Vec::new();
    if !(1..=MAX_ROUTERS).contains(&hops) {
        problems.push(Problem::new(
            "--hops",
            format!("must be between 1 and {MAX_ROUTERS}, got {hops}"),
        ));
    }
    let spec = PathSpec {
        name: name.to_string(),
        routers: (1..=hops.min(MAX_ROUTERS))
            .map(|i| RouterSpec { name: format!("r{i}"), kind: RouterKind::Frr, asn: None, node: None })
            .collect(),
        links: None,
        path: None,
        hosts: HostsSpec::default(),
        l2vpn: L2vpnMode::None,
        vni: None,
        pools: PoolsSpec::default(),
        asn_base: DEFAULT_ASN_BASE,
        placement: Placement::Spread,
        wiring: None,
        bgp: BgpSpec::default(),
    };
    if problems.is_empty() {
        problems = validate(&spec);
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(SpecError::Invalid { source_name: "--hops".to_string(), problems })
    }
}

/// ASNs that may never be assigned: 0 and 65535/4294967295 (RFC 7607, RFC 7300) and
/// AS_TRANS 23456 (RFC 6793).
pub fn asn_reserved(asn: u32) -> bool {
    matches!(asn, 0 | 23456 | 65535 | 4_294_967_295)
}

/// Checks a name for use in Docker object names, hostnames and templates.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "'{}' is {} characters long; at most {MAX_NAME_LEN} allowed",
            printable(name),
            name.len()
        ));
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Some(format!("'{}' may contain only a-z, 0-9 and '-'", printable(name)));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("'{}' must not start or end with '-'", printable(name)));
    }
    None
}

fn password_problem(pw: &str) -> Option<String> {
    if pw.is_empty() || pw.len() > MAX_PASSWORD_LEN {
        return Some(format!("must be 1 to {MAX_PASSWORD_LEN} characters long"));
    }
    // Passwords are rendered into router configs: allow no character that a config parser
    // could read as syntax (spaces, quotes, '!', '#', newlines).
    if !pw.chars().all(|c| c.is_ascii_alphanumeric() || "._~+-=@%^*".contains(c)) {
        return Some("may contain only letters, digits and ._~+-=@%^*".into());
    }
    None
}

/// Shows control characters escaped so error messages stay on one line.
fn printable(s: &str) -> String {
    s.escape_default().to_string()
}

/// The links a spec stands for (explicit, or the default chain).
pub fn effective_links(spec: &PathSpec) -> Vec<LinkSpec> {
    match &spec.links {
        Some(l) => l.clone(),
        None => spec
            .routers
            .windows(2)
            .map(|w| LinkSpec { a: w[0].name.clone(), b: w[1].name.clone(), password: None })
            .collect(),
    }
}

/// The hops a spec forces (explicit, or every router in order).
pub fn effective_path(spec: &PathSpec) -> Vec<String> {
    match &spec.path {
        Some(p) => p.clone(),
        None => spec.routers.iter().map(|r| r.name.clone()).collect(),
    }
}

/// Every problem in a parsed spec, in document order. Empty means valid.
pub fn validate(spec: &PathSpec) -> Vec<Problem> {
    let mut p = Vec::new();
    if let Some(m) = name_problem(&spec.name) {
        p.push(Problem::new("name", m));
    }

    // Routers and hosts share one namespace (container names).
    if spec.routers.is_empty() {
        p.push(Problem::new("routers", "at least one router is required"));
    }
    if spec.routers.len() > MAX_ROUTERS {
        p.push(Problem::new(
            "routers",
            format!("{} routers; at most {MAX_ROUTERS} allowed", spec.routers.len()),
        ));
    }
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    let mut asns: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, r) in spec.routers.iter().enumerate() {
        let loc = format!("routers[{i}]");
        if let Some(m) = name_problem(&r.name) {
            p.push(Problem::new(format!("{loc}.name"), m));
        } else if let Some(first) = seen.get(r.name.as_str()) {
            p.push(Problem::new(
                format!("{loc}.name"),
                format!("duplicate name '{}' (first used at {first})", r.name),
            ));
        } else {
            seen.insert(&r.name, format!("{loc}.name"));
        }
        if let Some(asn) = r.asn {
            if asn_reserved(asn) {
                p.push(Problem::new(format!("{loc}.asn"), format!("{asn} is a reserved ASN")));
            } else if let Some(first) = asns.get(&asn) {
                p.push(Problem::new(
                    format!("{loc}.asn"),
                    format!("duplicate ASN {asn} (also routers[{first}].asn)"),
                ));
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
            (None, Placement::Explicit) => p.push(Problem::new(
                format!("{loc}.node"),
                "required with placement: explicit",
            )),
            (None, _) => {}
        }
    }
    for (field, host) in [("hosts.a", &spec.hosts.a), ("hosts.b", &spec.hosts.b)] {
        if let Some(m) = name_problem(host) {
            p.push(Problem::new(field, m));
        } else if let Some(first) = seen.get(host.as_str()) {
            p.push(Problem::new(field, format!("duplicate name '{host}' (first used at {first})")));
        } else {
            seen.insert(host, field.to_string());
        }
    }

    // ASN base: auto-assigned ASNs count up from it and must stay assignable.
    let auto = spec.routers.iter().filter(|r| r.asn.is_none()).count() as u64;
    if asn_reserved(spec.asn_base) {
        p.push(Problem::new("asn_base", format!("{} is a reserved ASN", spec.asn_base)));
    } else if u64::from(spec.asn_base) + auto + asns.len() as u64 + 2 > u64::from(u32::MAX) {
        p.push(Problem::new(
            "asn_base",
            format!("{} leaves too few ASNs for {auto} routers", spec.asn_base),
        ));
    }

    let known: BTreeSet<&str> = spec.routers.iter().map(|r| r.name.as_str()).collect();
    let known_hint = known_list(&spec.routers);

    // Links.
    let links = effective_links(spec);
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    if let Some(explicit) = &spec.links {
        if explicit.is_empty() && spec.routers.len() > 1 {
            p.push(Problem::new("links", "empty: routers need links (omit 'links' for a chain)"));
        }
    }
    for (i, l) in links.iter().enumerate() {
        let loc = format!("links[{i}]");
        let mut ok = true;
        for (end, name) in [("a", &l.a), ("b", &l.b)] {
            if !known.contains(name.as_str()) {
                ok = false;
                p.push(Problem::new(
                    format!("{loc}.{end}"),
                    format!("unknown router '{}' (known: {known_hint})", printable(name)),
                ));
            }
        }
        if ok && l.a == l.b {
            p.push(Problem::new(format!("{loc}.b"), format!("link from '{}' to itself", l.a)));
            ok = false;
        }
        if ok {
            let key = ordered_pair(&l.a, &l.b);
            if let Some(first) = pairs.get(&key) {
                p.push(Problem::new(
                    loc.clone(),
                    format!("duplicate link {}-{} (also links[{first}])", l.a, l.b),
                ));
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

    // Path: a simple path along existing links.
    let path = effective_path(spec);
    if spec.path.is_some() && path.is_empty() {
        p.push(Problem::new("path", "must name at least one router"));
    }
    let mut on_path: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, hop) in path.iter().enumerate() {
        let loc = format!("path[{i}]");
        if !known.contains(hop.as_str()) {
            p.push(Problem::new(
                loc,
                format!("unknown router '{}' (known: {known_hint})", printable(hop)),
            ));
            continue;
        }
        if let Some(first) = on_path.get(hop.as_str()) {
            p.push(Problem::new(
                loc.clone(),
                format!("'{hop}' is already hop path[{first}]: a path visits each router once"),
            ));
        } else {
            on_path.insert(hop, i);
        }
        if i > 0 {
            let prev = &path[i - 1];
            if known.contains(prev.as_str())
                && prev != hop
                && !pairs.contains_key(&ordered_pair(prev, hop))
            {
                p.push(Problem::new(loc, format!("no link between '{prev}' and '{hop}'")));
            }
        }
    }

    // L2VPN.
    match (spec.l2vpn, spec.vni) {
        (L2vpnMode::None, Some(_)) => p.push(Problem::new("vni", "only used with l2vpn: evpn")),
        (_, Some(v)) if v == 0 || v > 16_777_215 => {
            p.push(Problem::new("vni", format!("{v} is not a VXLAN VNI (1..16777215)")))
        }
        _ => {}
    }

    if spec.wiring == Some(Wiring::Direct) {
        for (i, r) in spec.routers.iter().enumerate() {
            if r.kind == RouterKind::Vyos {
                p.push(Problem::new(
                    format!("routers[{i}].kind"),
                    "VyOS routers configure their interfaces at boot and need `wiring: docker`",
                ));
            }
        }
    }

    // Pools: large enough, IPv4 prefixes that do not overlap.
    let n_links = links.len() as u64;
    let n_lans = if spec.l2vpn == L2vpnMode::Evpn { 3 } else { 2 };
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
            p.push(Problem::new(
                loc,
                format!("{net} holds {have} /{each} {what}; this path needs {need}"),
            ));
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

    // BGP timers and passwords.
    let b = &spec.bgp;
    if b.hold != 0 && b.hold < 3 {
        p.push(Problem::new("bgp.hold", format!("{} s: must be 0 or at least 3", b.hold)));
    }
    if b.keepalive == 0 || (b.hold != 0 && b.keepalive > b.hold / 3) {
        p.push(Problem::new(
            "bgp.keepalive",
            format!("{} s: must be at least 1 and at most a third of hold ({} s)", b.keepalive, b.hold),
        ));
    }
    if b.connect_retry == 0 {
        p.push(Problem::new("bgp.connect_retry", "must be at least 1 second"));
    }
    if let Some(pw) = &b.password {
        if let Some(m) = password_problem(pw) {
            p.push(Problem::new("bgp.password", m));
        }
    }
    p
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
    let names: Vec<&str> =
        routers.iter().map(|r| r.name.as_str()).filter(|n| seen.insert(*n)).collect();
    if names.len() <= 6 {
        names.join(", ")
    } else {
        format!("{}, ... {} ({} routers)", names[..3].join(", "), names[names.len() - 1], names.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_is_valid_and_bounded() {
        let s = chain("p", 24).unwrap();
        assert_eq!(s.routers.len(), 24);
        assert_eq!(effective_links(&s).len(), 23);
        let e = chain("p", 0).unwrap_err();
        assert_eq!(e.problems()[0].location, "--hops");
        assert!(chain("p", MAX_ROUTERS + 1).is_err());
        assert!(chain("p", MAX_ROUTERS).is_ok());
    }

    #[test]
    fn yaml_errors_carry_line_and_column() {
        let e = parse_yaml("x.yaml", "name: p\nrouters:\n  - name: r1\n    colour: red\n").unwrap_err();
        let p = &e.problems()[0];
        assert_eq!(p.location, "line 4 column 5");
        assert!(p.message.contains("unknown field `colour`"), "{}", p.message);
    }

    #[test]
    fn names_are_checked() {
        assert!(name_problem("r-1").is_none());
        assert!(name_problem("R1").is_some());
        assert!(name_problem("a\nb").unwrap().contains("a\\nb"));
        assert!(name_problem("-a").is_some());
        assert!(name_problem(&"a".repeat(21)).is_some());
    }
}
