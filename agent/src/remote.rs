//! `RemoteNode`: the `Node` operations of a node whose agent is reached over HTTPS with
//! mutual TLS: each method sends its `request::Request` to `POST /v1/op` (see `server`;
//! `tls` for the certificates).
//!
//! - The agent is verified *as its node*: when the node name is a DNS name the request goes to
//!   `https://<node>:<port>` resolved to the given address, so the agent's certificate must
//!   carry the node name (as `tls::ClusterCa::issue_agent` does). Otherwise the address
//!   itself is the name checked against the certificate's SANs.
//! - Timeouts: 3 s to connect; 30 s for reads, more for creations and network removal.
//! - Connection-level failures (refused, reset, connect timeout; not TLS refusals) are retried
//!   with backoff for idempotent operations only: reads, finds, probes, removals,
//!   `bridge_forwarding`, `vxlan_filter`, `write_files`, `set_link_rate`, `set_delay_line` (all set a state)
//!   and `start_delay_line` (a second start sets the settings). Creations, start and
//!   `apply_frr_config` are sent once.
//! - Every error names the node and its address: `node n2 (10.0.0.2:7443): ...`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use crate::frr::{BgpSummary, BgpTable, EvpnRoutes, EvpnVnis};
use crate::node::{
    ContainerSpec, DelayLineSpec, DelayLineStatus, DelaySettings, FileSpec, Found, MacvlanSpec, NetworkSpec, Node, NodeError, NodeResult, Probe, VethSpec,
    VxlanSpec,
};
use crate::probe::InterfaceCounters;
use crate::request::Request;
use crate::server::wire::{ErrorBody, Health};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle connection to an agent is kept for the next request.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Creating a container (attach every network, upload files), starting one (the agent tries an
/// overlay attach for up to 75 s) and removing a network (the agent itself waits up to 30 s for
/// endpoints to go) take longer.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(120);
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts for idempotent operations, and the first pause between two (tripled each time).
pub const ATTEMPTS: u32 = 4;
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Idempotent: retried on connection-level failures.
    Yes,
    No,
}

pub struct RemoteNode {
    name: String,
    addr: SocketAddr,
    base: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for RemoteNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteNode").field("name", &self.name).field("addr", &self.addr).finish()
    }
}

impl RemoteNode {
    /// The agent of node `name` at `addr`, spoken to with `tls` (from `tls::client_config`:
    /// the cluster CA and the controller certificate). Nothing is sent until the first call.
    pub fn new(name: &str, addr: SocketAddr, tls: &rustls::ClientConfig) -> NodeResult<Self> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .no_proxy()
            .http1_only()
            .https_only(true)
            .user_agent(concat!("vnet-te/", env!("CARGO_PKG_VERSION")));
        let base = if crate::tls::name_is_dns(name) {
            let host = name.to_ascii_lowercase();
            builder = builder.resolve(&host, addr);
            format!("https://{host}:{}", addr.port())
        } else {
            format!("https://{addr}")
        };
        let client =
            builder.build().map_err(|e| NodeError::Failed { doing: format!("node {name} ({addr}): setting up the HTTPS client"), message: chain(&e) })?;
        Ok(RemoteNode { name: name.to_string(), addr, base, client })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The agent's node name and version; fails when the agent answers as another node.
    pub async fn health(&self) -> NodeResult<Health> {
        let doing = "asking the agent's health";
        let h: Health = self.send(doing, Retry::Yes, Duration::from_secs(10), |c| c.get(format!("{}/v1/health", self.base))).await?;
        if h.node != self.name {
            return Err(self.failed(doing, format!("the agent there serves node {:?}", h.node)));
        }
        Ok(h)
    }

    fn failed(&self, doing: &str, message: String) -> NodeError {
        NodeError::Failed { doing: format!("node {} ({}): {doing}", self.name, self.addr), message }
    }

    /// Sends `req` to the agent; its answer as `R`, the result type of `req`'s `Node` method.
    async fn call<R: DeserializeOwned>(&self, req: Request, doing: &str, retry: Retry, timeout: Duration) -> NodeResult<R> {
        let url = format!("{}/v1/op", self.base);
        let body = serde_json::to_vec(&req).map_err(|e| self.failed(doing, format!("encoding the request: {e}")))?;
        self.send(doing, retry, timeout, |c| c.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone())).await
    }

    async fn send<R: DeserializeOwned>(
        &self,
        doing: &str,
        retry: Retry,
        timeout: Duration,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> NodeResult<R> {
        let attempts = if retry == Retry::Yes { ATTEMPTS } else { 1 };
        let mut pause = FIRST_BACKOFF;
        let mut attempt = 1;
        let resp = loop {
            match request(&self.client).timeout(timeout).send().await {
                Ok(r) => break r,
                Err(e) if attempt < attempts && retryable(&e) => {
                    tracing::debug!(node = %self.name, addr = %self.addr, attempt, "{doing}: {}; retrying", chain(&e));
                    tokio::time::sleep(pause).await;
                    pause *= 3;
                    attempt += 1;
                }
                Err(e) => {
                    let mut message = if e.is_timeout() { format!("no answer within {} s ({})", timeout.as_secs(), chain(&e)) } else { chain(&e) };
                    if attempt > 1 {
                        message.push_str(&format!(" (after {attempt} attempts)"));
                    }
                    return Err(self.failed(doing, message));
                }
            }
        };
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.failed(doing, format!("reading the answer: {}", chain(&e))))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| self.failed(doing, format!("undecodable answer from the agent: {e}")));
        }
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(ErrorBody { kind, doing: agent_doing, container: Some(container), .. }) if kind == "not_running" => {
                NodeError::NotRunning { doing: format!("node {} ({}): {agent_doing}", self.name, self.addr), container }
            }
            Ok(ErrorBody { kind, doing: agent_doing, message, .. }) if kind == "refused" => {
                NodeError::Refused { doing: format!("node {} ({}): {agent_doing}", self.name, self.addr), message }
            }
            Ok(b) => NodeError::Failed { doing: format!("node {} ({}): {}", self.name, self.addr, b.doing), message: b.message },
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                let text: String = text.chars().take(300).collect();
                self.failed(doing, format!("agent answered {status}: {}", text.trim()))
            }
        })
    }
}

/// Failures where the request surely did not run (or ran an idempotent operation that may
/// be repeated): connection refused or reset, connect timeout. Never TLS refusals (retrying
/// cannot fix a certificate) nor answer timeouts.
fn retryable(e: &reqwest::Error) -> bool {
    if tls_error(e).is_some() {
        return false;
    }
    e.is_connect() || (e.is_request() && !e.is_timeout())
}

/// The next cause of `err`. `io::Error::source` skips the error an io::Error wraps (and
/// hyper-rustls wraps rustls' io::Error in another), so look inside it first.
fn cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
        None => err.source(),
    }
}

/// The rustls error somewhere in `e`'s chain.
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        cur = cause(err);
    }
    None
}

/// `e` and its causes, without repeats: reqwest's own message alone ("error sending
/// request") says nothing.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = cause(err);
    }
    parts.join(": ")
}

#[async_trait]
impl Node for RemoteNode {
    fn name(&self) -> &str {
        &self.name
    }

    async fn images_present(&self, refs: &[String]) -> NodeResult<BTreeMap<String, bool>> {
        let req = Request::ImagesPresent { refs: refs.to_vec() };
        self.call(req, "checking images", Retry::Yes, READ_TIMEOUT).await
    }

    async fn taken_subnets(&self) -> NodeResult<Vec<String>> {
        self.call(Request::TakenSubnets {}, "listing subnets", Retry::Yes, READ_TIMEOUT).await
    }

    async fn find_containers(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        let req = Request::FindContainers { label: label.to_string(), value: value.map(str::to_string) };
        self.call(req, &format!("finding containers labelled {label}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn find_networks(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        let req = Request::FindNetworks { label: label.to_string(), value: value.map(str::to_string) };
        self.call(req, &format!("finding networks labelled {label}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn create_network(&self, spec: &NetworkSpec) -> NodeResult<()> {
        let doing = format!("creating network {}", spec.name);
        self.call(Request::CreateNetwork { spec: spec.clone() }, &doing, Retry::No, CHANGE_TIMEOUT).await
    }

    async fn remove_network(&self, name: &str) -> NodeResult<()> {
        let req = Request::RemoveNetwork { name: name.to_string() };
        self.call(req, &format!("removing network {name}"), Retry::Yes, LONG_TIMEOUT).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> NodeResult<()> {
        let doing = format!("creating container {}", spec.name);
        self.call(Request::CreateContainer { spec: spec.clone() }, &doing, Retry::No, LONG_TIMEOUT).await
    }

    async fn start_container(&self, name: &str) -> NodeResult<()> {
        let req = Request::StartContainer { name: name.to_string() };
        // The agent may make the container anew while the swarm does not attach its overlays.
        self.call(req, &format!("starting container {name}"), Retry::No, LONG_TIMEOUT).await
    }

    async fn remove_container(&self, name: &str) -> NodeResult<()> {
        let req = Request::RemoveContainer { name: name.to_string() };
        self.call(req, &format!("removing container {name}"), Retry::Yes, CHANGE_TIMEOUT).await
    }

    async fn read_file(&self, container: &str, path: &str) -> NodeResult<Option<String>> {
        let req = Request::ReadFile { container: container.to_string(), path: path.to_string() };
        self.call(req, &format!("reading {path} from {container}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn bgp_table(&self, router: &str) -> NodeResult<BgpTable> {
        let req = Request::BgpTable { router: router.to_string() };
        self.call(req, &format!("reading the BGP table of {router}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn bgp_summary(&self, router: &str) -> NodeResult<BgpSummary> {
        let req = Request::BgpSummary { router: router.to_string() };
        self.call(req, &format!("reading BGP sessions of {router}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn traceroute(&self, host: &str, target: Ipv4Addr, max_hops: u32, wait_ms: u32, one_at_a_time: bool) -> NodeResult<Probe> {
        let req = Request::Traceroute { host: host.to_string(), target, max_hops, wait_ms, one_at_a_time };
        // Each silent hop costs the agent's traceroute up to the wait (twice, for slack).
        let timeout = READ_TIMEOUT + Duration::from_millis(2 * u64::from(max_hops) * u64::from(wait_ms));
        self.call(req, &format!("traceroute from {host} to {target}"), Retry::Yes, timeout).await
    }

    async fn ping(&self, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32) -> NodeResult<Probe> {
        let req = Request::Ping { host: host.to_string(), target, size, dont_fragment, wait_ms };
        let timeout = READ_TIMEOUT + Duration::from_millis(wait_ms.into());
        self.call(req, &format!("ping from {host} to {target}"), Retry::Yes, timeout).await
    }

    async fn bgp_table6(&self, router: &str) -> NodeResult<BgpTable> {
        let req = Request::BgpTable6 { router: router.to_string() };
        self.call(req, &format!("reading the IPv6 BGP table of {router}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn traceroute6(&self, host: &str, target: std::net::Ipv6Addr, max_hops: u32, wait_ms: u32) -> NodeResult<Probe> {
        let req = Request::Traceroute6 { host: host.to_string(), target, max_hops, wait_ms };
        let timeout = READ_TIMEOUT + Duration::from_millis(2 * u64::from(max_hops) * u64::from(wait_ms));
        self.call(req, &format!("traceroute6 from {host} to {target}"), Retry::Yes, timeout).await
    }

    async fn ping6(&self, host: &str, target: std::net::Ipv6Addr, wait_ms: u32) -> NodeResult<Probe> {
        let req = Request::Ping6 { host: host.to_string(), target, wait_ms };
        let timeout = READ_TIMEOUT + Duration::from_millis(wait_ms.into());
        self.call(req, &format!("ping6 from {host} to {target}"), Retry::Yes, timeout).await
    }

    async fn bridge_forwarding(&self, enable: bool) -> NodeResult<()> {
        let doing = "updating the forwarding rule for vte* bridges";
        self.call(Request::BridgeForwarding { enable }, doing, Retry::Yes, READ_TIMEOUT).await
    }

    async fn vxlan_filter(&self, allow: Option<&[Ipv4Addr]>) -> NodeResult<()> {
        let doing = "updating the filter of link VXLAN (UDP 4790)";
        self.call(Request::VxlanFilter { allow: allow.map(<[Ipv4Addr]>::to_vec) }, doing, Retry::Yes, READ_TIMEOUT).await
    }

    async fn bgp_evpn_routes(&self, router: &str) -> NodeResult<EvpnRoutes> {
        let req = Request::BgpEvpnRoutes { router: router.to_string() };
        self.call(req, &format!("reading the EVPN routes of {router}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn evpn_vnis(&self, router: &str) -> NodeResult<EvpnVnis> {
        let req = Request::EvpnVnis { router: router.to_string() };
        self.call(req, &format!("reading the EVPN VNIs of {router}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn interface_counters(&self, container: &str) -> NodeResult<Vec<InterfaceCounters>> {
        let req = Request::InterfaceCounters { container: container.to_string() };
        self.call(req, &format!("reading interface counters of {container}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn apply_frr_config(&self, router: &str, config: &str, remove: &str) -> NodeResult<()> {
        let req = Request::ApplyFrrConfig { router: router.to_string(), config: config.to_string(), remove: remove.to_string() };
        let doing = format!("applying a new FRR configuration to {router}");
        self.call(req, &doing, Retry::No, LONG_TIMEOUT).await
    }

    async fn write_files(&self, container: &str, files: &[FileSpec]) -> NodeResult<()> {
        // Replaces the files: idempotent.
        let req = Request::WriteFiles { container: container.to_string(), files: files.to_vec() };
        self.call(req, &format!("writing files into {container}"), Retry::Yes, CHANGE_TIMEOUT).await
    }

    async fn connect_veth(&self, link: &VethSpec) -> NodeResult<()> {
        // A second try after a lost answer would find the interfaces made: not retried.
        let doing = format!("linking {} and {} (veth)", link.a.container, link.b.container);
        self.call(Request::ConnectVeth { link: link.clone() }, &doing, Retry::No, CHANGE_TIMEOUT).await
    }

    async fn connect_vxlan(&self, link: &VxlanSpec) -> NodeResult<()> {
        let doing = format!("linking {} to {} (VXLAN {})", link.container, link.remote, link.vni);
        self.call(Request::ConnectVxlan { link: link.clone() }, &doing, Retry::No, CHANGE_TIMEOUT).await
    }

    async fn own_interfaces(&self) -> NodeResult<Vec<String>> {
        self.call(Request::OwnInterfaces {}, "listing the node's interfaces", Retry::Yes, READ_TIMEOUT).await
    }

    async fn connect_macvlan(&self, link: &MacvlanSpec) -> NodeResult<()> {
        let doing = format!("attaching {} to the LAN of {} (macvlan)", link.container, link.parent);
        self.call(Request::ConnectMacvlan { link: link.clone() }, &doing, Retry::No, CHANGE_TIMEOUT).await
    }

    async fn remove_macvlans(&self, container: &str) -> NodeResult<()> {
        // Removes what is there: idempotent.
        let req = Request::RemoveMacvlans { container: container.to_string() };
        self.call(req, &format!("removing the macvlans of {container}"), Retry::Yes, CHANGE_TIMEOUT).await
    }

    async fn wait_bgpd(&self, router: &str, within_secs: u32) -> NodeResult<bool> {
        let req = Request::WaitBgpd { router: router.to_string(), within_secs };
        let doing = format!("waiting for bgpd in {router}");
        self.call(req, &doing, Retry::Yes, READ_TIMEOUT + Duration::from_secs(60)).await
    }

    async fn ping_until(&self, host: &str, target: Ipv4Addr, within_secs: u32) -> NodeResult<Probe> {
        let req = Request::PingUntil { host: host.to_string(), target, within_secs };
        let doing = format!("ping from {host} to {target}");
        let timeout = READ_TIMEOUT + Duration::from_secs(u64::from(within_secs.min(3600)));
        self.call(req, &doing, Retry::Yes, timeout).await
    }

    async fn iperf_server(&self, host: &str) -> NodeResult<()> {
        let req = Request::IperfServer { host: host.to_string() };
        self.call(req, &format!("starting iperf3 in {host}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn iperf_client(&self, host: &str, target: Ipv4Addr, seconds: u32) -> NodeResult<Probe> {
        let req = Request::IperfClient { host: host.to_string(), target, seconds };
        let timeout = READ_TIMEOUT + Duration::from_secs(u64::from(seconds.min(60)) + 10);
        self.call(req, &format!("iperf3 from {host} to {target}"), Retry::No, timeout).await
    }

    async fn ping_each(&self, host: &str, targets: &[Ipv4Addr], wait_ms: u32) -> NodeResult<Probe> {
        let req = Request::PingEach { host: host.to_string(), targets: targets.to_vec(), wait_ms };
        // Each batch of targets waits at most the wait and a little for three pings.
        let batches = targets.len().div_ceil(crate::node::PING_EACH_AT_ONCE) as u64;
        let timeout = READ_TIMEOUT + Duration::from_millis(batches * (u64::from(wait_ms) + 100));
        self.call(req, &format!("pinging {} targets from {host}", targets.len()), Retry::Yes, timeout).await
    }

    async fn ping_burst(&self, host: &str, target: std::net::IpAddr, count: u32, wait_ms: u32) -> NodeResult<Probe> {
        let req = Request::PingBurst { host: host.to_string(), target, count, wait_ms };
        let timeout = READ_TIMEOUT + Duration::from_millis(u64::from(count.min(1000)) * 10 + u64::from(wait_ms));
        self.call(req, &format!("pinging {target} from {host}"), Retry::Yes, timeout).await
    }

    async fn start_delay_line(&self, spec: &DelayLineSpec) -> NodeResult<()> {
        // Idempotent by design: a second start of the same end only sets its settings.
        let doing = format!("starting the delay line of {}:{}", spec.container, spec.ifname);
        self.call(Request::StartDelayLine { spec: spec.clone() }, &doing, Retry::Yes, CHANGE_TIMEOUT).await
    }

    async fn set_delay_line(&self, container: &str, ifname: &str, settings: DelaySettings) -> NodeResult<()> {
        let req = Request::SetDelayLine { container: container.to_string(), ifname: ifname.to_string(), settings };
        let doing = format!("changing the delay line of {container}:{ifname}");
        self.call(req, &doing, Retry::Yes, READ_TIMEOUT).await
    }

    async fn delay_lines(&self, container: &str) -> NodeResult<Vec<DelayLineStatus>> {
        let req = Request::DelayLines { container: container.to_string() };
        self.call(req, &format!("reading the delay lines of {container}"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn set_link_rate(&self, container: &str, ifname: &str, rate_bps: Option<u64>) -> NodeResult<()> {
        let req = Request::SetLinkRate { container: container.to_string(), ifname: ifname.to_string(), rate_bps };
        let doing = format!("setting the rate of {container}:{ifname}");
        self.call(req, &doing, Retry::Yes, READ_TIMEOUT).await
    }

    async fn underlay_rtts(&self, target: Ipv4Addr, count: u32) -> NodeResult<Vec<u64>> {
        let req = Request::UnderlayRtts { target, count };
        self.call(req, &format!("pinging {target} from the node"), Retry::Yes, READ_TIMEOUT).await
    }

    async fn vpn(&self, container: &str, op: &crate::vpn::VpnOp) -> NodeResult<Probe> {
        let doing = op.doing(container);
        // Reads may be retried; starting charon and the counting rules are not blind repeats.
        let retry = if matches!(op, crate::vpn::VpnOp::ListSas {} | crate::vpn::VpnOp::CountRead {}) { Retry::Yes } else { Retry::No };
        let req = Request::Vpn { container: container.to_string(), vpn: op.clone() };
        self.call(req, &doing, retry, LONG_TIMEOUT).await
    }
}
