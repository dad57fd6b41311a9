//! `Session`: connecting, logging in with a private key, and running commands.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client;
use russh::keys::known_hosts::known_host_keys_path;
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::hostkey::{host_key_preference, HandlerError, Verifier};
use super::shell::{quote, signal_number, write_file_script};
use super::{default_identities, ConnectOptions, HostKeyPolicy, Output, SshError, SshErrorKind, SshTarget};

/// Size of the chunks read from an [`Session::exec_with_stdin`] reader. With russh's channel
/// window this bounds what is held in memory for a stream of any length.
const STDIN_CHUNK: usize = 64 * 1024;

/// The private keys to offer: `identity`, or each of [`default_identities`] that loads.
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
