//! The IPsec tunnel over fake nodes: what create's setup asks of the ends, and verify's
//! evidence from the transit routers.

use std::time::Duration;

use super::{created, plan_on, spec_file};
use crate::exec::fake::Call;
use crate::exec::observe::{verify, Quiet};
use vnet_te_agent::vpn::VpnOp;

#[tokio::test]
async fn setup_probes_in_the_first_end_writes_owner_only_files_and_starts_the_responder_first() {
    let mut plan = plan_on(&spec_file("ipsec-host.yaml"), &["n1"]);
    let fakes = created(&plan).await;
    fakes.journal.clear();
    let psk = crate::exec::vpn::new_psk();
    assert!(psk.len() >= 44, "32 bytes as base64: {psk}");
    assert_ne!(psk, crate::exec::vpn::new_psk(), "a fresh key each time");
    crate::exec::vpn::setup(&mut plan, &fakes.nodes(), &psk).await.unwrap();
    assert_eq!(plan.vpn.as_ref().unwrap().engine, Some(crate::core::plan::vpn::VpnEngine::Libipsec), "the fake kernel has no ESP");
    let calls: Vec<String> = fakes.journal.entries().iter().map(|e| e.call.to_string()).collect();
    let order: Vec<(String, String)> = fakes
        .journal
        .entries()
        .iter()
        .filter_map(|e| match &e.call {
            Call::Vpn { container, op } => Some((container.clone(), format!("{op:?}"))),
            Call::WriteFiles { container, files } => {
                let conf = files.iter().find(|f| f.path == "/etc/vnet-te/swanctl.conf").expect("swanctl.conf");
                assert_eq!(conf.mode, 0o600);
                assert!(conf.content.contains(&format!("secret = 0s{psk}")));
                Some((container.clone(), "write".into()))
            }
            _ => None,
        })
        .collect();
    let (src, dst) = ("vte-ipsec-host-src".to_string(), "vte-ipsec-host-dst".to_string());
    assert_eq!(
        order,
        [(src.clone(), "ProbeEsp".into()), (dst.clone(), "write".into()), (dst, "Start".into()), (src.clone(), "write".into()), (src, "Start".into())],
        "{calls:?}"
    );
    assert!(!crate::commands::plan_json(&plan).contains(&psk));
}

#[tokio::test]
async fn verify_counts_on_every_transit_router_and_removes_the_rules() {
    let plan = plan_on(&spec_file("ipsec-site.yaml"), &["n1"]);
    let fakes = created(&plan).await;
    fakes.answer_from(&plan);
    fakes.journal.clear();
    let report = verify(&plan, &fakes.nodes(), Duration::from_secs(2), &Quiet).await;
    assert!(report.verified, "{report:#?}");
    let counted = |want: fn(&VpnOp) -> bool| -> Vec<String> {
        let mut v: Vec<String> = fakes
            .journal
            .entries()
            .iter()
            .filter_map(|e| match &e.call {
                Call::Vpn { container, op } if want(op) => Some(container.clone()),
                _ => None,
            })
            .collect();
        v.sort();
        v
    };
    let transit: Vec<String> = ["r2", "r3", "r4", "r5"].iter().map(|r| format!("vte-ipsec-site-{r}")).collect();
    assert_eq!(counted(|op| matches!(op, VpnOp::CountStart { .. })), transit);
    assert_eq!(counted(|op| matches!(op, VpnOp::CountStop {})), transit, "the rules go again");
    assert_eq!(counted(|op| matches!(op, VpnOp::ListSas {})), ["vte-ipsec-site-r1", "vte-ipsec-site-r6"]);
    assert_eq!(report.probes.iter().filter(|p| p.kind == "ipsec-esp").count(), 4);
}
