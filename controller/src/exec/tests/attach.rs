//! Hosts attached to a LAN of their node: the macvlan is made once the host runs, verify
//! pings the attached address from the far host, and a delete (or a rollback) takes the
//! macvlans away before the host.

use std::time::Duration;

use super::{plan_on, spec_file};
use crate::core::compare::ATTACH_PING;
use crate::core::plan::Plan;
use crate::core::spec::Wiring;
use crate::exec::create::{create, roll_back, Run};
use crate::exec::fake::{Call, Fakes};
use crate::exec::observe::{verify, Quiet};
use crate::exec::teardown::delete;
use crate::exec::NoProgress;

/// `paths/lan-attach.yaml` (src on the node's eth1) on one node, wired as `wiring` says.
fn attached(wiring: Wiring) -> Plan {
    let mut s = spec_file("lan-attach.yaml");
    s.wiring = Some(wiring);
    plan_on(&s, &["local"])
}

#[tokio::test]
async fn the_macvlan_is_made_once_the_host_runs_and_goes_before_it() {
    for wiring in [Wiring::Direct, Wiring::Docker] {
        let plan = attached(wiring);
        let src = plan.host("src").unwrap();
        let fakes = Fakes::new(&["local"]);
        let run = Run::new();
        create(&plan, &fakes.nodes(), &run, &NoProgress).await.unwrap();
        let node = fakes.node("local");
        assert_eq!(node.macvlans_on("eth1"), [(src.container.clone(), "eth1".to_string())], "{wiring:?}");
        let j = &fakes.journal;
        let started = j.find(|e| e.call == Call::StartContainer(src.container.clone()));
        let attach = j.find(|e| matches!(&e.call, Call::ConnectMacvlan(m) if m.container == src.container));
        assert_eq!(attach.len(), 1, "{}", j.dump());
        assert!(attach[0].began > started[0].ended.unwrap(), "{}", j.dump());
        let Call::ConnectMacvlan(m) = &attach[0].call else { unreachable!() };
        assert_eq!((m.parent.as_str(), m.address.to_string()), ("eth1", "10.210.2.1/24".to_string()));

        j.clear();
        delete(&fakes.nodes(), Some(&plan.name)).await.unwrap();
        let gone = j.find(|e| e.call == Call::RemoveMacvlans(src.container.clone()));
        let removed = j.find(|e| e.call == Call::RemoveContainer(src.container.clone()));
        assert!(gone.len() == 1 && gone[0].ended.unwrap() < removed[0].began, "{}", j.dump());
        // Only the attached host is asked.
        assert_eq!(j.of_kind("remove_macvlans").len(), 1, "{}", j.dump());
        assert!(node.macvlans_on("eth1").is_empty() && fakes.containers().is_empty());
    }
}

#[tokio::test]
async fn a_failed_attachment_is_rolled_back_with_everything_else() {
    let plan = attached(Wiring::Direct);
    let fakes = Fakes::new(&["local"]);
    fakes.fail_on(|c| matches!(c, Call::ConnectMacvlan(_)));
    let run = Run::new();
    let e = create(&plan, &fakes.nodes(), &run, &NoProgress).await.unwrap_err();
    let message = format!("{:#}", roll_back(&plan, &fakes.nodes(), &run, e).await);
    assert!(message.contains("rolled back") && message.contains("macvlan"), "{message}");
    assert!(fakes.containers().is_empty() && fakes.networks().is_empty(), "{}", fakes.journal.dump());
}

#[tokio::test]
async fn verify_pings_the_attached_address_from_the_far_host() {
    let plan = attached(Wiring::Direct);
    let (src, dst) = (plan.host("src").unwrap(), plan.host("dst").unwrap());
    let target = src.attach.as_ref().unwrap().address;
    let fakes = Fakes::new(&["local"]);
    let run = Run::new();
    create(&plan, &fakes.nodes(), &run, &NoProgress).await.unwrap();
    fakes.answer_from(&plan);
    let report = verify(&plan, &fakes.nodes(), Duration::from_secs(2), &Quiet).await;
    assert!(report.verified, "{report:#?}");
    let pings: Vec<_> = report.probes.iter().filter(|p| p.kind == ATTACH_PING).collect();
    assert_eq!(pings.len(), 1);
    assert_eq!((pings[0].from.as_str(), pings[0].to.as_str(), pings[0].target), ("dst", "src", target));
    // The route to the attached LAN is forced on every hop like src's own LAN.
    let lan = src.attach.as_ref().unwrap().subnet;
    assert_eq!(plan.expectations.routes.iter().filter(|e| e.prefix == lan).count(), plan.path.len());

    // No answer from the attached address: named, and the path is not verified.
    let (dst_container, dst_node) = (dst.container.clone(), dst.node.clone());
    fakes.node(&dst_node).fail_on(move |c| matches!(c, Call::Ping { host, target: t, .. } if *host == dst_container && *t == target));
    let report = verify(&plan, &fakes.nodes(), Duration::from_secs(2), &Quiet).await;
    assert!(!report.verified);
    let failed: Vec<_> = report.probes.iter().filter(|p| !p.ok).collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let problem = failed[0].problem.as_deref().unwrap_or_default();
    assert!(problem.starts_with(&format!("{target} (src on the LAN of eth1): ")), "{problem}");
}
