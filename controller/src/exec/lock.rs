//! One change at a time per path name on this controller: `create`, `update`, `impair` and
//! `delete` of a path hold an exclusive lock on `<dir>/<name>.lock` while they run. The
//! kernel releases it when the process ends however it ends (SIGKILL included), so a lock is
//! never stale. The lock files stay (a few bytes each in `/run`): removing one while another
//! run may have it open would let two runs hold "the" lock at once.
//!
//! The controller of a cluster runs on its manager, so this covers every node of the path;
//! two controllers on different machines driving one engine are not covered.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct PathLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("path '{name}' is being changed by another vnet-te run{holder}; wait for it to end, then run this again")]
    Busy { name: String, holder: String },
    #[error("locking path '{name}' ({file}): {source}")]
    Io {
        name: String,
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the lock files live: `VNET_TE_LOCK_DIR` alone when set, else `/run/vnet-te/locks`,
/// then (for a user who may not write there: `/run` is root's) a directory of this user's
/// under the temp dir.
fn lock_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os("VNET_TE_LOCK_DIR") {
        return vec![PathBuf::from(d)];
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    vec![PathBuf::from("/run/vnet-te/locks"), std::env::temp_dir().join(format!("vnet-te-locks-{user}"))]
}

impl PathLock {
    /// Takes the lock of path `name` (a validated path name: safe as a file name) or says
    /// which process holds it.
    pub fn acquire(name: &str) -> Result<PathLock, LockError> {
        Self::acquire_first(&lock_dirs(), name)
    }

    /// In the first of `dirs` this process may write in.
    fn acquire_first(dirs: &[PathBuf], name: &str) -> Result<PathLock, LockError> {
        let mut result = Err(LockError::Io {
            name: name.to_string(),
            file: String::new(),
            source: std::io::Error::other("no lock directory"),
        });
        for dir in dirs {
            result = Self::acquire_in(dir, name);
            match &result {
                Err(LockError::Io { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => continue,
                _ => break,
            }
        }
        result
    }

    pub fn acquire_in(dir: &std::path::Path, name: &str) -> Result<PathLock, LockError> {
        let path = dir.join(format!("{name}.lock"));
        let io = |source| LockError::Io { name: name.to_string(), file: path.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let holder = if pid.is_empty() { String::new() } else { format!(" (pid {pid})") };
                return Err(LockError::Busy { name: name.to_string(), holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the message another run prints.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(PathLock { _file: file })
    }
}

/// Held while a create enables the bridge forwarding rule and makes its bridges, and while a
/// delete decides whether any bridge still needs the rule: so a delete never withdraws the
/// rule between another path's enabling it and its bridges appearing. A blocking lock on
/// `<dir>/forwarding.lock` in the controller's state directory (not a path's name: those
/// files end in `.json`), released when the value drops or the process ends.
#[derive(Debug)]
pub struct ForwardingLock {
    _file: File,
}

/// Waits for the forwarding rule's lock (see [`ForwardingLock`]).
pub async fn forwarding(dir: &std::path::Path) -> Result<ForwardingLock, super::DeployError> {
    let path = dir.join("forwarding.lock");
    let p = path.clone();
    let taken = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(p.parent().unwrap_or(std::path::Path::new("/")))?;
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&p)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    match taken {
        Ok(file) => Ok(ForwardingLock { _file: file }),
        Err(source) => Err(super::DeployError::Lock { file: path.display().to_string(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = std::env::temp_dir().join(format!("vnet-te-lock-test-{}", std::process::id()));
        let first = PathLock::acquire_in(&dir, "p").unwrap();
        match PathLock::acquire_in(&dir, "p") {
            Err(LockError::Busy { name, holder }) => {
                assert_eq!(name, "p");
                assert_eq!(holder, format!(" (pid {})", std::process::id()));
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        // Another name is independent.
        let other = PathLock::acquire_in(&dir, "q").unwrap();
        drop(first);
        let again = PathLock::acquire_in(&dir, "p").unwrap();
        drop((again, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// (Passing over a directory the user may not write in is seen by the test that runs the
    /// CLI as an unprivileged user, tests/nonroot.rs: root may write anywhere.)
    #[test]
    fn the_first_directory_is_used_and_errors_other_than_permission_are_reported() {
        let base = std::env::temp_dir().join(format!("vnet-te-lock-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let lock = PathLock::acquire_first(&[base.join("a"), base.join("b")], "p").unwrap();
        assert!(base.join("a/p.lock").exists() && !base.join("b").exists());
        drop(lock);
        // A file where the directory should be: reported, not passed over.
        std::fs::write(base.join("file"), "").unwrap();
        let e = PathLock::acquire_first(&[base.join("file"), base.join("next")], "p").unwrap_err();
        assert!(matches!(e, LockError::Io { .. }), "{e:?}");
        assert!(!base.join("next").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
