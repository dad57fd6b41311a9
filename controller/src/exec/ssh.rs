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
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::known_hosts::known_host_keys_path;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The SSH port used when the target names none.
pub const DEFAULT_PORT: u16 = 22;

/// Size of the chunks read from an [`Session::exec_with_stdin`] reader. With russh's channel
/// window this bounds what is held in memory for a stream of any length.
const STDIN_CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Target

/// Where to log in: `user@host[:port]`. The user is required; the port defaults to 22.
/// IPv6 addresses are written `user@[2001:db8::1]:2222`, or without brackets when there is
/// no port (`user@2001:db8::1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
}

/// Why a `user@host[:port]` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SSH target '{input}': {reason}")]
pub struct TargetParseError {
    pub input: String,
    pub reason: String,
}

impl FromStr for SshTarget {
    type Err = TargetParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| TargetParseError { input: input.to_string(), reason };
        // Like ssh, the last '@' separates the user from the host.
        let Some((user, rest)) = input.rsplit_once('@') else {
            return Err(fail(
                "expected user@host[:port] (the user is required), e.g. root@10.0.0.5 or admin@node2:2222".into(),
            ));
        };
        if user.is_empty() {
            return Err(fail("the user before '@' is empty".into()));
        }
        if let Some(c) = user.chars().find(|c| c.is_whitespace() || c.is_control() || *c == ':') {
            return Err(fail(format!("the user contains {c:?}")));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(fail("'[' without a closing ']'".into()));
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return Err(fail(format!("unexpected '{p}' after ']' (expected ':port')"))),
                },
            };
            (host, port)
        } else {
            match rest.matches(':').count() {
                0 => (rest, None),
                1 => {
                    let (h, p) = rest.split_once(':').unwrap_or((rest, ""));
                    (h, Some(p))
                }
                // An IPv6 address without brackets: no port can follow it.
                _ => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(fail("the host after '@' is empty".into()));
        }
        if host.starts_with('-') {
            return Err(fail("the host must not start with '-'".into()));
        }
        if let Some(c) = host
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '[' | ']' | '@' | ',' | '*' | '?' | '!'))
        {
            return Err(fail(format!("the host contains {c:?}")));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(fail(format!("port '{p}' is not a number from 1 to 65535"))),
            },
        };
        Ok(SshTarget { user: user.to_string(), host: host.to_string(), port })
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

impl SshTarget {
    /// The host as known_hosts records it: lower case, `[host]:port` unless the port is 22.
    pub fn known_hosts_name(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        if self.port == DEFAULT_PORT {
            host
        } else {
            format!("[{host}]:{}", self.port)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Policy, options, output, errors

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

/// An SSH failure: the target and what went wrong. Displays as `ssh user@host:port: …`.
#[derive(Debug)]
pub struct SshError {
    target: SshTarget,
    kind: Box<SshErrorKind>,
}

impl SshError {
    fn new(target: &SshTarget, kind: SshErrorKind) -> SshError {
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

// ---------------------------------------------------------------------------------------
// Default paths

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

// ---------------------------------------------------------------------------------------
// Host keys

/// Checks `key` offered by `target` against `known_hosts` under `policy`, recording it when
/// the policy allows. Never writes known_hosts unless the host has no entry at all.
fn check_host_key(
    target: &SshTarget,
    known_hosts: &Path,
    policy: HostKeyPolicy,
    key: &PublicKey,
) -> Result<(), SshError> {
    let kh_err =
        |reason: String| SshError::new(target, SshErrorKind::KnownHosts { path: known_hosts.to_path_buf(), reason });
    // russh treats an unreadable file as an empty one; only a missing file may be that.
    if let Err(e) = std::fs::File::open(known_hosts) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(kh_err(e.to_string()));
        }
    }
    let host = target.host.to_ascii_lowercase();
    let entries = known_host_keys_path(&host, target.port, known_hosts).map_err(|e| kh_err(e.to_string()))?;
    if entries.iter().any(|(_, known)| known.key_data() == key.key_data()) {
        tracing::debug!(
            "ssh {target}: host key {} matches {}",
            key.fingerprint(HashAlg::Sha256),
            known_hosts.display()
        );
        return Ok(());
    }
    let key_type = key.algorithm().as_str().to_string();
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    // Entries exist but none is this key: changed. Name the entry of the same type if any.
    let conflicting =
        entries.iter().find(|(_, k)| same_family(&k.algorithm(), &key.algorithm())).or_else(|| entries.first());
    if let Some((russh_line, known)) = conflicting {
        let line = physical_line(known_hosts, *russh_line).unwrap_or(*russh_line);
        return Err(SshError::new(
            target,
            SshErrorKind::HostKeyChanged {
                key_type,
                fingerprint,
                known_hosts: known_hosts.to_path_buf(),
                line,
                entry: target.known_hosts_name(),
                known_key_type: known.algorithm().as_str().to_string(),
                known_fingerprint: known.fingerprint(HashAlg::Sha256).to_string(),
            },
        ));
    }
    match policy {
        HostKeyPolicy::Strict => Err(SshError::new(
            target,
            SshErrorKind::UnknownHostKey {
                key_type,
                fingerprint,
                known_hosts: known_hosts.to_path_buf(),
                host: target.host.clone(),
                port: target.port,
            },
        )),
        HostKeyPolicy::AcceptNew => {
            append_known_host(known_hosts, &target.known_hosts_name(), key)
                .map_err(|e| kh_err(format!("recording the key: {e}")))?;
            tracing::info!(
                "ssh {target}: recorded new host key {key_type} {fingerprint} for {} in {}",
                target.known_hosts_name(),
                known_hosts.display()
            );
            Ok(())
        }
    }
}

/// Appends `name key` to known_hosts, creating it (and its directory) if needed. russh's
/// `learn_known_hosts_path` writes the same line but starts a new file with an empty line.
fn append_known_host(path: &Path, name: &str, key: &PublicKey) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom, Write};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let mut file =
        std::fs::OpenOptions::new().read(true).append(true).create(true).open(path).map_err(|e| e.to_string())?;
    let mut line = String::new();
    if file.seek(SeekFrom::End(-1)).is_ok() {
        let mut last = [0u8; 1];
        file.read_exact(&mut last).map_err(|e| e.to_string())?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    let key = key.to_openssh().map_err(|e| e.to_string())?;
    line.push_str(&format!("{name} {key}\n"));
    file.write_all(line.as_bytes()).map_err(|e| e.to_string())
}

fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    a == b || (matches!(a, Algorithm::Rsa { .. }) && matches!(b, Algorithm::Rsa { .. }))
}

/// russh numbers known_hosts entries counting every line except those starting with '#';
/// this maps such a number to the line number an editor shows.
fn physical_line(path: &Path, russh_line: usize) -> Option<usize> {
    let bytes = std::fs::read(path).ok()?;
    physical_line_in(&bytes, russh_line)
}

fn physical_line_in(bytes: &[u8], russh_line: usize) -> Option<usize> {
    let mut counted = 0;
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.first() != Some(&b'#') {
            counted += 1;
            if counted == russh_line {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Host-key algorithms to offer: russh's defaults, those already recorded for the host first
/// (as OpenSSH orders them), so a server with several host keys shows the one we know.
fn host_key_preference(known: &[PublicKey]) -> Vec<Algorithm> {
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = russh::Preferred::DEFAULT
        .key
        .iter()
        .cloned()
        .partition(|a| known.iter().any(|k| same_family(&k.algorithm(), a)));
    first.extend(rest);
    first
}

/// russh's callbacks: only the host-key check is ours.
struct Verifier {
    target: SshTarget,
    known_hosts: PathBuf,
    policy: HostKeyPolicy,
}

#[derive(Debug)]
enum HandlerError {
    Ssh(russh::Error),
    HostKey(Box<SshError>),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

impl client::Handler for Verifier {
    type Error = HandlerError;

    async fn check_server_key(&mut self, server_key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        // Host certificates are not requested, so this is a plain key; were it a
        // certificate, its key is checked like any other.
        let key = server_key.public_key();
        check_host_key(&self.target, &self.known_hosts, self.policy, &key)
            .map_err(|e| HandlerError::HostKey(Box::new(e)))?;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------
// Identities

fn load_identities(target: &SshTarget, identity: Option<&Path>) -> Result<Vec<(PathBuf, PrivateKey)>, SshError> {
    // Ok(key) or Err(why not).
    let load = |path: &Path| {
        russh::keys::load_secret_key(path, None).map_err(|e| match e {
            russh::keys::Error::KeyIsEncrypted => {
                "it is protected by a passphrase, which vnet-te cannot ask for; use a key without one".to_string()
            }
            russh::keys::Error::IO(io) => io.to_string(),
            other => format!("not a usable private key ({other})"),
        })
    };
    if let Some(path) = identity {
        let key = load(path)
            .map_err(|reason| SshError::new(target, SshErrorKind::Identity { path: path.to_path_buf(), reason }))?;
        return Ok(vec![(path.to_path_buf(), key)]);
    }
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for path in default_identities() {
        if !path.exists() {
            problems.push(format!("{} does not exist", path.display()));
            continue;
        }
        match load(&path) {
            Ok(k) => keys.push((path, k)),
            Err(reason) => problems.push(format!("{}: {reason}", path.display())),
        }
    }
    if keys.is_empty() {
        return Err(SshError::new(target, SshErrorKind::NoIdentity { tried: problems.join("; ") }));
    }
    Ok(keys)
}

// ---------------------------------------------------------------------------------------
// Session

/// An authenticated SSH connection.
pub struct Session {
    handle: client::Handle<Verifier>,
    target: SshTarget,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("target", &self.target).finish_non_exhaustive()
    }
}

impl Session {
    /// Connects with the default [`ConnectOptions`]: checks the host key against
    /// `known_hosts` under `policy`, then logs in with `identity` (default:
    /// [`default_identities`], each tried in turn).
    pub async fn connect(
        target: &SshTarget,
        identity: Option<&Path>,
        known_hosts: &Path,
        policy: HostKeyPolicy,
    ) -> Result<Session, SshError> {
        Self::connect_with(target, identity, known_hosts, policy, &ConnectOptions::default()).await
    }

    /// [`Session::connect`] with explicit timeouts.
    pub async fn connect_with(
        target: &SshTarget,
        identity: Option<&Path>,
        known_hosts: &Path,
        policy: HostKeyPolicy,
        options: &ConnectOptions,
    ) -> Result<Session, SshError> {
        let identities = load_identities(target, identity)?;
        let known: Vec<PublicKey> = known_host_keys_path(&target.host.to_ascii_lowercase(), target.port, known_hosts)
            .map(|v| v.into_iter().map(|(_, k)| k).collect())
            .unwrap_or_default();
        let config = client::Config {
            inactivity_timeout: Some(options.inactivity_timeout),
            keepalive_interval: Some(options.keepalive_interval),
            keepalive_max: 3,
            nodelay: true,
            preferred: russh::Preferred { key: Cow::Owned(host_key_preference(&known)), ..Default::default() },
            ..Default::default()
        };
        let verifier = Verifier { target: target.clone(), known_hosts: known_hosts.to_path_buf(), policy };
        let protocol = |error: russh::Error| SshError::new(target, SshErrorKind::Protocol { error });

        let login = async {
            let mut handle = client::connect(Arc::new(config), (target.host.as_str(), target.port), verifier)
                .await
                .map_err(|e| match e {
                    HandlerError::HostKey(e) => *e,
                    HandlerError::Ssh(russh::Error::IO(error)) => {
                        SshError::new(target, SshErrorKind::Connect { error })
                    }
                    HandlerError::Ssh(error) => protocol(error),
                })?;
            for (path, key) in &identities {
                let hash = if matches!(key.algorithm(), Algorithm::Rsa { .. }) {
                    handle.best_supported_rsa_hash().await.map_err(protocol)?.flatten()
                } else {
                    None
                };
                let result = handle
                    .authenticate_publickey(
                        target.user.clone(),
                        PrivateKeyWithHashAlg::new(Arc::new(key.clone()), hash),
                    )
                    .await
                    .map_err(protocol)?;
                if result.success() {
                    tracing::debug!("ssh {target}: authenticated with {}", path.display());
                    return Ok(handle);
                }
            }
            Err(SshError::new(
                target,
                SshErrorKind::AuthRejected {
                    user: target.user.clone(),
                    identities: identities.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", "),
                },
            ))
        };
        let handle = tokio::time::timeout(options.connect_timeout, login).await.map_err(|_| {
            SshError::new(
                target,
                SshErrorKind::Timeout { what: "connecting and logging in", after: options.connect_timeout },
            )
        })??;
        Ok(Session { handle, target: target.clone() })
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Runs `command` (through the login shell, as `ssh host command` does) with an empty
    /// stdin; collects its output and exit status.
    pub async fn exec(&self, command: &str) -> Result<Output, SshError> {
        self.exec_with_stdin(command, tokio::io::empty()).await
    }

    /// Runs `command` with `stdin` streamed to its standard input, then EOF. Memory stays
    /// bounded whatever the stream's length: data is read in 64 KiB chunks only as fast as
    /// the channel window lets it go. Output is collected while the input is still being
    /// sent, so a command that writes as it reads cannot stall. If the command exits
    /// before reading everything, the rest of `stdin` is not read.
    pub async fn exec_with_stdin<R>(&self, command: &str, stdin: R) -> Result<Output, SshError>
    where
        R: AsyncRead + Send,
    {
        let protocol = |error: russh::Error| SshError::new(&self.target, SshErrorKind::Protocol { error });
        let channel = self.handle.channel_open_session().await.map_err(protocol)?;
        channel.exec(true, command).await.map_err(protocol)?;
        let (mut rx, tx) = channel.split();

        let feed = async {
            let mut stdin = std::pin::pin!(stdin);
            let mut writer = tx.make_writer();
            let mut buf = vec![0u8; STDIN_CHUNK];
            loop {
                let n = stdin.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                if writer.write_all(&buf[..n]).await.is_err() {
                    // The channel is gone: the command ended; its status tells the rest.
                    return Ok(());
                }
            }
            // EOF on the remote stdin.
            let _ = writer.shutdown().await;
            Ok::<(), std::io::Error>(())
        };
        let mut feed = std::pin::pin!(feed);
        let mut feeding = true;

        let mut out = Output { status: 0, stdout: Vec::new(), stderr: Vec::new() };
        let mut status = None;
        loop {
            tokio::select! {
                fed = &mut feed, if feeding => {
                    feeding = false;
                    if let Err(error) = fed {
                        // Do not leave the command waiting on a stdin that will never end.
                        let _ = tx.close().await;
                        let kind = SshErrorKind::Stdin { command: command.to_string(), error };
                        return Err(SshError::new(&self.target, kind));
                    }
                }
                msg = rx.wait() => match msg {
                    None | Some(ChannelMsg::Close) => break,
                    Some(ChannelMsg::Data { data }) => out.stdout.extend_from_slice(&data),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => out.stderr.extend_from_slice(&data),
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                    Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                        status = Some(128 + signal_number(&signal_name));
                    }
                    Some(ChannelMsg::Failure) if status.is_none() => {
                        let _ = tx.close().await;
                        let kind = SshErrorKind::ExecRefused { command: command.to_string() };
                        return Err(SshError::new(&self.target, kind));
                    }
                    Some(_) => {}
                },
            }
        }
        match status {
            Some(s) => {
                out.status = s;
                Ok(out)
            }
            None => Err(SshError::new(&self.target, SshErrorKind::NoExitStatus { command: command.to_string() })),
        }
    }

    /// Writes `contents` to `path` on the remote host with permissions `mode` (e.g. 0o600),
    /// creating missing directories (mode 0700). The file is written beside its final name
    /// and renamed into place, so readers never see half a file. Runs under `sh -c`
    /// whatever the login shell; every path is shell-quoted.
    pub async fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), SshError> {
        let invalid = |reason: String| SshError::new(&self.target, SshErrorKind::InvalidArgument { reason });
        if path.is_empty() || path.ends_with('/') || path.contains('\0') {
            return Err(invalid(format!("cannot write file {path:?}: not a file path")));
        }
        if mode > 0o7777 {
            return Err(invalid(format!("cannot write {path}: mode {mode:o} is not a file mode")));
        }
        let script = write_file_script(path, mode);
        let command = format!("sh -c {}", quote(&script));
        let out = self.exec_with_stdin(&command, contents).await?;
        if !out.success() {
            return Err(SshError::new(
                &self.target,
                SshErrorKind::RemoteFailed {
                    what: format!("writing {path}"),
                    status: out.status,
                    stderr: out.stderr_lossy().trim().to_string(),
                },
            ));
        }
        Ok(())
    }

    /// Ends the session politely. Errors are ignored: the connection is going away anyway.
    pub async fn close(self) {
        let _ = self.handle.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

/// Quotes one word for a POSIX shell on the far side.
pub(crate) fn quote(s: &str) -> Cow<'_, str> {
    shell_escape::unix::escape(Cow::Borrowed(s))
}

/// The POSIX sh script behind [`Session::write_file`]; stdin is the content.
fn write_file_script(path: &str, mode: u32) -> String {
    let dir = match path.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    };
    let mut script = String::from("umask 077 && ");
    if let Some(dir) = dir {
        script.push_str(&format!("mkdir -p -- {} && ", quote(dir)));
    }
    script.push_str(&format!(
        "t={p}.vnet-te-tmp.$$ && cat > \"$t\" && chmod {mode:04o} -- \"$t\" && mv -f -- \"$t\" {p} \
         || {{ rc=$?; rm -f -- \"$t\"; exit $rc; }}",
        p = quote(path)
    ));
    script
}

/// Signal numbers as on Linux, for `128 + n` exit statuses.
fn signal_number(sig: &Sig) -> u32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<SshTarget, TargetParseError> {
        s.parse()
    }

    #[test]
    fn targets_parse() {
        assert_eq!(t("root@10.0.0.5").unwrap(), SshTarget { user: "root".into(), host: "10.0.0.5".into(), port: 22 });
        assert_eq!(t("admin@node2:2222").unwrap().port, 2222);
        let v6 = t("u@[2001:db8::1]:2200").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("2001:db8::1", 2200));
        assert_eq!(v6.to_string(), "u@[2001:db8::1]:2200");
        assert_eq!(v6.known_hosts_name(), "[2001:db8::1]:2200");
        assert_eq!(t("u@2001:db8::1").unwrap().port, 22);
        assert_eq!(t("me@corp@Host.Example").unwrap().user, "me@corp");
        assert_eq!(t("u@Host.Example").unwrap().known_hosts_name(), "host.example");
        for bad in [
            "host",
            "@host",
            "u@",
            "u@:22",
            "u@h:0",
            "u@h:x",
            "u@h:70000",
            "u@[::1",
            "u@[::1]x",
            "u@-oProxy",
            "u@a b",
            "u v@h",
        ] {
            let e = t(bad).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(t("host").unwrap_err().reason.contains("user@host"));
    }

    #[test]
    fn russh_line_numbers_map_to_file_lines() {
        let text = b"# comment\nh1 ssh-ed25519 AAAA\n\n# another\nh2 ssh-ed25519 BBBB\n";
        assert_eq!(physical_line_in(text, 1), Some(2));
        assert_eq!(physical_line_in(text, 2), Some(3));
        assert_eq!(physical_line_in(text, 3), Some(5));
        assert_eq!(physical_line_in(text, 9), None);
    }

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHkW2aKkNFOK+JjSZTV4LGY8cN0zJtu6vZNfVqWXSBTG";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIM1ip1YBh5AdA0ds43B+5a6hZ7lxmrex74CfhLGHSxrR";

    #[test]
    fn known_hosts_decisions() {
        let dir = std::env::temp_dir().join(format!("vnet-te-ssh-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kh = dir.join("known_hosts");
        let k1 = russh::keys::parse_public_key_base64(K1).unwrap();
        let k2 = russh::keys::parse_public_key_base64(K2).unwrap();
        let target: SshTarget = "root@Node1:2222".parse().unwrap();
        std::fs::write(&kh, format!("# managed\nother ssh-ed25519 {K2}\n[node1]:2222 ssh-ed25519 {K1}\n")).unwrap();

        check_host_key(&target, &kh, HostKeyPolicy::Strict, &k1).unwrap();
        let before = std::fs::read(&kh).unwrap();
        for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
            let e = check_host_key(&target, &kh, policy, &k2).expect_err("a changed key must be refused");
            match e.kind() {
                SshErrorKind::HostKeyChanged { line, entry, .. } => {
                    assert_eq!(*line, 3);
                    assert_eq!(entry, "[node1]:2222");
                }
                _ => panic!("expected a changed key, got {e}"),
            }
            assert_eq!(std::fs::read(&kh).unwrap(), before);
        }
        // Port 22 is a different host entry: unknown.
        let on22: SshTarget = "root@node1".parse().unwrap();
        let e = check_host_key(&on22, &kh, HostKeyPolicy::Strict, &k1).unwrap_err();
        assert!(matches!(e.kind(), SshErrorKind::UnknownHostKey { .. }), "{e}");
        assert!(e.to_string().contains(&k1.fingerprint(HashAlg::Sha256).to_string()), "{e}");
        check_host_key(&on22, &kh, HostKeyPolicy::AcceptNew, &k1).unwrap();
        check_host_key(&on22, &kh, HostKeyPolicy::Strict, &k1).unwrap();
        assert!(std::fs::read_to_string(&kh).unwrap().ends_with(&format!("\nnode1 ssh-ed25519 {K1}\n")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn host_key_preference_puts_known_types_first() {
        let k1 = russh::keys::parse_public_key_base64(K1).unwrap();
        assert_eq!(host_key_preference(&[k1])[0], Algorithm::Ed25519);
        assert_eq!(host_key_preference(&[]), russh::Preferred::DEFAULT.key.to_vec());
    }

    #[test]
    fn write_file_script_quotes_paths() {
        let s = write_file_script("/etc/x y/it's", 0o600);
        assert!(s.contains("mkdir -p -- '/etc/x y'"), "{s}");
        assert!(s.contains("chmod 0600"), "{s}");
        assert!(s.contains(r#"mv -f -- "$t" '/etc/x y/it'\''s'"#), "{s}");
        assert!(!write_file_script("plain", 0o644).contains("mkdir"));
    }
}
