use super::*;
use crate::core::spec::{self, Placement};

#[test]
fn listeners_boot_after_their_neighbours_and_the_path_ends_before_the_middle() {
    let n = 24;
    let rank = |h: usize| start_rank(n, Some(h));
    for h in (1..n).step_by(2) {
        assert!(rank(h) > rank(h - 1), "hop {h} listens to hop {}", h - 1);
        if h + 1 < n {
            assert!(rank(h) > rank(h + 1), "hop {h} listens to hop {}", h + 1);
        }
    }
    // The listener of the session at the source end boots before the connecting
    // routers mid-path, not after all of them.
    assert!(rank(1) < rank(n / 2));
    assert_eq!(start_rank(n, None), usize::MAX);
}

#[test]
fn chain_addresses_and_expectations() {
    let s = spec::chain("p", 3).unwrap();
    let p = build(&s, &Inventory::default()).unwrap();
    assert_eq!(p.networks.iter().filter(|n| n.role == NetworkRole::Link).count(), 2);
    let r1 = p.router("r1").unwrap();
    assert_eq!(r1.asn, 4_200_000_001);
    assert_eq!(r1.interfaces[1].address.to_string(), "10.199.0.2");
    let e = p.expectations.routes.iter().find(|e| e.router == "r1" && e.prefix.to_string() == "10.210.1.0/24").unwrap();
    assert_eq!(e.as_path(&p), vec![4_200_000_002, 4_200_000_003]);
    assert_eq!(e.next_hop.unwrap().to_string(), "10.199.0.3");
    let t = &p.expectations.traceroutes[0];
    let hops: Vec<String> = t.hops.iter().map(|h| h.to_string()).collect();
    assert_eq!(hops, ["10.210.0.2", "10.199.0.3", "10.199.0.11", "10.210.1.10"]);
}

#[test]
fn taken_subnets_are_skipped() {
    let s = spec::chain("p", 2).unwrap();
    let inv = Inventory { nodes: vec!["local".into()], taken: vec!["10.199.0.0/29".parse().unwrap(), "10.210.0.0/24".parse().unwrap()], interfaces: None };
    let p = build(&s, &inv).unwrap();
    let link = p.networks.iter().find(|n| n.role == NetworkRole::Link).unwrap();
    assert_eq!(link.subnet.to_string(), "10.199.0.8/29");
    assert_eq!(p.hosts[0].address.to_string(), "10.210.1.10");
}

#[test]
fn spread_and_pack() {
    let s = spec::chain("p", 6).unwrap();
    let inv = Inventory { nodes: vec!["n1".into(), "n2".into(), "n3".into()], taken: vec![], interfaces: None };
    let p = build(&s, &inv).unwrap();
    let nodes: Vec<&str> = p.routers.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(nodes, ["n1", "n2", "n3", "n1", "n2", "n3"]);
    assert!(p.networks.iter().filter(|n| n.role == NetworkRole::Link).all(|n| n.cross_host));
    let mut s2 = s.clone();
    s2.placement = Placement::Pack;
    let p = build(&s2, &inv).unwrap();
    let nodes: Vec<&str> = p.routers.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(nodes, ["n1", "n1", "n2", "n2", "n3", "n3"]);
}

#[test]
fn announce_all_expects_every_hop_prefix_along_the_path() {
    let mut s = spec::chain("p", 24).unwrap();
    s.announce = spec::Announce::All;
    let p = build(&s, &Inventory::default()).unwrap();
    let lo = |i: u32| -> Ipv4Net { format!("10.255.0.{i}/32").parse().unwrap() };
    // Every router originates its loopback; the edges their LAN too.
    for (i, r) in p.routers.iter().enumerate() {
        assert!(r.originate.contains(&lo(i as u32 + 1)), "{}", r.name);
    }
    assert_eq!(p.router("r1").unwrap().originate.len(), 2);
    assert_eq!(p.router("r5").unwrap().originate, vec![lo(5)]);
    // The hops between the ends: r2..r23 (the ends' loopbacks are expected already).
    let hops: Vec<&str> = p.expectations.hop_prefixes.iter().map(|h| h.router.as_str()).collect();
    assert_eq!(hops.len(), 22);
    assert_eq!((hops[0], hops[21]), ("r2", "r23"));
    // On r24, the figure: one loopback per router, AS paths of 0..23 hops, r24's own empty.
    let r24 = p.routes_of("r24");
    for k in 1..=24u32 {
        let e = r24.iter().find(|e| e.prefix == lo(k)).unwrap_or_else(|| panic!("r24 expects no route to r{k}"));
        let want: Vec<u32> = (k..24).rev().map(|i| 4_200_000_000 + i).collect();
        assert_eq!(e.as_path(&p), want, "r{k}'s loopback on r24");
        assert_eq!(e.next_hop.is_none(), k == 24);
    }
    assert_eq!(r24.len(), 26, "24 loopbacks and two LANs");
    // Mid-path both ways: from r5, r9's loopback via r6, r2's via r4.
    let r5 = p.routes_of("r5");
    let to = |k: u32| r5.iter().find(|e| e.prefix == lo(k)).unwrap();
    assert_eq!(to(9).as_path(&p), vec![4_200_000_006, 4_200_000_007, 4_200_000_008, 4_200_000_009]);
    assert_eq!(to(9).via.as_deref(), Some("r6"));
    assert_eq!(to(2).as_path(&p), vec![4_200_000_004, 4_200_000_003, 4_200_000_002]);
    assert_eq!(to(2).via.as_deref(), Some("r4"));
    assert!(to(5).as_path(&p).is_empty() && to(5).next_hop.is_none());
    // r5's TE policy covers exactly the middle hops beyond each neighbour.
    let n = |peer: &str| p.router("r5").unwrap().neighbors.iter().find(|n| n.peer == peer).unwrap().clone();
    let covered = |blocks: &[Ipv4Net]| -> Vec<u32> { (1..=254u32).filter(|i| blocks.iter().any(|b| b.contains(&lo(*i).addr()))).collect() };
    assert_eq!(covered(&n("r6").prefer_loopbacks), (6..=23).collect::<Vec<_>>());
    assert_eq!(covered(&n("r4").prefer_loopbacks), (2..=4).collect::<Vec<_>>());
    assert!(n("r6").prefer_loopbacks.len() <= 4, "{:?}", n("r6").prefer_loopbacks);
}

#[test]
fn announce_ends_is_the_default_and_adds_nothing() {
    let s = spec::chain("p", 5).unwrap();
    assert_eq!(s.announce, spec::Announce::Ends);
    let p = build(&s, &Inventory::default()).unwrap();
    assert!(p.expectations.hop_prefixes.is_empty());
    assert!(p.routers.iter().all(|r| r.neighbors.iter().all(|n| n.prefer_loopbacks.is_empty())));
    assert!(p.router("r3").unwrap().originate.is_empty());
    assert_eq!(p.routes_of("r3").len(), 4);
    assert!(!crate::commands::plan_json(&p).contains("announce"));
}

fn lan_attach() -> spec::PathSpec {
    let text = "name: la\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }]\n\
                hosts:\n  a: { name: src, attach: { macvlan: eth1 } }\n  b: dst\n";
    spec::parse_yaml("la.yaml", text).unwrap()
}

#[test]
fn an_attached_lan_takes_the_next_free_lan_and_is_forced_like_its_hosts_own() {
    let plain = build(&spec::chain("la", 3).unwrap(), &Inventory::default()).unwrap();
    let p = build(&lan_attach(), &Inventory::default()).unwrap();
    // The other LANs stay where they were.
    assert_eq!(p.hosts[0].address, plain.hosts[0].address);
    assert_eq!(p.hosts[1].address, plain.hosts[1].address);
    let a = p.hosts[0].attach.as_ref().unwrap();
    assert_eq!((a.parent.as_str(), a.ifname.as_str()), ("eth1", ATTACH_IFNAME));
    assert_eq!((a.subnet.to_string(), a.address.to_string()), ("10.210.2.0/24".to_string(), "10.210.2.1".to_string()));
    assert!(p.hosts[1].attach.is_none());
    // r1 routes the LAN to src and announces it; r2 prefers it from r1, r3 from r2.
    let r1 = p.router("r1").unwrap();
    assert_eq!(r1.statics, [StaticRoutePlan { prefix: a.subnet, via: p.hosts[0].address }]);
    assert!(r1.originate.contains(&a.subnet));
    for (r, prev) in [("r2", "r1"), ("r3", "r2")] {
        let n = p.router(r).unwrap().neighbors.iter().find(|n| n.peer == prev).unwrap();
        assert!(n.prefer.contains(&a.subnet), "{r}: {:?}", n.prefer);
        let e = p.expectations.routes.iter().find(|e| e.router == r && e.prefix == a.subnet).unwrap();
        assert_eq!((e.toward, e.via.as_deref()), (Toward::First, Some(prev)));
    }
    // Taken by another path: the next one.
    let inv = Inventory { taken: vec!["10.210.2.0/24".parse().unwrap()], ..Inventory::default() };
    let q = build(&lan_attach(), &inv).unwrap();
    assert_eq!(q.hosts[0].attach.as_ref().unwrap().subnet.to_string(), "10.210.3.0/24");
}

#[test]
fn an_attachments_parent_must_be_an_interface_of_the_hosts_node() {
    let mut s = lan_attach();
    s.hosts.b.attach = Some(spec::AttachSpec { macvlan: "ens4".into() });
    s.routers[2].node = Some("n2".into());
    let known = |pairs: &[(&str, &[&str])]| Some(pairs.iter().map(|(n, i)| (n.to_string(), i.iter().map(|x| x.to_string()).collect())).collect());
    let inv = |interfaces| Inventory { nodes: vec!["n1".into(), "n2".into()], taken: vec![], interfaces };
    assert!(build(&s, &inv(known(&[("n1", &["lo", "eth1"]), ("n2", &["lo", "ens4"])]))).is_ok());
    // Not known: not checked (`path plan` without nodes to ask).
    assert!(build(&s, &inv(None)).is_ok());
    let e = build(&s, &inv(known(&[("n1", &["lo", "ens4"]), ("n2", &["lo", "eth1"])]))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot plan path 'la': hosts.a.attach.macvlan: no interface 'eth1' on node 'n1' (the node of src, behind r1); \
         hosts.b.attach.macvlan: no interface 'ens4' on node 'n2' (the node of dst, behind r3)"
    );
}

#[test]
fn limits_come_from_the_top_then_the_router_and_change_no_plan_without_them() {
    let plain = build(&spec::chain("p", 2).unwrap(), &Inventory::default()).unwrap();
    assert!(plain.routers.iter().all(|r| r.limits == spec::Limits::default()));
    assert!(!serde_json::to_string(&plain).unwrap().contains("limits"), "default limits leave the plan (and its hash) as it was");
    let mut s = spec::chain("p", 2).unwrap();
    s.limits = Some(spec::LimitsSpec { memory: Some("128MiB".into()), pids: None });
    s.routers[1].limits = Some(spec::LimitsSpec { memory: None, pids: Some("64".into()) });
    let p = build(&s, &Inventory::default()).unwrap();
    assert_eq!(p.router("r1").unwrap().limits, spec::Limits { memory: 128 << 20, pids: 512 });
    assert_eq!(p.router("r2").unwrap().limits, spec::Limits { memory: 128 << 20, pids: 64 });
    assert!(p.hosts.iter().all(|h| h.limits == spec::Limits { memory: 128 << 20, pids: 512 }));
    assert_ne!(p.hash, plain.hash);
    let c = crate::core::replan::conflicts(&plain, &p);
    assert!(c.iter().any(|c| c == "router r2: limits memory 256 MiB, pids 512 → memory 128 MiB, pids 64"), "{c:?}");
    assert!(c.iter().any(|c| c.starts_with("host src: limits")), "{c:?}");
}
