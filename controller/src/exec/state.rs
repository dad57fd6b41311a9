//! The plan a running path was made from.

use vnet_te_agent::node::labels;

use super::nodes::{DeployError, Nodes};
use crate::core::objects::PLAN_PATH;
use crate::core::plan::Plan;

/// Reads the plan a running path was created from (kept in its experiment hosts).
/// A node that does not answer is skipped (a path stays verifiable with a node lost) as
/// long as another node holds a copy; with none readable, the first error is returned.
pub async fn load_plan(nodes: &Nodes, path: &str) -> Result<Option<Plan>, DeployError> {
    let mut first_err = None;
    for node in nodes.by_name.values() {
        let hosts = match node.find_containers(labels::PATH, Some(path)).await {
            Ok(h) => h,
            Err(source) => {
                tracing::warn!(node = node.name(), error = %source, "cannot list containers");
                first_err.get_or_insert(DeployError::Step { step: "listing containers", source });
                continue;
            }
        };
        for h in hosts.iter().filter(|h| h.labels.get(labels::ROLE).map(String::as_str) == Some("host")) {
            if let Ok(Some(text)) = node.read_file(&h.name, PLAN_PATH).await {
                if let Ok(plan) = serde_json::from_str::<Plan>(&text) {
                    return Ok(Some(plan));
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}
