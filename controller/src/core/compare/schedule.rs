//! Verification of a scheduled path: the verdict while the schedule has a link down, and what
//! the report says about the schedule's state.

use super::Report;
use crate::core::plan::schedule::DownNow;
use crate::core::plan::Plan;

/// The verdict while the schedule has link directions down: not verified, naming each one
/// and since when; nothing was probed (no traffic crosses a link that drops everything).
pub fn down_by_schedule(plan: &Plan, elapsed_ms: u64, down: &[DownNow]) -> Report {
    Report {
        path: plan.name.clone(),
        plan_hash: plan.hash.clone(),
        verified: false,
        control_plane_ok: false,
        hops: Vec::new(),
        off_path: Vec::new(),
        probes: Vec::new(),
        distance: Vec::new(),
        rate: None,
        down_by_schedule: down.to_vec(),
        note: Some(format!(
            "schedule at +{} s: {} link direction(s) down by schedule, so the path was not probed",
            elapsed_ms as f64 / 1000.0,
            down.len()
        )),
        elapsed_ms: 0,
        ipv6: None,
    }
}

/// Where the schedule stood while verifying (`start_ms` to `end_ms` after its start), and a
/// warning when it changed a link meanwhile (the probes may have seen either state).
pub fn schedule_note(plan: &Plan, start_ms: u64, end_ms: u64, other: Option<String>) -> String {
    let mut note = format!("judged against the schedule's state at +{} s", start_ms as f64 / 1000.0);
    let changed: Vec<String> = plan
        .schedule
        .iter()
        .flat_map(|s| &s.directions)
        .flat_map(|d| d.steps.iter().filter(|s| s.at_ms > start_ms && s.at_ms <= end_ms).map(move |s| format!("{} at +{} s", d.link, s.at_ms as f64 / 1000.0)))
        .collect();
    if !changed.is_empty() {
        note.push_str(&format!("; the schedule changed while verifying ({}): the probes may have seen either state", changed.join(", ")));
    }
    match other {
        Some(o) => format!("{o}\n{note}"),
        None => note,
    }
}
