//! A local docker-in-docker cluster made by deploy/cluster-up.sh for one test binary: brought
//! up fresh (a cluster of the same name left by an earlier run would hide what this one does)
//! and torn down by deploy/cluster-down.sh in every outcome, unless VNET_TE_KEEP_CLUSTER=1.
//! Each binary names its own cluster (VNET_TE_CLUSTER, with a subnet of its own), so they can
//! run beside one another and beside the default cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::skip::{skip_or_fail, Requirement};
use super::{root, show};

/// Where cargo put the binaries of this build: cluster-up.sh copies vnet-te, its agent and its
/// delay line from there.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_vnet-te")).parent().expect("bin dir").to_path_buf()
}

/// One local cluster: `name` None is the default cluster (vnet-te-n1..), Some(NAME) the
/// cluster vnet-te-NAME-n1.. on `subnet`.
#[derive(Debug, Clone, Copy)]
pub struct Cluster {
    pub name: Option<&'static str>,
    pub subnet: Option<&'static str>,
}

impl Cluster {
    fn env(&self, cmd: &mut Command) {
        match self.name {
            Some(n) => cmd.env("VNET_TE_CLUSTER", n),
            None => cmd.env_remove("VNET_TE_CLUSTER"),
        };
        match self.subnet {
            Some(s) => cmd.env("VNET_TE_CLUSTER_SUBNET", s),
            None => cmd.env_remove("VNET_TE_CLUSTER_SUBNET"),
        };
    }

    fn label(&self) -> String {
        self.name.map_or_else(String::new, |n| format!("VNET_TE_CLUSTER={n} "))
    }

    fn down(&self) {
        let mut cmd = Command::new(root().join("deploy/cluster-down.sh"));
        self.env(&mut cmd);
        if let Ok(o) = cmd.output() {
            show(&format!("{}deploy/cluster-down.sh", self.label()), &o);
        }
    }

    /// A fresh 3-node cluster from Debian `suite` (bookworm or trixie), or None when what it is
    /// built from is missing here (a skip, or a failure with VNET_TE_REQUIRE_CLUSTER=1).
    pub fn up(self, test: &str, suite: &str) -> Option<Teardown> {
        if !ready(test) {
            return None;
        }
        self.down();
        let teardown = Teardown(self);
        let t = Instant::now();
        let mut cmd = Command::new(root().join("deploy/cluster-up.sh"));
        self.env(&mut cmd);
        let up = cmd
            .arg("3")
            .env("VNET_TE_BIN_DIR", bin_dir())
            .env("VNET_TE_DEBIAN_SUITE", suite)
            .env_remove("VNET_TE_NODE_IMAGE")
            .output()
            .expect("running cluster-up.sh");
        show(&format!("{}VNET_TE_DEBIAN_SUITE={suite} deploy/cluster-up.sh 3", self.label()), &up);
        assert!(up.status.success(), "cluster-up failed");
        eprintln!("cluster up in {:.1} s", t.elapsed().as_secs_f64());
        Some(teardown)
    }
}

/// Starts a stopped or killed node again, after removing the cgroups its engine's containers
/// left when they died with it (deploy/cluster-node-cgroups.sh): the checks for leftovers then
/// see every cgroup the path's containers have, on every node.
pub fn start_node(node: &str) {
    let prune = Command::new(root().join("deploy/cluster-node-cgroups.sh")).arg(node).output().expect("running cluster-node-cgroups.sh");
    show(&format!("deploy/cluster-node-cgroups.sh {node}"), &prune);
    assert!(prune.status.success(), "{node}'s cgroups not removed");
    let start = Command::new("docker").args(["start", node]).output().expect("docker start");
    assert!(start.status.success(), "docker start {node}: {}", String::from_utf8_lossy(&start.stderr));
}

/// Tears its cluster down when dropped.
pub struct Teardown(Cluster);

impl Drop for Teardown {
    fn drop(&mut self) {
        if std::env::var("VNET_TE_KEEP_CLUSTER").is_ok_and(|v| v == "1") {
            eprintln!("VNET_TE_KEEP_CLUSTER=1: leaving the cluster up ({}deploy/cluster-down.sh removes it)", self.0.label());
            return;
        }
        self.0.down();
    }
}

/// Whether what a cluster is built from is here: an engine, the agent beside vnet-te, and
/// debootstrap and ssh-keygen. When not, a skip (or a failure with VNET_TE_REQUIRE_CLUSTER=1).
fn ready(test: &str) -> bool {
    let engine = Command::new("docker").arg("info").output().map(|o| o.status.success()).unwrap_or(false);
    let bins = bin_dir().join("vnet-te-agent").exists();
    let tools = Command::new("sh").args(["-c", "command -v debootstrap && command -v ssh-keygen"]).output().map(|o| o.status.success()).unwrap_or(false);
    let reason = if !engine {
        "no Docker engine answers"
    } else if !bins {
        "vnet-te-agent is not built next to vnet-te (cargo build --release)"
    } else if !tools {
        "debootstrap or ssh-keygen missing (deploy/ensure-docker.sh installs them)"
    } else {
        return true;
    };
    skip_or_fail(test, Requirement::Cluster, reason);
    false
}
