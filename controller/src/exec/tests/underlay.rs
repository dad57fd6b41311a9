//! The underlay under links between nodes: measured at once for every pair of nodes, before
//! anything is made, and taken off the delay lines that create starts.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::plan_on;
use crate::core::plan::{self, Plan, Underlay};
use crate::core::spec::{self, ImpairSpec};
use crate::exec::distance::{measure_underlay, UNDERLAY_ECHOES};
use crate::exec::fake::{Call, Fakes};
use crate::exec::{create, NoProgress};

/// Six hops at 5 ms per link, round-robin over n1..n3 (10.0.0.1..3): every link crosses nodes.
fn spread() -> Plan {
    let mut s = spec::chain("u", 6).unwrap();
    s.link_defaults = Some(ImpairSpec { delay: Some("5ms".into()), ..Default::default() });
    plan_on(&s, &["n1", "n2", "n3"])
}

#[tokio::test]
async fn every_pair_of_nodes_is_measured_once_all_at_once_and_the_lines_hold_the_rest() {
    let plan = spread();
    let fakes = Fakes::new(&["n1", "n2", "n3"]);
    fakes.node("n2").set_underlay_rtts(Ipv4Addr::new(10, 0, 0, 3), &[900, 640, 700]);
    let measured = measure_underlay(&plan, &fakes.nodes()).await;
    let pings = fakes.journal.of_kind("underlay_rtts");
    let asked: Vec<(String, Call)> = pings.iter().map(|e| (e.node.clone(), e.call.clone())).collect();
    let to = |last: u8| Call::UnderlayRtts { target: Ipv4Addr::new(10, 0, 0, last), count: UNDERLAY_ECHOES };
    let mut sorted = asked.clone();
    sorted.sort_by_key(|(n, c)| format!("{n} {c}"));
    assert_eq!(sorted, [("n1".into(), to(2)), ("n1".into(), to(3)), ("n2".into(), to(3))], "from each pair's first node to the other");
    let first_end = pings.iter().filter_map(|e| e.ended).min().unwrap();
    assert!(pings.iter().all(|e| e.began < first_end), "all pairs at once:\n{}", fakes.journal.dump());
    assert_eq!(fakes.journal.entries().len(), 3, "nothing else is asked before the path is made");

    let ok: BTreeMap<(String, String), Underlay> = measured.into_iter().map(|(k, r)| (k, r.unwrap())).collect();
    assert_eq!(ok[&("n2".to_string(), "n3".to_string())], Underlay { rtt_us: 640, one_way_us: 320 });
    assert_eq!(ok[&("n1".to_string(), "n2".to_string())], Underlay { rtt_us: 100, one_way_us: 50 });
    let mut plan = plan;
    assert!(plan::distance::set_underlay(&mut plan, &ok).is_empty());
    create::create(&plan, &fakes.nodes(), &create::Run::default(), &NoProgress).await.unwrap_or_else(|e| panic!("create: {e}\n{}", fakes.journal.dump()));
    // r2 (n2) holds what arrives from r1 (n1) and from r3 (n3).
    let lines: Vec<(String, u64)> = fakes
        .journal
        .of_kind("start_delay_line")
        .into_iter()
        .filter_map(|e| match e.call {
            Call::StartDelayLine(d) if d.container == "vte-u-r2" => Some((d.ifname, d.delay_us)),
            _ => None,
        })
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let mut delays: Vec<u64> = lines.iter().map(|(_, d)| *d).collect();
    delays.sort_unstable();
    assert_eq!(delays, [5_000 - 320, 5_000 - 50]);
    // The plan (stored as it is once the create succeeded) carries the underlay under each link.
    assert_eq!(plan.networks.iter().filter(|n| n.underlay.is_some()).count(), 5);
}

#[tokio::test]
async fn a_pair_that_cannot_be_measured_says_why_and_the_others_are_measured() {
    let plan = spread();
    let fakes = Fakes::new(&["n1", "n2", "n3"]);
    fakes.node("n1").set_lost(true);
    fakes.node("n2").set_underlay_rtts(Ipv4Addr::new(10, 0, 0, 3), &[]);
    let measured = measure_underlay(&plan, &fakes.nodes()).await;
    let err = |a: &str, b: &str| measured[&(a.to_string(), b.to_string())].clone().unwrap_err();
    for b in ["n2", "n3"] {
        assert!(err("n1", b).starts_with("node n1 (10.0.0.1): ") && err("n1", b).ends_with("connection refused"), "{}", err("n1", b));
    }
    assert_eq!(err("n2", "n3"), format!("none of {UNDERLAY_ECHOES} echoes from n2 to n3 (10.0.0.3) came back"));
}
