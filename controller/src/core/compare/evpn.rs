//! EVPN checks: routes for the VNI at both edges, L2 pings between the hosts, and VXLAN
//! counters on exactly the planned links.

use super::*;

/// The two EVPN edges as (edge, remote edge, planned AS path from the edge to the remote).
pub fn evpn_edges(plan: &Plan) -> Vec<(&RouterPlan, &RouterPlan, Vec<u32>)> {
    let (Some(first), Some(last)) = (plan.path.first(), plan.path.last()) else { return vec![] };
    let (Some(a), Some(b)) = (plan.router(first), plan.router(last)) else { return vec![] };
    if plan.evpn.is_none() || first == last {
        return vec![];
    }
    let n = plan.path_asns.len();
    vec![
        (a, b, plan.path_asns[1..].to_vec()),
        (b, a, plan.path_asns[..n - 1].iter().rev().copied().collect()),
    ]
}

/// Control-plane L2 checks: at each edge, the VNI with the remote VTEP in its flood list, the
/// remote VTEP's type-3 route (best, planned AS path, planned route target) and its type-2
/// MAC routes.
pub(super) fn evpn_probes(plan: &Plan, obs: &Observed) -> Vec<ProbeReport> {
    let Some(e) = &plan.evpn else { return vec![] };
    let mut out = Vec::new();
    for (edge, remote, want_path) in evpn_edges(plan) {
        let vtep = remote.loopback.addr();
        let vtep_s = vtep.to_string();
        let mut problems = Vec::new();
        let mut observed = Vec::new();
        let mut detail = Vec::new();
        match obs.evpn_vnis.get(&edge.name) {
            None => problems.push("VNIs not read".to_string()),
            Some(Err(err)) => problems.push(err.clone()),
            Some(Ok(v)) => match v.get(e.vni) {
                None => problems.push(format!("VNI {} is not configured (no VXLAN device seen by zebra)", e.vni)),
                Some(vni) => {
                    observed = vni.remote_vteps.iter().filter_map(|a| a.parse().ok()).map(Some).collect();
                    if vni.remote_vteps.contains(&vtep_s) {
                        detail.push(format!("VNI {} floods to {vtep_s}", e.vni));
                    } else {
                        problems.push(format!(
                            "VNI {}: remote VTEP {vtep_s} not in the flood list [{}]",
                            e.vni,
                            vni.remote_vteps.join(" ")
                        ));
                    }
                }
            },
        }
        match obs.evpn_routes.get(&edge.name) {
            None => problems.push("EVPN routes not read".to_string()),
            Some(Err(err)) => problems.push(err.clone()),
            Some(Ok(t)) => {
                let want_opt: Vec<Option<u32>> = want_path.iter().map(|a| Some(*a)).collect();
                let imet = t.routes.iter().find(|r| r.route_type == 3 && r.ip.as_deref() == Some(vtep_s.as_str()) && r.bestpath);
                match imet {
                    None => problems.push(format!("no EVPN type-3 route from VTEP {vtep_s} ({})", remote.name)),
                    Some(r) => {
                        if r.as_path() != want_opt {
                            problems.push(format!(
                                "type-3 route from {vtep_s} has AS path [{}], planned [{}]",
                                show_path(&r.as_path()),
                                show_path(&want_opt)
                            ));
                        }
                        if !r.route_targets.contains(&e.route_target) {
                            problems.push(format!(
                                "type-3 route from {vtep_s} carries route targets [{}], planned {}",
                                r.route_targets.join(" "),
                                e.route_target
                            ));
                        }
                        detail.push(format!("type-3 from {vtep_s} with AS path {}", show_path(&want_opt)));
                    }
                }
                let macs = t
                    .routes
                    .iter()
                    .filter(|r| r.route_type == 2 && r.valid && r.next_hop.as_deref() == Some(vtep_s.as_str()))
                    .filter(|r| r.route_targets.contains(&e.route_target))
                    .count();
                if macs == 0 {
                    problems.push(format!("no EVPN type-2 (MAC) route from VTEP {vtep_s} for VNI {}", e.vni));
                } else {
                    detail.push(format!("{macs} type-2 routes from it"));
                }
            }
        }
        out.push(ProbeReport {
            kind: EVPN.into(),
            from: edge.name.clone(),
            to: remote.name.clone(),
            target: vtep,
            expected: vec![vtep],
            observed,
            ok: problems.is_empty(),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
            detail: Some(detail.join(", ")),
        });
    }
    out
}

/// The L2 data-plane checks between the hosts' EVPN addresses: plain pings both ways, one
/// full-size DF ping at the planned MTU, and the VXLAN counters evidence.
pub(super) fn l2_probes(plan: &Plan, obs: &Observed) -> Vec<ProbeReport> {
    let Some(e) = &plan.evpn else { return vec![] };
    let (Some(a), Some(b)) = (plan.hosts.first(), plan.hosts.get(1)) else { return vec![] };
    let (Some(la), Some(lb)) = (a.l2_address, b.l2_address) else { return vec![] };
    let mut out = Vec::new();
    for (from, to, target) in [(a, b, lb.addr()), (b, a, la.addr())] {
        let r = obs.l2_pings.get(&(L2_PING.to_string(), from.name.clone(), to.name.clone()));
        let mut p = ping_probe(L2_PING, &from.name, &to.name, target, r, None);
        p.detail = p.ok.then(|| format!("same subnet {}: ARP resolves across the path", e.subnet));
        out.push(p);
    }
    let df_key = (L2_PING_DF.to_string(), a.name.clone(), b.name.clone());
    let df_run = obs.l2_pings.contains_key(&df_key);
    let (df_ok, problem) = ping_result(obs.l2_pings.get(&df_key));
    out.push(ProbeReport {
        kind: L2_PING_DF.into(),
        from: a.name.clone(),
        to: b.name.clone(),
        target: lb.addr(),
        expected: vec![lb.addr()],
        observed: vec![],
        ok: df_ok,
        problem,
        detail: df_run.then(|| {
            format!(
                "{}-byte packets ({}-byte ICMP payload), DF set, planned MTU {}",
                e.mtu,
                e.mtu.saturating_sub(ICMP_OVERHEAD),
                e.mtu
            )
        }),
    });
    let (ok, problem, detail) = if !df_run {
        (false, Some("not run".to_string()), None)
    } else if obs.counters_before.is_empty() {
        (false, Some("not measured".to_string()), None)
    } else {
        let (ok, problem, detail) = vxlan_counters(plan, e.mtu, obs);
        if df_ok {
            (ok, problem, detail)
        } else {
            // Counters still show where the packets went, but a failed DF ping cannot pass.
            let p = problem.map(|p| format!("the DF ping did not pass; {p}"));
            (false, p.or(Some("the DF ping did not pass".to_string())), detail)
        }
    };
    out.push(ProbeReport {
        kind: VXLAN_PATH.into(),
        from: a.name.clone(),
        to: b.name.clone(),
        target: lb.addr(),
        expected: plan.expectations.traceroutes.first().map(|t| t.hops.clone()).unwrap_or_default(),
        observed: vec![],
        ok,
        problem,
        detail,
    });
    out
}

/// During the DF ping (three full-size VXLAN packets each way), every planned link must
/// carry at least one full-size packet each way at both its ends, and no other link may
/// carry even one (BGP keepalives are a few hundred bytes in that window).
fn vxlan_counters(plan: &Plan, mtu: u32, obs: &Observed) -> (bool, Option<String>, Option<String>) {
    let full = u64::from(mtu);
    let planned: Vec<(&str, &str)> = plan.path.windows(2).map(|w| (w[0].as_str(), w[1].as_str())).collect();
    let is_planned = |x: &str, y: &str| planned.iter().any(|(a, b)| (*a == x && *b == y) || (*a == y && *b == x));
    let mut problems = Vec::new();
    let (mut planned_seen, mut quiet) = (0usize, 0usize);
    for r in &plan.routers {
        let (before, after) = match (obs.counters_before.get(&r.name), obs.counters_after.get(&r.name)) {
            (Some(Ok(b)), Some(Ok(a))) => (b, a),
            (Some(Err(e)), _) | (_, Some(Err(e))) => {
                problems.push(format!("{}: {e}", r.name));
                continue;
            }
            _ => {
                problems.push(format!("{}: counters not read", r.name));
                continue;
            }
        };
        let link_ifaces = r.interfaces.iter().filter(|i| {
            plan.networks.iter().any(|n| n.name == i.network && n.role == NetworkRole::Link)
        });
        for i in link_ifaces {
            let find = |l: &[InterfaceCounters]| l.iter().find(|c| c.addresses.contains(&i.address)).cloned();
            let (Some(b), Some(a)) = (find(before), find(after)) else {
                problems.push(format!("{}: no interface holds {}", r.name, i.address));
                continue;
            };
            let (rx, tx) = (a.rx_bytes.saturating_sub(b.rx_bytes), a.tx_bytes.saturating_sub(b.tx_bytes));
            if is_planned(&r.name, &i.peer) {
                if rx < full || tx < full {
                    problems.push(format!(
                        "planned link {} — {} ({} on {}): {tx} bytes out, {rx} in during the DF ping: VXLAN did not cross it",
                        r.name, i.peer, i.address, r.name
                    ));
                } else {
                    planned_seen += 1;
                }
            } else if rx + tx >= full {
                problems.push(format!(
                    "link {} — {} off the path ({} on {}) carried {} bytes during the DF ping: VXLAN took a shortcut",
                    r.name,
                    i.peer,
                    i.address,
                    r.name,
                    rx + tx
                ));
            } else {
                quiet += 1;
            }
        }
    }
    let links = planned.len();
    let detail = format!(
        "{PINGS} full-size VXLAN packets each way: seen on {} of {} planned link ends, {quiet} other link ends quiet",
        planned_seen,
        links * 2
    );
    if problems.is_empty() {
        (true, None, Some(detail))
    } else {
        (false, Some(problems.join("; ")), Some(detail))
    }
}

