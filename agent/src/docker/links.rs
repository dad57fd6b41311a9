//! Direct links: veth pairs between containers and VXLAN tunnels to other nodes, made over
//! netlink straight into the containers' namespaces.

use std::time::Duration;

use crate::node::{MacvlanSpec, NodeError, NodeResult, VethSpec, VxlanSpec};
use crate::{netns, vty};

use super::LocalNode;
use crate::delay::units::check_ifname;

/// How long the connecting end of a veth link waits for zebra to address the listening end
/// (see `VethSpec::b_listens`) before it joins anyway: a slow zebra then costs a session
/// retry, never the link.
const LISTENER_ADDRESS_WAIT: Duration = Duration::from_secs(3);

/// How long a VXLAN link waits for its identifier to be free. A path removed moments ago
/// keeps its tunnels (and their VNIs on the node's UDP port) until the kernel has torn down
/// the containers' namespaces, which on a busy node takes seconds after the containers are
/// gone; a path that reuses the subnets, and so the VNIs, would otherwise fail with EEXIST.
const VNI_FREE_WAIT: Duration = Duration::from_secs(20);

/// Sends one RTM_NEWLINK from this process's network namespace.
async fn netlink_add(msg: rtnetlink::packet_route::link::LinkMessage, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<()> {
    netns::here(|handle| async move { handle.link().add(msg).execute().await.map_err(std::io::Error::other) }).await.map_err(|e| {
        let m = e.to_string();
        let message = if m.contains("Operation not permitted") || m.contains("EPERM") {
            format!("{m}: making links needs CAP_NET_ADMIN on the node (run as root, or use `wiring: docker`)")
        } else {
            m
        };
        NodeError::Failed { doing: doing(), message }
    })
}

/// Finishes a link end just made in the namespace of `pid`: ARP retries every 0.1 s there
/// (see `netns::enter`), then, when vnet-te addresses it, its address and up.
async fn link_end(pid: u32, ifname: &str, address: Option<ipnet::Ipv4Net>, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<()> {
    let fail = |message: String| NodeError::Failed { doing: doing(), message };
    let conn = netns::enter(pid, ifname, address.is_some()).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(1) {
            ": addressing links needs CAP_SYS_ADMIN and CAP_NET_ADMIN on the node (run as root, or use `wiring: docker`)"
        } else {
            ""
        };
        fail(format!("{ifname} in the namespace of process {pid}: {e}{hint}"))
    })?;
    let (Some((handle, driver)), Some(address)) = (conn, address) else { return Ok(()) };
    let r = netns::address_and_up(&handle, ifname, address).await;
    driver.abort();
    r.map_err(|e| fail(format!("{ifname} {address}: {e}")))
}

/// Waits until zebra in the container of `pid` has announced an IPv4 address on `ifname` to
/// its daemons: zebra lists an interface's IPv4 addresses (`show interface json`) only once
/// the kernel has confirmed them, in the same step that sends them to bgpd. The kernel alone
/// is not enough: it shows the address while zebra has yet to read it, and a session accepted
/// then is reset. Without zebra's socket (not FRR), the kernel's word is taken. Polls every
/// 5 ms; false at `within`.
async fn zebra_announced(pid: u32, ifname: &str, within: Duration) -> std::io::Result<bool> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match vty::show(pid, vty::Daemon::Zebra, "show interface json").await {
            Ok(out) => {
                if interface_has_ipv4(&out, ifname) {
                    return Ok(true);
                }
            }
            Err(vty::VtyError::Unreachable { .. }) => {
                return netns::wait_ipv4(pid, ifname, deadline.saturating_duration_since(tokio::time::Instant::now())).await
            }
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether zebra's `show interface json` lists an IPv4 address on `ifname`.
fn interface_has_ipv4(json: &str, ifname: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return false };
    v.get(ifname).and_then(|i| i.get("ipAddresses")).and_then(|a| a.as_array()).is_some_and(|addrs| {
        addrs.iter().any(|a| a.get("address").and_then(|s| s.as_str()).is_some_and(|s| s.parse::<ipnet::Ipv4Net>().is_ok()))
    })
}

/// A name for a veth end while it waits in this process's namespace: unique per process
/// and link, `vtx` + 12 hex digits (15 characters, the kernel's limit).
fn staging_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("vtx{:06x}{:06x}", std::process::id() & 0xff_ffff, n & 0xff_ffff)
}

pub(super) async fn vxlan(node: &LocalNode, link: &VxlanSpec) -> NodeResult<()> {
    use rtnetlink::LinkVxlan;
    let doing = || format!("linking {}:{} to {} (VXLAN {})", link.container, link.ifname, link.remote, link.vni);
    let pid = node.pid_of(&link.container, &doing).await?;
    // Created from this (the node's) namespace, whose network carries the UDP, and
    // placed straight into the container's.
    let message = || {
        let mut msg = LinkVxlan::new(&link.ifname, link.vni).local(link.local).remote(link.remote).port(link.port).learning(false).setns_by_pid(pid);
        if let Some(mtu) = link.mtu {
            msg = msg.mtu(mtu);
        }
        msg.build()
    };
    let deadline = tokio::time::Instant::now() + VNI_FREE_WAIT;
    loop {
        match netlink_add(message(), &doing).await {
            Err(NodeError::Failed { message: m, .. }) if exists(&m) && tokio::time::Instant::now() >= deadline => {
                let why = format!(
                    "{m}: VXLAN identifier {} on UDP port {} stayed taken for {} s (a tunnel of another path on this node, \
                     or one the kernel has not yet freed), or {} already has an interface {}",
                    link.vni,
                    link.port,
                    VNI_FREE_WAIT.as_secs(),
                    link.container,
                    link.ifname
                );
                return Err(NodeError::Failed { doing: doing(), message: why });
            }
            Err(NodeError::Failed { message: m, .. }) if exists(&m) => tokio::time::sleep(Duration::from_millis(200)).await,
            r => break r?,
        }
    }
    link_end(pid, &link.ifname, link.address, &doing).await
}

/// Whether a netlink error is EEXIST, as rtnetlink words it.
fn exists(message: &str) -> bool {
    message.contains("File exists") || message.contains("EEXIST")
}

/// The node's own interface names.
pub(super) async fn own_interfaces() -> NodeResult<Vec<String>> {
    netns::names_here().await.map_err(|e| NodeError::Failed { doing: "listing the node's interfaces".into(), message: e.to_string() })
}

pub(super) async fn macvlan(node: &LocalNode, link: &MacvlanSpec) -> NodeResult<()> {
    use rtnetlink::packet_route::link::MacVlanMode;
    use rtnetlink::LinkMacVlan;
    let doing = || format!("attaching {}:{} to the LAN of {} (macvlan)", link.container, link.ifname, link.parent);
    let refuse = |message: String| NodeError::Refused { doing: doing(), message };
    super::delay::check_container(&link.container).map_err(refuse)?;
    check_ifname(&link.ifname).map_err(refuse)?;
    check_ifname(&link.parent).map_err(refuse)?;
    let pid = node.pid_of(&link.container, &doing).await?;
    let parent = netns::index_here(&link.parent).await.map_err(|e| {
        let missing = e.kind() == std::io::ErrorKind::NotFound || e.to_string().contains("No such device");
        let message = if missing { format!("no interface '{}' on node {}", link.parent, node.name) } else { e.to_string() };
        NodeError::Failed { doing: doing(), message }
    })?;
    // Bridge mode: the node's other macvlans on the same parent (another path's hosts) are
    // on the LAN too. Created from the node's namespace, where the parent is, straight into
    // the container's.
    let msg = LinkMacVlan::new(&link.ifname, parent, MacVlanMode::Bridge).setns_by_pid(pid).build();
    netlink_add(msg, &doing).await?;
    link_end(pid, &link.ifname, Some(link.address), &doing).await
}

pub(super) async fn remove_macvlans(node: &LocalNode, container: &str) -> NodeResult<()> {
    let doing = || format!("removing the macvlans of {container}");
    super::delay::check_container(container).map_err(|message| NodeError::Refused { doing: doing(), message })?;
    let pid = match node.pid_of(container, &doing).await {
        Ok(pid) => pid,
        Err(NodeError::NotRunning { .. }) => return Ok(()),
        Err(NodeError::Docker { source, .. }) if super::is_status(&source, 404) => return Ok(()),
        Err(e) => return Err(e),
    };
    let removed = netns::delete_macvlans(pid).await.map_err(|e| NodeError::Failed { doing: doing(), message: e.to_string() })?;
    tracing::debug!(container, ?removed, "macvlans removed");
    Ok(())
}

pub(super) async fn veth(node: &LocalNode, link: &VethSpec) -> NodeResult<()> {
    use rtnetlink::packet_route::link::{InfoData, InfoVeth};
    use rtnetlink::{LinkUnspec, LinkVeth};
    let doing = || {
        format!(
            "linking {}:{} and {}:{} (veth)",
            link.a.container, link.a.ifname, link.b.container, link.b.ifname
        )
    };
    let (pa, pb) = tokio::try_join!(node.pid_of(&link.a.container, &doing), node.pid_of(&link.b.container, &doing))?;
    // Both ends are created directly in their containers' namespaces (IFLA_NET_NS_PID
    // on the link and on its peer), under their final names: nothing appears on the host.
    // With `b_listens`, `a` waits in this process's namespace under a passing name.
    let staged = link.b_listens.then(staging_name);
    let mut peer = LinkUnspec::new_with_name(&link.b.ifname).setns_by_pid(pb);
    let mut msg = match &staged {
        Some(name) => LinkVeth::new(name, &link.b.ifname),
        None => LinkVeth::new(&link.a.ifname, &link.b.ifname).setns_by_pid(pa),
    };
    if let Some(mtu) = link.mtu {
        peer = peer.mtu(mtu);
        msg = msg.mtu(mtu);
    }
    let msg = msg.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build()))).build();
    netlink_add(msg, &doing).await?;
    let Some(staged) = staged else {
        // Each end: ARP tuned, then (if vnet-te addresses it) address first, then up, so
        // an end that is up is addressed.
        tokio::try_join!(link_end(pa, &link.a.ifname, link.a.address, &doing), link_end(pb, &link.b.ifname, link.b.address, &doing))?;
        return Ok(());
    };
    let joined = async {
        link_end(pb, &link.b.ifname, link.b.address, &doing).await?;
        // zebra addresses `b`; its carrier stays down until `a` is up on the other side.
        match zebra_announced(pb, &link.b.ifname, LISTENER_ADDRESS_WAIT).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(link = %doing(), "no address on the listening end in time; joining anyway"),
            Err(e) => tracing::debug!(link = %doing(), error = %e, "cannot watch the listening end's address; joining anyway"),
        }
        netns::move_into(&staged, pa, &link.a.ifname).await.map_err(|e| NodeError::Failed { doing: doing(), message: e.to_string() })?;
        link_end(pa, &link.a.ifname, link.a.address, &doing).await
    }
    .await;
    if joined.is_err() {
        // Removing the waiting end removes the pair (a no-op once it has moved: the
        // container's end then goes with the container).
        let _ = netns::delete_here(&staged).await;
    }
    joined
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_eexist_makes_a_vxlan_link_wait() {
        assert!(exists("Received a netlink error message File exists (os error 17)"));
        assert!(!exists("Received a netlink error message Operation not permitted (os error 1)"));
        assert!(!exists("Received a netlink error message No such device (os error 19)"));
    }

    #[test]
    fn an_interface_counts_as_addressed_only_with_an_ipv4_address_in_zebras_list() {
        // The shape of FRR 8.4's `show interface json` (trimmed).
        let json = r#"{
            "eth0": {"administrativeStatus": "up", "ipAddresses": [{"address": "10.199.0.2/29", "secondary": false}]},
            "eth1": {"administrativeStatus": "up", "ipAddresses": []},
            "eth2": {"ipAddresses": [{"address": "fe80::1/64", "secondary": false}]}
        }"#;
        assert!(interface_has_ipv4(json, "eth0"));
        assert!(!interface_has_ipv4(json, "eth1"));
        assert!(!interface_has_ipv4(json, "eth2"));
        assert!(!interface_has_ipv4(json, "eth3"));
        assert!(!interface_has_ipv4("% Unknown command", "eth0"));
    }

    #[test]
    fn staging_names_fit_the_kernel_and_differ() {
        let (a, b) = (staging_name(), staging_name());
        assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
        assert_ne!(a, b);
    }
}
