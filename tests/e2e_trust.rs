//! Certificates and exposure on a local docker-in-docker cluster of its own (cluster `trust`:
//! containers vnet-te-trust-n1..3 on 10.196.251.0/24, made by deploy/cluster-up.sh through the
//! real `cluster init` + `node add` over SSH): swarm listeners on the advertised address only,
//! `cluster rotate` (the old controller certificate refused by every agent, the new one
//! answered), `cluster rotate --ca` (past a node it cannot reach, then to the end), `node
//! reissue` and `node remove` (the agent's key directory gone from the node,
//! its certificate revoked: refused as a client by the other agents and as a server by the
//! controller; with `--force` and no SSH, the key left there named with the command that
//! removes it).
//!
//! One cluster for every case, torn down (deploy/cluster-down.sh with VNET_TE_CLUSTER=trust)
//! in every outcome; VNET_TE_KEEP_CLUSTER=1 keeps it. Without an engine it reports a skip, or
//! fails when VNET_TE_REQUIRE_CLUSTER=1.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Teardown};
use common::{json, show};
use vnet_te_agent::revocation::fingerprint_pem;

const CLUSTER: &str = "trust";
const SUBNET: &str = "10.196.251.0/24";
const MANAGER: &str = "vnet-te-trust-n1";
const NODES: [&str; 3] = ["vnet-te-trust-n1", "vnet-te-trust-n2", "vnet-te-trust-n3"];
const HOME: &str = "/root/.vnet-te";
const AGENT_DIR: &str = "/etc/vnet-te/agent";

/// `vnet-te ARGS` on the manager node with `env`, as an operator would run it there.
fn on_manager_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    cmd.arg("exec");
    for (k, v) in env {
        cmd.args(["-e", &format!("{k}={v}")]);
    }
    let out = cmd.args([MANAGER, "vnet-te"]).args(args).output().expect("running docker exec");
    show(&format!("[n1] {env:?} vnet-te {}", args.join(" ")), &out);
    out
}

fn on_manager(args: &[&str]) -> Output {
    on_manager_with(&[], args)
}

/// `sh -c SCRIPT` in a node container; (success, stdout).
fn sh(node: &str, script: &str) -> (bool, String) {
    let out = Command::new("docker").args(["exec", node, "sh", "-c", script]).output().expect("docker exec");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
}

/// `sh -c SCRIPT` in a node container, which must succeed; its stdout.
fn sh_ok(node: &str, script: &str) -> String {
    let out = Command::new("docker").args(["exec", node, "sh", "-c", script]).output().expect("docker exec");
    assert!(out.status.success(), "[{node}] {script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Writes `content` to `path` in a node container.
fn put(node: &str, path: &str, content: &str) {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args(["exec", "-i", node, "sh", "-c", &format!("cat > '{path}'")])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("docker exec");
    child.stdin.take().unwrap().write_all(content.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "writing {path} on {node}");
}

fn cluster_up(test: &str) -> Option<Teardown> {
    Cluster { name: Some(CLUSTER), subnet: Some(SUBNET) }.up(test, "bookworm")
}

fn address_of(node: &str) -> String {
    let out =
        Command::new("docker").args(["inspect", "-f", "{{(index .NetworkSettings.Networks \"vnet-te-cluster-trust\").IPAddress}}", node]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `cluster status --output json` on the manager with the state directory `home`: the exit
/// code and each node's agent column.
fn status_with(home: &str) -> (Option<i32>, Vec<(String, String)>) {
    let out = on_manager_with(&[("VNET_TE_HOME", home)], &["cluster", "status", "--output", "json"]);
    let rows = json(&out);
    let rows =
        rows.as_array().expect("status rows").iter().map(|r| (r["name"].as_str().unwrap().to_string(), r["agent"].as_str().unwrap().to_string())).collect();
    (out.status.code(), rows)
}

/// A copy of the manager's state directory at `to` (the certificates as they are now).
fn copy_home(to: &str) {
    sh_ok(MANAGER, &format!("rm -rf {to} && cp -a {HOME} {to}"));
}

/// Swarm's listeners (2377, 7946) on every node are on that node's own address only.
fn swarm_listens_on_the_advertised_address_only() {
    for node in NODES {
        let own = address_of(node);
        let listeners = sh_ok(node, "ss -lntuH");
        let swarm: Vec<&str> =
            listeners.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|local| local.ends_with(":2377") || local.ends_with(":7946")).collect();
        eprintln!("[{node}] swarm listeners: {swarm:?}");
        assert!(swarm.iter().any(|l| l.ends_with(":7946")), "[{node}] no gossip listener:\n{listeners}");
        for l in &swarm {
            assert_eq!(l.rsplit_once(':').unwrap().0, own, "[{node}] a swarm listener on {l}, not {own}:\n{listeners}");
        }
    }
}

/// After `cluster rotate` every agent refuses the old controller certificate and answers the
/// new one.
fn faults_rotated_controller_certificate_is_refused_by_every_agent() {
    copy_home("/tmp/old-controller");
    let old = sh_ok(MANAGER, &format!("cat {HOME}/controller/cert.pem"));
    let t = Instant::now();
    let out = on_manager(&["cluster", "rotate"]);
    assert_eq!(out.status.code(), Some(0), "cluster rotate");
    eprintln!("cluster rotate in {:.1} s", t.elapsed().as_secs_f64());
    let new = sh_ok(MANAGER, &format!("cat {HOME}/controller/cert.pem"));
    assert_ne!(old, new, "a new controller certificate");
    let fp = fingerprint_pem(&old).unwrap();
    for node in &NODES[1..] {
        let list = sh_ok(node, &format!("cat {AGENT_DIR}/revoked.txt"));
        assert!(list.contains(&fp), "[{node}] the old controller certificate is on the node's list:\n{list}");
    }
    let (code, rows) = status_with("/tmp/old-controller");
    assert_eq!(code, Some(1), "the old certificate reaches no agent: {rows:?}");
    for (name, agent) in rows.iter().filter(|(n, _)| n != "n1") {
        assert!(agent.contains("CertificateRevoked"), "{name} refuses the old controller certificate as revoked: {agent}");
    }
    let (code, rows) = status_with(HOME);
    assert_eq!(code, Some(0), "the new certificate reaches every agent: {rows:?}");
    assert_eq!(rows.len(), 3);
}

/// `node reissue`: a new agent certificate on the node, the old one revoked, the agent answers.
fn faults_reissued_agent_certificate_is_revoked() {
    let node = NODES[2];
    let old = sh_ok(node, &format!("cat {AGENT_DIR}/cert.pem"));
    let out = on_manager(&["node", "reissue", "n3"]);
    assert_eq!(out.status.code(), Some(0), "node reissue n3");
    let new = sh_ok(node, &format!("cat {AGENT_DIR}/cert.pem"));
    assert_ne!(old, new);
    let list = sh_ok(MANAGER, &format!("cat {HOME}/pki/revoked.txt"));
    assert!(list.contains(&fingerprint_pem(&old).unwrap()), "the CA's list names n3's old certificate:\n{list}");
    let (code, rows) = status_with(HOME);
    assert_eq!(code, Some(0), "{rows:?}");
}

/// `node remove`: the agent and its key directory are gone from the node; its certificate is
/// revoked: as a client it reaches no agent, and served by an agent the controller refuses it.
fn faults_removed_node_key_is_gone_and_its_certificate_reaches_nothing() {
    let node = NODES[1];
    let cert = sh_ok(node, &format!("cat {AGENT_DIR}/cert.pem"));
    let key = sh_ok(node, &format!("cat {AGENT_DIR}/key.pem"));
    let ca = sh_ok(node, &format!("cat {AGENT_DIR}/ca.pem"));
    let out = on_manager(&["node", "remove", "n2"]);
    assert_eq!(out.status.code(), Some(0), "node remove n2");
    let (present, _) = sh(node, &format!("test -e {AGENT_DIR}"));
    assert!(!present, "{AGENT_DIR} is gone from n2");
    let (_, found) = sh(node, "docker ps -aq --filter name=vnet-te-agent");
    assert_eq!(found.trim(), "", "no agent container left on n2");
    let fp = fingerprint_pem(&cert).unwrap();
    assert!(sh_ok(MANAGER, &format!("cat {HOME}/pki/revoked.txt")).contains(&fp), "the CA's list names n2's certificate");
    assert!(sh_ok(NODES[2], &format!("cat {AGENT_DIR}/revoked.txt")).contains(&fp), "n3's list names n2's certificate");

    // The removed node's key as a client (a controller that holds it): n3 refuses it.
    copy_home("/tmp/n2-client");
    for (file, content) in [("cert.pem", &cert), ("key.pem", &key), ("ca.pem", &ca)] {
        put(MANAGER, &format!("/tmp/n2-client/controller/{file}"), content);
    }
    let (code, rows) = status_with("/tmp/n2-client");
    assert_eq!(code, Some(1), "{rows:?}");
    let n3 = &rows.iter().find(|(n, _)| n == "n3").expect("n3 listed").1;
    assert!(n3.contains("alert"), "n3 refuses n2's old certificate at the handshake: {n3}");

    // The removed node's key served by an agent where n2 would be: the controller refuses it.
    sh_ok(MANAGER, "mkdir -p /tmp/n2-server/certs");
    for (file, content) in [("cert.pem", &cert), ("key.pem", &key), ("ca.pem", &ca)] {
        put(MANAGER, &format!("/tmp/n2-server/certs/{file}"), content);
    }
    let listen = format!("{}:7544", address_of(MANAGER));
    let pid = sh_ok(MANAGER, &format!("vnet-te-agent --node-name n2 --listen {listen} --cert-dir /tmp/n2-server/certs >/tmp/n2-server/log 2>&1 & echo $!"));
    let pid = pid.trim().to_string();
    copy_home("/tmp/n2-server/home");
    let mut state = json(&Command::new("docker").args(["exec", MANAGER, "cat", &format!("{HOME}/cluster.json")]).output().unwrap());
    state["nodes"].as_array_mut().unwrap().push(serde_json::json!({ "name": "n2", "ssh": "root@n2", "agent": listen }));
    put(MANAGER, "/tmp/n2-server/home/cluster.json", &serde_json::to_string_pretty(&state).unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let n2 = loop {
        let (_, rows) = status_with("/tmp/n2-server/home");
        let n2 = rows.iter().find(|(n, _)| n == "n2").expect("n2 listed").1.clone();
        // Until the agent listens the connection is refused; then the certificate is judged.
        if n2.contains("certificate") || Instant::now() > deadline {
            break n2;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    sh(MANAGER, &format!("kill {pid}"));
    assert!(n2.contains("invalid peer certificate: Revoked"), "the controller refuses n2's old certificate: {n2}");
    let (code, rows) = status_with(HOME);
    assert_eq!(code, Some(0), "the remaining nodes answer: {rows:?}");
    assert_eq!(rows.len(), 2);
}

/// `cluster rotate --ca`: with n3 unreachable over SSH it stops with both CAs trusted (the
/// cluster answers as before), names n3 and says to run it again; run again, every node and
/// the controller hold certificates of the new CA only, and the old controller identity
/// reaches no agent.
fn faults_rotated_ca_keeps_every_node() {
    copy_home("/tmp/old-ca");
    let old_ca = sh_ok(MANAGER, &format!("cat {HOME}/pki/ca.pem"));
    sh_ok(NODES[2], "kill $(cat /run/sshd.pid)");
    let out = on_manager(&["cluster", "rotate", "--ca"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_ne!(out.status.code(), Some(0), "n3 could not be reached");
    assert!(err.contains("CA rotation stopped half-way: 1 node(s) not reached (n3: "), "{err}");
    assert!(err.contains("run `vnet-te cluster rotate --ca` again once they answer"), "{err}");
    let (code, rows) = status_with(HOME);
    assert_eq!(code, Some(0), "every agent answers while both CAs are trusted: {rows:?}");
    sh_ok(NODES[2], "/usr/sbin/sshd -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password");
    let t = Instant::now();
    let out = on_manager(&["cluster", "rotate", "--ca"]);
    assert_eq!(out.status.code(), Some(0), "cluster rotate --ca goes on");
    eprintln!("cluster rotate --ca (second run, 2 agents) in {:.1} s", t.elapsed().as_secs_f64());
    assert!(String::from_utf8_lossy(&out.stderr).contains("going on with its new CA"));
    let new_ca = sh_ok(MANAGER, &format!("cat {HOME}/pki/ca.pem"));
    assert_ne!(new_ca, old_ca, "a new CA");
    assert_eq!(sh_ok(MANAGER, &format!("cat {HOME}/controller/ca.pem")), new_ca, "the controller trusts the new CA only");
    for node in &NODES[1..] {
        assert_eq!(sh_ok(node, &format!("cat {AGENT_DIR}/ca.pem")), new_ca, "[{node}] trusts the new CA only");
    }
    assert!(!sh(MANAGER, &format!("test -e {HOME}/pki/next")).0, "no rotation left under way");
    let (code, rows) = status_with(HOME);
    assert_eq!(code, Some(0), "{rows:?}");
    let (code, rows) = status_with("/tmp/old-ca");
    assert_eq!(code, Some(1), "the old CA's controller certificate reaches no agent: {rows:?}");
    assert!(rows.iter().filter(|(n, _)| n != "n1").all(|(_, a)| a != "ok"), "{rows:?}");
}

/// `node remove --force` of a node it cannot reach over SSH: it says the agent's key stays
/// there and gives the command that removes it, which does.
fn faults_forced_remove_of_an_unreachable_node_names_the_key_left_and_the_command() {
    let node = NODES[2];
    sh_ok(node, "kill $(cat /run/sshd.pid)");
    let out = on_manager(&["node", "remove", "n3", "--force"]);
    assert_eq!(out.status.code(), Some(0), "node remove --force n3");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains(&format!("node n3's agent and its key ({AGENT_DIR}) are still on that machine")), "{err}");
    let cmd = err.lines().skip_while(|l| !l.contains("are still on that machine")).nth(1).expect("the command on the next line").trim().to_string();
    assert_eq!(cmd, format!("docker rm -f vnet-te-agent; rm -rf -- {AGENT_DIR}; docker swarm leave --force"));
    assert!(sh(node, &format!("test -e {AGENT_DIR}/key.pem")).0, "the key is still on n3, as said");
    sh(node, &cmd);
    assert!(!sh(node, &format!("test -e {AGENT_DIR}")).0, "the command removed {AGENT_DIR}");
    assert_eq!(sh(node, "docker ps -aq --filter name=vnet-te-agent").1.trim(), "", "and the agent");
}

#[test]
fn faults_trust_rotation_reissue_remove_and_swarm_listeners() {
    const TEST: &str = "e2e_trust::faults_trust_rotation_reissue_remove_and_swarm_listeners";
    let Some(_teardown) = cluster_up(TEST) else { return };
    swarm_listens_on_the_advertised_address_only();
    faults_rotated_controller_certificate_is_refused_by_every_agent();
    faults_reissued_agent_certificate_is_revoked();
    faults_rotated_ca_keeps_every_node();
    faults_removed_node_key_is_gone_and_its_certificate_reaches_nothing();
    faults_forced_remove_of_an_unreachable_node_names_the_key_left_and_the_command();
}
