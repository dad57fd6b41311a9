//! Path state on the controller's side: what `path create/update` keep and `path verify/show`
//! read back, and what they refuse.

use std::os::unix::fs::PermissionsExt;

use vnet_te_agent::node::labels;

use super::{chain, created};
use crate::core::spec::Wiring;
use crate::exec::state::{self, load_plan, StateError};
use crate::exec::{teardown, DeployError};

#[tokio::test]
async fn the_plan_is_kept_by_the_controller_owner_only_and_nothing_of_it_in_a_container() {
    let plan = chain("kept", 3, &["n1"], Wiring::Direct);
    let fakes = created(&plan).await;
    let file = state::file(&fakes.state_dir, "kept");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&fakes.state_dir).unwrap().permissions().mode() & 0o777, 0o700);
    for (_, c) in fakes.node("n1").containers() {
        assert!(c.files.keys().all(|f| !f.contains("plan")), "{}: {:?}", c.spec.name, c.files.keys());
    }
    assert_eq!(load_plan(&fakes.nodes(), "kept").await.unwrap(), Some(plan));
}

#[tokio::test]
async fn a_stored_plan_for_another_path_of_that_name_is_refused() {
    let plan = chain("same", 3, &["n1"], Wiring::Direct);
    let fakes = created(&plan).await;
    // What an earlier path of this name left: another plan (its hash differs).
    let mut other = chain("same", 4, &["n1"], Wiring::Direct);
    other.name = "same".into();
    state::save_new(&fakes.state_dir, &other).unwrap();
    let e = load_plan(&fakes.nodes(), "same").await.unwrap_err();
    assert!(matches!(e, DeployError::State(StateError::Mismatch { .. })), "{e}");
    let text = e.to_string();
    assert!(text.contains(&other.hash) && text.contains(&plan.hash) && text.contains("vnet-te path delete same"), "{text}");
}

#[tokio::test]
async fn a_damaged_or_misnamed_state_file_is_named_and_a_missing_one_is_no_path() {
    let plan = chain("dmg", 2, &["n1"], Wiring::Direct);
    let fakes = created(&plan).await;
    let file = state::file(&fakes.state_dir, "dmg");
    std::fs::write(&file, "{\"version\": 1, \"created_hash\": ").unwrap();
    let e = load_plan(&fakes.nodes(), "dmg").await.unwrap_err().to_string();
    assert!(e.contains(&file.display().to_string()) && e.contains("not one vnet-te wrote"), "{e}");
    // Another path's file under this name.
    let other = chain("elsewhere", 2, &["n1"], Wiring::Direct);
    state::save_new(&fakes.state_dir, &other).unwrap();
    std::fs::rename(state::file(&fakes.state_dir, "elsewhere"), &file).unwrap();
    let e = load_plan(&fakes.nodes(), "dmg").await.unwrap_err().to_string();
    assert!(e.contains("the plan of path 'elsewhere'"), "{e}");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(load_plan(&fakes.nodes(), "dmg").await.unwrap(), None);
}

#[tokio::test]
async fn a_state_file_without_running_containers_is_no_path_and_delete_removes_it() {
    let plan = chain("gone", 2, &["n1"], Wiring::Direct);
    let fakes = created(&plan).await;
    let hashes: Vec<_> = fakes.node("n1").containers().values().filter_map(|c| c.spec.labels.get(labels::PLAN_HASH).cloned()).collect();
    assert!(!hashes.is_empty() && hashes.iter().all(|h| *h == plan.hash));
    teardown::delete(&fakes.nodes(), Some("gone")).await.unwrap();
    assert!(!state::file(&fakes.state_dir, "gone").exists(), "delete forgets the plan");
    // A file left behind (the path removed by hand) describes no running path.
    state::save_new(&fakes.state_dir, &plan).unwrap();
    assert_eq!(load_plan(&fakes.nodes(), "gone").await.unwrap(), None);
    teardown::delete(&fakes.nodes(), None).await.unwrap();
    assert!(state::stored_names(&fakes.state_dir).is_empty(), "deleting every path forgets every plan");
}
