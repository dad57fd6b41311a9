//! The command line with input that is wrong or readers that leave early; no engine needed.

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
