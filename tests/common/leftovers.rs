//! "Nothing of path X is left on this engine": the one check every `faults` case ends with.
//! On an engine (the local one, or a node of a local cluster through `docker exec NODE`) it
//! looks for the path's labelled containers and networks, link ends still waiting in the
//! engine's own namespace (`vtx…`), delay-line traces there (queue rules, bound queues,
//! token buckets, the lines' socket directories), the cgroups of the path's containers, and,
//! once no vnet-te network is left on the engine at all, the bridge forwarding rule.
#![allow(dead_code)] // each test binary uses its own subset

use std::process::Command;
use std::time::{Duration, Instant};

/// Where to look: the local engine, or a local-cluster node (its container's name).
#[derive(Debug, Clone, Copy)]
pub enum Engine<'a> {
    Local,
    Node(&'a str),
}

impl Engine<'_> {
    /// `sh -c SCRIPT` on the engine's machine; its stdout, whatever the exit.
    pub fn sh(&self, script: &str) -> String {
        let out = match self {
            Engine::Local => Command::new("sh").args(["-c", script]).output(),
            Engine::Node(n) => Command::new("docker").args(["exec", n, "sh", "-c", script]).output(),
        }
        .expect("running a shell");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn lines(&self, script: &str) -> Vec<String> {
        self.sh(script).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    }
}

/// The full ids of the path's containers on the engine (their cgroups are named after them);
/// take them before a delete.
pub fn container_ids(engine: Engine, path: &str) -> Vec<String> {
    engine.lines(&format!("docker ps -aq --no-trunc --filter label=vnet-te.path={path}"))
}

/// Everything of `path` still on the engine, one description each (empty: nothing). `ids`
/// are the path's container ids taken earlier, for their cgroups.
pub fn left_of(engine: Engine, path: &str, ids: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    for c in engine.lines(&format!("docker ps -a --format '{{{{.Names}}}}' --filter label=vnet-te.path={path}")) {
        left.push(format!("container {c}"));
    }
    for n in engine.lines(&format!("docker network ls --format '{{{{.Name}}}}' --filter label=vnet-te.path={path}")) {
        left.push(format!("network {n}"));
    }
    for i in engine.lines("ip -o link show | awk -F': ' '{print $2}' | grep '^vtx'") {
        left.push(format!("interface {i} in the engine's namespace"));
    }
    for r in engine.lines("iptables -w -t mangle -S 2>/dev/null | grep -F 'vnet-te delay'") {
        left.push(format!("queue rule in the engine's namespace: {r}"));
    }
    for q in engine.lines("cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null") {
        left.push(format!("queue bound in the engine's namespace: {q}"));
    }
    for t in engine.lines("tc qdisc show 2>/dev/null | grep -w tbf") {
        left.push(format!("token bucket in the engine's namespace: {t}"));
    }
    let dirs = "for d in /run/vnet-te/delay; do ls $d 2>/dev/null; done; \
                docker exec vnet-te-agent ls /run/vnet-te/delay 2>/dev/null; true";
    for d in engine.lines(dirs).into_iter().filter(|d| d.starts_with(&format!("vte-{path}-"))) {
        left.push(format!("delay line socket directory {d}"));
    }
    if !ids.is_empty() {
        let names = ids.iter().map(|id| format!("-name '*{id}*'")).collect::<Vec<_>>().join(" -o ");
        for g in engine.lines(&format!("find /sys/fs/cgroup -maxdepth 6 -type d \\( {names} \\) 2>/dev/null")) {
            left.push(format!("cgroup {g}"));
        }
    }
    // The rule is shared by every path with bridges on the engine: it must be gone only when
    // none is left.
    if engine.lines("docker network ls -q --filter label=vnet-te.path").is_empty() {
        for r in engine.lines("iptables -w -S DOCKER-USER 2>/dev/null | grep -F vte") {
            left.push(format!("forwarding rule with no vnet-te network left: {r}"));
        }
    }
    left
}

/// Waits (a worker drops a removed overlay, the kernel a namespace's devices, shortly after)
/// until nothing of `path` is left on the engine; fails naming what is.
pub fn assert_nothing_left(engine: Engine, path: &str, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let left = left_of(engine, path, ids);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left of path {path} on {engine:?} after 45 s:\n  {}", left.join("\n  "));
        std::thread::sleep(Duration::from_millis(500));
    }
}
