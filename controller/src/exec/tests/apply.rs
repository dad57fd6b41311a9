//! `apply` (`path update`): every router reconfigured, then the plan stored.

use super::{created, plan_on, spec_file};
use crate::core::plan::Plan;
use crate::core::replan::{changes, conflicts, replan};
use crate::exec::apply::{apply, ApplyError};
use crate::exec::fake::{Call, Fakes};
use crate::exec::state::load_plan;

/// The ring on two nodes, and the same ring forced the short way (r1 → r6).
fn ring_and_shortcut() -> (Plan, Plan) {
    let old = plan_on(&spec_file("ring-detour.yaml"), &["n1", "n2"]);
    let mut s = spec_file("ring-detour.yaml");
    s.path = Some(vec!["r1".into(), "r6".into()]);
    let new = replan(&old, &s).unwrap();
    assert!(conflicts(&old, &new).is_empty());
    (old, new)
}

/// (node, container, config, removal) per router, as `core::replan::changes` has them.
fn planned(old: &Plan, new: &Plan) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = changes(old, new).unwrap().into_iter().map(|c| (c.node, c.container, c.config, c.remove)).collect();
    v.sort();
    v
}

/// The same, as the routers were sent it (and took it).
fn applied(fakes: &Fakes) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = fakes
        .journal
        .of_kind("apply_frr_config")
        .into_iter()
        .filter(|e| e.ok == Some(true))
        .map(|e| match e.call {
            Call::ApplyFrrConfig { router, config, remove } => (e.node, router, config, remove),
            _ => unreachable!(),
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_update_reconfigures_every_router_then_stores_the_plan() {
    let (old, new) = ring_and_shortcut();
    let fakes = created(&old).await;
    fakes.journal.clear();

    assert_eq!(apply(&old, &new, &fakes.nodes()).await.unwrap(), 6);

    let want = planned(&old, &new);
    assert!(want.iter().any(|c| !c.3.is_empty()), "some policy is taken out");
    assert_eq!(applied(&fakes), want);
    assert!(fakes.journal.of_kind("write_files").is_empty(), "no plan goes into a container");
    assert_eq!(load_plan(&fakes.nodes(), "ring").await.unwrap(), Some(new));
}

#[tokio::test]
async fn a_router_that_fails_is_named_and_the_stored_plan_stays_the_old_one() {
    let (old, new) = ring_and_shortcut();
    let fakes = created(&old).await;
    fakes.journal.clear();
    fakes.fail_on(|c| matches!(c, Call::ApplyFrrConfig { router, .. } if router == "vte-ring-r3"));

    let e = apply(&old, &new, &fakes.nodes()).await.unwrap_err();

    match &e {
        ApplyError::Routers { failed, total, details } => {
            assert_eq!((*failed, *total), (1, 6));
            assert!(details.starts_with("r3: ") && details.contains("apply_frr_config vte-ring-r3"), "{details}");
        }
        other => panic!("{other}"),
    }
    // The others were still updated.
    let mut others = planned(&old, &new);
    others.retain(|c| c.1 != "vte-ring-r3");
    assert_eq!(applied(&fakes), others);
    assert_eq!(load_plan(&fakes.nodes(), "ring").await.unwrap(), Some(old));
}
