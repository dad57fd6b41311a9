//! `verify` over fake routers and hosts.

use std::time::{Duration, Instant};

use super::{chain, created};
use crate::core::compare::HopStatus;
use crate::core::plan::Toward;
use crate::core::spec::Wiring;
use crate::exec::fake::table_for;
use crate::exec::observe::{verify, Quiet};

const SHORT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_path_that_answers_as_planned_is_verified() {
    let plan = chain("p", 4, &["n1", "n2"], Wiring::Direct);
    let fakes = created(&plan).await;
    fakes.answer_from(&plan);
    let t = Instant::now();
    let report = verify(&plan, &fakes.nodes(), SHORT, &Quiet).await;
    assert!(report.verified, "{report:#?}");
    assert!(t.elapsed() < SHORT, "verified at once, not at the deadline");
    assert_eq!(report.hops.len(), 4);
    assert!(report.hops.iter().all(|h| h.status == HopStatus::Ok));
    assert!(report.probes.iter().any(|p| p.kind == "traceroute") && report.probes.iter().all(|p| p.ok));
}

#[tokio::test]
async fn a_hop_that_chose_another_way_is_named_wrong_path_by_the_deadline() {
    let plan = chain("p", 4, &["n1", "n2"], Wiring::Direct);
    let fakes = created(&plan).await;
    fakes.answer_from(&plan);
    // r2 sends traffic for dst's LAN back toward r1, with a longer AS path.
    let r2 = plan.router("r2").unwrap();
    let toward_r1 = r2.neighbors.iter().find(|n| n.peer == "r1").unwrap();
    let e = plan.expectations.routes.iter().find(|e| e.router == "r2" && e.toward == Toward::Last).unwrap();
    let mut table = table_for(&plan, r2);
    let best = &mut table.routes.get_mut(&e.prefix.to_string()).unwrap()[0];
    best.path = format!("{} {}", toward_r1.remote_as, best.path);
    best.nexthops[0].ip = Some(toward_r1.address.to_string());
    fakes.node(&r2.node).set_table(&r2.container, table);

    let t = Instant::now();
    let report = verify(&plan, &fakes.nodes(), SHORT, &Quiet).await;
    let elapsed = t.elapsed();

    assert!(!report.verified);
    assert!(elapsed >= SHORT && elapsed < SHORT + Duration::from_secs(2), "{elapsed:?}");
    let wrong: Vec<(&str, HopStatus)> =
        report.hops.iter().filter(|h| h.status != HopStatus::Ok).map(|h| (h.router.as_str(), h.status.clone())).collect();
    assert_eq!(wrong, [("r2", HopStatus::WrongPath)]);
    let problems = &report.hops.iter().find(|h| h.router == "r2").unwrap().problems;
    let named = |p: &String| p.contains(&format!("via r1 ({},", toward_r1.address)) && p.contains("instead of via r3");
    assert!(problems.iter().any(named), "{problems:?}");
}

#[tokio::test]
async fn a_lost_node_fails_verification_and_is_named() {
    let plan = chain("p", 4, &["n1", "n2"], Wiring::Direct);
    let fakes = created(&plan).await;
    fakes.answer_from(&plan);
    fakes.node("n2").set_lost(true);

    let t = Instant::now();
    let report = verify(&plan, &fakes.nodes(), SHORT, &Quiet).await;

    assert!(!report.verified);
    assert!(t.elapsed() < SHORT + Duration::from_secs(2), "{:?}", t.elapsed());
    for h in &report.hops {
        if h.node == "n2" {
            assert_eq!(h.status, HopStatus::Down, "{h:?}");
            assert!(h.problems.iter().any(|p| p.contains("node n2")), "{h:?}");
        } else {
            assert_eq!(h.status, HopStatus::Ok, "{h:?}");
        }
    }
    assert!(report.hops.iter().any(|h| h.node == "n2"));
}

#[tokio::test]
async fn announce_all_pings_every_hop_loopback_from_the_first_host_in_one_request() {
    let mut s = crate::core::spec::chain("p", 12).unwrap();
    s.announce = crate::core::spec::Announce::All;
    let plan = super::plan_on(&s, &["n1"]);
    let fakes = created(&plan).await;
    fakes.answer_from(&plan);
    let report = verify(&plan, &fakes.nodes(), SHORT, &Quiet).await;
    assert!(report.verified, "{report}");
    let src = &plan.hosts[0].container;
    let calls = fakes.journal.find(|e| matches!(&e.call, crate::exec::fake::Call::PingEach { .. }));
    // The first round found every hop: one request, from src, for every hop's loopback.
    assert_eq!(calls.len(), 1, "{calls:?}");
    let crate::exec::fake::Call::PingEach { host, targets } = &calls[0].call else { unreachable!() };
    assert_eq!(host, src);
    let want: Vec<std::net::Ipv4Addr> = plan.path_routers().map(|r| r.loopback.addr()).collect();
    assert_eq!(targets, &want);
    assert_eq!(report.probes.iter().filter(|p| p.kind == "ping-hop" && p.ok).count(), 12);
    // The default announces the ends only: nothing pinged beyond the hosts.
    let plain = chain("q", 4, &["n1"], Wiring::Direct);
    let fakes = created(&plain).await;
    fakes.answer_from(&plain);
    assert!(verify(&plain, &fakes.nodes(), SHORT, &Quiet).await.verified);
    assert!(fakes.journal.find(|e| matches!(&e.call, crate::exec::fake::Call::PingEach { .. })).is_empty());
}
