//! Netlink inside a running container's network namespace: addresses on the links vnet-te
//! makes there, and whether something listens on a TCP port there.

use std::io;
use std::os::fd::AsFd;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, TokioSocket};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo};
use rtnetlink::{Handle, LinkUnspec};

#[cfg(test)]
#[path = "../../tests/common/skip.rs"]
mod skip;

/// ARP on a new link: ask again after 0.1 s instead of 1 s, ten times before giving up. A
/// BGP neighbour whose zebra addresses its end a moment after the link appears then answers
/// the second request instead of one a second later.
const ARP_TUNING: &[(&str, &str)] = &[("retrans_time_ms", "100"), ("mcast_solicit", "10")];

/// Runs `f` on a thread of its own inside the network namespace of process `pid` (host PID).
/// Sockets made there keep that namespace; the thread then ends, so no runtime thread ever
/// changes its own.
pub(crate) fn in_namespace<T: Send + 'static>(pid: u32, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Tunes ARP on interface `ifname` in the namespace of process `pid` (/proc/sys/net is per
/// namespace, as the opener sees it) and, with `netlink`, returns a netlink connection bound
/// to that namespace (and the task that drives it). Without `netlink` the tuning is only a
/// speed-up: a namespace that cannot be entered is left as it is.
pub async fn enter(pid: u32, ifname: &str, netlink: bool) -> io::Result<Option<(Handle, tokio::task::JoinHandle<()>)>> {
    let runtime = tokio::runtime::Handle::current();
    let ifname = ifname.to_string();
    let socket = in_namespace(pid, move || -> io::Result<Option<TokioSocket>> {
        for (knob, value) in ARP_TUNING {
            let path = format!("/proc/sys/net/ipv4/neigh/{ifname}/{knob}");
            if let Err(e) = std::fs::write(&path, value) {
                tracing::debug!(%path, error = %e, "ARP left as it is");
            }
        }
        netlink.then(|| route_socket(&runtime)).transpose()
    });
    let socket = match socket {
        Ok(s) => s,
        Err(e) if !netlink => {
            tracing::debug!(pid, error = %e, "cannot enter the namespace; ARP left as it is");
            None
        }
        Err(e) => return Err(e),
    };
    Ok(socket.map(drive))
}

/// A NETLINK_ROUTE socket in the calling thread's namespace, registered with `runtime`.
fn route_socket(runtime: &tokio::runtime::Handle) -> io::Result<TokioSocket> {
    let _rt = runtime.enter();
    let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
    socket.socket_mut().bind_auto()?;
    Ok(socket)
}

fn drive(socket: TokioSocket) -> (Handle, tokio::task::JoinHandle<()>) {
    let (conn, handle, _) = rtnetlink::from_socket(socket);
    (handle, tokio::spawn(conn))
}

/// Runs `f` with a netlink connection in this process's network namespace, then closes it.
pub async fn here<T, F, Fut>(f: F) -> io::Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let (conn, handle, _) = rtnetlink::new_connection()?;
    with_connection((handle, tokio::spawn(conn)), f).await
}

/// Runs `f` with a netlink connection bound to the namespace of process `pid`, then closes it.
async fn in_pid<T, F, Fut>(pid: u32, f: F) -> io::Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let runtime = tokio::runtime::Handle::current();
    let conn = in_namespace(pid, move || route_socket(&runtime)).map(drive)?;
    with_connection(conn, f).await
}

async fn with_connection<T, F, Fut>((handle, driver): (Handle, tokio::task::JoinHandle<()>), f: F) -> io::Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let r = f(handle).await;
    driver.abort();
    r
}

/// Gives interface `ifname` (in the namespace of `handle`) `address` and brings it up.
pub async fn address_and_up(handle: &Handle, ifname: &str, address: Ipv4Net) -> io::Result<()> {
    let index = index_of(handle, ifname).await?;
    handle.address().add(index, address.addr().into(), address.prefix_len()).execute().await.map_err(io::Error::other)?;
    handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(io::Error::other)
}

/// Waits until interface `ifname` in the namespace of process `pid` carries an IPv4
/// address (someone else, zebra, adds it), polling every 5 ms; false at `within`.
pub async fn wait_ipv4(pid: u32, ifname: &str, within: std::time::Duration) -> io::Result<bool> {
    in_pid(pid, |handle| async move {
        let index = index_of(&handle, ifname).await?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut addrs = handle.address().get().set_link_index_filter(index).execute();
            while let Some(a) = addrs.try_next().await.map_err(io::Error::other)? {
                if a.header.family == rtnetlink::packet_route::AddressFamily::Inet {
                    return Ok(true);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Moves interface `name` from this process's namespace into that of process `pid`,
/// renamed `ifname` on the way (one RTM_SETLINK: it appears there under its final name).
pub async fn move_into(name: &str, pid: u32, ifname: &str) -> io::Result<()> {
    here(|handle| async move {
        let index = index_of(&handle, name).await?;
        let msg = LinkUnspec::new_with_index(index).setns_by_pid(pid).name(ifname.to_string()).build();
        handle.link().set(msg).execute().await.map_err(|e| io::Error::other(format!("moving {name} in as {ifname}: {e}")))
    })
    .await
}

/// Deletes interface `name` in this process's namespace, if it is there.
pub async fn delete_here(name: &str) -> io::Result<()> {
    here(|handle| async move {
        let index = index_of(&handle, name).await?;
        handle.link().del(index).execute().await.map_err(io::Error::other)
    })
    .await
}

/// The names of the interfaces in this process's namespace.
pub async fn names_here() -> io::Result<Vec<String>> {
    here(|handle| async move {
        let mut names = Vec::new();
        let mut links = handle.link().get().execute();
        while let Some(l) = links.try_next().await.map_err(io::Error::other)? {
            names.extend(l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            }));
        }
        Ok(names)
    })
    .await
}

/// The index of interface `name` in this process's namespace.
pub async fn index_here(name: &str) -> io::Result<u32> {
    here(|handle| async move { index_of(&handle, name).await }).await
}

/// Deletes every macvlan in the namespace of process `pid`; returns their names.
pub async fn delete_macvlans(pid: u32) -> io::Result<Vec<String>> {
    in_pid(pid, |handle| async move {
        let mut found = Vec::new();
        let mut links = handle.link().get().execute();
        while let Some(l) = links.try_next().await.map_err(io::Error::other)? {
            let macvlan = l.attributes.iter().any(|a| {
                matches!(a, LinkAttribute::LinkInfo(infos) if infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::MacVlan))))
            });
            let name = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            if macvlan {
                found.push((l.header.index, name.unwrap_or_default()));
            }
        }
        for (index, name) in &found {
            handle.link().del(*index).execute().await.map_err(|e| io::Error::other(format!("deleting {name}: {e}")))?;
        }
        Ok(found.into_iter().map(|(_, n)| n).collect())
    })
    .await
}

async fn index_of(handle: &Handle, ifname: &str) -> io::Result<u32> {
    let link = handle
        .link()
        .get()
        .match_name(ifname.to_string())
        .execute()
        .try_next()
        .await
        .map_err(|e| io::Error::other(format!("{ifname}: {e}")))?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{ifname}: no such interface")))?;
    Ok(link.header.index)
}

/// Asks one namespace's kernel, over NETLINK_SOCK_DIAG, for its listening TCP sockets only
/// (the kernel then walks its listeners alone, not the whole connection table that
/// /proc/<pid>/net/tcp prints).
pub struct ListenProbe {
    socket: rtnetlink::sys::Socket,
}

impl ListenProbe {
    /// A probe bound to the network namespace of process `pid`.
    pub fn new(pid: u32) -> io::Result<Self> {
        in_namespace(pid, || {
            let mut socket = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_SOCK_DIAG)?;
            socket.bind_auto()?;
            socket.connect(&rtnetlink::sys::SocketAddr::new(0, 0))?;
            Ok(ListenProbe { socket })
        })
    }

    /// Whether a TCP socket (IPv4 or IPv6) listens on `port`. A few system calls.
    pub fn listening(&mut self, port: u16) -> io::Result<bool> {
        use netlink_packet_core_sd::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
        use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
        use netlink_packet_sock_diag::{SockDiagMessage, AF_INET, AF_INET6, IPPROTO_TCP};
        for (family, id) in [(AF_INET, SocketId::new_v4()), (AF_INET6, SocketId::new_v6())] {
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            let request = SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::LISTEN,
                socket_id: id,
            });
            let mut packet = NetlinkMessage::new(header, request.into());
            packet.finalize();
            let mut buf = vec![0; packet.buffer_len()];
            packet.serialize(&mut buf);
            self.socket.send(&buf, 0)?;
            let mut found = false;
            let mut rx = vec![0u8; 16 * 1024];
            'dump: loop {
                let n = self.socket.recv(&mut &mut rx[..], 0)?;
                let mut off = 0;
                while off < n {
                    let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&rx[off..n])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                    let len = msg.header.length as usize;
                    match msg.payload {
                        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                            found |= r.header.socket_id.source_port == port;
                        }
                        NetlinkPayload::Done(_) => break 'dump,
                        NetlinkPayload::Error(e) => return Err(io::Error::other(format!("sock_diag: {e:?}"))),
                        _ => {}
                    }
                    if len == 0 {
                        break;
                    }
                    off += len;
                }
            }
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Whether `/proc/<pid>/net/tcp` text (or tcp6) shows a socket listening on `port`.
/// Whether processes `a` and `b` (host PIDs) share one network namespace.
pub fn same_net_namespace(a: u32, b: u32) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let ns = |pid: u32| std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| (m.dev(), m.ino()));
    Ok(ns(a)? == ns(b)?)
}

pub fn proc_net_listening(text: &str, port: u16) -> bool {
    let want = format!(":{port:04X}");
    text.lines().skip(1).any(|l| {
        let mut f = l.split_whitespace();
        let (Some(_), Some(local), Some(_), Some(state)) = (f.next(), f.next(), f.next(), f.next()) else { return false };
        // 0A: TCP_LISTEN.
        local.ends_with(&want) && state == "0A"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proc_listener_is_found_by_port_and_state() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: 00000000:00B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 1 1\n   \
             1: 0A00000B:00B3 0A00000A:D2F0 01 00000000:00000000 00:00000000 00000000   101        0 2 1\n";
        assert!(proc_net_listening(tcp, 179));
        assert!(!proc_net_listening(tcp, 180));
        // An established session on 179 is not a listener.
        assert!(!proc_net_listening(&tcp.replace(" 0A ", " 06 "), 179));
    }

    #[test]
    fn a_process_shares_its_own_namespace_and_not_a_missing_ones() {
        assert!(same_net_namespace(std::process::id(), std::process::id()).unwrap());
        assert!(same_net_namespace(std::process::id(), u32::MAX).is_err());
    }

    #[tokio::test]
    async fn this_process_sees_its_own_listener_through_sock_diag() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        match ListenProbe::new(std::process::id()) {
            Ok(mut p) => {
                assert!(p.listening(port).unwrap());
                drop(l);
                assert!(!p.listening(port).unwrap());
            }
            // setns needs CAP_SYS_ADMIN: say so instead of passing silently (and fail where
            // the end-to-end tests are required, as they rely on it).
            Err(e) => skip::skip_or_fail(
                "this_process_sees_its_own_listener_through_sock_diag",
                skip::Requirement::Docker,
                &format!("no sock_diag probe here ({e})"),
            ),
        }
    }
}
