//! A scheduled path: its delay lines at create (a link starting without delay too), then
//! each line handed its own timeline from one start time.

use super::*;
use crate::exec::distance::start_schedule;

fn scheduled() -> Plan {
    let s = spec::parse_yaml(
        "s.yaml",
        "name: s\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }]\nschedule:\n\
         \x20 - { at: 5s, link: r2-r3, delay: 100ms }\n  - { at: 6s, link: r2-r3, from: r2, rate: 20mbit }\n\
         \x20 - { at: 10s, link: r3-r2, from: r3, down: true }\n",
    )
    .unwrap();
    plan_on(&s, &["n1"])
}

#[tokio::test]
async fn every_line_of_a_scheduled_link_gets_its_timeline_from_one_start() {
    let plan = scheduled();
    let fakes = created(&plan).await;
    let lines = |c: &str| fakes.node("n1").containers()[c].delay_lines.clone();
    // Lines at both ends of r2–r3 from create on, though the link starts without delay.
    assert_eq!(lines("vte-s-r2").len() + lines("vte-s-r3").len(), 2);
    assert!(lines("vte-s-r1").is_empty(), "r1–r2 is not scheduled");
    assert!(lines("vte-s-r3").values().all(|l| l.delay_us == 0 && l.schedule.is_none()));

    let n = start_schedule(&plan, &fakes.nodes(), 1_800_000_000_000).await.unwrap();
    assert_eq!(n, 2);
    // At r3: what arrives from r2 (100 ms from +5 s; r3's own sending rate never changes).
    let at_r3 = lines("vte-s-r3").into_values().next().unwrap().schedule.unwrap();
    assert_eq!(at_r3.start_unix_ms, 1_800_000_000_000);
    let got: Vec<(u64, u64, bool, Option<u64>)> = at_r3.steps.iter().map(|s| (s.at_ms, s.delay_us, s.down, s.rate_bps)).collect();
    assert_eq!(got, [(5_000, 100_000, false, None), (6_000, 100_000, false, None), (10_000, 100_000, false, None)]);
    // At r2: what arrives from r3 (100 ms from +5 s, down from +10 s), and r2's own sending
    // rate toward r3 (from +6 s).
    let at_r2 = lines("vte-s-r2").into_values().next().unwrap().schedule.unwrap();
    let got: Vec<(u64, u64, bool, Option<u64>)> = at_r2.steps.iter().map(|s| (s.at_ms, s.delay_us, s.down, s.rate_bps)).collect();
    assert_eq!(got, [(5_000, 100_000, false, None), (6_000, 100_000, false, Some(20_000_000)), (10_000, 100_000, true, None)]);
}
