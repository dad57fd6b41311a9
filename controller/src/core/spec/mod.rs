//! Path specs: what the user asks for, exactly as written.
//!
//! A `PathSpec` is raw user input. It is parsed strictly (unknown keys are errors, with the
//! line and column serde reports) and then validated as a whole: `validate` returns *every*
//! problem it finds, each with a location such as `links[3].b`, so a user fixes a spec in one
//! round. Nothing here knows about nodes, Docker or addresses already in use: that is the
//! planner's job (`plan::build`), which turns a valid spec plus an inventory into a `Plan`.

use std::fmt;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Largest number of routers (and so hops) a spec may ask for. Bounded by the /29 link pool
/// (8192 links in a /16), by ASNs from the default base, and by what one swarm can hold; 2000
/// keeps every default pool comfortably large enough.
pub const MAX_ROUTERS: usize = 2000;
/// Most routers a packet can cross: an IPv4 TTL is 8 bits (a host sends 255 at most, each
/// router takes one, the far host needs one left).
pub const MAX_DATA_PLANE_HOPS: usize = 254;
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
    /// Delay, jitter, loss and rate of every router-to-router link without its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_defaults: Option<ImpairSpec>,
    /// One-way latency budget of the path, spread evenly over the path's links that have no
    /// delay of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySpec>,
    #[serde(default)]
    pub converge: Converge,
    /// How far measured delays may be from the planned ones (default: 1 ms or 2 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<ToleranceSpec>,
    #[serde(default)]
    pub verify: VerifyMode,
    /// Changes of links at times after the path verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<ScheduleEntrySpec>>,
    /// Contacts and ranges in ION's format, mapped onto links by a node number per router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_plan: Option<ContactPlanSpec>,
    #[serde(default)]
    pub announce: Announce,
    /// An IPsec tunnel between the path's ends (host-to-host or site-to-site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn: Option<VpnSpec>,
    /// Memory and process limits of every router and host (default 256 MiB, 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
    /// Address families: `[ipv4]` (absent), `[ipv4, ipv6]` (dual-stack) or `[ipv6]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Vec<ipv6::Family>>,
}

/// Which prefixes the routers announce into BGP.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Announce {
    /// The two experiment LANs and the two edge loopbacks: what traffic between the hosts
    /// (and EVPN's VXLAN) needs, and the fewest routes per router.
    #[default]
    Ends,
    /// Also every router's own loopback (a /32 each): every hop is reachable and visible in
    /// every other hop's table, forced along the path like the ends.
    All,
}

impl Announce {
    pub fn is_ends(&self) -> bool {
        *self == Announce::Ends
    }
}

impl fmt::Display for Announce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Announce::Ends => "ends",
            Announce::All => "all",
        })
    }
}

/// What `path verify` proves.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyMode {
    /// Every hop's BGP table, and traceroutes and pings both ways.
    #[default]
    Full,
    /// Every hop's BGP table only: for paths longer than a packet can cross.
    ControlPlane,
}

impl VerifyMode {
    pub fn is_full(&self) -> bool {
        *self == VerifyMode::Full
    }
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
    /// This router's limits, over the top-level ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
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
    /// Both directions' one-way delay, jitter, loss and rate (over `link_defaults`). These
    /// four repeat `ImpairSpec`'s fields: serde cannot flatten a struct into one that refuses
    /// unknown keys, and a link written flat (`{ a: r1, b: r2, delay: 5ms }`) stays strict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Quantity>,
    /// Packets from `a` toward `b` only (over the link's own settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_a: Option<ImpairSpec>,
    /// Packets from `b` toward `a` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_b: Option<ImpairSpec>,
}

impl LinkSpec {
    /// Whether this link joins routers `a` and `b`, either way round.
    pub fn joins(&self, a: &str, b: &str) -> bool {
        (self.a == a && self.b == b) || (self.a == b && self.b == a)
    }

    /// A plain link between two routers.
    pub fn between(a: &str, b: &str) -> Self {
        LinkSpec {
            a: a.to_string(),
            b: b.to_string(),
            password: None,
            delay: None,
            jitter: None,
            loss: None,
            rate: None,
            from_a: None,
            from_b: None,
        }
    }

    /// The settings written on the link itself, for both directions.
    pub fn impair(&self) -> ImpairSpec {
        ImpairSpec { delay: self.delay.clone(), jitter: self.jitter.clone(), loss: self.loss.clone(), rate: self.rate.clone() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostsSpec {
    /// Host behind the first hop of the path.
    #[serde(default = "default_host_a")]
    pub a: HostSpec,
    /// Host behind the last hop of the path.
    #[serde(default = "default_host_b")]
    pub b: HostSpec,
}

fn default_host_a() -> HostSpec {
    HostSpec::named("src")
}
fn default_host_b() -> HostSpec {
    HostSpec::named("dst")
}

impl Default for HostsSpec {
    fn default() -> Self {
        HostsSpec { a: default_host_a(), b: default_host_b() }
    }
}

impl HostsSpec {
    /// Both hosts with the location of their key (`hosts.a`, `hosts.b`), a first.
    pub fn sides(&self) -> [(&'static str, &HostSpec); 2] {
        [("hosts.a", &self.a), ("hosts.b", &self.b)]
    }
}

/// An experiment host: a plain name (`src`), or `{ name: src, attach: { macvlan: eth1 } }`
/// for a host that is also on a LAN of its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub attach: Option<AttachSpec>,
}

impl HostSpec {
    pub fn named(name: &str) -> Self {
        HostSpec { name: name.to_string(), attach: None }
    }
}

/// How an experiment host joins a LAN of its node, so that machines on that LAN reach the
/// far end through the path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    /// An interface of the host's node (the LAN's): the host gets a macvlan on it.
    pub macvlan: String,
}

/// The map form of a host, strict like every other part of a spec.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFields {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attach: Option<AttachSpec>,
}

impl<'de> Deserialize<'de> for HostSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HostSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host name, or a map with `name` and `attach`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HostSpec, E> {
                Ok(HostSpec::named(v))
            }
            // A name of digits only (`a: 7`) reads as a number in YAML.
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HostSpec, E> {
                Ok(HostSpec::named(&v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HostSpec, E> {
                Ok(HostSpec::named(&v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<HostSpec, A::Error> {
                let f = HostFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(HostSpec { name: f.name, attach: f.attach })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for HostSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.attach {
            None => s.serialize_str(&self.name),
            Some(a) => HostFields { name: self.name.clone(), attach: Some(a.clone()) }.serialize(s),
        }
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
    /// Experiment LANs: one /24 each (two, three with EVPN), and one per attached LAN.
    #[serde(default = "default_lan_pool")]
    pub lans: Ipv4Net,
    /// IPv6 pools (with `family` holding ipv6): a /127 per link, a /128 per loopback, a /64
    /// per LAN; absent ones take the defaults in `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links6: Option<ipnet::Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopbacks6: Option<ipnet::Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lans6: Option<ipnet::Ipv6Net>,
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
            links6: None,
            loopbacks6: None,
            lans6: None,
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

/// Parses and validates a YAML spec. `source_name` (a file name) prefixes every message.
/// A contact plan given as a file is refused here: see `parse_yaml_with`.
pub fn parse_yaml(source_name: &str, text: &str) -> Result<PathSpec, SpecError> {
    parse_yaml_with(source_name, text, &|_| Err("a contact plan file is read relative to a spec file; none here".into()))
}

/// `parse_yaml`, with `read` giving the text of a file the spec names (relative to the spec).
pub fn parse_yaml_with(source_name: &str, text: &str, read: &dyn Fn(&str) -> Result<String, String>) -> Result<PathSpec, SpecError> {
    let mut spec: PathSpec = serde_yaml_ng::from_str(text).map_err(|e| {
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
    if let Some(cp) = &mut spec.contact_plan {
        if let Some(f) = &cp.file {
            cp.loaded = Some(read(f));
        }
    }
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
    chain_verified(name, hops, VerifyMode::Full)
}

/// `chain`, verified as `verify` says (`--verify control-plane` for chains longer than a
/// packet can cross).
pub fn chain_verified(name: &str, hops: usize, verify: VerifyMode) -> Result<PathSpec, SpecError> {
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
            .map(|i| RouterSpec { name: format!("r{i}"), kind: RouterKind::Frr, asn: None, node: None, limits: None })
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
        link_defaults: None,
        latency: None,
        converge: Converge::default(),
        tolerance: None,
        verify,
        schedule: None,
        contact_plan: None,
        announce: Announce::Ends,
        vpn: None,
        limits: None,
        family: None,
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

/// Checks the name of an interface on a node (a macvlan's parent): what Linux takes, in the
/// plainest form, as it reaches netlink requests and object labels.
pub fn ifname_problem(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !plain {
        return Some(format!(
            "'{}' is not an interface name: 1 to {MAX_IFNAME_LEN} letters, digits, '.', '_' or '-'",
            printable(name)
        ));
    }
    (name == "lo").then(|| "'lo' is the loopback: a macvlan needs an Ethernet interface".to_string())
}

/// Linux interface names are at most 15 bytes (IFNAMSIZ less the terminating NUL).
pub const MAX_IFNAME_LEN: usize = 15;

pub(crate) fn password_problem(pw: &str) -> Option<String> {
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
pub(crate) fn printable(s: &str) -> String {
    s.escape_default().to_string()
}

/// The links a spec stands for (explicit, or the default chain).
pub fn effective_links(spec: &PathSpec) -> Vec<LinkSpec> {
    match &spec.links {
        Some(l) => l.clone(),
        None => spec
            .routers
            .windows(2)
            .map(|w| LinkSpec::between(&w[0].name, &w[1].name))
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

/// What is valid but likely not meant, for the user to read before anything is created:
/// routers that no chain of links joins to the path (islands: they are created and their
/// sessions form among themselves, but no traffic of the path can reach them).
pub fn warnings(spec: &PathSpec) -> Vec<String> {
    use std::collections::{BTreeSet, HashMap};
    let links = effective_links(spec);
    let mut adjacent: HashMap<&str, Vec<&str>> = HashMap::new();
    for l in &links {
        adjacent.entry(l.a.as_str()).or_default().push(l.b.as_str());
        adjacent.entry(l.b.as_str()).or_default().push(l.a.as_str());
    }
    let path = effective_path(spec);
    let mut reached: BTreeSet<&str> = path.iter().map(String::as_str).collect();
    let mut todo: Vec<&str> = reached.iter().copied().collect();
    while let Some(r) = todo.pop() {
        for &n in adjacent.get(r).into_iter().flatten() {
            if reached.insert(n) {
                todo.push(n);
            }
        }
    }
    let islands: Vec<&str> = spec.routers.iter().map(|r| r.name.as_str()).filter(|r| !reached.contains(r)).collect();
    if islands.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "router{} {} {} not joined to the path by any chain of links: created, but unreachable from the path's hosts",
        if islands.len() == 1 { "" } else { "s" },
        islands.join(", "),
        if islands.len() == 1 { "is" } else { "are" }
    )]
}

pub mod distance;
pub mod limits;
pub mod ipv6;
mod problem;
pub mod schedule;
mod validate;
pub mod vpn;

pub use distance::{Converge, ImpairSpec, LatencySpec, Quantity, ToleranceSpec};
pub use limits::{Limits, LimitsSpec};
pub use problem::{Problem, SpecError};
pub use schedule::{ContactPlanSpec, ScheduleEntrySpec};
pub use validate::validate;
pub use vpn::{VpnAuth, VpnMode, VpnSpec};
pub(crate) use validate::lan_count;

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
        assert!(chain_verified("p", MAX_ROUTERS + 1, VerifyMode::ControlPlane).is_err());
        assert!(chain_verified("p", MAX_ROUTERS, VerifyMode::ControlPlane).is_ok());
        assert!(chain("p", MAX_DATA_PLANE_HOPS).is_ok());
        let e = chain("p", MAX_DATA_PLANE_HOPS + 1).unwrap_err();
        assert_eq!(e.problems()[0].location, "path");
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

#[cfg(test)]
mod warning_tests {
    use super::*;

    fn spec(yaml: &str) -> PathSpec {
        parse_yaml("t.yaml", yaml).unwrap()
    }

    #[test]
    fn routers_no_link_joins_to_the_path_are_named() {
        let s = spec("name: t\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }, { name: x1 }, { name: x2 }]\nlinks: [{ a: r1, b: r2 }, { a: r2, b: r3 }, { a: x1, b: x2 }]\npath: [r1, r2, r3]\n");
        assert_eq!(warnings(&s), vec!["routers x1, x2 are not joined to the path by any chain of links: created, but unreachable from the path's hosts".to_string()]);
    }

    #[test]
    fn a_detour_router_joined_through_another_is_no_island() {
        let s = spec("name: t\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }, { name: d1 }, { name: d2 }]\nlinks: [{ a: r1, b: r2 }, { a: r2, b: r3 }, { a: r3, b: d1 }, { a: d1, b: d2 }]\npath: [r1, r2, r3]\n");
        assert!(warnings(&s).is_empty());
        assert!(warnings(&chain("c", 24).unwrap()).is_empty());
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn a_host_is_a_name_or_a_map_and_writes_back_the_same_way() {
        let s = parse_yaml("h.yaml", "name: h\nrouters: [{ name: r1 }]\nhosts: { a: { name: lan, attach: { macvlan: eth1 } }, b: 7 }\n").unwrap();
        assert_eq!(s.hosts.a, HostSpec { name: "lan".into(), attach: Some(AttachSpec { macvlan: "eth1".into() }) });
        assert_eq!(s.hosts.b, HostSpec::named("7"));
        let json = serde_json::to_value(&s.hosts).unwrap();
        assert_eq!(json, serde_json::json!({ "a": { "name": "lan", "attach": { "macvlan": "eth1" } }, "b": "7" }));
        let e = parse_yaml("h.yaml", "name: h\nrouters: [{ name: r1 }]\nhosts: { a: { attach: { macvlan: eth1 } } }\n").unwrap_err();
        assert!(e.to_string().contains("hosts.a: missing field `name`"), "{e}");
    }

    #[test]
    fn interface_names_are_plain_and_not_the_loopback() {
        for ok in ["eth1", "ens4f0.100", "br_lan-2", "a23456789012345"] {
            assert_eq!(ifname_problem(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "eth0@if5", "a/b", "eth 1", "a234567890123456", "lo", "e\u{e9}"] {
            assert!(ifname_problem(bad).is_some(), "{bad:?}");
        }
    }
}
