//! Property tests of the planner over random chains and meshes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use proptest::prelude::*;
use vnet_te::core::plan::{self, Inventory, NetworkRole};
use vnet_te::core::spec::{self, LinkSpec, PathSpec};
use vnet_te::core::render;

/// A chain of `n` routers plus random shortcut links; the path is the sub-chain
/// `r[from]..=r[to]` (routers outside it are off the path).
fn mesh_spec(n: usize, extra: &[(usize, usize)], from: usize, to: usize) -> PathSpec {
    let mut s = spec::chain("prop", n).unwrap();
    let mut links = spec::effective_links(&s);
    let mut pairs: BTreeSet<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
    for &(a, b) in extra {
        let (a, b) = (a % n, b % n);
        let key = (a.min(b), a.max(b));
        if a != b && pairs.insert(key) {
            links.push(LinkSpec::between(&format!("r{}", a + 1), &format!("r{}", b + 1)));
        }
    }
    s.links = Some(links);
    let (from, to) = (from % n, to % n);
    let (lo, hi) = (from.min(to), from.max(to));
    s.path = Some((lo..=hi).map(|i| format!("r{}", i + 1)).collect());
    s
}

fn nodes(k: usize) -> Inventory {
    Inventory { nodes: (1..=k).map(|i| format!("node{i}")).collect(), taken: vec![], interfaces: None }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn plans_are_consistent(
        n in 1usize..80,
        extra in proptest::collection::vec((0usize..80, 0usize..80), 0..40),
        from in 0usize..80,
        to in 0usize..80,
        k in 1usize..5,
        all in proptest::bool::ANY,
    ) {
        let mut s = mesh_spec(n, &extra, from, to);
        if all {
            s.announce = spec::Announce::All;
        }
        prop_assert!(spec::validate(&s).is_empty(), "{:?}", spec::validate(&s));
        let inv = nodes(k);
        let p = plan::build(&s, &inv).unwrap();
        // Deterministic.
        prop_assert_eq!(&p, &plan::build(&s, &inv).unwrap());

        // No address is used twice; every address sits inside its network, off Docker's
        // gateway and outside the fenced dynamic range.
        let mut seen: BTreeSet<Ipv4Addr> = BTreeSet::new();
        let nets: BTreeMap<&str, &plan::NetworkPlan> = p.networks.iter().map(|n| (n.name.as_str(), n)).collect();
        for r in &p.routers {
            prop_assert!(seen.insert(r.loopback.addr()), "loopback {} reused", r.loopback);
            for i in &r.interfaces {
                prop_assert!(seen.insert(i.address), "address {} reused", i.address);
                let net = nets[i.network.as_str()];
                prop_assert!(net.subnet.contains(&i.address));
                prop_assert!(i.address != net.gateway && !net.ip_range.contains(&i.address));
            }
        }
        for h in &p.hosts {
            prop_assert!(seen.insert(h.address), "host address {} reused", h.address);
        }
        let subnets: Vec<_> = p.networks.iter().map(|n| n.subnet).collect();
        for (i, a) in subnets.iter().enumerate() {
            for b in &subnets[i + 1..] {
                prop_assert!(!a.contains(b) && !b.contains(a), "{} overlaps {}", a, b);
            }
        }
        let bridges: BTreeSet<&str> = p.networks.iter().map(|n| n.bridge.as_str()).collect();
        prop_assert_eq!(bridges.len(), p.networks.len());
        prop_assert!(p.networks.iter().all(|n| n.bridge.len() <= 15 && n.bridge.starts_with("vte")));

        // ASNs are unique.
        let asns: BTreeSet<u32> = p.routers.iter().map(|r| r.asn).collect();
        prop_assert_eq!(asns.len(), p.routers.len());

        // Every on-path router's expectations point at the next planned hop (toward the
        // last router) or the previous one (toward the first), with the exact AS path.
        let asn_of: BTreeMap<&str, u32> = p.routers.iter().map(|r| (r.name.as_str(), r.asn)).collect();
        let last = p.path.len() - 1;
        for e in &p.expectations.routes {
            let r = p.router(&e.router).unwrap();
            let toward_b = e.toward == plan::Toward::Last;
            let end = if toward_b { &p.path[last] } else { &p.path[0] };
            prop_assert!(p.router(end).unwrap().originate.contains(&e.prefix), "{} not originated at {}", e.prefix, end);
            let rest: Vec<&String> = if toward_b && e.hop != last {
                p.path[e.hop + 1..].iter().collect()
            } else if !toward_b && e.hop != 0 {
                p.path[..e.hop].iter().rev().collect()
            } else {
                vec![]
            };
            let want: Vec<u32> = rest.iter().map(|n| asn_of[n.as_str()]).collect();
            prop_assert_eq!(&e.as_path(&p), &want, "{} {}", e.router, e.prefix);
            match rest.first() {
                Some(next) => {
                    prop_assert_eq!(e.via.as_deref(), Some(next.as_str()));
                    let nb = r.neighbors.iter().find(|nb| Some(nb.address) == e.next_hop).unwrap();
                    prop_assert_eq!(&nb.peer, *next);
                    prop_assert_eq!(nb.remote_as, asn_of[next.as_str()]);
                    prop_assert!(nb.prefer.contains(&e.prefix), "no TE preference for {}", e.prefix);
                }
                None => prop_assert!(e.next_hop.is_none() && r.originate.contains(&e.prefix)),
            }
        }
        // With `announce: all`, every path router expects every hop's loopback the planned
        // way (AS path of the hops up to it), the neighbour it comes from covers it in its
        // TE blocks, and no block covers a loopback of a router off the path.
        if all {
            let hop_of: BTreeMap<ipnet::Ipv4Net, usize> = p.path_routers().enumerate().map(|(h, r)| (r.loopback, h)).collect();
            for (h, name) in p.path.iter().enumerate() {
                let r = p.router(name).unwrap();
                prop_assert!(r.originate.contains(&r.loopback));
                let routes = p.routes_of(name);
                for (lo, k) in &hop_of {
                    let e = routes.iter().find(|e| e.prefix == *lo);
                    prop_assert!(e.is_some(), "{} expects no route to {}", name, lo);
                    let e = e.unwrap();
                    let between: Vec<u32> = if *k > h { (h + 1..=*k).collect::<Vec<_>>() } else { (*k..h).rev().collect() }
                        .into_iter()
                        .map(|i| asn_of[p.path[i].as_str()])
                        .collect();
                    prop_assert_eq!(&e.as_path(&p), &between, "{} to {}", name, lo);
                    if let Some(nh) = e.next_hop {
                        let nb = r.neighbors.iter().find(|nb| nb.address == nh).unwrap();
                        let covered = nb.prefer.contains(lo) || nb.prefer_loopbacks.iter().any(|b| b.contains(lo));
                        prop_assert!(covered, "{}: {} not preferred from {}", name, lo, nb.peer);
                    }
                }
                for nb in &r.neighbors {
                    for off in p.routers.iter().filter(|o| o.hop.is_none()) {
                        prop_assert!(!nb.prefer_loopbacks.iter().any(|b| b.contains(&off.loopback)), "{} covers off-path {}", name, off.name);
                    }
                }
            }
        }
        // Traceroute: one reply per path router, then the target.
        for t in &p.expectations.traceroutes {
            prop_assert_eq!(t.hops.len(), p.path.len() + 1);
            prop_assert_eq!(*t.hops.last().unwrap(), t.target);
        }
        // Links between routers on different nodes are overlays, the rest bridges.
        for n in p.networks.iter().filter(|n| n.role == NetworkRole::Link) {
            prop_assert_eq!(n.cross_host, n.nodes.len() > 1);
        }
        prop_assert!(render::render(&p).is_ok());
    }
}
