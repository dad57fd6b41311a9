//! FRR in the routers: `show` reads, configuration changes, and waiting for bgpd to listen.

use std::time::Duration;

use crate::frr::{BgpSummary, BgpTable, EvpnRoutes, EvpnVnis};
use crate::node::{FileSpec, NodeError, NodeResult};
use crate::{netns, vty};

use super::LocalNode;

const BGP_PORT: u16 = 179;

impl LocalNode {
    /// A fixed `show` command on a router's FRR daemon: through the daemon's socket when the
    /// node can reach it (see `vty`), else through `docker exec vtysh`. The daemon's status
    /// byte is not judged, as vtysh's exit code is not: the parsers judge the output.
    pub(super) async fn frr_show(&self, router: &str, daemon: vty::Daemon, command: &'static str, doing: &str) -> NodeResult<String> {
        let pid = self.pid_of(router, &|| doing.to_string()).await?;
        match vty::show(pid, daemon, command).await {
            Ok(out) | Err(vty::VtyError::Refused { output: out, .. }) => Ok(out),
            Err(e @ vty::VtyError::Io { .. }) => Err(NodeError::Failed { doing: doing.to_string(), message: e.to_string() }),
            Err(e @ vty::VtyError::Unreachable { .. }) => {
                tracing::debug!(router, error = %e, "vty socket not reachable; using docker exec");
                Ok(self.exec(router, &["vtysh", "-c", command], doing).await?.1)
            }
        }
    }
}

pub(super) async fn bgp_table(node: &LocalNode, router: &str) -> NodeResult<BgpTable> {
    let out = node.frr_show(router, vty::Daemon::Bgpd, "show bgp ipv4 unicast json", &format!("reading the BGP table of {router}")).await?;
    Ok(BgpTable::parse(&out)?)
}

pub(super) async fn bgp_table6(node: &LocalNode, router: &str) -> NodeResult<BgpTable> {
    let out = node.frr_show(router, vty::Daemon::Bgpd, "show bgp ipv6 unicast json", &format!("reading the IPv6 BGP table of {router}")).await?;
    Ok(BgpTable::parse(&out)?)
}

pub(super) async fn bgp_summary(node: &LocalNode, router: &str) -> NodeResult<BgpSummary> {
    let out = node.frr_show(router, vty::Daemon::Bgpd, "show bgp summary json", &format!("reading BGP sessions of {router}")).await?;
    Ok(BgpSummary::parse(&out)?)
}

pub(super) async fn bgp_evpn_routes(node: &LocalNode, router: &str) -> NodeResult<EvpnRoutes> {
    let out = node
        .frr_show(router, vty::Daemon::Bgpd, "show bgp l2vpn evpn json", &format!("reading the EVPN routes of {router}"))
        .await?;
    Ok(EvpnRoutes::parse(&out)?)
}

pub(super) async fn evpn_vnis(node: &LocalNode, router: &str) -> NodeResult<EvpnVnis> {
    let out = node
        .frr_show(router, vty::Daemon::Zebra, "show evpn vni json", &format!("reading the EVPN VNIs of {router}"))
        .await?;
    Ok(EvpnVnis::parse(&out)?)
}

pub(super) async fn apply_config(node: &LocalNode, router: &str, config: &str, remove: &str) -> NodeResult<()> {
    const REMOVE_PATH: &str = "/etc/vnet-te/frr-remove.conf";
    let doing = format!("applying the new FRR configuration to {router}");
    node.upload(
        router,
        &[
            FileSpec { path: "/etc/frr/frr.conf".into(), mode: 0o644, content: config.to_string() },
            FileSpec { path: REMOVE_PATH.into(), mode: 0o644, content: remove.to_string() },
        ],
    )
    .await?;
    if !remove.trim().is_empty() {
        // Lines already gone (an operator removed them by hand) make vtysh complain;
        // that is the state wanted, so only the full config's result counts.
        let (code, out) = node.exec(router, &["vtysh", "-f", REMOVE_PATH], &doing).await?;
        if code != 0 {
            tracing::debug!(router, code, output = %out.trim(), "removal lines partly absent");
        }
    }
    let (code, out) = node.exec(router, &["vtysh", "-f", "/etc/frr/frr.conf"], &doing).await?;
    if code != 0 {
        return Err(NodeError::Failed { doing, message: format!("vtysh -f exited {code}: {}", out.trim()) });
    }
    // Re-run inbound policy now instead of after FRR's route-map delay timer.
    node.exec(router, &["vtysh", "-c", "clear bgp ipv4 unicast * soft in"], &doing).await?;
    Ok(())
}

pub(super) async fn wait_bgpd(node: &LocalNode, router: &str, within_secs: u32) -> NodeResult<bool> {
    let doing = || format!("waiting for bgpd in {router}");
    let pid = node.pid_of(router, &doing).await?;
    // The namespace's listeners over sock_diag (a few system calls); where that cannot be
    // had (no setns right, no inet_diag in the kernel), /proc/<pid>/net/tcp, which walks
    // the kernel's whole connection table, polled less often.
    let mut probe = match netns::ListenProbe::new(pid) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::debug!(router, error = %e, "no sock_diag probe; reading /proc/{pid}/net/tcp");
            None
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(within_secs.min(60).into());
    loop {
        // bgpd listens once zebra has told it about the default VRF, a little after
        // its vty socket appears (a connection tried in between is refused, and bgpd
        // tries again only a second later).
        let listening = match probe.as_mut().map(|p| p.listening(BGP_PORT)) {
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                tracing::debug!(router, error = %e, "sock_diag failed; reading /proc/{pid}/net/tcp");
                probe = None;
                false
            }
            None => ["tcp", "tcp6"].iter().any(|f| {
                std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).is_ok_and(|t| netns::proc_net_listening(&t, BGP_PORT))
            }),
        };
        if listening {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(if probe.is_some() { 10 } else { 50 })).await;
    }
}
