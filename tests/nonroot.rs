//! The CLI run by an operator who is not root but is in the `docker` group (`setpriv` to the
//! user nobody with the docker group's id), on the real local engine: `--wiring docker` builds
//! and verifies a path and deletes it; direct links, which need CAP_NET_ADMIN in the routers'
//! namespaces, are refused with the error that says so, and leave nothing behind.
//!
//! Runs as root (to drop to nobody) with an engine whose socket belongs to the `docker` group;
//! anything else is a skip with its reason (or a failure where VNET_TE_REQUIRE_DOCKER=1 says the
//! engine and images must be there).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::{docker_ready, labelled, skip};

const NOBODY: u32 = 65534;

/// The `docker` group's id, from /etc/group.
fn docker_gid() -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == "docker").then(|| f[2].parse().ok()).flatten()
    })
}

/// The operator of one test: nobody in the docker group, with a HOME of its own. On drop, the
/// test's path is deleted as root (nothing left in any outcome) and the HOME removed.
struct Operator {
    gid: u32,
    home: std::path::PathBuf,
    path: &'static str,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Operator {
    /// The operator of `test`, which uses the path `path`; None when skipped (the reason
    /// printed).
    fn new(test: &str, path: &'static str) -> Option<Self> {
        let serial = common::serial();
        if !docker_ready(test) {
            return None;
        }
        let root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
        let setpriv = Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success());
        let gid = docker_gid();
        let socket_group = std::fs::metadata("/var/run/docker.sock").map(|m| std::os::unix::fs::MetadataExt::gid(&m)).ok();
        let reason = if !root {
            "runs as root, to run the CLI as the unprivileged user nobody"
        } else if !setpriv {
            "setpriv (util-linux) is missing"
        } else if gid.is_none() || socket_group != gid {
            "the engine's socket /var/run/docker.sock does not belong to a `docker` group"
        } else {
            let home = std::env::temp_dir().join(format!("vnet-te-nonroot-{}-{path}", std::process::id()));
            let _ = std::fs::remove_dir_all(&home);
            std::fs::create_dir_all(&home).expect("home dir");
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).expect("chmod home");
            let op = Operator { gid: gid?, home, path, _serial: serial };
            // A leftover of an earlier, killed run would make `create` refuse the name.
            op.run(&["path", "delete", path]);
            return Some(op);
        };
        skip::skip(test, reason);
        None
    }

    /// `vnet-te ARGS` as this operator, echoed with its output.
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("setpriv")
            .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), format!("--groups={}", self.gid)])
            .arg("env")
            .arg(format!("HOME={}", self.home.display()))
            .arg("USER=nobody")
            .arg(common::bin())
            .args(args)
            .output()
            .expect("running setpriv");
        common::show(&format!("(nobody, group docker) vnet-te {}", args.join(" ")), &out);
        out
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = Command::new(common::bin()).args(["path", "delete", self.path]).output();
        let _ = std::fs::remove_dir_all(&self.home);
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join("vnet-te-locks-nobody"));
    }
}

#[test]
fn an_operator_in_the_docker_group_builds_verifies_and_deletes_a_path_with_docker_wiring() {
    let Some(op) = Operator::new("nonroot_docker_wiring", "nonroot") else { return };

    let out = op.run(&["path", "create", "--hops", "4", "--name", "nonroot", "--wiring", "docker", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "created and verified without root");
    let report = common::json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["hops"].as_array().unwrap().len(), 4);
    // The forwarding rule went in through a helper container, which is gone.
    assert_eq!(common::docker(&["ps", "-aq", "--filter", "label=vnet-te.object=forwarding"]).trim(), "");

    let out = op.run(&["path", "delete", "nonroot"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled("nonroot"), (0, 0), "nothing of the path left");
    assert_eq!(common::docker(&["ps", "-aq", "--filter", "label=vnet-te.object=forwarding"]).trim(), "");
}

#[test]
fn an_operator_in_the_docker_group_is_told_that_direct_links_need_root_and_nothing_is_left() {
    let Some(op) = Operator::new("nonroot_direct_links", "nonroot-direct") else { return };

    let out = op.run(&["path", "create", "--hops", "2", "--name", "nonroot-direct"]);
    assert_eq!(out.status.code(), Some(3), "a create that fails on the node exits 3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(err.contains("making links needs CAP_NET_ADMIN on the node (run as root, or use `wiring: docker`)"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(labelled("nonroot-direct"), (0, 0), "the rollback left nothing");
}
