//! `create` failing at each step, and `roll_back` after it.

use vnet_te_agent::node::labels;

use super::chain;
use crate::core::kinds::Kind;
use crate::core::spec::Wiring;
use crate::exec::create::{create, roll_back, Run};
use crate::exec::fake::{Call, Fakes};
use crate::exec::{DeployError, NoProgress, Step};

/// The step a create reports when this call fails.
fn step_of(call: &Call) -> Step {
    match call {
        Call::CreateNetwork(_) | Call::BridgeForwarding(_) | Call::VxlanFilter(_) => Step::Networks,
        Call::CreateContainer(_) | Call::StartContainer(_) => Step::Containers,
        Call::ConnectVeth(_) | Call::ConnectVxlan(_) | Call::ConnectMacvlan(_) => Step::Links,
        other => panic!("a create does not {other}"),
    }
}

#[tokio::test]
async fn a_failure_at_any_step_is_rolled_back_completely() {
    let cases = [(&["n1", "n2"][..], Wiring::Direct), (&["n1", "n2"][..], Wiring::Docker), (&["local"][..], Wiring::Docker)];
    for (nodes, wiring) in cases {
        let plan = chain("p", 4, nodes, wiring);
        let clean = Fakes::new(nodes);
        let run = Run::new();
        create(&plan, &clean.nodes(), &run, &NoProgress).await.unwrap();
        let steps = clean.journal.find(|e| e.call.is_mutating()).len();
        assert!(steps > 12, "{steps}");
        for k in 0..steps {
            let fakes = Fakes::new(nodes);
            fakes.fail_nth_mutating(k);
            let run = Run::new();
            let e = match create(&plan, &fakes.nodes(), &run, &NoProgress).await {
                Ok(()) => panic!("{wiring:?}: create went through with mutating call {k} failing"),
                Err(e) => e,
            };
            let failed = fakes.journal.find(|e| e.ok == Some(false));
            assert_eq!(failed.len(), 1, "{}", fakes.journal.dump());
            let step = step_of(&failed[0].call).describe();
            assert!(matches!(e, DeployError::Step { step: s, .. } if s == step), "{wiring:?} {k} ({}): {e}", failed[0].call);
            let message = format!("{:#}", roll_back(&plan, &fakes.nodes(), &run, e).await);
            assert!(message.contains("rolled back") && message.contains(step), "{message}");
            assert!(message.contains(&failed[0].call.to_string()), "the failed call is named: {message}");
            let left = (fakes.containers(), fakes.networks());
            assert!(left.0.is_empty() && left.1.is_empty(), "{wiring:?} {k} ({}): left {left:?}", failed[0].call);
            assert!(fakes.nodes.iter().all(|n| !n.forwarding()), "the forwarding rule goes with the last network");
            assert!(fakes.nodes.iter().all(|n| n.vxlan_filter().is_none()), "the VXLAN filter goes with the last container");
        }
    }
}

#[tokio::test]
async fn an_existing_path_is_refused_with_nothing_made_or_removed() {
    let plan = chain("p", 4, &["n1", "n2"], Wiring::Docker);
    let fakes = Fakes::new(&["n1", "n2"]);
    fakes.node("n2").add_container("vte-p-r2", &[(labels::PATH, "p")]);
    let run = Run::new();
    let e = create(&plan, &fakes.nodes(), &run, &NoProgress).await.unwrap_err();
    assert!(matches!(&e, DeployError::Exists(p) if p == "p"), "{e}");
    let message = format!("{:#}", roll_back(&plan, &fakes.nodes(), &run, e).await);
    assert!(!message.contains("rolled back"), "{message}");
    assert!(fakes.journal.find(|e| e.call.is_mutating()).is_empty(), "{}", fakes.journal.dump());
    assert_eq!(fakes.containers().len(), 1);
}

#[tokio::test]
async fn a_missing_image_is_refused_with_nothing_made_or_removed() {
    let plan = chain("p", 4, &["n1", "n2"], Wiring::Docker);
    let fakes = Fakes::new(&["n1", "n2"]);
    fakes.node("n2").remove_image(&Kind::Frr.image());
    let run = Run::new();
    let e = create(&plan, &fakes.nodes(), &run, &NoProgress).await.unwrap_err();
    assert!(matches!(&e, DeployError::ImageMissing { image, node, .. } if *image == Kind::Frr.image() && node == "n2"), "{e}");
    let message = format!("{:#}", roll_back(&plan, &fakes.nodes(), &run, e).await);
    assert!(message.contains("nothing was created"), "{message}");
    assert!(fakes.journal.find(|e| e.call.is_mutating()).is_empty(), "{}", fakes.journal.dump());
    assert!(fakes.containers().is_empty() && fakes.networks().is_empty());
}
