//! The cgroup vnet-te's containers run under, with a CPU weight of its own.

use bollard::Docker;

use super::LocalNode;

/// The cgroup (under each controller's root) that holds vnet-te's containers.
const CGROUP: &str = "vnet-te";
/// Its CPU weight: eight times a process's (or Docker's own group's) at nice 0, cgroup v1
/// shares and v2 weight. Under Docker's `/docker` group all containers together weigh as much
/// as one dockerd, containerd or runc thread; while a create starts dozens of containers
/// those threads starve the routers' FRR, and bgpd is late to listen.
const CGROUP_CPU_SHARES: u32 = 8192;
const CGROUP_CPU_WEIGHT: u32 = 800;

/// Makes (or finds) the `vnet-te` cgroup with its CPU weight and returns its path for Docker's
/// `cgroup_parent`. Only with Docker's `cgroupfs` driver (with systemd's, the parent would be a
/// slice: left as Docker has it), and never fatal: where the cgroup cannot be made or weighted
/// (a read-only /sys/fs/cgroup in docker-in-docker, say), containers stay where Docker puts
/// them. `VNET_TE_CGROUP=off` leaves them there too (to compare with and without it).
async fn prepare_cgroup(docker: &Docker) -> Option<String> {
    if std::env::var("VNET_TE_CGROUP").is_ok_and(|v| v == "off") {
        return None;
    }
    let info = docker.info().await.map_err(|e| tracing::debug!(error = %e, "docker info failed; no cgroup parent")).ok()?;
    if info.cgroup_driver != Some(bollard::models::SystemInfoCgroupDriverEnum::CGROUPFS) {
        tracing::debug!(driver = ?info.cgroup_driver, "not the cgroupfs driver; no cgroup parent");
        return None;
    }
    let v2 = info.cgroup_version == Some(bollard::models::SystemInfoCgroupVersionEnum::_2);
    let r = if v2 {
        let dir = std::path::Path::new("/sys/fs/cgroup").join(CGROUP);
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("cpu.weight"), CGROUP_CPU_WEIGHT.to_string()))
    } else {
        let dir = std::path::Path::new("/sys/fs/cgroup/cpu").join(CGROUP);
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("cpu.shares"), CGROUP_CPU_SHARES.to_string()))
    };
    match r {
        Ok(()) => Some(format!("/{CGROUP}")),
        Err(e) => {
            tracing::debug!(error = %e, "cannot prepare the vnet-te cgroup; containers stay under Docker's");
            None
        }
    }
}

impl LocalNode {
    /// See `prepare_cgroup`; prepared once per process.
    pub(super) async fn cgroup_parent(&self) -> Option<String> {
        self.cgroup_parent.get_or_init(|| prepare_cgroup(&self.docker)).await.clone()
    }
}
