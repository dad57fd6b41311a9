//! FRR's own parser must accept every golden `frr.conf` and `zebra.conf`: `vtysh --dryrun -f FILE` exits
//! non-zero and names the line for anything FRR 8.4 would reject.
//!
//! Needs Debian's `frr` package on the machine. Without it the test reports a skip (and
//! fails when VNET_TE_REQUIRE_FRR=1, as CI sets it).

#[path = "common/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;

use skip::{skip_or_fail, Requirement};

fn golden_frr_confs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            golden_frr_confs(&p, out);
        } else if p.file_name().is_some_and(|n| n == "frr.conf" || n == "zebra.conf") {
            out.push(p);
        }
    }
}

fn vtysh() -> Option<PathBuf> {
    ["/usr/bin/vtysh", "/usr/local/bin/vtysh"].iter().map(PathBuf::from).find(|p| p.exists())
}

#[test]
fn frr_accepts_every_golden_config() {
    let Some(vtysh) = vtysh() else {
        skip_or_fail("frr_accepts_every_golden_config", Requirement::Frr, "vtysh not found (install Debian's frr package)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/golden");
    let mut confs = Vec::new();
    golden_frr_confs(&root, &mut confs);
    confs.sort();
    assert!(confs.len() >= 20, "expected golden frr.conf files, found {}", confs.len());
    let mut rejected = Vec::new();
    for c in &confs {
        let out = Command::new(&vtysh).arg("--dryrun").arg("-f").arg(c).output().unwrap();
        if !out.status.success() {
            rejected.push(format!(
                "{}: {}{}",
                c.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(rejected.is_empty(), "FRR rejected:\n{}", rejected.join("\n"));
    eprintln!("FRR accepted {} golden configs", confs.len());
}

/// The check itself must be able to fail: a config with a typo is rejected.
#[test]
fn frr_dry_run_rejects_a_bad_line() {
    let Some(vtysh) = vtysh() else {
        skip_or_fail("frr_dry_run_rejects_a_bad_line", Requirement::Frr, "vtysh not found");
        return;
    };
    let dir = std::env::temp_dir().join(format!("vnet-te-frrcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("frr.conf");
    std::fs::write(&bad, "router bgp 65001\n neighbor 10.0.0.1 remote-as 65002\n neighbor 10.0.0.1 timrs connect 1\nexit\n").unwrap();
    let out = Command::new(&vtysh).arg("--dryrun").arg("-f").arg(&bad).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!out.status.success(), "vtysh accepted a bad line");
}

/// staticd reads `frr.conf` itself (the routers start their daemons directly): the lines of
/// `frr.conf` that staticd refused, with their text (`No such command on config line N`).
fn staticd_refused(staticd: &Path, conf: &Path) -> Vec<String> {
    let out = Command::new(staticd).args(["-C", "-F", "datacenter", "-f"]).arg(conf).output().unwrap();
    let text = std::fs::read_to_string(conf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter_map(|l| l.split_once("No such command on config line ").and_then(|(_, n)| n.split_once(':')))
        .filter_map(|(n, _)| n.parse::<usize>().ok())
        .map(|n| lines.get(n - 1).copied().unwrap_or_default().to_string())
        .collect()
}

const STATICD: &str = "/usr/lib/frr/staticd";

/// Every static route of a router with static routes (`staticd=yes`) is one staticd takes
/// from `frr.conf`; the other lines are other daemons' and staticd skips them.
#[test]
fn staticd_takes_every_static_route_of_the_golden_configs() {
    let staticd = Path::new(STATICD);
    if !staticd.exists() {
        skip_or_fail("staticd_takes_every_static_route_of_the_golden_configs", Requirement::Frr, "staticd not found");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/golden");
    let mut confs = Vec::new();
    golden_frr_confs(&root, &mut confs);
    let with_statics: Vec<PathBuf> = confs
        .into_iter()
        .filter(|c| c.ends_with("frr.conf"))
        .filter(|c| std::fs::read_to_string(c.with_file_name("daemons")).is_ok_and(|d| d.contains("staticd=yes")))
        .collect();
    assert!(!with_statics.is_empty(), "expected a golden router with static routes");
    for c in &with_statics {
        let routes = std::fs::read_to_string(c).unwrap().lines().filter(|l| l.starts_with("ip route ")).count();
        assert!(routes > 0, "{}: staticd=yes without a static route", c.display());
        let refused: Vec<String> = staticd_refused(staticd, c).into_iter().filter(|l| l.starts_with("ip route ")).collect();
        assert!(refused.is_empty(), "{}: staticd refused {refused:?}", c.display());
    }
}

/// The check can fail: a static route after a block staticd does not know is refused.
#[test]
fn staticd_refuses_a_static_route_after_an_unknown_block() {
    let staticd = Path::new(STATICD);
    if !staticd.exists() {
        skip_or_fail("staticd_refuses_a_static_route_after_an_unknown_block", Requirement::Frr, "staticd not found");
        return;
    }
    let dir = std::env::temp_dir().join(format!("vnet-te-staticd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("frr.conf");
    std::fs::write(&conf, "router bgp 65001
 bgp router-id 10.0.0.1
exit
!
ip route 10.9.0.0/24 10.0.0.2
").unwrap();
    let refused = staticd_refused(staticd, &conf);
    std::fs::remove_dir_all(&dir).ok();
    assert!(refused.iter().any(|l| l.starts_with("ip route ")), "{refused:?}");
}

fn golden_vyos_commands(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            golden_vyos_commands(&p, out);
        } else if p.file_name().is_some_and(|n| n == "vyos.commands") {
            out.push(p);
        }
    }
}

/// No VyOS image runs here: every golden VyOS command file is checked against VyOS 1.4's own
/// CLI schema instead (`vyos_check.py` beside the repository, `../shared/tools/vyos/`, or
/// where VNET_TE_VYOS_CHECK_DIR points): each path word exists and each value passes its
/// constraint.
#[test]
fn vyos_1_4_schema_accepts_every_golden_command_file() {
    let test = "vyos_1_4_schema_accepts_every_golden_command_file";
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = std::env::var_os("VNET_TE_VYOS_CHECK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.parent().unwrap().join("shared/tools/vyos"));
    let (tool, schema) = (dir.join("vyos_check.py"), dir.join("vyos-schema-1.4.json"));
    if !tool.exists() || !schema.exists() {
        skip_or_fail(test, Requirement::VyosCheck, &format!("{} or its schema not found", tool.display()));
        return;
    }
    let mut files = Vec::new();
    golden_vyos_commands(&repo.join("tests/golden"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "expected golden vyos.commands files");
    let out = Command::new("python3")
        .arg(&tool)
        .arg("--schema-json")
        .arg(&schema)
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("running python3 {}: {e}", tool.display()));
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "VyOS 1.4 refuses rendered commands:\n{report}");
    assert!(report.contains(" 0 invalid"), "{report}");
}
