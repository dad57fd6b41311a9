//! End-to-end: `announce: all` on the real engine with real FRR. A 24-hop chain where every
//! router announces its loopback: the last router's table holds every router's prefix with
//! AS paths growing one hop at a time (r24's own empty, r1's 23 ASes), `path verify` checks
//! every hop's table for every hop's prefix and pings every hop's loopback from the first
//! host; an announcement withdrawn by hand makes it exit 1 naming the router and prefix.
//!
//! Without an engine or the images it reports a skip (fails with VNET_TE_REQUIRE_DOCKER=1).
//! The path is deleted whatever the outcome (a guard deletes by label on drop).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

const HOPS: usize = 24;

/// The ASN of router `rK`, from the stored plan.
fn asn(plan: &serde_json::Value, k: usize) -> u64 {
    router(plan, &format!("r{k}"))["asn"].as_u64().unwrap()
}

/// `rK`'s loopback prefix (`10.255.0.K/32`), from the stored plan.
fn loopback(plan: &serde_json::Value, k: usize) -> String {
    router(plan, &format!("r{k}"))["loopback"].as_str().unwrap().to_string()
}

/// The best path's AS path of every route in a router's `show ip bgp json`, by prefix.
fn best_paths(table: &serde_json::Value) -> BTreeMap<String, Vec<u64>> {
    table["routes"]
        .as_object()
        .unwrap_or_else(|| panic!("no routes: {table}"))
        .iter()
        .filter_map(|(prefix, paths)| {
            let best = paths.as_array()?.iter().find(|p| p["bestpath"] == true)?;
            let asns = best["path"].as_str()?.split_whitespace().map(|a| a.parse().unwrap()).collect();
            Some((prefix.clone(), asns))
        })
        .collect()
}

#[test]
fn announce_all_24_hops_every_prefix_on_r24_every_loopback_pinged_and_a_withdrawn_one_named() {
    let _serial = serial();
    if !docker_ready("announce_all_24_hops") {
        return;
    }
    let name = "e2e-all24";
    let _cleanup = Cleanup::new(name);
    // The default timeout, derived from the plan (no --timeout).
    let out = vnet(&["path", "create", "--hops", "24", "--name", name, "--announce", "all", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["hops"].as_array().unwrap().len(), HOPS);
    assert!(report["hops"].as_array().unwrap().iter().all(|h| h["status"] == "ok"));
    for t in probes(&report, "traceroute") {
        assert_eq!(t["ok"], true, "{t}");
    }
    // Every hop's loopback answered pings from src.
    let pings = probes(&report, "ping-hop");
    assert_eq!(pings.len(), HOPS);
    assert!(pings.iter().all(|p| p["ok"] == true && p["from"] == "src"), "{pings:?}");
    let pinged: Vec<&str> = pings.iter().map(|p| p["to"].as_str().unwrap()).collect();
    for k in 1..=HOPS {
        assert!(pinged.contains(&format!("r{k}").as_str()), "r{k} not pinged: {pinged:?}");
    }

    // The figure, read from FRR itself: r24 holds one prefix per router, AS paths of exactly
    // 0..23 ASes, r24's own empty and rK's the ASNs of r23 down to rK; besides them only the
    // two experiment LANs.
    let plan = plan_of(name);
    let r24 = router(&plan, "r24")["container"].as_str().unwrap().to_string();
    let table = exec_json(&r24, &["vtysh", "-c", "show ip bgp json"]);
    let best = best_paths(&table);
    let loopbacks: Vec<String> = (1..=HOPS).map(|k| loopback(&plan, k)).collect();
    let pool_routes = best.keys().filter(|p| p.starts_with("10.255.")).count();
    assert_eq!(pool_routes, HOPS, "{best:?}");
    assert_eq!(best.len(), HOPS + 2, "24 loopbacks and the two LANs: {best:?}");
    let mut lengths = Vec::new();
    for k in 1..=HOPS {
        let got = best.get(&loopbacks[k - 1]).unwrap_or_else(|| panic!("r24 has no route to r{k}'s loopback"));
        let want: Vec<u64> = (k..HOPS).rev().map(|i| asn(&plan, i)).collect();
        assert_eq!(got, &want, "r{k}'s loopback on r24");
        lengths.push(got.len());
    }
    assert_eq!(lengths, (0..HOPS).rev().collect::<Vec<_>>());

    // r12 withdraws its loopback by hand: once r1 no longer has it, verify exits 1 and
    // names r12's prefix on the hops and r12's loopback among the pings.
    let r12 = router(&plan, "r12");
    let lo12 = loopback(&plan, 12);
    let bgp = format!("router bgp {}", r12["asn"]);
    let no_net = format!("no network {lo12}");
    exec(
        r12["container"].as_str().unwrap(),
        &["vtysh", "-c", "configure terminal", "-c", &bgp, "-c", "address-family ipv4 unicast", "-c", &no_net],
    );
    let r1 = router(&plan, "r1")["container"].as_str().unwrap().to_string();
    wait_for("r1 to lose r12's loopback", Duration::from_secs(20), || {
        let t = exec_json(&r1, &["vtysh", "-c", "show ip bgp json"]);
        (!best_paths(&t).contains_key(&lo12)).then_some(())
    });
    let out = vnet(&["path", "verify", name, "--timeout", "10", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "verify passed with r12's loopback withdrawn");
    let report = json(&out);
    let named = format!("no route to {lo12} (loopback of r12)");
    for h in report["hops"].as_array().unwrap() {
        let problems: Vec<&str> = h["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert!(problems.contains(&named.as_str()), "{}: {problems:?}", h["router"]);
    }
    let ping12 = probes(&report, "ping-hop").into_iter().find(|p| p["to"] == "r12").expect("r12 pinged");
    assert_eq!(ping12["ok"], false, "{ping12}");
    assert!(ping12["problem"].as_str().unwrap().contains("loopback of r12"), "{ping12}");
    let table = vnet(&["path", "verify", name, "--timeout", "1"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&format!("{lo12} (loopback of r12")), "{text}");

    let out = vnet(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0), "objects left after delete");
}

/// The ring with every loopback announced: r1 is offered r5's loopback over its neighbour r6
/// (two ASes) and takes the forced way, r2 r3 r4 r5, on the TE preference alone.
#[test]
fn announce_all_ring_forces_a_hop_loopback_the_long_way() {
    let _serial = serial();
    if !docker_ready("announce_all_ring") {
        return;
    }
    let name = "e2e-allring";
    let c = Cleanup::new(name);
    let spec = c.example("ring-announce-all.yaml", None);
    let out = vnet(&["path", "create", "-f", &spec, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert!(probes(&report, "ping-hop").iter().all(|p| p["ok"] == true));
    assert_eq!(probes(&report, "ping-hop").len(), 6);
    let plan = plan_of(name);
    let r1 = router(&plan, "r1")["container"].as_str().unwrap().to_string();
    let lo5 = loopback(&plan, 5);
    let table = exec_json(&r1, &["vtysh", "-c", "show ip bgp json"]);
    let paths = table["routes"][&lo5].as_array().unwrap_or_else(|| panic!("r1 has no route to {lo5}: {table}"));
    let asns = |p: &serde_json::Value| -> Vec<u64> {
        p["path"].as_str().unwrap().split_whitespace().map(|a| a.parse().unwrap()).collect()
    };
    let best = paths.iter().find(|p| p["bestpath"] == true).expect("a best path");
    assert_eq!(asns(best), (2..=5).map(|k| asn(&plan, k)).collect::<Vec<_>>(), "{best}");
    assert_eq!(best["locPrf"], 200, "{best}");
    let short = vec![asn(&plan, 6), asn(&plan, 5)];
    assert!(paths.iter().any(|p| asns(p) == short), "r1 is not offered the short way via r6: {paths:?}");

    let out = vnet(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0), "objects left after delete");
}
