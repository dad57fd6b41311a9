//! The node's macvlan operations against a real engine: a host-image container attached to a
//! "LAN" of the node (a veth the test makes, whose other end is in a namespace of its own),
//! the container reaching the namespace over it, refusals of names that are not plain or not
//! vnet-te's, a parent the node lacks, and `remove_macvlans` taking the macvlan off the parent
//! while the container still runs.
//!
//! Needs root and a Docker engine with the image `vnet-te/host:0.1.0`; where either is missing
//! the test says why on stderr and passes as skipped, unless VNET_TE_REQUIRE_DOCKER=1.

#[path = "../../tests/common/skip.rs"]
mod skip;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use vnet_te_agent::docker::LocalNode;
use vnet_te_agent::node::{ContainerRole, ContainerSpec, MacvlanSpec, Node, NodeError};

const TEST: &str = "macvlan_node::a_host_is_attached_to_a_lan_of_the_node_and_taken_off_it";
const IMAGE: &str = "vnet-te/host:0.1.0";

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("running ip")
}

/// The container and the veth pair with its namespace, removed whatever the outcome.
struct Fixture {
    container: String,
    parent: String,
    ns: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.container]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = ip(&["link", "del", &self.parent]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// Unicast MAC addresses on the parent's address list (a macvlan puts its own there).
fn macs_on(parent: &str) -> Vec<String> {
    let out = Command::new("bridge").args(["fdb", "show", "dev", parent]).output().expect("running bridge");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|m| !m.starts_with("01:00:5e") && !m.starts_with("33:33"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_host_is_attached_to_a_lan_of_the_node_and_taken_off_it() {
    let node = match LocalNode::connect("local").await {
        Ok(n) => n,
        Err(e) => return skip::skip_or_fail(TEST, skip::Requirement::Docker, &format!("no Docker engine: {e}")),
    };
    if !node.images_present(&[IMAGE.to_string()]).await.is_ok_and(|m| m[IMAGE]) {
        return skip::skip_or_fail(TEST, skip::Requirement::Docker, &format!("image {IMAGE} missing"));
    }
    let id = std::process::id() % 100_000;
    let f = Fixture { container: format!("vte-mvtest-{id}"), parent: format!("mv-{id}p"), ns: format!("mv-lan-{id}") };
    let peer = format!("mv-{id}q");
    if !ip(&["netns", "add", &f.ns]).status.success() {
        return skip::skip_or_fail(TEST, skip::Requirement::Docker, "cannot make a network namespace (not root?)");
    }
    for args in [
        vec!["link", "add", &f.parent, "type", "veth", "peer", "name", &peer, "netns", &f.ns],
        vec!["link", "set", &f.parent, "up"],
        vec!["-n", &f.ns, "link", "set", &peer, "up"],
        vec!["-n", &f.ns, "addr", "add", "10.254.9.2/24", "dev", &peer],
    ] {
        let out = ip(&args);
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let spec = ContainerSpec {
        name: f.container.clone(),
        hostname: "h".into(),
        image: IMAGE.into(),
        role: ContainerRole::Host,
        attachments: Vec::new(),
        files: Vec::new(),
        env: Vec::new(),
        cmd: vec!["sleep".into(), "infinity".into()],
        labels: BTreeMap::from([("vnet-te.test".into(), "macvlan-node".into())]),
        sysctls: BTreeMap::new(),
    };
    node.create_container(&spec).await.unwrap();
    node.start_container(&f.container).await.unwrap();

    let own = node.own_interfaces().await.unwrap();
    assert!(own.contains(&"lo".to_string()) && own.contains(&f.parent), "{own:?}");
    let link = MacvlanSpec {
        container: f.container.clone(),
        ifname: "eth1".into(),
        parent: f.parent.clone(),
        address: "10.254.9.1/24".parse().unwrap(),
    };

    // Refused before anything is made: not vnet-te's, names that are not plain.
    for bad in [
        MacvlanSpec { container: "postgres".into(), ..link.clone() },
        MacvlanSpec { parent: "../eth0".into(), ..link.clone() },
        MacvlanSpec { ifname: "eth1 up".into(), ..link.clone() },
    ] {
        let e = node.connect_macvlan(&bad).await.unwrap_err();
        assert!(matches!(e, NodeError::Refused { .. }), "{e:?}");
    }
    // A parent the node lacks.
    let e = node.connect_macvlan(&MacvlanSpec { parent: format!("mv-{id}x"), ..link.clone() }).await.unwrap_err();
    assert!(e.to_string().ends_with(&format!("no interface 'mv-{id}x' on node local")), "{e}");
    assert!(macs_on(&f.parent).is_empty());

    node.connect_macvlan(&link).await.unwrap();
    let shown = Command::new("docker").args(["exec", &f.container, "ip", "-br", "addr", "show", "eth1"]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains("UP") && shown.contains("10.254.9.1/24"), "{shown}");
    let ping = Command::new("docker").args(["exec", &f.container, "ping", "-c", "2", "-W", "1", "10.254.9.2"]).output().unwrap();
    assert!(ping.status.success(), "the container reaches the LAN: {}", String::from_utf8_lossy(&ping.stdout));
    let mac = Command::new("docker").args(["exec", &f.container, "cat", "/sys/class/net/eth1/address"]).output().unwrap();
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_string();
    assert_eq!(macs_on(&f.parent), std::slice::from_ref(&mac));

    // Taken off the parent at once, the container still running; absent containers are no error.
    node.remove_macvlans(&f.container).await.unwrap();
    assert!(macs_on(&f.parent).is_empty(), "{mac} still on {}", f.parent);
    let left = Command::new("docker").args(["exec", &f.container, "ip", "-br", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains("eth1"));
    node.remove_container(&f.container).await.unwrap();
    node.remove_macvlans(&f.container).await.unwrap();
    let e = node.remove_macvlans("postgres").await.unwrap_err();
    assert!(matches!(e, NodeError::Refused { .. }), "{e:?}");
}
