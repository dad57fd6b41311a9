//! The one way a test steps aside when something it needs is not here: a skip with its
//! reason, or a failure where CI says that thing must be here. Plain std so that any test
//! crate of the workspace can take it with `#[path = ".../tests/common/skip.rs"] mod skip;`
//! (`tests/common/mod.rs` declares it as `common::skip`; `agent/src/netns.rs` takes it for its
//! unit tests).
//!
//! The switches, each `=1` to turn a skip into a failure (`deploy/test.sh` exports them all,
//! as CI runs it):
//!
//! | variable                  | a test fails instead of skipping without …                 |
//! |---------------------------|-------------------------------------------------------------|
//! | `VNET_TE_REQUIRE_DOCKER`  | a Docker engine that answers and the vnet-te images         |
//! | `VNET_TE_REQUIRE_FRR`     | FRR's `vtysh` (Debian's frr package)                        |
//! | `VNET_TE_REQUIRE_SSH`     | OpenSSH's `sshd` and `ssh-keygen`                           |
//! | `VNET_TE_REQUIRE_CLUSTER` | what the local multi-node cluster is built from             |
//! | `VNET_TE_REQUIRE_DELAY`   | what the packet-delay line needs to delay packets           |
//! | `VNET_TE_REQUIRE_VYOS_CHECK` | `../shared/tools/vyos/vyos_check.py` (VyOS 1.4's CLI schema) and python3 |
//!
//! A skip prints `SKIP <test>: <reason>` to stderr and the test returns (and passes). What a
//! machine may lack by its nature rather than by a missing setup step (a kernel without
//! VXLAN) is a [`skip`], which no switch turns into a failure.
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
    /// What the packet-delay line needs to delay packets here.
    Delay,
    /// The VyOS 1.4 command checker beside the repository (`../shared/tools/vyos/`).
    VyosCheck,
}

impl Requirement {
    /// Every requirement the suite knows (`deploy/test.sh` exports each one's switch).
    pub const ALL: [Requirement; 6] = [
        Requirement::Docker,
        Requirement::Frr,
        Requirement::Ssh,
        Requirement::Cluster,
        Requirement::Delay,
        Requirement::VyosCheck,
    ];

    /// The environment variable that turns a skip for want of this into a failure.
    pub fn env_var(self) -> &'static str {
        match self {
            Requirement::Docker => "VNET_TE_REQUIRE_DOCKER",
            Requirement::Frr => "VNET_TE_REQUIRE_FRR",
            Requirement::Ssh => "VNET_TE_REQUIRE_SSH",
            Requirement::Cluster => "VNET_TE_REQUIRE_CLUSTER",
            Requirement::Delay => "VNET_TE_REQUIRE_DELAY",
            Requirement::VyosCheck => "VNET_TE_REQUIRE_VYOS_CHECK",
        }
    }

    /// Whether this run must have it (its switch is `1`).
    pub fn required(self) -> bool {
        self.required_in(&process_env)
    }

    fn required_in(self, env: &dyn Fn(&str) -> Option<String>) -> bool {
        env(self.env_var()).is_some_and(|v| v == "1")
    }
}

fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Reports that `test` does not run here because of `reason` (prints `SKIP <test>: <reason>`
/// to stderr), or panics when `requirement` is required in this run. The caller returns
/// right after.
pub fn skip_or_fail(test: &str, requirement: Requirement, reason: &str) {
    match outcome(&process_env, test, requirement, reason) {
        Ok(line) => eprintln!("{line}"),
        Err(failure) => panic!("{failure}"),
    }
}

/// What [`skip_or_fail`] does in the environment `env`: the line a skip prints, or the message
/// a required run fails with.
fn outcome(env: &dyn Fn(&str) -> Option<String>, test: &str, requirement: Requirement, reason: &str) -> Result<String, String> {
    let var = requirement.env_var();
    if requirement.required_in(env) {
        Err(format!("{test}: {reason}, and {var}=1 requires it"))
    } else {
        Ok(format!("SKIP {test}: {reason} (set {var}=1 to make this a failure)"))
    }
}

/// Reports that `test` (or a part of it) does not run here because of `reason`, whatever the
/// switches say: for what a machine may lack by its nature (a kernel without VXLAN, another
/// cgroup driver), not a setup step CI performs. The caller returns (or leaves that part out)
/// right after.
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIP {test}: {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |var| pairs.iter().find(|(k, _)| *k == var).map(|(_, v)| v.to_string())
    }

    #[test]
    fn a_skip_is_reported_when_its_switch_is_off_or_not_1() {
        let skipped = Ok("SKIP t: no engine (set VNET_TE_REQUIRE_DOCKER=1 to make this a failure)".to_string());
        assert_eq!(outcome(&env_with(&[]), "t", Requirement::Docker, "no engine"), skipped);
        assert_eq!(outcome(&env_with(&[("VNET_TE_REQUIRE_DOCKER", "0")]), "t", Requirement::Docker, "no engine"), skipped);
        assert_eq!(outcome(&env_with(&[("VNET_TE_REQUIRE_DOCKER", "")]), "t", Requirement::Docker, "no engine"), skipped);
        // Another requirement's switch does not count.
        assert_eq!(outcome(&env_with(&[("VNET_TE_REQUIRE_FRR", "1")]), "t", Requirement::Docker, "no engine"), skipped);
    }

    #[test]
    fn a_skip_is_a_failure_when_its_switch_is_1() {
        let env = env_with(&[("VNET_TE_REQUIRE_DELAY", "1")]);
        assert_eq!(
            outcome(&env, "t", Requirement::Delay, "no delay here"),
            Err("t: no delay here, and VNET_TE_REQUIRE_DELAY=1 requires it".to_string())
        );
    }

    #[test]
    fn every_switch_is_distinct_and_exported_by_the_test_command() {
        let script = include_str!("../../deploy/test.sh");
        let mut seen = std::collections::HashSet::new();
        for r in Requirement::ALL {
            let var = r.env_var();
            assert!(seen.insert(var), "{var} twice");
            assert!(script.lines().any(|l| l.trim() == format!("export {var}=1")), "deploy/test.sh does not export {var}=1");
        }
    }
}
