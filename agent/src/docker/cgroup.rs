//! The cgroup vnet-te's containers run under, with a CPU weight of its own.
//!
//! Under Docker's `/docker` group (or systemd's `system.slice`) all containers together weigh
//! as much as one dockerd, containerd or runc thread; while a create starts dozens of
//! containers those threads starve the routers' FRR, and bgpd is late to listen. A group of
//! vnet-te's own with eight times the weight fixes that, wherever the machine lets it be made:
//!
//! | Docker's cgroup driver | hierarchy | the group                                              |
//! |------------------------|-----------|--------------------------------------------------------|
//! | cgroupfs               | v1        | `<root>/cpu/vnet-te`, `cpu.shares` 8192                 |
//! | cgroupfs               | v2        | `<root>/vnet-te`, `cpu.weight` 800 (cpu enabled below the root) |
//! | systemd                | v1 or v2  | the slice `vnet-te.slice`, `CPUWeight=800` through systemctl |
//!
//! Anything else, or a step that fails (a read-only /sys/fs/cgroup in docker-in-docker, no
//! cpu controller, no systemctl), leaves the containers where Docker puts them: the weight
//! helps, but nothing depends on it.

use std::path::Path;

use bollard::models::{SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum};
use bollard::Docker;

use super::LocalNode;

/// The cgroup (under each controller's root) that holds vnet-te's containers.
const CGROUP: &str = "vnet-te";
/// Its name as a systemd slice (Docker's systemd driver takes only slices as parents).
const SLICE: &str = "vnet-te.slice";
/// Eight times a process's (or Docker's own group's) weight at nice 0: cgroup v1 shares and
/// v2 weight (systemd's CPUWeight is the v2 scale on either hierarchy).
const CGROUP_CPU_SHARES: u32 = 8192;
const CGROUP_CPU_WEIGHT: u32 = 800;
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Docker's cgroup driver, as `docker info` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Driver {
    Cgroupfs,
    Systemd,
    /// Not reported, or one vnet-te does not know.
    Other,
}

/// The cgroup hierarchy, as `docker info` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hierarchy {
    V1,
    V2,
}

/// Makes (or finds) vnet-te's group under the cgroup tree at `root` and gives it its CPU
/// weight; returns Docker's `cgroup_parent` for it, or why there is none. `slice_weight` sets
/// the weight of a systemd slice (systemd owns the files under its driver).
fn prepare_at(
    root: &Path,
    driver: Driver,
    hierarchy: Hierarchy,
    slice_weight: &dyn Fn(&str, u32) -> Result<(), String>,
) -> Result<String, String> {
    let write = |path: &Path, value: String| {
        std::fs::write(path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let mkdir = |dir: &Path| std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()));
    match (driver, hierarchy) {
        (Driver::Cgroupfs, Hierarchy::V1) => {
            let cpu = root.join("cpu");
            if !cpu.is_dir() {
                return Err(format!("no cpu controller at {}", cpu.display()));
            }
            let dir = cpu.join(CGROUP);
            mkdir(&dir)?;
            write(&dir.join("cpu.shares"), CGROUP_CPU_SHARES.to_string())?;
            Ok(format!("/{CGROUP}"))
        }
        (Driver::Cgroupfs, Hierarchy::V2) => {
            let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            if !available.split_whitespace().any(|c| c == "cpu") {
                return Err(format!("the cpu controller is not available at {}", root.display()));
            }
            // A child has a cpu.weight only when its parent hands the controller down.
            let subtree = root.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&subtree).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == "cpu") {
                write(&subtree, "+cpu".to_string())?;
            }
            let dir = root.join(CGROUP);
            mkdir(&dir)?;
            write(&dir.join("cpu.weight"), CGROUP_CPU_WEIGHT.to_string())?;
            Ok(format!("/{CGROUP}"))
        }
        (Driver::Systemd, _) => {
            slice_weight(SLICE, CGROUP_CPU_WEIGHT)?;
            Ok(SLICE.to_string())
        }
        (Driver::Other, _) => Err("Docker reports no cgroup driver vnet-te knows".to_string()),
    }
}

/// Removes vnet-te's group under the cgroup tree at `root` once nothing is in it: the last
/// container of every path on the machine gone (the tree may be shared, as the nodes of a
/// local cluster share the machine's). A group with a child group (a container's, whichever
/// engine made it) stays; the kernel also refuses to remove one that still has processes.
/// Returns whether a group was removed. Under systemd's driver the slice is systemd's.
fn release_at(root: &Path, driver: Driver, hierarchy: Hierarchy) -> bool {
    let groups: Vec<std::path::PathBuf> = match (driver, hierarchy) {
        (Driver::Cgroupfs, Hierarchy::V2) => vec![root.join(CGROUP)],
        // Docker makes the parent under every controller it uses, not only cpu.
        (Driver::Cgroupfs, Hierarchy::V1) => {
            std::fs::read_dir(root).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join(CGROUP)).filter(|p| p.is_dir()).collect()).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let mut removed = false;
    for g in groups {
        let in_use = std::fs::read_dir(&g).map(|d| d.filter_map(|e| e.ok()).any(|e| e.path().is_dir())).unwrap_or(true);
        if in_use {
            continue;
        }
        match std::fs::remove_dir(&g) {
            Ok(()) => removed = true,
            Err(e) => tracing::debug!(group = %g.display(), error = %e, "vnet-te's cgroup stays"),
        }
    }
    removed
}

/// `systemctl set-property --runtime SLICE CPUWeight=W`: for this boot only, like the
/// containers under it.
fn systemctl_slice_weight(slice: &str, weight: u32) -> Result<(), String> {
    let out = std::process::Command::new("systemctl")
        .args(["set-property", "--runtime", slice, &format!("CPUWeight={weight}")])
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("systemctl set-property {slice}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The engine's cgroup driver and hierarchy (None with `VNET_TE_CGROUP=off`, which leaves the
/// containers where Docker puts them, to compare with and without the group).
async fn layout(docker: &Docker) -> Option<(Driver, Hierarchy)> {
    if std::env::var("VNET_TE_CGROUP").is_ok_and(|v| v == "off") {
        return None;
    }
    let info = docker.info().await.map_err(|e| tracing::debug!(error = %e, "docker info failed; no cgroup parent")).ok()?;
    let driver = match info.cgroup_driver {
        Some(SystemInfoCgroupDriverEnum::CGROUPFS) => Driver::Cgroupfs,
        Some(SystemInfoCgroupDriverEnum::SYSTEMD) => Driver::Systemd,
        _ => Driver::Other,
    };
    let hierarchy =
        if info.cgroup_version == Some(SystemInfoCgroupVersionEnum::_2) { Hierarchy::V2 } else { Hierarchy::V1 };
    Some((driver, hierarchy))
}

/// See the module documentation: made (again, when the last path took it away) and weighted.
fn prepare_cgroup(driver: Driver, hierarchy: Hierarchy) -> Option<String> {
    match prepare_at(Path::new(CGROUP_ROOT), driver, hierarchy, &systemctl_slice_weight) {
        Ok(parent) => {
            tracing::debug!(parent, ?driver, ?hierarchy, "containers run in vnet-te's weighted cgroup");
            Some(parent)
        }
        Err(why) => {
            tracing::debug!(?driver, ?hierarchy, why, "no cgroup of vnet-te's own; containers stay under Docker's");
            None
        }
    }
}

impl LocalNode {
    /// See `prepare_cgroup`: the engine is asked once per process, the group made (or found)
    /// for every container, as the last path's delete may have removed it.
    pub(super) async fn cgroup_parent(&self) -> Option<String> {
        let (driver, hierarchy) = (*self.cgroup_layout.get_or_init(|| layout(&self.docker)).await)?;
        prepare_cgroup(driver, hierarchy)
    }

    /// After a container went: removes vnet-te's group when nothing is left in it.
    pub(super) async fn release_cgroup(&self) {
        if let Some((driver, hierarchy)) = *self.cgroup_layout.get_or_init(|| layout(&self.docker)).await {
            if release_at(Path::new(CGROUP_ROOT), driver, hierarchy) {
                tracing::debug!("vnet-te's cgroup removed with the last container in it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup root in a temporary directory, removed on drop.
    struct FakeRoot(std::path::PathBuf);

    impl FakeRoot {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("vnet-te-cgroup-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            FakeRoot(dir)
        }

        fn file(&self, rel: &str, content: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }

        fn read(&self, rel: &str) -> Option<String> {
            std::fs::read_to_string(self.0.join(rel)).ok()
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn no_systemctl(_: &str, _: u32) -> Result<(), String> {
        panic!("systemctl is not for the cgroupfs driver")
    }

    #[test]
    fn the_group_goes_only_once_no_container_group_is_left_in_it() {
        let t = FakeRoot::new("release");
        for (hierarchy, groups) in [(Hierarchy::V2, vec!["vnet-te"]), (Hierarchy::V1, vec!["cpu/vnet-te", "memory/vnet-te", "pids/vnet-te"])] {
            for g in &groups {
                std::fs::create_dir_all(t.0.join(g).join("c1")).unwrap();
            }
            // Another engine's (or path's) container still in the group: it stays.
            assert!(!release_at(&t.0, Driver::Cgroupfs, hierarchy));
            assert!(groups.iter().all(|g| t.0.join(g).is_dir()), "{hierarchy:?}");
            for g in &groups {
                std::fs::remove_dir(t.0.join(g).join("c1")).unwrap();
            }
            assert!(release_at(&t.0, Driver::Cgroupfs, hierarchy), "{hierarchy:?}");
            assert!(groups.iter().all(|g| !t.0.join(g).exists()), "{hierarchy:?}");
            // Nothing to remove: nothing happens.
            assert!(!release_at(&t.0, Driver::Cgroupfs, hierarchy));
        }
        // systemd's slice is systemd's.
        std::fs::create_dir_all(t.0.join("vnet-te")).unwrap();
        assert!(!release_at(&t.0, Driver::Systemd, Hierarchy::V2));
        assert!(t.0.join("vnet-te").is_dir());
    }

    #[test]
    fn v1_cgroupfs_weights_a_group_under_the_cpu_controller() {
        let root = FakeRoot::new("v1");
        std::fs::create_dir_all(root.0.join("cpu")).unwrap();
        assert_eq!(prepare_at(&root.0, Driver::Cgroupfs, Hierarchy::V1, &no_systemctl), Ok("/vnet-te".to_string()));
        assert_eq!(root.read("cpu/vnet-te/cpu.shares").as_deref(), Some("8192"));
    }

    #[test]
    fn v2_cgroupfs_hands_the_cpu_controller_down_and_weights_the_group() {
        let root = FakeRoot::new("v2");
        root.file("cgroup.controllers", "cpuset cpu io memory pids\n");
        root.file("cgroup.subtree_control", "memory pids\n");
        assert_eq!(prepare_at(&root.0, Driver::Cgroupfs, Hierarchy::V2, &no_systemctl), Ok("/vnet-te".to_string()));
        assert_eq!(root.read("cgroup.subtree_control").as_deref(), Some("+cpu"), "cpu enabled for the children");
        assert_eq!(root.read("vnet-te/cpu.weight").as_deref(), Some("800"));
        assert!(root.read("cpu/vnet-te/cpu.shares").is_none(), "no v1 file on v2");

        // Already handed down: left as it is.
        let root = FakeRoot::new("v2-enabled");
        root.file("cgroup.controllers", "cpu memory\n");
        root.file("cgroup.subtree_control", "cpu memory\n");
        assert_eq!(prepare_at(&root.0, Driver::Cgroupfs, Hierarchy::V2, &no_systemctl), Ok("/vnet-te".to_string()));
        assert_eq!(root.read("cgroup.subtree_control").as_deref(), Some("cpu memory\n"));
    }

    #[test]
    fn v2_without_the_cpu_controller_steps_aside_and_says_so() {
        let root = FakeRoot::new("v2-nocpu");
        root.file("cgroup.controllers", "memory pids\n");
        let e = prepare_at(&root.0, Driver::Cgroupfs, Hierarchy::V2, &no_systemctl).unwrap_err();
        assert!(e.contains("cpu controller is not available"), "{e}");
        assert!(!root.0.join("vnet-te").exists(), "no group made");
    }

    #[test]
    fn systemd_weights_the_slice_through_systemd_on_either_hierarchy_and_writes_no_file() {
        for hierarchy in [Hierarchy::V1, Hierarchy::V2] {
            let root = FakeRoot::new(&format!("systemd-{hierarchy:?}"));
            let asked = std::sync::Mutex::new(Vec::new());
            let set = |slice: &str, weight: u32| {
                asked.lock().unwrap().push((slice.to_string(), weight));
                Ok(())
            };
            assert_eq!(prepare_at(&root.0, Driver::Systemd, hierarchy, &set), Ok("vnet-te.slice".to_string()));
            assert_eq!(*asked.lock().unwrap(), [("vnet-te.slice".to_string(), 800)]);
            assert_eq!(std::fs::read_dir(&root.0).unwrap().count(), 0, "systemd owns the files");

            let refuse = |_: &str, _: u32| Err("cannot run systemctl: No such file or directory".to_string());
            let e = prepare_at(&root.0, Driver::Systemd, hierarchy, &refuse).unwrap_err();
            assert!(e.contains("systemctl"), "{e}");
        }
    }

    #[test]
    fn a_tree_that_cannot_be_written_leaves_the_containers_where_docker_puts_them() {
        // v1: the group's place is taken by a file (as a read-only tree refuses the mkdir).
        let root = FakeRoot::new("ro-v1");
        root.file("cpu/vnet-te", "");
        let e = prepare_at(&root.0, Driver::Cgroupfs, Hierarchy::V1, &no_systemctl).unwrap_err();
        assert!(e.starts_with("cannot make ") && e.contains("cpu/vnet-te"), "{e}");
        // v2: the root refuses the controller (its subtree_control is a directory here).
        let root = FakeRoot::new("ro-v2");
        root.file("cgroup.controllers", "cpu\n");
        std::fs::create_dir_all(root.0.join("cgroup.subtree_control")).unwrap();
        let e = prepare_at(&root.0, Driver::Cgroupfs, Hierarchy::V2, &no_systemctl).unwrap_err();
        assert!(e.starts_with("cannot write ") && e.contains("cgroup.subtree_control"), "{e}");
        // v1 without a cpu controller mounted.
        let root = FakeRoot::new("v1-nocpu");
        let e = prepare_at(&root.0, Driver::Cgroupfs, Hierarchy::V1, &no_systemctl).unwrap_err();
        assert!(e.contains("no cpu controller"), "{e}");
        // A driver vnet-te does not know.
        assert!(prepare_at(&root.0, Driver::Other, Hierarchy::V2, &no_systemctl).is_err());
    }
}
