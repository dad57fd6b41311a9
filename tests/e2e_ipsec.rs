//! End-to-end: IPsec tunnels (strongSwan IKEv2, PSK) on the real engine, across six forced
//! hops. Host-to-host: create verifies with the evidence (SAs at both hosts, ESP or NAT-T on
//! every router during a ping burst, no plaintext ICMP between the hosts on any of them); the
//! PSK is in neither the plan nor a label, only in the ends' 0600 swanctl.conf; one side's
//! PSK rewritten by hand makes `path verify` exit 1 naming the tunnel; delete leaves no
//! labelled object and no charon (so no TUN device) of the path. Site-to-site: the edge
//! routers' tunnel verifies with ESP on r2..r5. IPv6-only host-to-host: the tunnel joins the
//! hosts' IPv6 addresses and verifies with ESP on r1..r5 and no plaintext ICMPv6; IPv6-only
//! site-to-site joins the edge routers' IPv6 loopbacks with ESP on the routers between.
//!
//! Without an engine or the images it reports a skip (fails with VNET_TE_REQUIRE_DOCKER=1).
//! The paths are deleted whatever the outcome (a guard deletes by label on drop).

mod common;

use common::*;

/// The engine create chose, from the stored plan.
fn engine(plan: &serde_json::Value) -> String {
    plan["vpn"]["engine"].as_str().unwrap_or_default().to_string()
}

/// Host PIDs of charon in a container.
fn charon_pids(container: &str) -> Vec<String> {
    docker(&["top", container, "-o", "pid,comm"])
        .lines()
        .filter(|l| l.contains("charon"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Creates the path of `spec` and returns its report, which must say verified.
fn create_verified(spec: &str) -> serde_json::Value {
    let out = vnet(&["path", "create", "-f", spec, "--output", "json"]);
    show("create", &out);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    json(&out)
}

/// Deletes the path: no labelled object left, and none of its ends' charon processes (charon
/// holds the TUN device: with it gone, so is the device).
fn delete_leaves_nothing(name: &str, charons: &[String]) {
    let out = vnet(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0));
    for pid in charons {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "charon {pid} outlived its container");
    }
}

fn assert_evidence(report: &serde_json::Value, transit: &[&str]) {
    assert_eq!(report["verified"], true, "{report}");
    let sas = probes(report, "ipsec-sa");
    assert_eq!(sas.len(), 2, "{sas:?}");
    assert!(sas.iter().all(|p| p["ok"] == true), "{sas:?}");
    let esp = probes(report, "ipsec-esp");
    let plain = probes(report, "ipsec-plaintext");
    let on: Vec<&str> = esp.iter().map(|p| p["from"].as_str().unwrap()).collect();
    assert_eq!(on, transit, "ESP counted on exactly the transit routers");
    for p in esp.iter().chain(&plain) {
        assert_eq!(p["ok"], true, "{p}");
    }
    // The figures themselves: ESP/NAT-T at least one per echo, no plaintext ICMP.
    for p in &esp {
        let n: u64 = p["detail"].as_str().unwrap().split_whitespace().next().unwrap().parse().unwrap();
        assert!(n >= 100, "{p}");
    }
    assert!(plain.iter().all(|p| p["detail"] == "0 plaintext ICMP packets"), "{plain:?}");
}

#[test]
fn ipsec_host_to_host_verifies_with_esp_on_every_hop_a_wrong_psk_is_named_and_delete_leaves_nothing() {
    let _serial = serial();
    if !docker_ready("ipsec_host_to_host") {
        return;
    }
    let name = "e2e-ipsec-h";
    let cleanup = Cleanup::new(name);
    let spec = cleanup.example("ipsec-host.yaml", None);
    let report = create_verified(&spec);
    assert_evidence(&report, &["r1", "r2", "r3", "r4", "r5", "r6"]);

    let plan = plan_of(name);
    let e = engine(&plan);
    assert!(e == "libipsec" || e == "kernel", "{e}");
    if !std::path::Path::new("/proc/net/xfrm_stat").exists() || !std::path::Path::new("/sys/module/esp4").exists() {
        // This kernel has no ESP module: the probe must have seen that.
        assert_eq!(e, "libipsec");
    }
    // The key: nowhere in the plan or the labels; in both ends' swanctl.conf, owner-only.
    let (src, dst) = (host(&plan, "src")["container"].as_str().unwrap().to_string(), host(&plan, "dst")["container"].as_str().unwrap().to_string());
    let conf = exec(&src, &["cat", "/etc/vnet-te/swanctl.conf"]);
    let psk = conf.lines().find_map(|l| l.trim().strip_prefix("secret = 0s")).expect("a base64 PSK").to_string();
    assert!(psk.len() >= 44, "32 bytes or more: {psk}");
    assert_eq!(exec(&dst, &["cat", "/etc/vnet-te/swanctl.conf"]).matches(&psk).count(), 1);
    assert_eq!(exec(&src, &["stat", "-c", "%a", "/etc/vnet-te/swanctl.conf"]).trim(), "600");
    assert!(!plan.to_string().contains(&psk));
    let labels = docker(&["inspect", "-f", "{{json .Config.Labels}}", &src]);
    assert!(!labels.contains(&psk));
    let rendered = vnet(&["path", "plan", "-f", &spec, "--output", "json"]);
    assert!(!String::from_utf8_lossy(&rendered.stdout).contains(&psk));

    // One side's key rewritten and reloaded, the IKE SA torn down and initiated again: the
    // responder refuses it, and verify names the tunnel.
    let wrong = "0sd3JvbmcgcHJlLXNoYXJlZCBrZXkgb2Ygb25lIHNpZGUgb25seQ==";
    let sh = |c: &str, script: &str| docker_out(&["exec", "-e", "STRONGSWAN_CONF=/etc/vnet-te/strongswan.conf", c, "sh", "-c", script]);
    let rewrite = sh(
        &dst,
        &format!("sed -i 's|secret = 0s.*|secret = {wrong}|' /etc/vnet-te/swanctl.conf && swanctl --load-all --noprompt --file /etc/vnet-te/swanctl.conf"),
    );
    assert!(rewrite.status.success(), "{rewrite:?}");
    let _ = sh(&src, "swanctl --terminate --ike vte");
    let again = sh(&src, "swanctl --initiate --child vte --timeout 10");
    assert!(String::from_utf8_lossy(&again.stdout).contains("AUTHENTICATION_FAILED"), "{again:?}");
    let out = vnet(&["path", "verify", name, "--output", "json"]);
    show("verify", &out);
    assert_eq!(out.status.code(), Some(1), "a tunnel that is down must fail verify");
    let report = json(&out);
    let problems: Vec<String> = report["probes"].as_array().unwrap().iter().filter_map(|p| p["problem"].as_str().map(str::to_string)).collect();
    assert!(problems.iter().any(|p| p.starts_with("tunnel src<->dst (host-to-host): no IKE SA")), "{problems:?}");
    // Without the tunnel the pings cross in plaintext, and the routers saw it.
    assert!(probes(&report, "ipsec-plaintext").iter().all(|p| p["ok"] == false), "{report}");

    let pids: Vec<String> = [&src, &dst].iter().flat_map(|c| charon_pids(c)).collect();
    assert_eq!(pids.len(), 2, "one charon per end: {pids:?}");
    delete_leaves_nothing(name, &pids);
    drop(cleanup);
}

#[test]
fn ipsec_over_ipv6_host_to_host_verifies_with_esp_on_every_hop_and_delete_leaves_nothing() {
    let _serial = serial();
    if !docker_ready("ipsec_over_ipv6_host_to_host") {
        return;
    }
    let name = "e2e-ipsec-h6";
    let cleanup = Cleanup::new(name);
    let spec = cleanup.example("ipsec-host-ipv6.yaml", None);
    let report = create_verified(&spec);
    // ESP (or NAT-T) over IPv6 on r1..r5 and no plaintext ICMPv6 between the hosts on any.
    assert_evidence(&report, &["r1", "r2", "r3", "r4", "r5"]);
    let plan = plan_of(name);
    let ends = plan["vpn"]["ends"].as_array().unwrap();
    for e in ends {
        let outer = e["outer"].as_str().unwrap();
        assert!(outer.parse::<std::net::Ipv6Addr>().is_ok(), "the tunnel runs between IPv6 addresses: {e}");
        assert_eq!(e["protected"][0].as_str().unwrap(), format!("{outer}/128"), "{e}");
    }
    // The SAs themselves join the two IPv6 addresses.
    let src = host(&plan, "src")["container"].as_str().unwrap().to_string();
    let sas = docker_out(&["exec", "-e", "STRONGSWAN_CONF=/etc/vnet-te/strongswan.conf", &src, "swanctl", "--list-sas", "--noblock"]);
    let sas = String::from_utf8_lossy(&sas.stdout).to_string();
    assert!(sas.contains(&format!("remote {}/128", ends[1]["outer"].as_str().unwrap())), "{sas}");
    let pids: Vec<String> = ["src", "dst"].iter().flat_map(|h| charon_pids(host(&plan, h)["container"].as_str().unwrap())).collect();
    assert_eq!(pids.len(), 2, "one charon per end: {pids:?}");
    delete_leaves_nothing(name, &pids);
    drop(cleanup);
}

#[test]
fn ipsec_site_to_site_verifies_with_esp_between_the_edge_routers() {
    let _serial = serial();
    if !docker_ready("ipsec_site_to_site") {
        return;
    }
    let name = "e2e-ipsec-s";
    let cleanup = Cleanup::new(name);
    let spec = cleanup.example("ipsec-site.yaml", None);
    let report = create_verified(&spec);
    assert_evidence(&report, &["r2", "r3", "r4", "r5"]);
    let plan = plan_of(name);
    // The edge routers terminate the tunnel, on their loopbacks, protecting the LANs.
    let ends: Vec<&str> = plan["vpn"]["ends"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(ends, ["r1", "r6"]);
    delete_leaves_nothing(name, &[]);
    drop(cleanup);
}

#[test]
fn ipsec_over_ipv6_site_to_site_verifies_with_esp_between_the_edge_loopbacks() {
    let _serial = serial();
    if !docker_ready("ipsec_over_ipv6_site_to_site") {
        return;
    }
    let name = "e2e-ipsec-s6";
    let cleanup = Cleanup::new(name);
    let spec =
        cleanup.spec("s6.yaml", "name: x\nfamily: [ipv6]\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }, { name: r4 }]\nvpn: { mode: site-to-site }\n");
    let report = create_verified(&spec);
    assert_evidence(&report, &["r2", "r3"]);
    let plan = plan_of(name);
    let ends = plan["vpn"]["ends"].as_array().unwrap();
    let loopbacks: Vec<&str> = ends.iter().map(|e| e["outer"].as_str().unwrap()).collect();
    assert_eq!(loopbacks, ["fd7e:7e00:0:1::1", "fd7e:7e00:0:1::4"], "the edge routers' IPv6 loopbacks");
    let lans: Vec<&str> = ends.iter().map(|e| e["protected"][0].as_str().unwrap()).collect();
    assert_eq!(lans, ["fd7e:7e00:0:100::/64", "fd7e:7e00:0:101::/64"]);
    delete_leaves_nothing(name, &[]);
    drop(cleanup);
}

#[test]
fn ipsec_bad_vpn_spec_exits_2_with_every_location_and_creates_nothing() {
    let _serial = serial();
    if !docker_ready("ipsec_bad_vpn_spec") {
        return;
    }
    let name = "e2e-ipsec-bad";
    let cleanup = Cleanup::new(name);
    let spec = cleanup
        .spec("bad.yaml", "name: x\nrouters: [{ name: r1, kind: vyos }, { name: r2 }]\nwiring: docker\nverify: control-plane\nvpn: { mode: site-to-site }\n");
    let out = vnet(&["path", "create", "-f", &spec]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["vpn: needs `verify: full`", "vpn.mode: site-to-site needs a path of at least 3 hops", "path[0]: 'r1' is a VyOS router"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert_eq!(labelled(name), (0, 0));
    drop(cleanup);
}
