//! `SshError`: the target and what went wrong, with the messages an operator acts on.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::SshTarget;

/// An SSH failure: the target and what went wrong. Displays as `ssh user@host:port: …`.
#[derive(Debug)]
pub struct SshError {
    target: SshTarget,
    kind: Box<SshErrorKind>,
}

impl SshError {
    pub(super) fn new(target: &SshTarget, kind: SshErrorKind) -> SshError {
        SshError { target: target.clone(), kind: Box::new(kind) }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    pub fn kind(&self) -> &SshErrorKind {
        &self.kind
    }
}

impl fmt::Display for SshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ssh {}: {}", self.target, self.kind)
    }
}

impl std::error::Error for SshError {}

/// What went wrong. Wrapped errors are part of the message (not `source()`), so a chain
/// printed by anyhow does not repeat them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshErrorKind {
    #[error(
        "the host key is not known: the server offered {key_type} key {fingerprint}, which is not in {known}. \
         Make sure this is the node's key (on the node: `ssh-keygen -lf /etc/ssh/ssh_host_{short}_key.pub`), \
         then add it to {known} (e.g. `ssh-keyscan -p {port} -t {short} {host} >> {known}`, checking the fingerprint), \
         or re-run with --accept-new-host-key to record it",
        known = known_hosts.display(),
        short = key_type_short(key_type)
    )]
    UnknownHostKey { key_type: String, fingerprint: String, known_hosts: PathBuf, host: String, port: u16 },

    #[error(
        "REFUSED: THE HOST KEY HAS CHANGED. The server offered {key_type} key {fingerprint}, but {known} \
         line {line} records {known_key_type} key {known_fingerprint} for {entry}. Someone may be intercepting the \
         connection, or the node was reinstalled. Only if you know the change is legitimate, remove the old entry \
         (`ssh-keygen -R '{entry}' -f {known}`) and connect again; a changed key is never accepted automatically",
        known = known_hosts.display()
    )]
    HostKeyChanged {
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        /// 1-based line of the conflicting entry.
        line: usize,
        /// The host as known_hosts names it (`host` or `[host]:port`).
        entry: String,
        known_key_type: String,
        known_fingerprint: String,
    },

    #[error("cannot use the known_hosts file {}: {reason}", path.display())]
    KnownHosts { path: PathBuf, reason: String },

    #[error("no private key to log in with: {tried}; name one with --identity")]
    NoIdentity { tried: String },

    #[error("cannot use the private key {}: {reason}", path.display())]
    Identity { path: PathBuf, reason: String },

    #[error("cannot connect: {error}")]
    Connect { error: std::io::Error },

    #[error("timed out after {} s {what}", after.as_secs())]
    Timeout { what: &'static str, after: Duration },

    #[error(
        "the server refused public key authentication for user '{user}' with {identities} \
         (is the public key in ~{user}/.ssh/authorized_keys on the node?)"
    )]
    AuthRejected { user: String, identities: String },

    #[error("{error}")]
    Protocol { error: russh::Error },

    #[error("the server refused to run `{command}`")]
    ExecRefused { command: String },

    #[error("the connection closed before `{command}` reported an exit status")]
    NoExitStatus { command: String },

    #[error("reading the data to send to `{command}`: {error}")]
    Stdin { command: String, error: std::io::Error },

    #[error("{reason}")]
    InvalidArgument { reason: String },

    #[error("{what} failed with exit status {status}: {stderr}")]
    RemoteFailed { what: String, status: u32, stderr: String },
}

fn key_type_short(key_type: &str) -> &str {
    match key_type {
        "ssh-ed25519" => "ed25519",
        "ssh-rsa" | "rsa-sha2-256" | "rsa-sha2-512" => "rsa",
        t if t.starts_with("ecdsa-") => "ecdsa",
        t => t,
    }
}
