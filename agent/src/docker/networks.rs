//! Docker networks: listing, creating and removing them, the forwarding rule that lets
//! routers' traffic cross the `vte*` bridges, and the filter that keeps link VXLAN to the
//! cluster's nodes.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;

use crate::node::{Found, NetworkSpec, NodeError, NodeResult};
use crate::scope;

use super::containers::label_filter;
use super::{docker_err, is_status, LocalNode};

pub(super) async fn taken_subnets(node: &LocalNode) -> NodeResult<Vec<String>> {
    let nets = node.docker.list_networks(None::<bollard::query_parameters::ListNetworksOptions>).await.map_err(docker_err("listing networks"))?;
    let mut taken: Vec<String> = nets.into_iter().flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default()).filter_map(|c| c.subnet).collect();
    // Direct links are no Docker network: their subnets are in a label on the containers.
    for c in node.list_containers(label_filter(crate::node::labels::SUBNETS, None)).await? {
        if let Some(v) = c.labels.get(crate::node::labels::SUBNETS) {
            taken.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string));
        }
    }
    Ok(taken)
}

pub(super) async fn find(node: &LocalNode, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
    super::containers::check_label_key(label, "listing networks")?;
    let opts = ListNetworksOptionsBuilder::default().filters(&label_filter(label, value)).build();
    let nets = node.docker.list_networks(Some(opts)).await.map_err(docker_err("listing networks"))?;
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

pub(super) async fn create(node: &LocalNode, spec: &NetworkSpec) -> NodeResult<()> {
    scope::check_network_spec(spec).map_err(|message| NodeError::Refused { doing: format!("creating network {}", spec.name), message })?;
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
    node.docker.create_network(req).await.map(|_| ()).map_err(docker_err(format!("creating {} network {} ({})", spec.driver, spec.name, spec.subnet)))
}

pub(super) async fn remove(node: &LocalNode, name: &str) -> NodeResult<()> {
    // Swarm attachment tasks and endpoints of just-removed containers linger briefly:
    // retry "in use" answers with a deadline instead of failing the delete.
    match node.our_network(name, &|| format!("removing network {name}")).await {
        Err(NodeError::Docker { source, .. }) if is_status(&source, 404) => return Ok(()),
        other => other?,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match node.docker.remove_network(name).await {
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
                    let doing = format!("removing network {name}");
                    return Err(match holding_task(&e.to_string()) {
                        Some(task) => NodeError::Failed { doing, message: format!("{e}; {}", holder(node, task).await) },
                        None => NodeError::Docker { doing, source: e },
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(NodeError::Docker { doing: format!("removing network {name}"), source: e }),
        }
    }
}

/// The swarm task named by a manager's "network … is in use by task <id>".
fn holding_task(error: &str) -> Option<&str> {
    let rest = &error[error.find("in use by task ")? + "in use by task ".len()..];
    let id = rest.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    (!id.is_empty()).then_some(id)
}

/// What a swarm task that holds an overlay is, as the manager describes it: whose attachment,
/// on which node (an operator can remove that container there, or restart that node's engine,
/// which ends an attachment whose container is gone).
async fn holder(node: &LocalNode, task: &str) -> String {
    let t = match node.docker.inspect_task(task).await {
        Ok(t) => t,
        Err(e) => return format!("task {task}: {e}"),
    };
    let container = t.spec.and_then(|s| s.network_attachment_spec).and_then(|a| a.container_id).unwrap_or_default();
    let node_id = t.node_id.unwrap_or_default();
    let host = match node.docker.inspect_node(&node_id).await {
        Ok(n) => n.description.and_then(|d| d.hostname).unwrap_or(node_id),
        Err(_) => node_id,
    };
    let state = t.status.and_then(|s| s.state).map(|s| s.to_string()).unwrap_or_default();
    format!("task {task} ({state}) is the attachment of container {} on node {host}", container.get(..12).unwrap_or(&container))
}

/// The rule that lets routers' traffic cross the vte* bridges, kept by one shell script:
/// present with `on`, absent with `off`. One rule in the chain Docker reserves for users; the
/// bridges keep `internal` (no route out). It accepts only frames *bridged* within one vte*
/// bridge (physdev): the routers' transit traffic. Traffic the host would route from one vte*
/// bridge to another (a shortcut around the path, through the bridges' .1 gateway addresses)
/// still meets Docker's isolation rules and is dropped. A broader rule that also accepted
/// that shortcut is removed wherever found.
const FORWARDING_SCRIPT: &str = r#"set -u
rule="DOCKER-USER -i vte+ -o vte+ -m physdev --physdev-is-bridged -j ACCEPT"
broad="DOCKER-USER -i vte+ -o vte+ -j ACCEPT"
while iptables -w -C $broad 2>/dev/null; do iptables -w -D $broad || exit 1; done
if iptables -w -C $rule 2>/dev/null; then present=1; else present=0; fi
case "$1$present" in
    on0) exec iptables -w -I $rule ;;
    off1) exec iptables -w -D $rule ;;
esac"#;

const FORWARDING_DOING: &str = "updating the DOCKER-USER forwarding rule for vte* bridges";

/// Keeps the forwarding rule (`FORWARDING_SCRIPT`) in this machine's firewall: with iptables
/// itself as root, else (an operator in the docker group) in a short-lived container of the
/// host image in the machine's network namespace, which the engine lets that operator start.
pub(super) async fn bridge_forwarding(node: &LocalNode, enable: bool) -> NodeResult<()> {
    let mode = if enable { "on" } else { "off" };
    if nix::unistd::geteuid().is_root() {
        let out = tokio::process::Command::new("sh")
            .args(["-c", FORWARDING_SCRIPT, "sh", mode])
            .output()
            .await
            .map_err(|e| NodeError::Failed { doing: FORWARDING_DOING.into(), message: format!("running sh: {e}") })?;
        return if out.status.success() {
            Ok(())
        } else {
            Err(NodeError::Failed { doing: FORWARDING_DOING.into(), message: String::from_utf8_lossy(&out.stderr).trim().to_string() })
        };
    }
    forwarding_in_container(node, mode).await
}

/// The chain that filters link VXLAN on a node, hooked from INPUT for UDP 4790 only.
pub const VXLAN_CHAIN: &str = "VNET-TE-VXLAN";

/// The rules of [`VXLAN_CHAIN`] for `allow`, as `iptables -S` lists them: each node address
/// returns to INPUT (where the operator's own rules still apply), anything else is dropped.
pub fn vxlan_rules(allow: &[Ipv4Addr]) -> Vec<String> {
    let mut rules = vec![format!("-N {VXLAN_CHAIN}")];
    let mut sorted = allow.to_vec();
    sorted.sort();
    sorted.dedup();
    rules.extend(sorted.iter().map(|a| format!("-A {VXLAN_CHAIN} -s {a}/32 -j RETURN")));
    rules.push(format!("-A {VXLAN_CHAIN} -j DROP"));
    rules
}

const VXLAN_HOOK: [&str; 8] = ["INPUT", "-p", "udp", "-m", "udp", "--dport", "4790", "-j"];

async fn iptables(args: &[&str]) -> Result<std::process::Output, String> {
    tokio::process::Command::new("iptables").arg("-w").args(args).output().await.map_err(|e| format!("running iptables: {e}"))
}

async fn iptables_ok(args: &[&str]) -> Result<(), String> {
    let out = iptables(args).await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("iptables {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Keeps [`VXLAN_CHAIN`] as `allow` asks (rebuilt only when it differs) and hooked from
/// INPUT, or with `None` unhooks and deletes it. Idempotent.
pub(super) async fn vxlan_filter(allow: Option<&[Ipv4Addr]>) -> NodeResult<()> {
    let doing = "updating the filter of link VXLAN (UDP 4790)";
    let fail = |message: String| NodeError::Failed { doing: doing.to_string(), message };
    let hook = |op: &'static str| -> Vec<&str> { std::iter::once(op).chain(VXLAN_HOOK).chain([VXLAN_CHAIN]).collect() };
    let Some(allow) = allow else {
        while iptables(&hook("-C")).await.map_err(fail)?.status.success() {
            iptables_ok(&hook("-D")).await.map_err(fail)?;
        }
        if iptables(&["-S", VXLAN_CHAIN]).await.map_err(fail)?.status.success() {
            iptables_ok(&["-F", VXLAN_CHAIN]).await.map_err(fail)?;
            iptables_ok(&["-X", VXLAN_CHAIN]).await.map_err(fail)?;
        }
        return Ok(());
    };
    let want = vxlan_rules(allow);
    let listed = iptables(&["-S", VXLAN_CHAIN]).await.map_err(fail)?;
    let have: Vec<String> = String::from_utf8_lossy(&listed.stdout).lines().map(str::to_string).collect();
    if have != want {
        if !listed.status.success() {
            iptables_ok(&["-N", VXLAN_CHAIN]).await.map_err(fail)?;
        }
        // The drop goes in last: while the chain is rebuilt, nodes' traffic is never dropped.
        iptables_ok(&["-F", VXLAN_CHAIN]).await.map_err(fail)?;
        for a in want.iter().skip(1) {
            let args: Vec<&str> = a.split(' ').collect();
            iptables_ok(&args).await.map_err(fail)?;
        }
    }
    if !iptables(&hook("-C")).await.map_err(fail)?.status.success() {
        iptables_ok(&hook("-I")).await.map_err(fail)?;
    }
    Ok(())
}

/// The image of the forwarding container (it has iptables).
fn helper_image() -> String {
    format!("vnet-te/host:{}", env!("CARGO_PKG_VERSION"))
}

async fn forwarding_in_container(node: &LocalNode, mode: &str) -> NodeResult<()> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder};
    use futures_util::StreamExt;

    let name = format!("vnet-te-forwarding-{}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(helper_image()),
        cmd: Some(["sh", "-c", FORWARDING_SCRIPT, "sh", mode].map(String::from).to_vec()),
        labels: Some(HashMap::from([(crate::node::labels::OBJECT.to_string(), "forwarding".to_string())])),
        host_config: Some(HostConfig { network_mode: Some("host".into()), cap_add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]), ..Default::default() }),
        ..Default::default()
    };
    let doing = format!("{FORWARDING_DOING} (in container {name}, as a user who is not root)");
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    node.docker.create_container(Some(opts), body).await.map_err(docker_err(doing.clone()))?;
    let result = async {
        node.docker.start_container(&name, None::<bollard::query_parameters::StartContainerOptions>).await.map_err(docker_err(doing.clone()))?;
        let mut code = 0;
        let mut waits = node.docker.wait_container(&name, None::<bollard::query_parameters::WaitContainerOptions>);
        while let Some(w) = waits.next().await {
            match w {
                Ok(r) => code = r.status_code,
                // bollard reports a non-zero exit as this error.
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                Err(e) => return Err(NodeError::Docker { doing: doing.clone(), source: e }),
            }
        }
        if code == 0 {
            return Ok(());
        }
        let logs = LogsOptionsBuilder::default().stderr(true).stdout(true).build();
        let text: Vec<String> = node.docker.logs(&name, Some(logs)).filter_map(|l| async move { l.ok().map(|l| l.to_string()) }).collect().await;
        Err(NodeError::Failed { doing: doing.clone(), message: format!("exit {code}: {}", text.concat().trim()) })
    }
    .await;
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    if let Err(e) = node.docker.remove_container(&name, Some(rm)).await {
        if !is_status(&e, 404) {
            return Err(result.err().unwrap_or(NodeError::Docker { doing: format!("removing container {name}"), source: e }));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::holding_task;

    #[test]
    fn the_vxlan_chain_returns_each_node_once_then_drops_the_rest() {
        let a = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        let rules = super::vxlan_rules(&[a("10.0.0.3"), a("10.0.0.2"), a("10.0.0.3")]);
        assert_eq!(
            rules,
            ["-N VNET-TE-VXLAN", "-A VNET-TE-VXLAN -s 10.0.0.2/32 -j RETURN", "-A VNET-TE-VXLAN -s 10.0.0.3/32 -j RETURN", "-A VNET-TE-VXLAN -j DROP"]
        );
    }

    #[test]
    fn the_task_holding_an_overlay_is_read_from_the_managers_answer() {
        let e = "Docker responded with status code 500: rpc error: code = FailedPrecondition desc = network 5xjvpkojg1v8jdtz7v5pjtx7o is in use by task pda7vlshbudwq8krfkh0albv2";
        assert_eq!(holding_task(e), Some("pda7vlshbudwq8krfkh0albv2"));
        assert_eq!(holding_task("error while removing network: network vte-p-l1 id 3f2 has active endpoints"), None);
    }
}
