//! The one way a test steps aside when something it needs is not here: a skip with its
//! reason, or a failure where CI says that thing must be here (`VNET_TE_REQUIRE_<X>=1`, as
//! `deploy/test.sh` sets them). Plain std so that any test crate of the workspace can take it
//! with `#[path = ".../tests/common/skip.rs"] mod skip;`.
#![allow(dead_code)] // each test binary uses its own requirements

/// What a test may find missing, each with its `VNET_TE_REQUIRE_<X>` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// A Docker engine that answers (and the images the test runs).
    Docker,
    /// FRR's tools (vtysh) to check configurations with.
    Frr,
    /// OpenSSH's sshd and ssh.
    Ssh,
    /// Several engines to form a cluster from.
    Cluster,
}

impl Requirement {
    /// The environment variable that turns a skip for want of this into a failure.
    pub fn env_var(self) -> &'static str {
        match self {
            Requirement::Docker => "VNET_TE_REQUIRE_DOCKER",
            Requirement::Frr => "VNET_TE_REQUIRE_FRR",
            Requirement::Ssh => "VNET_TE_REQUIRE_SSH",
            Requirement::Cluster => "VNET_TE_REQUIRE_CLUSTER",
        }
    }

    /// Whether this run must have it (its switch is `1`).
    pub fn required(self) -> bool {
        std::env::var(self.env_var()).is_ok_and(|v| v == "1")
    }
}

/// Reports that `test` does not run here because of `reason` (prints `SKIP <test>: <reason>`
/// to stderr), or panics when `requirement` is required in this run. The caller returns
/// right after.
pub fn skip_or_fail(test: &str, requirement: Requirement, reason: &str) {
    let var = requirement.env_var();
    if requirement.required() {
        panic!("{test}: {reason}, and {var}=1 requires it");
    }
    eprintln!("SKIP {test}: {reason} (set {var}=1 to make this a failure)");
}
