//! The agent, over real mutual TLS in front of the real Docker engine, acts only on vnet-te's
//! objects: requests naming a container without vnet-te's labels, another image, a host or
//! shared network mode, a file outside vnet-te's paths, or the node's own network namespace
//! are refused (HTTP 403, `kind: refused`) and leave Docker as it was.

#[path = "../../tests/common/skip.rs"]
mod skip;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;

use support::{docker_node, remote, start, Pki};
use vnet_te_agent::node::{labels, Attachment, ContainerRole, ContainerSpec, FileSpec, Node, NodeError, VethEnd, VethSpec};
use vnet_te_agent::remote::RemoteNode;
use vnet_te_agent::scope;
use vnet_te_agent::tls;

/// Removes the containers it names when dropped, whatever the test's outcome.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&self.0).output();
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("running docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn exists(name: &str) -> bool {
    Command::new("docker").args(["inspect", "--type", "container", name]).output().is_ok_and(|o| o.status.success())
}

/// The agent in front of the real node, and the controller's client for it; `None` after a
/// skip.
async fn agent_for(test: &str) -> Option<(RemoteNode, SocketAddr, Pki, support::Agent)> {
    let node = match docker_node(&[scope::router_image(), scope::host_image()]).await {
        Ok(n) => n,
        Err(reason) => {
            skip::skip_or_fail(test, skip::Requirement::Docker, &reason);
            return None;
        }
    };
    let pki = Pki::new();
    let agent = start(&pki.agent("local"), node).await;
    Some((remote("local", agent.addr, &pki.controller), agent.addr, pki, agent))
}

fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, NodeError>, want: &str) {
    match r {
        Err(NodeError::Refused { message, .. }) => assert!(message.contains(want), "{what}: {message}"),
        other => panic!("{what}: expected a refusal ({want}), got {other:?}"),
    }
}

/// A host container as the controller plans one, on no Docker network.
fn host_spec(name: &str, path: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        hostname: "h1".into(),
        image: scope::host_image(),
        role: ContainerRole::Host,
        attachments: Vec::new(),
        files: vec![FileSpec { path: "/etc/vnet-te/note".into(), mode: 0o644, content: "planned\n".into() }],
        env: Vec::new(),
        cmd: vec!["sleep".into(), "600".into()],
        labels: BTreeMap::from([(labels::PATH.into(), path.into()), (labels::ROLE.into(), "host".into())]),
        sysctls: BTreeMap::new(),
        devices: Vec::new(),
        limits: Default::default(),
    }
}

#[tokio::test]
async fn a_container_without_vnet_tes_labels_is_refused_every_operation() {
    const TEST: &str = "scope::a_container_without_vnet_tes_labels_is_refused_every_operation";
    let Some((node, addr, pki, _agent)) = agent_for(TEST).await else { return };
    let name = format!("vte-hd-{}-bare", std::process::id());
    let _cleanup = Containers(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, &scope::host_image(), "sleep", "600"]);

    refused("start", node.start_container(&name).await, "no vnet-te.path label");
    refused("read_file", node.read_file(&name, "/etc/vnet-te/plan.json").await, "no vnet-te.path label");
    let file = FileSpec { path: "/etc/vnet-te/x".into(), mode: 0o644, content: "x".into() };
    refused("write_files", node.write_files(&name, std::slice::from_ref(&file)).await, "no vnet-te.path label");
    refused("interface_counters", node.interface_counters(&name).await, "no vnet-te.path label");
    refused("set_link_rate", node.set_link_rate(&name, "eth0", Some(1_000_000)).await, "no vnet-te.path label");
    refused("vpn", node.vpn(&name, &vnet_te_agent::vpn::VpnOp::CountStop {}).await, "no vnet-te.path label");
    refused("remove", node.remove_container(&name).await, "no vnet-te.path label");
    assert!(exists(&name), "a refused removal leaves the container");

    // On the wire: 403 and the refusal's body.
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls::client_config(&pki.controller).unwrap())
        .build()
        .unwrap();
    let answer = client
        .post(format!("https://{addr}/v1/op"))
        .body(format!(r#"{{"op":"remove_container","name":"{name}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::FORBIDDEN);
    let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body["kind"], "refused", "{body}");
    assert!(exists(&name));

    // A device beyond the TUN one, asked for on the wire: 403, nothing made.
    let mut spec = host_spec(&format!("{name}-dev"), &format!("hd-scope-{}", std::process::id()));
    spec.devices = vec!["/dev/sda".into()];
    let body = serde_json::json!({ "op": "create_container", "spec": spec });
    let answer = client.post(format!("https://{addr}/v1/op")).body(body.to_string()).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(!exists(&spec.name));
}

#[tokio::test]
async fn containers_of_other_images_or_network_modes_are_never_created() {
    const TEST: &str = "scope::containers_of_other_images_or_network_modes_are_never_created";
    let Some((node, _, _pki, _agent)) = agent_for(TEST).await else { return };
    let name = format!("vte-hd-{}-made", std::process::id());
    let _cleanup = Containers(vec![name.clone()]);
    let path = format!("hd-scope-{}", std::process::id());
    let with = |f: &dyn Fn(&mut ContainerSpec)| {
        let mut s = host_spec(&name, &path);
        f(&mut s);
        s
    };
    let cases: Vec<(&str, ContainerSpec, &str)> = vec![
        ("foreign image", with(&|s| s.image = "busybox:latest".into()), "is not vnet-te's host image"),
        ("router image as a host", with(&|s| s.image = scope::router_image()), "is not vnet-te's host image"),
        (
            "host network",
            with(&|s| s.attachments = vec![Attachment { network: "host".into(), address: "10.1.2.3".parse().unwrap() }]),
            "network \"host\" is not vnet-te's",
        ),
        (
            "another container's network",
            with(&|s| s.attachments = vec![Attachment { network: "container:x".into(), address: "10.1.2.3".parse().unwrap() }]),
            "is not vnet-te's",
        ),
        ("no path label", with(&|s| drop(s.labels.remove(labels::PATH))), "no vnet-te.path label"),
        ("file outside", with(&|s| s.files[0].path = "/root/.bashrc".into()), "outside vnet-te's paths"),
        ("env outside", with(&|s| s.env = vec!["VNET_TE_F0_PATH=/usr/sbin/ip".into()]), "outside vnet-te's paths"),
        ("a disk", with(&|s| s.devices = vec!["/dev/sda".into()]), "device \"/dev/sda\" is not allowed"),
        ("memory", with(&|s| s.devices = vec!["/dev/net/tun".into(), "/dev/mem".into()]), "device \"/dev/mem\" is not allowed"),
        ("TUN by another name", with(&|s| s.devices = vec!["/dev/net/../net/tun".into()]), "is not allowed"),
    ];
    for (what, spec, want) in cases {
        refused(what, node.create_container(&spec).await, want);
        assert!(!exists(&name), "{what}: nothing is created");
    }
    // The spec as planned is made: the refusals above are the departures, not the request.
    // A VPN end's is planned with the TUN device.
    node.create_container(&with(&|s| s.devices = vec!["/dev/net/tun".into()])).await.unwrap();
    assert!(exists(&name));
    let devices = docker(&["inspect", "-f", "{{json .HostConfig.Devices}}", &name]);
    assert!(devices.contains(r#""PathOnHost":"/dev/net/tun""#) && !devices.contains("sda"), "{devices}");
    node.remove_container(&name).await.unwrap();
    assert!(!exists(&name));
}

#[tokio::test]
async fn files_are_written_and_read_only_under_vnet_tes_paths() {
    const TEST: &str = "scope::files_are_written_and_read_only_under_vnet_tes_paths";
    let Some((node, _, _pki, _agent)) = agent_for(TEST).await else { return };
    let name = format!("vte-hd-{}-files", std::process::id());
    let _cleanup = Containers(vec![name.clone()]);
    node.create_container(&host_spec(&name, &format!("hd-scope-{}", std::process::id()))).await.unwrap();
    node.start_container(&name).await.unwrap();
    assert_eq!(node.read_file(&name, "/etc/vnet-te/note").await.unwrap().as_deref(), Some("planned\n"));

    let file = |path: &str| FileSpec { path: path.into(), mode: 0o644, content: "owned\n".into() };
    refused("write /etc/passwd", node.write_files(&name, &[file("/etc/passwd")]).await, "outside vnet-te's paths");
    refused("write through ..", node.write_files(&name, &[file("/etc/vnet-te/../passwd")]).await, "'..'");
    refused("write /etc/frr", node.write_files(&name, &[file("/etc/frr/frr.conf")]).await, "outside vnet-te's paths");
    refused("read /etc/shadow", node.read_file(&name, "/etc/shadow").await, "outside vnet-te's paths");
    let passwd = docker(&["exec", &name, "cat", "/etc/passwd"]);
    assert!(!passwd.contains("owned"), "/etc/passwd is untouched");

    // A link the container's user made under /etc/vnet-te is not followed out of it.
    docker(&["exec", &name, "ln", "-s", "/etc/shadow", "/etc/vnet-te/link"]);
    refused("read a link", node.read_file(&name, "/etc/vnet-te/link").await, "not a regular file");

    node.write_files(&name, &[file("/etc/vnet-te/new")]).await.unwrap();
    assert_eq!(node.read_file(&name, "/etc/vnet-te/new").await.unwrap().as_deref(), Some("owned\n"));
    node.remove_container(&name).await.unwrap();
}

#[tokio::test]
async fn no_link_reaches_the_nodes_own_network_namespace() {
    const TEST: &str = "scope::no_link_reaches_the_nodes_own_network_namespace";
    let Some((node, _, _pki, _agent)) = agent_for(TEST).await else { return };
    let pid = std::process::id();
    let (inside, on_host) = (format!("vte-hd-{pid}-in"), format!("vte-hd-{pid}-hostnet"));
    let _cleanup = Containers(vec![inside.clone(), on_host.clone()]);
    let path = format!("hd-scope-{pid}");
    node.create_container(&host_spec(&inside, &path)).await.unwrap();
    node.start_container(&inside).await.unwrap();
    // Labelled as vnet-te's but on the host's network: what the agent itself runs in.
    let label = format!("{}={path}", labels::PATH);
    docker(&["run", "-d", "--name", &on_host, "--network", "host", "--label", &label, &scope::host_image(), "sleep", "600"]);

    let ifname = format!("hdv{}", pid % 100_000);
    let end = |container: &str| VethEnd { container: container.into(), ifname: ifname.clone(), address: None };
    let link = VethSpec { a: end(&inside), b: end(&on_host), mtu: None, b_listens: false };
    refused("veth into the host namespace", node.connect_veth(&link).await, "shares the node's own network namespace");
    let here = Command::new("ip").args(["link", "show", &ifname]).output().unwrap();
    assert!(!here.status.success(), "no {ifname} appeared on the node");
    node.remove_container(&inside).await.unwrap();
}
