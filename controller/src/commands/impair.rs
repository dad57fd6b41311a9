//! `path impair`: a running link's delay, jitter, loss or rate, changed at once.

use anyhow::Context;

use super::path::plan_of;
use crate::core::objects;
use crate::core::plan;
use crate::core::spec::{self, SpecError};
use crate::error::{exit, BadInput};
use crate::exec::{cluster, distance, state};

pub struct ImpairOptions {
    pub name: String,
    /// `r3-r4`.
    pub link: String,
    pub from: Option<String>,
    pub delay: Option<String>,
    pub jitter: Option<String>,
    pub loss: Option<String>,
    pub rate: Option<String>,
    pub down: bool,
    pub up: bool,
}

/// `path impair`: changes one running link (both directions or one), then stores the plan
/// with the change so verification judges against it.
pub async fn impair(a: ImpairOptions) -> anyhow::Result<i32> {
    let change = impair_change(&a)?;
    let _lock = super::lock_path(&a.name)?;
    let nodes = cluster::nodes().await?;
    let mut plan = plan_of(&nodes, &a.name).await?;
    let (ra, rb) = link_ends(&plan, &a.link)?;
    // Its delay lines follow their timelines, and verify judges the link by them.
    let scheduled = plan.schedule.iter().flat_map(|s| &s.directions).any(|d| (d.from == ra && d.to == rb) || (d.from == rb && d.to == ra));
    if scheduled {
        return Err(BadInput(format!("--link {}: the link follows the path's schedule; change the schedule (delete and create the path) instead", a.link)).into());
    }
    let network = plan::distance::change_link(&mut plan, &ra, &rb, a.from.as_deref(), &change).map_err(BadInput)?;
    let sender = a.from.as_ref().and_then(|f| plan.router(f)).map(|r| r.container.clone());
    let changed: Vec<_> = objects::link_directions(&plan)
        .into_iter()
        .filter(|i| i.network == network && sender.as_ref().is_none_or(|c| *c == i.from.container))
        .collect();
    for i in &changed {
        distance::change(&nodes, i).await.with_context(|| format!("changing link {} of path '{}'", i.link, a.name))?;
    }
    state::store_plan(&plan, &nodes).with_context(|| format!("storing the plan of path '{}'", a.name))?;
    for i in &changed {
        eprintln!("link {}: {}", i.link, i.impair);
    }
    for w in plan::distance::underlay_too_long(&plan).iter().filter(|w| w.network == network) {
        eprintln!("warning: {w}");
    }
    Ok(exit::OK)
}

fn impair_change(a: &ImpairOptions) -> Result<plan::distance::ImpairChange, SpecError> {
    use crate::core::spec::distance::{duration, ppm, rate_or_off};
    let mut p = Vec::new();
    let q = |s: &String| spec::Quantity(s.clone());
    let mut change = plan::distance::ImpairChange { down: a.down, up: a.up, ..Default::default() };
    change.delay_us = a.delay.as_ref().map(|d| duration("--delay", &q(d), &mut p));
    change.jitter_us = a.jitter.as_ref().map(|d| duration("--jitter", &q(d), &mut p));
    change.loss_ppm = a.loss.as_ref().and_then(|l| ppm("--loss", &q(l), &mut p));
    change.rate_bps = a.rate.as_ref().and_then(|r| rate_or_off("--rate", &q(r), &mut p));
    if change == (plan::distance::ImpairChange::default()) {
        p.push(spec::Problem::new("path impair", "nothing to change: give --delay, --jitter, --loss, --rate, --down or --up"));
    }
    if p.is_empty() {
        Ok(change)
    } else {
        Err(SpecError::Invalid { source_name: "path impair".into(), problems: p })
    }
}

/// `r3-r4` → the two routers of a link of the plan (router names may contain `-`).
fn link_ends(plan: &plan::Plan, text: &str) -> Result<(String, String), BadInput> {
    let linked = |a: &str, b: &str| plan.networks.iter().any(|n| n.role == plan::NetworkRole::Link && n.joins(a, b));
    text.match_indices(['-', '–'])
        .map(|(i, sep)| (&text[..i], &text[i + sep.len()..]))
        .find(|(a, b)| linked(a, b))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| BadInput(format!("--link {text}: no link between two routers of path '{}' is named so (e.g. r3-r4)", plan.name)))
}

