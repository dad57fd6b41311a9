//! Applying an update to the running routers (see `core::replan` for what may change).

use futures_util::stream::{self, StreamExt};
use vnet_te_agent::node::FileSpec;

use super::nodes::{Nodes, PARALLELISM};
use crate::core::objects::PLAN_PATH;
use crate::core::plan::Plan;
use crate::core::render;
use crate::core::replan::changes;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("rendering the new configs: {0}")]
    Render(#[from] render::RenderError),
    #[error("{failed} of {total} routers were not updated ({details}); the others run the new policy; run the same `path update` again once the cause is fixed")]
    Routers { failed: usize, total: usize, details: String },
    #[error("the routers run the new policy, but storing the new plan in host {host} failed: {message}; run the same `path update` again")]
    Plan { host: String, message: String },
}

/// Applies the new plan to the running routers, then stores it in the experiment hosts (so
/// `path verify/show` read the new one). Routers first: if one fails, the stored plan stays
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
    store_plan(new, nodes).await?;
    Ok(total)
}

/// Stores the plan in the path's experiment hosts (what `path verify/show` read).
pub async fn store_plan(plan: &Plan, nodes: &Nodes) -> Result<(), ApplyError> {
    let json = serde_json::to_string(plan).expect("plan serialises");
    for h in &plan.hosts {
        let Some(node) = nodes.by_name.get(&h.node) else {
            return Err(ApplyError::Plan { host: h.name.clone(), message: format!("node {} is not reachable", h.node) });
        };
        node.write_files(&h.container, &[FileSpec { path: PLAN_PATH.into(), mode: 0o644, content: json.clone() }])
            .await
            .map_err(|e| ApplyError::Plan { host: h.name.clone(), message: e.to_string() })?;
    }
    Ok(())
}
