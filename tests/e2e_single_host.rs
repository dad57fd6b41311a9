//! End-to-end tests against the real local Docker engine with real FRR routers.
//!
//! They need a running engine and the vnet-te images (`vnet-te images build`). Without an
//! engine they report a skip, or fail when VNET_TE_REQUIRE_DOCKER=1 (as CI sets it). Every
//! test removes what it created, whatever the outcome (a guard deletes by label on drop).
//! They run one at a time: concurrent creates on one engine race for subnets.

#[path = "common/leftovers.rs"]
mod leftovers;
#[path = "common/skip.rs"]
mod skip;

use leftovers::{assert_nothing_left, container_ids, Engine};

use std::process::{Command, Output};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vnet-te")
}

fn vnet(args: &[&str]) -> Output {
    let out = Command::new(bin()).args(args).output().expect("running vnet-te");
    eprintln!("$ vnet-te {}\n(exit {:?})\n{}{}", args.join(" "), out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("running docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Labelled containers and networks of a path, as Docker itself reports them.
fn labelled(path: &str) -> (usize, usize) {
    let f = format!("label=vnet-te.path={path}");
    let c = docker(&["ps", "-aq", "--filter", &f]).lines().count();
    let n = docker(&["network", "ls", "-q", "--filter", &f]).lines().count();
    (c, n)
}

/// Returns false (skip) when no engine or images are here, unless CI requires them
/// (`Requirement::Docker`), then it fails.
fn docker_ready(test: &str) -> bool {
    let engine = Command::new("docker").arg("info").output().map(|o| o.status.success()).unwrap_or(false);
    let images = engine
        && Command::new("docker")
            .args(["image", "inspect", &format!("vnet-te/router:{}", env!("CARGO_PKG_VERSION"))])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if engine && images {
        return true;
    }
    let reason = if engine { "vnet-te images missing (run `vnet-te images build`)" } else { "no Docker engine answers" };
    skip::skip_or_fail(test, skip::Requirement::Docker, reason);
    false
}

/// Deletes the path on drop, so a failing assertion leaves nothing behind.
struct Cleanup(&'static str);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new(bin()).args(["path", "delete", self.0]).output();
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn single_host_24_hops_verified_then_a_stopped_router_is_named_then_deleted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("single_host_24_hops") {
        return;
    }
    let name = "e2e24";
    let _cleanup = Cleanup(name);
    let out = vnet(&["path", "create", "--hops", "24", "--name", name, "--timeout", "120", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["hops"].as_array().unwrap().len(), 24);
    assert!(report["hops"].as_array().unwrap().iter().all(|h| h["status"] == "ok"));
    // Data plane: both traceroutes followed all 24 routers.
    let probes = report["probes"].as_array().unwrap();
    let traces: Vec<_> = probes.iter().filter(|p| p["kind"] == "traceroute").collect();
    assert_eq!(traces.len(), 2);
    for t in traces {
        assert_eq!(t["ok"], true);
        assert_eq!(t["observed"].as_array().unwrap().len(), 25);
    }
    // veth wiring (the default): 26 containers and no Docker network at all; each router
    // holds its two links as veth interfaces under their planned names.
    assert_eq!(labelled(name), (26, 0));
    let links = docker(&["exec", "vte-e2e24-r5", "ip", "-d", "-o", "link", "show", "type", "veth"]);
    assert_eq!(links.lines().count(), 2, "{links}");
    assert!(links.contains(" eth0@") && links.contains(" eth1@"), "{links}");
    // Its planned address, as the stored plan has it (other paths on the engine shift the pool).
    let show = vnet(&["path", "show", name, "--output", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&show.stdout).expect("path show JSON");
    let r5 = plan["plan"]["routers"].as_array().unwrap().iter().find(|r| r["name"] == "r5").unwrap();
    let to_r6 = r5["interfaces"].as_array().unwrap().iter().find(|i| i["peer"] == "r6").unwrap();
    assert_eq!(to_r6["ifname"], "eth1");
    let planned = format!("{}/29", to_r6["address"].as_str().unwrap());
    let addrs = docker(&["exec", "vte-e2e24-r5", "ip", "-o", "-4", "addr", "show", "dev", "eth1"]);
    assert!(addrs.contains(&planned), "r5's link to r6 has its planned address {planned}: {addrs}");

    // vnet-te reads FRR over bgpd's own socket in the router (falling back to `docker exec
    // vtysh` would hide a broken socket path): it answers, with what vtysh shows.
    let pid: u32 = docker(&["inspect", "-f", "{{.State.Pid}}", "vte-e2e24-r5"]).trim().parse().unwrap();
    let direct = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(vnet_te_agent::vty::show(pid, vnet_te_agent::vty::Daemon::Bgpd, "show bgp summary json"))
        .expect("bgpd's vty socket answers from the node");
    let direct: serde_json::Value = serde_json::from_str(&direct).unwrap();
    let via_vtysh: serde_json::Value = serde_json::from_str(&docker(&["exec", "vte-e2e24-r5", "vtysh", "-c", "show bgp summary json"])).unwrap();
    assert_eq!(direct["ipv4Unicast"]["routerId"], via_vtysh["ipv4Unicast"]["routerId"]);
    assert_eq!(direct["ipv4Unicast"]["peerCount"], 2, "{direct}");

    // Routers never rate-limit time-exceeded: a burst of 20 echo requests with TTL 1 gets 20
    // answers from r1 (the kernel's default would answer about 6, then one a second, and a
    // traceroute right after a burst of errors would miss hop 1).
    let burst = Command::new("docker")
        .args(["exec", "vte-e2e24-src", "ping", "-n", "-c", "20", "-i", "0.01", "-t", "1", "-W", "1", "10.210.1.10"])
        .output()
        .expect("running docker");
    let burst = String::from_utf8_lossy(&burst.stdout);
    assert_eq!(burst.matches("Time to live exceeded").count(), 20, "{burst}");

    // With Docker's cgroupfs driver the path's containers sit in the `vnet-te` cgroup, with
    // eight times a process's CPU weight (agent/src/docker/cgroup.rs).
    let driver = docker(&["info", "-f", "{{.CgroupDriver}} {{.CgroupVersion}}"]);
    if driver.trim_start().starts_with("cgroupfs") {
        let parent = docker(&["inspect", "-f", "{{.HostConfig.CgroupParent}}", "vte-e2e24-r5"]);
        assert_eq!(parent.trim(), "/vnet-te");
        let (file, weight) =
            if driver.trim().ends_with('2') { ("/sys/fs/cgroup/vnet-te/cpu.weight", "800") } else { ("/sys/fs/cgroup/cpu/vnet-te/cpu.shares", "8192") };
        assert_eq!(std::fs::read_to_string(file).unwrap().trim(), weight, "{file}");
    } else if driver.trim_start().starts_with("systemd") {
        // Under systemd's driver the group is a slice whose weight systemd sets, where
        // systemctl can ask it to; elsewhere the containers stay where Docker puts them.
        let parent = docker(&["inspect", "-f", "{{.HostConfig.CgroupParent}}", "vte-e2e24-r5"]);
        if parent.trim() != "vnet-te.slice" {
            assert_eq!(parent.trim(), "", "either vnet-te's slice or Docker's own place");
            skip::skip("part of single_host_24_hops", "systemd's driver, and systemctl could not weight vnet-te.slice here");
        }
    } else {
        let reason = format!("Docker's cgroup driver is {}, which vnet-te makes no group for", driver.trim());
        skip::skip("part of single_host_24_hops", &reason);
    }

    // Bounded by default: 256 MiB (no swap beyond it) and 512 tasks.
    for c in ["vte-e2e24-r5", "vte-e2e24-src"] {
        let limits = docker(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", c]);
        assert_eq!(limits.trim(), "268435456 512", "{c}");
    }

    // Every object carries the labels the lifecycle relies on.
    let labels = docker(&["inspect", "-f", "{{json .Config.Labels}}", "vte-e2e24-r5"]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["vnet-te.role"], "router");
    assert_eq!(labels["vnet-te.hop"], "4");
    assert!(labels["vnet-te.plan-hash"].as_str().is_some_and(|h| h.len() == 12));

    // list and show find it without the spec.
    let out = vnet(&["path", "list", "--output", "json"]);
    let list = json(&out);
    let entry = list.as_array().unwrap().iter().find(|p| p["name"] == name).expect("listed");
    assert_eq!(entry["routers"], 24);
    assert_eq!(entry["running"], 26);
    assert_eq!(vnet(&["path", "show", name]).status.code(), Some(0));

    // Stop a middle router: verification fails and names that hop.
    docker(&["stop", "-t", "1", "vte-e2e24-r12"]);
    let out = vnet(&["path", "verify", name, "--timeout", "10", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "verify should fail with r12 stopped");
    let report = json(&out);
    let r12 = report["hops"].as_array().unwrap().iter().find(|h| h["router"] == "r12").unwrap();
    assert_eq!(r12["status"], "down");
    assert!(r12["problems"][0].as_str().unwrap().contains("not running"), "{r12}");
    let out = vnet(&["path", "verify", name, "--timeout", "5"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("r12"));

    let out = vnet(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0), "objects left after delete");
    // Idempotent.
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_eq!(vnet(&["path", "verify", name]).status.code(), Some(2));
}

#[test]
fn bad_spec_exits_2_and_creates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("bad_spec_exits_2") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vnet-te-e2e-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.yaml");
    std::fs::write(&f, "name: e2ebad\nrouters:\n  - { name: r1 }\n  - { name: r2 }\nlinks:\n  - { a: r1, b: r9 }\npath: [r1, r2]\n").unwrap();
    let out = vnet(&["path", "create", "-f", f.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("links[0].b: unknown router 'r9'"), "{err}");
    assert!(err.contains("path[1]: no link between 'r1' and 'r2'"), "{err}");
    assert_eq!(labelled("e2ebad"), (0, 0));
    assert_eq!(vnet(&["path", "create", "--hops", "0"]).status.code(), Some(2));
}

#[test]
fn two_paths_side_by_side_and_a_name_clash() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("two_paths_side_by_side") {
        return;
    }
    let (_a, _b) = (Cleanup("e2ea"), Cleanup("e2eb"));
    assert_eq!(vnet(&["path", "create", "--hops", "3", "--name", "e2ea"]).status.code(), Some(0));
    assert_eq!(vnet(&["path", "create", "--hops", "4", "--name", "e2eb"]).status.code(), Some(0));
    // Different subnets: the second plan skipped what the first took (veth links are no
    // Docker network; their subnets are labelled on the routers).
    let subnets = |c: &str| docker(&["inspect", "-f", "{{index .Config.Labels \"vnet-te.subnets\"}}", c]);
    let (a, b) = (subnets("vte-e2ea-r1"), subnets("vte-e2eb-r1"));
    assert!(!a.trim().is_empty() && !b.trim().is_empty(), "{a} / {b}");
    for s in a.trim().split(',') {
        assert!(!b.contains(s), "subnet {s} of e2ea reused by e2eb ({b})");
    }
    // The same name again is refused, and the existing path is untouched.
    let out = vnet(&["path", "create", "--hops", "2", "--name", "e2ea"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(labelled("e2ea"), (5, 0));
    assert_eq!(vnet(&["path", "delete", "e2ea"]).status.code(), Some(0));
    assert_eq!(labelled("e2ea"), (0, 0));
    // The other path still works.
    assert_eq!(vnet(&["path", "verify", "e2eb", "--timeout", "20"]).status.code(), Some(0));
    assert_eq!(vnet(&["path", "delete", "e2eb"]).status.code(), Some(0));
    assert_eq!(labelled("e2eb"), (0, 0));
}

#[test]
fn faults_failure_half_way_rolls_back_everything_it_created() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("failure_half_way") {
        return;
    }
    let _c = Cleanup("e2efail");
    // A foreign container (not ours: no labels) holds the name of router r3: the create
    // fails at the container step, after networks and other containers exist.
    let blocker = "vte-e2efail-r3";
    let _ = Command::new("docker").args(["rm", "-f", blocker]).output();
    docker(&["create", "--name", blocker, "--network", "none", &format!("vnet-te/host:{}", env!("CARGO_PKG_VERSION"))]);
    let out = vnet(&["path", "create", "--hops", "5", "--name", "e2efail"]);
    let _ = Command::new("docker").args(["rm", "-f", blocker]).output();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rolled back"), "{err}");
    assert!(err.contains("vte-e2efail-r3"), "{err}");
    assert_eq!(err.matches("is already in use").count(), 1, "Docker's message once, not once per layer: {err}");
    assert_nothing_left(Engine::Local, "e2efail", &[]);
}

/// `vnet-te path create ARGS` started in the background, its stderr collected line by line.
fn spawn_create(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(bin())
        .args(["path", "create"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting vnet-te");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().expect("kill");
    assert!(ok.success(), "kill -{sig}");
}

/// The exit code and every stderr line of a child, within a deadline.
fn finish(mut child: std::process::Child, rx: &std::sync::mpsc::Receiver<String>, within: std::time::Duration) -> (Option<i32>, String) {
    let deadline = std::time::Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for vnet-te") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("vnet-te still runs {within:?} after the signal");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    while let Ok(l) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
        err.push_str(&l);
        err.push('\n');
    }
    (status.code(), err)
}

/// SIGINT, SIGTERM and SIGHUP half-way through a create roll it back and say so; after the
/// path exists, a signal during verification ends the command at once and leaves the path.
#[test]
fn faults_signals_during_create_roll_back_and_during_verify_end_the_command() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("signals_during_create") {
        return;
    }
    let name = "e2esig";
    let _c = Cleanup(name);
    let _ = vnet(&["path", "delete", name]);
    for sig in ["INT", "TERM", "HUP"] {
        let (child, rx) = spawn_create(&["--hops", "12", "--name", name]);
        // Half-way: some of the path's containers exist, not all of them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while labelled(name).0 < 3 {
            assert!(std::time::Instant::now() < deadline, "no container of {name} appeared");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let ids = container_ids(Engine::Local, name);
        signal(&child, sig);
        let (code, err) = finish(child, &rx, std::time::Duration::from_secs(30));
        assert_eq!(code, Some(3), "SIG{sig}: {err}");
        assert!(err.contains(&format!("interrupted by SIG{sig}")) && err.contains("rolled back"), "SIG{sig}: {err}");
        assert_nothing_left(Engine::Local, name, &ids);
    }
    // Verification of a 2 s round trip takes seconds: interrupted there, the path stays.
    let (child, rx) = spawn_create(&["--hops", "3", "--name", name, "--delay", "1s"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).expect("create did not report the path created");
        if line.starts_with("created path") {
            break;
        }
    }
    signal(&child, "INT");
    let (code, err) = finish(child, &rx, std::time::Duration::from_secs(5));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("interrupted by SIGINT") && err.contains("was created but not verified"), "{err}");
    assert_eq!(labelled(name).0, 5, "the created path stays");
    let ids = container_ids(Engine::Local, name);
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_nothing_left(Engine::Local, name, &ids);
}

/// Every object a create makes carries its run's label, and a rollback takes only its own
/// run's objects: a container of the same path made by another run (here by hand, labelled
/// as one) stays until `path delete`, which goes by the path's label.
#[test]
fn faults_a_rollback_takes_only_its_own_runs_objects() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("faults_a_rollback_takes_only_its_own_runs_objects") {
        return;
    }
    let name = "e2erun";
    let _c = Cleanup(name);
    let _ = vnet(&["path", "delete", name]);
    let (child, rx) = spawn_create(&["--hops", "12", "--name", name]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while labelled(name).0 < 3 {
        assert!(std::time::Instant::now() < deadline, "no container of {name} appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let f = format!("label=vnet-te.path={name}");
    let runs = docker(&["ps", "-a", "--filter", &f, "--format", "{{.Label \"vnet-te.run\"}}"]);
    let runs: std::collections::BTreeSet<&str> = runs.lines().collect();
    assert_eq!(runs.len(), 1, "one run label on every container: {runs:?}");
    assert!(!runs.iter().next().unwrap().is_empty(), "the run label is set");
    let other = format!("vte-{name}-other");
    docker(&[
        "create",
        "--name",
        &other,
        "--network",
        "none",
        "--label",
        &format!("vnet-te.path={name}"),
        "--label",
        "vnet-te.run=another-run",
        &format!("vnet-te/host:{}", env!("CARGO_PKG_VERSION")),
    ]);
    let ids = container_ids(Engine::Local, name);
    signal(&child, "TERM");
    let (code, err) = finish(child, &rx, std::time::Duration::from_secs(30));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("rolled back: removed"), "{err}");
    let left = docker(&["ps", "-a", "--filter", &f, "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), other, "only the other run's container stays");
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_nothing_left(Engine::Local, name, &ids);
}

/// Two creates of one name at once: exactly one makes and verifies the path, the other is
/// refused (exit 2) before touching anything, and the path is whole.
#[test]
fn faults_two_creates_of_one_name_at_once_one_wins_the_other_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("two_creates_of_one_name") {
        return;
    }
    let name = "e2etwin";
    let _c = Cleanup(name);
    let _ = vnet(&["path", "delete", name]);
    let (a, ra) = spawn_create(&["--hops", "6", "--name", name]);
    let (b, rb) = spawn_create(&["--hops", "6", "--name", name]);
    let (ca, ea) = finish(a, &ra, std::time::Duration::from_secs(120));
    let (cb, eb) = finish(b, &rb, std::time::Duration::from_secs(120));
    let mut codes = [ca, cb];
    codes.sort();
    assert_eq!(codes, [Some(0), Some(2)], "one wins, one is refused:\n{ea}\n{eb}");
    let loser = if ca == Some(2) { &ea } else { &eb };
    assert!(loser.contains(&format!("path '{name}' is being changed by another vnet-te run")) || loser.contains("already exists"), "{loser}");
    assert_eq!(labelled(name).0, 8, "the winner's path is whole");
    assert_eq!(vnet(&["path", "verify", name]).status.code(), Some(0));
    let ids = container_ids(Engine::Local, name);
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_nothing_left(Engine::Local, name, &ids);
}

/// The plan of a running path is kept by the controller (`$VNET_TE_HOME/paths`, 0600), not in
/// the experiment hosts, where experimenters are root: a plan written into a host changes
/// nothing `path verify` looks at, and delete takes the stored plan away.
#[test]
fn faults_a_plan_written_into_a_host_has_no_effect() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("faults_a_plan_written_into_a_host") {
        return;
    }
    let name = "e2etamper";
    let _c = Cleanup(name);
    let home = std::env::var("VNET_TE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".vnet-te"));
    let stored = home.join("paths").join(format!("{name}.json"));
    assert_eq!(vnet(&["path", "create", "--hops", "3", "--name", name]).status.code(), Some(0));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&stored).expect("the stored plan").permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", stored.display());
    let src = format!("vte-{name}-src");
    let listing = docker(&["exec", &src, "sh", "-c", "ls -A /etc/vnet-te 2>/dev/null; true"]);
    assert!(!listing.contains("plan"), "no plan in the host: {listing}");
    // What an experimenter could plant: a plan that points at other containers.
    let planted = std::fs::read_to_string(&stored).unwrap().replace(&format!("vte-{name}-"), "vte-elsewhere-");
    let mut child = std::process::Command::new("docker")
        .args(["exec", "-i", &src, "sh", "-c", "mkdir -p /etc/vnet-te && cat > /etc/vnet-te/plan.json"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), planted.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let out = vnet(&["path", "verify", name, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "verify reads the controller's plan");
    let report = json(&out);
    let hops = report["hops"].as_array().expect("hops");
    assert_eq!(hops.len(), 3);
    assert!(!report.to_string().contains("vte-elsewhere"), "{report}");
    let ids = container_ids(Engine::Local, name);
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert!(!stored.exists(), "delete removes the stored plan");
    assert_nothing_left(Engine::Local, name, &ids);
}

/// A router restarted by hand (its links and delay lines gone with its namespace), another
/// stopped and the far host removed: the path no longer verifies, `path repair` brings it back
/// in place (same names, addresses and ASNs, so the stored plan verifies) and delete leaves
/// nothing, delay lines included.
#[test]
fn faults_restarted_stopped_and_removed_containers_are_repaired_in_place() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("faults_restarted_stopped_and_removed") {
        return;
    }
    let name = "e2erepair";
    let _c = Cleanup(name);
    assert_eq!(vnet(&["path", "create", "--hops", "6", "--name", name, "--delay", "2ms"]).status.code(), Some(0));
    let id_of = |c: &str| docker(&["inspect", "-f", "{{.Id}}", c]);
    let r2 = id_of(&format!("vte-{name}-r2"));
    docker(&["restart", &format!("vte-{name}-r3")]);
    docker(&["stop", &format!("vte-{name}-r5")]);
    docker(&["rm", "-f", &format!("vte-{name}-dst")]);
    assert_eq!(vnet(&["path", "verify", name, "--timeout", "5"]).status.code(), Some(1), "broken before the repair");
    let out = vnet(&["path", "repair", name, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "repaired and verified");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("containers made again: vte-{name}-dst")), "{said}");
    assert!(said.contains(&format!("started: vte-{name}-r5")), "{said}");
    assert!(said.contains(&format!("vte-{name}-r3:")), "r3's link ends were made again: {said}");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    // The delay lines are back on every link: each hop's round trip is its planned one.
    let distance = report["distance"].as_array().expect("delays judged both ways");
    assert_eq!(distance.len(), 2);
    for d in distance {
        assert_eq!(d["ok"], true, "{d}");
        for h in d["hops"].as_array().unwrap() {
            // Without its lines a hop answers in a fraction of a millisecond.
            assert!(h["measured_us"].as_u64().unwrap() * 10 >= h["planned_us"].as_u64().unwrap() * 9, "{h}");
        }
    }
    assert_eq!(id_of(&format!("vte-{name}-r2")), r2, "a router that lost only a link is the same container");
    let again = vnet(&["path", "repair", name, "--no-verify"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stderr).contains("every container, link and delay line is in place"));
    let ids = container_ids(Engine::Local, name);
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_nothing_left(Engine::Local, name, &ids);
    let lines = std::fs::read_dir("/run/vnet-te/delay")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(&format!("vte-{name}-"))).count())
        .unwrap_or(0);
    assert_eq!(lines, 0, "no delay line directory left");
}

/// Linux starts packets at TTL 64: without vnet-te raising it, a path of more than 63 routers
/// has a control plane that verifies and a data plane that dies half-way.
#[test]
fn single_host_70_hops_pings_and_traceroutes_cross_more_than_64_routers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("single_host_70_hops") {
        return;
    }
    let _cleanup = Cleanup("e2e70");
    let out = vnet(&["path", "create", "--hops", "70", "--name", "e2e70", "--output", "json", "--timeout", "240"]);
    assert_eq!(out.status.code(), Some(0), "70 hops created and verified");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    let probes = report["probes"].as_array().expect("probes");
    assert_eq!(probes.len(), 4, "traceroute and ping both ways: {probes:?}");
    for p in probes {
        assert_eq!(p["ok"], true, "{p}");
        if p["kind"] == "traceroute" {
            assert_eq!(p["observed"].as_array().unwrap().len(), 71, "70 routers + the far host: {p}");
        }
    }
    let out = vnet(&["path", "delete", "e2e70"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled("e2e70"), (0, 0));
}

/// `limits:` at the top and on a router reach Docker, and the kernel holds a container to
/// them: a fork storm in an experiment host stops at its pids limit.
#[test]
fn single_host_limits_from_the_spec_bind_every_container() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("single_host_limits") {
        return;
    }
    let name = "e2elim";
    let _cleanup = Cleanup(name);
    let dir = std::env::temp_dir().join(format!("vnet-te-e2e-lim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("limits.yaml");
    let spec = "name: e2elim\nlimits: { memory: 96MiB, pids: 64 }\nrouters:\n  - { name: r1 }\n  - { name: r2, limits: { memory: 48MiB, pids: 128 } }\n  - { name: r3 }\n";
    std::fs::write(&f, spec).unwrap();
    let out = vnet(&["path", "create", "-f", f.to_str().unwrap(), "--output", "json"]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    for (c, want) in [("r1", "100663296 64"), ("r2", "50331648 128"), ("r3", "100663296 64"), ("src", "100663296 64"), ("dst", "100663296 64")] {
        let got = docker(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", &format!("vte-e2elim-{c}")]);
        assert_eq!(got.trim(), want, "{c}");
    }
    // What a verified router uses, against its limits (docs/security.md quotes these).
    let stats = docker(&["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "vte-e2elim-r1", "vte-e2elim-r2", "vte-e2elim-src"]);
    eprintln!("usage:\n{stats}");
    // 100 sleeps in a host bounded at 64 tasks: the kernel refuses the forks past it.
    let storm = Command::new("docker").args(["exec", "vte-e2elim-src", "sh", "-c", "for i in $(seq 100); do sleep 30 & done"]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&storm.stdout), String::from_utf8_lossy(&storm.stderr));
    assert!(said.contains("fork") || said.contains("Resource temporarily unavailable"), "no fork was refused: {said}");
    let running = docker(&["stats", "--no-stream", "--format", "{{.PIDs}}", "vte-e2elim-src"]);
    let running: usize = running.trim().parse().unwrap_or(usize::MAX);
    assert!((50..=64).contains(&running), "{running} tasks in a host bounded at 64: {said}");
    // Limits cannot change in place.
    let out = vnet(&["path", "update", name, "--hops", "3", "--name", name]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limits memory 48 MiB, pids 128 → memory 256 MiB, pids 512"), "update named the limits");
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0));
}

/// `--wiring docker`: one internal Docker bridge network per link and per LAN, verified
/// end to end, deleted to nothing (the forwarding rule in DOCKER-USER goes with the last).
#[test]
fn single_host_docker_wiring_builds_one_network_per_link() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("single_host_docker_wiring") {
        return;
    }
    let name = "e2edock";
    let _cleanup = Cleanup(name);
    let out = vnet(&["path", "create", "--hops", "4", "--name", name, "--wiring", "docker", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    assert_eq!(json(&out)["verified"], true);
    assert_eq!(labelled(name), (6, 5), "4 routers + 2 hosts, 3 links + 2 LANs");
    let driver = docker(&["network", "inspect", "-f", "{{.Driver}} {{.Internal}}", "vte-e2edock-l2"]);
    assert_eq!(driver.trim(), "bridge true");
    let plan = json(&vnet(&["path", "show", name, "--output", "json"]));
    assert_eq!(plan["plan"]["wiring"], "docker", "{plan}");
    // An update keeps the wiring it was made with.
    assert_eq!(vnet(&["path", "update", name, "--hops", "4", "--name", name]).status.code(), Some(0));
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0));
}

/// Why routers get SYS_ADMIN: FRR's zebra and bgpd ask for it at start and exit without it,
/// while staticd and the devices the setup script makes (VXLAN, bridge) do not need it. On
/// the real router image, once with a router's capabilities and once without SYS_ADMIN.
#[test]
fn router_caps_frr_zebra_and_bgpd_need_sys_admin_and_nothing_else_does() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready("router_caps_frr_zebra_and_bgpd_need_sys_admin") {
        return;
    }
    let script = "install -d -o frr -g frr -m 755 /var/run/frr; printf 'hostname r1\\n' > /tmp/z.conf; \
                  printf 'router bgp 65001\\n bgp router-id 10.0.0.1\\n' > /tmp/f.conf; chown frr /tmp/z.conf /tmp/f.conf; \
                  for d in zebra bgpd staticd; do f=/tmp/f.conf; [ $d = zebra ] && f=/tmp/z.conf; \
                  /usr/lib/frr/$d -d -F datacenter -A 127.0.0.1 --limit-fds 1024 -f $f 2>&1 | grep -o 'cap_set_proc failed' | sed \"s/^/$d: /\"; done; \
                  sleep 1; for d in zebra bgpd staticd; do pgrep -x $d >/dev/null && echo \"$d runs\"; done; \
                  ip link add vx1 type vxlan id 5 local 10.0.0.1 dstport 4789 nolearning && echo 'vxlan made'; \
                  ip link add br1 type bridge && echo 'bridge made'; true";
    let run = |caps: &[&str]| {
        let mut args = vec!["run".to_string(), "--rm".into(), "--network".into(), "none".into(), "--label".into(), "vnet-te.object=caps-probe".into()];
        for c in caps {
            args.extend(["--cap-add".to_string(), c.to_string()]);
        }
        args.extend([format!("vnet-te/router:{}", env!("CARGO_PKG_VERSION")), "bash".into(), "-c".into(), script.into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args)
    };
    let with = run(&["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]);
    for want in ["zebra runs", "bgpd runs", "staticd runs", "vxlan made", "bridge made"] {
        assert!(with.contains(want), "with SYS_ADMIN: {want}:\n{with}");
    }
    assert!(!with.contains("cap_set_proc failed"), "{with}");
    let without = run(&["NET_ADMIN", "NET_RAW"]);
    for want in ["zebra: cap_set_proc failed", "bgpd: cap_set_proc failed", "staticd runs", "vxlan made", "bridge made"] {
        assert!(without.contains(want), "without SYS_ADMIN: {want}:\n{without}");
    }
    assert!(!without.contains("zebra runs") && !without.contains("bgpd runs"), "{without}");
}
