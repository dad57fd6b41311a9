//! A "LAN" for tests of hosts attached to a LAN of their node: a veth pair, one end on this
//! machine (the macvlan's parent), the other in a network namespace of the test's own, which
//! stands for a machine on that LAN. Never a real interface of the machine. Removed on drop,
//! whatever the outcome. Plain std, so that any test crate of the workspace can take it with
//! `#[path = ".../tests/common/lan.rs"] mod lan;`.
#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Output};

pub fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("running ip")
}

/// `ip ARGS`, which must succeed.
pub fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub struct Lan {
    /// The namespace, `<prefix>-lan-<id>`.
    pub ns: String,
    /// This machine's end, `<prefix>-<id>p`.
    pub parent: String,
    /// The other end, in `ns`.
    pub peer: String,
}

impl Lan {
    /// A LAN named after `prefix` and this process; both ends up, the namespace's loopback
    /// too. Err(why) where this machine cannot make network namespaces (not root).
    pub fn new(prefix: &str) -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let lan = Lan { ns: format!("{prefix}-lan-{id}"), parent: format!("{prefix}-{id}p"), peer: format!("{prefix}-{id}q") };
        // Left by an earlier run of the same process id that was killed before its drop.
        let _ = ip(&["link", "del", &lan.parent]);
        let _ = ip(&["netns", "del", &lan.ns]);
        let made = ip(&["netns", "add", &lan.ns]);
        if !made.status.success() {
            return Err(format!("cannot make a network namespace: {}", String::from_utf8_lossy(&made.stderr).trim()));
        }
        ip_ok(&["link", "add", &lan.parent, "type", "veth", "peer", "name", &lan.peer, "netns", &lan.ns]);
        ip_ok(&["link", "set", &lan.parent, "up"]);
        ip_ok(&["-n", &lan.ns, "link", "set", &lan.peer, "up"]);
        ip_ok(&["-n", &lan.ns, "link", "set", "lo", "up"]);
        Ok(lan)
    }

    /// A command in the namespace.
    pub fn run(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", &self.ns];
        args.extend_from_slice(cmd);
        ip(&args)
    }

    /// The unicast MAC addresses on the parent's address list other than its own: a macvlan
    /// on it puts its own there (`bridge fdb`).
    pub fn macs_on_parent(&self) -> Vec<String> {
        let out = Command::new("bridge").args(["fdb", "show", "dev", &self.parent]).output().expect("running bridge");
        assert!(out.status.success(), "bridge fdb: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            // Multicast entries (IPv4 01:00:5e…, IPv6 33:33…) are not devices.
            .filter(|mac| !mac.starts_with("01:00:5e") && !mac.starts_with("33:33"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting one end deletes the pair.
        let _ = ip(&["link", "del", &self.parent]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}
