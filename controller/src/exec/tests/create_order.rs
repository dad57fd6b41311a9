//! `create`: what is made where, and in what order.

use std::collections::BTreeSet;

use vnet_te_agent::node::Node;

use super::{chain, created};
use crate::core::objects::{container_specs, direct_links, network_specs, DirectLink};
use crate::core::plan::sessions::{routers_waiting_for_bgp, start_after};
use crate::core::plan::Plan;
use crate::core::render;
use crate::core::spec::Wiring;
use crate::exec::create::CLUSTER_PER_NODE;
use crate::exec::fake::{Call, Entry, Fakes};
use crate::exec::PARALLELISM;

/// What a create of `plan` must ask of the nodes (`manager`: where overlays go), as
/// (node, call) sorted the way `made` sorts.
fn intended(plan: &Plan, fakes: &Fakes, manager: &str) -> Vec<(String, String, Call)> {
    let files = render::render(plan).unwrap();
    let mut out = Vec::new();
    for (on, spec) in network_specs(plan) {
        if spec.driver == "overlay" {
            out.push((manager.to_string(), Call::CreateNetwork(spec)));
        } else {
            out.extend(on.into_iter().map(|n| (n, Call::CreateNetwork(spec.clone()))));
        }
    }
    for (node, spec) in container_specs(plan, &files) {
        out.push((node.clone(), Call::StartContainer(spec.name.clone())));
        out.push((node, Call::CreateContainer(spec)));
    }
    let waiting = routers_waiting_for_bgp(plan);
    for (node, link) in direct_links(plan, &fakes.nodes().underlay, &waiting).unwrap() {
        out.push((
            node,
            match link {
                DirectLink::Veth(v) => Call::ConnectVeth(v),
                DirectLink::Vxlan(v) => Call::ConnectVxlan(v),
                DirectLink::Macvlan(m) => Call::ConnectMacvlan(m),
            },
        ));
    }
    sorted(out)
}

fn sorted(calls: Vec<(String, Call)>) -> Vec<(String, String, Call)> {
    let mut v: Vec<(String, String, Call)> = calls.into_iter().map(|(n, c)| (n, c.to_string(), c)).collect();
    v.sort_by_cached_key(|(n, s, c)| (n.clone(), s.clone(), format!("{c:?}")));
    v
}

/// The creates, starts and links the nodes were asked for.
fn made(fakes: &Fakes) -> Vec<(String, String, Call)> {
    let kinds = ["create_network", "create_container", "start_container", "connect_veth", "connect_vxlan", "connect_macvlan"];
    // Each object carries its run's label, which the plan cannot know: compared without it,
    // after checking that every object has one.
    let unlabelled = |call: Call| match call {
        Call::CreateContainer(mut c) => {
            assert!(c.labels.remove(vnet_te_agent::node::labels::RUN).is_some(), "{} has no run label", c.name);
            Call::CreateContainer(c)
        }
        Call::CreateNetwork(mut n) => {
            assert!(n.labels.remove(vnet_te_agent::node::labels::RUN).is_some(), "{} has no run label", n.name);
            Call::CreateNetwork(n)
        }
        other => other,
    };
    sorted(fakes.journal.find(|e| kinds.contains(&e.call.kind())).into_iter().map(|e| (e.node, unlabelled(e.call))).collect())
}

fn only(fakes: &Fakes, kind: &str, container: &str) -> Entry {
    let found = fakes.journal.find(|e| e.call.kind() == kind && e.call.containers() == [container]);
    assert_eq!(found.len(), 1, "{kind} {container}:\n{}", fakes.journal.dump());
    found.into_iter().next().unwrap()
}

#[tokio::test]
async fn every_object_of_the_plan_is_made_once_on_its_node() {
    for (nodes, wiring) in [
        (&["local"][..], Wiring::Direct),
        (&["n1", "n2"][..], Wiring::Direct),
        (&["local"][..], Wiring::Docker),
        (&["n1", "n2"][..], Wiring::Docker),
    ] {
        let plan = chain("p", 4, nodes, wiring);
        let fakes = created(&plan).await;
        let want = intended(&plan, &fakes, nodes[0]);
        assert!(want.iter().any(|(_, _, c)| matches!(c, Call::CreateNetwork(_) | Call::ConnectVeth(_))));
        let got = made(&fakes);
        let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).map(|(n, c, _)| format!("{n}: {c}")).collect();
        let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).map(|(n, c, _)| format!("{n}: {c}")).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{nodes:?} {wiring:?}: missing {missing:#?}, not planned {extra:#?}");
        assert!(got == want, "{nodes:?} {wiring:?}: some made more than once");
        // Every container is there, running, on its node; nothing else is.
        let files = render::render(&plan).unwrap();
        let planned: BTreeSet<(String, String)> =
            container_specs(&plan, &files).into_iter().map(|(n, c)| (n, c.name)).collect();
        assert_eq!(fakes.containers(), planned);
        assert!(fakes.nodes.iter().all(|n| n.containers().values().all(|c| c.running)));
        // Routed traffic may cross the path's bridges wherever it has one.
        for n in &fakes.nodes {
            let bridges = n.networks().values().any(|s| s.driver == "bridge");
            assert_eq!(n.forwarding(), bridges, "{} {wiring:?}", n.name());
        }
    }
}

#[tokio::test]
async fn a_listening_router_starts_only_once_the_routers_that_connect_to_it_are_up() {
    for nodes in [&["local"][..], &["n1", "n2"][..]] {
        let plan = chain("p", 6, nodes, Wiring::Direct);
        let fakes = created(&plan).await;
        let waiting = routers_waiting_for_bgp(&plan);
        let after = start_after(&plan, &waiting);
        assert!(after.len() >= 2, "{after:?}");
        for (listener, connecting) in &after {
            let start = only(&fakes, "start_container", listener);
            for c in connecting {
                // Up: started and its bgpd listening.
                let up = only(&fakes, "wait_bgpd", c);
                assert!(start.began > up.ended.unwrap(), "{listener} started before {c} was up:\n{}", fakes.journal.dump());
            }
        }
    }
}

#[tokio::test]
async fn a_router_is_linked_only_after_its_bgpd_was_waited_for() {
    for nodes in [&["local"][..], &["n1", "n2"][..]] {
        let plan = chain("p", 6, nodes, Wiring::Direct);
        let fakes = created(&plan).await;
        let waiting = routers_waiting_for_bgp(&plan);
        assert_eq!(waiting.len(), 6);
        let links = fakes.journal.find(|e| matches!(e.call, Call::ConnectVeth(_) | Call::ConnectVxlan(_)));
        for r in &waiting {
            let started = only(&fakes, "start_container", r);
            let bgpd = only(&fakes, "wait_bgpd", r);
            assert!(bgpd.began > started.ended.unwrap(), "{r}: bgpd waited for before the start ended");
            let mine: Vec<&Entry> = links.iter().filter(|e| e.call.containers().contains(r)).collect();
            assert!(!mine.is_empty(), "{r} has no link");
            for l in mine {
                assert!(l.began > bgpd.ended.unwrap(), "{} before {r}'s bgpd:\n{}", l.call, fakes.journal.dump());
            }
        }
    }
}

#[tokio::test]
async fn the_listening_end_of_each_veth_is_made_first() {
    let plan = chain("p", 6, &["local"], Wiring::Direct);
    let fakes = created(&plan).await;
    let router = |c: &str| plan.routers.iter().find(|r| r.container == c);
    let mut sessions = 0;
    for e in fakes.journal.of_kind("connect_veth") {
        let Call::ConnectVeth(v) = &e.call else { unreachable!() };
        let (Some(a), Some(b)) = (router(&v.a.container), router(&v.b.container)) else {
            assert!(!v.b_listens, "a host's LAN has no session: {v:?}");
            continue;
        };
        sessions += 1;
        let listens = |r: &crate::core::plan::RouterPlan, peer: &str| r.neighbors.iter().any(|n| n.peer == peer && n.passive);
        assert!(v.b_listens && listens(b, &a.name) && !listens(a, &b.name), "{} - {}: {v:?}", a.name, b.name);
    }
    assert_eq!(sessions, 5);
}

/// The permits `create` gives each node of a deployment of `n` nodes without overlays.
fn permits(nodes: usize, overlays: bool) -> usize {
    std::env::var("VNET_TE_NODE_PARALLELISM").ok().and_then(|v| v.parse().ok()).unwrap_or(if overlays {
        CLUSTER_PER_NODE
    } else {
        (PARALLELISM / nodes).max(CLUSTER_PER_NODE)
    })
}

#[tokio::test]
async fn no_node_runs_more_container_operations_at_once_than_its_permits() {
    for (hops, nodes, wiring) in
        [(20, &["n1", "n2", "n3"][..], Wiring::Direct), (8, &["n1", "n2"][..], Wiring::Docker)]
    {
        let plan = chain("p", hops, nodes, wiring);
        let fakes = created(&plan).await;
        let limit = permits(nodes.len(), wiring == Wiring::Docker);
        for n in &fakes.nodes {
            assert!(n.containers().len() > limit, "the test needs more containers than permits on {}", n.name());
            // At the limit, not under it: the fake sees operations overlap.
            assert_eq!(n.peak_container_ops(), limit, "{} ({wiring:?})", n.name());
        }
    }
}
