//! End-to-end: EVPN-VXLAN L2VPN across a forced path, on the real engine with real FRR.
//! The two experiment hosts share one subnet and reach each other (ARP resolves across the
//! path), the edges hold the EVPN routes for the VNI, a full-size ping with DF passes at the
//! planned MTU, and the VXLAN packets cross exactly the planned links (interface counters on
//! the transit routers; none on a shortcut) — checked by `path verify` and, independently,
//! by this test through `docker exec`.
//!
//! Needs VXLAN in the kernel: without it the tests report a skip with that reason. Without an
//! engine or the images they report a skip (fail with VNET_TE_REQUIRE_DOCKER=1). Every test
//! deletes its path whatever the outcome.

mod common;

use std::time::Duration;

use common::*;

/// Engine, images and a kernel that can make VXLAN devices (a throwaway container without
/// any network tries one).
fn evpn_ready(test: &str) -> bool {
    if !docker_ready(test) {
        return false;
    }
    let image = format!("vnet-te/router:{}", env!("CARGO_PKG_VERSION"));
    let out = docker_out(&[
        "run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", &image,
        "ip", "link", "add", "vxtest", "type", "vxlan", "id", "42", "dstport", "4789",
    ]);
    if out.status.success() {
        return true;
    }
    // A kernel without VXLAN is a property of the machine, not a missing setup step: a skip
    // with its reason even where CI requires Docker (never a pass).
    let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
    skip::skip(test, &format!("VXLAN not supported by this kernel ({why})"));
    false
}

/// Sends `count` full-size DF pings between the hosts' L2 addresses and returns the byte
/// counters (rx, tx) of the given router interfaces before and after.
fn df_burst(
    plan: &serde_json::Value,
    ifaces: &[(&str, String)],
    count: u32,
) -> Vec<((u64, u64), (u64, u64))> {
    let mtu = plan["evpn"]["mtu"].as_u64().unwrap();
    let src = host(plan, "src")["container"].as_str().unwrap().to_string();
    let dst_l2 = host(plan, "dst")["l2_address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let before: Vec<(u64, u64)> = ifaces.iter().map(|(c, a)| iface_bytes(c, a)).collect();
    let size = (mtu - 28).to_string();
    let n = count.to_string();
    exec(&src, &["ping", "-n", "-q", "-c", &n, "-i", "0.05", "-W", "1", "-M", "do", "-s", &size, &dst_l2]);
    let after: Vec<(u64, u64)> = ifaces.iter().map(|(c, a)| iface_bytes(c, a)).collect();
    before.into_iter().zip(after).collect()
}

#[test]
fn evpn_pair_hosts_share_a_subnet_and_pass_a_df_ping_at_the_planned_mtu() {
    let _serial = serial();
    if !evpn_ready("evpn_pair") {
        return;
    }
    let name = "e2e-evpn";
    let c = Cleanup::new(name);
    let spec = c.example("evpn-pair.yaml", None);
    let out = vnet(&["path", "create", "-f", &spec, "--timeout", "120", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);

    // The verifier's L2 checks, in the same report.
    let evpn = probes(&report, "evpn");
    assert_eq!(evpn.len(), 2);
    assert!(evpn.iter().all(|p| p["ok"] == true), "{evpn:?}");
    assert!(evpn.iter().all(|p| p["detail"].as_str().unwrap().contains("type-3 from")));
    let l2 = probes(&report, "l2-ping");
    assert_eq!(l2.len(), 2);
    assert!(l2.iter().all(|p| p["ok"] == true));
    let df = probes(&report, "l2-ping-df");
    assert_eq!(df.len(), 1);
    assert_eq!(df[0]["ok"], true);
    assert!(df[0]["detail"].as_str().unwrap().contains("1400-byte packets"), "{}", df[0]);
    let vx = probes(&report, "vxlan-path");
    assert_eq!(vx[0]["ok"], true, "{}", vx[0]);

    // Independently, through docker exec.
    let plan = plan_of(name);
    let e = &plan["evpn"];
    let (vni, mtu) = (e["vni"].as_u64().unwrap(), e["mtu"].as_u64().unwrap());
    let (src, dst) = (host(&plan, "src"), host(&plan, "dst"));
    let (src_c, dst_c) = (src["container"].as_str().unwrap(), dst["container"].as_str().unwrap());
    let l2 = |h: &serde_json::Value| h["l2_address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let (src_l2, dst_l2) = (l2(src), l2(dst));
    // One subnet: both L2 addresses are on-link on each host, no router in between.
    let route = exec(src_c, &["ip", "-4", "route", "get", &dst_l2]);
    assert!(!route.contains(" via "), "{route}");
    // ARP resolves across the path: src's neighbour entry for dst's address is dst's MAC.
    exec(src_c, &["ping", "-n", "-c", "2", "-W", "1", &dst_l2]);
    let dst_mac = exec_json(dst_c, &["ip", "-j", "link", "show"]).as_array().unwrap().iter()
        .find(|i| i["ifname"] != "lo").unwrap()["address"].as_str().unwrap().to_string();
    let neigh = exec(src_c, &["ip", "neigh", "show", &dst_l2]);
    assert!(neigh.contains(&dst_mac), "src's ARP entry for {dst_l2}: {neigh}; dst's MAC {dst_mac}");
    exec(dst_c, &["ping", "-n", "-c", "2", "-W", "1", &src_l2]);
    // The hosts' interfaces have the planned MTU; a full-size DF ping passes, one byte more
    // cannot leave the host.
    let iface = exec_json(src_c, &["ip", "-j", "link", "show"]).as_array().unwrap().iter()
        .find(|i| i["ifname"] != "lo").unwrap().clone();
    assert_eq!(iface["mtu"].as_u64(), Some(mtu));
    let full = (mtu - 28).to_string();
    exec(src_c, &["ping", "-n", "-c", "3", "-W", "1", "-M", "do", "-s", &full, &dst_l2]);
    let over = docker_out(&["exec", src_c, "ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", &(mtu - 27).to_string(), &dst_l2]);
    assert!(!over.status.success(), "a DF ping above the MTU passed");
    // The edges see the VNI with the other edge as remote VTEP, and its type-3 route.
    for (edge, remote) in [("pe1", "pe2"), ("pe2", "pe1")] {
        let container = router(&plan, edge)["container"].as_str().unwrap();
        let vtep = router(&plan, remote)["router_id"].as_str().unwrap().to_string();
        let vnis = exec_json(container, &["vtysh", "-c", "show evpn vni json"]);
        let remotes = &vnis[vni.to_string()]["remoteVteps"];
        assert!(remotes.as_array().is_some_and(|r| r.iter().any(|a| *a == vtep)), "{edge}: {vnis}");
        let routes = exec(container, &["vtysh", "-c", "show bgp l2vpn evpn json"]);
        assert!(routes.contains(&format!("[3]:[0]:[32]:[{vtep}]")), "{edge} lacks the type-3 route of {vtep}");
    }
    // VXLAN crosses the transit router p1: both its link interfaces carry the burst.
    let ifaces = [
        ("vte-e2e-evpn-p1", addr_toward(&plan, "p1", "pe1")),
        ("vte-e2e-evpn-p1", addr_toward(&plan, "p1", "pe2")),
    ];
    let ifaces: Vec<(&str, String)> = ifaces.into_iter().collect();
    let burst = 20u64;
    for (i, ((rx0, tx0), (rx1, tx1))) in df_burst(&plan, &ifaces, burst as u32).into_iter().enumerate() {
        assert!(rx1 - rx0 >= burst * mtu && tx1 - tx0 >= burst * mtu, "p1 {}: rx +{} tx +{}", ifaces[i].1, rx1 - rx0, tx1 - tx0);
    }

    // Verify again (the plan from the hosts), then delete.
    assert_eq!(vnet(&["path", "verify", name, "--timeout", "30"]).status.code(), Some(0));
    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0), "objects left after delete");
}

const RING: &str = "\
# Four routers on a ring with a shortcut r1 - r4; the L2VPN is forced the long way round.
name: x
routers:
  - { name: r1 }
  - { name: r2 }
  - { name: r3 }
  - { name: r4 }
  - { name: r5 }
links:
  - { a: r1, b: r2 }
  - { a: r2, b: r3 }
  - { a: r3, b: r4 }
  - { a: r1, b: r4 }
  - { a: r4, b: r5 }
path: [r1, r2, r3, r4]
l2vpn: evpn
vni: 4242
";

#[test]
fn evpn_over_a_ring_detour_vxlan_rides_the_forced_path_not_the_shortcut() {
    let _serial = serial();
    if !evpn_ready("evpn_over_a_ring_detour") {
        return;
    }
    let name = "e2e-evring";
    let c = Cleanup::new(name);
    let spec = c.spec("ring.yaml", RING);
    let out = vnet(&["path", "create", "-f", &spec, "--timeout", "120", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    let vx = probes(&report, "vxlan-path");
    assert_eq!(vx[0]["ok"], true, "{}", vx[0]);
    assert!(vx[0]["detail"].as_str().unwrap().contains("seen on 6 of 6 planned link ends"), "{}", vx[0]);
    assert_eq!(report["off_path"][0]["router"], "r5");
    assert_eq!(report["off_path"][0]["status"], "ok");

    // Independently: a DF burst crosses r2 and r3 and leaves the shortcut r1 - r4 quiet.
    let plan = plan_of(name);
    let mtu = plan["evpn"]["mtu"].as_u64().unwrap();
    let ifaces: Vec<(&str, String)> = vec![
        ("vte-e2e-evring-r2", addr_toward(&plan, "r2", "r1")),
        ("vte-e2e-evring-r3", addr_toward(&plan, "r3", "r4")),
        ("vte-e2e-evring-r1", addr_toward(&plan, "r1", "r4")),
    ];
    let burst = 20u64;
    let d = df_burst(&plan, &ifaces, burst as u32);
    for ((rx0, tx0), (rx1, tx1)) in &d[..2] {
        assert!(rx1 - rx0 >= burst * mtu && tx1 - tx0 >= burst * mtu, "transit: rx +{} tx +{}", rx1 - rx0, tx1 - tx0);
    }
    let ((rx0, tx0), (rx1, tx1)) = d[2];
    assert!((rx1 - rx0) + (tx1 - tx0) < mtu * 2, "shortcut r1 - r4 carried {} bytes", (rx1 - rx0) + (tx1 - tx0));

    // Take r1's policy away by hand: VXLAN toward r4 takes the shortcut, and verify says so
    // in the control plane (r1) and in the VXLAN counters.
    remove_policy_by_hand(&plan, "r1", "r2");
    let shortcut_wins = || {
        let t = exec_json("vte-e2e-evring-r1", &["vtysh", "-c", "show bgp ipv4 unicast json"]);
        let lo4 = router(&plan, "r4")["loopback"].as_str().unwrap().to_string();
        let best = t["routes"][&lo4].as_array()?.iter().find(|p| p["bestpath"] == true)?.clone();
        (best["path"].as_str()?.split_whitespace().count() == 1).then_some(())
    };
    wait_for("r1 to route to r4's VTEP over the shortcut", Duration::from_secs(20), shortcut_wins);
    let out = vnet(&["path", "verify", name, "--timeout", "5", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(hop(&report, "r1")["status"], "wrong-path");
    let vx = probes(&report, "vxlan-path");
    let problem = vx[0]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("link r1 — r4 off the path"), "{}", vx[0]);
    assert!(problem.contains("VXLAN took a shortcut"), "{}", vx[0]);

    assert_eq!(vnet(&["path", "delete", name]).status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0));
}
