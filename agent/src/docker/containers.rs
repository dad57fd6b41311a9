//! Containers: images, creating, starting and removing containers, files in and out, and
//! commands run in them.

use std::collections::{BTreeMap, HashMap};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkConnectRequest, NetworkingConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::node::{ContainerRole, ContainerSpec, FileSpec, Found, NodeError, NodeResult};
use crate::scope;

use super::{docker_err, is_status, pack_tar, LocalNode};

/// Capabilities FRR needs (not --privileged): interfaces and routes, raw sockets, and
/// SYS_ADMIN for the namespace operations zebra performs.
const ROUTER_CAPS: &[&str] = &["NET_ADMIN", "NET_RAW", "SYS_ADMIN"];
const HOST_CAPS: &[&str] = &["NET_ADMIN", "NET_RAW"];
/// Linux's default `icmp_ratemask` (unreachable, source quench, time exceeded, parameter
/// problem) without time exceeded: (1 << 3) | (1 << 4) | (1 << 12).
const ICMP_RATEMASK: u32 = (1 << 3) | (1 << 4) | (1 << 12);
/// The same less destination unreachable, for experiment hosts: a host's port-unreachable is
/// the last hop of every traceroute to it, and several traceroutes at once (verify runs three
/// each way, a user runs their own) would otherwise exhaust its burst of 6 and end in `*`.
const HOST_ICMP_RATEMASK: u32 = (1 << 4) | (1 << 12);
/// The most output an exec in a container may return (a traceroute of 255 hops, an iperf3
/// report or 2000 ping lines are far below it).
pub const EXEC_OUTPUT_LIMIT: usize = 4 * 1024 * 1024;
/// The largest file `read_file` returns (a plan of thousands of hops fits).
pub const READ_FILE_LIMIT: usize = 16 * 1024 * 1024;

impl LocalNode {
    /// Runs an allow-listed command in a container and collects its output.
    pub(super) async fn exec(&self, container: &str, cmd: &[&str], doing: &str) -> NodeResult<(i64, String)> {
        self.ours(container, &|| doing.to_string()).await?;
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
        if let StartExecResults::Attached { mut output, .. } = self.docker.start_exec(&exec.id, None).await.map_err(docker_err(doing))? {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(docker_err(doing))?;
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                if text.len() > EXEC_OUTPUT_LIMIT {
                    return Err(NodeError::Failed {
                        doing: doing.to_string(),
                        message: format!("{} wrote more than {EXEC_OUTPUT_LIMIT} bytes", cmd.join(" ")),
                    });
                }
            }
        }
        let code = self.docker.inspect_exec(&exec.id).await.map_err(docker_err(doing))?.exit_code.unwrap_or(-1);
        Ok((code, text))
    }

    pub(super) async fn upload(&self, container: &str, files: &[crate::node::FileSpec]) -> NodeResult<()> {
        self.ours(container, &|| format!("uploading config files into {container}")).await?;
        let entries: Vec<(&str, &[u8], u32)> = files.iter().map(|f| (f.path.trim_start_matches('/'), f.content.as_bytes(), f.mode)).collect();
        let tar = pack_tar(&entries).map_err(|e| NodeError::Failed { doing: format!("packing files for {container}"), message: e.to_string() })?;
        let opts = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(container, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(docker_err(format!("uploading config files into {container}")))
    }

    pub(super) async fn list_containers(&self, filters: HashMap<String, Vec<String>>) -> NodeResult<Vec<Found>> {
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(docker_err("listing containers"))?;
        Ok(list
            .into_iter()
            .map(|c| Found {
                // Docker lists a container whose removal is under way ("removing") without
                // its name: the empty name says so (see `Found::name`).
                name: match c.state {
                    Some(ContainerSummaryStateEnum::REMOVING) => String::new(),
                    _ => c.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default(),
                },
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                subnets: Vec::new(),
            })
            .collect())
    }
}

pub(super) fn label_filter(label: &str, value: Option<&str>) -> HashMap<String, Vec<String>> {
    let f = match value {
        Some(v) => format!("{label}={v}"),
        None => label.to_string(),
    };
    HashMap::from([("label".to_string(), vec![f])])
}

pub(super) async fn images_present(node: &LocalNode, refs: &[String]) -> NodeResult<BTreeMap<String, bool>> {
    let mut out = BTreeMap::new();
    for r in refs {
        let present = match node.docker.inspect_image(r).await {
            Ok(_) => true,
            Err(e) if is_status(&e, 404) => false,
            Err(e) => return Err(NodeError::Docker { doing: format!("inspecting image {r}"), source: e }),
        };
        out.insert(r.clone(), present);
    }
    Ok(out)
}

/// Refuses a search by a label that is not vnet-te's (it would list anyone's objects).
pub(super) fn check_label_key(label: &str, doing: &str) -> NodeResult<()> {
    scope::check_label_key(label).map_err(|message| NodeError::Refused { doing: doing.to_string(), message })
}

pub(super) async fn find(node: &LocalNode, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
    check_label_key(label, "listing containers")?;
    node.list_containers(label_filter(label, value)).await
}

/// The capabilities and sysctls of a container of `role`.
fn caps_and_sysctls(role: ContainerRole) -> (&'static [&'static str], HashMap<String, String>) {
    let (caps, mut sysctls) = match role {
        ContainerRole::Router => (
            ROUTER_CAPS,
            HashMap::from([
                ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                // Traceroute replies come from the interface the probe arrived on, so the
                // hop list is exactly the planned addresses.
                ("net.ipv4.icmp_errors_use_inbound_ifaddr".to_string(), "1".to_string()),
                ("net.ipv4.conf.all.rp_filter".to_string(), "0".to_string()),
                ("net.ipv4.conf.default.rp_filter".to_string(), "0".to_string()),
                // Time-exceeded replies are never rate-limited (the kernel's default mask
                // 6168 less bit 11). Otherwise a router that answered the convergence ping with
                // "net unreachable" while its routes were still on the way (one token bucket
                // per destination, a burst of 6, then one a second) drops the next traceroute
                // probe's reply: a `*` hop and a wasted second.
                ("net.ipv4.icmp_ratemask".to_string(), ICMP_RATEMASK.to_string()),
            ]),
        ),
        ContainerRole::Host => (HOST_CAPS, HashMap::from([("net.ipv4.icmp_ratemask".to_string(), HOST_ICMP_RATEMASK.to_string())])),
    };
    sysctls.insert("net.ipv6.conf.all.disable_ipv6".to_string(), "1".to_string());
    // Linux starts every packet (and every ICMP error) with TTL 64: on a path of more than
    // 63 hops pings die half-way and traceroute replies from beyond hop 64 never return.
    // 255 is the most IPv4 allows: a path of 255 routers or more cannot be crossed by any
    // IPv4 packet, and its data-plane checks fail.
    sysctls.insert("net.ipv4.ip_default_ttl".to_string(), "255".to_string());
    (caps, sysctls)
}

/// The endpoint of a container on one Docker network: its planned address.
fn endpoint(a: &crate::node::Attachment) -> EndpointSettings {
    EndpointSettings { ipam_config: Some(EndpointIpamConfig { ipv4_address: Some(a.address.to_string()), ..Default::default() }), ..Default::default() }
}

/// What Docker is asked to create for `spec`: on its first network, if any (the others are
/// connected after create), under `cgroup_parent`.
fn create_body(spec: &ContainerSpec, cgroup_parent: Option<String>) -> ContainerCreateBody {
    // No Docker network at all (every link direct): the container gets its own empty
    // network namespace, and the links arrive after start.
    let first = spec.attachments.first();
    let (caps, mut sysctls) = caps_and_sysctls(spec.role);
    // Checked by `create` (`node::check_sysctls`); IPv6's turn on what the role turns off.
    sysctls.extend(spec.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())));
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        hostname: Some(spec.hostname.clone()),
        // No Docker network at all: Docker's networking is switched off for the container
        // (it still gets its own network namespace, with lo up, from runc). With `none`
        // networking instead, every start runs a prestart hook that re-executes the whole
        // dockerd binary (`libnetwork-setkey`), a large share of a container's start cost.
        network_disabled: first.is_none().then_some(true),
        cmd: Some(spec.cmd.clone()),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        host_config: Some(HostConfig {
            cap_add: Some(caps.iter().map(|c| c.to_string()).collect()),
            sysctls: Some(sysctls),
            // Checked by `create` (`scope::check_devices`): the TUN device of a VPN end only.
            devices: (!spec.devices.is_empty()).then(|| {
                spec.devices
                    .iter()
                    .map(|d| bollard::models::DeviceMapping {
                        path_on_host: Some(d.clone()),
                        path_in_container: Some(d.clone()),
                        cgroup_permissions: Some("rwm".to_string()),
                    })
                    .collect()
            }),
            network_mode: Some(first.map_or_else(|| "none".to_string(), |f| f.network.clone())),
            init: Some(false),
            cgroup_parent,
            // Checked by `create` (`Limits::check`): never unlimited. Swap is no way past
            // the memory limit.
            memory: Some(spec.limits.memory as i64),
            memory_swap: Some(spec.limits.memory as i64),
            pids_limit: Some(i64::from(spec.limits.pids)),
            ..Default::default()
        }),
        networking_config: first.map(|f| NetworkingConfig { endpoints_config: Some(HashMap::from([(f.network.clone(), endpoint(f))])) }),
        ..Default::default()
    }
}

/// The first API version whose engines (Docker 25 on) check, for each network they attach at
/// start after the first, that the network of the container's network mode is one they have
/// themselves.
const NETWORK_MODE_CHECKED_FROM: (usize, usize) = (1, 44);

/// Whether a container's networks after its first wait until it runs: with an engine that makes
/// the check above, when the first network is not a local one. A worker has a swarm overlay
/// only once something there is attached to it, and a start attaches the networks in no set
/// order, so one attached before the first fails the start ("could not find a network matching
/// network mode"). Once the container runs, its first network is the worker's own.
/// `first_scope`: the scope the engine reports for the first network (None: it has no such
/// network, as a worker before the first attach).
fn connect_after_start(api: (usize, usize), first_scope: Option<&str>) -> bool {
    api >= NETWORK_MODE_CHECKED_FROM && first_scope != Some("local")
}

async fn connect(node: &LocalNode, container: &str, a: &crate::node::Attachment) -> NodeResult<()> {
    node.docker
        .connect_network(&a.network, NetworkConnectRequest { container: container.to_string(), endpoint_config: Some(endpoint(a)) })
        .await
        .map_err(docker_err(format!("attaching {container} to {} as {}", a.network, a.address)))
}

pub(super) async fn create(node: &LocalNode, spec: &ContainerSpec) -> NodeResult<()> {
    let doing = || format!("creating container {}", spec.name);
    scope::check_container_spec(spec).map_err(|message| NodeError::Refused { doing: doing(), message })?;
    // The scope of each network as this engine reports it; None: it has none of that name
    // yet (a swarm worker knows an overlay only once a container of its own joins it: the
    // name, checked, is resolved by the manager at attach).
    let mut scopes = Vec::with_capacity(spec.attachments.len());
    for a in &spec.attachments {
        scopes.push(match node.our_network(&a.network, &doing).await {
            Err(NodeError::Docker { source, .. }) if is_status(&source, 404) => None,
            other => Some(other?.scope.unwrap_or_default()),
        });
    }
    let joins_swarm = scopes.iter().any(|s| s.as_deref() != Some("local"));
    let body = create_body(spec, node.cgroup_parent().await);
    let opts = CreateContainerOptionsBuilder::default().name(&spec.name).build();
    node.docker.create_container(Some(opts), body).await.map_err(docker_err(format!("creating container {} from {}", spec.name, spec.image)))?;
    if joins_swarm {
        node.swarm_joining.lock().expect("swarm_joining lock").insert(spec.name.clone());
    }
    let rest = spec.attachments.get(1..).unwrap_or_default();
    if !rest.is_empty() {
        let v = node.docker.client_version();
        if connect_after_start((v.major_version, v.minor_version), scopes[0].as_deref()) {
            node.after_start.lock().expect("after_start lock").insert(spec.name.clone(), rest.to_vec());
        } else {
            let _turn = swarm_turn(node, joins_swarm).await;
            for a in rest {
                connect(node, &spec.name, a).await?;
            }
        }
    }
    if !spec.files.is_empty() {
        node.upload(&spec.name, &spec.files).await?;
    }
    Ok(())
}

/// This node's turn to join swarm networks, when `joins` (None otherwise): one start or connect
/// that joins a swarm network at a time per node. Each first join of an overlay on a node
/// sends the overlay's other nodes a bulk sync and waits up to 30 s for each one's answer, but
/// the engine keeps one awaited answer per peer: a second bulk sync to the same node (another
/// join at once), or an answer to one from it, leaves the first join waiting the full 30 s,
/// past the manager's 20 s attach deadline (moby's networkdb before its fix of
/// moby/moby#51701, Docker 20.10 and 26 among them). This takes away the first cause; the
/// second needs the engine's fix. One at a time costs little, since a node's engine makes its
/// overlay attaches one after another anyway (figures in docs/performance.md).
async fn swarm_turn(node: &LocalNode, joins: bool) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    if joins {
        Some(node.swarm_join.lock().await)
    } else {
        None
    }
}

pub(super) async fn start(node: &LocalNode, name: &str) -> NodeResult<()> {
    node.ours(name, &|| format!("starting container {name}")).await?;
    let joins_swarm = node.swarm_joining.lock().expect("swarm_joining lock").contains(name);
    let deadline = std::time::Instant::now() + START_WITHIN;
    let mut tries = 1;
    loop {
        let once = {
            let _turn = swarm_turn(node, joins_swarm).await;
            start_once(node, name).await
        };
        let e = match once {
            Ok(()) => {
                node.after_start.lock().expect("after_start lock").remove(name);
                node.swarm_joining.lock().expect("swarm_joining lock").remove(name);
                return Ok(());
            }
            Err(e) => e,
        };
        if !attach_failed(&e.to_string()) {
            return Err(e);
        }
        if std::time::Instant::now() + SWARM_ATTACH_DEADLINE > deadline {
            if !e.to_string().contains(" not found") {
                // One more try answers "not found" at once and so drops the attach the engine
                // kept: no attachment task the manager allocates late is left holding the
                // overlay once this container is removed.
                let again = start_once(node, name).await;
                tracing::debug!(container = name, result = ?again.err().map(|e| e.to_string()), "kept attach dropped");
            }
            return Err(NodeError::Failed {
                doing: format!("starting container {name}"),
                message: format!(
                    "the swarm did not attach its overlays within {} s ({tries} tries, each waiting up to {} s for the manager): {e}",
                    START_WITHIN.as_secs(),
                    SWARM_ATTACH_DEADLINE.as_secs()
                ),
            });
        }
        tracing::warn!(container = name, error = %e, "overlay attach failed in the swarm; starting again");
        tokio::time::sleep(retry_pause()).await;
        tries += 1;
    }
}

/// The pause before a start is tried again: 0.2 s and up to 2 s more at random. The two ends of
/// an overlay that stalled together (`swarm_turn`) fail at the same instant; tried again in step,
/// their joins would meet again.
fn retry_pause() -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    std::time::Duration::from_millis(200 + random % 2000)
}

/// How long a container's start may take in all: room for the manager's attach deadline to
/// pass twice.
const START_WITHIN: std::time::Duration = std::time::Duration::from_secs(75);
/// How long an engine waits for the manager to allocate an overlay attachment.
const SWARM_ATTACH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Whether an error of a start or a connect is an overlay attach the swarm did not complete.
/// An engine keeps an attach that passed the manager's deadline under (network, container) and
/// answers the next attach of that pair with "network … not found" without asking the manager;
/// that answer drops the kept attach (and frees an attachment task the manager allocated late,
/// which would otherwise hold the overlay), so the attach after it asks the manager anew.
/// The manager's own refusal ("Could not attach to network …", an overlay it does not have) is
/// final.
fn attach_failed(error: &str) -> bool {
    !error.contains("Could not attach to network")
        && (error.contains("attaching to network failed")
            || error.contains("context deadline exceeded")
            || (error.contains("network ") && error.contains(" not found")))
}

/// Starts a container once and connects the networks that wait for its start.
async fn start_once(node: &LocalNode, name: &str) -> NodeResult<()> {
    match node.docker.start_container(name, None::<bollard::query_parameters::StartContainerOptions>).await {
        Ok(()) => {}
        // Already running: a start whose connects after start had failed.
        Err(e) if is_status(&e, 304) => {}
        Err(e) => return Err(NodeError::Docker { doing: format!("starting container {name}"), source: e }),
    }
    let pending = node.after_start.lock().expect("after_start lock").get(name).cloned().unwrap_or_default();
    for a in &pending {
        match connect(node, name, a).await {
            // Connected by an earlier try.
            Err(NodeError::Docker { source, .. }) if is_status(&source, 403) && source.to_string().contains("already exists") => {}
            other => other?,
        }
    }
    Ok(())
}

pub(super) async fn remove(node: &LocalNode, name: &str) -> NodeResult<()> {
    node.after_start.lock().expect("after_start lock").remove(name);
    node.swarm_joining.lock().expect("swarm_joining lock").remove(name);
    match node.ours(name, &|| format!("removing container {name}")).await {
        Err(NodeError::Docker { source, .. }) if is_status(&source, 404) => return Ok(()),
        other => other?,
    };
    let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match node.docker.remove_container(name, Some(opts)).await {
        Ok(()) => {}
        Err(e) if is_status(&e, 404) => {}
        // 409: removal already in progress (a concurrent delete): treat as done.
        Err(e) if is_status(&e, 409) => {}
        Err(e) => return Err(NodeError::Docker { doing: format!("removing container {name}"), source: e }),
    }
    // Its delay lines end with it; their sockets and logs go now.
    super::delay::forget(name);
    // With the last container of every path, vnet-te's weighted group goes too.
    node.release_cgroup().await;
    Ok(())
}

pub(super) async fn read_file(node: &LocalNode, container: &str, path: &str) -> NodeResult<Option<String>> {
    let doing = || format!("reading {path} from {container}");
    scope::check_path(path, scope::FILE_PREFIXES).map_err(|message| NodeError::Refused { doing: doing(), message })?;
    node.ours(container, &doing).await?;
    let opts = DownloadFromContainerOptionsBuilder::default().path(path).build();
    let too_large = || NodeError::Failed { doing: doing(), message: format!("larger than {READ_FILE_LIMIT} bytes") };
    let mut stream = node.docker.download_from_container(container, Some(opts));
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => bytes.extend_from_slice(&b),
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(NodeError::Docker { doing: doing(), source: e }),
        }
        // The tar framing adds headers and padding to the file's own bytes.
        if bytes.len() > READ_FILE_LIMIT + 64 * 1024 {
            return Err(too_large());
        }
    }
    let mut archive = tar::Archive::new(bytes.as_slice());
    let fail = |e: std::io::Error| NodeError::Failed { doing: doing(), message: e.to_string() };
    // The archive of one file holds exactly that file.
    let Some(entry) = archive.entries().map_err(fail)?.next() else { return Ok(None) };
    let mut entry = entry.map_err(fail)?;
    // Docker archives a link as the link, not what it points at.
    if !entry.header().entry_type().is_file() {
        return Err(NodeError::Refused { doing: doing(), message: format!("{path} is not a regular file") });
    }
    if entry.size() > READ_FILE_LIMIT as u64 {
        return Err(too_large());
    }
    let mut s = String::new();
    std::io::Read::read_to_string(&mut entry, &mut s).map_err(fail)?;
    Ok(Some(s))
}

pub(super) async fn write_files(node: &LocalNode, container: &str, files: &[FileSpec]) -> NodeResult<()> {
    scope::check_writable(files).map_err(|message| NodeError::Refused { doing: format!("writing files into {container}"), message })?;
    node.upload(container, files).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_wait_for_the_start_only_where_the_engine_checks_a_network_mode_it_lacks() {
        // Docker 20.10 (API 1.41) attaches them all at start whatever their scope.
        for scope in [None, Some("swarm"), Some("local")] {
            assert!(!connect_after_start((1, 41), scope), "{scope:?}");
            assert!(!connect_after_start((1, 43), scope), "{scope:?}");
        }
        // Docker 25 and later: a worker without the overlay yet, or a swarm network anywhere.
        assert!(connect_after_start((1, 44), None));
        assert!(connect_after_start((1, 45), Some("swarm")));
        assert!(connect_after_start((1, 53), None));
        // Bridges on one host are the engine's own from their creation.
        assert!(!connect_after_start((1, 45), Some("local")));
    }

    #[test]
    fn starts_tried_again_pause_apart_by_chance_within_0_2_to_2_2_s() {
        let pauses: Vec<_> = (0..20).map(|_| retry_pause()).collect();
        assert!(pauses.iter().all(|p| (200..2200).contains(&p.as_millis())), "{pauses:?}");
        // Two ends that fail together must not try again in step.
        assert!(pauses.iter().any(|p| *p != pauses[0]), "{pauses:?}");
    }

    #[test]
    fn a_start_is_tried_again_only_when_the_swarm_did_not_attach_an_overlay() {
        assert!(attach_failed("Docker responded with status code 500: attaching to network failed, make sure your network options are correct and check manager logs: context deadline exceeded"));
        assert!(attach_failed("Docker responded with status code 404: network vte-ring-l3 not found"));
        assert!(!attach_failed("Docker responded with status code 500: failed to create task for container: exec: \"/x\": no such file or directory"));
        assert!(!attach_failed("Docker responded with status code 404: No such container: vte-ring-r1"));
        assert!(!attach_failed(
            "Docker responded with status code 500: Could not attach to network vte-ring-l3: rpc error: code = NotFound desc = network vte-ring-l3 not found"
        ));
    }

    #[test]
    fn a_specs_sysctls_join_those_of_its_role() {
        let spec = ContainerSpec {
            name: "vte-p-r1".into(),
            hostname: "r1".into(),
            image: "vnet-te/router:0.1.0".into(),
            role: ContainerRole::Router,
            attachments: Vec::new(),
            files: Vec::new(),
            env: Vec::new(),
            cmd: Vec::new(),
            labels: BTreeMap::new(),
            sysctls: BTreeMap::from([("net.ipv4.tcp_syn_retries".to_string(), "10".to_string())]),
            devices: Vec::new(),
            limits: Default::default(),
        };
        let sysctls = create_body(&spec, None).host_config.unwrap().sysctls.unwrap();
        assert_eq!(sysctls.get("net.ipv4.tcp_syn_retries").map(String::as_str), Some("10"));
        assert_eq!(sysctls.get("net.ipv4.ip_forward").map(String::as_str), Some("1"), "the role's stay");
    }
}
