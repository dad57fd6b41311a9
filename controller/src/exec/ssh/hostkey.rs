//! Host keys: the known_hosts decision under a policy, recording new keys, and the
//! host-key algorithms to offer.

use std::path::{Path, PathBuf};

use russh::client;
use russh::keys::known_hosts::known_host_keys_path;
use russh::keys::{Algorithm, HashAlg, PublicKey, PublicKeyOrCertificate};

use super::{HostKeyPolicy, SshError, SshErrorKind, SshTarget};

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
pub(super) fn host_key_preference(known: &[PublicKey]) -> Vec<Algorithm> {
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = russh::Preferred::DEFAULT
        .key
        .iter()
        .cloned()
        .partition(|a| known.iter().any(|k| same_family(&k.algorithm(), a)));
    first.extend(rest);
    first
}

/// russh's callbacks: only the host-key check is ours.
pub(super) struct Verifier {
    pub(super) target: SshTarget,
    pub(super) known_hosts: PathBuf,
    pub(super) policy: HostKeyPolicy,
}

#[derive(Debug)]
pub(super) enum HandlerError {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
