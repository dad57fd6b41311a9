//! The node's VXLAN link against a real engine when its identifier is still taken on the
//! node: the link waits for the identifier to be freed (as a just-removed path's tunnels are
//! once the kernel has torn down their namespaces) instead of failing with EEXIST.
//!
//! Needs root and a Docker engine with the image `vnet-te/host:0.1.0`; where either is missing
//! the test says why on stderr and passes as skipped, unless VNET_TE_REQUIRE_DOCKER=1.

#[path = "../../tests/common/skip.rs"]
mod skip;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vnet_te_agent::node::{Node, VxlanSpec};

const TEST: &str = "vxlan_node::a_vxlan_link_waits_for_its_identifier_to_be_freed";
use support::HOST_IMAGE as IMAGE;

/// The test's container and the node-side tunnel holding the identifier, removed whatever the outcome.
struct Cleanup {
    container: String,
    blocker: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.container]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["link", "del", &self.blocker]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

#[tokio::test]
async fn a_vxlan_link_waits_for_its_identifier_to_be_freed() {
    let node = match support::docker_node(&[IMAGE.to_string()]).await {
        Ok(n) => n,
        Err(why) => return skip::skip_or_fail(TEST, skip::Requirement::Docker, &why),
    };
    let id = std::process::id() % 100_000;
    // A UDP port and identifier no path uses (paths tunnel on 4790).
    let (vni, port) = (9_000_000 + id, 47_000 + (id % 1000) as u16);
    let guard = Cleanup { container: format!("vte-vxtest-{id}"), blocker: format!("vtevxb{id}") };
    let made = Command::new("ip")
        .args(["link", "add", &guard.blocker, "type", "vxlan", "id", &vni.to_string(), "local", "127.0.0.1", "dstport", &port.to_string(), "nolearning"])
        .output()
        .unwrap();
    if !made.status.success() {
        return skip::skip_or_fail(TEST, skip::Requirement::Docker, &format!("cannot make a VXLAN device here: {}", String::from_utf8_lossy(&made.stderr)));
    }
    let spec = support::idle_host(&guard.container, "vxlan-node");
    node.create_container(&spec).await.unwrap();
    node.start_container(&guard.container).await.unwrap();
    let link = VxlanSpec {
        container: guard.container.clone(),
        ifname: "eth1".into(),
        vni,
        local: "127.0.0.1".parse().unwrap(),
        remote: "127.0.0.2".parse().unwrap(),
        port,
        mtu: None,
        address: Some("10.254.10.1/30".parse().unwrap()),
    };

    // The identifier is freed 1.5 s after the link is asked for.
    let blocker = guard.blocker.clone();
    let freer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        Command::new("ip").args(["link", "del", &blocker]).status().unwrap().success()
    });
    let started = Instant::now();
    let made = node.connect_vxlan(&link).await;
    let took = started.elapsed();
    assert!(freer.join().unwrap(), "the test's own tunnel could not be removed");
    made.unwrap();
    assert!(took >= Duration::from_millis(1500), "the link was made while its identifier was taken ({took:?})");
    let shown = Command::new("docker").args(["exec", &guard.container, "ip", "-d", "addr", "show", "eth1"]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains(",UP") && shown.contains(&format!("vxlan id {vni}")) && shown.contains("10.254.10.1/30"), "{shown}");
}
