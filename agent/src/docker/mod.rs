//! `LocalNode`: the `Node` operations against one Docker engine through bollard.
//!
//! Docker 20.10 speaks API 1.41: the version is negotiated down, one network is given at
//! create and the rest connected afterwards (after start, for swarm overlays on engines from
//! API 1.44 on: `containers::connect_after_start`), and files are uploaded as a tar archive through
//! the API before start (no bind mounts; `docker cp` onto tmpfs paths would be invisible).
//!
//! This file holds the node and its `Node` implementation, which hands each operation to the
//! module that does it: `containers`, `networks`, `links` (veth and VXLAN), `frr` (reads and
//! configuration of the routers' FRR), `probes` (ping, traceroute, counters), `delay` (delay
//! lines and rate limits on link ends) and `cgroup`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use bollard::models::{ContainerInspectResponse, NetworkInspect};
use bollard::Docker;

use crate::frr::{BgpSummary, BgpTable, EvpnRoutes, EvpnVnis};
use crate::node::{
    ContainerSpec, DelayLineSpec, DelayLineStatus, DelaySettings, FileSpec, Found, MacvlanSpec, NetworkSpec, Node, NodeError, NodeResult, Probe, VethSpec,
    VxlanSpec,
};
use crate::probe::InterfaceCounters;
use crate::scope;

mod cgroup;
mod containers;
pub mod delay;
mod frr;
mod links;
mod networks;
mod probes;
mod vpn;

/// A tar archive of (relative path, content, mode) entries, as Docker's archive upload and
/// image build take them (mtime 0: the same files give the same bytes).
pub fn pack_tar(entries: &[(&str, &[u8], u32)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, path, *data)?;
    }
    builder.into_inner()
}

pub struct LocalNode {
    name: String,
    docker: Docker,
    /// The engine's cgroup driver and hierarchy, once asked (`cgroup_parent`); None: no
    /// group of vnet-te's own.
    cgroup_layout: tokio::sync::OnceCell<Option<(cgroup::Driver, cgroup::Hierarchy)>>,
    /// Networks of created containers that are connected only once they run
    /// (`containers::connect_after_start`), by container name.
    after_start: std::sync::Mutex<std::collections::HashMap<String, Vec<crate::node::Attachment>>>,
    /// Created containers whose start or connects join a swarm network (`containers::create`).
    swarm_joining: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Held by every start or connect that joins a swarm network: one at a time per node
    /// (`containers::swarm_turn`).
    swarm_join: tokio::sync::Mutex<()>,
}

impl LocalNode {
    /// Connects to the local engine (DOCKER_HOST or the default socket) and negotiates the
    /// API version down to what the engine speaks.
    pub async fn connect(name: &str) -> NodeResult<Self> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(docker_err("connecting to the Docker engine"))?
            .negotiate_version()
            .await
            .map_err(docker_err("negotiating the Docker API version (is dockerd running?)"))?;
        Ok(LocalNode {
            name: name.to_string(),
            docker,
            cgroup_layout: tokio::sync::OnceCell::new(),
            after_start: Default::default(),
            swarm_joining: Default::default(),
            swarm_join: Default::default(),
        })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Inspects a container, refusing it unless it is vnet-te's (`scope`: its name and its
    /// path label). Every operation on a named container passes here first.
    async fn ours(&self, container: &str, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<ContainerInspectResponse> {
        let refuse = |message| NodeError::Refused { doing: doing(), message };
        scope::check_name("container", container).map_err(refuse)?;
        let info = self.docker.inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>).await.map_err(docker_err(doing()))?;
        scope::check_labels("container", container, info.config.as_ref().and_then(|c| c.labels.as_ref())).map_err(refuse)?;
        Ok(info)
    }

    /// Inspects a network, refusing it unless it is vnet-te's (name and path label).
    async fn our_network(&self, network: &str, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<NetworkInspect> {
        let refuse = |message| NodeError::Refused { doing: doing(), message };
        scope::check_name("network", network).map_err(refuse)?;
        let info = self.docker.inspect_network(network, None::<bollard::query_parameters::InspectNetworkOptions>).await.map_err(docker_err(doing()))?;
        scope::check_labels("network", network, info.labels.as_ref()).map_err(refuse)?;
        Ok(info)
    }

    /// The host PID of a running vnet-te container's init process (its network namespace),
    /// never one in this process's own network namespace (a container on the host network).
    async fn pid_of(&self, container: &str, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<u32> {
        let state = self.ours(container, doing).await?.state.unwrap_or_default();
        let pid = match state.pid {
            Some(pid) if state.running == Some(true) && pid > 0 => pid as u32,
            _ => return Err(NodeError::NotRunning { doing: doing(), container: container.to_string() }),
        };
        // Unknown when the namespace cannot be read: then neither can the operation enter it.
        if matches!(crate::netns::same_net_namespace(pid, std::process::id()), Ok(true)) {
            return Err(NodeError::Refused { doing: doing(), message: format!("container {container} shares the node's own network namespace") });
        }
        Ok(pid)
    }
}

fn docker_err(doing: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> NodeError {
    let doing = doing.into();
    move |source| NodeError::Docker { doing, source }
}

fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

#[async_trait]
impl Node for LocalNode {
    fn name(&self) -> &str {
        &self.name
    }

    async fn images_present(&self, refs: &[String]) -> NodeResult<BTreeMap<String, bool>> {
        containers::images_present(self, refs).await
    }

    async fn taken_subnets(&self) -> NodeResult<Vec<String>> {
        networks::taken_subnets(self).await
    }

    async fn find_containers(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        containers::find(self, label, value).await
    }

    async fn find_networks(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        networks::find(self, label, value).await
    }

    async fn create_network(&self, spec: &NetworkSpec) -> NodeResult<()> {
        networks::create(self, spec).await
    }

    async fn remove_network(&self, name: &str) -> NodeResult<()> {
        networks::remove(self, name).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> NodeResult<()> {
        containers::create(self, spec).await
    }

    async fn start_container(&self, name: &str) -> NodeResult<()> {
        containers::start(self, name).await
    }

    async fn remove_container(&self, name: &str) -> NodeResult<()> {
        containers::remove(self, name).await
    }

    async fn read_file(&self, container: &str, path: &str) -> NodeResult<Option<String>> {
        containers::read_file(self, container, path).await
    }

    async fn bgp_table(&self, router: &str) -> NodeResult<BgpTable> {
        frr::bgp_table(self, router).await
    }

    async fn bgp_summary(&self, router: &str) -> NodeResult<BgpSummary> {
        frr::bgp_summary(self, router).await
    }

    async fn traceroute(&self, host: &str, target: Ipv4Addr, max_hops: u32, wait_ms: u32, one_at_a_time: bool) -> NodeResult<Probe> {
        probes::traceroute(self, host, target, max_hops, wait_ms, one_at_a_time).await
    }

    async fn ping(&self, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool, wait_ms: u32) -> NodeResult<Probe> {
        probes::ping(self, host, target, size, dont_fragment, wait_ms).await
    }

    async fn bgp_table6(&self, router: &str) -> NodeResult<BgpTable> {
        frr::bgp_table6(self, router).await
    }

    async fn traceroute6(&self, host: &str, target: std::net::Ipv6Addr, max_hops: u32, wait_ms: u32) -> NodeResult<Probe> {
        probes::traceroute6(self, host, target, max_hops, wait_ms).await
    }

    async fn ping6(&self, host: &str, target: std::net::Ipv6Addr, wait_ms: u32) -> NodeResult<Probe> {
        probes::ping6(self, host, target, wait_ms).await
    }

    async fn ping_until(&self, host: &str, target: Ipv4Addr, within_secs: u32) -> NodeResult<Probe> {
        probes::ping_until(self, host, target, within_secs).await
    }

    async fn iperf_server(&self, host: &str) -> NodeResult<()> {
        probes::iperf_server(self, host).await
    }

    async fn iperf_client(&self, host: &str, target: Ipv4Addr, seconds: u32) -> NodeResult<Probe> {
        probes::iperf_client(self, host, target, seconds).await
    }

    async fn ping_each(&self, host: &str, targets: &[Ipv4Addr], wait_ms: u32) -> NodeResult<Probe> {
        probes::ping_each(self, host, targets, wait_ms).await
    }

    async fn ping_burst(&self, host: &str, target: std::net::IpAddr, count: u32, wait_ms: u32) -> NodeResult<Probe> {
        probes::ping_burst(self, host, target, count, wait_ms).await
    }

    async fn connect_vxlan(&self, link: &VxlanSpec) -> NodeResult<()> {
        links::vxlan(self, link).await
    }

    async fn connect_veth(&self, link: &VethSpec) -> NodeResult<()> {
        links::veth(self, link).await
    }

    async fn own_interfaces(&self) -> NodeResult<Vec<String>> {
        links::own_interfaces().await
    }

    async fn connect_macvlan(&self, link: &MacvlanSpec) -> NodeResult<()> {
        links::macvlan(self, link).await
    }

    async fn remove_macvlans(&self, container: &str) -> NodeResult<()> {
        links::remove_macvlans(self, container).await
    }

    async fn wait_bgpd(&self, router: &str, within_secs: u32) -> NodeResult<bool> {
        frr::wait_bgpd(self, router, within_secs).await
    }

    async fn bridge_forwarding(&self, enable: bool) -> NodeResult<()> {
        networks::bridge_forwarding(self, enable).await
    }

    async fn vxlan_filter(&self, allow: Option<&[Ipv4Addr]>) -> NodeResult<()> {
        networks::vxlan_filter(allow).await
    }

    async fn bgp_evpn_routes(&self, router: &str) -> NodeResult<EvpnRoutes> {
        frr::bgp_evpn_routes(self, router).await
    }

    async fn evpn_vnis(&self, router: &str) -> NodeResult<EvpnVnis> {
        frr::evpn_vnis(self, router).await
    }

    async fn interface_counters(&self, container: &str) -> NodeResult<Vec<InterfaceCounters>> {
        probes::interface_counters(self, container).await
    }

    async fn apply_frr_config(&self, router: &str, config: &str, remove: &str) -> NodeResult<()> {
        frr::apply_config(self, router, config, remove).await
    }

    async fn write_files(&self, container: &str, files: &[FileSpec]) -> NodeResult<()> {
        containers::write_files(self, container, files).await
    }

    async fn start_delay_line(&self, spec: &DelayLineSpec) -> NodeResult<()> {
        delay::start(self, spec).await
    }

    async fn set_delay_line(&self, container: &str, ifname: &str, settings: DelaySettings) -> NodeResult<()> {
        delay::set(container, ifname, settings).await
    }

    async fn delay_lines(&self, container: &str) -> NodeResult<Vec<DelayLineStatus>> {
        delay::list(container).await
    }

    async fn set_link_rate(&self, container: &str, ifname: &str, rate_bps: Option<u64>) -> NodeResult<()> {
        delay::set_rate(self, container, ifname, rate_bps).await
    }

    async fn underlay_rtts(&self, target: Ipv4Addr, count: u32) -> NodeResult<Vec<u64>> {
        probes::underlay_rtts(target, count).await
    }

    async fn vpn(&self, container: &str, op: &crate::vpn::VpnOp) -> NodeResult<Probe> {
        vpn::run(self, container, op).await
    }
}
