//! Read-only `show` commands straight to an FRR daemon's vty socket, the way vtysh itself
//! talks to the daemons: the command as a NUL-terminated string, then the output followed by
//! three NUL bytes and a status byte (0 = success). The socket of a router's daemon is reached
//! from the node through the container's root, `/proc/<pid>/root/run/frr/<daemon>.vty`, so a
//! read costs no exec and no new process, only a socket round trip.
//!
//! Only the fixed commands of this crate are ever sent (never user text), and callers fall
//! back to `docker exec vtysh` when the socket cannot be reached (no such file, no permission).

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The longest a read may take (a 255-hop table is a few hundred KiB).
const TIMEOUT: Duration = Duration::from_secs(20);
/// Output larger than this is refused (a broken daemon must not exhaust memory).
const MAX_OUTPUT: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VtyError {
    /// The socket could not be opened: the caller may try another way.
    #[error("cannot open {path}: {source}")]
    Unreachable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered, but not with success.
    #[error("{daemon} refused `{command}` (status {status}): {output}")]
    Refused { daemon: &'static str, command: &'static str, status: u8, output: String },
    #[error("talking to {daemon}: {message}")]
    Io { daemon: &'static str, message: String },
}

/// The daemons whose sockets may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Bgpd,
    Zebra,
}

impl Daemon {
    fn name(self) -> &'static str {
        match self {
            Daemon::Bgpd => "bgpd",
            Daemon::Zebra => "zebra",
        }
    }
}

/// The socket of `daemon` in the container whose init process is `pid` (host PID). `/run` and
/// not `/var/run`: a symlink in the container would be resolved against the node's root.
fn socket_path(pid: u32, daemon: Daemon) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root/run/frr/{}.vty", daemon.name()))
}

/// Sends `command` to `daemon` in the container of `pid` and returns its output.
pub async fn show(pid: u32, daemon: Daemon, command: &'static str) -> Result<String, VtyError> {
    let path = socket_path(pid, daemon);
    let mut stream = UnixStream::connect(&path)
        .await
        .map_err(|source| VtyError::Unreachable { path: path.display().to_string(), source })?;
    let io = |e: std::io::Error| VtyError::Io { daemon: daemon.name(), message: e.to_string() };
    let exchange = async {
        let mut request = command.as_bytes().to_vec();
        request.push(0);
        stream.write_all(&request).await.map_err(io)?;
        read_reply(&mut stream, daemon).await
    };
    let (status, output) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| VtyError::Io { daemon: daemon.name(), message: format!("no complete answer within {TIMEOUT:?}") })??;
    if status != 0 {
        return Err(VtyError::Refused { daemon: daemon.name(), command, status, output });
    }
    Ok(output)
}

/// Reads until the end marker; returns the status byte and the output before the marker.
async fn read_reply<R: AsyncReadExt + Unpin>(r: &mut R, daemon: Daemon) -> Result<(u8, String), VtyError> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut chunk).await.map_err(|e| VtyError::Io { daemon: daemon.name(), message: e.to_string() })?;
        if n == 0 {
            return Err(VtyError::Io { daemon: daemon.name(), message: "connection closed before the end of the answer".into() });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = end_marker(&buf) {
            let status = buf[end + 3];
            buf.truncate(end);
            return Ok((status, String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_OUTPUT {
            return Err(VtyError::Io { daemon: daemon.name(), message: format!("answer longer than {MAX_OUTPUT} bytes") });
        }
    }
}

/// Where the end marker (three NULs and the status byte) starts, if the buffer ends with one.
/// Text output never holds a NUL, so the marker is the first NUL.
fn end_marker(buf: &[u8]) -> Option<usize> {
    let first_nul = buf.iter().position(|&b| b == 0)?;
    (buf.len() >= first_nul + 4 && buf[first_nul..first_nul + 3] == [0, 0, 0]).then_some(first_nul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_ends_the_answer_even_when_split_across_reads() {
        assert_eq!(end_marker(b"{}\n"), None);
        assert_eq!(end_marker(b"{}\n\0\0"), None);
        assert_eq!(end_marker(b"{}\n\0\0\0"), None);
        assert_eq!(end_marker(b"{}\n\0\0\0\x02"), Some(3));
        assert_eq!(end_marker(b"\0\0\0\0"), Some(0));
    }

    #[tokio::test]
    async fn replies_are_read_to_their_marker_with_status() {
        let (mut a, mut b) = tokio::io::duplex(8);
        tokio::spawn(async move {
            // Written in pieces smaller than the marker, as a slow daemon might.
            for piece in [&b"{\"a\":"[..], b"1}\n\0", b"\0\0", b"\x01"] {
                b.write_all(piece).await.unwrap();
            }
        });
        let (status, out) = read_reply(&mut a, Daemon::Bgpd).await.unwrap();
        assert_eq!((status, out.as_str()), (1, "{\"a\":1}\n"));
    }

    #[tokio::test]
    async fn a_missing_socket_is_unreachable_not_a_failure_of_the_daemon() {
        let e = show(u32::MAX, Daemon::Bgpd, "show bgp summary json").await.unwrap_err();
        assert!(matches!(e, VtyError::Unreachable { .. }), "{e}");
    }
}
