//! Faults on a local 3-node cluster of its own (`VNET_TE_CLUSTER=faults`: containers
//! vnet-te-faults-n1..3, network vnet-te-cluster-faults, beside any other local cluster):
//! a node lost while a create runs, before a delete and while a delete runs, a worker's agent
//! restarted while a create runs, a node's dockerd restarted under a running path, and link
//! VXLAN from an address that is no node's dropped. Every case ends with
//! nothing of its path left on any node (`common::leftovers`). One cluster bring-up for all
//! of them; it is torn down (deploy/cluster-down.sh) in every outcome, unless
//! VNET_TE_KEEP_CLUSTER=1.
//!
//! Needs what `e2e_cluster` needs; without it the test reports a skip, or fails when
//! VNET_TE_REQUIRE_CLUSTER=1 (tests/common/skip.rs).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{start_node, Cluster, Teardown};
use common::leftovers::{assert_nothing_left, container_ids, Engine};
use common::show;

const CLUSTER: &str = "faults";
const SUBNET: &str = "10.196.252.0/24";
const MANAGER: &str = "vnet-te-faults-n1";
const NODES: [&str; 3] = ["vnet-te-faults-n1", "vnet-te-faults-n2", "vnet-te-faults-n3"];

fn on_manager(args: &[&str]) -> Output {
    let out = Command::new("docker").args(["exec", MANAGER, "vnet-te"]).args(args).output().expect("docker exec");
    show(&format!("[n1] vnet-te {}", args.join(" ")), &out);
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn docker(args: &[&str]) {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The path's containers on a node (names).
fn containers_on(node: &str, path: &str) -> Vec<String> {
    let mut v: Vec<String> =
        Engine::Node(node).sh(&format!("docker ps -a --format '{{{{.Names}}}}' --filter label=vnet-te.path={path}")).lines().map(str::to_string).collect();
    v.sort();
    v
}

fn ids_everywhere(path: &str) -> Vec<(&'static str, Vec<String>)> {
    NODES.iter().map(|n| (*n, container_ids(Engine::Node(n), path))).collect()
}

fn nothing_left_anywhere(path: &str, ids: &[(&str, Vec<String>)]) {
    for (n, ids) in ids {
        assert_nothing_left(Engine::Node(n), path, ids);
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn every_agent_answers() {
    wait_until("every agent answers", Duration::from_secs(120), || {
        Command::new("docker").args(["exec", MANAGER, "vnet-te", "cluster", "status"]).output().map(|o| o.status.success()).unwrap_or(false)
    });
}

fn cluster_up(test: &str) -> Option<Teardown> {
    Cluster { name: Some(CLUSTER), subnet: Some(SUBNET) }.up(test, "bookworm")
}

/// `vnet-te path create ARGS` on the manager, running in the background.
fn spawn_on_manager(args: &[&str]) -> std::process::Child {
    Command::new("docker")
        .args(["exec", MANAGER, "vnet-te", "path", "create"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec")
}

fn finish(child: std::process::Child, what: &str) -> Output {
    let out = child.wait_with_output().expect("waiting for the create");
    show(what, &out);
    out
}

#[test]
fn faults_cluster_node_lost_in_create_and_delete_agent_restarted_mid_create_dockerd_restarted_then_repaired() {
    let test = "faults_cluster_node_lost_in_create_and_delete_agent_restarted_mid_create_dockerd_restarted_then_repaired";
    let Some(_teardown) = cluster_up(test) else { return };

    // 1. n3 stopped while a create runs: the create fails, what it made on n1 and n2 goes,
    //    and the message names n3 and what to run; once n3 is back a delete leaves nothing.
    let child = spawn_on_manager(&["--hops", "24", "--name", "fa"]);
    wait_until("a container of fa on n3", Duration::from_secs(120), || !containers_on(NODES[2], "fa").is_empty());
    docker(&["stop", "-t", "2", NODES[2]]);
    let out = finish(child, "[n1] vnet-te path create --hops 24 --name fa (n3 stopped)");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "the create fails with n3 lost");
    assert!(err.contains("rolled back on the nodes that answer") && err.contains("node n3 did not answer"), "{err}");
    assert!(err.contains("`vnet-te path delete fa`") && err.contains("may be left there"), "{err}");
    for n in &NODES[..2] {
        assert_nothing_left(Engine::Node(n), "fa", &[]);
    }
    start_node(NODES[2]);
    every_agent_answers();
    let ids = ids_everywhere("fa");
    let out = on_manager(&["path", "delete", "fa"]);
    assert_eq!(out.status.code(), Some(0), "n3's leftovers go once it answers");
    nothing_left_anywhere("fa", &ids);

    // 2. n3 down at delete: the rest goes, n3 is named (exit 3); --force forgets its share and
    //    the state; once n3 is back a delete removes what is left there.
    let out = on_manager(&["path", "create", "--hops", "9", "--name", "fb"]);
    assert_eq!(out.status.code(), Some(0), "fb created and verified");
    let on_n3 = containers_on(NODES[2], "fb");
    assert_eq!(on_n3.len(), 4, "r3, r6, r9 and dst on n3: {on_n3:?}");
    let ids = ids_everywhere("fb");
    docker(&["stop", "-t", "2", NODES[2]]);
    let out = on_manager(&["path", "delete", "fb"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "a delete with a node lost says so");
    assert!(err.contains("node n3 did not answer") && err.contains("r3, r6, r9, dst may be left there"), "{err}");
    assert!(err.contains("`vnet-te path delete --force fb`"), "{err}");
    for n in &NODES[..2] {
        assert_nothing_left(Engine::Node(n), "fb", &[]);
    }
    let out = on_manager(&["path", "delete", "--force", "fb"]);
    assert_eq!(out.status.code(), Some(0), "--force forgets n3's share");
    assert!(stderr(&out).contains("--force: forgot path fb"), "{}", stderr(&out));
    let state = Command::new("docker").args(["exec", MANAGER, "test", "-e", "/root/.vnet-te/paths/fb.json"]).status().unwrap();
    assert!(!state.success(), "the controller's state of fb is gone");
    start_node(NODES[2]);
    every_agent_answers();
    assert_eq!(containers_on(NODES[2], "fb"), on_n3, "n3 still holds its share");
    let out = on_manager(&["path", "delete", "fb"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("deleted path fb: 4 containers"), "{}", stderr(&out));
    nothing_left_anywhere("fb", &ids);

    // 3. n2's agent restarted while a create runs: the create either fails and rolls back
    //    completely, or completes and verifies; never half.
    let child = spawn_on_manager(&["--hops", "24", "--name", "fc"]);
    wait_until("a container of fc on n2", Duration::from_secs(120), || !containers_on(NODES[1], "fc").is_empty());
    docker(&["exec", NODES[1], "docker", "restart", "-t", "1", "vnet-te-agent"]);
    let out = finish(child, "[n1] vnet-te path create --hops 24 --name fc (n2's agent restarted)");
    match out.status.code() {
        Some(0) => {
            eprintln!("fc: the create rode over the agent's restart and verified");
            let ids = ids_everywhere("fc");
            assert_eq!(ids.iter().map(|(_, i)| i.len()).sum::<usize>(), 26);
            assert_eq!(on_manager(&["path", "delete", "fc"]).status.code(), Some(0));
            nothing_left_anywhere("fc", &ids);
        }
        Some(3) => {
            let err = stderr(&out);
            assert!(err.contains("rolled back: removed"), "a complete rollback: {err}");
            every_agent_answers();
            nothing_left_anywhere("fc", &[]);
        }
        other => panic!("the create ended with {other:?}: neither verified nor rolled back"),
    }
    every_agent_answers();

    // 4. dockerd restarted on n2 under a running path. On these nodes dockerd is the node
    //    container's main process (images/build-rootfs.sh: the boot script execs it), so it
    //    is killed, which ends the node's container, and started again as the image does
    //    (`docker start` runs the boot script). The path's containers there come back
    //    stopped and without their links: `path repair` brings them back with the same names.
    //    Its links come from a pool of their own: a VXLAN link's identifier follows from its
    //    subnet, and the rolled-back path's VXLAN devices go only when the kernel has removed
    //    its routers' namespaces, which on a busy machine takes a while ("File exists").
    let spec = "name: fd\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }, { name: r4 }, { name: r5 }, { name: r6 }]\npools: { links: 10.198.1.0/24 }\n";
    let mut put = Command::new("docker").args(["exec", "-i", MANAGER, "sh", "-c", "cat > /tmp/fd.yaml"]).stdin(Stdio::piped()).spawn().expect("docker exec");
    std::io::Write::write_all(&mut put.stdin.take().unwrap(), spec.as_bytes()).unwrap();
    assert!(put.wait().unwrap().success(), "writing the spec of fd");
    let out = on_manager(&["path", "create", "-f", "/tmp/fd.yaml"]);
    assert_eq!(out.status.code(), Some(0), "fd created and verified");
    let before: Vec<Vec<String>> = NODES.iter().map(|n| containers_on(n, "fd")).collect();
    docker(&["exec", NODES[1], "sh", "-c", "kill -TERM $(pidof dockerd)"]);
    wait_until("n2 stopped with its dockerd", Duration::from_secs(60), || {
        Command::new("docker").args(["inspect", "-f", "{{.State.Running}}", NODES[1]]).output().map(|o| o.stdout.starts_with(b"false")).unwrap_or(false)
    });
    start_node(NODES[1]);
    every_agent_answers();
    let out = on_manager(&["path", "verify", "fd", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(1), "fd does not verify with n2's routers stopped");
    let out = on_manager(&["path", "repair", "fd"]);
    assert_eq!(out.status.code(), Some(0), "fd repaired and verified");
    let after: Vec<Vec<String>> = NODES.iter().map(|n| containers_on(n, "fd")).collect();
    assert_eq!(after, before, "the same containers by name on every node");
    let ids = ids_everywhere("fd");
    assert_eq!(on_manager(&["path", "delete", "fd"]).status.code(), Some(0));
    nothing_left_anywhere("fd", &ids);
    for n in NODES {
        assert_eq!(vxlan_chain(n), None, "{n}: the VXLAN filter went with the last path");
    }

    // 5. Link VXLAN (UDP 4790) from anyone but the cluster's nodes is dropped on every node
    //    with VXLAN links, while the path between the nodes verifies; the filter goes with
    //    the last path.
    let out = on_manager(&["path", "create", "--hops", "6", "--name", "ff"]);
    assert_eq!(out.status.code(), Some(0), "ff created and verified through the filter");
    let addrs: Vec<String> = NODES.iter().map(|n| node_address(n)).collect();
    let mut want: Vec<String> = addrs.iter().map(|a| format!("-A VNET-TE-VXLAN -s {a}/32 -j RETURN")).collect();
    want.sort_by_key(|r| r.split(['.', '/']).filter_map(|x| x.parse::<u32>().ok()).collect::<Vec<_>>());
    for n in NODES {
        let chain = vxlan_chain(n).unwrap_or_else(|| panic!("{n}: no VXLAN filter"));
        let rules: Vec<&str> = chain.lines().filter(|l| l.starts_with("-A")).collect();
        let mut expected: Vec<&str> = want.iter().map(String::as_str).collect();
        expected.push("-A VNET-TE-VXLAN -j DROP");
        assert_eq!(rules, expected, "{n}");
    }
    let dropped_before = vxlan_dropped(NODES[1]);
    let stranger = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--name",
            "vnet-te-faults-stranger",
            "--network",
            "vnet-te-cluster-faults",
            &format!("vnet-te/host:{}", env!("CARGO_PKG_VERSION")),
        ])
        .args(["bash", "-c", &format!("for i in 1 2 3 4 5; do echo frame > /dev/udp/{}/4790; done", addrs[1])])
        .output()
        .expect("docker run");
    show("a stranger on the cluster network sends 5 frames to n2:4790", &stranger);
    assert!(stranger.status.success());
    let dropped = vxlan_dropped(NODES[1]) - dropped_before;
    assert!(dropped >= 5, "n2 dropped {dropped} of the stranger's 5 frames");
    let out = on_manager(&["path", "verify", "ff", "--timeout", "30"]);
    assert_eq!(out.status.code(), Some(0), "ff still verifies");
    let ids = ids_everywhere("ff");
    assert_eq!(on_manager(&["path", "delete", "ff"]).status.code(), Some(0));
    nothing_left_anywhere("ff", &ids);
    for n in NODES {
        assert_eq!(vxlan_chain(n), None, "{n}: the VXLAN filter went with the last path");
        let hooks = Engine::Node(n).sh("iptables -w -S INPUT");
        assert!(!hooks.contains("VNET-TE-VXLAN"), "{n}: {hooks}");
    }

    // 6. n3 killed while a delete runs (its removals start after n1's and n2's): the delete
    //    removes the rest, names n3 with what may be left there and what to run (exit 3);
    //    once n3 is back a delete leaves nothing.
    let out = on_manager(&["path", "create", "--hops", "60", "--name", "fe", "--timeout", "300"]);
    assert_eq!(out.status.code(), Some(0), "fe created and verified");
    let on_n1 = containers_on(NODES[0], "fe").len();
    let ids = ids_everywhere("fe");
    let child = Command::new("docker")
        .args(["exec", MANAGER, "vnet-te", "path", "delete", "fe"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec");
    wait_until("the delete removing fe's containers on n1", Duration::from_secs(60), || containers_on(NODES[0], "fe").len() < on_n1);
    docker(&["kill", NODES[2]]);
    let out = finish(child, "[n1] vnet-te path delete fe (n3 killed while it ran)");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "the delete says n3 is lost");
    assert!(err.contains("node n3 did not answer") && err.contains("may be left there"), "{err}");
    assert!(err.contains("`vnet-te path delete --force fe`"), "{err}");
    for n in &NODES[..2] {
        assert_nothing_left(Engine::Node(n), "fe", &[]);
    }
    start_node(NODES[2]);
    every_agent_answers();
    let out = on_manager(&["path", "delete", "fe"]);
    assert_eq!(out.status.code(), Some(0), "what n3 held goes once it answers");
    nothing_left_anywhere("fe", &ids);
}

/// The node's address on the cluster network.
fn node_address(node: &str) -> String {
    let out =
        Command::new("docker").args(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node]).output().expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `iptables -S VNET-TE-VXLAN` on a node, or None when there is no such chain.
fn vxlan_chain(node: &str) -> Option<String> {
    let out = Command::new("docker").args(["exec", node, "iptables", "-w", "-S", "VNET-TE-VXLAN"]).output().expect("docker exec");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Packets the VXLAN filter's drop rule has counted on a node.
fn vxlan_dropped(node: &str) -> u64 {
    let out = Engine::Node(node).sh("iptables -w -L VNET-TE-VXLAN -v -x -n");
    out.lines().find(|l| l.contains("DROP")).and_then(|l| l.split_whitespace().next()).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{node}: {out}"))
}
