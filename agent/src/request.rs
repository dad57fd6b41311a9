//! The agent's protocol: one [`Request`] per `Node` operation, carrying exactly that
//! method's arguments, and one [`dispatch`] that calls the method. The server parses a body
//! into a `Request` ([`parse`], pure: no socket needed to test it), `RemoteNode` builds one
//! per call; neither knows the operations one by one.
//!
//! On the wire a request is a JSON object tagged by `op`:
//! `{"op":"find_containers","label":"vnet-te.path","value":"p1"}`. The answer is the
//! method's result as JSON.
//!
//! A new operation is one variant here, one arm in `op` and `dispatch` (the compiler asks for
//! both), one `Node` method and its implementations.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::node::{
    ContainerSpec, DelayLineSpec, DelaySettings, FileSpec, MacvlanSpec, NetworkSpec, Node, NodeError, NodeResult, VethSpec,
    VxlanSpec,
};

/// Largest request body accepted: container specs carry whole config files, a host's the
/// plan (about 1.2 KiB a hop in JSON), so a path of thousands of hops fits.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// One `Node` operation and its arguments. Unknown fields are refused: an agent older than
/// its controller says so instead of ignoring an argument it cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    ImagesPresent { refs: Vec<String> },
    // A struct variant, not a unit one: serde ignores extra fields beside a unit variant's tag.
    TakenSubnets {},
    FindContainers { label: String, value: Option<String> },
    FindNetworks { label: String, value: Option<String> },
    CreateNetwork { spec: NetworkSpec },
    RemoveNetwork { name: String },
    CreateContainer { spec: ContainerSpec },
    StartContainer { name: String },
    RemoveContainer { name: String },
    ReadFile { container: String, path: String },
    BgpTable { router: String },
    BgpSummary { router: String },
    Traceroute {
        host: String,
        target: Ipv4Addr,
        max_hops: u32,
        wait_ms: u32,
        /// Probes leave one at a time, 1 ms apart: a burst queues in the delay lines.
        #[serde(default)]
        one_at_a_time: bool,
    },
    Ping { host: String, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32 },
    BridgeForwarding { enable: bool },
    BgpEvpnRoutes { router: String },
    EvpnVnis { router: String },
    InterfaceCounters { container: String },
    ApplyFrrConfig { router: String, config: String, remove: String },
    WriteFiles { container: String, files: Vec<FileSpec> },
    ConnectVeth { link: VethSpec },
    ConnectVxlan { link: VxlanSpec },
    VxlanFilter { allow: Option<Vec<Ipv4Addr>> },
    OwnInterfaces {},
    ConnectMacvlan { link: MacvlanSpec },
    RemoveMacvlans { container: String },
    WaitBgpd { router: String, within_secs: u32 },
    PingUntil { host: String, target: Ipv4Addr, within_secs: u32 },
    PingBurst { host: String, target: std::net::IpAddr, count: u32, wait_ms: u32 },
    PingEach { host: String, targets: Vec<Ipv4Addr>, wait_ms: u32 },
    IperfServer { host: String },
    IperfClient { host: String, target: Ipv4Addr, seconds: u32 },
    StartDelayLine { spec: DelayLineSpec },
    SetDelayLine { container: String, ifname: String, settings: DelaySettings },
    DelayLines { container: String },
    SetLinkRate { container: String, ifname: String, rate_bps: Option<u64> },
    UnderlayRtts { target: Ipv4Addr, count: u32 },
    Vpn { container: String, vpn: crate::vpn::VpnOp },
    BgpTable6 { router: String },
    Traceroute6 { host: String, target: Ipv6Addr, max_hops: u32, wait_ms: u32 },
    Ping6 { host: String, target: Ipv6Addr, wait_ms: u32 },
}

impl Request {
    /// The operation's name, as `op` carries it (for logs and errors).
    pub fn op(&self) -> &'static str {
        match self {
            Request::ImagesPresent { .. } => "images_present",
            Request::TakenSubnets {} => "taken_subnets",
            Request::FindContainers { .. } => "find_containers",
            Request::FindNetworks { .. } => "find_networks",
            Request::CreateNetwork { .. } => "create_network",
            Request::RemoveNetwork { .. } => "remove_network",
            Request::CreateContainer { .. } => "create_container",
            Request::StartContainer { .. } => "start_container",
            Request::RemoveContainer { .. } => "remove_container",
            Request::ReadFile { .. } => "read_file",
            Request::BgpTable { .. } => "bgp_table",
            Request::BgpSummary { .. } => "bgp_summary",
            Request::Traceroute { .. } => "traceroute",
            Request::Ping { .. } => "ping",
            Request::BridgeForwarding { .. } => "bridge_forwarding",
            Request::BgpEvpnRoutes { .. } => "bgp_evpn_routes",
            Request::EvpnVnis { .. } => "evpn_vnis",
            Request::InterfaceCounters { .. } => "interface_counters",
            Request::ApplyFrrConfig { .. } => "apply_frr_config",
            Request::WriteFiles { .. } => "write_files",
            Request::ConnectVeth { .. } => "connect_veth",
            Request::ConnectVxlan { .. } => "connect_vxlan",
            Request::VxlanFilter { .. } => "vxlan_filter",
            Request::OwnInterfaces {} => "own_interfaces",
            Request::ConnectMacvlan { .. } => "connect_macvlan",
            Request::RemoveMacvlans { .. } => "remove_macvlans",
            Request::WaitBgpd { .. } => "wait_bgpd",
            Request::PingUntil { .. } => "ping_until",
            Request::PingBurst { .. } => "ping_burst",
            Request::PingEach { .. } => "ping_each",
            Request::IperfServer { .. } => "iperf_server",
            Request::IperfClient { .. } => "iperf_client",
            Request::StartDelayLine { .. } => "start_delay_line",
            Request::SetDelayLine { .. } => "set_delay_line",
            Request::DelayLines { .. } => "delay_lines",
            Request::SetLinkRate { .. } => "set_link_rate",
            Request::UnderlayRtts { .. } => "underlay_rtts",
            Request::Vpn { .. } => "vpn",
            Request::BgpTable6 { .. } => "bgp_table6",
            Request::Traceroute6 { .. } => "traceroute6",
            Request::Ping6 { .. } => "ping6",
        }
    }

    /// Every operation's name, in declaration order.
    ///
    /// Taken from serde's derive rather than written a second time: told an unknown tag, it
    /// names the known ones through `de::Error::unknown_variant`.
    pub fn ops() -> &'static [&'static str] {
        static OPS: OnceLock<&'static [&'static str]> = OnceLock::new();
        OPS.get_or_init(|| {
            let probe = serde::de::value::MapDeserializer::<_, KnownOps>::new(std::iter::once(("op", "")));
            match Request::deserialize(probe) {
                Err(KnownOps(Some(ops))) => ops,
                _ => unreachable!("serde names the variants of an enum told an unknown tag"),
            }
        })
    }
}

/// The error type of [`Request::ops`]' probe: keeps the variant names serde offers.
#[derive(Debug)]
struct KnownOps(Option<&'static [&'static str]>);

impl fmt::Display for KnownOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probing the known operations")
    }
}

impl std::error::Error for KnownOps {}

impl serde::de::Error for KnownOps {
    fn custom<T: fmt::Display>(_: T) -> Self {
        KnownOps(None)
    }
    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        KnownOps(Some(expected))
    }
}

/// Why a request body is not a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request is larger than the {limit} bytes this agent accepts")]
    TooLarge { limit: usize },
    #[error("this agent (version {}) has no operation {op:?} (known: {})", crate::server::VERSION, Request::ops().join(", "))]
    UnknownOp { op: String },
    /// Not JSON, no `op`, or arguments missing, of the wrong type or unknown.
    #[error("{message}")]
    Malformed { op: Option<String>, message: String },
}

impl RequestError {
    /// The `kind` of the error body the agent answers with.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::TooLarge { .. } => "too_large",
            RequestError::UnknownOp { .. } => "unknown_operation",
            RequestError::Malformed { .. } => "bad_request",
        }
    }

    /// What the agent was doing when it refused the request.
    pub fn doing(&self) -> String {
        match self {
            RequestError::UnknownOp { op } | RequestError::Malformed { op: Some(op), .. } => format!("decoding {op}"),
            _ => "decoding the request".into(),
        }
    }
}

/// A request body (JSON) as a [`Request`].
pub fn parse(body: &[u8]) -> Result<Request, RequestError> {
    if body.len() > BODY_LIMIT {
        return Err(RequestError::TooLarge { limit: BODY_LIMIT });
    }
    match serde_json::from_slice(body) {
        Ok(req) => Ok(req),
        Err(e) => {
            // Only the tag, to tell an unknown operation from bad arguments to a known one.
            #[derive(Deserialize)]
            struct Tag {
                op: String,
            }
            Err(match serde_json::from_slice::<Tag>(body) {
                Ok(Tag { op }) if !Request::ops().contains(&op.as_str()) => RequestError::UnknownOp { op },
                Ok(Tag { op }) => RequestError::Malformed { op: Some(op), message: e.to_string() },
                Err(_) => RequestError::Malformed { op: None, message: e.to_string() },
            })
        }
    }
}

/// Runs `req` on `node`; the method's result as JSON.
pub async fn dispatch(node: &dyn Node, req: Request) -> NodeResult<serde_json::Value> {
    let op = req.op();
    match req {
        Request::ImagesPresent { refs } => answer(op, node.images_present(&refs).await),
        Request::TakenSubnets {} => answer(op, node.taken_subnets().await),
        Request::FindContainers { label, value } => answer(op, node.find_containers(&label, value.as_deref()).await),
        Request::FindNetworks { label, value } => answer(op, node.find_networks(&label, value.as_deref()).await),
        Request::CreateNetwork { spec } => answer(op, node.create_network(&spec).await),
        Request::RemoveNetwork { name } => answer(op, node.remove_network(&name).await),
        Request::CreateContainer { spec } => answer(op, node.create_container(&spec).await),
        Request::StartContainer { name } => answer(op, node.start_container(&name).await),
        Request::RemoveContainer { name } => answer(op, node.remove_container(&name).await),
        Request::ReadFile { container, path } => answer(op, node.read_file(&container, &path).await),
        Request::BgpTable { router } => answer(op, node.bgp_table(&router).await),
        Request::BgpSummary { router } => answer(op, node.bgp_summary(&router).await),
        Request::Traceroute { host, target, max_hops, wait_ms, one_at_a_time } => {
            answer(op, node.traceroute(&host, target, max_hops, wait_ms, one_at_a_time).await)
        }
        Request::Ping { host, target, size, dont_fragment, wait_ms } => {
            answer(op, node.ping(&host, target, size, dont_fragment, wait_ms).await)
        }
        Request::BridgeForwarding { enable } => answer(op, node.bridge_forwarding(enable).await),
        Request::BgpEvpnRoutes { router } => answer(op, node.bgp_evpn_routes(&router).await),
        Request::EvpnVnis { router } => answer(op, node.evpn_vnis(&router).await),
        Request::InterfaceCounters { container } => answer(op, node.interface_counters(&container).await),
        Request::ApplyFrrConfig { router, config, remove } => {
            answer(op, node.apply_frr_config(&router, &config, &remove).await)
        }
        Request::WriteFiles { container, files } => answer(op, node.write_files(&container, &files).await),
        Request::ConnectVeth { link } => answer(op, node.connect_veth(&link).await),
        Request::ConnectVxlan { link } => answer(op, node.connect_vxlan(&link).await),
        Request::VxlanFilter { allow } => answer(op, node.vxlan_filter(allow.as_deref()).await),
        Request::OwnInterfaces {} => answer(op, node.own_interfaces().await),
        Request::ConnectMacvlan { link } => answer(op, node.connect_macvlan(&link).await),
        Request::RemoveMacvlans { container } => answer(op, node.remove_macvlans(&container).await),
        Request::WaitBgpd { router, within_secs } => answer(op, node.wait_bgpd(&router, within_secs).await),
        Request::IperfServer { host } => answer(op, node.iperf_server(&host).await),
        Request::IperfClient { host, target, seconds } => answer(op, node.iperf_client(&host, target, seconds).await),
        Request::PingBurst { host, target, count, wait_ms } => {
            answer(op, node.ping_burst(&host, target, count, wait_ms).await)
        }
        Request::PingEach { host, targets, wait_ms } => answer(op, node.ping_each(&host, &targets, wait_ms).await),
        Request::PingUntil { host, target, within_secs } => {
            answer(op, node.ping_until(&host, target, within_secs).await)
        }
        Request::StartDelayLine { spec } => answer(op, node.start_delay_line(&spec).await),
        Request::SetDelayLine { container, ifname, settings } => {
            answer(op, node.set_delay_line(&container, &ifname, settings).await)
        }
        Request::DelayLines { container } => answer(op, node.delay_lines(&container).await),
        Request::SetLinkRate { container, ifname, rate_bps } => {
            answer(op, node.set_link_rate(&container, &ifname, rate_bps).await)
        }
        Request::UnderlayRtts { target, count } => answer(op, node.underlay_rtts(target, count).await),
        Request::Vpn { container, vpn } => answer(op, node.vpn(&container, &vpn).await),
        Request::BgpTable6 { router } => answer(op, node.bgp_table6(&router).await),
        Request::Traceroute6 { host, target, max_hops, wait_ms } => answer(op, node.traceroute6(&host, target, max_hops, wait_ms).await),
        Request::Ping6 { host, target, wait_ms } => answer(op, node.ping6(&host, target, wait_ms).await),
    }
}

fn answer<R: Serialize>(op: &str, result: NodeResult<R>) -> NodeResult<serde_json::Value> {
    let r = result?;
    serde_json::to_value(r)
        .map_err(|e| NodeError::Failed { doing: format!("encoding the answer to {op}"), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(body: &str) -> (Option<String>, String) {
        match parse(body.as_bytes()) {
            Err(RequestError::Malformed { op, message }) => (op, message),
            other => panic!("expected a malformed request, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_request_of_each_shape() {
        assert_eq!(parse(br#"{"op":"taken_subnets"}"#), Ok(Request::TakenSubnets {}));
        assert_eq!(
            parse(br#"{"op":"find_containers","label":"vnet-te.path","value":"p1"}"#),
            Ok(Request::FindContainers { label: "vnet-te.path".into(), value: Some("p1".into()) })
        );
        // A null optional argument is None, wherever `op` comes.
        assert_eq!(
            parse(br#"{"value":null,"label":"x","op":"find_networks"}"#),
            Ok(Request::FindNetworks { label: "x".into(), value: None })
        );
        assert_eq!(
            parse(br#"{"op":"ping","host":"h","target":"10.0.0.1","dont_fragment":true,"wait_ms":1000}"#),
            Ok(Request::Ping {
                host: "h".into(),
                target: Ipv4Addr::new(10, 0, 0, 1),
                size: None,
                dont_fragment: true,
                wait_ms: 1000
            })
        );
    }

    #[test]
    fn serializes_tagged_by_op_with_the_arguments_beside_it() {
        let req = Request::ReadFile { container: "r1".into(), path: "/etc/frr/frr.conf".into() };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({"op": "read_file", "container": "r1", "path": "/etc/frr/frr.conf"})
        );
        assert_eq!(serde_json::to_string(&Request::TakenSubnets {}).unwrap(), r#"{"op":"taken_subnets"}"#);
    }

    #[test]
    fn unknown_operations_are_named() {
        let e = parse(br#"{"op":"exec","cmd":["id"]}"#).unwrap_err();
        assert_eq!(e, RequestError::UnknownOp { op: "exec".into() });
        assert_eq!(e.kind(), "unknown_operation");
        assert_eq!(e.doing(), "decoding exec");
        let message = e.to_string();
        assert!(message.contains("has no operation \"exec\" (known: images_present, taken_subnets, "), "{message}");
    }

    #[test]
    fn missing_and_unknown_arguments_are_bad_requests_of_their_op() {
        let (op, message) = malformed(r#"{"op":"remove_network"}"#);
        assert_eq!(op.as_deref(), Some("remove_network"));
        assert!(message.contains("missing field `name`"), "{message}");
        let (_, message) = malformed(r#"{"op":"remove_network","name":"l1","force":true}"#);
        assert!(message.contains("unknown field `force`"), "{message}");
        let (_, message) = malformed(r#"{"op":"taken_subnets","all":true}"#);
        assert!(message.contains("all"), "{message}");
        let e = parse(br#"{"op":"remove_network"}"#).unwrap_err();
        assert_eq!((e.kind(), e.doing().as_str()), ("bad_request", "decoding remove_network"));
    }

    #[test]
    fn arguments_of_the_wrong_type_are_bad_requests() {
        let (op, message) = malformed(r#"{"op":"traceroute","host":"h","target":"10.0.0.1","max_hops":"many","wait_ms":1000}"#);
        assert_eq!(op.as_deref(), Some("traceroute"));
        assert!(message.contains("invalid type: string \"many\", expected u32"), "{message}");
        let (_, message) = malformed(r#"{"op":"ping","host":"h","target":"10.0.0.300","dont_fragment":false,"wait_ms":1000}"#);
        assert!(message.contains("invalid IPv4 address"), "{message}");
    }

    #[test]
    fn bodies_without_an_op_are_bad_requests() {
        for body in ["", "not json", "[]", r#"{"name":"l1"}"#, r#"{"op":7}"#] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert!(matches!(e, RequestError::Malformed { op: None, .. }), "{body:?}: {e:?}");
            assert_eq!(e.doing(), "decoding the request");
        }
    }

    #[test]
    fn bodies_over_the_limit_are_refused_unread() {
        let body = vec![b' '; BODY_LIMIT + 1];
        let e = parse(&body).unwrap_err();
        assert_eq!(e, RequestError::TooLarge { limit: BODY_LIMIT });
        assert_eq!(e.kind(), "too_large");
    }

    #[test]
    fn ops_lists_every_tag_serde_knows() {
        let ops = Request::ops();
        assert_eq!(ops.first(), Some(&"images_present"));
        assert!(ops.contains(&"taken_subnets") && ops.contains(&"ping_until"), "{ops:?}");
        for op in ops {
            // Each is a known tag: parsing it alone fails on its arguments, never on the tag.
            match parse(format!(r#"{{"op":"{op}"}}"#).as_bytes()) {
                Ok(req) => assert_eq!(req.op(), *op),
                Err(e) => assert_eq!(e.kind(), "bad_request", "{op}: {e}"),
            }
        }
    }
}
