//! The command line with input that is wrong or readers that leave early; no engine needed.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vnet-te")
}

fn scratch(name: &str) -> std::path::PathBuf {
    // One directory per file: the tests run in parallel and each removes its own.
    let dir = std::env::temp_dir().join(format!("vnet-te-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_spec_that_is_not_utf8_or_missing_is_bad_input() {
    let f = scratch("latin1.yaml");
    std::fs::write(&f, b"name: caf\xe9\nrouters: [{ name: r1 }]\n").unwrap();
    for cmd in ["plan", "create"] {
        let out = Command::new(bin()).args(["path", cmd, "-f", f.to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "path {cmd}: {err}");
        assert!(err.contains("latin1.yaml: not UTF-8 text (byte 9 is not valid UTF-8)"), "path {cmd}: {err}");
    }
    let missing = scratch("missing.yaml");
    let out = Command::new(bin()).args(["path", "plan", "-f", missing.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("missing.yaml: no such file"), "{err}");
    let _ = std::fs::remove_dir_all(f.parent().unwrap());
    let _ = std::fs::remove_dir_all(missing.parent().unwrap());
}

/// `vnet-te path plan | head -1`: the reader leaves after one line; the plan still exits 0
/// without a panic.
#[test]
fn path_plan_into_a_reader_that_leaves_early_exits_quietly() {
    for output in ["table", "json"] {
        let mut child = Command::new(bin())
            .args(["path", "plan", "--hops", "1000", "--verify", "control-plane", "--output", output])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{output}: {err}");
        assert_eq!(out.status.code(), Some(0), "{output}: {err}");
    }
}

#[test]
fn routers_cut_off_from_the_path_are_warned_about() {
    let f = scratch("islands.yaml");
    std::fs::write(&f, "name: isl\nrouters: [{ name: r1 }, { name: r2 }, { name: lone }]\nlinks: [{ a: r1, b: r2 }]\npath: [r1, r2]\n").unwrap();
    let out = Command::new(bin()).args(["path", "plan", "-f", f.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("warning: router lone is not joined to the path by any chain of links"), "{err}");
    let _ = std::fs::remove_dir_all(f.parent().unwrap());
}

/// `path plan` for this machine warns when the path would pass the kernel's neighbour table,
/// with the limit read from this machine's kernel, and plans a small path without a word.
#[test]
fn a_plan_past_this_machines_neighbour_table_is_warned_about() {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let limit: usize = read("/proc/sys/net/ipv4/neigh/default/gc_thresh3").trim().parse().unwrap();
    let in_use = || usize::from_str_radix(read("/proc/net/stat/arp_cache").lines().nth(1).unwrap().split_whitespace().next().unwrap(), 16).unwrap();
    let plan = |hops: usize| Command::new(bin()).args(["path", "plan", "--hops", &hops.to_string(), "--verify", "control-plane"]).output().unwrap();
    let warned = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).lines().find(|l| l.contains("neighbour entries")).map(str::to_string);

    if limit - in_use().min(limit) > 100 {
        let out = plan(2);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(warned(&out), None, "a 2-hop path fits a table of {limit}");
    }
    // A chain of H hops needs 2H + 2 entries: both ends of each link and of each LAN.
    let hops = 2000;
    let need = 2 * hops + 2;
    if need <= limit {
        common::skip::skip(
            "a_plan_past_this_machines_neighbour_table_is_warned_about",
            &format!("this machine's neighbour table allows {limit} entries, more than the {need} of the longest path"),
        );
        return;
    }
    let out = plan(hops);
    assert_eq!(out.status.code(), Some(0), "a warning, not an error");
    let w = warned(&out).unwrap_or_else(|| panic!("no warning: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(w.starts_with(&format!("warning: path 'chain{hops}' needs {need} neighbour entries on node local, ")), "{w}");
    assert!(w.contains(&format!(" the kernel allows {limit} ")) && w.contains("sysctl -w net.ipv4.neigh.default.gc_thresh1="), "{w}");
}
