//! The plan a running path was made from, kept on the controller's side: one file per path
//! under `$VNET_TE_HOME/paths` (the manager, in a cluster), readable by its owner only. Never in
//! a container: experimenters are root in the experiment hosts, and a plan read back from one
//! would steer what `path update` runs through vtysh on every router.
//!
//! The file names the plan hash its containers were labelled with at create; a file whose hash
//! the running containers do not carry belongs to another path of that name and is refused.
//! `path delete` needs no file: it works from the labels.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vnet_te_agent::node::labels;

use super::nodes::{DeployError, Nodes};
use crate::core::plan::Plan;

const STATE_VERSION: u32 = 1;
/// A state file larger than this is not a plan vnet-te wrote.
const MAX_STATE_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the stored plan {} is not one vnet-te wrote: {reason}; delete the path (`vnet-te path delete {name}`)", path.display())]
    Unreadable { path: PathBuf, name: String, reason: String },
    #[error(
        "the stored plan {} was made for another path named '{name}' (plan hash {stored}; the running containers carry {running}); delete the path (`vnet-te path delete {name}`) and create it again",
        path.display()
    )]
    Mismatch { path: PathBuf, name: String, stored: String, running: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    version: u32,
    /// The plan hash the path's containers were labelled with at create (an update changes the
    /// plan's own hash, not the labels).
    created_hash: String,
    plan: Plan,
    /// The pre-shared key of the path's IPsec tunnel (base64), generated at create: only
    /// here and in the two ends' swanctl.conf (mode 0600), never in the plan or a label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vpn_psk: Option<String>,
}

/// The state file of path `name` (names are checked before any command gets here: letters,
/// digits, `-`, `_`).
pub fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Writes the state of a path about to be created (replacing any file of an earlier path of
/// that name).
pub fn save_new(dir: &Path, plan: &Plan) -> Result<(), StateError> {
    write(dir, &Stored { version: STATE_VERSION, created_hash: plan.hash.clone(), plan: plan.clone(), vpn_psk: None })
}

/// Writes the state of a path about to be created with its tunnel's pre-shared key.
pub fn save_new_with_psk(dir: &Path, plan: &Plan, psk: Option<&str>) -> Result<(), StateError> {
    let stored = Stored { version: STATE_VERSION, created_hash: plan.hash.clone(), plan: plan.clone(), vpn_psk: psk.map(str::to_string) };
    write(dir, &stored)
}

/// The pre-shared key of path `name`'s tunnel, if it has one.
pub fn vpn_psk(dir: &Path, name: &str) -> Option<String> {
    read(dir, name).ok().flatten().and_then(|s| s.vpn_psk)
}

/// Replaces the stored plan of a running path (after an update, an impairment, a schedule's
/// start), keeping the hash its containers carry.
pub fn store_plan(plan: &Plan, nodes: &Nodes) -> Result<(), StateError> {
    let (created_hash, vpn_psk) = match read(&nodes.state_dir, &plan.name)? {
        Some(s) => (s.created_hash, s.vpn_psk),
        None => (plan.hash.clone(), None),
    };
    write(&nodes.state_dir, &Stored { version: STATE_VERSION, created_hash, plan: plan.clone(), vpn_psk })
}

/// Removes the state of path `name` (none is no error).
pub fn forget(dir: &Path, name: &str) -> Result<(), StateError> {
    let path = file(dir, name);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StateError::Io { what: "removing", path, source: e }),
        _ => Ok(()),
    }
}

/// The stored plan of path `name`, whatever runs (None when there is none or it cannot be
/// read): for saying what a node that does not answer may still hold.
pub fn stored_plan(dir: &Path, name: &str) -> Option<Plan> {
    read(dir, name).ok().flatten().map(|s| s.plan)
}

/// The names of the paths with a state file.
pub fn stored_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_string)).collect();
    names.sort();
    names
}

fn write(dir: &Path, stored: &Stored) -> Result<(), StateError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { what, path, source }
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("creating", dir))?;
    let path = file(dir, &stored.plan.name);
    let tmp = dir.join(format!(".{}.json.tmp", stored.plan.name));
    let json = serde_json::to_vec(stored).expect("plans serialise");
    // A file left by a write that was cut short goes first; create_new follows no link.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io("writing", &tmp))?;
    f.write_all(&json).and_then(|()| f.sync_all()).map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("replacing", &path))
}

fn read(dir: &Path, name: &str) -> Result<Option<Stored>, StateError> {
    let path = file(dir, name);
    let bytes = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::Io { what: "reading", path, source: e }),
        Ok(m) if m.len() > MAX_STATE_BYTES => {
            return Err(StateError::Unreadable { path, name: name.into(), reason: format!("{} bytes", m.len()) });
        }
        Ok(_) => std::fs::read(&path).map_err(|source| StateError::Io { what: "reading", path: path.clone(), source })?,
    };
    let unreadable = |reason: String| StateError::Unreadable { path: path.clone(), name: name.into(), reason };
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
    if stored.version != STATE_VERSION {
        return Err(unreadable(format!("version {}, not {STATE_VERSION}", stored.version)));
    }
    if stored.plan.name != name {
        return Err(unreadable(format!("it is the plan of path '{}'", stored.plan.name)));
    }
    Ok(Some(stored))
}

/// The plan path `name` was created from, if the path runs and its state is here. Its
/// containers must carry the stored hash. A node that does not answer is skipped, as long as
/// another one answers (a path stays verifiable with a node lost).
pub async fn load_plan(nodes: &Nodes, name: &str) -> Result<Option<Plan>, DeployError> {
    let Some(stored) = read(&nodes.state_dir, name)? else { return Ok(None) };
    let mut first_err = None;
    let mut running = Vec::new();
    for node in nodes.by_name.values() {
        match node.find_containers(labels::PATH, Some(name)).await {
            Ok(found) => running.extend(found.into_iter().filter_map(|c| c.labels.get(labels::PLAN_HASH).cloned())),
            Err(source) => {
                tracing::warn!(node = node.name(), error = %source, "cannot list containers");
                first_err.get_or_insert(DeployError::Step { step: "listing containers", source });
            }
        }
    }
    if running.is_empty() {
        return match first_err {
            Some(e) if nodes.by_name.len() == 1 => Err(e),
            _ => Ok(None),
        };
    }
    if let Some(other) = running.iter().find(|h| **h != stored.created_hash) {
        return Err(StateError::Mismatch {
            path: file(&nodes.state_dir, name),
            name: name.into(),
            stored: stored.created_hash,
            running: other.clone(),
        }
        .into());
    }
    Ok(Some(stored.plan))
}
