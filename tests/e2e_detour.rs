//! End-to-end: forced detours on the real engine with real FRR. For a ring, a grid and a
//! partial mesh whose chosen path is longer than the shortest one, `path create` verifies
//! (BGP + traceroute), and the first router really is offered a shorter way it does not take;
//! a TE policy removed by hand makes `path verify` exit 1 naming the router and what changed;
//! `path update` re-points a running path without recreating a container.
//!
//! Without an engine or the images they report a skip (fail with VNET_TE_REQUIRE_DOCKER=1).
//! Every test deletes its path whatever the outcome (a guard deletes by label on drop).

mod common;

use common::*;

/// Creates an example detour under its own name and checks it: verified, the traceroute
/// both ways is the long planned one, and the first router holds a shorter route to the far
/// LAN that loses only on the TE local preference.
fn detour_verified(test: &str, example: &str, name: &str) {
    let _serial = serial();
    if !docker_ready(test) {
        return;
    }
    let c = Cleanup::new(name);
    let spec = c.example(example, None);
    let out = vnet(&["path", "create", "-f", &spec, "--timeout", "120", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    let plan = plan_of(name);
    let path: Vec<&str> = plan["path"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert_eq!(report["hops"].as_array().unwrap().len(), path.len());
    assert!(report["hops"].as_array().unwrap().iter().all(|h| h["status"] == "ok"));

    // Data plane: both traceroutes visit every planned hop (one reply per router + the host).
    let traces = probes(&report, "traceroute");
    assert_eq!(traces.len(), 2);
    for t in &traces {
        assert_eq!(t["ok"], true, "{t}");
        assert_eq!(t["observed"], t["expected"]);
        assert_eq!(t["observed"].as_array().unwrap().len(), path.len() + 1);
    }
    // The first hop's reply is the second router's link address, not a shortcut's.
    let first_reply = traces.iter().find(|t| t["from"] == plan["hosts"][0]["name"]).unwrap()["observed"][1].clone();
    assert_eq!(first_reply.as_str().unwrap(), addr_toward(&plan, path[1], path[0]));

    // Independent of the verifier: the first router is offered a shorter AS path to the
    // far LAN, and the planned one wins on local preference alone.
    let lan_b = plan["networks"].as_array().unwrap().iter().find(|n| n["name"].as_str().unwrap().ends_with("lan-b")).unwrap()
        ["subnet"]
        .as_str()
        .unwrap()
        .to_string();
    let first = router(&plan, path[0])["container"].as_str().unwrap().to_string();
    let table = exec_json(&first, &["vtysh", "-c", "show bgp ipv4 unicast json"]);
    let paths = table["routes"][&lan_b].as_array().unwrap_or_else(|| panic!("no route to {lan_b}: {table}"));
    let len = |p: &serde_json::Value| p["path"].as_str().unwrap().split_whitespace().count();
    let best = paths.iter().find(|p| p["bestpath"] == true).expect("a best path");
    assert_eq!(len(best), path.len() - 1, "{best}");
    assert_eq!(best["locPrf"], 200, "{best}");
    let shortest = paths.iter().map(len).min().unwrap();
    assert!(shortest < len(best), "{example}: no shorter path offered at {}: {paths:?}", path[0]);

    let out = vnet(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0), "objects left after delete");
}

#[test]
fn detour_ring_verified_in_bgp_and_traceroute() {
    detour_verified("detour_ring", "ring-detour.yaml", "e2e-dring");
}

#[test]
fn detour_grid_verified_in_bgp_and_traceroute() {
    detour_verified("detour_grid", "grid-detour.yaml", "e2e-dgrid");
}

#[test]
fn detour_mesh_verified_in_bgp_and_traceroute() {
    detour_verified("detour_mesh", "mesh-detour.yaml", "e2e-dmesh");
}

#[test]
fn detour_policy_removed_by_hand_is_named_then_repaired_by_update() {
    let _serial = serial();
    if !docker_ready("detour_policy_removed_by_hand") {
        return;
    }
    let name = "e2e-dpolicy";
    let c = Cleanup::new(name);
    let spec = c.example("ring-detour.yaml", None);
    assert_eq!(vnet(&["path", "create", "-f", &spec, "--timeout", "120"]).status.code(), Some(0));
    let plan = plan_of(name);

    // r1's policy toward r2 goes: r1's neighbour r6 (one AS away) now wins.
    remove_policy_by_hand(&plan, "r1", "r2");
    let out = vnet(&["path", "verify", name, "--timeout", "10", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "verify must fail without r1's policy");
    let report = json(&out);
    let r1 = hop(&report, "r1");
    assert_eq!(r1["status"], "wrong-path");
    let problems: Vec<&str> = r1["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    let r6_as = router(&plan, "r6")["asn"].to_string();
    assert!(
        problems.iter().any(|p| p.contains("(LAN of dst) via r6 (")
            && p.contains(&format!("AS path {r6_as})"))
            && p.contains("instead of via r2")
            && p.contains("local-preference 100 (default), planned 200")),
        "{problems:?}"
    );
    for h in report["hops"].as_array().unwrap().iter().filter(|h| h["router"] != "r1") {
        assert_eq!(h["status"], "ok", "{h}");
    }
    // The data plane shows it too: the second reply comes from r6, not r2.
    let t = probes(&report, "traceroute").into_iter().find(|t| t["from"] == "src").unwrap().clone();
    assert_eq!(t["ok"], false);
    assert!(t["problem"].as_str().unwrap().starts_with("hop 2: r6 ("), "{t}");
    // And the table names it for a human.
    let out = vnet(&["path", "verify", name, "--timeout", "3"]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().any(|l| l.contains(" r1 ") && l.contains("WRONG PATH")), "{table}");

    // The same spec again repairs it (an update re-applies every router's policy).
    let out = vnet(&["path", "update", name, "-f", &spec, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "update with the same spec must repair the path");

    // r3's policy toward r4 goes: its best path stays (nothing shorter), but nothing forces
    // it any more; verify still names r3.
    remove_policy_by_hand(&plan, "r3", "r4");
    let out = vnet(&["path", "verify", name, "--timeout", "10", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "verify must fail without r3's policy");
    let report = json(&out);
    let r3 = hop(&report, "r3");
    assert_eq!(r3["status"], "wrong-path");
    assert!(
        r3["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains("via r4 as planned, but with local-preference 100")),
        "{r3}"
    );
    assert_eq!(hop(&report, "r1")["status"], "ok");

    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0));
}

#[test]
fn detour_path_update_repoints_a_running_path_without_recreating_anything() {
    let _serial = serial();
    if !docker_ready("detour_path_update") {
        return;
    }
    let name = "e2e-dupdate";
    let c = Cleanup::new(name);
    let snake = c.example("grid-detour.yaml", None);
    let short = c.example("grid-detour.yaml", Some("[g11, g21, g22, g23, g33]"));
    assert_eq!(vnet(&["path", "create", "-f", &snake, "--timeout", "120"]).status.code(), Some(0));
    let containers = container_identities(name);
    let networks = network_ids(name);
    assert_eq!(containers.len(), 11);

    // Re-point: 9 hops → 5 hops over the same grid.
    let out = vnet(&["path", "update", name, "-f", &short, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "update did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    let hops: Vec<&str> = report["hops"].as_array().unwrap().iter().map(|h| h["router"].as_str().unwrap()).collect();
    assert_eq!(hops, ["g11", "g21", "g22", "g23", "g33"]);
    let off: Vec<&str> = report["off_path"].as_array().unwrap().iter().map(|h| h["router"].as_str().unwrap()).collect();
    assert_eq!(off, ["g12", "g13", "g31", "g32"]);
    assert!(report["off_path"].as_array().unwrap().iter().all(|h| h["status"] == "ok"));
    for t in probes(&report, "traceroute") {
        assert_eq!(t["ok"], true);
        assert_eq!(t["observed"].as_array().unwrap().len(), 6);
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("no container or network recreated"));
    // Nothing was recreated or restarted.
    assert_eq!(container_identities(name), containers);
    assert_eq!(network_ids(name), networks);
    // The stored plan is the new one: verify and show follow it without the spec.
    let out = vnet(&["path", "verify", name, "--timeout", "30", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["hops"].as_array().unwrap().len(), 5);
    let plan = plan_of(name);
    assert_eq!(plan["path"], serde_json::json!(["g11", "g21", "g22", "g23", "g33"]));
    // A router that left the path runs no TE policy any more.
    let g12 = exec("vte-e2e-dupdate-g12", &["vtysh", "-c", "show running-config"]);
    assert!(!g12.contains("VTE-"), "{g12}");

    // And back to the snake.
    let out = vnet(&["path", "update", name, "-f", &snake, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["hops"].as_array().unwrap().len(), 9);
    assert_eq!(container_identities(name), containers);

    // Refused: other ends (the hosts' LANs would move). Nothing changes.
    let moved = c.example("grid-detour.yaml", Some("[g12, g13, g23, g33]"));
    let out = vnet(&["path", "update", name, "-f", &moved]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot update path 'e2e-dupdate' in place (nothing was changed)"), "{err}");
    assert!(err.contains("the path's ends change (g11 … g33 → g12 … g33)"), "{err}");
    // Refused: one more link needs a network the path does not have.
    let text = std::fs::read_to_string(&snake).unwrap().replace("links:\n", "links:\n  - { a: g11, b: g22 }\n");
    let more = c.spec("more-links.yaml", &text);
    let out = vnet(&["path", "update", name, "-f", &more]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("subnets the running path does not have"));
    // Refused: the spec is for another path than the one named.
    let out = vnet(&["path", "update", "e2e-nosuch", "-f", &snake]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the spec is for path 'e2e-dupdate', not 'e2e-nosuch'"));
    // The path is as it was.
    let out = vnet(&["path", "verify", name, "--timeout", "30", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["hops"].as_array().unwrap().len(), 9);
    assert_eq!(container_identities(name), containers);

    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0));
}
