//! The agent service and `RemoteNode` over REAL mutual TLS on 127.0.0.1 ephemeral ports, in
//! front of logic-only fake `Node`s (and, when a Docker engine answers, the real LocalNode).

#[path = "../../tests/common/skip.rs"]
mod skip;
mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vnet_te_agent::frr::{BgpSummary, BgpTable, EvpnRoutes, EvpnVnis};
use vnet_te_agent::probe::{parse_interface_counters, InterfaceCounters};
use vnet_te_agent::delay::schedule::Progress;
use vnet_te_agent::delay::{Counters, Settings, Status};
use vnet_te_agent::node::{
    Attachment, ContainerRole, ContainerSpec, DelayLineSpec, DelayLineStatus, DelaySettings, FileSpec, Found, LineSchedule, LineStep, NetworkSpec,
    MacvlanSpec, Node, NodeError, NodeResult, Probe, VethEnd, VethSpec, VxlanSpec, WRITABLE_PREFIX,
};
use vnet_te_agent::request::{self, Request};
use support::{remote, start, start_on, Pki};
use vnet_te_agent::revocation::{RevocationList, Revocations, REVOKED_FILE};
use vnet_te_agent::tls::{self, IssuedCert};

// ---------------------------------------------------------------- fake node

/// Answers from fixed data; counts every operation that reached it.
struct Fake {
    name: String,
    calls: AtomicUsize,
    last_container: Mutex<Option<ContainerSpec>>,
    last_frr_config: Mutex<Option<(String, String, String)>>,
}

impl Fake {
    fn new(name: &str) -> Arc<Self> {
        Arc::new(Fake {
            name: name.into(),
            calls: AtomicUsize::new(0),
            last_container: Mutex::new(None),
            last_frr_config: Mutex::new(None),
        })
    }
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn fixture_table() -> BgpTable {
    let text = include_str!("../fixtures/frr-8.4/show-bgp-ipv4-unicast.json");
    BgpTable::parse(text).unwrap()
}

fn fixture_evpn() -> EvpnRoutes {
    EvpnRoutes::parse(include_str!("../fixtures/frr-8.4/show-bgp-l2vpn-evpn.json")).unwrap()
}

fn fixture_vnis() -> EvpnVnis {
    EvpnVnis::parse(include_str!("../fixtures/frr-8.4/show-evpn-vni.json")).unwrap()
}

fn fixture_counters() -> Vec<InterfaceCounters> {
    parse_interface_counters(include_str!("../fixtures/frr-8.4/ip-s-j-addr-show.json")).unwrap()
}

#[async_trait]
impl Node for Fake {
    fn name(&self) -> &str {
        &self.name
    }
    async fn images_present(&self, refs: &[String]) -> NodeResult<BTreeMap<String, bool>> {
        self.hit();
        Ok(refs.iter().map(|r| (r.clone(), r.starts_with("vnet-te/"))).collect())
    }
    async fn taken_subnets(&self) -> NodeResult<Vec<String>> {
        self.hit();
        Ok(vec!["172.17.0.0/16".into(), "10.199.0.0/29".into()])
    }
    async fn find_containers(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        self.hit();
        Ok(vec![Found {
            name: format!("{label}={}", value.unwrap_or("*")),
            labels: BTreeMap::from([(label.to_string(), value.unwrap_or("").to_string())]),
            running: value.is_some(),
            subnets: vec![],
        }])
    }
    async fn find_networks(&self, _label: &str, _value: Option<&str>) -> NodeResult<Vec<Found>> {
        self.hit();
        Ok(vec![])
    }
    async fn create_network(&self, spec: &NetworkSpec) -> NodeResult<()> {
        self.hit();
        Err(NodeError::Failed { doing: format!("creating network {}", spec.name), message: "subnet overlaps".into() })
    }
    async fn remove_network(&self, name: &str) -> NodeResult<()> {
        self.hit();
        if name == "boom" {
            return Err(NodeError::Failed {
                doing: "removing network boom".into(),
                message: "network boom has active endpoints".into(),
            });
        }
        Ok(())
    }
    async fn create_container(&self, spec: &ContainerSpec) -> NodeResult<()> {
        self.hit();
        *self.last_container.lock().unwrap() = Some(spec.clone());
        Ok(())
    }
    async fn start_container(&self, name: &str) -> NodeResult<()> {
        self.hit();
        Err(NodeError::NotRunning { doing: format!("starting {name}"), container: name.into() })
    }
    async fn remove_container(&self, _name: &str) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn read_file(&self, container: &str, path: &str) -> NodeResult<Option<String>> {
        self.hit();
        Ok((path == "/etc/frr/frr.conf").then(|| format!("! {container}\nrouter bgp 65001\n")))
    }
    async fn bgp_table(&self, _router: &str) -> NodeResult<BgpTable> {
        self.hit();
        Ok(fixture_table())
    }
    async fn bgp_summary(&self, _router: &str) -> NodeResult<BgpSummary> {
        self.hit();
        Ok(BgpSummary::parse("not json")?)
    }
    async fn traceroute(&self, host: &str, target: Ipv4Addr, max_hops: u32, wait_ms: u32, one_at_a_time: bool) -> NodeResult<Probe> {
        self.hit();
        let pace = if one_at_a_time { "one at a time" } else { "together" };
        Ok(Probe { success: true, output: format!("{host} -> {target} in {max_hops}, {wait_ms} ms each, {pace}") })
    }
    async fn ping(&self, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32) -> NodeResult<Probe> {
        self.hit();
        Ok(Probe { success: !dont_fragment, output: format!("{host} {target} {size:?} {wait_ms}") })
    }
    async fn bridge_forwarding(&self, _enable: bool) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn vxlan_filter(&self, _allow: Option<&[Ipv4Addr]>) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn bgp_evpn_routes(&self, _router: &str) -> NodeResult<EvpnRoutes> {
        self.hit();
        Ok(fixture_evpn())
    }
    async fn evpn_vnis(&self, _router: &str) -> NodeResult<EvpnVnis> {
        self.hit();
        Ok(fixture_vnis())
    }
    async fn interface_counters(&self, _container: &str) -> NodeResult<Vec<InterfaceCounters>> {
        self.hit();
        Ok(fixture_counters())
    }
    async fn apply_frr_config(&self, router: &str, config: &str, remove: &str) -> NodeResult<()> {
        self.hit();
        *self.last_frr_config.lock().unwrap() = Some((router.into(), config.into(), remove.into()));
        Ok(())
    }
    async fn write_files(&self, container: &str, files: &[FileSpec]) -> NodeResult<()> {
        self.hit();
        match files.iter().find(|f| !f.path.starts_with(WRITABLE_PREFIX)) {
            Some(f) => Err(NodeError::Failed {
                doing: format!("writing files into {container}"),
                message: format!("{} is outside {WRITABLE_PREFIX}", f.path),
            }),
            None => Ok(()),
        }
    }
    async fn connect_veth(&self, _link: &VethSpec) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn connect_vxlan(&self, link: &VxlanSpec) -> NodeResult<()> {
        self.hit();
        Err(NodeError::NotRunning { doing: format!("linking {}", link.container), container: link.container.clone() })
    }
    async fn own_interfaces(&self) -> NodeResult<Vec<String>> {
        self.hit();
        Ok(vec!["lo".into(), "eth0".into()])
    }
    async fn connect_macvlan(&self, _link: &MacvlanSpec) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn remove_macvlans(&self, _container: &str) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn wait_bgpd(&self, _router: &str, within_secs: u32) -> NodeResult<bool> {
        self.hit();
        Ok(within_secs > 0)
    }
    async fn ping_until(&self, host: &str, target: Ipv4Addr, within_secs: u32) -> NodeResult<Probe> {
        self.hit();
        Ok(Probe { success: true, output: format!("{host} {target} within {within_secs}") })
    }
    async fn iperf_server(&self, _host: &str) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn iperf_client(&self, host: &str, target: Ipv4Addr, seconds: u32) -> NodeResult<Probe> {
        self.hit();
        Ok(Probe { success: true, output: format!("{host} {target} {seconds}") })
    }
    async fn ping_each(&self, host: &str, targets: &[Ipv4Addr], wait_ms: u32) -> NodeResult<Probe> {
        self.hit();
        Ok(Probe { success: true, output: format!("{host} {targets:?} {wait_ms}") })
    }
    async fn ping_burst(&self, host: &str, target: std::net::IpAddr, count: u32, wait_ms: u32) -> NodeResult<Probe> {
        self.hit();
        Ok(Probe { success: true, output: format!("{host} {target} {count} {wait_ms}") })
    }
    async fn start_delay_line(&self, spec: &DelayLineSpec) -> NodeResult<()> {
        self.hit();
        if !spec.container.starts_with("vte-") {
            return Err(NodeError::Refused {
                doing: format!("starting the delay line of {}:{}", spec.container, spec.ifname),
                message: format!("container {:?} is not vnet-te's", spec.container),
            });
        }
        Ok(())
    }
    async fn set_delay_line(&self, _container: &str, _ifname: &str, _settings: DelaySettings) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn delay_lines(&self, _container: &str) -> NodeResult<Vec<DelayLineStatus>> {
        self.hit();
        Ok(fixture_delay_lines())
    }
    async fn set_link_rate(&self, _container: &str, _ifname: &str, _rate_bps: Option<u64>) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn underlay_rtts(&self, target: Ipv4Addr, count: u32) -> NodeResult<Vec<u64>> {
        self.hit();
        // A node that answers from the second echo on, each a microsecond slower.
        Ok((1..count).map(|i| u64::from(target.octets()[3]) * 100 + u64::from(i)).collect())
    }

    async fn vpn(&self, container: &str, op: &vnet_te_agent::vpn::VpnOp) -> NodeResult<Probe> {
        self.hit();
        Ok(Probe { success: true, output: format!("{container} {op:?}") })
    }
}

fn fixture_delay_lines() -> Vec<DelayLineStatus> {
    let status = Status {
        queue: 3,
        settings: Settings { delay_ms: 1280.5, jitter_ms: 0.25, loss_percent: 0.5 },
        reorder: false,
        queue_max_len: 8334,
        counters: Counters {
            queued: 110,
            released: 84,
            dropped: 26,
            dropped_down: 20,
            queue_len: 0,
            max_queue_len: 1,
            overruns: 0,
            verdict_errors: 0,
        },
        down: true,
        schedule: Some(Progress { start_unix_ms: 1_790_000_000_000, steps: 3, applied: 2, rate_errors: 0 }),
    };
    vec![
        DelayLineStatus { ifname: "eth1".into(), status: Some(status), error: None },
        DelayLineStatus { ifname: "eth2".into(), status: None, error: Some("connection refused".into()) },
    ]
}

/// Records every request that reached it, rebuilt from the method's arguments: a method
/// answered by the wrong `Node` method, or an argument lost or swapped on the way, shows as a
/// recorded request unlike the one sent.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Request>>,
}

impl Recorder {
    fn record(&self, req: Request) {
        self.seen.lock().unwrap().push(req);
    }
    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn probe(what: &str) -> Probe {
    Probe { success: true, output: what.into() }
}

#[async_trait]
impl Node for Recorder {
    fn name(&self) -> &str {
        "n1"
    }
    async fn images_present(&self, refs: &[String]) -> NodeResult<BTreeMap<String, bool>> {
        self.record(Request::ImagesPresent { refs: refs.to_vec() });
        Ok(refs.iter().map(|r| (r.clone(), true)).collect())
    }
    async fn taken_subnets(&self) -> NodeResult<Vec<String>> {
        self.record(Request::TakenSubnets {});
        Ok(vec!["10.0.0.0/8".into()])
    }
    async fn find_containers(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        self.record(Request::FindContainers { label: label.into(), value: value.map(Into::into) });
        Ok(vec![Found { name: "c".into(), labels: BTreeMap::new(), running: true, subnets: vec![] }])
    }
    async fn find_networks(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        self.record(Request::FindNetworks { label: label.into(), value: value.map(Into::into) });
        Ok(vec![Found { name: "n".into(), labels: BTreeMap::new(), running: true, subnets: vec!["10.1.0.0/29".into()] }])
    }
    async fn create_network(&self, spec: &NetworkSpec) -> NodeResult<()> {
        self.record(Request::CreateNetwork { spec: spec.clone() });
        Ok(())
    }
    async fn remove_network(&self, name: &str) -> NodeResult<()> {
        self.record(Request::RemoveNetwork { name: name.into() });
        Ok(())
    }
    async fn create_container(&self, spec: &ContainerSpec) -> NodeResult<()> {
        self.record(Request::CreateContainer { spec: spec.clone() });
        Ok(())
    }
    async fn start_container(&self, name: &str) -> NodeResult<()> {
        self.record(Request::StartContainer { name: name.into() });
        Ok(())
    }
    async fn remove_container(&self, name: &str) -> NodeResult<()> {
        self.record(Request::RemoveContainer { name: name.into() });
        Ok(())
    }
    async fn read_file(&self, container: &str, path: &str) -> NodeResult<Option<String>> {
        self.record(Request::ReadFile { container: container.into(), path: path.into() });
        Ok(Some(format!("{container}:{path}")))
    }
    async fn bgp_table(&self, router: &str) -> NodeResult<BgpTable> {
        self.record(Request::BgpTable { router: router.into() });
        Ok(fixture_table())
    }
    async fn bgp_summary(&self, router: &str) -> NodeResult<BgpSummary> {
        self.record(Request::BgpSummary { router: router.into() });
        Ok(BgpSummary::default())
    }
    async fn traceroute(&self, host: &str, target: Ipv4Addr, max_hops: u32, wait_ms: u32, one_at_a_time: bool) -> NodeResult<Probe> {
        self.record(Request::Traceroute { host: host.into(), target, max_hops, wait_ms, one_at_a_time });
        Ok(probe("traceroute"))
    }
    async fn ping(&self, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32) -> NodeResult<Probe> {
        self.record(Request::Ping { host: host.into(), target, size, dont_fragment, wait_ms });
        Ok(probe("ping"))
    }
    async fn bridge_forwarding(&self, enable: bool) -> NodeResult<()> {
        self.record(Request::BridgeForwarding { enable });
        Ok(())
    }
    async fn vxlan_filter(&self, allow: Option<&[Ipv4Addr]>) -> NodeResult<()> {
        self.record(Request::VxlanFilter { allow: allow.map(<[Ipv4Addr]>::to_vec) });
        Ok(())
    }
    async fn bgp_evpn_routes(&self, router: &str) -> NodeResult<EvpnRoutes> {
        self.record(Request::BgpEvpnRoutes { router: router.into() });
        Ok(fixture_evpn())
    }
    async fn evpn_vnis(&self, router: &str) -> NodeResult<EvpnVnis> {
        self.record(Request::EvpnVnis { router: router.into() });
        Ok(fixture_vnis())
    }
    async fn interface_counters(&self, container: &str) -> NodeResult<Vec<InterfaceCounters>> {
        self.record(Request::InterfaceCounters { container: container.into() });
        Ok(fixture_counters())
    }
    async fn apply_frr_config(&self, router: &str, config: &str, remove: &str) -> NodeResult<()> {
        self.record(Request::ApplyFrrConfig { router: router.into(), config: config.into(), remove: remove.into() });
        Ok(())
    }
    async fn write_files(&self, container: &str, files: &[FileSpec]) -> NodeResult<()> {
        self.record(Request::WriteFiles { container: container.into(), files: files.to_vec() });
        Ok(())
    }
    async fn connect_veth(&self, link: &VethSpec) -> NodeResult<()> {
        self.record(Request::ConnectVeth { link: link.clone() });
        Ok(())
    }
    async fn connect_vxlan(&self, link: &VxlanSpec) -> NodeResult<()> {
        self.record(Request::ConnectVxlan { link: link.clone() });
        Ok(())
    }
    async fn own_interfaces(&self) -> NodeResult<Vec<String>> {
        self.record(Request::OwnInterfaces {});
        Ok(vec!["lo".into(), "eth1".into()])
    }
    async fn connect_macvlan(&self, link: &MacvlanSpec) -> NodeResult<()> {
        self.record(Request::ConnectMacvlan { link: link.clone() });
        Ok(())
    }
    async fn remove_macvlans(&self, container: &str) -> NodeResult<()> {
        self.record(Request::RemoveMacvlans { container: container.into() });
        Ok(())
    }
    async fn wait_bgpd(&self, router: &str, within_secs: u32) -> NodeResult<bool> {
        self.record(Request::WaitBgpd { router: router.into(), within_secs });
        Ok(true)
    }
    async fn ping_until(&self, host: &str, target: Ipv4Addr, within_secs: u32) -> NodeResult<Probe> {
        self.record(Request::PingUntil { host: host.into(), target, within_secs });
        Ok(probe("ping_until"))
    }
    async fn iperf_server(&self, host: &str) -> NodeResult<()> {
        self.record(Request::IperfServer { host: host.into() });
        Ok(())
    }
    async fn iperf_client(&self, host: &str, target: Ipv4Addr, seconds: u32) -> NodeResult<Probe> {
        self.record(Request::IperfClient { host: host.into(), target, seconds });
        Ok(probe("iperf_client"))
    }
    async fn ping_each(&self, host: &str, targets: &[Ipv4Addr], wait_ms: u32) -> NodeResult<Probe> {
        self.record(Request::PingEach { host: host.into(), targets: targets.to_vec(), wait_ms });
        Ok(probe("ping_each"))
    }
    async fn ping_burst(&self, host: &str, target: std::net::IpAddr, count: u32, wait_ms: u32) -> NodeResult<Probe> {
        self.record(Request::PingBurst { host: host.into(), target, count, wait_ms });
        Ok(probe("ping_burst"))
    }
    async fn start_delay_line(&self, spec: &DelayLineSpec) -> NodeResult<()> {
        self.record(Request::StartDelayLine { spec: spec.clone() });
        Ok(())
    }
    async fn set_delay_line(&self, container: &str, ifname: &str, settings: DelaySettings) -> NodeResult<()> {
        self.record(Request::SetDelayLine { container: container.into(), ifname: ifname.into(), settings });
        Ok(())
    }
    async fn delay_lines(&self, container: &str) -> NodeResult<Vec<DelayLineStatus>> {
        self.record(Request::DelayLines { container: container.into() });
        Ok(fixture_delay_lines())
    }
    async fn set_link_rate(&self, container: &str, ifname: &str, rate_bps: Option<u64>) -> NodeResult<()> {
        self.record(Request::SetLinkRate { container: container.into(), ifname: ifname.into(), rate_bps });
        Ok(())
    }
    async fn underlay_rtts(&self, target: Ipv4Addr, count: u32) -> NodeResult<Vec<u64>> {
        self.record(Request::UnderlayRtts { target, count });
        Ok(vec![52, 48])
    }

    async fn vpn(&self, container: &str, op: &vnet_te_agent::vpn::VpnOp) -> NodeResult<Probe> {
        self.record(Request::Vpn { container: container.into(), vpn: op.clone() });
        Ok(Probe { success: true, output: String::new() })
    }
    async fn bgp_table6(&self, router: &str) -> NodeResult<BgpTable> {
        self.record(Request::BgpTable6 { router: router.into() });
        Ok(fixture_table())
    }
    async fn traceroute6(&self, host: &str, target: std::net::Ipv6Addr, max_hops: u32, wait_ms: u32) -> NodeResult<Probe> {
        self.record(Request::Traceroute6 { host: host.into(), target, max_hops, wait_ms });
        Ok(probe("traceroute6"))
    }
    async fn ping6(&self, host: &str, target: std::net::Ipv6Addr, wait_ms: u32) -> NodeResult<Probe> {
        self.record(Request::Ping6 { host: host.into(), target, wait_ms });
        Ok(probe("ping6"))
    }
}

/// One request of each operation, every argument set to something its neighbours do not
/// share (so a swap shows).
fn samples() -> Vec<Request> {
    let target = Ipv4Addr::new(10, 210, 1, 2);
    let end = |container: &str, ifname: &str| VethEnd {
        container: container.into(),
        ifname: ifname.into(),
        address: Some("10.199.0.1/30".parse().unwrap()),
    };
    vec![
        Request::ImagesPresent { refs: vec!["vnet-te/frr".into(), "vnet-te/host".into()] },
        Request::TakenSubnets {},
        Request::FindContainers { label: "vnet-te.path".into(), value: Some("p1".into()) },
        Request::FindNetworks { label: "vnet-te.role".into(), value: None },
        Request::CreateNetwork {
            spec: NetworkSpec {
                name: "l1".into(),
                driver: "bridge".into(),
                subnet: "10.199.0.0/29".into(),
                gateway: "10.199.0.1".into(),
                ip_range: "10.199.0.0/30".into(),
                bridge_name: Some("vte1".into()),
                mtu: Some(1450),
                labels: BTreeMap::from([("vnet-te.path".into(), "p1".into())]),
            },
        },
        Request::RemoveNetwork { name: "l2".into() },
        Request::CreateContainer { spec: container_spec("r1", "router bgp 65001\n".into()) },
        Request::StartContainer { name: "r2".into() },
        Request::RemoveContainer { name: "r3".into() },
        Request::ReadFile { container: "r4".into(), path: "/etc/frr/frr.conf".into() },
        Request::BgpTable { router: "r5".into() },
        Request::BgpSummary { router: "r6".into() },
        Request::Traceroute { host: "src".into(), target, max_hops: 24, wait_ms: 2500, one_at_a_time: true },
        Request::Ping { host: "dst".into(), target, size: Some(1400), dont_fragment: true, wait_ms: 3100 },
        Request::BridgeForwarding { enable: true },
        Request::VxlanFilter { allow: Some(vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)]) },
        Request::BgpEvpnRoutes { router: "r7".into() },
        Request::EvpnVnis { router: "r8".into() },
        Request::InterfaceCounters { container: "h1".into() },
        Request::ApplyFrrConfig { router: "r9".into(), config: "router bgp 65009\n".into(), remove: "no route-map X\n".into() },
        Request::WriteFiles {
            container: "h2".into(),
            files: vec![FileSpec { path: "/etc/vnet-te/delay".into(), mode: 0o644, content: "10ms".into() }],
        },
        Request::ConnectVeth { link: VethSpec { a: end("r1", "eth1"), b: end("r2", "eth2"), mtu: Some(9000), b_listens: true } },
        Request::ConnectVxlan {
            link: VxlanSpec {
                container: "r10".into(),
                ifname: "vx1".into(),
                vni: 4242,
                local: Ipv4Addr::new(192, 0, 2, 1),
                remote: Ipv4Addr::new(192, 0, 2, 2),
                port: 4789,
                mtu: None,
                address: None,
            },
        },
        Request::OwnInterfaces {},
        Request::ConnectMacvlan {
            link: MacvlanSpec {
                container: "vte-p1-src".into(),
                ifname: "eth1".into(),
                parent: "ens4".into(),
                address: "10.210.2.1/24".parse().unwrap(),
            },
        },
        Request::RemoveMacvlans { container: "vte-p1-src".into() },
        Request::WaitBgpd { router: "r11".into(), within_secs: 7 },
        Request::PingUntil { host: "src2".into(), target, within_secs: 9 },
        // An IPv6 target: a burst through an IPv6 tunnel crosses the wire as such.
        Request::PingBurst { host: "src3".into(), target: "fd7e:7e00:0:101::2".parse().unwrap(), count: 200, wait_ms: 1500 },
        Request::PingEach { host: "src5".into(), targets: vec![target, Ipv4Addr::new(10, 255, 0, 7)], wait_ms: 1200 },
        Request::IperfServer { host: "dst4".into() },
        Request::IperfClient { host: "src4".into(), target, seconds: 3 },
        Request::StartDelayLine {
            spec: DelayLineSpec {
                container: "vte-p1-r12".into(),
                ifname: "eth3".into(),
                queue: 5,
                delay_us: 1_280_000,
                jitter_us: 250,
                loss_ppm: 5_000,
                queue_max_len: Some(20_000),
                schedule: Some(LineSchedule {
                    start_unix_ms: 1_790_000_000_000,
                    steps: vec![
                        LineStep { at_ms: 5_000, delay_us: 2_500_000, jitter_us: 0, loss_ppm: 0, down: false, rate_bps: Some(8_000_000) },
                        LineStep { at_ms: 10_000, delay_us: 2_500_000, jitter_us: 0, loss_ppm: 0, down: true, rate_bps: None },
                        LineStep { at_ms: 20_000, delay_us: 0, jitter_us: 0, loss_ppm: 0, down: false, rate_bps: Some(0) },
                    ],
                }),
            },
        },
        Request::SetDelayLine {
            container: "vte-p1-r13".into(),
            ifname: "eth4".into(),
            settings: DelaySettings { delay_us: Some(20_000), jitter_us: None, loss_ppm: Some(10) },
        },
        Request::DelayLines { container: "vte-p1-r14".into() },
        Request::SetLinkRate { container: "vte-p1-r15".into(), ifname: "eth5".into(), rate_bps: Some(10_000_000) },
        Request::UnderlayRtts { target: Ipv4Addr::new(192, 0, 2, 16), count: 17 },
        Request::Vpn {
            container: "vte-p1-r16".into(),
            vpn: vnet_te_agent::vpn::VpnOp::CountStart { a: "10.210.0.3".parse().unwrap(), b: "10.210.1.3".parse().unwrap() },
        },
        Request::BgpTable6 { router: "r11".into() },
        Request::Traceroute6 { host: "src".into(), target: "fd7e:7e00:0:101::2".parse().unwrap(), max_hops: 26, wait_ms: 1700 },
        Request::Ping6 { host: "dst".into(), target: "fd7e:7e00:0:100::2".parse().unwrap(), wait_ms: 1900 },
    ]
}

// ---------------------------------------------------------------- harness

fn container_spec(name: &str, frr_conf: String) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        hostname: name.into(),
        image: "vnet-te/frr".into(),
        role: ContainerRole::Router,
        attachments: vec![Attachment { network: "l1".into(), address: Ipv4Addr::new(10, 199, 0, 2) }],
        files: vec![FileSpec { path: "/etc/frr/frr.conf".into(), mode: 0o640, content: frr_conf }],
        env: vec!["VNET_TE_F0=x".into()],
        cmd: vec!["/usr/lib/frr/frrinit.sh".into(), "start".into()],
        labels: BTreeMap::from([("vnet-te.path".into(), "p1".into())]),
        sysctls: BTreeMap::from([("net.ipv4.tcp_syn_retries".into(), "10".into())]),
        devices: Vec::new(),
        limits: Default::default(),
    }
}

/// The error and all its causes, including those io::Error keeps to itself.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(" | ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

fn failed(e: NodeError) -> (String, String) {
    match e {
        NodeError::Failed { doing, message } => (doing, message),
        other => panic!("expected NodeError::Failed, got {other:?}"),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn valid_controller_gets_health_and_round_trips_results_and_errors() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    let n1 = remote("n1", agent.addr, &pki.controller);
    let at = format!("node n1 ({})", agent.addr);

    let h = n1.health().await.unwrap();
    assert_eq!(h.node, "n1");
    assert_eq!(h.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(fake.calls(), 0, "health does not touch the node");

    assert_eq!(n1.taken_subnets().await.unwrap(), vec!["172.17.0.0/16", "10.199.0.0/29"]);
    let imgs = n1.images_present(&["vnet-te/frr".into(), "other".into()]).await.unwrap();
    assert_eq!(imgs, BTreeMap::from([("other".to_string(), false), ("vnet-te/frr".to_string(), true)]));
    let found = n1.find_containers("vnet-te.path", Some("p1")).await.unwrap();
    assert_eq!(found[0].name, "vnet-te.path=p1");
    assert!(found[0].running);
    let found = n1.find_containers("vnet-te.path", None).await.unwrap();
    assert_eq!(found[0].name, "vnet-te.path=*");
    assert!(!found[0].running);
    assert_eq!(n1.find_networks("x", None).await.unwrap(), vec![]);
    assert_eq!(n1.read_file("r1", "/etc/frr/frr.conf").await.unwrap().as_deref(), Some("! r1\nrouter bgp 65001\n"));
    assert_eq!(n1.read_file("r1", "/nope").await.unwrap(), None);
    let table = n1.bgp_table("r1").await.unwrap();
    assert_eq!(table, fixture_table());
    assert!(!table.routes.is_empty());
    let p = n1.traceroute("src", Ipv4Addr::new(10, 210, 1, 2), 24, 2500, true).await.unwrap();
    assert_eq!(p, Probe { success: true, output: "src -> 10.210.1.2 in 24, 2500 ms each, one at a time".into() });
    let p = n1.ping("src", Ipv4Addr::new(10, 0, 0, 1), Some(1400), true, 1000).await.unwrap();
    assert_eq!(p, Probe { success: false, output: "src 10.0.0.1 Some(1400) 1000".into() });
    n1.remove_network("fine").await.unwrap();
    n1.remove_container("c").await.unwrap();
    n1.bridge_forwarding(true).await.unwrap();

    // Errors come back with the agent's message, prefixed with the node and its address.
    let (doing, message) = failed(n1.remove_network("boom").await.unwrap_err());
    assert_eq!(doing, format!("{at}: removing network boom"));
    assert_eq!(message, "network boom has active endpoints");
    let (doing, message) = failed(
        n1.create_network(&NetworkSpec {
            name: "l1".into(),
            driver: "bridge".into(),
            subnet: "10.199.0.0/29".into(),
            gateway: "10.199.0.1".into(),
            ip_range: "10.199.0.0/30".into(),
            bridge_name: Some("vte1".into()),
            mtu: None,
            labels: BTreeMap::new(),
        })
        .await
        .unwrap_err(),
    );
    assert_eq!((doing.as_str(), message.as_str()), (format!("{at}: creating network l1").as_str(), "subnet overlaps"));
    match n1.start_container("r9").await.unwrap_err() {
        NodeError::NotRunning { doing, container } => {
            assert_eq!(doing, format!("{at}: starting r9"));
            assert_eq!(container, "r9");
        }
        other => panic!("expected NotRunning, got {other:?}"),
    }
    let (doing, message) = failed(n1.bgp_summary("r1").await.unwrap_err());
    assert!(doing.starts_with(&at), "{doing}");
    assert!(message.contains("show bgp summary json"), "{message}");

    // The operations added with EVPN and `path update`.
    let evpn = n1.bgp_evpn_routes("r1").await.unwrap();
    assert_eq!(evpn, fixture_evpn());
    assert!(!evpn.routes.is_empty());
    let vnis = n1.evpn_vnis("r1").await.unwrap();
    assert_eq!(vnis, fixture_vnis());
    assert!(!vnis.vnis.is_empty());
    let counters = n1.interface_counters("r1").await.unwrap();
    assert_eq!(counters, fixture_counters());
    assert!(!counters.is_empty());
    n1.apply_frr_config("r1", "router bgp 65001\n", "no route-map X\n").await.unwrap();
    assert_eq!(
        fake.last_frr_config.lock().unwrap().clone(),
        Some(("r1".into(), "router bgp 65001\n".into(), "no route-map X\n".into()))
    );
    let files = [FileSpec { path: "/etc/vnet-te/x".into(), mode: 0o644, content: "x".into() }];
    n1.write_files("h1", &files).await.unwrap();
    let files = [FileSpec { path: "/etc/passwd".into(), mode: 0o644, content: "x".into() }];
    let (doing, message) = failed(n1.write_files("h1", &files).await.unwrap_err());
    assert_eq!(doing, format!("{at}: writing files into h1"));
    assert_eq!(message, "/etc/passwd is outside /etc/vnet-te/");
    assert!(n1.wait_bgpd("r1", 5).await.unwrap());
    let p = n1.ping_until("src", Ipv4Addr::new(10, 0, 0, 1), 3).await.unwrap();
    assert_eq!(p.output, "src 10.0.0.1 within 3");
    match n1.connect_vxlan(&VxlanSpec {
        container: "r2".into(),
        ifname: "vx1".into(),
        vni: 7,
        local: Ipv4Addr::new(192, 0, 2, 1),
        remote: Ipv4Addr::new(192, 0, 2, 2),
        port: 4789,
        mtu: None,
        address: None,
    })
    .await
    .unwrap_err()
    {
        NodeError::NotRunning { doing, container } => {
            assert_eq!(doing, format!("{at}: linking r2"));
            assert_eq!(container, "r2");
        }
        other => panic!("expected NotRunning, got {other:?}"),
    }

    // Distance: delay lines and rates; a refusal comes back as a refusal.
    let end = |container: &str| DelayLineSpec {
        container: container.into(),
        ifname: "eth1".into(),
        queue: 1,
        delay_us: 100_000,
        jitter_us: 0,
        loss_ppm: 0,
        queue_max_len: None,
        schedule: None,
    };
    n1.start_delay_line(&end("vte-p1-r1")).await.unwrap();
    match n1.start_delay_line(&end("postgres")).await.unwrap_err() {
        NodeError::Refused { doing, message } => {
            assert_eq!(doing, format!("{at}: starting the delay line of postgres:eth1"));
            assert_eq!(message, "container \"postgres\" is not vnet-te's");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    n1.set_delay_line("vte-p1-r1", "eth1", DelaySettings { delay_us: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(n1.delay_lines("vte-p1-r1").await.unwrap(), fixture_delay_lines());
    n1.set_link_rate("vte-p1-r1", "eth1", None).await.unwrap();
    assert_eq!(n1.underlay_rtts(Ipv4Addr::new(10, 196, 255, 3), 4).await.unwrap(), vec![301, 302, 303]);
    assert_eq!(fake.calls(), 32);
}

#[tokio::test]
async fn large_container_specs_cross_intact() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    let n1 = remote("n1", agent.addr, &pki.controller);
    // Well past axum's 2 MiB default body limit.
    let spec = container_spec("r1", "router bgp 65001\n".repeat(300_000));
    assert!(serde_json::to_vec(&spec).unwrap().len() > 5 * 1024 * 1024);
    n1.create_container(&spec).await.unwrap();
    assert_eq!(fake.last_container.lock().unwrap().as_ref(), Some(&spec));
}

#[tokio::test]
async fn unknown_operations_do_not_exist() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls::client_config(&pki.controller).unwrap())
        .resolve("n1", agent.addr)
        .build()
        .unwrap();
    let url = |path: &str| format!("https://n1:{}{path}", agent.addr.port());
    let post = |path: &str, body: &str| {
        client.post(url(path)).header("content-type", "application/json").body(body.to_string()).send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status();
        (status, serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap())
    };
    for path in ["/v1/exec", "/v1/shell", "/v1/remove_network"] {
        let (status, body) = answer(post(path, r#"{"cmd":["id"]}"#).await.unwrap()).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["kind"], "unknown_operation");
    }
    for op in ["exec", "shell", "run"] {
        let (status, body) = answer(post("/v1/op", &format!(r#"{{"op":"{op}","cmd":["id"]}}"#)).await.unwrap()).await;
        assert_eq!(status, 404, "{op}");
        assert_eq!(body["kind"], "unknown_operation");
        assert_eq!(body["doing"], format!("decoding {op}"));
    }
    // Malformed requests: a JSON error body, the node is not called.
    let (status, body) = answer(post("/v1/op", r#"{"op":"remove_network"}"#).await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(body["kind"], "bad_request");
    assert_eq!(body["doing"], "decoding remove_network");
    assert!(body["message"].as_str().unwrap().contains("missing field `name`"), "{body}");
    let (status, body) = answer(post("/v1/op", "not json").await.unwrap()).await;
    assert_eq!((status.as_u16(), body["kind"].as_str()), (400, Some("bad_request")));
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn handshake_without_client_certificate_fails_with_no_response() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;

    // Raw TLS: trusts the CA, presents nothing.
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(pki.ca.cert_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(agent.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("n1").unwrap();
    // TLS 1.3: the client may consider its side done before the server judged its (empty)
    // certificate; the refusal then arrives as an alert on the first read.
    let outcome = async {
        let mut s = connector.connect(name, tcp).await?;
        s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: n1\r\n\r\n").await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    }
    .await;
    let err = match outcome {
        Ok(bytes) => panic!("the agent answered without a client certificate: {:?}", String::from_utf8_lossy(&bytes)),
        Err(e) => e,
    };
    let rustls_err = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(rustls_err, Some(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired))),
        "expected a certificate_required alert, got {err:?}"
    );

    // Through reqwest too: an error, never a response.
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut r = rustls::RootCertStore::empty();
            for c in rustls_pki_types::pem::PemObject::pem_slice_iter(pki.ca.cert_pem().as_bytes()) {
                r.add(c.unwrap()).unwrap();
            }
            r
        })
        .with_no_client_auth();
    let client = reqwest::Client::builder().tls_backend_preconfigured(config).resolve("n1", agent.addr).build().unwrap();
    let e = client.get(format!("https://n1:{}/v1/health", agent.addr.port())).send().await.unwrap_err();
    assert!(chain(&e).contains("CertificateRequired"), "{}", chain(&e));
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let other = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    // Trusts our CA (so the server is accepted) but presents a certificate of another CA.
    let id = IssuedCert { ca_pem: pki.ca.cert_pem().to_string(), ..other.controller.clone() };
    let n1 = remote("n1", agent.addr, &id);
    let started = Instant::now();
    let (doing, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert_eq!(doing, format!("node n1 ({}): listing subnets", agent.addr));
    assert!(message.contains("received fatal alert: UnknownCA"), "{message}");
    assert!(!message.contains("attempts"), "TLS refusals are not retried: {message}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn agent_certificate_cannot_act_as_a_client() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    // Same CA, but serverAuth only: a compromised agent cannot drive another one.
    let n1 = remote("n1", agent.addr, &pki.agent("n2"));
    let (_, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert!(message.contains("received fatal alert"), "{message}");
    assert!(!message.contains("attempts"), "TLS refusals are not retried: {message}");
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn client_trusting_another_ca_refuses_the_agent() {
    let pki = Pki::new();
    let other = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    // A valid controller certificate, but trusting only another CA.
    let id = IssuedCert { ca_pem: other.ca.cert_pem().to_string(), ..pki.controller.clone() };
    let n1 = remote("n1", agent.addr, &id);
    let (doing, message) = failed(n1.health().await.unwrap_err());
    assert!(doing.starts_with(&format!("node n1 ({})", agent.addr)), "{doing}");
    assert!(message.contains("invalid peer certificate: UnknownIssuer"), "{message}");
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn agent_with_another_nodes_certificate_is_refused() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    // n2's certificate (which also covers 127.0.0.1) served where the controller expects n1.
    let agent = start(&pki.agent("n2"), fake.clone()).await;
    let n1 = remote("n1", agent.addr, &pki.controller);
    let (_, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert!(message.contains("certificate not valid for name \"n1\""), "{message}");
    assert!(!message.contains("attempts"), "TLS refusals are not retried: {message}");
    assert_eq!(fake.calls(), 0);
    // Named as the certificate says, it works.
    assert_eq!(remote("n2", agent.addr, &pki.controller).taken_subnets().await.unwrap().len(), 2);
}

#[tokio::test]
async fn idempotent_reads_retry_until_the_agent_is_up_and_creations_do_not() {
    let pki = Pki::new();
    // A port that nobody listens on (yet).
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();

    let n1 = remote("n1", addr, &pki.controller);
    let started = Instant::now();
    let (doing, message) = failed(n1.start_container("r1").await.unwrap_err());
    assert_eq!(doing, format!("node n1 ({addr}): starting container r1"));
    assert!(!message.contains("attempts"), "{message}");
    assert!(started.elapsed() < Duration::from_millis(500), "no backoff for a creation");

    let (doing, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert_eq!(doing, format!("node n1 ({addr}): listing subnets"));
    assert!(message.contains(&format!("after {} attempts", vnet_te_agent::remote::ATTEMPTS)), "{message}");

    // The agent comes up while the client is backing off: the read succeeds.
    let fake = Fake::new("n1");
    let cert = pki.agent("n1");
    let late = tokio::spawn({
        let fake = fake.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            start_on(TcpListener::bind(addr).await.unwrap(), &cert, fake).await
        }
    });
    assert_eq!(n1.taken_subnets().await.unwrap().len(), 2);
    assert_eq!(fake.calls(), 1);
    drop(late.await.unwrap());
}

#[tokio::test]
async fn real_local_node_through_the_agent_when_docker_answers() {
    let docker_up = std::process::Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    const TEST: &str = "mtls::real_local_node_through_the_agent_when_docker_answers";
    if !docker_up {
        skip::skip_or_fail(TEST, skip::Requirement::Docker, "no Docker engine answers `docker info`");
        return;
    }
    let local = match vnet_te_agent::docker::LocalNode::connect("local").await {
        Ok(l) => Arc::new(l),
        Err(e) => {
            skip::skip_or_fail(TEST, skip::Requirement::Docker, &format!("connecting to the Docker engine: {e}"));
            return;
        }
    };
    let pki = Pki::new();
    let agent = start(&pki.agent("local"), local.clone()).await;
    let remote = remote("local", agent.addr, &pki.controller);
    assert_eq!(remote.health().await.unwrap().node, "local");
    // Other processes may create or remove networks meanwhile: compare sorted, a few tries.
    let mut same = false;
    for _ in 0..3 {
        let mut direct = local.taken_subnets().await.unwrap();
        let mut via_agent = remote.taken_subnets().await.unwrap();
        assert!(!direct.is_empty(), "the default bridge network has a subnet");
        direct.sort();
        via_agent.sort();
        if direct == via_agent {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(same, "taken_subnets through the agent differs from LocalNode's");
    // A read of an absent container comes back as the agent's Docker error.
    let (doing, message) = failed(remote.bgp_table("vte-no-such-container-xyz").await.unwrap_err());
    assert!(doing.starts_with(&format!("node local ({})", agent.addr)), "{doing}");
    assert!(message.to_lowercase().contains("no such container"), "{message}");
}

#[tokio::test]
async fn every_request_round_trips_and_reaches_its_own_method() {
    let samples = samples();
    let mut ops: Vec<&str> = samples.iter().map(Request::op).collect();
    ops.sort_unstable();
    let mut known = request::Request::ops().to_vec();
    known.sort_unstable();
    assert_eq!(ops, known, "samples() has one request of each operation");

    let recorder = Recorder::default();
    for req in &samples {
        let json = serde_json::to_vec(req).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["op"], req.op(), "op() names the serde tag");
        assert_eq!(request::parse(&json).as_ref(), Ok(req));
        request::dispatch(&recorder, req.clone()).await.unwrap();
        assert_eq!(recorder.take(), vec![req.clone()], "dispatch of {}", req.op());
    }
}

#[tokio::test]
async fn every_request_crosses_the_agent_to_its_own_method() {
    // Each request through RemoteNode's method for it, the wire, the agent's dispatch, to the
    // recording node behind the agent: same request, same answer as straight from the node.
    let pki = Pki::new();
    let recorder = Arc::new(Recorder::default());
    let agent = start(&pki.agent("n1"), recorder.clone()).await;
    let n1 = remote("n1", agent.addr, &pki.controller);
    for req in samples() {
        let direct = request::dispatch(recorder.as_ref(), req.clone()).await.unwrap();
        recorder.take();
        let via_agent = request::dispatch(&n1, req.clone()).await.unwrap();
        assert_eq!(recorder.take(), vec![req.clone()], "{} through RemoteNode and the agent", req.op());
        assert_eq!(via_agent, direct, "answer to {}", req.op());
    }
}

/// Sets the soft limit on open descriptors for the test's life, restoring it after.
struct DescriptorLimit(u64, u64);

impl DescriptorLimit {
    fn set(soft: u64) -> Result<Self, String> {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (old, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
        if hard < soft {
            return Err(format!("the hard limit on open files is {hard}, below {soft}"));
        }
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(|e| e.to_string())?;
        Ok(DescriptorLimit(old, hard))
    }
}

impl Drop for DescriptorLimit {
    fn drop(&mut self) {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, self.0, self.1);
    }
}

#[tokio::test]
async fn idle_connections_never_keep_the_controller_out() {
    const TEST: &str = "mtls::idle_connections_never_keep_the_controller_out";
    const IDLE: usize = 2000;
    let pki = Pki::new();
    let agent = start(&pki.agent("n1"), Fake::new("n1")).await;
    // Room for the idle clients' own descriptors and a few hundred more, not for an agent
    // that keeps another descriptor for each of them.
    let limit = match DescriptorLimit::set(IDLE as u64 + 400) {
        Ok(l) => l,
        Err(reason) => {
            skip::skip(TEST, &reason);
            return;
        }
    };
    // Idle connections from another loopback address than the controller's, that never
    // start a handshake.
    let mut idle = Vec::with_capacity(IDLE);
    let source: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..IDLE {
        let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket {i}: {e}"));
        socket.bind(source).unwrap_or_else(|e| panic!("binding socket {i}: {e}"));
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.connect(agent.addr)).await {
            Ok(Ok(s)) => idle.push(s),
            Ok(Err(e)) => panic!("idle connection {i}: {e}"),
            Err(_) => panic!("idle connection {i}: not accepted within 20 s"),
        }
    }
    let n1 = remote("n1", agent.addr, &pki.controller);
    let asked = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(2), n1.health()).await;
    let took = asked.elapsed();
    drop(n1);
    drop(idle);
    drop(limit);
    let health = health.unwrap_or_else(|_| panic!("no health answer within 2 s beside {IDLE} idle connections"));
    assert_eq!(health.unwrap().node, "n1");
    eprintln!("health beside {IDLE} idle connections: {} ms", took.as_millis());
}

// ---------------------------------------------------------------- revocation

/// An agent in this process whose revocation list is the file `revoked.txt` in `dir`.
async fn start_with_revocations(cert: &IssuedCert, node: Arc<dyn Node>, dir: &std::path::Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let revoked = Revocations::file(&dir.join(REVOKED_FILE)).unwrap();
    let config = tls::server_config_with(cert, Arc::new(revoked)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        vnet_te_agent::server::serve(listener, config, node, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop)
}

/// Writes the list the way the controller's copy lands: a whole file renamed into place.
fn write_list(dir: &std::path::Path, list: &RevocationList) {
    let tmp = dir.join("revoked.txt.tmp");
    std::fs::write(&tmp, list.render()).unwrap();
    std::fs::rename(&tmp, dir.join(REVOKED_FILE)).unwrap();
}

#[tokio::test]
async fn faults_revoked_controller_certificate_is_refused_and_a_fresh_one_accepted() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = start_with_revocations(&pki.agent("n1"), fake.clone(), dir.path()).await;
    assert_eq!(remote("n1", addr, &pki.controller).health().await.unwrap().node, "n1");

    // Revoked while the agent runs: the next handshake reads the changed list.
    let mut list = RevocationList::default();
    list.revoke_pem(&pki.controller.cert_pem, "controller, replaced").unwrap();
    write_list(dir.path(), &list);
    let calls = fake.calls();
    let (_, message) = failed(remote("n1", addr, &pki.controller).taken_subnets().await.unwrap_err());
    assert!(message.contains("received fatal alert: CertificateRevoked"), "{message}");
    assert!(!message.contains("attempts"), "TLS refusals are not retried: {message}");
    assert_eq!(fake.calls(), calls, "nothing reached the node");

    // A fresh certificate of the same CA is accepted.
    let fresh = pki.ca.issue_controller("vnet-te controller").unwrap();
    assert_eq!(remote("n1", addr, &fresh).taken_subnets().await.unwrap().len(), 2);

    // A list that cannot be read refuses every certificate rather than none.
    std::fs::write(dir.path().join(REVOKED_FILE), "not a fingerprint\n").unwrap();
    let (_, message) = failed(remote("n1", addr, &fresh).health().await.unwrap_err());
    assert!(message.contains("received fatal alert"), "{message}");
    write_list(dir.path(), &list);
    assert_eq!(remote("n1", addr, &fresh).health().await.unwrap().node, "n1");
}

#[tokio::test]
async fn faults_controller_refuses_an_agent_with_a_revoked_certificate() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let old = pki.agent("n1");
    let agent = start(&old, fake.clone()).await;
    let mut list = RevocationList::default();
    list.revoke_pem(&old.cert_pem, "agent n1, reissued").unwrap();
    let client = tls::client_config_with(&pki.controller, list.clone()).unwrap();
    let n1 = vnet_te_agent::remote::RemoteNode::new("n1", agent.addr, &client).unwrap();
    let (_, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert!(message.contains("invalid peer certificate: Revoked"), "{message}");
    assert_eq!(fake.calls(), 0);
    // The reissued certificate is trusted by the same client.
    let reissued = start(&pki.agent("n1"), fake.clone()).await;
    let n1 = vnet_te_agent::remote::RemoteNode::new("n1", reissued.addr, &client).unwrap();
    assert_eq!(n1.taken_subnets().await.unwrap().len(), 2);
}

/// The `vnet-te-agent` binary itself, serving this machine's engine, and its log.
struct AgentProcess {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn faults_real_agent_refuses_a_revoked_controller_certificate_and_logs_why() {
    const TEST: &str = "mtls::faults_real_agent_refuses_a_revoked_controller_certificate_and_logs_why";
    if vnet_te_agent::docker::LocalNode::connect("n1").await.is_err() {
        return skip::skip_or_fail(TEST, skip::Requirement::Docker, "no Docker engine answers (the agent serves one)");
    }
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("agent");
    pki.agent("n1").save(&certs).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.path().join("agent.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_vnet-te-agent"))
        .args(["--node-name", "n1", "--listen", &addr.to_string(), "--cert-dir"])
        .arg(&certs)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let agent = AgentProcess { child, log };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match remote("n1", addr, &pki.controller).health().await {
            Ok(h) => {
                assert_eq!(h.node, "n1");
                break;
            }
            Err(e) if Instant::now() > deadline => panic!("the agent did not answer within 20 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    let mut list = RevocationList::default();
    let fp = list.revoke_pem(&pki.controller.cert_pem, "controller vnet-te controller, rotated").unwrap();
    write_list(&certs, &list);
    let (_, message) = failed(remote("n1", addr, &pki.controller).health().await.unwrap_err());
    assert!(message.contains("received fatal alert: CertificateRevoked"), "{message}");
    let fresh = pki.ca.issue_controller("vnet-te controller").unwrap();
    assert_eq!(remote("n1", addr, &fresh).health().await.unwrap().node, "n1");

    // The agent says which certificate it refused and why.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&agent.log).unwrap_or_default();
        if text.contains(&format!("client certificate refused: certificate {fp} is revoked (controller vnet-te controller, rotated)")) {
            break;
        }
        assert!(Instant::now() < deadline, "no refusal with its reason in the agent's log:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
