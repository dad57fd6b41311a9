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
    let inv = Inventory {
        nodes: vec!["local".into()],
        taken: vec!["10.199.0.0/29".parse().unwrap(), "10.210.0.0/24".parse().unwrap()],
    };
    let p = build(&s, &inv).unwrap();
    let link = p.networks.iter().find(|n| n.role == NetworkRole::Link).unwrap();
    assert_eq!(link.subnet.to_string(), "10.199.0.8/29");
    assert_eq!(p.hosts[0].address.to_string(), "10.210.1.10");
}

#[test]
fn spread_and_pack() {
    let s = spec::chain("p", 6).unwrap();
    let inv = Inventory { nodes: vec!["n1".into(), "n2".into(), "n3".into()], taken: vec![] };
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
