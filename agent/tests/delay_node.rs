//! The node's delay-line operations against a real engine: two host-image containers joined by
//! a veth pair, a delay line on b's end started through `LocalNode::start_delay_line`, pings
//! from a to b (only a → b is delayed: the RTT is the line's delay plus the veth's few µs),
//! a change of delay, the lines' status, a rate limit, and the line's end with its container.
//!
//! Needs root, a Docker engine with the image `vnet-te/host:0.1.0`, and a kernel with NFQUEUE;
//! where any is missing the test says why on stderr and passes as skipped, unless
//! VNET_TE_REQUIRE_DOCKER=1 (engine, image) or VNET_TE_REQUIRE_DELAY=1 (NFQUEUE).

#[path = "../../tests/common/skip.rs"]
mod skip;
mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vnet_te_agent::docker::delay::{control_dir, BINARY_ENV};
use vnet_te_agent::docker::LocalNode;
use vnet_te_agent::node::{ContainerSpec, DelayLineSpec, DelaySettings, Node, NodeError, VethEnd, VethSpec};

const TEST: &str = "delay_node::a_delay_line_started_on_a_node_delays_its_link_end_and_ends_with_the_container";
use support::HOST_IMAGE as IMAGE;
const B_ADDR: Ipv4Addr = Ipv4Addr::new(10, 254, 1, 2);

/// The test's containers, force-removed whatever the outcome.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        let mut args = vec!["rm".to_string(), "-f".into()];
        args.extend(self.0.iter().cloned());
        let _ = Command::new("docker").args(&args).stdout(Stdio::null()).stderr(Stdio::null()).status();
        for name in &self.0 {
            let _ = std::fs::remove_dir_all(control_dir(name));
        }
    }
}

fn spec(name: &str) -> ContainerSpec {
    ContainerSpec {
        hostname: name.rsplit('-').next().unwrap_or(name).into(),
        sysctls: BTreeMap::from([("net.ipv4.tcp_syn_retries".into(), "9".into())]),
        ..support::idle_host(name, "delay-node")
    }
}

/// Processes of `vnet-te-delay` whose command line names `container`.
fn lines_of(container: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let is_line = args.first().is_some_and(|a| a.ends_with("vnet-te-delay"));
        (is_line && args.iter().any(|a| a.contains(container))).then_some(pid)
    })
    .collect()
}

/// The RTTs (ms) of the replies in ping's output.
fn rtts(output: &str) -> Vec<f64> {
    output.lines().filter_map(|l| l.split("time=").nth(1)?.split_whitespace().next()?.parse().ok()).collect()
}

async fn ping_b(node: &LocalNode, a: &str) -> Vec<f64> {
    let p = node.ping(a, B_ADDR, None, false, 2000).await.expect("ping runs");
    let r = rtts(&p.output);
    eprintln!("ping {a} → {B_ADDR}: {r:?} ms");
    assert_eq!(r.len(), 3, "every ping answered: {}", p.output);
    r
}

fn within(rtts: &[f64], low: f64, high: f64) {
    assert!(rtts.iter().all(|&r| r >= low && r < high), "RTTs {rtts:?} not within [{low}, {high}) ms");
}

fn tc_show(pid: &str) -> String {
    let out = Command::new("nsenter").args(["-t", pid, "-n", "tc", "qdisc", "show", "dev", "eth1"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_delay_line_started_on_a_node_delays_its_link_end_and_ends_with_the_container() {
    let node = match support::docker_node(&[IMAGE.to_string()]).await {
        Ok(n) => n,
        Err(why) => return skip::skip_or_fail(TEST, skip::Requirement::Docker, &why),
    };
    // The binary of this build (the test's own executable has none beside it).
    std::env::set_var(BINARY_ENV, env!("CARGO_BIN_EXE_vnet-te-delay"));

    let id = std::process::id();
    let (a, b) = (format!("vte-dltest-{id}-a"), format!("vte-dltest-{id}-b"));
    let _guard = Containers(vec![a.clone(), b.clone()]);
    for name in [&a, &b] {
        node.create_container(&spec(name)).await.unwrap();
        node.start_container(name).await.unwrap();
    }
    let end = |container: &str, address: &str| VethEnd {
        container: container.into(),
        ifname: "eth1".into(),
        address: Some(address.parse().unwrap()),
    };
    let link = VethSpec { a: end(&a, "10.254.1.1/30"), b: end(&b, "10.254.1.2/30"), mtu: None, b_listens: false };
    node.connect_veth(&link).await.unwrap();
    let bare = ping_b(&node, &a).await;
    within(&bare, 0.0, 20.0);

    // 100 ms on packets arriving at b.
    let line = DelayLineSpec {
        container: b.clone(),
        ifname: "eth1".into(),
        queue: 1,
        delay_us: 100_000,
        jitter_us: 0,
        loss_ppm: 0,
        queue_max_len: None,
        schedule: None,
    };
    if let Err(e) = node.start_delay_line(&line).await {
        let message = e.to_string();
        if message.contains("NFQUEUE") {
            return skip::skip_or_fail(TEST, skip::Requirement::Delay, &format!("no NFQUEUE here: {message}"));
        }
        panic!("starting the delay line: {message}");
    }
    let first = lines_of(&b);
    assert_eq!(first.len(), 1, "one delay line process for b's end: {first:?}");
    within(&ping_b(&node, &a).await, 100.0, 150.0);

    // A change at run time.
    node.set_delay_line(&b, "eth1", DelaySettings { delay_us: Some(20_000), ..Default::default() }).await.unwrap();
    within(&ping_b(&node, &a).await, 20.0, 70.0);
    let lines = node.delay_lines(&b).await.unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].ifname, "eth1");
    let status = lines[0].status.expect("the line answers");
    assert_eq!((status.queue, status.settings.delay_ms), (1, 20.0));
    assert_eq!(status.counters.queued, 6, "the six echo requests, nothing else: {status:?}");
    assert_eq!(status.counters.released, 6, "{status:?}");
    assert!(node.delay_lines(&a).await.unwrap().is_empty(), "no line on a's end");

    // A second start of the same end sets the line's settings; no second process.
    node.start_delay_line(&DelayLineSpec { delay_us: 30_000, ..line.clone() }).await.unwrap();
    assert_eq!(lines_of(&b), first, "the same process");
    within(&ping_b(&node, &a).await, 30.0, 80.0);
    let e = node.start_delay_line(&DelayLineSpec { queue: 2, ..line.clone() }).await.unwrap_err();
    assert!(e.to_string().contains("runs on queue 1, not 2"), "{e}");

    // Names that are not vnet-te's are refused before anything runs.
    let e = node.start_delay_line(&DelayLineSpec { container: "dltest".into(), ..line.clone() }).await.unwrap_err();
    assert!(matches!(e, NodeError::Refused { .. }), "{e:?}");
    let e = node.set_delay_line(&b, "../eth1", DelaySettings::default()).await.unwrap_err();
    assert!(matches!(e, NodeError::Refused { .. }), "{e:?}");

    // A rate on a's end (where a → b leaves), then none.
    let pid_a = node
        .docker()
        .inspect_container(&a, None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .unwrap()
        .state
        .unwrap()
        .pid
        .unwrap()
        .to_string();
    node.set_link_rate(&a, "eth1", Some(10_000_000)).await.unwrap();
    let shown = tc_show(&pid_a);
    assert!(shown.contains("tbf") && shown.contains("10Mbit"), "{shown}");
    node.set_link_rate(&a, "eth1", None).await.unwrap();
    assert!(!tc_show(&pid_a).contains("tbf"));
    node.set_link_rate(&a, "eth1", None).await.unwrap();

    // The line ends with its container.
    for name in [&a, &b] {
        node.remove_container(name).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lines_of(&b).is_empty() {
        assert!(Instant::now() < deadline, "the delay line outlived its container by 5 s: {:?}", lines_of(&b));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!control_dir(&b).exists(), "{} left behind", control_dir(&b).display());
    assert!(node.delay_lines(&b).await.unwrap().is_empty());
}
