//! The node interface: every operation the controller may ask of a node, and nothing else
//! (no "run this command"). Types here are plain data so they can cross the wire unchanged.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub use crate::delay::schedule::{LineSchedule, LineStep};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Label keys on every Docker object vnet-te creates. Labels are the source of truth for
/// what belongs to a path.
pub mod labels {
    pub const PATH: &str = "vnet-te.path";
    pub const ROLE: &str = "vnet-te.role";
    pub const HOP: &str = "vnet-te.hop";
    pub const PLAN_HASH: &str = "vnet-te.plan-hash";
    pub const NODE: &str = "vnet-te.node";
    pub const ASN: &str = "vnet-te.asn";
    pub const OBJECT: &str = "vnet-te.object";
    /// On containers with direct links (veth, VXLAN): those links' subnets
    /// (comma-separated), which no Docker network shows.
    pub const SUBNETS: &str = "vnet-te.subnets";
    /// On experiment hosts attached to a LAN of their node: the node's interface their
    /// macvlan sits on. A delete takes such a host's macvlans away before the host.
    pub const ATTACH: &str = "vnet-te.attach";
    /// The run (one `path create` or `path repair`) that made the object: a rollback removes
    /// only its own run's objects.
    pub const RUN: &str = "vnet-te.run";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    /// `bridge` or `overlay`.
    pub driver: String,
    pub subnet: String,
    pub gateway: String,
    pub ip_range: String,
    /// Linux bridge name (bridge driver only).
    pub bridge_name: Option<String>,
    pub mtu: Option<u32>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerRole {
    Router,
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub role: ContainerRole,
    /// In attach order; the first is given at create (Docker API 1.41 takes one).
    pub attachments: Vec<Attachment>,
    /// Uploaded into the container before start.
    pub files: Vec<FileSpec>,
    /// Environment of the container (`NAME=value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Kernel settings of the container's own namespaces, beside those its role gets; only
    /// the keys in [`ALLOWED_SYSCTLS`] are accepted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Host devices the container gets (only those in `vpn::ALLOWED_DEVICES`: the TUN device
    /// of a VPN end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Memory and process limits of the container; absent: the defaults. Never unlimited.
    #[serde(default)]
    pub limits: Limits,
}

/// A container's memory limit (bytes, swap included) and its most processes and threads.
/// An FRR router uses 15–25 MiB and a few dozen tasks, so the defaults are generous, yet a
/// runaway daemon or a fork loop in an experiment host stops at them instead of taking the
/// node's memory or process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub memory: u64,
    pub pids: u32,
}

impl Limits {
    pub const DEFAULT_MEMORY: u64 = 256 * MIB;
    pub const DEFAULT_PIDS: u32 = 512;
    /// Below this FRR does not start (its daemons alone take about 20 MiB).
    pub const MIN_MEMORY: u64 = 32 * MIB;
    pub const MAX_MEMORY: u64 = 16 * 1024 * MIB;
    /// Below this FRR's daemons and their threads do not all start.
    pub const MIN_PIDS: u32 = 32;
    pub const MAX_PIDS: u32 = 32768;

    pub fn is_default(&self) -> bool {
        *self == Limits::default()
    }

    /// Refuses limits outside the bounds above: a caller cannot lift them (0 would be
    /// unlimited to Docker) nor set them too low for the container to start.
    pub fn check(&self) -> Result<(), String> {
        if !(Self::MIN_MEMORY..=Self::MAX_MEMORY).contains(&self.memory) {
            return Err(format!("memory limit {} bytes is outside {}..={} MiB", self.memory, Self::MIN_MEMORY / MIB, Self::MAX_MEMORY / MIB));
        }
        if !(Self::MIN_PIDS..=Self::MAX_PIDS).contains(&self.pids) {
            return Err(format!("pids limit {} is outside {}..={}", self.pids, Self::MIN_PIDS, Self::MAX_PIDS));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory: Self::DEFAULT_MEMORY, pids: Self::DEFAULT_PIDS }
    }
}

const MIB: u64 = 1024 * 1024;

/// The sysctls a [`ContainerSpec`] may set: TCP's patience, for sessions across long delays,
/// forwarding, for an experiment host between a LAN of its node and the path, and IPv6 for
/// paths that carry it (on, without duplicate address detection, errors not rate-limited,
/// routers forwarding).
pub const ALLOWED_SYSCTLS: &[&str] = &[
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_retries2",
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.disable_ipv6",
    "net.ipv6.conf.default.disable_ipv6",
    "net.ipv6.conf.all.accept_dad",
    "net.ipv6.conf.default.accept_dad",
    "net.ipv6.icmp.ratelimit",
    "net.ipv6.conf.all.forwarding",
];

/// The IPv6 settings every container of an IPv6 path gets (routers also forward).
pub const IPV6_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "0"),
    ("net.ipv6.conf.default.disable_ipv6", "0"),
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.icmp.ratelimit", "0"),
];

/// Refuses a sysctl outside [`ALLOWED_SYSCTLS`], naming it; the values must be plain numbers.
pub fn check_sysctls(sysctls: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in sysctls {
        if !ALLOWED_SYSCTLS.contains(&key.as_str()) {
            return Err(format!("sysctl {key} is not allowed (allowed: {})", ALLOWED_SYSCTLS.join(", ")));
        }
        if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("sysctl {key}: {value:?} is not a number"));
        }
    }
    Ok(())
}

/// One end of a veth link: an interface named `ifname` in a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethEnd {
    pub container: String,
    pub ifname: String,
    /// Set on the interface before it goes up; without one, the interface is left down for
    /// the container to configure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<ipnet::Ipv4Net>,
}

/// A point-to-point link between two running containers on one node. With addresses, both
/// ends come up already addressed (so the first packet either side sends can be answered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethSpec {
    pub a: VethEnd,
    pub b: VethEnd,
    pub mtu: Option<u32>,
    /// `b`'s router listens for a BGP session that `a`'s router opens, and its zebra
    /// addresses `b`. Then `b` is made first, and `a` joins only once `b` carries its address:
    /// FRR's bgpd refuses a session accepted on an address that zebra has not told it about
    /// yet ("nexthop_set failed") and both ends wait a second before they try again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub b_listens: bool,
}

/// One end of a point-to-point VXLAN link between two nodes: a VXLAN device named
/// `ifname` in a running container, its underlay the node's own network (UDP from `local`
/// to `remote`, the other node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanSpec {
    pub container: String,
    pub ifname: String,
    pub vni: u32,
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    pub port: u16,
    pub mtu: Option<u32>,
    /// As for `VethEnd::address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<ipnet::Ipv4Net>,
}

/// An experiment host's attachment to a LAN of its node: a macvlan (bridge mode) on the
/// node's interface `parent`, created straight into the running container as `ifname`, up
/// with `address`. It disappears with the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacvlanSpec {
    pub container: String,
    pub ifname: String,
    pub parent: String,
    pub address: ipnet::Ipv4Net,
}

/// A delay line on one link end: the packets arriving on `ifname` in a running container are
/// held for `delay_us` ± `jitter_us` and `loss_ppm` of them dropped, by a `vnet-te-delay`
/// process in the container's network namespace bound to NFQUEUE queue `queue` (queue numbers
/// are per namespace: a container's ends need distinct ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayLineSpec {
    pub container: String,
    pub ifname: String,
    pub queue: u16,
    pub delay_us: u64,
    pub jitter_us: u64,
    /// Packets dropped, per million.
    pub loss_ppm: u32,
    /// Packets the kernel may hold for the line; by default enough for 1 Gbit/s over the
    /// delay and jitter given here (fixed while the line runs: size it for the largest delay
    /// the link will get).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_max_len: Option<u32>,
    /// A timeline the line runs itself from then on (replacing any earlier one); the
    /// settings above are its state before the first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<LineSchedule>,
}

/// New settings for a running delay line; those left out keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelaySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_ppm: Option<u32>,
}

/// One delay line of a container, as it answers: its settings and counters, or why it does
/// not answer (a line that died leaves its link dead: the queue rule drops what arrives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayLineStatus {
    pub ifname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::delay::Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Absolute path inside the container.
    pub path: String,
    pub mode: u32,
    pub content: String,
}

/// A labelled object found on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// Empty for a container Docker is already removing: its name is released first.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Containers: running or not. Networks: always true.
    pub running: bool,
    /// Networks: their IPv4 subnets.
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub success: bool,
    pub output: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{doing}: {source}")]
    Docker {
        doing: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{doing}: container {container} is not running")]
    NotRunning { doing: String, container: String },
    #[error("{doing}: {message}")]
    Failed { doing: String, message: String },
    /// Outside what the node lets vnet-te do (a name not vnet-te's, a setting not allowed).
    #[error("{doing}: refused: {message}")]
    Refused { doing: String, message: String },
    #[error(transparent)]
    Parse(#[from] crate::frr::ParseError),
}

pub type NodeResult<T> = Result<T, NodeError>;

/// The allow-listed operations on one node (a Docker engine). Each is also a
/// [`crate::request::Request`] variant, which is how the agent serves it.
#[async_trait]
pub trait Node: Send + Sync {
    /// Node name as the plan knows it.
    fn name(&self) -> &str;
    /// Image IDs present for the given references (missing ones absent from the map).
    async fn images_present(&self, refs: &[String]) -> NodeResult<BTreeMap<String, bool>>;
    /// Subnets of every network on this node (ours or not): the planner avoids them.
    async fn taken_subnets(&self) -> NodeResult<Vec<String>>;
    /// Objects carrying `label=value` (or the label at all, when `value` is None).
    async fn find_containers(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>>;
    async fn find_networks(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>>;
    async fn create_network(&self, spec: &NetworkSpec) -> NodeResult<()>;
    /// Removes a network; absent is success. Retries while Docker still sees endpoints.
    async fn remove_network(&self, name: &str) -> NodeResult<()>;
    /// Creates the container, attaches every network in order, uploads its files.
    async fn create_container(&self, spec: &ContainerSpec) -> NodeResult<()>;
    async fn start_container(&self, name: &str) -> NodeResult<()>;
    /// Force-removes a container; absent is success.
    async fn remove_container(&self, name: &str) -> NodeResult<()>;
    /// Reads one file from a container (running or stopped).
    async fn read_file(&self, container: &str, path: &str) -> NodeResult<Option<String>>;
    /// `show bgp ipv4 unicast json` in a router container.
    async fn bgp_table(&self, router: &str) -> NodeResult<crate::frr::BgpTable>;
    /// `show bgp summary json` in a router container.
    async fn bgp_summary(&self, router: &str) -> NodeResult<crate::frr::BgpSummary>;
    /// Traceroute from an experiment host to an address; each hop's reply is awaited
    /// `wait_ms` (a hop slower than that shows as `*`).
    async fn traceroute(&self, host: &str, target: Ipv4Addr, max_hops: u32, wait_ms: u32, one_at_a_time: bool) -> NodeResult<Probe>;
    /// A few pings from an experiment host; `size` is the ICMP payload, `dont_fragment` sets DF;
    /// each reply is awaited `wait_ms`.
    async fn ping(&self, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32) -> NodeResult<Probe>;
    /// Lets routed traffic cross the path's internal bridges (Docker's isolation rules drop
    /// transit traffic on internal bridges); `false` withdraws it.
    async fn bridge_forwarding(&self, enable: bool) -> NodeResult<()>;
    /// Lets the node take link VXLAN (UDP 4790) from the `allow`ed addresses only (the
    /// cluster's nodes) and drops it from anyone else; `None` takes the filter away.
    async fn vxlan_filter(&self, allow: Option<&[Ipv4Addr]>) -> NodeResult<()>;
    /// `show bgp l2vpn evpn json` in a router container.
    async fn bgp_evpn_routes(&self, router: &str) -> NodeResult<crate::frr::EvpnRoutes>;
    /// `show evpn vni json` in a router container.
    async fn evpn_vnis(&self, router: &str) -> NodeResult<crate::frr::EvpnVnis>;
    /// Byte/packet counters and IPv4 addresses of every interface (`ip -s -j addr show`)
    /// in a router or host container.
    async fn interface_counters(&self, container: &str) -> NodeResult<Vec<crate::probe::InterfaceCounters>>;
    /// Changes a running FRR router's configuration without restarting it: writes `config`
    /// to `/etc/frr/frr.conf` (what FRR boots from), applies `remove` (FRR configuration
    /// commands that take out lines the new config no longer has; lines already absent are
    /// not an error), then applies `config` itself and asks every IPv4 unicast neighbour to
    /// resend its routes through the new inbound policy.
    async fn apply_frr_config(&self, router: &str, config: &str, remove: &str) -> NodeResult<()>;
    /// Replaces files under `/etc/vnet-te/` in a container (running or not); any other path
    /// is refused.
    async fn write_files(&self, container: &str, files: &[FileSpec]) -> NodeResult<()>;
    /// Joins two running containers with a veth pair, each end created directly in its
    /// container's network namespace under its planned name (`wiring: direct`). The pair
    /// disappears with either container.
    async fn connect_veth(&self, link: &VethSpec) -> NodeResult<()>;
    /// Gives a running container one end of a VXLAN link to another node: the device is
    /// created in the node's own namespace (its UDP socket stays there) and placed in the
    /// container's under its planned name. It disappears with the container.
    async fn connect_vxlan(&self, link: &VxlanSpec) -> NodeResult<()>;
    /// The names of the node's own interfaces (its network namespace, where a macvlan's
    /// parent is).
    async fn own_interfaces(&self) -> NodeResult<Vec<String>>;
    /// Attaches a running vnet-te container to a LAN of the node (see [`MacvlanSpec`]).
    async fn connect_macvlan(&self, link: &MacvlanSpec) -> NodeResult<()>;
    /// Deletes every macvlan in a vnet-te container's network namespace, so none stays on its
    /// parent while the kernel frees the namespace of a removed container (which can take a
    /// while on a busy node). A container that is absent or not running has none: success.
    async fn remove_macvlans(&self, container: &str) -> NodeResult<()>;
    /// Waits until FRR's bgpd in a running router listens for BGP (zebra, started before
    /// it, is up then too), at most `within_secs` (at most 60); says whether it does.
    /// Watched from the node (the namespace's socket table), no exec.
    async fn wait_bgpd(&self, router: &str, within_secs: u32) -> NodeResult<bool>;
    /// Pings from an experiment host several times a second until the first reply or
    /// `within_secs` (at most 3600): returns as soon as the target answers.
    /// `show bgp ipv6 unicast json` in a router container.
    async fn bgp_table6(&self, router: &str) -> NodeResult<crate::frr::BgpTable> {
        Err(NodeError::Failed { doing: format!("reading the IPv6 BGP table of {router}"), message: "not supported by this node".into() })
    }
    /// `traceroute -6` from an experiment host, as [`Node::traceroute`].
    async fn traceroute6(&self, host: &str, target: std::net::Ipv6Addr, _max_hops: u32, _wait_ms: u32) -> NodeResult<Probe> {
        Err(NodeError::Failed { doing: format!("traceroute6 from {host} to {target}"), message: "not supported by this node".into() })
    }
    /// Three `ping -6` from an experiment host, each reply awaited `wait_ms`.
    async fn ping6(&self, host: &str, target: std::net::Ipv6Addr, _wait_ms: u32) -> NodeResult<Probe> {
        Err(NodeError::Failed { doing: format!("ping6 from {host} to {target}"), message: "not supported by this node".into() })
    }
    async fn ping_until(&self, host: &str, target: Ipv4Addr, within_secs: u32) -> NodeResult<Probe>;
    /// `count` pings from an experiment host, 100 a second, each waited for `wait_ms`: what
    /// share of them come back (loss along the path). At most 1000. `ping -6` for an IPv6 target.
    async fn ping_burst(&self, host: &str, target: std::net::IpAddr, count: u32, wait_ms: u32) -> NodeResult<Probe>;
    /// Three pings from an experiment host to each of `targets` (at most `PING_EACH_MAX`),
    /// `PING_EACH_AT_ONCE` targets at a time, in one exec: a line `<target> ok` or
    /// `<target> no-reply` each (`probe::parse_ping_each`); success when every one answered.
    async fn ping_each(&self, host: &str, targets: &[Ipv4Addr], wait_ms: u32) -> NodeResult<Probe>;
    /// Starts a one-test iperf3 server in an experiment host (it ends after one client).
    async fn iperf_server(&self, host: &str) -> NodeResult<()>;
    /// An iperf3 TCP test of `seconds` (at most 60) from an experiment host to `target`, its
    /// JSON report as the output.
    async fn iperf_client(&self, host: &str, target: Ipv4Addr, seconds: u32) -> NodeResult<Probe>;
    /// Starts the delay line of one link end (see [`DelayLineSpec`]) in a running container:
    /// the process first, then the rule that hands it the packets arriving on the interface.
    /// The line ends when the container does. Idempotent: for an end whose line runs already,
    /// its settings are replaced (the queue must be the same).
    async fn start_delay_line(&self, spec: &DelayLineSpec) -> NodeResult<()>;
    /// Changes a running delay line's settings; those left out keep their value.
    async fn set_delay_line(&self, container: &str, ifname: &str, settings: DelaySettings) -> NodeResult<()>;
    /// Every delay line started in a container, by interface name.
    async fn delay_lines(&self, container: &str) -> NodeResult<Vec<DelayLineStatus>>;
    /// Limits what leaves a running container through `ifname` to `rate_bps` (a token bucket
    /// as the interface's root qdisc); `None` removes the limit. Rate is set where packets
    /// leave a link, delay where they arrive.
    async fn set_link_rate(&self, container: &str, ifname: &str, rate_bps: Option<u64>) -> NodeResult<()>;
    /// `count` ICMP echoes (at most [`MAX_UNDERLAY_PINGS`], 100 a second) from the node itself
    /// (its own network namespace, where the UDP of its VXLAN links leaves) to `target`,
    /// another node's underlay address: each reply's round trip in µs, in arrival order
    /// (empty: none came back within a second of the last echo).
    async fn underlay_rtts(&self, target: Ipv4Addr, count: u32) -> NodeResult<Vec<u64>>;
    /// One IPsec operation (`vpn::VpnOp`) in a running vnet-te container: success and what it
    /// printed.
    async fn vpn(&self, container: &str, op: &crate::vpn::VpnOp) -> NodeResult<Probe>;
}

/// The most echoes one `Node::underlay_rtts` sends.
pub const MAX_UNDERLAY_PINGS: u32 = 100;

/// Where `Node::write_files` may write.
pub use crate::scope::WRITABLE_PREFIX;

/// `Node::ping_each`: targets pinged at a time, and at most in one request (a path's routers).
pub const PING_EACH_AT_ONCE: usize = 8;
pub const PING_EACH_MAX: usize = 2000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcps_patience_may_be_set_and_only_to_numbers() {
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        for key in ALLOWED_SYSCTLS {
            assert_eq!(check_sysctls(&set(key, "12")), Ok(()));
        }
        assert_eq!(check_sysctls(&BTreeMap::new()), Ok(()));
        let e = check_sysctls(&set("net.ipv4.conf.all.rp_filter", "0")).unwrap_err();
        assert!(e.starts_with("sysctl net.ipv4.conf.all.rp_filter is not allowed (allowed: net.ipv4.tcp_syn_retries, "), "{e}");
        for bad in ["", "-1", "1 2", "12345678901", "0x10"] {
            let e = check_sysctls(&set("net.ipv4.tcp_retries2", bad)).unwrap_err();
            assert!(e.contains("is not a number"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn limits_stay_within_bounds_and_default_when_absent() {
        assert_eq!(Limits::default().check(), Ok(()));
        for bad in [
            Limits { memory: 0, pids: 512 },
            Limits { memory: 256 << 20, pids: 0 },
            Limits { memory: u64::MAX, pids: 512 },
            Limits { memory: 256 << 20, pids: u32::MAX },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let e = Limits { memory: 1 << 20, pids: 512 }.check().unwrap_err();
        assert_eq!(e, "memory limit 1048576 bytes is outside 32..=16384 MiB");
        let json = r#"{"name":"vte-p-h1","hostname":"h1","image":"i","role":"host","attachments":[],"files":[],"cmd":[],"labels":{}}"#;
        assert_eq!(serde_json::from_str::<ContainerSpec>(json).unwrap().limits, Limits::default());
    }

    #[test]
    fn a_spec_without_sysctls_reads_and_writes_as_before() {
        let json = r#"{"name":"vte-p-h1","hostname":"h1","image":"i","role":"host","attachments":[],"files":[],
                       "cmd":[],"labels":{}}"#;
        let spec: ContainerSpec = serde_json::from_str(json).unwrap();
        assert!(spec.sysctls.is_empty());
        assert!(!serde_json::to_string(&spec).unwrap().contains("sysctls"));
    }
}
