//! End-to-end: an experiment host attached to a LAN of its node, on the real engine with real
//! FRR. The "LAN" is a veth pair the test makes: one end on the node (the macvlan's parent),
//! the other in a network namespace of the test's own, which stands for a machine on that LAN.
//! `paths/lan-attach.yaml` forces r1 r2 r3 r4 although r1 and r4 are neighbours; from the
//! namespace, pings reach `dst` and a trace (echoes with a growing TTL: this machine has no
//! traceroute of its own) replies from src's LAN address and then exactly the planned hops;
//! `dst`'s traceroute back to the namespace takes the planned hops the other way; re-pointed
//! over the shortcut with `path update`, the namespace's traffic takes r1 r4. An attach
//! parent the node does not have exits 2 naming it, with nothing created; delete leaves no
//! container and no macvlan on the parent.
//!
//! Without an engine, the images or network namespaces it reports a skip (fails with
//! VNET_TE_REQUIRE_DOCKER=1). The path is deleted and the veth pair and namespace removed
//! whatever the outcome (guards on drop).

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::lan::{ip, ip_ok, Lan};
use common::*;

/// Pools of this test's own, apart from the defaults the other tests take.
const POOLS: &str = "pools: { links: 10.233.0.0/24, loopbacks: 10.233.1.0/24, lans: 10.233.16.0/20 }";
/// The address the namespace takes on the attached LAN (src holds .1).
const LAN_HOST: u8 = 100;

/// The spec of `paths/lan-attach.yaml` with src's macvlan on `parent` and this test's pools.
fn spec_on(c: &Cleanup, file: &str, parent: &str) -> String {
    let text = std::fs::read_to_string(root().join("paths/lan-attach.yaml")).expect("example spec");
    assert!(text.contains("macvlan: eth1"), "the example attaches src to eth1");
    c.spec(file, &format!("{}{POOLS}\n", text.replace("macvlan: eth1", &format!("macvlan: {parent}"))))
}

fn ok(out: &Output) -> bool {
    out.status.success()
}

fn addr(v: &serde_json::Value) -> Ipv4Addr {
    v.as_str().unwrap_or_else(|| panic!("not an address: {v}")).parse().unwrap()
}

/// The planned reply addresses of a traceroute of the plan (`from` → `to`).
fn planned_hops(plan: &serde_json::Value, from: &str) -> Vec<Ipv4Addr> {
    let t = plan["expectations"]["traceroutes"].as_array().unwrap().iter().find(|t| t["from"] == from).unwrap();
    t["hops"].as_array().unwrap().iter().map(addr).collect()
}

/// Who answers an echo from the namespace with TTL `ttl` (a router's time exceeded, or the
/// target's reply); each TTL is tried three times.
fn hop_at(lan: &Lan, target: Ipv4Addr, ttl: u32) -> Option<Ipv4Addr> {
    for _ in 0..3 {
        let out = lan.run(&["ping", "-n", "-c", "1", "-W", "1", "-t", &ttl.to_string(), &target.to_string()]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        for line in text.lines() {
            let from = line.strip_prefix("From ").or_else(|| line.split_once(" bytes from ").map(|(_, r)| r));
            if let Some(a) = from.and_then(|r| r.split([' ', ':']).next()).and_then(|a| a.parse().ok()) {
                return Some(a);
            }
        }
    }
    None
}

#[test]
fn attach_a_lan_reaches_the_far_end_along_the_forced_path_and_delete_leaves_nothing() {
    let test = "attach_a_lan_reaches_the_far_end_along_the_forced_path";
    let _serial = serial();
    if !docker_ready(test) {
        return;
    }
    let lan = match Lan::new("at") {
        Ok(lan) => lan,
        Err(why) => return skip::skip_or_fail(test, skip::Requirement::Docker, &why),
    };
    let name = "at-e2e-lan";
    let c = Cleanup::new(name);

    // Spec-level: a parent that is no interface name, with its location; nothing created.
    let out = vnet(&["path", "create", "-f", &spec_on(&c, "bad-name.yaml", "eth0@if5")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hosts.a.attach.macvlan: 'eth0@if5' is not an interface name"), "{stderr}");
    assert_eq!(labelled(name), (0, 0));
    // A parent the node does not have: exit 2 naming it, nothing created.
    let missing = format!("at-{}x", std::process::id() % 100_000);
    assert!(!ok(&ip(&["link", "show", &missing])), "{missing} exists");
    let out = vnet(&["path", "create", "-f", &spec_on(&c, "no-parent.yaml", &missing)]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("hosts.a.attach.macvlan: no interface '{missing}' on node 'local'");
    assert!(stderr.contains(&want), "{stderr}");
    assert_eq!(labelled(name), (0, 0));

    // On the LAN: verified, the attached address answering the far host.
    let t = Instant::now();
    let out = vnet(&["path", "create", "-f", &spec_on(&c, "attach.yaml", &lan.parent), "--output", "json"]);
    eprintln!("create → verdict in {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    let attach_pings = probes(&report, "ping-attach");
    assert_eq!(attach_pings.len(), 1);
    assert_eq!((&attach_pings[0]["from"], &attach_pings[0]["to"], &attach_pings[0]["ok"]), (&"dst".into(), &"src".into(), &true.into()));

    let plan = plan_of(name);
    let src = host(&plan, "src");
    let (attach, dst) = (&src["attach"], host(&plan, "dst"));
    assert_eq!(attach["parent"], lan.parent.as_str());
    let gateway = addr(&attach["address"]);
    let subnet: ipnet::Ipv4Net = attach["subnet"].as_str().unwrap().parse().unwrap();
    let dst_addr = addr(&dst["address"]);
    let far_lan = ipnet::Ipv4Net::new(dst_addr, dst["prefix_len"].as_u64().unwrap() as u8).unwrap().trunc();
    let mine = Ipv4Addr::from(u32::from(subnet.network()) + u32::from(LAN_HOST));

    // The macvlan is on the parent: its MAC is in the node's end's address list.
    let mac = exec(src["container"].as_str().unwrap(), &["cat", "/sys/class/net/eth1/address"]).trim().to_string();
    assert!(lan.macs_on_parent().contains(&mac), "{mac} not on {}: {:?}", lan.parent, lan.macs_on_parent());

    // The machine on the LAN: an address of the attached subnet, the far LAN via src.
    ip_ok(&["-n", &lan.ns, "addr", "add", &format!("{mine}/{}", subnet.prefix_len()), "dev", &lan.peer]);
    ip_ok(&["-n", &lan.ns, "route", "add", &far_lan.to_string(), "via", &gateway.to_string()]);
    wait_for("a first reply from dst in the namespace", Duration::from_secs(10), || {
        ok(&lan.run(&["ping", "-n", "-c", "1", "-W", "1", &dst_addr.to_string()])).then_some(())
    });
    let out = lan.run(&["ping", "-n", "-c", "5", "-i", "0.2", "-W", "1", &dst_addr.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(ok(&out) && text.contains("5 packets transmitted, 5 received"), "{text}");

    // The way there: src (its address on the LAN), then exactly src's planned hops to dst,
    // through r2 and r3, not over the r1–r4 shortcut.
    let mut want = vec![gateway];
    want.extend(planned_hops(&plan, "src"));
    let seen: Vec<Option<Ipv4Addr>> = (1..=want.len() as u32).map(|ttl| hop_at(&lan, dst_addr, ttl)).collect();
    assert_eq!(seen, want.iter().map(|a| Some(*a)).collect::<Vec<_>>(), "trace from the LAN to dst");
    let shortcut = addr_toward(&plan, "r4", "r1");
    assert!(!seen.contains(&Some(shortcut.parse().unwrap())));

    // The way back, dst's own traceroute: dst's planned hops to src, then the machine.
    let out = Command::new("docker")
        .args(["exec", dst["container"].as_str().unwrap(), "traceroute", "-n", "-q", "1", "-w", "1", "-m", "12"])
        .arg(mine.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut back: Vec<Option<Ipv4Addr>> = planned_hops(&plan, "dst").into_iter().map(Some).collect();
    back.push(Some(mine));
    assert_eq!(vnet_te_agent::probe::parse_traceroute(&text), back, "traceroute from dst to the LAN:\n{text}");

    // Re-pointed over the shortcut with `path update`: the LAN keeps its address and route,
    // and its traffic now takes r1 r4.
    let shortcut_spec = c.spec(
        "shortcut.yaml",
        &std::fs::read_to_string(spec_on(&c, "attach-again.yaml", &lan.parent))
            .unwrap()
            .replace("path: [r1, r2, r3, r4]", "path: [r1, r4]"),
    );
    let out = vnet(&["path", "update", name, "-f", &shortcut_spec]);
    assert_eq!(out.status.code(), Some(0), "update did not verify");
    let updated = plan_of(name);
    assert_eq!(host(&updated, "src")["attach"], *attach);
    let mut want = vec![gateway];
    want.extend(planned_hops(&updated, "src"));
    assert_eq!(want.len(), 4, "src's LAN address, r1, r4, dst: {want:?}");
    let seen: Vec<Option<Ipv4Addr>> = (1..=want.len() as u32).map(|ttl| hop_at(&lan, dst_addr, ttl)).collect();
    assert_eq!(seen, want.iter().map(|a| Some(*a)).collect::<Vec<_>>(), "trace from the LAN to dst over the shortcut");

    // Delete: nothing labelled, and the macvlan is off the parent when the delete returns.
    let out = vnet(&["path", "delete", name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(labelled(name), (0, 0));
    let left = lan.macs_on_parent();
    assert!(!left.contains(&mac), "{mac} still on {}: {left:?}", lan.parent);
    drop(c);
}
