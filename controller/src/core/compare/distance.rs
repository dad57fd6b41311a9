//! Distance: measured round-trip times against the plan's delays.
//!
//! Each link is judged on its own share of the traceroute times (the time to the hop after
//! it minus the time to the hop before), so a link whose delay changed is named, not only
//! the hops behind it; the end-to-end ping time is judged against the sum of the links'
//! allowances. An allowance is the larger of the plan's absolute and relative tolerances.

use serde::{Deserialize, Serialize};

use super::Observed;
use crate::core::plan::{ms, DistancePlan, Plan, TracerouteExpectation};

/// One direction of the path: each link's share of the round trip, and end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayReport {
    pub from: String,
    pub to: String,
    pub links: Vec<LinkDelay>,
    pub end_to_end: Measure,
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDelay {
    /// `r3–r4`, in the direction of the probe.
    pub link: String,
    #[serde(flatten)]
    pub rtt: Measure,
}

/// A planned round-trip time, what was measured (None: no reply), and how far apart they
/// may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    pub planned_us: u64,
    pub measured_us: Option<u64>,
    pub allowance_us: u64,
    pub ok: bool,
}

impl Measure {
    fn new(planned_us: u64, measured_us: Option<u64>, allowance_us: u64) -> Self {
        let ok = measured_us.is_some_and(|m| m.abs_diff(planned_us) <= allowance_us);
        Measure { planned_us, measured_us, allowance_us, ok }
    }

    fn describe(&self) -> String {
        match self.measured_us {
            Some(m) => format!("{}, planned {} ± {}", ms(m), ms(self.planned_us), ms(self.allowance_us)),
            None => format!("no reply, planned {}", ms(self.planned_us)),
        }
    }
}

/// Both directions' delay reports (empty for a path without distance, or when the delays
/// were not applied yet).
pub fn delay_reports(plan: &Plan, obs: &Observed) -> Vec<DelayReport> {
    let Some(d) = &plan.distance else { return Vec::new() };
    plan.expectations
        .traceroutes
        .iter()
        .filter(|t| !t.rtt_us.is_empty())
        .map(|t| direction(plan, d, t, obs))
        .collect()
}

fn direction(plan: &Plan, d: &DistancePlan, t: &TracerouteExpectation, obs: &Observed) -> DelayReport {
    let key = (t.from.clone(), t.to.clone());
    let measured: &[Option<u64>] = obs.trace_rtts.get(&key).map(Vec::as_slice).unwrap_or(&[]);
    let hop_names = hop_names(plan, t);
    let mut links = Vec::new();
    // Hops 1..n-1 are the routers after the first; the last entry (the far host) adds no link.
    for k in 1..t.rtt_us.len().saturating_sub(1) {
        let planned = t.rtt_us[k] - t.rtt_us[k - 1];
        let share = match (measured.get(k).copied().flatten(), measured.get(k - 1).copied().flatten()) {
            (Some(here), Some(before)) => Some(here.saturating_sub(before)),
            _ => None,
        };
        links.push(LinkDelay { link: format!("{}–{}", hop_names[k - 1], hop_names[k]), rtt: Measure::new(planned, share, d.allowance_us(planned)) });
    }
    let planned_total = t.rtt_us.last().copied().unwrap_or(0);
    let total_allowance = links.iter().map(|l| l.rtt.allowance_us).sum::<u64>().max(d.allowance_us(planned_total));
    let end_to_end = Measure::new(planned_total, obs.ping_rtts.get(&key).copied().flatten(), total_allowance);
    let mut problems: Vec<String> =
        links.iter().filter(|l| !l.rtt.ok).map(|l| format!("link {}: round trip {}", l.link, l.rtt.describe())).collect();
    if !end_to_end.ok {
        problems.push(format!("end to end: round trip {}", end_to_end.describe()));
    }
    DelayReport { from: t.from.clone(), to: t.to.clone(), ok: problems.is_empty(), links, end_to_end, problems }
}

/// The router names of a traceroute's hops, in order (the far host last).
fn hop_names(plan: &Plan, t: &TracerouteExpectation) -> Vec<String> {
    let mut names: Vec<String> = plan.path.clone();
    if t.from != plan.hosts.first().map_or(String::new(), |h| h.name.clone()) {
        names.reverse();
    }
    names.push(t.to.clone());
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{build, Inventory};
    use crate::core::spec;

    fn long_haul() -> Plan {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../paths/long-haul.yaml")).unwrap();
        build(&spec::parse_yaml("long-haul.yaml", &text).unwrap(), &Inventory::default()).unwrap()
    }

    /// What the hosts would measure: the plan's times plus `extra` µs of processing per hop.
    fn measured(plan: &Plan, extra: u64) -> Observed {
        let mut obs = Observed::default();
        for t in &plan.expectations.traceroutes {
            let key = (t.from.clone(), t.to.clone());
            let rtts = t.rtt_us.iter().enumerate().map(|(k, r)| Some(r + extra * k as u64)).collect();
            obs.trace_rtts.insert(key.clone(), rtts);
            obs.ping_rtts.insert(key, t.rtt_us.last().map(|r| r + extra * t.rtt_us.len() as u64));
        }
        obs
    }

    #[test]
    fn delays_as_planned_pass_within_the_tolerance() {
        let plan = long_haul();
        let reports = delay_reports(&plan, &measured(&plan, 300));
        assert_eq!(reports.len(), 2);
        for r in &reports {
            assert!(r.ok, "{r:?}");
            assert_eq!(r.links.len(), 5);
            assert_eq!(r.end_to_end.planned_us, 120_000);
        }
        assert_eq!(reports[0].links[2].link, "a3–a4");
        assert_eq!(reports[0].links[2].rtt.planned_us, 40_000);
    }

    #[test]
    fn a_link_slower_than_planned_is_named_and_so_is_the_end_to_end_time() {
        let plan = long_haul();
        let mut obs = measured(&plan, 0);
        let key = ("src".to_string(), "dst".to_string());
        // a4–a5 takes 30 ms more: every hop from a5 on is later by that.
        let rtts = obs.trace_rtts.get_mut(&key).unwrap();
        for r in rtts.iter_mut().skip(4) {
            *r = r.map(|v| v + 30_000);
        }
        *obs.ping_rtts.get_mut(&key).unwrap() = Some(150_000);
        let reports = delay_reports(&plan, &obs);
        let there = &reports[0];
        assert!(!there.ok);
        assert_eq!(there.problems.len(), 2, "{:?}", there.problems);
        assert!(there.problems[0].starts_with("link a4–a5: round trip 50 ms, planned 20 ms"), "{}", there.problems[0]);
        assert!(there.problems[1].starts_with("end to end: round trip 150 ms, planned 120 ms"), "{}", there.problems[1]);
        assert!(reports[1].ok, "the way back is untouched: {:?}", reports[1]);
    }

    #[test]
    fn a_missing_reply_fails_its_link() {
        let plan = long_haul();
        let mut obs = measured(&plan, 0);
        obs.trace_rtts.get_mut(&("src".to_string(), "dst".to_string())).unwrap()[2] = None;
        let r = &delay_reports(&plan, &obs)[0];
        assert!(!r.ok);
        assert!(r.problems.iter().any(|p| p.starts_with("link a2–a3: round trip no reply")), "{:?}", r.problems);
    }
}
