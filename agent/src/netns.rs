//! Netlink inside a running container's network namespace: addresses on the links vnet-te
//! makes there.

use std::io;
use std::os::fd::AsFd;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, TokioSocket};
use rtnetlink::{Handle, LinkUnspec};

/// A netlink connection bound to the network namespace of process `pid` (host PID). The
/// socket is made on a thread of its own that enters the namespace and then ends: a socket
/// keeps the namespace it was made in, and no thread of the runtime changes namespace.
pub async fn connect(pid: u32) -> io::Result<(Handle, tokio::task::JoinHandle<()>)> {
    let runtime = tokio::runtime::Handle::current();
    let socket = std::thread::spawn(move || -> io::Result<TokioSocket> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        // Registered with the caller's runtime, made in this thread's (the container's) namespace.
        let _rt = runtime.enter();
        let mut socket = TokioSocket::new(NETLINK_ROUTE as isize)?;
        socket.socket_mut().bind_auto()?;
        Ok(socket)
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))??;
    let (conn, handle, _) = rtnetlink::from_socket(socket);
    Ok((handle, tokio::spawn(conn)))
}

/// Gives interface `ifname` (in the namespace of `handle`) `address` and brings it up.
pub async fn address_and_up(handle: &Handle, ifname: &str, address: Ipv4Net) -> Result<(), rtnetlink::Error> {
    let link = handle
        .link()
        .get()
        .match_name(ifname.to_string())
        .execute()
        .try_next()
        .await?
        .ok_or(rtnetlink::Error::RequestFailed)?;
    let index = link.header.index;
    handle.address().add(index, address.addr().into(), address.prefix_len()).execute().await?;
    handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await
}
