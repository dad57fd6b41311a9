//! Docker networks: listing, creating and removing them, and the forwarding rule that lets
//! routers' traffic cross the `vte*` bridges.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;

use crate::node::{Found, NetworkSpec, NodeError, NodeResult};
use crate::scope;

use super::containers::label_filter;
use super::{docker_err, is_status, LocalNode};

pub(super) async fn taken_subnets(node: &LocalNode) -> NodeResult<Vec<String>> {
    let nets = node
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
    scope::check_network_spec(spec)
        .map_err(|message| NodeError::Refused { doing: format!("creating network {}", spec.name), message })?;
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
    node.docker
        .create_network(req)
        .await
        .map(|_| ())
        .map_err(docker_err(format!("creating {} network {} ({})", spec.driver, spec.name, spec.subnet)))
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
                    return Err(NodeError::Docker { doing: format!("removing network {name}"), source: e });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(NodeError::Docker { doing: format!("removing network {name}"), source: e }),
        }
    }
}

pub(super) async fn bridge_forwarding(enable: bool) -> NodeResult<()> {
    // One rule in the chain Docker reserves for users; the bridges keep `internal` (no
    // route out). It accepts only frames *bridged* within one vte* bridge (physdev): the
    // routers' transit traffic. Traffic the host would route from one vte* bridge to
    // another (a shortcut around the path, through the bridges' .1 gateway addresses)
    // still meets Docker's isolation rules and is dropped.
    const RULE: [&str; 10] =
        ["DOCKER-USER", "-i", "vte+", "-o", "vte+", "-m", "physdev", "--physdev-is-bridged", "-j", "ACCEPT"];
    // A broader rule that also accepts host-routed traffic between vte* bridges (the
    // shortcut above): removed wherever found, so only bridged frames pass.
    const BROAD: [&str; 7] = ["DOCKER-USER", "-i", "vte+", "-o", "vte+", "-j", "ACCEPT"];
    let run = |op: &str, rule: &[&str]| {
        let mut c = std::process::Command::new("iptables");
        c.arg("-w").arg(op).args(rule);
        c.output()
    };
    let doing = "updating the DOCKER-USER forwarding rule for vte* bridges";
    let fail = |m: String| NodeError::Failed { doing: doing.to_string(), message: m };
    while run("-C", &BROAD).map_err(|e| fail(format!("running iptables: {e}")))?.status.success() {
        run("-D", &BROAD).map_err(|e| fail(format!("running iptables: {e}")))?;
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
