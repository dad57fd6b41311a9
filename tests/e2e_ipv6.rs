//! End-to-end: IPv6 on the real engine with real FRR. A 24-hop dual-stack chain verifies in
//! both families (per hop IPv6 next hop and AS path, traceroute6 and ping6 both ways); an
//! IPv6 TE policy removed by hand makes `path verify` exit 1 naming that router; delete
//! leaves nothing labelled. The IPv6-only ring detour verifies with traceroute6 along the
//! forced, longer way, while the first router is offered a shorter IPv6 path it does not take.
//!
//! Without an engine or the images they report a skip (fail with VNET_TE_REQUIRE_DOCKER=1).
//! Every test deletes its path whatever the outcome (a guard deletes by label on drop).

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The IPv6 probes of a report of one kind (`traceroute6`, `ping6`).
fn probes6<'a>(report: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    report["ipv6"]["probes"].as_array().unwrap().iter().filter(|p| p["kind"] == kind).collect()
}

/// Both traceroute6 and ping6 each way passed, each trace `hops` replies long.
fn assert_probes6_ok(report: &serde_json::Value, hops: usize) {
    let traces = probes6(report, "traceroute6");
    assert_eq!(traces.len(), 2, "{report}");
    for t in &traces {
        assert_eq!(t["ok"], true, "{t}");
        assert_eq!(t["observed"].as_array().unwrap().len(), hops, "{t}");
        assert_eq!(t["observed"], t["expected"]);
    }
    let pings = probes6(report, "ping6");
    assert_eq!(pings.len(), 2);
    assert!(pings.iter().all(|p| p["ok"] == true), "{pings:?}");
}

/// The IPv6 twin of `router`'s neighbour `peer` in the stored plan: its address.
fn neighbor6(plan: &serde_json::Value, router_name: &str, peer: &str) -> String {
    let r = plan["ipv6"]["routers"].as_array().unwrap().iter().find(|r| r["name"] == router_name).unwrap();
    let n = r["neighbors"].as_array().unwrap().iter().find(|n| n["peer"] == peer).unwrap();
    n["address"].as_str().unwrap().to_string()
}

fn lan6(plan: &serde_json::Value, side: &str) -> String {
    let name = plan["networks"].as_array().unwrap().iter().find(|n| n["name"].as_str().unwrap().ends_with(side)).unwrap()["name"].clone();
    plan["ipv6"]["networks"][name.as_str().unwrap()].as_str().unwrap().to_string()
}

#[test]
fn ipv6_dual_stack_24_hops_verified_then_a_removed_v6_policy_named_then_deleted() {
    let test = "ipv6_dual_stack_24";
    let _serial = serial();
    if !docker_ready(test) {
        return;
    }
    let name = "e2e-v6dual";
    let c = Cleanup::new(name);
    let out = vnet(&["path", "create", "--hops", "24", "--name", &c.path, "--family", "ipv4,ipv6", "--timeout", "180", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["ipv6"]["family"], "ipv4, ipv6");
    assert!(report["hops"].as_array().unwrap().iter().all(|h| h["status"] == "ok"));
    // IPv4 proven as before, IPv6 beside it: 24 routers and the far host.
    assert!(probes(&report, "traceroute").iter().all(|t| t["ok"] == true));
    assert_probes6_ok(&report, 25);

    // Independent of the verifier: r12's IPv6 route to dst's LAN goes to r13 with the AS path
    // of r13..r24 and the TE preference.
    let plan = plan_of(name);
    let lan_b = lan6(&plan, "lan-b");
    let r12 = router(&plan, "r12")["container"].as_str().unwrap().to_string();
    let table = exec_json(&r12, &["vtysh", "-c", "show bgp ipv6 unicast json"]);
    let best = table["routes"][&lan_b].as_array().unwrap_or_else(|| panic!("no IPv6 route to {lan_b}: {table}"));
    let best = best.iter().find(|p| p["bestpath"] == true).expect("a best path");
    let asns: Vec<String> = plan["path_asns"].as_array().unwrap()[12..].iter().map(|a| a.to_string()).collect();
    assert_eq!(best["path"].as_str().unwrap(), asns.join(" "), "{best}");
    assert_eq!(best["locPrf"], 200, "{best}");
    let to_r13 = neighbor6(&plan, "r12", "r13");
    assert!(best["nexthops"].as_array().unwrap().iter().any(|h| h["ip"] == to_r13.as_str()), "{best}");

    // The IPv6 policy toward r13 removed by hand on r12: the IPv4 one stays, and verify names
    // r12 and the IPv6 policy.
    let asn = format!("router bgp {}", router(&plan, "r12")["asn"]);
    let line = format!("no neighbor {to_r13} route-map VTE6-IN-r13 in");
    exec(&r12, &["vtysh", "-c", "configure terminal", "-c", &asn, "-c", "address-family ipv6 unicast", "-c", &line]);
    wait_for("r12's IPv6 routes from r13 without the TE preference", Duration::from_secs(20), || {
        let t = exec_json(&r12, &["vtysh", "-c", "show bgp ipv6 unicast json"]);
        let p = t["routes"][&lan_b].as_array().and_then(|ps| ps.iter().find(|p| p["bestpath"] == true).cloned());
        p.filter(|p| p["locPrf"] != 200).map(|_| ())
    });
    let out = vnet(&["path", "verify", name, "--timeout", "10", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "verify passed without the IPv6 policy");
    let report = json(&out);
    let h = hop(&report, "r12");
    assert_eq!(h["status"], "wrong-path", "{h}");
    let problems = h["problems"].to_string();
    assert!(problems.contains("IPv6") && problems.contains("the IPv6 TE policy toward r13 is not in effect"), "{problems}");
    let others_ok = report["hops"].as_array().unwrap().iter().filter(|h| h["router"] != "r12").all(|h| h["status"] == "ok");
    assert!(others_ok, "only r12 is named: {report}");

    let out = vnet(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0), "objects left after delete");
}

#[test]
fn ipv6_only_ring_detour_verified_with_traceroute6_the_long_way() {
    let test = "ipv6_only_ring_detour";
    let _serial = serial();
    if !docker_ready(test) {
        return;
    }
    let name = "e2e-v6ring";
    let c = Cleanup::new(name);
    let spec = c.example("ring-detour-ipv6.yaml", None);
    let t0 = Instant::now();
    let out = vnet(&["path", "create", "-f", &spec, "--timeout", "120", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["ipv6"]["family"], "ipv6");
    // No IPv4 probe in an IPv6-only path; traceroute6 crosses all six routers.
    assert!(probes(&report, "traceroute").is_empty());
    assert_probes6_ok(&report, 7);
    let plan = plan_of(name);
    let first_hop = probes6(&report, "traceroute6").into_iter().find(|t| t["from"] == "src").unwrap()["observed"][1].clone();
    assert_eq!(first_hop.as_str().unwrap(), neighbor6(&plan, "r1", "r2"), "the first reply is r2's, not the r6 shortcut's");

    // r1 is offered dst's LAN by r6 directly (one AS) and takes the five-AS way on preference;
    // no IPv4 route exists at all.
    let r1 = router(&plan, "r1")["container"].as_str().unwrap().to_string();
    let lan_b = lan6(&plan, "lan-b");
    let table = exec_json(&r1, &["vtysh", "-c", "show bgp ipv6 unicast json"]);
    let paths = table["routes"][&lan_b].as_array().unwrap_or_else(|| panic!("no IPv6 route to {lan_b}: {table}"));
    let len = |p: &serde_json::Value| p["path"].as_str().unwrap().split_whitespace().count();
    let best = paths.iter().find(|p| p["bestpath"] == true).expect("a best path");
    assert_eq!((len(best), best["locPrf"].clone()), (5, serde_json::json!(200)), "{best}");
    assert_eq!(paths.iter().map(len).min(), Some(1), "r1 is offered the shortcut via r6: {paths:?}");
    let v4 = exec_json(&r1, &["vtysh", "-c", "show bgp ipv4 unicast json"]);
    assert!(v4["routes"].as_object().is_none_or(|r| r.is_empty()), "IPv4 routes in an IPv6-only path: {v4}");
    eprintln!("ring6 created and checked in {:.1} s", t0.elapsed().as_secs_f64());

    let out = vnet(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0), "objects left after delete");
}
