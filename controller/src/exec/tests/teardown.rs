//! `delete`: by labels, on every node, nothing else.

use std::collections::BTreeSet;

use vnet_te_agent::node::labels;

use super::{chain, plan_on};
use crate::core::plan::{self, Inventory};
use crate::core::spec::{self, Wiring};
use crate::exec::create::create;
use crate::exec::fake::{Call, Fakes};
use crate::exec::teardown::{delete, Removed};
use crate::exec::{DeployError, NoProgress};

fn names(fakes: &Fakes) -> BTreeSet<String> {
    fakes.containers().into_iter().chain(fakes.networks()).map(|(_, n)| n).collect()
}

/// Containers and networks labelled with `path`, on any node.
fn labelled(fakes: &Fakes, path: &str) -> BTreeSet<String> {
    let of = |l: &std::collections::BTreeMap<String, String>| l.get(labels::PATH).map(String::as_str) == Some(path);
    let mut out = BTreeSet::new();
    for n in &fakes.nodes {
        out.extend(n.containers().into_values().filter(|c| of(&c.spec.labels)).map(|c| c.spec.name));
        out.extend(n.networks().into_values().filter(|s| of(&s.labels)).map(|s| s.name));
    }
    out
}

#[tokio::test]
async fn delete_removes_the_path_on_every_node_and_nothing_else() {
    let nodes = ["n1", "n2"];
    let p = chain("p", 4, &nodes, Wiring::Docker);
    let fakes = Fakes::new(&nodes);
    create(&p, &fakes.nodes(), &NoProgress).await.unwrap();
    // Another path beside it (planned around p's subnets, as `path create` does), and
    // objects that are not vnet-te's at all.
    let mut q = spec::chain("q", 3).unwrap();
    q.wiring = Some(Wiring::Docker);
    let taken = fakes.nodes().taken_subnets().await.unwrap();
    let q = plan::build(&q, &Inventory { nodes: nodes.map(String::from).to_vec(), taken, interfaces: None }).unwrap();
    create(&q, &fakes.nodes(), &NoProgress).await.unwrap();
    fakes.node("n1").add_container("postgres", &[]);
    fakes.node("n2").add_container("vte-p-lookalike", &[("com.example.app", "p")]);
    fakes.node("n2").add_network("vte-p-othernet", "192.168.7.0/24", &[]);
    let ours = labelled(&fakes, "p");
    let before = names(&fakes);
    fakes.journal.clear();

    let removed = delete(&fakes.nodes(), Some("p")).await.unwrap();

    let p_containers = 4 + 2;
    let p_networks = p.networks.len();
    assert_eq!(removed, Removed { containers: p_containers, networks: p_networks });
    assert_eq!(ours.len(), p_containers + p_networks);
    let left = names(&fakes);
    assert_eq!(left, before.difference(&ours).cloned().collect(), "{}", fakes.journal.dump());
    assert!(left.contains("postgres") && left.contains("vte-p-lookalike") && left.contains("vte-p-othernet"));
    assert_eq!(labelled(&fakes, "q").len(), 3 + 2 + q.networks.len());
    // Only p's objects were asked for, each once; every container before any network.
    let removals = fakes.journal.find(|e| matches!(e.call, Call::RemoveContainer(_) | Call::RemoveNetwork(_)));
    let asked: BTreeSet<String> = removals.iter().map(|e| e.call.subject()).collect();
    assert_eq!((asked, removals.len()), (ours, p_containers + p_networks));
    let last_container = removals.iter().filter(|e| e.call.kind() == "remove_container").map(|e| e.ended.unwrap()).max();
    let first_network = removals.iter().filter(|e| e.call.kind() == "remove_network").map(|e| e.began).min();
    assert!(last_container < first_network);
    // q's LANs are bridges on n1: the forwarding rule stays there.
    assert!(q.hosts.iter().all(|h| h.node == "n1") && fakes.node("n1").forwarding());

    // Idempotent: nothing left to remove.
    assert_eq!(delete(&fakes.nodes(), Some("p")).await.unwrap(), Removed::default());
}

/// Today a delete lists every node first and stops at the first node that does not
/// answer: nothing is removed anywhere, not even on the nodes that answer.
#[tokio::test]
async fn delete_with_a_lost_node_stops_before_removing_anything_anywhere() {
    let plan = plan_on(&spec::chain("p", 4).unwrap(), &["n1", "n2"]);
    let fakes = Fakes::new(&["n1", "n2"]);
    create(&plan, &fakes.nodes(), &NoProgress).await.unwrap();
    let before = fakes.containers();
    fakes.node("n2").set_lost(true);
    fakes.journal.clear();

    let e = delete(&fakes.nodes(), Some("p")).await.unwrap_err();

    assert!(matches!(e, DeployError::Step { step: "listing labelled objects", .. }), "{e}");
    assert!(e.to_string().contains("node n2"), "{e}");
    assert!(fakes.journal.find(|e| e.call.is_mutating()).is_empty(), "{}", fakes.journal.dump());
    assert_eq!(fakes.containers(), before);
    assert!(fakes.node("n1").containers().len() >= 2, "n1 holds part of the path");
}

/// A network that cannot be removed (a swarm task still holds it past the agent's deadline)
/// keeps neither the path's other networks nor its containers: all of them go, and the
/// failure names the one left.
#[tokio::test]
async fn delete_removes_every_other_object_when_one_network_stays_and_names_it() {
    let nodes = ["n1", "n2"];
    let p = chain("p", 4, &nodes, Wiring::Docker);
    let fakes = Fakes::new(&nodes);
    create(&p, &fakes.nodes(), &NoProgress).await.unwrap();
    let stuck = p.networks[0].name.clone();
    let s = stuck.clone();
    fakes.fail_on(move |c| matches!(c, Call::RemoveNetwork(n) if *n == s));

    let e = delete(&fakes.nodes(), Some("p")).await.unwrap_err();

    assert!(matches!(e, DeployError::Step { step: "removing networks", .. }), "{e}");
    assert!(e.to_string().contains(&stuck), "{e}");
    assert_eq!(labelled(&fakes, "p"), BTreeSet::from([stuck]), "{}", fakes.journal.dump());
}
