//! The cluster's revocation list: certificates the CA issued that no longer count, named by
//! the SHA-256 of their DER encoding (a fingerprint needs no serial bookkeeping and names
//! exactly one certificate).
//!
//! The controller keeps the list beside the CA (`pki/revoked.txt`), checks agents' server
//! certificates against it, and copies it to every agent (`revoked.txt` in the agent's
//! certificate directory). The agent checks every client certificate against it at the
//! handshake and re-reads the file when it changes, so a revocation needs no restart.
//!
//! File format, one certificate per line, `#` comments and blank lines ignored:
//!
//! ```text
//! # vnet-te revoked certificates
//! 3f1c…(64 hex digits)  controller vnet-te-controller, replaced by cluster rotate
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The list's file name, in the CA directory and in an agent's certificate directory.
pub const REVOKED_FILE: &str = "revoked.txt";

const HEADER: &str = "# vnet-te revoked certificates: SHA-256 of each certificate (DER), then what it was\n";

/// SHA-256 of a certificate's DER encoding, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of the first certificate in a PEM text.
pub fn fingerprint_pem(pem: &str) -> Result<String, String> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(fingerprint(&der)),
        Some(Err(e)) => Err(format!("reading the certificate: {e}")),
        None => Err("no PEM certificate found".into()),
    }
}

/// Revoked certificates: fingerprint → what the certificate was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    entries: BTreeMap<String, String>,
}

impl RevocationList {
    /// Parses the file format; every bad line is listed with its number.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let mut entries = BTreeMap::new();
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (fp, note) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                problems.push(format!("line {}: {fp:?} is not a SHA-256 fingerprint (64 lower-case hex digits)", i + 1));
                continue;
            }
            entries.insert(fp.to_string(), note.trim().to_string());
        }
        if problems.is_empty() {
            Ok(RevocationList { entries })
        } else {
            Err(problems)
        }
    }

    /// The file format, entries sorted by fingerprint.
    pub fn render(&self) -> String {
        let mut out = String::from(HEADER);
        for (fp, note) in &self.entries {
            out.push_str(fp);
            if !note.is_empty() {
                out.push_str("  ");
                out.push_str(note);
            }
            out.push('\n');
        }
        out
    }

    /// Adds a certificate (PEM) with a note; returns its fingerprint.
    pub fn revoke_pem(&mut self, cert_pem: &str, note: &str) -> Result<String, String> {
        let fp = fingerprint_pem(cert_pem)?;
        // One line per entry: a note never carries a line break into the file.
        let note: String = note.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        self.entries.insert(fp.clone(), note.trim().to_string());
        Ok(fp)
    }

    /// What the certificate with this DER encoding was, when it is revoked.
    pub fn lookup(&self, der: &[u8]) -> Option<(String, &str)> {
        let fp = fingerprint(der);
        let note = self.entries.get(&fp)?;
        Some((fp, note.as_str()))
    }

    pub fn contains_fingerprint(&self, fp: &str) -> bool {
        self.entries.contains_key(fp)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, String> {
        match fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|p| format!("{}: {}", path.display(), p.join("; "))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }
}

/// Where a TLS end takes its revocation list from.
#[derive(Debug)]
pub enum Revocations {
    /// A list fixed for the configuration's life (the controller: one command).
    Fixed(Arc<RevocationList>),
    /// A file re-read whenever it changes (the agent: the controller replaces it). A file
    /// that cannot be read or parsed refuses every certificate until it is fixed: a deny
    /// list that silently stops applying would let a revoked key back in.
    File { path: PathBuf, cached: Mutex<Cached> },
}

#[derive(Debug)]
pub struct Cached {
    /// Modification time, length and inode of the file read (None: there was no file).
    stamp: Option<(i64, i64, u64, u64)>,
    list: Result<Arc<RevocationList>, String>,
}

fn stamp(path: &Path) -> std::io::Result<Option<(i64, i64, u64, u64)>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some((m.mtime(), m.mtime_nsec(), m.len(), m.ino()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Revocations {
    /// The list in `path`, read now (so a broken file is reported at start) and re-read on
    /// every change.
    pub fn file(path: &Path) -> Result<Self, String> {
        let list = RevocationList::load(path)?;
        let stamp = stamp(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Ok(Revocations::File { path: path.to_path_buf(), cached: Mutex::new(Cached { stamp, list: Ok(Arc::new(list)) }) })
    }

    /// The list as it stands now.
    pub fn current(&self) -> Result<Arc<RevocationList>, String> {
        match self {
            Revocations::Fixed(l) => Ok(l.clone()),
            Revocations::File { path, cached } => {
                let mut c = cached.lock().unwrap_or_else(|e| e.into_inner());
                let now = stamp(path).map_err(|e| format!("reading {}: {e}", path.display()));
                match now {
                    Ok(s) if s == c.stamp => {}
                    Ok(s) => {
                        c.list = RevocationList::load(path).map(Arc::new);
                        c.stamp = s;
                        match &c.list {
                            Ok(l) => tracing::info!(file = %path.display(), revoked = l.len(), "revocation list read"),
                            Err(e) => tracing::error!("revocation list unusable, refusing every certificate: {e}"),
                        }
                    }
                    Err(e) => {
                        c.stamp = None;
                        c.list = Err(e);
                    }
                }
                c.list.clone()
            }
        }
    }

    /// `Err(reason)` when the certificate must be refused: it is revoked, or the list
    /// cannot be read.
    pub fn check(&self, der: &[u8]) -> Result<(), String> {
        let list = self.current()?;
        match list.lookup(der) {
            Some((fp, note)) => Err(format!("certificate {fp} is revoked ({note})")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn the_file_format_round_trips() {
        let text = format!("# comment\n\n{FP_A}  controller old, rotated\n");
        let list = RevocationList::parse(&text).unwrap();
        assert_eq!(list.len(), 1);
        assert!(list.contains_fingerprint(FP_A));
        let again = RevocationList::parse(&list.render()).unwrap();
        assert_eq!(again, list);
        assert!(list.render().contains(&format!("{FP_A}  controller old, rotated\n")), "{}", list.render());
    }

    #[test]
    fn every_bad_line_is_listed_with_its_number() {
        let text = format!("{FP_A}\nnot-hex\n{}\n# fine\n{}", &FP_A[1..], FP_A.to_uppercase());
        let problems = RevocationList::parse(&text).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("line 2: \"not-hex\""), "{problems:?}");
        assert!(problems[1].starts_with("line 3:"), "{problems:?}");
        assert!(problems[2].starts_with("line 5:"), "upper case is refused: {problems:?}");
    }

    #[test]
    fn a_certificate_is_found_by_its_fingerprint_and_notes_stay_on_one_line() {
        let ca = crate::tls::ClusterCa::generate().unwrap();
        let a = ca.issue_controller("a").unwrap();
        let b = ca.issue_controller("b").unwrap();
        let mut list = RevocationList::default();
        let fp = list.revoke_pem(&a.cert_pem, "controller a\nsecond line").unwrap();
        assert_eq!(fp.len(), 64);
        let der = |pem: &str| CertificateDer::pem_slice_iter(pem.as_bytes()).next().unwrap().unwrap();
        assert_eq!(list.lookup(&der(&a.cert_pem)).map(|(f, n)| (f, n.to_string())), Some((fp, "controller a second line".into())));
        assert!(list.lookup(&der(&b.cert_pem)).is_none());
        assert_eq!(RevocationList::parse(&list.render()).unwrap(), list);
    }

    #[test]
    fn a_watched_file_is_re_read_when_it_changes_and_a_broken_one_refuses_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REVOKED_FILE);
        let source = Revocations::file(&path).unwrap();
        let der = [1u8, 2, 3];
        assert!(source.check(&der).is_ok(), "no file: nothing revoked");
        let mut list = RevocationList::default();
        list.entries.insert(fingerprint(&der), "test".into());
        fs::write(&path, list.render()).unwrap();
        assert!(source.check(&der).unwrap_err().contains("is revoked (test)"));
        fs::write(&path, "garbage line\n").unwrap();
        let e = source.check(&[9u8]).unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        fs::remove_file(&path).unwrap();
        assert!(source.check(&der).is_ok());
        assert!(Revocations::file(&{
            fs::write(&path, "bad\n").unwrap();
            path.clone()
        })
        .is_err());
    }
}
