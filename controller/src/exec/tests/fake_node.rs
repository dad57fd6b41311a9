//! The fake itself: it refuses what an engine would, and fails when told to.

use std::net::Ipv4Addr;

use vnet_te_agent::node::{labels, ContainerRole, ContainerSpec, Node, VethEnd, VethSpec};

use crate::exec::fake::{Call, FakeNode};

fn container(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        hostname: name.into(),
        image: "vnet-te/router:test".into(),
        role: ContainerRole::Router,
        attachments: Vec::new(),
        files: Vec::new(),
        env: Vec::new(),
        cmd: Vec::new(),
        labels: [(labels::PATH.to_string(), "p".to_string())].into(),
    }
}

fn veth(a: &str, b: &str) -> VethSpec {
    let end = |c: &str| VethEnd { container: c.into(), ifname: "eth1".into(), address: None };
    VethSpec { a: end(a), b: end(b), mtu: None, b_listens: false }
}

#[tokio::test]
async fn the_fake_refuses_what_an_engine_refuses() {
    let n = FakeNode::new("n1");
    n.create_container(&container("a")).await.unwrap();
    n.create_container(&container("b")).await.unwrap();
    assert!(n.create_container(&container("a")).await.is_err(), "the name is taken");
    n.start_container("a").await.unwrap();
    let e = n.connect_veth(&veth("a", "b")).await.unwrap_err();
    assert!(e.to_string().contains("container b is not running"), "{e}");
    n.start_container("b").await.unwrap();
    n.connect_veth(&veth("a", "b")).await.unwrap();
    let mut attached = container("c");
    attached.attachments.push(vnet_te_agent::node::Attachment { network: "lan".into(), address: Ipv4Addr::new(10, 0, 0, 2) });
    assert!(n.create_container(&attached).await.is_err(), "no such network");
    n.add_network("lan", "10.0.0.0/24", &[]);
    n.create_container(&attached).await.unwrap();
    assert!(n.remove_network("lan").await.is_err(), "a container is attached");
    n.remove_container("c").await.unwrap();
    n.remove_network("lan").await.unwrap();
    assert!(n.write_files("a", &[]).await.is_ok());
    let outside = vnet_te_agent::node::FileSpec { path: "/etc/passwd".into(), mode: 0o644, content: String::new() };
    assert!(n.write_files("a", &[outside]).await.is_err());
    let found = n.find_containers(labels::PATH, Some("p")).await.unwrap();
    assert_eq!(found.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(n.images_present(&["x".into()]).await.unwrap()["x"]);
    n.remove_image("x");
    assert!(!n.images_present(&["x".into()]).await.unwrap()["x"]);
    assert!(n.wait_bgpd("a", 15).await.unwrap());
}

#[tokio::test]
async fn the_fake_fails_when_told_and_records_every_call() {
    let n = FakeNode::new("n1");
    n.fail_nth("create_container", 1);
    n.fail_on(|c| matches!(c, Call::StartContainer(name) if name == "a"));
    n.create_container(&container("a")).await.unwrap();
    assert!(n.create_container(&container("b")).await.is_err());
    n.create_container(&container("c")).await.unwrap();
    assert!(n.start_container("a").await.is_err());
    n.start_container("c").await.unwrap();
    n.set_lost(true);
    let e = n.find_containers(labels::PATH, None).await.unwrap_err();
    assert!(e.to_string().starts_with("node n1 ("), "{e}");
    let calls: Vec<(String, Option<bool>)> =
        n.journal().entries().into_iter().map(|e| (e.call.to_string(), e.ok)).collect();
    let want = [
        ("create_container a", true),
        ("create_container b", false),
        ("create_container c", true),
        ("start_container a", false),
        ("start_container c", true),
        ("find_containers vnet-te.path", false),
    ];
    assert_eq!(calls, want.map(|(c, ok)| (c.to_string(), Some(ok))));
}
