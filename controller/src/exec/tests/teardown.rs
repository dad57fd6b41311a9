//! `delete`: by labels, on every node, nothing else.

use std::collections::BTreeSet;

use vnet_te_agent::node::labels;

use super::{chain, plan_on};
use crate::core::plan::{self, Inventory};
use crate::core::spec::{self, Wiring};
use crate::exec::create::{create, Run};
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
    create(&p, &fakes.nodes(), &Run::default(), &NoProgress).await.unwrap();
    // Another path beside it (planned around p's subnets, as `path create` does), and
    // objects that are not vnet-te's at all.
    let mut q = spec::chain("q", 3).unwrap();
    q.wiring = Some(Wiring::Docker);
    let taken = fakes.nodes().taken_subnets().await.unwrap();
    let q = plan::build(&q, &Inventory { nodes: nodes.map(String::from).to_vec(), taken, interfaces: None }).unwrap();
    create(&q, &fakes.nodes(), &Run::default(), &NoProgress).await.unwrap();
    fakes.node("n1").add_container("postgres", &[]);
    fakes.node("n2").add_container("vte-p-lookalike", &[("com.example.app", "p")]);
    fakes.node("n2").add_network("vte-p-othernet", "192.168.7.0/24", &[]);
    let ours = labelled(&fakes, "p");
    let before = names(&fakes);
    fakes.journal.clear();

    let removed = delete(&fakes.nodes(), Some("p")).await.unwrap();

    let p_containers = 4 + 2;
    let p_networks = p.networks.len();
    assert_eq!(removed, Removed { containers: p_containers, networks: p_networks, unreached: vec![] });
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

/// A node that does not answer keeps neither the listing nor the removal on the others: the
/// rest goes, the node is named, and the controller's state stays until a delete reaches it.
#[tokio::test]
async fn delete_with_a_lost_node_removes_the_rest_names_the_node_and_a_later_delete_clears_it() {
    let plan = plan_on(&spec::chain("p", 4).unwrap(), &["n1", "n2"]);
    let fakes = super::created(&plan).await;
    let on_n2: BTreeSet<String> = fakes.node("n2").containers().into_keys().collect();
    assert!(!on_n2.is_empty() && !fakes.node("n1").containers().is_empty());
    fakes.node("n2").set_lost(true);

    let removed = delete(&fakes.nodes(), Some("p")).await.unwrap();

    assert_eq!(removed.unreached.len(), 1, "{removed:?}");
    assert_eq!(removed.unreached[0].node, "n2");
    assert!(removed.unreached[0].error.contains("connection refused"), "{removed:?}");
    assert!(fakes.node("n1").containers().is_empty(), "{}", fakes.journal.dump());
    assert_eq!(fakes.node("n2").containers().into_keys().collect::<BTreeSet<_>>(), on_n2);
    assert!(crate::exec::state::file(&fakes.state_dir, "p").exists(), "the state stays while a node holds a share");
    let left = crate::exec::create::left_on(&plan, &removed.unreached);
    let there: Vec<&str> = plan
        .routers
        .iter()
        .filter(|r| r.node == "n2")
        .map(|r| r.name.as_str())
        .chain(plan.hosts.iter().filter(|h| h.node == "n2").map(|h| h.name.as_str()))
        .collect();
    assert!(left.starts_with("node n2 did not answer (") && left.ends_with(&format!("{} may be left there", there.join(", "))), "{left}");

    // Back again: labels find its share.
    fakes.node("n2").set_lost(false);
    let removed = delete(&fakes.nodes(), Some("p")).await.unwrap();
    assert_eq!((removed.containers, removed.unreached.len()), (on_n2.len(), 0));
    assert!(labelled(&fakes, "p").is_empty());
    assert!(!crate::exec::state::file(&fakes.state_dir, "p").exists());
}

/// A rollback takes only what its own run made: an object of the same path made by another
/// run stays.
#[tokio::test]
async fn a_rollback_removes_its_own_runs_objects_only() {
    use crate::exec::create::{roll_back, Run};
    let nodes = ["n1", "n2"];
    let p = chain("p", 4, &nodes, Wiring::Docker);
    let fakes = Fakes::new(&nodes);
    let mine = Run::new();
    create(&p, &fakes.nodes(), &mine, &NoProgress).await.unwrap();
    let made = labelled(&fakes, "p");
    assert!(fakes.containers().iter().all(|(n, c)| fakes.node(n).containers()[c].spec.labels.get(labels::RUN).map(String::as_str) == Some(mine.id())));
    assert!(fakes.nodes.iter().all(|n| n.networks().values().all(|s| s.labels.get(labels::RUN).map(String::as_str) == Some(mine.id()))));
    fakes.node("n2").add_container("vte-p-r9", &[(labels::PATH, "p"), (labels::RUN, "another-run")]);
    fakes.node("n1").add_network("vte-p-n9", "192.168.9.0/24", &[(labels::PATH, "p"), (labels::RUN, "another-run")]);

    let message = format!("{:#}", roll_back(&p, &fakes.nodes(), &mine, DeployError::Interrupted("SIGTERM")).await);

    assert!(message.contains(&format!("rolled back: removed 6 containers and {} networks", p.networks.len())), "{message}");
    assert_eq!(labelled(&fakes, "p"), BTreeSet::from(["vte-p-r9".to_string(), "vte-p-n9".to_string()]), "{}", fakes.journal.dump());
    assert!(made.iter().all(|o| !labelled(&fakes, "p").contains(o)));
    // The other run's bridge still needs the forwarding rule on n1.
    assert!(fakes.node("n1").forwarding());
}

/// A node lost while a create runs: the create fails, what it made on the others is rolled
/// back, and the message names the node, what may be left there and what to run.
#[tokio::test]
async fn a_node_lost_during_a_create_is_named_and_the_others_are_rolled_back() {
    use crate::exec::create::{roll_back, Run};
    let nodes = ["n1", "n2", "n3"];
    let p = chain("p", 6, &nodes, Wiring::Direct);
    let fakes = Fakes::new(&nodes);
    let run = Run::new();
    let lose = async {
        // n3 goes away once its first container started.
        while fakes.journal.find(|e| e.node == "n3" && e.call.kind() == "start_container" && e.ok == Some(true)).is_empty() {
            tokio::task::yield_now().await;
        }
        fakes.node("n3").set_lost(true);
    };
    let deployment = fakes.nodes();
    let (r, ()) = futures_util::join!(create(&p, &deployment, &run, &NoProgress), lose);
    let e = r.unwrap_err();
    assert!(e.to_string().contains("node n3"), "{e}");

    let message = format!("{:#}", roll_back(&p, &fakes.nodes(), &run, e).await);

    let there: Vec<&str> = p
        .routers
        .iter()
        .filter(|r| r.node == "n3")
        .map(|r| r.name.as_str())
        .chain(p.hosts.iter().filter(|h| h.node == "n3").map(|h| h.name.as_str()))
        .collect();
    assert!(message.contains("rolled back on the nodes that answer"), "{message}");
    assert!(message.contains("node n3 did not answer (") && message.contains(&format!("{} may be left there", there.join(", "))), "{message}");
    assert!(message.contains("`vnet-te path delete p`") && message.contains("`vnet-te path delete --force p`"), "{message}");
    assert!(fakes.node("n1").containers().is_empty() && fakes.node("n2").containers().is_empty(), "{}", fakes.journal.dump());
    assert!(!fakes.node("n3").containers().is_empty());
    fakes.node("n3").set_lost(false);
    let removed = delete(&fakes.nodes(), Some("p")).await.unwrap();
    assert!(removed.unreached.is_empty() && labelled(&fakes, "p").is_empty(), "{removed:?}");
}

/// A node that stops answering only for a moment (its agent restarting) is tried again: the
/// rollback is complete once it answers.
#[tokio::test]
async fn a_rollback_waits_for_a_node_that_answers_again_shortly() {
    use crate::exec::create::{roll_back, Run};
    let nodes = ["n1", "n2"];
    let p = chain("p", 4, &nodes, Wiring::Direct);
    let fakes = Fakes::new(&nodes);
    let run = Run::new();
    create(&p, &fakes.nodes(), &run, &NoProgress).await.unwrap();
    fakes.node("n2").set_lost(true);
    let back = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        fakes.node("n2").set_lost(false);
    };
    let deployment = fakes.nodes();
    let (message, ()) = futures_util::join!(roll_back(&p, &deployment, &run, DeployError::Interrupted("SIGINT")), back);
    let message = format!("{message:#}");
    assert!(message.contains("rolled back: removed 6 containers"), "{message}");
    assert!(labelled(&fakes, "p").is_empty(), "{}", fakes.journal.dump());
}

/// A delete of one path while another path's create makes its bridges never leaves the
/// second without the forwarding rule, whatever the interleaving.
#[tokio::test]
async fn a_delete_never_withdraws_the_rule_another_paths_bridges_need() {
    let nodes = ["local"];
    for head_start in 0..40 {
        let fakes = Fakes::new(&nodes);
        let p = chain("p", 2, &nodes, Wiring::Docker);
        create(&p, &fakes.nodes(), &Run::default(), &NoProgress).await.unwrap();
        let mut q = spec::chain("q", 2).unwrap();
        q.wiring = Some(Wiring::Docker);
        let taken = fakes.nodes().taken_subnets().await.unwrap();
        let q = plan::build(&q, &Inventory { nodes: vec!["local".into()], taken, interfaces: None }).unwrap();
        let later = async {
            for _ in 0..head_start {
                tokio::task::yield_now().await;
            }
            create(&q, &fakes.nodes(), &Run::default(), &NoProgress).await
        };
        let deployment = fakes.nodes();
        let (d, c) = futures_util::join!(delete(&deployment, Some("p")), later);
        d.unwrap();
        c.unwrap();
        assert!(fakes.node("local").forwarding(), "head start {head_start}: q's bridges lost the rule\n{}", fakes.journal.dump());
    }
}

/// A network that cannot be removed (a swarm task still holds it past the agent's deadline)
/// keeps neither the path's other networks nor its containers: all of them go, and the
/// failure names the one left.
#[tokio::test]
async fn delete_removes_every_other_object_when_one_network_stays_and_names_it() {
    let nodes = ["n1", "n2"];
    let p = chain("p", 4, &nodes, Wiring::Docker);
    let fakes = Fakes::new(&nodes);
    create(&p, &fakes.nodes(), &Run::default(), &NoProgress).await.unwrap();
    let stuck = p.networks[0].name.clone();
    let s = stuck.clone();
    fakes.fail_on(move |c| matches!(c, Call::RemoveNetwork(n) if *n == s));

    let e = delete(&fakes.nodes(), Some("p")).await.unwrap_err();

    assert!(matches!(e, DeployError::Step { step: "removing networks", .. }), "{e}");
    assert!(e.to_string().contains(&stuck), "{e}");
    assert_eq!(labelled(&fakes, "p"), BTreeSet::from([stuck]), "{}", fakes.journal.dump());
}

/// Nodes with VXLAN links take link VXLAN from the cluster's nodes only, from before the
/// first link until no path has a container there; a node with veth links only gets no filter.
#[tokio::test]
async fn the_vxlan_filter_comes_with_the_first_cross_node_path_and_goes_with_the_last() {
    let nodes = ["n1", "n2", "n3"];
    let fakes = Fakes::new(&nodes);
    let addrs: Vec<std::net::Ipv4Addr> = nodes.iter().map(|n| fakes.node(n).addr).collect();
    let p = chain("p", 2, &["n1", "n2"], Wiring::Direct);
    create(&p, &fakes.nodes(), &Run::default(), &NoProgress).await.unwrap();
    assert_eq!(fakes.node("n1").vxlan_filter(), Some(addrs.clone()));
    assert_eq!(fakes.node("n2").vxlan_filter(), Some(addrs.clone()));
    assert_eq!(fakes.node("n3").vxlan_filter(), None);
    // Before any VXLAN link on the node.
    let calls = fakes.journal.find(|e| matches!(e.call, Call::VxlanFilter(_) | Call::ConnectVxlan(_)));
    assert_eq!(calls.first().map(|e| e.call.kind()), Some("vxlan_filter"), "{}", fakes.journal.dump());
    let taken = fakes.nodes().taken_subnets().await.unwrap();
    let q = plan::build(&spec::chain("q", 2).unwrap(), &Inventory { nodes: vec!["n1".into(), "n2".into()], taken, interfaces: None }).unwrap();
    create(&q, &fakes.nodes(), &Run::default(), &NoProgress).await.unwrap();
    delete(&fakes.nodes(), Some("p")).await.unwrap();
    assert_eq!(fakes.node("n1").vxlan_filter(), Some(addrs.clone()), "q still has containers on n1");
    delete(&fakes.nodes(), Some("q")).await.unwrap();
    assert!(nodes.iter().all(|n| fakes.node(n).vxlan_filter().is_none()), "{}", fakes.journal.dump());
}

/// A node that stops answering while the delete removes its containers: the other nodes'
/// share goes all the same, the node is named (not an error of the whole delete), the state
/// stays, and a delete once it answers again leaves nothing.
#[tokio::test]
async fn a_node_lost_while_the_delete_runs_is_named_and_the_rest_goes() {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;
    let plan = plan_on(&spec::chain("p", 6).unwrap(), &["n1", "n2", "n3"]);
    let fakes = super::created(&plan).await;
    let on_n3: BTreeSet<String> = fakes.node("n3").containers().into_keys().collect();
    // 0: answering until its first removal, which fails as its engine goes; 1: answers
    // nothing; 2: back.
    let phase = Arc::new(AtomicU8::new(0));
    let p = phase.clone();
    fakes.node("n3").fail_on(move |c| match c {
        Call::RemoveContainer(_) if p.load(Ordering::SeqCst) == 0 => {
            p.store(1, Ordering::SeqCst);
            true
        }
        _ => p.load(Ordering::SeqCst) == 1,
    });

    let removed = delete(&fakes.nodes(), Some("p")).await.unwrap_or_else(|e| panic!("{e}\n{}", fakes.journal.dump()));

    assert_eq!(removed.unreached.iter().map(|u| u.node.as_str()).collect::<Vec<_>>(), ["n3"], "{removed:?}");
    assert!(fakes.node("n1").containers().is_empty() && fakes.node("n2").containers().is_empty(), "{}", fakes.journal.dump());
    assert_eq!(fakes.node("n3").containers().into_keys().collect::<BTreeSet<_>>(), on_n3);
    assert!(crate::exec::state::file(&fakes.state_dir, "p").exists());
    phase.store(2, Ordering::SeqCst);
    let removed = delete(&fakes.nodes(), Some("p")).await.unwrap();
    assert_eq!((removed.containers, removed.unreached.len()), (on_n3.len(), 0));
    assert!(labelled(&fakes, "p").is_empty());
}

/// A container whose removal outlives its request stays listed, without a name, while Docker
/// finishes: the delete waits until it is gone instead of refusing a nameless container or
/// returning while something of the path is still listed; past the wait it says so.
#[tokio::test(start_paused = true)]
async fn delete_waits_for_containers_docker_is_still_removing() {
    let plan = plan_on(&spec::chain("p", 4).unwrap(), &["n1", "n2"]);
    let fakes = super::created(&plan).await;
    let r2 = plan.routers.iter().find(|r| r.name == "r2").unwrap();
    fakes.node(&r2.node).linger_on_removal(&r2.container, 5);
    fakes.journal.clear();

    let removed = delete(&fakes.nodes(), Some("p")).await.unwrap();

    assert_eq!(removed.containers, 4 + 2);
    assert!(labelled(&fakes, "p").is_empty());
    let removals = fakes.journal.find(|e| matches!(&e.call, Call::RemoveContainer(c) if *c == r2.container));
    assert_eq!(removals.len(), 1, "a nameless container is not asked to go again: {}", fakes.journal.dump());
    // Listed nameless five times on its node: the delete listed it until it was gone.
    let listings = fakes.journal.find(|e| matches!(e.call, Call::FindContainers { .. }) && e.node == r2.node);
    assert!(listings.len() > 5, "{} listings", listings.len());

    // A removal Docker never finishes: the delete fails, naming the node.
    let fakes = super::created(&plan).await;
    fakes.node(&r2.node).linger_on_removal(&r2.container, usize::MAX);
    let err = delete(&fakes.nodes(), Some("p")).await.unwrap_err().to_string();
    assert!(err.contains("still being removed by Docker on ") && err.contains(&r2.node), "{err}");
}
