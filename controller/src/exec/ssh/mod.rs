//! The SSH client behind `vnet-te node add user@host`: publickey authentication, strict
//! host-key checking against an OpenSSH known_hosts file, remote commands with their exit
//! status and output, and stdin streamed with bounded memory (`docker save | ssh … docker load`).
//!
//! Built on [`russh`]. Host keys follow OpenSSH's rules:
//!
//! * a host whose key matches a known_hosts entry is accepted (plain, comma-separated and
//!   hashed `|1|…` host fields; `[host]:port` for ports other than 22, looked up with the
//!   host name in lower case as `ssh` does);
//! * a host with no entry is refused under [`HostKeyPolicy::Strict`] (the default), with the
//!   key's type and SHA256 fingerprint and how to proceed; [`HostKeyPolicy::AcceptNew`]
//!   appends the key to known_hosts and goes on (OpenSSH's `StrictHostKeyChecking=accept-new`);
//! * a host that has entries, none of them the offered key, has CHANGED its key: always
//!   refused, whatever the policy, naming the known_hosts file and line, and known_hosts is
//!   left as it was. To make a legitimate second key type unlikely to trip this, the client
//!   prefers the host-key algorithms already recorded for the host, as OpenSSH does.
//!
//! Wildcard patterns (`*`, `?`, `!`) and `@cert-authority`/`@revoked` markers are not
//! interpreted (russh's known_hosts reader does not): such lines never match, so a host
//! known only through a wildcard is treated as unknown, never as trusted.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

mod error;
mod hostkey;
mod session;
mod shell;
mod target;

pub use error::{SshError, SshErrorKind};
pub use session::Session;
pub(crate) use shell::quote;
pub use target::{SshTarget, TargetParseError, DEFAULT_PORT};

/// What to do with a host whose key is not in known_hosts. A host whose key CHANGED is
/// refused under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// Refuse unknown hosts (the default).
    #[default]
    Strict,
    /// Record an unknown host's key in known_hosts and continue (`--accept-new-host-key`).
    AcceptNew,
}

/// Timeouts of a [`Session`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// TCP connect, key exchange, host-key check and authentication together.
    pub connect_timeout: Duration,
    /// Send a keepalive when the server has said nothing for this long.
    pub keepalive_interval: Duration,
    /// Drop the connection after this long without any traffic (keepalive answers count,
    /// so only a dead or unreachable server trips it, not a long silent command).
    pub inactivity_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(15),
            inactivity_timeout: Duration::from_secs(90),
        }
    }
}

/// A finished remote command. `status` is its exit status; a command killed by a signal
/// gets 128 + the signal number, as shells report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    pub fn stdout_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    pub fn stderr_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

/// `~/.ssh/known_hosts`.
pub fn default_known_hosts() -> PathBuf {
    home_dir().join(".ssh").join("known_hosts")
}

/// The identities tried without `--identity`, in order: `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`.
pub fn default_identities() -> Vec<PathBuf> {
    let ssh = home_dir().join(".ssh");
    vec![ssh.join("id_ed25519"), ssh.join("id_rsa")]
}
