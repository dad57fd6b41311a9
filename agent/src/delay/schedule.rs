//! A delay line's timeline: the changes its link end goes through at fixed instants after an
//! absolute start time (unix milliseconds), applied by the line itself, so a schedule runs
//! without the controller. Each step holds the full state of the packets arriving at the end
//! (delay, jitter, loss, down) and, when it changes, the rate of the packets leaving through
//! the same interface (a `tbf` root qdisc: the line runs in the end's network namespace).
//!
//! The clock is the node's wall clock: every node of a cluster is assumed to keep the same
//! time (NTP or PTP); on one machine every namespace shares one clock anyway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::line::{Control, Settings};
use super::rules;

/// How long a packet may wait for the rate limit's tokens before it is dropped.
pub const RATE_LATENCY: Duration = Duration::from_millis(50);
/// The longest the runner sleeps before looking again whether its schedule was replaced.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineSchedule {
    /// The instant offsets count from, unix milliseconds.
    pub start_unix_ms: u64,
    /// In time order.
    pub steps: Vec<LineStep>,
}

/// The state from `at_ms` after the start on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineStep {
    pub at_ms: u64,
    pub delay_us: u64,
    pub jitter_us: u64,
    /// Per million.
    pub loss_ppm: u32,
    /// Every arriving packet dropped (counted as `dropped_down`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub down: bool,
    /// Bits per second leaving through the interface from then on, 0 for no limit; absent:
    /// unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bps: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Where a running schedule stands, as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub start_unix_ms: u64,
    pub steps: usize,
    /// Steps applied so far.
    pub applied: usize,
    /// Rate changes `tc` refused (the line's log says why).
    #[serde(default)]
    pub rate_errors: u64,
}

impl LineStep {
    pub fn settings(&self) -> Settings {
        Settings {
            delay_ms: self.delay_us as f64 / 1000.0,
            jitter_ms: self.jitter_us as f64 / 1000.0,
            loss_percent: f64::from(self.loss_ppm) / 10_000.0,
        }
    }
}

impl LineSchedule {
    /// Steps in strictly increasing time order, each with settings the line accepts.
    pub fn validate(&self) -> Result<(), String> {
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 && s.at_ms <= self.steps[i - 1].at_ms {
                return Err(format!("step {i} at {} ms is not after step {} at {} ms", s.at_ms, i - 1, self.steps[i - 1].at_ms));
            }
            s.settings().validate().map_err(|e| format!("step {i}: {e}"))?;
            if let Some(r) = s.rate_bps {
                if r > 1_000_000_000_000 {
                    return Err(format!("step {i}: rate {r} bit/s is above 1 Tbit/s"));
                }
            }
        }
        Ok(())
    }

    /// How many steps are due `elapsed_us` after the start (negative: before it).
    pub fn due(&self, elapsed_us: i128) -> usize {
        self.steps.iter().take_while(|s| i128::from(s.at_ms) * 1000 <= elapsed_us).count()
    }
}

/// The wall clock in microseconds since the epoch.
pub fn unix_us_now() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i128)
}

/// Runs `schedule` on the line in a thread of its own until its last step, a newer schedule
/// or the line's end. Steps already due are applied at once (the latest state of them).
pub fn spawn(control: Control, schedule: LineSchedule, ifname: String) -> Result<(), String> {
    schedule.validate()?;
    let generation = control.begin_schedule(Progress {
        start_unix_ms: schedule.start_unix_ms,
        steps: schedule.steps.len(),
        applied: 0,
        rate_errors: 0,
    });
    std::thread::Builder::new()
        .name("delay-schedule".into())
        .spawn(move || run(&control, &schedule, &ifname, generation))
        .map(|_| ())
        .map_err(|e| format!("starting the schedule thread: {e}"))
}

fn run(control: &Control, schedule: &LineSchedule, ifname: &str, generation: u64) {
    let start_us = i128::from(schedule.start_unix_ms) * 1000;
    let mut applied = 0;
    while control.runs_schedule(generation) {
        let now = unix_us_now();
        let due = schedule.due(now - start_us);
        if due > applied {
            let batch = &schedule.steps[applied..due];
            let last = batch[batch.len() - 1];
            let rate = batch.iter().rev().find_map(|s| s.rate_bps);
            let rate_failed = rate.is_some_and(|r| !set_rate(ifname, r));
            if let Err(e) = control.apply_step(last.settings(), last.down) {
                tracing::error!(error = %e, at_ms = last.at_ms, "schedule step refused");
            }
            applied = due;
            control.schedule_applied(generation, applied, rate_failed);
            tracing::info!(at_ms = last.at_ms, ?last, "schedule step applied");
        }
        let Some(next) = schedule.steps.get(applied) else { return };
        let wait_us = (start_us + i128::from(next.at_ms) * 1000 - unix_us_now()).max(0) as u64;
        std::thread::sleep(Duration::from_micros(wait_us).min(LOOK_AGAIN));
    }
}

/// `tc` in the line's own namespace: the rate of packets leaving through `ifname`.
fn set_rate(ifname: &str, rate_bps: u64) -> bool {
    match rules::set_rate(ifname, (rate_bps > 0).then_some(rate_bps), |inv| inv) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, ifname, rate_bps, "setting the rate");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(at_ms: u64, delay_us: u64) -> LineStep {
        LineStep { at_ms, delay_us, jitter_us: 0, loss_ppm: 0, down: false, rate_bps: None }
    }

    #[test]
    fn steps_are_due_from_their_offset_on() {
        let s = LineSchedule { start_unix_ms: 1_000, steps: vec![step(0, 1), step(5_000, 2), step(10_000, 3)] };
        assert_eq!(s.due(-1), 0);
        assert_eq!(s.due(0), 1);
        assert_eq!(s.due(4_999_999), 1);
        assert_eq!(s.due(5_000_000), 2);
        assert_eq!(s.due(i128::MAX), 3);
    }

    #[test]
    fn a_schedule_out_of_order_or_out_of_range_is_refused() {
        assert!(LineSchedule { start_unix_ms: 0, steps: vec![step(5, 0), step(5, 0)] }.validate().unwrap_err().contains("not after"));
        let mut bad = step(1, 0);
        bad.loss_ppm = 2_000_000;
        assert!(LineSchedule { start_unix_ms: 0, steps: vec![bad] }.validate().unwrap_err().contains("loss_percent"));
        assert_eq!(LineSchedule { start_unix_ms: 0, steps: vec![step(0, 0), step(1, 5)] }.validate(), Ok(()));
    }

    #[test]
    fn a_step_goes_over_in_the_lines_units_and_leaves_out_what_does_not_change() {
        let s = LineStep { at_ms: 30_000, delay_us: 2_500_000, jitter_us: 500, loss_ppm: 5_000, down: false, rate_bps: None };
        assert_eq!(s.settings(), Settings { delay_ms: 2500.0, jitter_ms: 0.5, loss_percent: 0.5 });
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"at_ms":30000,"delay_us":2500000,"jitter_us":500,"loss_ppm":5000}"#);
    }
}
