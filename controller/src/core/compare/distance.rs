//! Distance: measured round-trip times against the plan's delays.
//!
//! Each hop's round trip from the host (the fastest of a few one-probe-at-a-time
//! traceroutes) is judged against the plan's cumulative delay to it, within the larger of
//! the plan's absolute and relative tolerances; the first hop out of tolerance names the link
//! before it (the hops behind inherit its error). End to end, the fastest ping.

use serde::{Deserialize, Serialize};

use super::Observed;
use crate::core::plan::distance::round_trip_delivery;
use crate::core::plan::{ms, DistancePlan, Plan, TracerouteExpectation};

/// Pings in a loss burst (`exec::observe`).
pub const BURST: u32 = 200;

/// One direction of the path: each hop's round trip, and end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayReport {
    pub from: String,
    pub to: String,
    pub hops: Vec<HopDelay>,
    pub end_to_end: Measure,
    /// A burst of pings against the planned loss (paths with loss).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss: Option<LossMeasure>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopDelay {
    pub hop: String,
    /// The link the probe crossed last to reach the hop: `r3–r4`.
    pub link: String,
    #[serde(flatten)]
    pub rtt: Measure,
}

/// Pings sent and come back, against the share the plan's losses let through: within five
/// standard deviations of the binomial count (a false alarm about once in 1.7 million).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossMeasure {
    pub sent: u32,
    pub received: Option<u32>,
    /// Expected replies, in thousandths of a ping.
    pub expected_milli: u64,
    pub min_received: u32,
    pub max_received: u32,
    pub ok: bool,
}

impl LossMeasure {
    pub fn new(sent: u32, delivery: f64, received: Option<u32>) -> Self {
        let n = f64::from(sent);
        let mean = n * delivery;
        let spread = 5.0 * (n * delivery * (1.0 - delivery)).sqrt() + 1.0;
        let min_received = (mean - spread).max(0.0).ceil() as u32;
        let max_received = (mean + spread).min(n).floor() as u32;
        let ok = received.is_some_and(|r| (min_received..=max_received).contains(&r));
        LossMeasure { sent, received, expected_milli: (mean * 1000.0).round() as u64, min_received, max_received, ok }
    }

    fn describe(&self) -> String {
        let planned = 100.0 - self.expected_milli as f64 / 10.0 / f64::from(self.sent.max(1));
        match self.received {
            Some(r) => format!(
                "{r} of {} pings came back ({:.1} % lost), planned {planned:.1} % lost: {}…{} back at 5σ",
                self.sent,
                100.0 * f64::from(self.sent - r.min(self.sent)) / f64::from(self.sent.max(1)),
                self.min_received,
                self.max_received
            ),
            None => format!("the burst of {} pings did not run", self.sent),
        }
    }
}

/// TCP throughput from the first host to the last against the slowest rate the plan sets
/// along the path: within ±10 % (TCP over a token bucket gets most of its rate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateMeasure {
    pub from: String,
    pub to: String,
    pub planned_bps: u64,
    pub measured_bps: Option<u64>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<String>,
}

/// The slowest rate set on the path's links toward the last hop, if any.
pub fn planned_rate(plan: &Plan) -> Option<u64> {
    crate::core::plan::distance::path_directions(plan).iter().map(|(f, _)| f.rate_bps).filter(|r| *r > 0).min()
}

/// Judges a throughput measured from the first host to the last (`Err`: why there is none).
pub fn rate_report(plan: &Plan, measured: Result<u64, String>) -> Option<RateMeasure> {
    let planned = planned_rate(plan)?;
    let (a, b) = (plan.hosts.first()?.name.clone(), plan.hosts.get(1)?.name.clone());
    let (measured_bps, problem) = match measured {
        Ok(m) if m.abs_diff(planned) * 10 <= planned => (Some(m), None),
        Ok(m) => (Some(m), Some(format!("{:.2} Mbit/s, planned {:.2} Mbit/s ± 10 %", m as f64 / 1e6, planned as f64 / 1e6))),
        Err(e) => (None, Some(e)),
    };
    Some(RateMeasure { from: a, to: b, planned_bps: planned, measured_bps, ok: problem.is_none(), problem })
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
    let names = hop_names(plan, t);
    let hops: Vec<HopDelay> = hop_measures(d, t, measured)
        .map(|(k, rtt)| HopDelay { hop: names[k].clone(), link: format!("{}–{}", names[k - 1], names[k]), rtt })
        .collect();
    let planned_total = t.rtt_us.last().copied().unwrap_or(0);
    let end_to_end = Measure::new(planned_total, obs.ping_rtts.get(&key).copied().flatten(), d.allowance_us(planned_total));
    let mut problems = Vec::new();
    let failing: Vec<&HopDelay> = hops.iter().filter(|h| !h.rtt.ok).collect();
    if let Some(first) = failing.first() {
        let later = if failing.len() > 1 { format!(" (and {} hops behind it)", failing.len() - 1) } else { String::new() };
        problems.push(format!("link {}: round trip to {} {}{later}", first.link, first.hop, first.rtt.describe()));
    }
    if !end_to_end.ok {
        problems.push(format!("end to end: round trip {}", end_to_end.describe()));
    }
    let loss = round_trip_delivery(plan).map(|delivery| {
        let burst = obs.bursts.get(&key).copied().flatten();
        LossMeasure::new(burst.map_or(BURST, |b| b.transmitted), delivery, burst.map(|b| b.received))
    });
    if let Some(l) = loss.filter(|l| !l.ok) {
        problems.push(format!("loss: {}", l.describe()));
    }
    DelayReport { from: t.from.clone(), to: t.to.clone(), ok: problems.is_empty(), hops, end_to_end, loss, problems }
}

/// Each delayed hop of a traceroute (by its index) against its planned round trip. Hop 0 is
/// the first router, behind the host's own (undelayed) LAN; the far host, last, adds no link.
fn hop_measures<'a>(d: &'a DistancePlan, t: &'a TracerouteExpectation, measured: &'a [Option<u64>]) -> impl Iterator<Item = (usize, Measure)> + 'a {
    (1..t.rtt_us.len().saturating_sub(1))
        .map(move |k| (k, Measure::new(t.rtt_us[k], measured.get(k).copied().flatten(), d.allowance_us(t.rtt_us[k]))))
}

/// Whether every delayed hop of one traceroute's round trips is within its allowance (true
/// for a path without distance): one sample that is needs no more.
pub fn hops_within(plan: &Plan, t: &TracerouteExpectation, measured: &[Option<u64>]) -> bool {
    plan.distance.as_ref().is_none_or(|d| hop_measures(d, t, measured).all(|(_, m)| m.ok))
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
    use vnet_te_agent::probe::PingSummary;

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
            obs.ping_rtts.insert(key.clone(), t.rtt_us.last().map(|r| r + extra * t.rtt_us.len() as u64));
            // a1–a2 loses 1 % each way: 196 of 200 come back on average.
            obs.bursts.insert(key, Some(PingSummary { transmitted: 200, received: 196, rtt_ms: None }));
        }
        obs
    }

    #[test]
    fn a_loss_far_from_the_plan_is_named_with_its_bound() {
        let plan = long_haul();
        let mut obs = measured(&plan, 0);
        let key = ("src".to_string(), "dst".to_string());
        obs.bursts.insert(key, Some(PingSummary { transmitted: 200, received: 150, rtt_ms: None }));
        let r = &delay_reports(&plan, &obs)[0];
        assert!(!r.ok);
        let l = r.loss.unwrap();
        assert_eq!((l.min_received, l.max_received, l.expected_milli), (186, 200, 196_020));
        assert!(
            r.problems.iter().any(|p| p == "loss: 150 of 200 pings came back (25.0 % lost), planned 2.0 % lost: 186…200 back at 5σ"),
            "{:?}",
            r.problems
        );
        assert!(delay_reports(&plan, &measured(&plan, 0)).iter().all(|r| r.ok && r.loss.is_some_and(|l| l.ok)));
    }

    #[test]
    fn one_traceroute_whose_hops_are_all_within_needs_no_more_samples() {
        let plan = long_haul();
        let t = &plan.expectations.traceroutes[0];
        let key = (t.from.clone(), t.to.clone());
        let good = measured(&plan, 300).trace_rtts[&key].clone();
        assert!(hops_within(&plan, t, &good));
        let mut late = good.clone();
        late[3] = late[3].map(|r| r + 20_000);
        assert!(!hops_within(&plan, t, &late), "one late hop asks for more samples");
        let mut lost = good;
        lost[2] = None;
        assert!(!hops_within(&plan, t, &lost), "a hop without a reply asks for more samples");
        assert!(!hops_within(&plan, t, &[]), "no traceroute at all");
        let zero = crate::core::plan::distance::without_distance(&plan);
        assert!(hops_within(&zero, &zero.expectations.traceroutes[0], &[]), "no distance, nothing to judge");
    }

    #[test]
    fn delays_as_planned_pass_within_the_tolerance() {
        let plan = long_haul();
        let reports = delay_reports(&plan, &measured(&plan, 300));
        assert_eq!(reports.len(), 2);
        for r in &reports {
            assert!(r.ok, "{r:?}");
            assert_eq!(r.hops.len(), 5);
            assert_eq!(r.end_to_end.planned_us, 120_000);
        }
        assert_eq!(reports[0].hops[2].link, "a3–a4");
        assert_eq!(reports[0].hops[2].rtt.planned_us, 80_000);
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
        assert!(
            there.problems[0].starts_with("link a4–a5: round trip to a5 130 ms, planned 100 ms ± 3 ms (and 1 hops behind it)"),
            "{}",
            there.problems[0]
        );
        assert!(there.problems[1].starts_with("end to end: round trip 150 ms, planned 120 ms"), "{}", there.problems[1]);
        assert!(reports[1].ok, "the way back is untouched: {:?}", reports[1]);
    }

    #[test]
    fn a_rate_is_judged_against_the_slowest_link_within_10_percent() {
        let plan = long_haul();
        assert_eq!(planned_rate(&plan), Some(100_000_000));
        assert!(rate_report(&plan, Ok(94_000_000)).unwrap().ok);
        let slow = rate_report(&plan, Ok(80_000_000)).unwrap();
        assert_eq!(slow.problem.as_deref(), Some("80.00 Mbit/s, planned 100.00 Mbit/s ± 10 %"));
        assert!(!rate_report(&plan, Err("no result".into())).unwrap().ok);
        let plain = build(&spec::chain("p", 3).unwrap(), &Inventory::default()).unwrap();
        assert_eq!(rate_report(&plain, Ok(1)), None);
    }

    #[test]
    fn a_missing_reply_fails_its_link() {
        let plan = long_haul();
        let mut obs = measured(&plan, 0);
        obs.trace_rtts.get_mut(&("src".to_string(), "dst".to_string())).unwrap()[2] = None;
        let r = &delay_reports(&plan, &obs)[0];
        assert!(!r.ok);
        assert!(r.problems.iter().any(|p| p.starts_with("link a2–a3: round trip to a3 no reply")), "{:?}", r.problems);
    }
}
