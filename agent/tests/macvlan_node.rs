//! The node's macvlan operations against a real engine: a host-image container attached to a
//! "LAN" of the node (a veth the test makes, whose other end is in a namespace of its own),
//! the container reaching the namespace over it, refusals of names that are not plain or not
//! vnet-te's, a parent the node lacks, and `remove_macvlans` taking the macvlan off the parent
//! while the container still runs.
//!
//! Needs root and a Docker engine with the image `vnet-te/host:0.1.0`; where either is missing
//! the test says why on stderr and passes as skipped, unless VNET_TE_REQUIRE_DOCKER=1.

#[path = "../../tests/common/lan.rs"]
mod lan;
#[path = "../../tests/common/skip.rs"]
mod skip;
mod support;

use std::process::{Command, Stdio};

use lan::{ip_ok, Lan};

use vnet_te_agent::node::{MacvlanSpec, Node, NodeError};

const TEST: &str = "macvlan_node::a_host_is_attached_to_a_lan_of_the_node_and_taken_off_it";
use support::HOST_IMAGE as IMAGE;

/// The test's container, force-removed whatever the outcome.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

#[tokio::test]
async fn a_host_is_attached_to_a_lan_of_the_node_and_taken_off_it() {
    let node = match support::docker_node(&[IMAGE.to_string()]).await {
        Ok(n) => n,
        Err(why) => return skip::skip_or_fail(TEST, skip::Requirement::Docker, &why),
    };
    let id = std::process::id() % 100_000;
    let lan = match Lan::new("mv") {
        Ok(lan) => lan,
        Err(why) => return skip::skip_or_fail(TEST, skip::Requirement::Docker, &why),
    };
    ip_ok(&["-n", &lan.ns, "addr", "add", "10.254.9.2/24", "dev", &lan.peer]);
    let c = Container(format!("vte-mvtest-{id}"));
    let spec = support::idle_host(&c.0, "macvlan-node");
    node.create_container(&spec).await.unwrap();
    node.start_container(&c.0).await.unwrap();

    let own = node.own_interfaces().await.unwrap();
    assert!(own.contains(&"lo".to_string()) && own.contains(&lan.parent), "{own:?}");
    let link = MacvlanSpec {
        container: c.0.clone(),
        ifname: "eth1".into(),
        parent: lan.parent.clone(),
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
    assert!(lan.macs_on_parent().is_empty());

    node.connect_macvlan(&link).await.unwrap();
    let shown = Command::new("docker").args(["exec", &c.0, "ip", "-br", "addr", "show", "eth1"]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains("UP") && shown.contains("10.254.9.1/24"), "{shown}");
    let ping = Command::new("docker").args(["exec", &c.0, "ping", "-c", "2", "-W", "1", "10.254.9.2"]).output().unwrap();
    assert!(ping.status.success(), "the container reaches the LAN: {}", String::from_utf8_lossy(&ping.stdout));
    let mac = Command::new("docker").args(["exec", &c.0, "cat", "/sys/class/net/eth1/address"]).output().unwrap();
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_string();
    assert_eq!(lan.macs_on_parent(), std::slice::from_ref(&mac));

    // Taken off the parent at once, the container still running; absent containers are no error.
    node.remove_macvlans(&c.0).await.unwrap();
    assert!(lan.macs_on_parent().is_empty(), "{mac} still on {}", lan.parent);
    let left = Command::new("docker").args(["exec", &c.0, "ip", "-br", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains("eth1"));
    node.remove_container(&c.0).await.unwrap();
    node.remove_macvlans(&c.0).await.unwrap();
    let e = node.remove_macvlans("postgres").await.unwrap_err();
    assert!(matches!(e, NodeError::Refused { .. }), "{e:?}");
}
