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

/// A directory nobody may write in, removed on drop (the operator's HOME and state).
struct Home(std::path::PathBuf);

impl Home {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("vnet-te-nonroot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("home dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod home");
        Home(dir)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join("vnet-te-locks-nobody"));
    }
}

/// `vnet-te ARGS` as nobody in the docker group, echoed with its output.
fn as_operator(home: &Home, gid: u32, args: &[&str]) -> Output {
    let out = Command::new("setpriv")
        .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), format!("--groups={gid}")])
        .arg("env")
        .arg(format!("HOME={}", home.0.display()))
        .arg("USER=nobody")
        .arg(common::bin())
        .args(args)
        .output()
        .expect("running setpriv");
    eprintln!(
        "$ (nobody, group docker) vnet-te {}\n(exit {:?})\n{}{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Deletes the path as root on drop, whatever the test did (nothing left in any outcome).
struct Delete(&'static str);

impl Drop for Delete {
    fn drop(&mut self) {
        let _ = Command::new(common::bin()).args(["path", "delete", self.0]).output();
    }
}

/// The operator, or None (skipped, with the reason printed).
fn operator(test: &str) -> Option<u32> {
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
        return gid;
    };
    skip::skip(test, reason);
    None
}

#[test]
fn an_operator_in_the_docker_group_builds_verifies_and_deletes_a_path_with_docker_wiring() {
    let _serial = common::serial();
    let Some(gid) = operator("nonroot_docker_wiring") else { return };
    let home = Home::new();
    let _delete = Delete("nonroot");
    let _ = as_operator(&home, gid, &["path", "delete", "nonroot"]);

    let out = as_operator(&home, gid, &["path", "create", "--hops", "4", "--name", "nonroot", "--wiring", "docker", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "created and verified without root");
    let report = common::json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["hops"].as_array().unwrap().len(), 4);
    // The forwarding rule went in through a helper container, which is gone.
    assert_eq!(common::docker(&["ps", "-aq", "--filter", "label=vnet-te.object=forwarding"]).trim(), "");

    let out = as_operator(&home, gid, &["path", "delete", "nonroot"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled("nonroot"), (0, 0), "nothing of the path left");
    assert_eq!(common::docker(&["ps", "-aq", "--filter", "label=vnet-te.object=forwarding"]).trim(), "");
}

#[test]
fn an_operator_in_the_docker_group_is_told_that_direct_links_need_root_and_nothing_is_left() {
    let _serial = common::serial();
    let Some(gid) = operator("nonroot_direct_links") else { return };
    let home = Home::new();
    let _delete = Delete("nonroot-direct");
    let _ = as_operator(&home, gid, &["path", "delete", "nonroot-direct"]);

    let out = as_operator(&home, gid, &["path", "create", "--hops", "2", "--name", "nonroot-direct"]);
    assert_eq!(out.status.code(), Some(3), "a create that fails on the node exits 3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(err.contains("making links needs CAP_NET_ADMIN on the node (run as root, or use `wiring: docker`)"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(labelled("nonroot-direct"), (0, 0), "the rollback left nothing");
}
