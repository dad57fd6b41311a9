//! The executor against `FakeNode`s: what `create`, `roll_back`, `delete`, `verify` and
//! `apply` ask of the nodes, in what order, and what they leave behind.

use crate::core::plan::{self, Inventory, Plan};
use crate::core::spec::{self, PathSpec, Wiring};
use crate::exec::{create, NoProgress};

use super::Fakes;

mod apply;
mod attach;
mod create_order;
mod fake_node;
mod observe;
mod rollback;
mod schedule;
mod state;
mod teardown;
mod underlay;
mod vpn;

fn spec_file(name: &str) -> PathSpec {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../paths").join(name);
    spec::parse_yaml(name, &std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A chain of `hops` routers spread over `nodes`, its links made as `wiring` says.
fn chain(name: &str, hops: usize, nodes: &[&str], wiring: Wiring) -> Plan {
    let mut s = spec::chain(name, hops).unwrap();
    s.wiring = Some(wiring);
    plan_on(&s, nodes)
}

fn plan_on(s: &PathSpec, nodes: &[&str]) -> Plan {
    plan::build(s, &Inventory { nodes: nodes.iter().map(|n| n.to_string()).collect(), taken: Vec::new(), interfaces: None }).unwrap()
}

/// Fake nodes named as the plan's, with the plan created on them.
async fn created(plan: &Plan) -> Fakes {
    let names: Vec<&str> = plan.nodes.iter().map(String::as_str).collect();
    let fakes = Fakes::new(&names);
    create::create(plan, &fakes.nodes(), &create::Run::default(), &NoProgress).await.unwrap_or_else(|e| panic!("create: {e}\n{}", fakes.journal.dump()));
    // As `path create` does once the create succeeded.
    crate::exec::state::save_new(&fakes.state_dir, plan).unwrap();
    fakes
}
