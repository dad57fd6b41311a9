//! Helpers shared by the end-to-end tests on the real local engine (`e2e_detour`,
//! `e2e_evpn`): running the CLI, asking Docker directly, skipping without an engine, and
//! cleaning up by label whatever the outcome.
#![allow(dead_code)] // each test binary uses its own subset

pub mod cluster;
pub mod lan;
pub mod leftovers;
pub mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Docker-touching tests of one binary run one at a time: concurrent creates on one
/// engine race for subnets.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vnet-te")
}

/// `vnet-te ARGS`, echoed with its output (shown when a test fails).
pub fn vnet(args: &[&str]) -> Output {
    let t0 = Instant::now();
    let out = Command::new(bin()).args(args).output().expect("running vnet-te");
    eprintln!(
        "$ vnet-te {}\n(exit {:?}, {:.1} s)\n{}{}",
        args.join(" "),
        out.status.code(),
        t0.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Echoes a command and its outcome (shown when a test fails).
pub fn show(what: &str, out: &Output) {
    eprintln!(
        "$ {what}\n(exit {:?})\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `docker ARGS`, which must succeed; its stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("running docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `docker ARGS` whatever its outcome.
pub fn docker_out(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("running docker")
}

/// `docker exec CONTAINER CMD...`, which must succeed; its stdout.
pub fn exec(container: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", container];
    args.extend_from_slice(cmd);
    docker(&args)
}

/// A command's JSON output inside a container (FRR's show ... json, ip -j).
pub fn exec_json(container: &str, cmd: &[&str]) -> serde_json::Value {
    let text = exec(container, cmd);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{container} {cmd:?}: not JSON ({e}): {text}"))
}

/// Labelled containers and networks of a path, as Docker itself reports them.
pub fn labelled(path: &str) -> (usize, usize) {
    let f = format!("label=vnet-te.path={path}");
    let c = docker(&["ps", "-aq", "--filter", &f]).lines().count();
    let n = docker(&["network", "ls", "-q", "--filter", &f]).lines().count();
    (c, n)
}

/// False (skip, with the reason printed) when no engine or images are here, unless CI
/// requires them (`Requirement::Docker`), then it fails.
pub fn docker_ready(test: &str) -> bool {
    let engine = Command::new("docker").arg("info").output().map(|o| o.status.success()).unwrap_or(false);
    let image = |kind: &str| {
        Command::new("docker")
            .args(["image", "inspect", &format!("vnet-te/{kind}:{}", env!("CARGO_PKG_VERSION"))])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let images = engine && image("router") && image("host");
    if engine && images {
        return true;
    }
    let reason = if engine { "vnet-te images missing (run `vnet-te images build`)" } else { "no Docker engine answers" };
    skip::skip_or_fail(test, skip::Requirement::Docker, reason);
    false
}

/// Deletes the path (by label, through the CLI) and the test's spec files on drop, so a
/// failing assertion leaves nothing behind.
pub struct Cleanup {
    pub path: String,
    dir: PathBuf,
}

impl Cleanup {
    pub fn new(path: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vnet-te-e2e-{}-{path}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // A leftover of an earlier, killed run would make `create` refuse the name.
        let _ = Command::new(bin()).args(["path", "delete", path]).output();
        Cleanup { path: path.to_string(), dir }
    }

    /// Writes a spec for this test's path: an example from `paths/` (or any YAML text) with
    /// its `name:` line replaced by this path's name.
    pub fn spec(&self, file: &str, yaml: &str) -> String {
        let text: String = yaml
            .lines()
            .map(|l| if l.starts_with("name:") { format!("name: {}", self.path) } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let p = self.dir.join(file);
        std::fs::write(&p, text).expect("writing spec");
        p.to_string_lossy().to_string()
    }

    /// An example spec from `paths/`, renamed, with its `path:` line replaced if given.
    pub fn example(&self, example: &str, path_line: Option<&str>) -> String {
        let text = std::fs::read_to_string(root().join("paths").join(example)).expect("example spec");
        let text = match path_line {
            None => text,
            Some(p) => text
                .lines()
                .map(|l| if l.starts_with("path:") { format!("path: {p}") } else { l.to_string() })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let file = format!("{}-{example}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.spec(&file, &text)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new(bin()).args(["path", "delete", &self.path]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The stored plan of a running path (`path show --output json`).
pub fn plan_of(path: &str) -> serde_json::Value {
    let out = vnet(&["path", "show", path, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "path show {path}");
    json(&out)["plan"].clone()
}

pub fn router<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["routers"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("router {name}"))
}

pub fn host<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["hosts"].as_array().unwrap().iter().find(|h| h["name"] == name).unwrap_or_else(|| panic!("host {name}"))
}

/// The neighbour entry of `router` for `peer` in the plan.
pub fn neighbor<'a>(plan: &'a serde_json::Value, router_name: &str, peer: &str) -> &'a serde_json::Value {
    router(plan, router_name)["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["peer"] == peer)
        .unwrap_or_else(|| panic!("{router_name} has no neighbour {peer}"))
}

/// The probes of a report of one kind.
pub fn probes<'a>(report: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    report["probes"].as_array().unwrap().iter().filter(|p| p["kind"] == kind).collect()
}

pub fn hop<'a>(report: &'a serde_json::Value, router_name: &str) -> &'a serde_json::Value {
    report["hops"].as_array().unwrap().iter().find(|h| h["router"] == router_name).unwrap_or_else(|| panic!("hop {router_name}"))
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes the TE policy toward `peer` on `router` by hand, as an operator would in vtysh.
pub fn remove_policy_by_hand(plan: &serde_json::Value, router_name: &str, peer: &str) {
    let r = router(plan, router_name);
    let container = r["container"].as_str().unwrap();
    let asn = format!("router bgp {}", r["asn"]);
    let n = neighbor(plan, router_name, peer);
    let address = n["address"].as_str().unwrap();
    let line = format!("no neighbor {address} route-map VTE-IN-{peer} in");
    exec(container, &["vtysh", "-c", "configure terminal", "-c", &asn, "-c", "address-family ipv4 unicast", "-c", &line]);
    // FRR applies it after a route refresh from the peer: wait (with a deadline) until no
    // route from that neighbour carries the TE preference any more, so what the test checks
    // next is the state without the policy.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let table = exec_json(container, &["vtysh", "-c", "show bgp ipv4 unicast json"]);
        let preferred = table["routes"].as_object().into_iter().flatten().flat_map(|(_, paths)| {
            paths.as_array().into_iter().flatten().filter(|p| {
                p["locPrf"] == 200 && p["nexthops"].as_array().is_some_and(|h| h.iter().any(|h| h["ip"] == address))
            })
        });
        if preferred.count() == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{router_name}: routes from {peer} still preferred 20 s after the policy went");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Container ids and start times of a path (proof that an update recreated nothing).
pub fn container_identities(path: &str) -> Vec<String> {
    let f = format!("label=vnet-te.path={path}");
    let ids = docker(&["ps", "-aq", "--no-trunc", "--filter", &f]);
    let mut out: Vec<String> = ids
        .lines()
        .map(|id| docker(&["inspect", "-f", "{{.Name}} {{.Id}} {{.State.StartedAt}}", id]).trim().to_string())
        .collect();
    out.sort();
    out
}

pub fn network_ids(path: &str) -> Vec<String> {
    let f = format!("label=vnet-te.path={path}");
    let mut v: Vec<String> = docker(&["network", "ls", "-q", "--no-trunc", "--filter", &f]).lines().map(String::from).collect();
    v.sort();
    v
}

/// rx/tx bytes of the interface holding `address` in a container (`ip -s -j addr`).
pub fn iface_bytes(container: &str, address: &str) -> (u64, u64) {
    let v = exec_json(container, &["ip", "-s", "-j", "addr", "show"]);
    let i = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["addr_info"].as_array().is_some_and(|a| a.iter().any(|x| x["local"] == address)))
        .unwrap_or_else(|| panic!("{container}: no interface holds {address}"));
    (i["stats64"]["rx"]["bytes"].as_u64().unwrap(), i["stats64"]["tx"]["bytes"].as_u64().unwrap())
}

/// The address of `router`'s interface toward `peer` in the plan.
pub fn addr_toward(plan: &serde_json::Value, router_name: &str, peer: &str) -> String {
    router(plan, router_name)["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["peer"] == peer)
        .unwrap_or_else(|| panic!("{router_name} has no interface toward {peer}"))["address"]
        .as_str()
        .unwrap()
        .to_string()
}
