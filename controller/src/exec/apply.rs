//! Applying an update to the running routers (see `core::replan` for what may change).

use futures_util::stream::{self, StreamExt};

use super::nodes::{Nodes, PARALLELISM};
use super::state::{self, StateError};
use crate::core::plan::Plan;
use crate::core::render;
use crate::core::replan::changes;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("rendering the new configs: {0}")]
    Render(#[from] render::RenderError),
    #[error("{failed} of {total} routers were not updated ({details}); the others run the new policy; run the same `path update` again once the cause is fixed")]
    Routers { failed: usize, total: usize, details: String },
    #[error("the routers run the new policy, but storing the new plan failed: {0}; run the same `path update` again")]
    Plan(#[from] StateError),
}

/// Applies the new plan to the running routers, then stores it (so `path verify/show` read
/// the new one). Routers first: if one fails, the stored plan stays
/// the old one and running the update again removes the old policy where it is left.
pub async fn apply(old: &Plan, new: &Plan, nodes: &Nodes) -> Result<usize, ApplyError> {
    let list = changes(old, new)?;
    let total = list.len();
    let results: Vec<(String, Result<(), String>)> = stream::iter(list)
        .map(|c| async move {
            let r = match nodes.by_name.get(&c.node) {
                None => Err(format!("node {} is not reachable from here", c.node)),
                Some(n) => n.apply_frr_config(&c.container, &c.config, &c.remove).await.map_err(|e| e.to_string()),
            };
            (c.router, r)
        })
        .buffer_unordered(PARALLELISM)
        .collect()
        .await;
    let failed: Vec<String> =
        results.iter().filter_map(|(r, res)| res.as_ref().err().map(|e| format!("{r}: {e}"))).collect();
    if !failed.is_empty() {
        return Err(ApplyError::Routers { failed: failed.len(), total, details: failed.join("; ") });
    }
    state::store_plan(new, nodes)?;
    Ok(total)
}
