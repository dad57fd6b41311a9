//! Multi-node end-to-end test on the local docker-in-docker cluster: three "hypervisor"
//! nodes made by deploy/cluster-up.sh (the real `cluster init` + `node add` over SSH path),
//! the controller running on the manager node, one overlay network per link.
//!
//! Each case runs twice: on nodes built from Debian 12 (Docker 20.10, API 1.41) and, in the
//! tests named `docker26_*`, from Debian 13 (Docker 26.1, API 1.45), whose node image
//! (vnet-te/node:VERSION-trixie) cluster-up.sh builds when missing.
//!
//! Needs a Docker engine, debootstrap (for the node image) and a release build with both
//! binaries. Without an engine it reports a skip, or fails when VNET_TE_REQUIRE_CLUSTER=1
//! (as CI sets it; tests/common/skip.rs). The cluster is torn down completely (deploy/cluster-down.sh) in every
//! outcome; VNET_TE_KEEP_CLUSTER=1 keeps it for debugging.

mod common;

use common::cluster::{start_node, Cluster, Teardown};
use common::leftovers::Engine;
use common::{json, root, show};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The tests build the same cluster (same container names): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const MANAGER: &str = "vnet-te-n1";
const NODES: [&str; 3] = ["vnet-te-n1", "vnet-te-n2", "vnet-te-n3"];

/// `vnet-te ARGS` on the manager node, as an operator would run it there.
fn on_manager(args: &[&str]) -> Output {
    let out = Command::new("docker").args(["exec", MANAGER, "vnet-te"]).args(args).output().expect("running docker exec");
    show(&format!("[n1] vnet-te {}", args.join(" ")), &out);
    out
}

/// A command in a node's own engine (`docker exec NODE docker ARGS`), which must succeed.
fn node_docker(node: &str, args: &[&str]) -> String {
    let out = Command::new("docker").args(["exec", node, "docker"]).args(args).output().expect("docker exec");
    assert!(out.status.success(), "[{node}] docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn labelled_on(node: &str, path: &str) -> (usize, usize) {
    let f = format!("label=vnet-te.path={path}");
    let c = node_docker(node, &["ps", "-aq", "--filter", &f]).lines().count();
    let n = node_docker(node, &["network", "ls", "-q", "--filter", &f]).lines().count();
    (c, n)
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The Debian release the cluster's nodes are built from, and with it their Docker engine.
#[derive(Debug, Clone, Copy)]
enum Nodes {
    /// Debian 12: Docker 20.10.
    Bookworm,
    /// Debian 13: Docker 26.1.
    Trixie,
}

impl Nodes {
    fn suite(self) -> &'static str {
        match self {
            Nodes::Bookworm => "bookworm",
            Nodes::Trixie => "trixie",
        }
    }

    /// The major version of the engine its nodes must run.
    fn docker_major(self) -> &'static str {
        match self {
            Nodes::Bookworm => "20",
            Nodes::Trixie => "26",
        }
    }
}

/// Brings up a fresh 3-node local cluster from `nodes` (None: skipped); torn down when the
/// guard drops.
fn cluster_up(test: &str, nodes: Nodes) -> Option<Teardown> {
    let teardown = Cluster { name: None, subnet: None }.up(test, nodes.suite())?;
    for n in NODES {
        let version = node_docker(n, &["version", "--format", "{{.Server.Version}}"]);
        assert!(version.starts_with(&format!("{}.", nodes.docker_major())), "{n} runs Docker {version} from {nodes:?}");
    }
    Some(teardown)
}

/// Copies a spec from paths/ into the manager and creates it there; returns the JSON report.
fn create_from_paths(file: &str, name: &str, extra: &[&str]) -> serde_json::Value {
    let cp = Command::new("docker").args(["cp", &root().join("paths").join(file).to_string_lossy(), &format!("{MANAGER}:/tmp/{file}")]).output().unwrap();
    assert!(cp.status.success(), "docker cp {file}");
    let t = Instant::now();
    let spec = format!("/tmp/{file}");
    let mut args = vec!["path", "create", "-f", &spec, "--output", "json"];
    args.extend_from_slice(extra);
    let out = on_manager(&args);
    eprintln!("{file}: create → verdict in {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(0), "{file} created and verified across the nodes");
    let report = json(&out);
    assert_eq!(report["path"], name);
    assert_eq!(report["verified"], true);
    report
}

fn delete_everywhere(name: &str) {
    let out = on_manager(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    for n in NODES {
        // A worker drops its copy of a removed overlay on its own, shortly after.
        wait_until(&format!("nothing of {name} left on {n}"), Duration::from_secs(30), || labelled_on(n, name) == (0, 0));
    }
}

/// `vnet-te-delay` processes in a node (its own and its containers', the agent's included: it
/// runs in the node's PID namespace).
fn delay_processes_on(node: &str) -> usize {
    let out = Command::new("docker").args(["exec", node, "pgrep", "-c", "-x", "vnet-te-delay"]).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// What a path's delay lines leave in a node's own network namespace and files: queue rules,
/// queues bound, token buckets, and the lines' socket directories (in the agent's container on
/// the workers, in the node itself on the manager, where the controller starts them).
fn delay_traces_on(node: &str, path: &str) -> String {
    let dir = "/run/vnet-te/delay";
    let ls = if node == MANAGER { format!("ls {dir}") } else { format!("docker exec vnet-te-agent ls {dir}") };
    let script = format!(
        "iptables -w -t mangle -S | grep -F 'vnet-te delay'; cat /proc/net/netfilter/nfnetlink_queue; tc qdisc show | grep -w tbf; {ls} 2>/dev/null | grep -F 'vte-{path}-'; true"
    );
    let out = Command::new("docker").args(["exec", node, "sh", "-c", &script]).output().expect("docker exec");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Distance across the three nodes: six hops round-robin (every link a VXLAN pair between two
/// nodes), 5 ms per link, one link of 1 µs (shorter than any underlay, so create names it and
/// its lines run at zero) and one rate. The underlay is measured at create and taken off the
/// delay lines; each hop's round trip verifies; delete leaves nothing of the lines anywhere.
/// Its links come from a pool of their own: a VXLAN link's identifier follows from its
/// subnet, and a deleted path's VXLAN devices go only when the kernel has removed the routers'
/// namespaces, which on a busy machine can take minutes; the EVPN case after this one would
/// otherwise meet them ("File exists"). The tolerance is wider than the default 1 ms: each line adds about 0.1 ms on these nested
/// nodes (eight lines to the last hop), more while other tests load the two cores.
fn distance_chain_across_three_nodes() {
    let t = Instant::now();
    let spec = "name: udist\n\
                routers: [{ name: r1 }, { name: r2 }, { name: r3 }, { name: r4 }, { name: r5 }, { name: r6 }]\n\
                links:\n  - { a: r1, b: r2 }\n  - { a: r2, b: r3 }\n  - { a: r3, b: r4, delay: 1us }\n\
                \x20 - { a: r4, b: r5 }\n  - { a: r5, b: r6, rate: 100mbit }\n\
                link_defaults: { delay: 5ms }\n\
                tolerance: { absolute: 2ms, relative: 3 }\n\
                pools: { links: 10.198.0.0/24 }\n";
    let tmp = std::env::temp_dir().join(format!("vnet-te-udist-{}.yaml", std::process::id()));
    std::fs::write(&tmp, spec).unwrap();
    let cp = Command::new("docker").args(["cp", &tmp.to_string_lossy(), &format!("{MANAGER}:/tmp/udist.yaml")]).output().unwrap();
    let _ = std::fs::remove_file(&tmp);
    assert!(cp.status.success(), "docker cp the spec");
    let before: Vec<usize> = NODES.iter().map(|n| delay_processes_on(n)).collect();

    let out = on_manager(&["path", "create", "-f", "/tmp/udist.yaml", "--output", "json"]);
    eprintln!("udist: create → verdict in {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(0), "created and verified within tolerance across the nodes");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("underlay one way, subtracted from the delay lines of the links between nodes: n1–n2 "), "{err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: link ")).collect();
    assert_eq!(warned.len(), 1, "one warning, for r3–r4 only: {warned:?}");
    assert!(
        warned[0].starts_with("warning: link r3–r4 between nodes n1 and n3: the underlay alone takes ")
            && warned[0].contains("more than its delay of 0.001 ms"),
        "{}",
        warned[0]
    );
    // Per hop: the fastest traceroute round trip against the plan (printed for the record).
    for d in report["distance"].as_array().unwrap() {
        assert_eq!(d["ok"], true, "{d}");
        for h in d["hops"].as_array().unwrap() {
            eprintln!("udist {} → {}: {} ({}): planned {} µs, measured {} µs", d["from"], d["to"], h["hop"], h["link"], h["planned_us"], h["measured_us"]);
        }
        eprintln!("udist {} → {} end to end: {}", d["from"], d["to"], d["end_to_end"]);
    }

    // `path show`: the underlay and the line delay of every link between nodes, and every
    // line answering with that delay.
    let show = json(&on_manager(&["path", "show", "udist", "--output", "json"]));
    let cross = show["cross_node_links"].as_array().expect("cross_node_links");
    assert_eq!(cross.len(), 5, "every link crosses nodes");
    let mut line_of = std::collections::BTreeMap::new();
    for c in cross {
        let u = &c["underlay"];
        let (rtt, one_way) = (u["rtt_us"].as_u64().expect("measured"), u["one_way_us"].as_u64().unwrap());
        assert!(rtt > 0 && one_way == rtt / 2 && rtt < 5_000, "a plausible underlay under {}: {u}", c["link"]);
        let planned: u64 = if c["link"] == "r3–r4" { 1 } else { 5_000 };
        assert_eq!(c["delay_us"], serde_json::json!([planned, planned]), "{c}");
        let line = planned.saturating_sub(one_way);
        assert_eq!(c["line_delay_us"], serde_json::json!([line, line]), "{c}");
        line_of.insert(c["link"].as_str().unwrap().to_string(), line);
    }
    let lines = show["delay_lines"].as_array().expect("delay_lines");
    assert_eq!(lines.len(), 10, "one line per link end");
    for l in lines {
        let running = l["status"]["settings"]["delay_ms"].as_f64().unwrap_or_else(|| panic!("line answers: {l}"));
        assert_eq!((running * 1000.0).round() as u64, l["line_delay_us"].as_u64().unwrap(), "{l}");
        let (a, b) = l["link"].as_str().unwrap().split_once('–').unwrap();
        let key = if line_of.contains_key(&format!("{a}–{b}")) { format!("{a}–{b}") } else { format!("{b}–{a}") };
        assert_eq!(l["line_delay_us"].as_u64(), line_of.get(&key).copied(), "{l}");
    }
    // Each line runs on the node of the end it holds packets for: 3, 4 and 3 of them.
    let plan = &show["plan"];
    let per_node: Vec<usize> = NODES.iter().map(|n| delay_processes_on(n)).collect();
    let lines_on = |n: &str| {
        lines
            .iter()
            .filter(|l| {
                plan["routers"].as_array().unwrap().iter().any(|r| r["container"] == l["container"] && format!("vnet-te-{}", r["node"].as_str().unwrap()) == n)
            })
            .count()
    };
    for (i, n) in NODES.iter().enumerate() {
        assert_eq!(per_node[i], before[i] + lines_on(n), "delay-line processes on {n}: {per_node:?} (before: {before:?})");
    }
    // r5's end toward r6 sends through a token bucket.
    let r5 = common::router(plan, "r5");
    let r5_if = r5["interfaces"].as_array().unwrap().iter().find(|i| i["peer"] == "r6").unwrap()["ifname"].as_str().unwrap().to_string();
    let qdisc =
        node_docker(&format!("vnet-te-{}", r5["node"].as_str().unwrap()), &["exec", r5["container"].as_str().unwrap(), "tc", "qdisc", "show", "dev", &r5_if]);
    assert!(qdisc.contains("tbf"), "{qdisc}");

    let t_del = Instant::now();
    delete_everywhere("udist");
    for (i, n) in NODES.iter().enumerate() {
        wait_until(&format!("no delay line of udist left on {n}"), Duration::from_secs(10), || delay_processes_on(n) == before[i]);
        assert_eq!(delay_traces_on(n, "udist"), "", "queue rules, queues, token buckets or line sockets left on {n}");
    }
    eprintln!("udist: deleted, nothing left, in {:.1} s; the case took {:.1} s", t_del.elapsed().as_secs_f64(), t.elapsed().as_secs_f64());
}

#[test]
fn cluster_distance_chain_underlay_subtracted_then_detour_ring_policy_removed_updated_and_evpn_pair_verified_across_three_nodes() {
    distance_detour_and_evpn("cluster_distance_detour_and_evpn", Nodes::Bookworm);
}

#[test]
fn docker26_cluster_distance_chain_underlay_subtracted_then_detour_ring_policy_removed_updated_and_evpn_pair_verified_across_three_nodes() {
    distance_detour_and_evpn("docker26_cluster_distance_detour_and_evpn", Nodes::Trixie);
}

fn distance_detour_and_evpn(test: &str, nodes: Nodes) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_teardown) = cluster_up(test, nodes) else { return };

    distance_chain_across_three_nodes();

    // Forced detour r1 → … → r6 the long way round the ring, spread over 3 nodes, over swarm
    // overlays (`--wiring docker`), right after the direct links of the distance case.
    let (wiring, cross_driver): (&[&str], &str) = (&["--wiring", "docker"], "overlay");
    let report = create_from_paths("ring-detour.yaml", "ring", wiring);
    let hops = report["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 6);
    let used: std::collections::BTreeSet<&str> = hops.iter().map(|h| h["node"].as_str().unwrap()).collect();
    assert_eq!(used.len(), 3, "the ring spans all three nodes: {used:?}");
    let traceroutes: Vec<&serde_json::Value> = report["probes"].as_array().unwrap().iter().filter(|p| p["kind"] == "traceroute").collect();
    assert_eq!(traceroutes.len(), 2);
    for t in &traceroutes {
        assert_eq!(t["ok"], true, "traceroute follows the detour: {t}");
        assert_eq!(t["observed"].as_array().unwrap().len(), 7, "6 routers + the far host: {t}");
    }

    // An operator removes r1's policy toward r2 by hand (r1 lives on n1): verify names r1.
    let plan = json(&on_manager(&["path", "show", "ring", "--output", "json"]))["plan"].clone();
    let cross: Vec<&serde_json::Value> = plan["networks"].as_array().unwrap().iter().filter(|n| n["cross_host"] == true).collect();
    assert!(!cross.is_empty() && cross.iter().all(|n| n["driver"] == cross_driver), "cross-host links are {cross_driver}: {cross:?}");
    let r1 = common::router(&plan, "r1");
    let r1_node = format!("vnet-te-{}", r1["node"].as_str().unwrap());
    let line = format!("no neighbor {} route-map VTE-IN-r2 in", common::neighbor(&plan, "r1", "r2")["address"].as_str().unwrap());
    let asn = format!("router bgp {}", r1["asn"]);
    node_docker(
        &r1_node,
        &["exec", r1["container"].as_str().unwrap(), "vtysh", "-c", "configure terminal", "-c", &asn, "-c", "address-family ipv4 unicast", "-c", &line],
    );
    // FRR applies the removal after a route refresh from r2: poll verify (with a deadline)
    // until it sees it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = on_manager(&["path", "verify", "ring", "--timeout", "2", "--output", "json"]);
        if out.status.code() == Some(1) || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(out.status.code(), Some(1), "verify fails without r1's policy");
    let bad = json(&out);
    let r1_hop = bad["hops"].as_array().unwrap().iter().find(|h| h["router"] == "r1").expect("r1 row").clone();
    assert_eq!(r1_hop["status"], "wrong-path", "{r1_hop}");
    assert!(r1_hop["problems"].to_string().contains("local-preference"), "names the missing preference: {r1_hop}");
    // `path update` with the same spec puts the policy back through the agents; then re-point
    // the path to the direct r1–r6 link and verify again: no container recreated.
    let before: Vec<String> = NODES.iter().map(|n| node_docker(n, &["ps", "-q", "--no-trunc", "--filter", "label=vnet-te.path=ring"])).collect();
    let out = on_manager(&["path", "update", "ring", "-f", "/tmp/ring-detour.yaml", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "update repairs the policy and verifies");
    let short = std::fs::read_to_string(root().join("paths/ring-detour.yaml")).unwrap().replace("path: [r1, r2, r3, r4, r5, r6]", "path: [r1, r6]");
    assert!(short.contains("path: [r1, r6]"), "the ring spec's path line changed");
    // A temporary file of the test's own, removed when dropped.
    let tmp = tempfile::Builder::new().prefix("vnet-te-ring-short").suffix(".yaml").tempfile().unwrap();
    std::fs::write(tmp.path(), short).unwrap();
    let cp = Command::new("docker").args(["cp", &tmp.path().to_string_lossy(), &format!("{MANAGER}:/tmp/ring-short.yaml")]).output().unwrap();
    assert!(cp.status.success());
    let out = on_manager(&["path", "update", "ring", "-f", "/tmp/ring-short.yaml", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "re-pointed to r1 → r6 and verified");
    assert_eq!(json(&out)["hops"].as_array().unwrap().len(), 2);
    let after: Vec<String> = NODES.iter().map(|n| node_docker(n, &["ps", "-q", "--no-trunc", "--filter", "label=vnet-te.path=ring"])).collect();
    assert_eq!(before, after, "no container was recreated by the updates");
    delete_everywhere("ring");

    // EVPN-VXLAN across the path, itself over VXLAN overlays: L2 reachability, DF ping at the
    // planned MTU, VXLAN counted on the planned transit links only.
    let report = create_from_paths("evpn-pair.yaml", "evpn", &[]);
    let probes = report["probes"].as_array().unwrap();
    for kind in ["evpn", "l2-ping", "l2-ping-df", "vxlan-path"] {
        let of_kind: Vec<&serde_json::Value> = probes.iter().filter(|p| p["kind"] == kind).collect();
        assert!(!of_kind.is_empty(), "a {kind} check ran: {probes:?}");
        assert!(of_kind.iter().all(|p| p["ok"] == true), "{kind} ok: {of_kind:?}");
    }
    delete_everywhere("evpn");
}

#[test]
fn cluster_three_nodes_24_hops_both_wirings_round_robin_verified_node_loss_named_deleted_host_key_change_refused() {
    three_nodes_24_hops("cluster_three_nodes_24_hops", Nodes::Bookworm);
}

#[test]
fn docker26_cluster_three_nodes_24_hops_both_wirings_round_robin_verified_node_loss_named_deleted_host_key_change_refused() {
    three_nodes_24_hops("docker26_cluster_three_nodes_24_hops", Nodes::Trixie);
}

fn three_nodes_24_hops(test: &str, nodes: Nodes) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_teardown) = cluster_up(test, nodes) else { return };

    let st = on_manager(&["cluster", "status", "--output", "json"]);
    assert_eq!(st.status.code(), Some(0), "every node answers");
    let rows = json(&st);
    let names: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["n1", "n2", "n3"]);
    assert!(rows.as_array().unwrap().iter().all(|r| r["swarm"] == "ready"), "all swarm nodes ready: {rows}");

    // 24 hops, round-robin: every link crosses hosts, so every link is a VXLAN pair vnet-te
    // makes between the nodes (the default `wiring: direct`).
    let t = Instant::now();
    let out = on_manager(&["path", "create", "--hops", "24", "--name", "c24", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create → verified");
    eprintln!("create → verified in {:.1} s", t.elapsed().as_secs_f64());
    let report = json(&out);
    assert_eq!(report["verified"], true);
    let hops = report["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 24);
    let placed: Vec<&str> = hops.iter().map(|h| h["node"].as_str().unwrap()).collect();
    for (i, pair) in placed.windows(2).enumerate() {
        assert_ne!(pair[0], pair[1], "hops {} and {} share a node: not round-robin", i + 1, i + 2);
    }
    for n in ["n1", "n2", "n3"] {
        assert_eq!(placed.iter().filter(|p| **p == n).count(), 8, "8 routers on {n}: {placed:?}");
    }
    assert!(hops.iter().all(|h| h["status"] == "ok"), "every hop ok");
    let plan = json(&on_manager(&["path", "show", "c24", "--output", "json"]));
    let links: Vec<&serde_json::Value> = plan["plan"]["networks"].as_array().expect("plan networks").iter().filter(|n| n["role"] == "link").collect();
    assert_eq!(links.len(), 23);
    assert!(links.iter().all(|n| n["driver"] == "vxlan" && n["cross_host"] == true), "every link is a cross-host VXLAN pair");
    // Containers on their nodes, 26 in all, and no Docker network anywhere.
    let per_node: Vec<(usize, usize)> = NODES.iter().map(|n| labelled_on(n, "c24")).collect();
    eprintln!("labelled (containers, networks) per node: {per_node:?}");
    assert_eq!(per_node.iter().map(|(c, _)| c).sum::<usize>(), 26);
    assert!(per_node.iter().all(|(_, n)| *n == 0), "no Docker network: {per_node:?}");
    // r2 (on n2) holds its two links as VXLAN devices toward n1 and n3.
    let r2 = common::router(&plan["plan"], "r2");
    let vx = node_docker(
        &format!("vnet-te-{}", r2["node"].as_str().unwrap()),
        &["exec", r2["container"].as_str().unwrap(), "ip", "-d", "-o", "link", "show", "type", "vxlan"],
    );
    assert_eq!(vx.lines().count(), 2, "{vx}");
    assert!(vx.contains("remote 10.196.255.2") && vx.contains("remote 10.196.255.4"), "r2's links lead to n1 and n3: {vx}");
    // Every node takes link VXLAN only from the cluster's nodes (on Debian 13 through
    // iptables' nftables backend): one RETURN per node, then DROP.
    for n in NODES {
        let chain = Engine::Node(n).sh("iptables -w -S VNET-TE-VXLAN");
        let rules: Vec<&str> = chain.lines().filter(|l| l.starts_with("-A")).collect();
        assert_eq!(rules.len(), 4, "{n}: {chain}");
        assert!(rules[..3].iter().all(|r| r.starts_with("-A VNET-TE-VXLAN -s 10.196.255.") && r.ends_with("/32 -j RETURN")), "{n}: {chain}");
        assert_eq!(rules[3], "-A VNET-TE-VXLAN -j DROP", "{n}");
    }

    // The same 24 hops over swarm overlays (`--wiring docker`): one overlay per link, made on
    // the manager and attached on each router's node. (Before the node loss below: on Docker
    // 26, an overlay create right after a worker's restart has failed on that worker.)
    let t = Instant::now();
    let out = on_manager(&["path", "create", "--hops", "24", "--name", "o24", "--wiring", "docker", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create over overlays → verified");
    eprintln!("overlays: create → verified in {:.1} s", t.elapsed().as_secs_f64());
    let report = json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["hops"].as_array().unwrap().len(), 24);
    let plan = json(&on_manager(&["path", "show", "o24", "--output", "json"]));
    let links: Vec<&serde_json::Value> = plan["plan"]["networks"].as_array().unwrap().iter().filter(|n| n["role"] == "link").collect();
    assert_eq!(links.len(), 23);
    assert!(links.iter().all(|n| n["driver"] == "overlay" && n["cross_host"] == true), "every link is an overlay");
    // A start that fails after its overlay attach on a worker: a container with the path's
    // label on one of its overlays, whose command does not exist. The delete still leaves no
    // object of the path on any node.
    let overlay = links[0]["name"].as_str().expect("network name");
    let image = format!("vnet-te/router:{}", env!("CARGO_PKG_VERSION"));
    let failed = Command::new("docker")
        .args(["exec", "vnet-te-n2", "docker", "run", "--name", "vte-o24-failed", "--label", "vnet-te.path=o24", "--network", overlay, &image, "/nonexistent"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success() && err.contains("/nonexistent"), "the start fails after the attach: {err}");
    assert_eq!(node_docker("vnet-te-n2", &["ps", "-aq", "--filter", "name=vte-o24-failed"]).lines().count(), 1, "the failed container stays");
    let t = Instant::now();
    delete_everywhere("o24");
    eprintln!("overlays: delete → nothing left on any node in {:.1} s", t.elapsed().as_secs_f64());

    // Node loss: stop n3; verify exits 1 and names every hop placed there.
    let stop = Command::new("docker").args(["stop", "-t", "2", "vnet-te-n3"]).output().unwrap();
    assert!(stop.status.success());
    let out = on_manager(&["path", "verify", "c24", "--output", "json", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(1), "verify fails with a node down");
    let report = json(&out);
    for h in report["hops"].as_array().unwrap() {
        if h["node"] == "n3" {
            assert_ne!(h["status"], "ok", "hop {} on the lost node n3 must not be ok: {h}", h["hop"]);
            let problems = h["problems"].to_string();
            assert!(problems.contains("node n3"), "the problems of hop {} name node n3: {problems}", h["hop"]);
        }
    }
    // Back up: its agent restarts with its engine; the path's containers there stay stopped.
    start_node("vnet-te-n3");
    wait_until("n3's agent answers again", Duration::from_secs(90), || {
        Command::new("docker").args(["exec", MANAGER, "vnet-te", "cluster", "status"]).output().map(|o| o.status.success()).unwrap_or(false)
    });

    // Delete: zero labelled objects on every node and the manager.
    let t = Instant::now();
    let out = on_manager(&["path", "delete", "c24"]);
    assert_eq!(out.status.code(), Some(0));
    eprintln!("delete in {:.1} s", t.elapsed().as_secs_f64());
    for n in NODES {
        // A worker drops its copy of a removed overlay on its own, shortly after.
        wait_until(&format!("nothing of c24 left on {n}"), Duration::from_secs(30), || labelled_on(n, "c24") == (0, 0));
    }
    let out = on_manager(&["path", "delete", "c24"]);
    assert_eq!(out.status.code(), Some(0), "a second delete is a no-op");
    for n in NODES {
        let hooks = Engine::Node(n).sh("iptables -w -S INPUT");
        assert!(!hooks.contains("VNET-TE-VXLAN"), "{n}: the VXLAN filter went with the last path: {hooks}");
    }

    // SSH: a node whose host key changed is refused, even with --accept-new-host-key.
    let rekey = Command::new("docker")
        .args(["exec", "vnet-te-n2", "sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && pkill -HUP -x sshd"])
        .output()
        .unwrap();
    assert!(rekey.status.success(), "re-keying n2: {}", String::from_utf8_lossy(&rekey.stderr));
    for extra in [None, Some("--accept-new-host-key")] {
        let mut args = vec!["node", "add", "root@n2"];
        args.extend(extra);
        let out = on_manager(&args);
        assert_ne!(out.status.code(), Some(0), "node add with a changed host key must fail ({extra:?})");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains("changed"), "the refusal says the host key changed: {err}");
    }
}
