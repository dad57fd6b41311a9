use super::*;
use crate::core::{plan, spec};
use vnet_te_agent::frr::{BgpPath, NextHop};

fn table_for(plan: &Plan, router: &str) -> BgpTable {
    let mut t = BgpTable::default();
    for e in plan.expectations.routes.iter().filter(|e| e.router == router) {
        t.routes.insert(
            e.prefix.to_string(),
            vec![BgpPath {
                valid: true,
                bestpath: true,
                path: e.as_path(plan).iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "),
                nexthops: vec![NextHop {
                    ip: Some(e.next_hop.map(|a| a.to_string()).unwrap_or_else(|| "0.0.0.0".into())),
                    hostname: None,
                    used: true,
                }],
                local_pref: e.next_hop.map(|_| TE_LOCAL_PREF),
                ..Default::default()
            }],
        );
    }
    t
}

fn good(plan: &Plan) -> Observed {
    let mut o = Observed::default();
    for r in &plan.path {
        o.tables.insert(r.clone(), Ok(table_for(plan, r)));
    }
    for t in &plan.expectations.traceroutes {
        o.traceroutes.insert((t.from.clone(), t.to.clone()), Ok(t.hops.iter().map(|a| Some(*a)).collect()));
        o.pings.insert((t.from.clone(), t.to.clone()), Ok(true));
    }
    o
}

fn spec_file(name: &str) -> spec::PathSpec {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../paths").join(name);
    spec::parse_yaml(name, &std::fs::read_to_string(p).unwrap()).unwrap()
}

fn path_of(asns: &[u32], via: &str, lp: Option<u32>) -> BgpPath {
    BgpPath {
        valid: true,
        bestpath: false,
        path: asns.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "),
        nexthops: vec![NextHop { ip: Some(via.to_string()), hostname: None, used: true }],
        local_pref: lp,
        ..Default::default()
    }
}

/// An off-path router's table: both LANs learned plainly, the shortest path best.
fn plain_table(p: &Plan, r: &RouterPlan) -> BgpTable {
    let mut t = BgpTable::default();
    for n in p.networks.iter().filter(|n| n.role == NetworkRole::Lan) {
        let nb = &r.neighbors[0];
        let mut best = path_of(&[nb.remote_as], &nb.address.to_string(), None);
        best.bestpath = true;
        let longer = path_of(&[nb.remote_as, 1, 2], &nb.address.to_string(), None);
        t.routes.insert(n.subnet.to_string(), vec![best, longer]);
    }
    t
}

#[test]
fn a_hand_removed_policy_is_named_with_the_path_that_won() {
    // Ring: r1's best way to dst's LAN is r2 (5 ASes); without the policy, r6 (1 AS) wins.
    let p = plan::build(&spec_file("ring-detour.yaml"), &plan::Inventory::default()).unwrap();
    let mut o = good(&p);
    assert!(compare(&p, &o).verified);
    let e = p.expectations.routes.iter().find(|e| e.router == "r1" && e.toward == Toward::Last).unwrap();
    let r1 = p.router("r1").unwrap();
    let r6 = r1.neighbors.iter().find(|n| n.peer == "r6").unwrap();
    let mut t = table_for(&p, "r1");
    let paths = t.routes.get_mut(&e.prefix.to_string()).unwrap();
    paths[0].bestpath = false;
    paths[0].local_pref = None;
    let mut short = path_of(&[r6.remote_as], &r6.address.to_string(), None);
    short.bestpath = true;
    paths.push(short);
    o.tables.insert("r1".into(), Ok(t));
    let r = compare(&p, &o);
    assert!(!r.verified && !r.control_plane_ok);
    let h = r.hops.iter().find(|h| h.router == "r1").unwrap();
    assert_eq!(h.status, HopStatus::WrongPath);
    let msg = &h.problems[0];
    assert!(msg.contains("(LAN of dst) via r6 (") && msg.contains("instead of via r2"), "{msg}");
    assert!(msg.contains("local-preference 100 (default), planned 200"), "{msg}");
    assert!(r.hops.iter().filter(|h| h.router != "r1").all(|h| h.status == HopStatus::Ok));
}

#[test]
fn a_missing_policy_is_found_even_when_the_best_path_did_not_move() {
    let p = plan::build(&spec::chain("v", 4).unwrap(), &plan::Inventory::default()).unwrap();
    let mut o = good(&p);
    let mut t = table_for(&p, "r3");
    for paths in t.routes.values_mut() {
        paths[0].local_pref = None;
    }
    o.tables.insert("r3".into(), Ok(t));
    let r = compare(&p, &o);
    let h = r.hops.iter().find(|h| h.router == "r3").unwrap();
    assert_eq!(h.status, HopStatus::WrongPath);
    assert!(h.problems.iter().any(|m| m.contains("as planned, but with local-preference 100 (default)")), "{:?}", h.problems);
    // Locally originated routes carry no preference and need none.
    let r4 = r.hops.iter().find(|h| h.router == "r4").unwrap();
    assert_eq!(r4.status, HopStatus::Ok);
}

#[test]
fn off_path_routers_must_be_plain_ebgp_speakers() {
    let mut s = spec_file("ring-detour.yaml");
    s.path = Some(vec!["r1".into(), "r2".into(), "r3".into()]);
    let p = plan::build(&s, &plan::Inventory::default()).unwrap();
    let mut o = good(&p);
    let r = compare(&p, &o);
    assert_eq!(r.off_path.len(), 3);
    assert!(r.off_path.iter().all(|h| h.status == HopStatus::Missing));
    for name in ["r4", "r5", "r6"] {
        o.tables.insert(name.into(), Ok(plain_table(&p, p.router(name).unwrap())));
    }
    let r = compare(&p, &o);
    assert!(r.verified, "{r}");
    // A leftover TE preference on r5.
    let mut t = plain_table(&p, p.router("r5").unwrap());
    for paths in t.routes.values_mut() {
        paths[0].local_pref = Some(TE_LOCAL_PREF);
    }
    o.tables.insert("r5".into(), Ok(t));
    // r6 prefers the longer path.
    let mut t = plain_table(&p, p.router("r6").unwrap());
    for paths in t.routes.values_mut() {
        paths[0].bestpath = false;
        paths[1].bestpath = true;
    }
    o.tables.insert("r6".into(), Ok(t));
    let r = compare(&p, &o);
    assert!(!r.verified);
    let r5 = r.off_path.iter().find(|h| h.router == "r5").unwrap();
    assert!(r5.problems[0].contains("TE policy is applied to a router off the path"), "{:?}", r5.problems);
    let r6 = r.off_path.iter().find(|h| h.router == "r6").unwrap();
    assert!(r6.problems[0].contains("has 3 ASes although one with 1 is offered"), "{:?}", r6.problems);
    assert!(format!("{r}").contains("off the path: WRONG PATH"), "{r}");
}

#[test]
fn matching_observations_verify() {
    let p = plan::build(&spec::chain("v", 4).unwrap(), &plan::Inventory::default()).unwrap();
    let r = compare(&p, &good(&p));
    assert!(r.verified, "{r}");
}

#[test]
fn a_down_router_and_a_wrong_path_are_named() {
    let p = plan::build(&spec::chain("v", 4).unwrap(), &plan::Inventory::default()).unwrap();
    let mut o = good(&p);
    o.tables.insert("r3".into(), Err("container vte-v-r3 is not running".into()));
    let mut t = table_for(&p, "r2");
    let lan_b = p.expectations.routes.iter().find(|e| e.router == "r2" && e.toward == Toward::Last).unwrap().prefix;
    t.routes.get_mut(&lan_b.to_string()).unwrap()[0].path = "4200000003 4200000099".into();
    o.tables.insert("r2".into(), Ok(t));
    let r = compare(&p, &o);
    assert!(!r.verified);
    let r3 = r.hops.iter().find(|h| h.router == "r3").unwrap();
    assert_eq!(r3.status, HopStatus::Down);
    let r2 = r.hops.iter().find(|h| h.router == "r2").unwrap();
    assert_eq!(r2.status, HopStatus::WrongPath);
    assert!(r2.problems[0].contains("4200000099"), "{:?}", r2.problems);
    assert_eq!(r.hops.iter().filter(|h| h.status == HopStatus::Ok).count(), 2);
}

#[test]
fn a_traceroute_detour_is_reported() {
    let p = plan::build(&spec::chain("v", 3).unwrap(), &plan::Inventory::default()).unwrap();
    let mut o = good(&p);
    let t = &p.expectations.traceroutes[0];
    let mut seen: Vec<Option<Ipv4Addr>> = t.hops.iter().map(|a| Some(*a)).collect();
    seen[1] = None;
    o.traceroutes.insert((t.from.clone(), t.to.clone()), Ok(seen));
    let r = compare(&p, &o);
    assert!(r.control_plane_ok && !r.verified);
    assert!(r.probes[0].problem.as_ref().unwrap().starts_with("hop 2: nobody replied"));
}

fn evpn_good(p: &Plan) -> Observed {
    use vnet_te_agent::frr::{EvpnRoute, EvpnVni};
    let mut o = good(p);
    let e = p.evpn.as_ref().unwrap();
    for (edge, remote, want) in evpn_edges(p) {
        let vtep = remote.loopback.addr().to_string();
        let path = want.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
        let route = |t: u8, ip: &str| EvpnRoute {
            rd: format!("{vtep}:2"),
            prefix: String::new(),
            route_type: t,
            mac: None,
            ip: Some(ip.to_string()),
            valid: true,
            bestpath: true,
            path: path.clone(),
            next_hop: Some(vtep.clone()),
            route_targets: vec![e.route_target.clone()],
        };
        o.evpn_routes.insert(
            edge.name.clone(),
            Ok(EvpnRoutes { local_as: Some(edge.asn), routes: vec![route(3, &vtep), route(2, "10.210.1.10")] }),
        );
        let vni = EvpnVni { vni: e.vni, kind: "L2".into(), vxlan_if: None, num_macs: Some(2), remote_vteps: vec![vtep.clone()] };
        o.evpn_vnis.insert(edge.name.clone(), Ok(EvpnVnis { vnis: BTreeMap::from([(e.vni.to_string(), vni)]) }));
    }
    let (a, b) = (&p.hosts[0].name, &p.hosts[1].name);
    o.l2_pings.insert((L2_PING.into(), a.clone(), b.clone()), Ok(true));
    o.l2_pings.insert((L2_PING.into(), b.clone(), a.clone()), Ok(true));
    o.l2_pings.insert((L2_PING_DF.into(), a.clone(), b.clone()), Ok(true));
    // Counters: every planned link end moved 3 full packets each way, other links 200 bytes.
    let planned: Vec<(String, String)> = p.path.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
    for r in &p.routers {
        let mut before = Vec::new();
        let mut after = Vec::new();
        for (k, i) in r.interfaces.iter().enumerate() {
            let on = planned.iter().any(|(x, y)| (*x == r.name && *y == i.peer) || (*y == r.name && *x == i.peer));
            let c = InterfaceCounters { name: format!("eth{k}"), addresses: vec![i.address], rx_bytes: 1000, tx_bytes: 1000, ..Default::default() };
            let moved = if on { 3 * 1464 } else { 200 };
            after.push(InterfaceCounters { rx_bytes: c.rx_bytes + moved, tx_bytes: c.tx_bytes + moved, ..c.clone() });
            before.push(c);
        }
        o.counters_before.insert(r.name.clone(), Ok(before));
        o.counters_after.insert(r.name.clone(), Ok(after));
    }
    o
}

#[test]
fn evpn_checks_pass_on_good_observations_and_name_what_is_missing() {
    let p = plan::build(&spec_file("evpn-pair.yaml"), &plan::Inventory::default()).unwrap();
    // Without any L2 observation the L3 checks alone do not verify an EVPN path.
    assert!(!compare(&p, &good(&p)).verified);
    let o = evpn_good(&p);
    let r = compare(&p, &o);
    assert!(r.verified, "{r}");
    let kinds: Vec<&str> = r.probes.iter().map(|p| p.kind.as_str()).collect();
    for k in [EVPN, L2_PING, L2_PING_DF, VXLAN_PATH] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let df = r.probes.iter().find(|p| p.kind == L2_PING_DF).unwrap();
    assert!(df.detail.as_ref().unwrap().contains("1400-byte packets (1372-byte ICMP payload)"), "{df:?}");

    // pe2 lost the type-3 route and the flood list entry.
    let mut bad = o.clone();
    if let Some(Ok(t)) = bad.evpn_routes.get_mut("pe2") {
        t.routes.retain(|r| r.route_type != 3);
    }
    if let Some(Ok(v)) = bad.evpn_vnis.get_mut("pe2") {
        v.vnis.values_mut().for_each(|v| v.remote_vteps.clear());
    }
    let r = compare(&p, &bad);
    assert!(!r.verified && !r.control_plane_ok);
    let pe2 = r.probes.iter().find(|p| p.kind == EVPN && p.from == "pe2").unwrap();
    let msg = pe2.problem.as_ref().unwrap();
    assert!(msg.contains("no EVPN type-3 route from VTEP 10.255.0.1 (pe1)"), "{msg}");
    assert!(msg.contains("remote VTEP 10.255.0.1 not in the flood list"), "{msg}");
    assert!(r.probes.iter().find(|p| p.kind == EVPN && p.from == "pe1").unwrap().ok);

    // The DF ping failed: named, and the counters are not judged.
    let mut bad = o.clone();
    bad.l2_pings.insert((L2_PING_DF.into(), "src".into(), "dst".into()), Ok(false));
    let r = compare(&p, &bad);
    assert!(r.control_plane_ok && !r.verified);
    let v = r.probes.iter().find(|p| p.kind == VXLAN_PATH).unwrap();
    assert!(v.problem.as_ref().unwrap().contains("DF ping did not pass"));
    let mut unrun = o.clone();
    unrun.l2_pings.clear();
    unrun.counters_before.clear();
    let r = compare(&p, &unrun);
    assert!(r.probes.iter().filter(|p| p.kind.starts_with("l2") || p.kind == VXLAN_PATH).all(|p| !p.ok && p.problem.as_deref() == Some("not run")));
}

#[test]
fn vxlan_on_a_shortcut_is_reported() {
    let mut s = spec_file("ring-detour.yaml");
    s.l2vpn = spec::L2vpnMode::Evpn;
    let p = plan::build(&s, &plan::Inventory::default()).unwrap();
    let mut o = evpn_good(&p);
    for name in p.path.clone() {
        o.tables.insert(name.clone(), Ok(table_for(&p, &name)));
    }
    assert!(compare(&p, &o).verified);
    // The VXLAN packets went r1 → r6 directly; r2..r5 saw nothing.
    let r1 = p.router("r1").unwrap();
    let shortcut = r1.interfaces.iter().find(|i| i.peer == "r6").unwrap().address;
    let r3 = p.router("r3").unwrap();
    if let Some(Ok(after)) = o.counters_after.get_mut("r1") {
        let c = after.iter_mut().find(|c| c.addresses.contains(&shortcut)).unwrap();
        c.rx_bytes += 5000;
        c.tx_bytes += 5000;
    }
    let before = o.counters_before["r3"].clone();
    o.counters_after.insert("r3".into(), before);
    let r = compare(&p, &o);
    assert!(r.control_plane_ok && !r.verified);
    let v = r.probes.iter().find(|p| p.kind == VXLAN_PATH).unwrap();
    let msg = v.problem.as_ref().unwrap();
    assert!(msg.contains("link r1 — r6 off the path"), "{msg}");
    assert!(msg.contains("VXLAN took a shortcut"), "{msg}");
    assert!(msg.contains(&format!("planned link r3 — r2 ({}", r3.interfaces.iter().find(|i| i.peer == "r2").unwrap().address)), "{msg}");
    assert!(format!("{r}").contains("vxlan src → dst on the planned links: FAILED"), "{r}");
}

/// A chain's table on router `h` (1-based) with every router's loopback, written from the
/// chain itself: r_k's loopback via the neighbour toward it, AS path r_{h±1} … r_k.
fn chain_table_all(p: &Plan, h: usize) -> BgpTable {
    let mut t = table_for(p, &format!("r{h}"));
    let n = p.path.len();
    let r = p.router(&format!("r{h}")).unwrap();
    for k in 1..=n {
        let asns: Vec<String> = if k > h { (h + 1..=k).collect::<Vec<_>>() } else { (k..h).rev().collect() }
            .into_iter()
            .map(|i| p.router(&format!("r{i}")).unwrap().asn.to_string())
            .collect();
        let nh = match k.cmp(&h) {
            std::cmp::Ordering::Equal => "0.0.0.0".to_string(),
            std::cmp::Ordering::Greater => r.neighbors.iter().find(|nb| nb.peer == format!("r{}", h + 1)).unwrap().address.to_string(),
            std::cmp::Ordering::Less => r.neighbors.iter().find(|nb| nb.peer == format!("r{}", h - 1)).unwrap().address.to_string(),
        };
        let lp = (k != h).then_some(TE_LOCAL_PREF);
        let mut best = path_of(&[], &nh, lp);
        best.path = asns.join(" ");
        best.bestpath = true;
        t.routes.insert(p.router(&format!("r{k}")).unwrap().loopback.to_string(), vec![best]);
    }
    t
}

#[test]
fn announce_all_checks_every_hop_prefix_on_every_hop_and_pings_each() {
    let mut s = spec::chain("all", 6).unwrap();
    s.announce = spec::Announce::All;
    let p = plan::build(&s, &plan::Inventory::default()).unwrap();
    let mut o = good(&p);
    for h in 1..=6 {
        o.tables.insert(format!("r{h}"), Ok(chain_table_all(&p, h)));
    }
    for r in &p.routers {
        o.hop_pings.insert(r.loopback.addr(), Ok(true));
    }
    let r = compare(&p, &o);
    assert!(r.verified, "{r}");
    assert_eq!(r.probes.iter().filter(|p| p.kind == HOP_PING).count(), 6);
    assert!(r.to_string().contains("ping src → every hop's loopback (6): ok"), "{r}");

    // r3's loopback gone from r6's table (its announcement withdrawn): r6 is named with it.
    let mut bad = o.clone();
    if let Some(Ok(t)) = bad.tables.get_mut("r6") {
        t.routes.remove("10.255.0.3/32");
    }
    let r = compare(&p, &bad);
    assert!(!r.verified);
    let r6 = r.hops.iter().find(|h| h.router == "r6").unwrap();
    assert_eq!(r6.status, HopStatus::Missing);
    assert!(r6.problems.iter().any(|m| m == "no route to 10.255.0.3/32 (loopback of r3)"), "{:?}", r6.problems);
    assert!(r.hops.iter().filter(|h| h.router != "r6").all(|h| h.status == HopStatus::Ok));

    // r4's loopback reached the short way round from r2 (one AS too few): a wrong path.
    let mut bad = o.clone();
    if let Some(Ok(t)) = bad.tables.get_mut("r2") {
        let best = &mut t.routes.get_mut("10.255.0.4/32").unwrap()[0];
        best.path = best.path.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
    }
    let r = compare(&p, &bad);
    let r2 = r.hops.iter().find(|h| h.router == "r2").unwrap();
    assert_eq!(r2.status, HopStatus::WrongPath, "{r}");
    assert!(r2.problems[0].starts_with("best path to 10.255.0.4/32 (loopback of r4) via r3"), "{:?}", r2.problems);

    // A hop that does not answer pings is named, with its loopback.
    let mut bad = o.clone();
    bad.hop_pings.insert("10.255.0.4".parse().unwrap(), Ok(false));
    let r = compare(&p, &bad);
    assert!(!r.verified && r.control_plane_ok);
    let text = r.to_string();
    assert!(text.contains("ping src → every hop's loopback (6): FAILED: 1 of 6 do not answer"), "{text}");
    // Not pinged at all is a failure too.
    let mut bad = o.clone();
    bad.hop_pings.remove(&"10.255.0.6".parse().unwrap());
    assert!(!compare(&p, &bad).verified);
    assert!(text.contains("10.255.0.4 (loopback of r4, hop 4): no reply"), "{text}");
}
