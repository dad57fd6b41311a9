//! The fake itself: it refuses what an engine would, and fails when told to.

use std::net::Ipv4Addr;

use vnet_te_agent::node::{labels, ContainerRole, ContainerSpec, Node, VethEnd, VethSpec};

use crate::exec::fake::{Call, FakeNode};

fn container(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        hostname: name.into(),
        image: vnet_te_agent::scope::router_image(),
        role: ContainerRole::Router,
        attachments: Vec::new(),
        files: Vec::new(),
        env: Vec::new(),
        cmd: Vec::new(),
        labels: [(labels::PATH.to_string(), "p".to_string()), (labels::ROLE.to_string(), "router".to_string())].into(),
        sysctls: Default::default(),
        devices: Vec::new(),
        limits: Default::default(),
    }
}

fn veth(a: &str, b: &str) -> VethSpec {
    let end = |c: &str| VethEnd { container: c.into(), ifname: "eth1".into(), address: None };
    VethSpec { a: end(a), b: end(b), mtu: None, b_listens: false }
}

#[tokio::test]
async fn the_fake_refuses_what_an_engine_refuses() {
    let n = FakeNode::new("n1");
    n.create_container(&container("vte-p-a")).await.unwrap();
    n.create_container(&container("vte-p-b")).await.unwrap();
    assert!(n.create_container(&container("vte-p-a")).await.is_err(), "the name is taken");
    n.start_container("vte-p-a").await.unwrap();
    let e = n.connect_veth(&veth("vte-p-a", "vte-p-b")).await.unwrap_err();
    assert!(e.to_string().contains("container vte-p-b is not running"), "{e}");
    n.start_container("vte-p-b").await.unwrap();
    n.connect_veth(&veth("vte-p-a", "vte-p-b")).await.unwrap();
    let mut attached = container("vte-p-c");
    attached.attachments.push(vnet_te_agent::node::Attachment { network: "vte-p-lan".into(), address: Ipv4Addr::new(10, 0, 0, 2) });
    assert!(n.create_container(&attached).await.is_err(), "no such network");
    n.add_network("vte-p-lan", "10.0.0.0/24", &[]);
    n.create_container(&attached).await.unwrap();
    assert!(n.remove_network("vte-p-lan").await.is_err(), "a container is attached");
    n.remove_container("vte-p-c").await.unwrap();
    n.remove_network("vte-p-lan").await.unwrap();
    assert!(n.write_files("vte-p-a", &[]).await.is_ok());
    let outside = vnet_te_agent::node::FileSpec { path: "/etc/passwd".into(), mode: 0o644, content: String::new() };
    assert!(n.write_files("vte-p-a", &[outside]).await.is_err());
    let found = n.find_containers(labels::PATH, Some("p")).await.unwrap();
    assert_eq!(found.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["vte-p-a", "vte-p-b"]);
    assert!(n.images_present(&["x".into()]).await.unwrap()["x"]);
    n.remove_image("x");
    assert!(!n.images_present(&["x".into()]).await.unwrap()["x"]);
    assert!(n.wait_bgpd("vte-p-a", 15).await.unwrap());
}

#[tokio::test]
async fn the_fake_fails_when_told_and_records_every_call() {
    let n = FakeNode::new("n1");
    n.fail_nth("create_container", 1);
    n.fail_on(|c| matches!(c, Call::StartContainer(name) if name == "vte-p-a"));
    n.create_container(&container("vte-p-a")).await.unwrap();
    assert!(n.create_container(&container("vte-p-b")).await.is_err());
    n.create_container(&container("vte-p-c")).await.unwrap();
    assert!(n.start_container("vte-p-a").await.is_err());
    n.start_container("vte-p-c").await.unwrap();
    n.set_lost(true);
    let e = n.find_containers(labels::PATH, None).await.unwrap_err();
    assert!(e.to_string().starts_with("node n1 ("), "{e}");
    let calls: Vec<(String, Option<bool>)> =
        n.journal().entries().into_iter().map(|e| (e.call.to_string(), e.ok)).collect();
    let want = [
        ("create_container vte-p-a", true),
        ("create_container vte-p-b", false),
        ("create_container vte-p-c", true),
        ("start_container vte-p-a", false),
        ("start_container vte-p-c", true),
        ("find_containers vnet-te.path", false),
    ];
    assert_eq!(calls, want.map(|(c, ok)| (c.to_string(), Some(ok))));
}

#[tokio::test]
async fn the_fake_keeps_the_delay_lines_and_rates_it_was_given() {
    use vnet_te_agent::node::{DelayLineSpec, DelaySettings};
    let n = FakeNode::new("n1");
    for name in ["vte-p-a", "vte-p-b"] {
        n.create_container(&container(name)).await.unwrap();
    }
    let line = DelayLineSpec {
        container: "vte-p-b".into(),
        ifname: "eth1".into(),
        queue: 1,
        delay_us: 100_000,
        jitter_us: 0,
        loss_ppm: 0,
        queue_max_len: None,
        schedule: None,
    };
    let e = n.start_delay_line(&line).await.unwrap_err();
    assert!(e.to_string().contains("container vte-p-b is not running"), "{e}");
    n.start_container("vte-p-a").await.unwrap();
    n.start_container("vte-p-b").await.unwrap();
    n.start_delay_line(&line).await.unwrap();
    // A second start of the same end sets its settings.
    n.start_delay_line(&DelayLineSpec { delay_us: 50_000, ..line.clone() }).await.unwrap();
    let e = n.start_delay_line(&DelayLineSpec { queue: 2, ..line.clone() }).await.unwrap_err();
    assert!(e.to_string().contains("runs on queue 1, not 2"), "{e}");
    let e = n.start_delay_line(&DelayLineSpec { container: "b".into(), ..line.clone() }).await.unwrap_err();
    assert!(e.to_string().contains("refused: container \"b\" is not vnet-te's"), "{e}");
    n.set_delay_line("vte-p-b", "eth1", DelaySettings { loss_ppm: Some(10_000), ..Default::default() }).await.unwrap();
    assert!(n.set_delay_line("vte-p-b", "eth2", DelaySettings::default()).await.is_err(), "no line there");
    let lines = n.delay_lines("vte-p-b").await.unwrap();
    assert_eq!(lines.len(), 1);
    let status = lines[0].status.unwrap();
    assert_eq!((lines[0].ifname.as_str(), status.queue), ("eth1", 1));
    assert_eq!((status.settings.delay_ms, status.settings.jitter_ms, status.settings.loss_percent), (50.0, 0.0, 1.0));
    assert!(n.delay_lines("vte-p-a").await.unwrap().is_empty());

    assert!(n.set_link_rate("vte-p-a", "eth1", Some(10_000_000)).await.is_err(), "no such interface yet");
    n.connect_veth(&veth("vte-p-a", "vte-p-b")).await.unwrap();
    n.set_link_rate("vte-p-a", "eth1", Some(10_000_000)).await.unwrap();
    assert_eq!(n.containers()["vte-p-a"].rates.get("eth1"), Some(&10_000_000));
    n.set_link_rate("vte-p-a", "eth1", None).await.unwrap();
    assert!(n.containers()["vte-p-a"].rates.is_empty());

    // The lines go with their container.
    n.remove_container("vte-p-b").await.unwrap();
    assert!(n.delay_lines("vte-p-b").await.unwrap().is_empty());
    let kinds: Vec<&str> = n.journal().entries().iter().map(|e| e.call.kind()).filter(|k| k.contains("delay")).collect();
    assert_eq!(kinds.len(), 10, "{kinds:?}");
    assert!(n.journal().of_kind("start_delay_line").iter().all(|e| e.call.is_mutating()));
}
