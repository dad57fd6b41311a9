//! `LocalNode`: the `Node` operations against one Docker engine through bollard.
//!
//! Docker 20.10 speaks API 1.41: the version is negotiated down, one network is given at
//! create and the rest connected afterwards, and files are uploaded as a tar archive through
//! the API before start (no bind mounts; `docker cp` onto tmpfs paths would be invisible).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};

use crate::frr::{BgpSummary, BgpTable, EvpnRoutes, EvpnVnis};
use crate::node::{
    ContainerRole, ContainerSpec, FileSpec, Found, NetworkSpec, Node, NodeError, NodeResult, Probe, VethSpec,
    VxlanSpec, WRITABLE_PREFIX,
};
use crate::probe::InterfaceCounters;
use crate::{netns, vty};

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
    /// The cgroup parent of vnet-te's containers, once prepared (`cgroup_parent`).
    cgroup_parent: tokio::sync::OnceCell<Option<String>>,
}

/// Sends one RTM_NEWLINK from this process's network namespace.
async fn netlink_add(msg: rtnetlink::packet_route::link::LinkMessage, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<()> {
    netns::here(|handle| async move { handle.link().add(msg).execute().await.map_err(std::io::Error::other) }).await.map_err(|e| {
        let m = e.to_string();
        let message = if m.contains("Operation not permitted") || m.contains("EPERM") {
            format!("{m}: making links needs CAP_NET_ADMIN on the node (run as root, or use `wiring: docker`)")
        } else {
            m
        };
        NodeError::Failed { doing: doing(), message }
    })
}

/// Finishes a link end just made in the namespace of `pid`: ARP retries every 0.1 s there
/// (see `netns::enter`), then, when vnet-te addresses it, its address and up.
async fn link_end(pid: u32, ifname: &str, address: Option<ipnet::Ipv4Net>, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<()> {
    let fail = |message: String| NodeError::Failed { doing: doing(), message };
    let conn = netns::enter(pid, ifname, address.is_some()).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(1) {
            ": addressing links needs CAP_SYS_ADMIN and CAP_NET_ADMIN on the node (run as root, or use `wiring: docker`)"
        } else {
            ""
        };
        fail(format!("{ifname} in the namespace of process {pid}: {e}{hint}"))
    })?;
    let (Some((handle, driver)), Some(address)) = (conn, address) else { return Ok(()) };
    let r = netns::address_and_up(&handle, ifname, address).await;
    driver.abort();
    r.map_err(|e| fail(format!("{ifname} {address}: {e}")))
}

impl LocalNode {
    /// See `prepare_cgroup`; prepared once per process.
    async fn cgroup_parent(&self) -> Option<String> {
        self.cgroup_parent.get_or_init(|| prepare_cgroup(&self.docker)).await.clone()
    }

    /// The host PID of a running container's init process (its network namespace).
    async fn pid_of(&self, container: &str, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<u32> {
        let info = self
            .docker
            .inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .map_err(docker_err(doing()))?;
        let state = info.state.unwrap_or_default();
        match state.pid {
            Some(pid) if state.running == Some(true) && pid > 0 => Ok(pid as u32),
            _ => Err(NodeError::NotRunning { doing: doing(), container: container.to_string() }),
        }
    }
}

fn docker_err(doing: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> NodeError {
    let doing = doing.into();
    move |source| NodeError::Docker { doing, source }
}

fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

const BGP_PORT: u16 = 179;

/// Seconds between echo requests (ping runs as root in the host containers, where iputils
/// allows intervals under 0.2 s): three replies take 0.05 s instead of 0.2 s at 0.1 s, and a
/// path that has just come up is seen within 0.02 s.
const PING_INTERVAL: &str = "0.02";

/// How long the connecting end of a veth link waits for zebra to address the listening end
/// (see `VethSpec::b_listens`) before it joins anyway: a slow zebra then costs a session
/// retry, never the link.
const LISTENER_ADDRESS_WAIT: Duration = Duration::from_secs(3);

/// The cgroup (under each controller's root) that holds vnet-te's containers.
const CGROUP: &str = "vnet-te";
/// Its CPU weight: eight times a process's (or Docker's own group's) at nice 0, cgroup v1
/// shares and v2 weight. Under Docker's `/docker` group all containers together weigh as much
/// as one dockerd, containerd or runc thread; while a create starts dozens of containers
/// those threads starve the routers' FRR (a bgpd took 0.6–1.4 s to listen instead of 0.1 s).
const CGROUP_CPU_SHARES: u32 = 8192;
const CGROUP_CPU_WEIGHT: u32 = 800;

/// Makes (or finds) the `vnet-te` cgroup with its CPU weight and returns its path for Docker's
/// `cgroup_parent`. Only with Docker's `cgroupfs` driver (with systemd's, the parent would be a
/// slice: left as Docker has it), and never fatal: where the cgroup cannot be made or weighted
/// (a read-only /sys/fs/cgroup in docker-in-docker, say), containers stay where Docker puts
/// them. `VNET_TE_CGROUP=off` leaves them there too (for measurements).
async fn prepare_cgroup(docker: &Docker) -> Option<String> {
    if std::env::var("VNET_TE_CGROUP").is_ok_and(|v| v == "off") {
        return None;
    }
    let info = docker.info().await.map_err(|e| tracing::debug!(error = %e, "docker info failed; no cgroup parent")).ok()?;
    if info.cgroup_driver != Some(bollard::models::SystemInfoCgroupDriverEnum::CGROUPFS) {
        tracing::debug!(driver = ?info.cgroup_driver, "not the cgroupfs driver; no cgroup parent");
        return None;
    }
    let v2 = info.cgroup_version == Some(bollard::models::SystemInfoCgroupVersionEnum::_2);
    let r = if v2 {
        let dir = std::path::Path::new("/sys/fs/cgroup").join(CGROUP);
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("cpu.weight"), CGROUP_CPU_WEIGHT.to_string()))
    } else {
        let dir = std::path::Path::new("/sys/fs/cgroup/cpu").join(CGROUP);
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("cpu.shares"), CGROUP_CPU_SHARES.to_string()))
    };
    match r {
        Ok(()) => Some(format!("/{CGROUP}")),
        Err(e) => {
            tracing::debug!(error = %e, "cannot prepare the vnet-te cgroup; containers stay under Docker's");
            None
        }
    }
}

/// Waits until zebra in the container of `pid` has announced an IPv4 address on `ifname` to
/// its daemons: zebra lists an interface's IPv4 addresses (`show interface json`) only once
/// the kernel has confirmed them, in the same step that sends them to bgpd. The kernel alone
/// is not enough: it shows the address while zebra has yet to read it, and a session accepted
/// then is reset. Without zebra's socket (not FRR), the kernel's word is taken. Polls every
/// 5 ms; false at `within`.
async fn zebra_announced(pid: u32, ifname: &str, within: Duration) -> std::io::Result<bool> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match vty::show(pid, vty::Daemon::Zebra, "show interface json").await {
            Ok(out) => {
                if interface_has_ipv4(&out, ifname) {
                    return Ok(true);
                }
            }
            Err(vty::VtyError::Unreachable { .. }) => {
                return netns::wait_ipv4(pid, ifname, deadline.saturating_duration_since(tokio::time::Instant::now())).await
            }
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether zebra's `show interface json` lists an IPv4 address on `ifname`.
fn interface_has_ipv4(json: &str, ifname: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return false };
    v.get(ifname).and_then(|i| i.get("ipAddresses")).and_then(|a| a.as_array()).is_some_and(|addrs| {
        addrs.iter().any(|a| a.get("address").and_then(|s| s.as_str()).is_some_and(|s| s.parse::<ipnet::Ipv4Net>().is_ok()))
    })
}

/// A name for a veth end while it waits in this process's namespace: unique per process
/// and link, `vtx` + 12 hex digits (15 characters, the kernel's limit).
fn staging_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("vtx{:06x}{:06x}", std::process::id() & 0xff_ffff, n & 0xff_ffff)
}
/// Capabilities FRR needs (not --privileged): interfaces and routes, raw sockets, and
/// SYS_ADMIN for the namespace operations zebra performs.
const ROUTER_CAPS: &[&str] = &["NET_ADMIN", "NET_RAW", "SYS_ADMIN"];
const HOST_CAPS: &[&str] = &["NET_ADMIN", "NET_RAW"];
/// Linux's default `icmp_ratemask` (unreachable, source quench, time exceeded, parameter
/// problem) without time exceeded: (1 << 3) | (1 << 4) | (1 << 12).
const ICMP_RATEMASK: u32 = (1 << 3) | (1 << 4) | (1 << 12);

impl LocalNode {
    /// Connects to the local engine (DOCKER_HOST or the default socket) and negotiates the
    /// API version down to what the engine speaks.
    pub async fn connect(name: &str) -> NodeResult<Self> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(docker_err("connecting to the Docker engine"))?
            .negotiate_version()
            .await
            .map_err(docker_err("negotiating the Docker API version (is dockerd running?)"))?;
        Ok(LocalNode { name: name.to_string(), docker, cgroup_parent: tokio::sync::OnceCell::new() })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Runs an allow-listed command in a container and collects its output.
    async fn exec(&self, container: &str, cmd: &[&str], doing: &str) -> NodeResult<(i64, String)> {
        let exec = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                if is_status(&e, 409) {
                    NodeError::NotRunning { doing: doing.to_string(), container: container.to_string() }
                } else {
                    NodeError::Docker { doing: doing.to_string(), source: e }
                }
            })?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await.map_err(docker_err(doing))?
        {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(docker_err(doing))?;
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let code = self.docker.inspect_exec(&exec.id).await.map_err(docker_err(doing))?.exit_code.unwrap_or(-1);
        Ok((code, text))
    }

    /// A fixed `show` command on a router's FRR daemon: through the daemon's socket when the
    /// node can reach it (see `vty`), else through `docker exec vtysh`. The daemon's status
    /// byte is not judged, as vtysh's exit code is not: the parsers judge the output.
    async fn frr_show(&self, router: &str, daemon: vty::Daemon, command: &'static str, doing: &str) -> NodeResult<String> {
        let pid = self.pid_of(router, &|| doing.to_string()).await?;
        match vty::show(pid, daemon, command).await {
            Ok(out) | Err(vty::VtyError::Refused { output: out, .. }) => Ok(out),
            Err(e @ vty::VtyError::Io { .. }) => Err(NodeError::Failed { doing: doing.to_string(), message: e.to_string() }),
            Err(e @ vty::VtyError::Unreachable { .. }) => {
                tracing::debug!(router, error = %e, "vty socket not reachable; using docker exec");
                Ok(self.exec(router, &["vtysh", "-c", command], doing).await?.1)
            }
        }
    }

    async fn upload(&self, container: &str, files: &[crate::node::FileSpec]) -> NodeResult<()> {
        let entries: Vec<(&str, &[u8], u32)> =
            files.iter().map(|f| (f.path.trim_start_matches('/'), f.content.as_bytes(), f.mode)).collect();
        let tar = pack_tar(&entries)
            .map_err(|e| NodeError::Failed { doing: format!("packing files for {container}"), message: e.to_string() })?;
        let opts = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(container, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(docker_err(format!("uploading config files into {container}")))
    }

    async fn list_containers(&self, filters: HashMap<String, Vec<String>>) -> NodeResult<Vec<Found>> {
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(docker_err("listing containers"))?;
        Ok(list
            .into_iter()
            .map(|c| Found {
                name: c.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                running: c.state.map(|s| s.to_string() == "running").unwrap_or(false),
                subnets: Vec::new(),
            })
            .collect())
    }
}

fn label_filter(label: &str, value: Option<&str>) -> HashMap<String, Vec<String>> {
    let f = match value {
        Some(v) => format!("{label}={v}"),
        None => label.to_string(),
    };
    HashMap::from([("label".to_string(), vec![f])])
}

#[async_trait]
impl Node for LocalNode {
    fn name(&self) -> &str {
        &self.name
    }

    async fn images_present(&self, refs: &[String]) -> NodeResult<BTreeMap<String, bool>> {
        let mut out = BTreeMap::new();
        for r in refs {
            let present = match self.docker.inspect_image(r).await {
                Ok(_) => true,
                Err(e) if is_status(&e, 404) => false,
                Err(e) => return Err(NodeError::Docker { doing: format!("inspecting image {r}"), source: e }),
            };
            out.insert(r.clone(), present);
        }
        Ok(out)
    }

    async fn taken_subnets(&self) -> NodeResult<Vec<String>> {
        let nets = self
            .docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(docker_err("listing networks"))?;
        let mut taken: Vec<String> = nets
            .into_iter()
            .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
            .filter_map(|c| c.subnet)
            .collect();
        // Direct links are no Docker network: their subnets are in a label on the containers.
        for c in self.list_containers(label_filter(crate::node::labels::SUBNETS, None)).await? {
            if let Some(v) = c.labels.get(crate::node::labels::SUBNETS) {
                taken.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string));
            }
        }
        Ok(taken)
    }

    async fn find_containers(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        self.list_containers(label_filter(label, value)).await
    }

    async fn find_networks(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        let opts = ListNetworksOptionsBuilder::default().filters(&label_filter(label, value)).build();
        let nets = self.docker.list_networks(Some(opts)).await.map_err(docker_err("listing networks"))?;
        Ok(nets
            .into_iter()
            .map(|n| Found {
                name: n.name.unwrap_or_default(),
                labels: n.labels.unwrap_or_default().into_iter().collect(),
                running: true,
                subnets: n.ipam.and_then(|i| i.config).unwrap_or_default().into_iter().filter_map(|c| c.subnet).collect(),
            })
            .collect())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> NodeResult<()> {
        let mut options = HashMap::new();
        if let Some(b) = &spec.bridge_name {
            options.insert("com.docker.network.bridge.name".to_string(), b.clone());
        }
        if let Some(mtu) = spec.mtu {
            options.insert("com.docker.network.driver.mtu".to_string(), mtu.to_string());
        }
        let overlay = spec.driver == "overlay";
        let req = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some(spec.driver.clone()),
            // Internal: no route out of the machine, no default route competing with BGP.
            internal: Some(true),
            attachable: overlay.then_some(true),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(spec.subnet.clone()),
                    gateway: Some(spec.gateway.clone()),
                    ip_range: Some(spec.ip_range.clone()),
                    ..Default::default()
                }]),
                options: None,
            }),
            options: Some(options),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker
            .create_network(req)
            .await
            .map(|_| ())
            .map_err(docker_err(format!("creating {} network {} ({})", spec.driver, spec.name, spec.subnet)))
    }

    async fn remove_network(&self, name: &str) -> NodeResult<()> {
        // Swarm attachment tasks and endpoints of just-removed containers linger briefly:
        // retry "in use" answers with a deadline instead of failing the delete.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.docker.remove_network(name).await {
                Ok(()) => return Ok(()),
                Err(e) if is_status(&e, 404) => return Ok(()),
                // Swarm removed the overlay between our listing and this call.
                Err(e) if is_status(&e, 500) && e.to_string().contains("not found") => return Ok(()),
                // A worker's copy of a swarm overlay: only the manager removes overlays (the
                // executor asks it first); the worker drops its copy once unused.
                Err(e) if is_status(&e, 503) && e.to_string().contains("not a swarm manager") => {
                    tracing::debug!(network = name, "swarm-scoped network on a worker; left to the manager");
                    return Ok(());
                }
                Err(e) if is_status(&e, 403) || is_status(&e, 409) || e.to_string().contains("in use") => {
                    if tokio::time::Instant::now() > deadline {
                        return Err(NodeError::Docker { doing: format!("removing network {name}"), source: e });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(NodeError::Docker { doing: format!("removing network {name}"), source: e }),
            }
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> NodeResult<()> {
        // No Docker network at all (every link direct): the container gets its own empty
        // network namespace, and the links arrive after start.
        let first = spec.attachments.first();
        let endpoint = |a: &crate::node::Attachment| EndpointSettings {
            ipam_config: Some(EndpointIpamConfig { ipv4_address: Some(a.address.to_string()), ..Default::default() }),
            ..Default::default()
        };
        let (caps, mut sysctls) = match spec.role {
            ContainerRole::Router => (ROUTER_CAPS, HashMap::from([
                ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                // Traceroute replies come from the interface the probe arrived on, so the
                // hop list is exactly the planned addresses.
                ("net.ipv4.icmp_errors_use_inbound_ifaddr".to_string(), "1".to_string()),
                ("net.ipv4.conf.all.rp_filter".to_string(), "0".to_string()),
                ("net.ipv4.conf.default.rp_filter".to_string(), "0".to_string()),
                // Time-exceeded replies are never rate-limited (the kernel's default mask
                // 6168 less bit 11). Otherwise a router that answered a burst of pings with
                // "net unreachable" while its routes were still on the way (one token bucket
                // per destination, a burst of 6, then one a second) drops the next
                // traceroute probe's reply: a `*` hop and a wasted second, seen in every
                // create once the convergence ping ran at 50 a second.
                ("net.ipv4.icmp_ratemask".to_string(), ICMP_RATEMASK.to_string()),
            ])),
            ContainerRole::Host => (HOST_CAPS, HashMap::new()),
        };
        sysctls.insert("net.ipv6.conf.all.disable_ipv6".to_string(), "1".to_string());
        // Linux starts every packet (and every ICMP error) with TTL 64: on a path of more than
        // 63 hops pings die half-way and traceroute replies from beyond hop 64 never return.
        // 255 is the most IPv4 allows: a path of 255 routers or more cannot be crossed by any
        // IPv4 packet, and its data-plane checks fail.
        sysctls.insert("net.ipv4.ip_default_ttl".to_string(), "255".to_string());
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: Some(spec.hostname.clone()),
            // No Docker network at all: Docker's networking is switched off for the container
            // (it still gets its own network namespace, with lo up, from runc). With `none`
            // networking instead, every start runs a prestart hook that re-executes the whole
            // dockerd binary (`libnetwork-setkey`): measured here, 0.29 CPU-s per container
            // create + start against 0.13 without it.
            network_disabled: first.is_none().then_some(true),
            cmd: Some(spec.cmd.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            host_config: Some(HostConfig {
                cap_add: Some(caps.iter().map(|c| c.to_string()).collect()),
                sysctls: Some(sysctls),
                network_mode: Some(first.map_or_else(|| "none".to_string(), |f| f.network.clone())),
                init: Some(false),
                cgroup_parent: self.cgroup_parent().await,
                ..Default::default()
            }),
            networking_config: first.map(|f| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(f.network.clone(), endpoint(f))])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        self.docker
            .create_container(Some(opts), body)
            .await
            .map_err(docker_err(format!("creating container {} from {}", spec.name, spec.image)))?;
        for a in spec.attachments.iter().skip(1) {
            self.docker
                .connect_network(
                    &a.network,
                    NetworkConnectRequest { container: spec.name.clone(), endpoint_config: Some(endpoint(a)) },
                )
                .await
                .map_err(docker_err(format!("attaching {} to {} as {}", spec.name, a.network, a.address)))?;
        }
        if !spec.files.is_empty() {
            self.upload(&spec.name, &spec.files).await?;
        }
        Ok(())
    }

    async fn start_container(&self, name: &str) -> NodeResult<()> {
        self.docker
            .start_container(name, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(docker_err(format!("starting container {name}")))
    }

    async fn remove_container(&self, name: &str) -> NodeResult<()> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            // 409: removal already in progress (a concurrent delete): treat as done.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(NodeError::Docker { doing: format!("removing container {name}"), source: e }),
        }
    }

    async fn read_file(&self, container: &str, path: &str) -> NodeResult<Option<String>> {
        let opts = DownloadFromContainerOptionsBuilder::default().path(path).build();
        let bytes: Vec<u8> = match self
            .docker
            .download_from_container(container, Some(opts))
            .map_ok(|b| b.to_vec())
            .try_concat()
            .await
        {
            Ok(b) => b,
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(NodeError::Docker { doing: format!("reading {path} from {container}"), source: e }),
        };
        let mut archive = tar::Archive::new(bytes.as_slice());
        let fail = |e: std::io::Error| NodeError::Failed { doing: format!("reading {path} from {container}"), message: e.to_string() };
        // The archive of one file holds exactly that file.
        let Some(entry) = archive.entries().map_err(fail)?.next() else { return Ok(None) };
        let mut entry = entry.map_err(fail)?;
        let mut s = String::new();
        std::io::Read::read_to_string(&mut entry, &mut s).map_err(fail)?;
        Ok(Some(s))
    }

    async fn bgp_table(&self, router: &str) -> NodeResult<BgpTable> {
        let out = self.frr_show(router, vty::Daemon::Bgpd, "show bgp ipv4 unicast json", &format!("reading the BGP table of {router}")).await?;
        Ok(BgpTable::parse(&out)?)
    }

    async fn bgp_summary(&self, router: &str) -> NodeResult<BgpSummary> {
        let out = self.frr_show(router, vty::Daemon::Bgpd, "show bgp summary json", &format!("reading BGP sessions of {router}")).await?;
        Ok(BgpSummary::parse(&out)?)
    }

    async fn traceroute(&self, host: &str, target: Ipv4Addr, max_hops: u32) -> NodeResult<Probe> {
        let t = target.to_string();
        let m = max_hops.to_string();
        let (code, output) = self
            .exec(host, &["traceroute", "-n", "-q", "1", "-w", "1", "-m", &m, &t], &format!("traceroute from {host} to {t}"))
            .await?;
        Ok(Probe { success: code == 0, output })
    }

    async fn ping(&self, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool) -> NodeResult<Probe> {
        let t = target.to_string();
        let s = size.map(|s| s.to_string());
        let mut cmd = vec!["ping", "-n", "-c", "3", "-i", PING_INTERVAL, "-W", "1"];
        if let Some(s) = &s {
            cmd.extend(["-s", s.as_str()]);
        }
        if dont_fragment {
            cmd.extend(["-M", "do"]);
        }
        cmd.push(&t);
        let (code, output) = self.exec(host, &cmd, &format!("ping from {host} to {t}")).await?;
        Ok(Probe { success: code == 0, output })
    }

    async fn ping_until(&self, host: &str, target: Ipv4Addr, within_secs: u32) -> NodeResult<Probe> {
        let t = target.to_string();
        let w = within_secs.clamp(1, 60).to_string();
        // -c 1 with a deadline: ping keeps sending (every PING_INTERVAL) until the first reply.
        let cmd = ["ping", "-n", "-c", "1", "-i", PING_INTERVAL, "-W", "1", "-w", &w, &t];
        let (code, output) = self.exec(host, &cmd, &format!("ping from {host} to {t}")).await?;
        Ok(Probe { success: code == 0, output })
    }

    async fn connect_vxlan(&self, link: &VxlanSpec) -> NodeResult<()> {
        use rtnetlink::LinkVxlan;
        let doing = || format!("linking {}:{} to {} (VXLAN {})", link.container, link.ifname, link.remote, link.vni);
        let pid = self.pid_of(&link.container, &doing).await?;
        // Created from this (the node's) namespace, whose network carries the UDP, and
        // placed straight into the container's.
        let mut msg = LinkVxlan::new(&link.ifname, link.vni)
            .local(link.local)
            .remote(link.remote)
            .port(link.port)
            .learning(false)
            .setns_by_pid(pid);
        if let Some(mtu) = link.mtu {
            msg = msg.mtu(mtu);
        }
        netlink_add(msg.build(), &doing).await?;
        link_end(pid, &link.ifname, link.address, &doing).await
    }

    async fn connect_veth(&self, link: &VethSpec) -> NodeResult<()> {
        use rtnetlink::packet_route::link::{InfoData, InfoVeth};
        use rtnetlink::{LinkUnspec, LinkVeth};
        let doing = || {
            format!(
                "linking {}:{} and {}:{} (veth)",
                link.a.container, link.a.ifname, link.b.container, link.b.ifname
            )
        };
        let (pa, pb) = tokio::try_join!(self.pid_of(&link.a.container, &doing), self.pid_of(&link.b.container, &doing))?;
        // Both ends are created directly in their containers' namespaces (IFLA_NET_NS_PID
        // on the link and on its peer), under their final names: nothing appears on the host.
        // With `b_listens`, `a` waits in this process's namespace under a passing name.
        let staged = link.b_listens.then(staging_name);
        let mut peer = LinkUnspec::new_with_name(&link.b.ifname).setns_by_pid(pb);
        let mut msg = match &staged {
            Some(name) => LinkVeth::new(name, &link.b.ifname),
            None => LinkVeth::new(&link.a.ifname, &link.b.ifname).setns_by_pid(pa),
        };
        if let Some(mtu) = link.mtu {
            peer = peer.mtu(mtu);
            msg = msg.mtu(mtu);
        }
        let msg = msg.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build()))).build();
        netlink_add(msg, &doing).await?;
        let Some(staged) = staged else {
            // Each end: ARP tuned, then (if vnet-te addresses it) address first, then up, so
            // an end that is up is addressed.
            tokio::try_join!(link_end(pa, &link.a.ifname, link.a.address, &doing), link_end(pb, &link.b.ifname, link.b.address, &doing))?;
            return Ok(());
        };
        let joined = async {
            link_end(pb, &link.b.ifname, link.b.address, &doing).await?;
            // zebra addresses `b`; its carrier stays down until `a` is up on the other side.
            match zebra_announced(pb, &link.b.ifname, LISTENER_ADDRESS_WAIT).await {
                Ok(true) => {}
                Ok(false) => tracing::debug!(link = %doing(), "no address on the listening end in time; joining anyway"),
                Err(e) => tracing::debug!(link = %doing(), error = %e, "cannot watch the listening end's address; joining anyway"),
            }
            netns::move_into(&staged, pa, &link.a.ifname).await.map_err(|e| NodeError::Failed { doing: doing(), message: e.to_string() })?;
            link_end(pa, &link.a.ifname, link.a.address, &doing).await
        }
        .await;
        if joined.is_err() {
            // Removing the waiting end removes the pair (a no-op once it has moved: the
            // container's end then goes with the container).
            let _ = netns::delete_here(&staged).await;
        }
        joined
    }

    async fn wait_bgpd(&self, router: &str, within_secs: u32) -> NodeResult<bool> {
        let doing = || format!("waiting for bgpd in {router}");
        let pid = self.pid_of(router, &doing).await?;
        // The namespace's listeners over sock_diag (a few system calls); where that cannot be
        // had (no setns right, no inet_diag in the kernel), /proc/<pid>/net/tcp, which walks
        // the kernel's whole connection table, polled less often.
        let mut probe = match netns::ListenProbe::new(pid) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(router, error = %e, "no sock_diag probe; reading /proc/{pid}/net/tcp");
                None
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(within_secs.min(60).into());
        loop {
            // bgpd listens once zebra has told it about the default VRF, a little after
            // its vty socket appears (a connection tried in between is refused, and bgpd
            // tries again only a second later).
            let listening = match probe.as_mut().map(|p| p.listening(BGP_PORT)) {
                Some(Ok(l)) => l,
                Some(Err(e)) => {
                    tracing::debug!(router, error = %e, "sock_diag failed; reading /proc/{pid}/net/tcp");
                    probe = None;
                    false
                }
                None => ["tcp", "tcp6"].iter().any(|f| {
                    std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).is_ok_and(|t| netns::proc_net_listening(&t, BGP_PORT))
                }),
            };
            if listening {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(if probe.is_some() { 10 } else { 50 })).await;
        }
    }

    async fn bridge_forwarding(&self, enable: bool) -> NodeResult<()> {
        // One rule in the chain Docker reserves for users; the bridges keep `internal` (no
        // route out). It accepts only frames *bridged* within one vte* bridge (physdev): the
        // routers' transit traffic. Traffic the host would route from one vte* bridge to
        // another (a shortcut around the path, through the bridges' .1 gateway addresses)
        // still meets Docker's isolation rules and is dropped.
        const RULE: [&str; 10] =
            ["DOCKER-USER", "-i", "vte+", "-o", "vte+", "-m", "physdev", "--physdev-is-bridged", "-j", "ACCEPT"];
        // The rule of vnet-te before 0.1.0's cluster work also accepted host-routed traffic.
        const LEGACY: [&str; 7] = ["DOCKER-USER", "-i", "vte+", "-o", "vte+", "-j", "ACCEPT"];
        let run = |op: &str, rule: &[&str]| {
            let mut c = std::process::Command::new("iptables");
            c.arg("-w").arg(op).args(rule);
            c.output()
        };
        let doing = "updating the DOCKER-USER forwarding rule for vte* bridges";
        let fail = |m: String| NodeError::Failed { doing: doing.to_string(), message: m };
        while run("-C", &LEGACY).map_err(|e| fail(format!("running iptables: {e}")))?.status.success() {
            run("-D", &LEGACY).map_err(|e| fail(format!("running iptables: {e}")))?;
        }
        let present = run("-C", &RULE).map_err(|e| fail(format!("running iptables: {e}")))?.status.success();
        let out = match (enable, present) {
            (true, false) => run("-I", &RULE),
            (false, true) => run("-D", &RULE),
            _ => return Ok(()),
        }
        .map_err(|e| fail(format!("running iptables: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }

    async fn bgp_evpn_routes(&self, router: &str) -> NodeResult<EvpnRoutes> {
        let out = self
            .frr_show(router, vty::Daemon::Bgpd, "show bgp l2vpn evpn json", &format!("reading the EVPN routes of {router}"))
            .await?;
        Ok(EvpnRoutes::parse(&out)?)
    }

    async fn evpn_vnis(&self, router: &str) -> NodeResult<EvpnVnis> {
        let out = self
            .frr_show(router, vty::Daemon::Zebra, "show evpn vni json", &format!("reading the EVPN VNIs of {router}"))
            .await?;
        Ok(EvpnVnis::parse(&out)?)
    }

    async fn interface_counters(&self, container: &str) -> NodeResult<Vec<InterfaceCounters>> {
        let (_, out) = self
            .exec(container, &["ip", "-s", "-j", "addr", "show"], &format!("reading interface counters of {container}"))
            .await?;
        Ok(crate::probe::parse_interface_counters(&out)?)
    }

    async fn apply_frr_config(&self, router: &str, config: &str, remove: &str) -> NodeResult<()> {
        const REMOVE_PATH: &str = "/etc/vnet-te/frr-remove.conf";
        let doing = format!("applying the new FRR configuration to {router}");
        self.upload(
            router,
            &[
                FileSpec { path: "/etc/frr/frr.conf".into(), mode: 0o644, content: config.to_string() },
                FileSpec { path: REMOVE_PATH.into(), mode: 0o644, content: remove.to_string() },
            ],
        )
        .await?;
        if !remove.trim().is_empty() {
            // Lines already gone (an operator removed them by hand) make vtysh complain;
            // that is the state wanted, so only the full config's result counts.
            let (code, out) = self.exec(router, &["vtysh", "-f", REMOVE_PATH], &doing).await?;
            if code != 0 {
                tracing::debug!(router, code, output = %out.trim(), "removal lines partly absent");
            }
        }
        let (code, out) = self.exec(router, &["vtysh", "-f", "/etc/frr/frr.conf"], &doing).await?;
        if code != 0 {
            return Err(NodeError::Failed { doing, message: format!("vtysh -f exited {code}: {}", out.trim()) });
        }
        // Re-run inbound policy now instead of after FRR's route-map delay timer.
        self.exec(router, &["vtysh", "-c", "clear bgp ipv4 unicast * soft in"], &doing).await?;
        Ok(())
    }

    async fn write_files(&self, container: &str, files: &[FileSpec]) -> NodeResult<()> {
        if let Some(f) = files.iter().find(|f| !f.path.starts_with(WRITABLE_PREFIX) || f.path.contains("..")) {
            return Err(NodeError::Failed {
                doing: format!("writing files into {container}"),
                message: format!("{} is outside {WRITABLE_PREFIX}", f.path),
            });
        }
        self.upload(container, files).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interface_counts_as_addressed_only_with_an_ipv4_address_in_zebras_list() {
        // The shape of FRR 8.4's `show interface json` (trimmed).
        let json = r#"{
            "eth0": {"administrativeStatus": "up", "ipAddresses": [{"address": "10.199.0.2/29", "secondary": false}]},
            "eth1": {"administrativeStatus": "up", "ipAddresses": []},
            "eth2": {"ipAddresses": [{"address": "fe80::1/64", "secondary": false}]}
        }"#;
        assert!(interface_has_ipv4(json, "eth0"));
        assert!(!interface_has_ipv4(json, "eth1"));
        assert!(!interface_has_ipv4(json, "eth2"));
        assert!(!interface_has_ipv4(json, "eth3"));
        assert!(!interface_has_ipv4("% Unknown command", "eth0"));
    }

    #[test]
    fn staging_names_fit_the_kernel_and_differ() {
        let (a, b) = (staging_name(), staging_name());
        assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
        assert_ne!(a, b);
    }
}
