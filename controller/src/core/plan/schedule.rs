//! The schedule pass: the spec's schedule and contact plan compiled into a timeline per link
//! direction (offsets after the path verified, and the full state after each change), and the
//! state the timeline gives at any elapsed time (what `path verify` and `path show` judge by).

use std::collections::BTreeSet;

use super::build::Cx;
use super::*;
use crate::core::spec::distance::Impair;
use crate::core::spec::schedule::{self as s, Change};

/// A link direction's state: its impairments, and whether it drops everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    #[serde(flatten)]
    pub impair: Impair,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
}

/// The state from `at_ms` after the start on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleStep {
    pub at_ms: u64,
    #[serde(flatten)]
    pub state: LinkState,
}

/// One direction of a scheduled link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionSchedule {
    /// `r3–r4` in the direction of the packets.
    pub link: String,
    pub network: String,
    pub from: String,
    pub to: String,
    /// Before the first step: the link's planned settings.
    pub initial: LinkState,
    /// In time order, each a different state from the one before.
    pub steps: Vec<ScheduleStep>,
}

/// Every direction of every link the schedule or the contact plan changes (both directions
/// of such a link, so each end has its delay line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulePlan {
    /// When the offsets count from, unix ms: set once the path verified at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_unix_ms: Option<u64>,
    pub directions: Vec<DirectionSchedule>,
}

/// Every timed change of a valid spec (its schedule and contact plan).
pub(super) fn resolve(spec: &crate::core::spec::PathSpec) -> Vec<s::Timed> {
    let mut ignore = Vec::new();
    s::resolve(spec, &mut ignore)
}

/// Compiles the timelines of a valid spec (`resolve`d) over the link networks the distance
/// pass set.
pub(super) fn compile(cx: &Cx, mut timed: Vec<s::Timed>, networks: &[NetworkPlan]) -> Option<SchedulePlan> {
    if timed.is_empty() {
        return None;
    }
    timed.sort_by_key(|t| (t.direction, t.at_ms, t.order));
    let links: BTreeSet<usize> = timed.iter().map(|t| t.direction.link).collect();
    let mut directions = Vec::new();
    for li in links {
        let l = &cx.links[li];
        let Some(n) = networks.iter().find(|n| n.role == NetworkRole::Link && n.index == li + 1) else { continue };
        let imp = n.impair.unwrap_or(LinkImpair { from_a: Impair::default(), from_b: Impair::default() });
        for (a_to_b, from, to, impair) in [(true, &l.a, &l.b, imp.from_a), (false, &l.b, &l.a, imp.from_b)] {
            let initial = LinkState { impair, down: false };
            let changes: Vec<(u64, Change)> =
                timed.iter().filter(|t| t.direction.link == li && t.direction.a_to_b == a_to_b).map(|t| (t.at_ms, t.change)).collect();
            directions.push(DirectionSchedule {
                link: format!("{from}–{to}"),
                network: n.name.clone(),
                from: from.clone(),
                to: to.clone(),
                initial,
                steps: fold(initial, &changes),
            });
        }
    }
    Some(SchedulePlan { start_unix_ms: None, directions })
}

/// The steps of one direction: the changes at each offset (in order) applied to the state
/// before, kept where the state differs from the one before.
pub fn fold(initial: LinkState, changes: &[(u64, Change)]) -> Vec<ScheduleStep> {
    let mut steps: Vec<ScheduleStep> = Vec::new();
    let mut state = initial;
    let mut i = 0;
    while i < changes.len() {
        let at_ms = changes[i].0;
        while i < changes.len() && changes[i].0 == at_ms {
            let c = changes[i].1;
            if let Some(v) = c.delay_us {
                state.impair.delay_us = v;
            }
            if c.own_delay {
                state.impair.delay_us = initial.impair.delay_us;
            }
            if let Some(v) = c.jitter_us {
                state.impair.jitter_us = v;
            }
            if let Some(v) = c.loss_ppm {
                state.impair.loss_ppm = v;
            }
            if let Some(v) = c.rate_bps {
                state.impair.rate_bps = v;
            }
            if let Some(d) = c.down {
                state.down = d;
            }
            i += 1;
        }
        let before = steps.last().map_or(initial, |s| s.state);
        if state != before {
            steps.push(ScheduleStep { at_ms, state });
        }
    }
    steps
}

/// Where one direction stands `elapsed_ms` after the start: the state, the last step applied
/// (index) and the step after it.
pub fn position(d: &DirectionSchedule, elapsed_ms: u64) -> (LinkState, Option<usize>, Option<&ScheduleStep>) {
    let applied = d.steps.iter().take_while(|s| s.at_ms <= elapsed_ms).count();
    let state = if applied == 0 { d.initial } else { d.steps[applied - 1].state };
    (state, applied.checked_sub(1), d.steps.get(applied))
}

/// Since when a direction down at `elapsed_ms` has been down (ms after the start).
pub fn down_since(d: &DirectionSchedule, elapsed_ms: u64) -> Option<u64> {
    let (state, last, _) = position(d, elapsed_ms);
    if !state.down {
        return None;
    }
    let last = last?;
    let first = (0..=last).rev().take_while(|&k| d.steps[k].state.down).last().unwrap_or(last);
    Some(d.steps[first].at_ms)
}

/// The largest state each scheduled direction takes (delay and jitter), for the session
/// settings that must hold across every delay the schedule gives.
pub fn worst(d: &DirectionSchedule) -> Impair {
    let mut w = d.initial.impair;
    for s in &d.steps {
        w.delay_us = w.delay_us.max(s.state.impair.delay_us);
        w.jitter_us = w.jitter_us.max(s.state.impair.jitter_us);
    }
    w
}

/// A link direction down by schedule now: its link, since when and until when (ms after start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownNow {
    pub link: String,
    pub since_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub until_ms: Option<u64>,
}

/// The impairments of a scheduled direction in its network: `from_a` where the direction
/// leaves the network's first end.
fn direction(from_a: bool, imp: &mut LinkImpair) -> &mut Impair {
    if from_a {
        &mut imp.from_a
    } else {
        &mut imp.from_b
    }
}

/// Copies of `networks` with each scheduled direction at the largest delay its schedule
/// gives it: what the sessions across it must hold through.
pub fn at_worst(networks: &[NetworkPlan], schedule: Option<&SchedulePlan>) -> Vec<NetworkPlan> {
    let mut worst = networks.to_vec();
    for d in schedule.iter().flat_map(|s| &s.directions) {
        let Some(n) = worst.iter_mut().find(|n| n.name == d.network) else { continue };
        let from_a = n.ends.first().is_some_and(|e| e.name == d.from);
        if let Some(imp) = &mut n.impair {
            *direction(from_a, imp) = self::worst(d);
        }
    }
    worst
}

/// The plan as the schedule has it `elapsed_ms` after its start: each scheduled direction's
/// current impairments (a direction down counts as 100 % loss), the planned delays with them,
/// and the directions down now.
pub fn plan_at(plan: &Plan, elapsed_ms: u64) -> (Plan, Vec<DownNow>) {
    let mut now = plan.clone();
    let mut down = Vec::new();
    let Some(sched) = &plan.schedule else { return (now, down) };
    for d in &sched.directions {
        let (state, _, _) = position(d, elapsed_ms);
        let Some(n) = now.networks.iter_mut().find(|n| n.name == d.network) else { continue };
        let Some(imp) = &mut n.impair else { continue };
        let mut i = state.impair;
        if state.down {
            i.loss_ppm = 1_000_000;
            let until = d.steps.iter().find(|s| s.at_ms > elapsed_ms && !s.state.down).map(|s| s.at_ms);
            down.push(DownNow { link: d.link.clone(), since_ms: down_since(d, elapsed_ms).unwrap_or(0), until_ms: until });
        }
        *direction(n.ends.first().is_some_and(|e| e.name == d.from), imp) = i;
    }
    distance::recompute(&mut now);
    (now, down)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{build, Inventory};
    use crate::core::spec::{parse_yaml, ContactPlanSpec};

    fn spec(extra: &str) -> crate::core::spec::PathSpec {
        let text = format!("name: s\nrouters: [{{ name: r1 }}, {{ name: r2 }}, {{ name: r3 }}, {{ name: r4 }}]\n{extra}");
        parse_yaml("s.yaml", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_schedule_compiles_to_full_states_per_direction() {
        let s = spec(
            "link_defaults: { delay: 10ms }\nschedule:\n  - { at: 30s, link: r3-r4, delay: 2.5s }\n  - { at: 60s, link: r4-r3, down: true }\n\
             \x20 - { at: 90s, link: r3-r4, up: true, from: r3, loss: 1 }\n",
        );
        let p = build(&s, &Inventory::default()).unwrap();
        let sched = p.schedule.as_ref().unwrap();
        assert_eq!(sched.directions.len(), 2, "both directions of r3–r4, no other link");
        let fwd = &sched.directions[0];
        assert_eq!((fwd.link.as_str(), fwd.from.as_str()), ("r3–r4", "r3"));
        let st = |delay_ms: u64, loss_ppm: u32, down: bool| LinkState {
            impair: Impair { delay_us: delay_ms * 1000, loss_ppm, ..Default::default() },
            down,
        };
        assert_eq!(fwd.initial, st(10, 0, false));
        let got: Vec<(u64, LinkState)> = fwd.steps.iter().map(|s| (s.at_ms, s.state)).collect();
        assert_eq!(got, [(30_000, st(2500, 0, false)), (60_000, st(2500, 0, true)), (90_000, st(2500, 10_000, false))]);
        let back: Vec<(u64, LinkState)> = sched.directions[1].steps.iter().map(|s| (s.at_ms, s.state)).collect();
        assert_eq!(back, [(30_000, st(2500, 0, false)), (60_000, st(2500, 0, true))], "r4 → r3 stays down");

        // At 70 s the link is down since 60 s (r3 → r4 until 90 s; r4 → r3 for good).
        let (now, down) = plan_at(&p, 70_000);
        assert_eq!(
            down,
            [
                DownNow { link: "r3–r4".into(), since_ms: 60_000, until_ms: Some(90_000) },
                DownNow { link: "r4–r3".into(), since_ms: 60_000, until_ms: None }
            ]
        );
        assert_eq!(now.distance.as_ref().unwrap().one_way_us, 10_000 + 10_000 + 2_500_000);
        let (before, none) = plan_at(&p, 29_999);
        assert!(none.is_empty());
        assert_eq!(before.distance.as_ref().unwrap().one_way_us, 30_000);
        // BGP across r3–r4 is planned for the largest delay it will get.
        let r3 = p.router("r3").unwrap();
        assert!(r3.neighbors.iter().any(|n| n.timers.is_some()), "{:?}", r3.neighbors);
    }

    #[test]
    fn a_scheduled_link_without_delay_still_gets_its_delay_lines() {
        let s = spec("schedule: [{ at: 5s, link: r2-r3, delay: 100ms }]\n");
        let p = build(&s, &Inventory::default()).unwrap();
        let lines: Vec<String> = crate::core::objects::impairments(&p).iter().filter_map(|i| i.delay_line()).map(|l| l.container).collect();
        assert_eq!(lines, ["vte-s-r3", "vte-s-r2"]);
    }

    #[test]
    fn a_contact_plan_drives_up_down_rate_and_delay() {
        let mut s = spec("");
        s.contact_plan = Some(ContactPlanSpec {
            file: None,
            text: Some("a contact +0 +10 1 2 125000\na contact +0 +10 2 1 125000\na contact +20 +30 1 2 1250\na range +5 +25 1 2 1\n".into()),
            nodes: [("r1".to_string(), 1), ("r2".to_string(), 2)].into(),
            loaded: None,
        });
        let p = build(&s, &Inventory::default()).unwrap();
        let d = &p.schedule.as_ref().unwrap().directions;
        let fwd: Vec<(u64, u64, u64, bool)> = d[0].steps.iter().map(|s| (s.at_ms, s.state.impair.delay_us, s.state.impair.rate_bps, s.state.down)).collect();
        assert_eq!(
            fwd,
            [(0, 0, 1_000_000, false), (5_000, 1_000_000, 1_000_000, false), (10_000, 1_000_000, 1_000_000, true), (20_000, 1_000_000, 10_000, false), (25_000, 0, 10_000, false), (30_000, 0, 10_000, true)]
        );
        let back: Vec<(u64, bool)> = d[1].steps.iter().map(|s| (s.at_ms, s.state.down)).collect();
        assert_eq!(back, [(0, false), (5_000, false), (10_000, true), (25_000, true)]);
        assert_eq!(down_since(&d[1], 26_000), Some(10_000));
        assert_eq!(position(&d[0], 12_000).2.map(|s| s.at_ms), Some(20_000));
    }
}
