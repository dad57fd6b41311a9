//! The distance pass: each router link's impairments per direction (the link's own settings
//! over `link_defaults`, a direction's over the link's, the latency budget filling the path's
//! links without a delay of their own), the session and TCP settings that let BGP form across
//! the delays (`converge: with-delay`), and the planned round-trip time to every hop.

use super::build::Cx;
use super::*;
use crate::core::spec::distance::{self as d, ImpairSpec};
use crate::core::spec::{Converge, ToleranceSpec};

/// Sets every router link's `impair` and returns the path's distance, or None for a path
/// without any.
pub(super) fn impairments(cx: &Cx, networks: &mut [NetworkPlan], scheduled: bool) -> Option<DistancePlan> {
    let spec = cx.spec;
    let defaults = spec.link_defaults.clone().unwrap_or_default();
    // Problems were reported by `spec::validate`; here they cannot occur.
    let mut ignore = Vec::new();
    let mut link_impair: Vec<LinkImpair> = cx
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let base = l.impair().over(&defaults);
            let mut side = |s: &Option<ImpairSpec>| d::resolve(&format!("links[{i}]"), &s.clone().unwrap_or_default().over(&base), &mut ignore);
            LinkImpair { from_a: side(&l.from_a), from_b: side(&l.from_b) }
        })
        .collect();
    if let Some(budget) = &spec.latency {
        spread_budget(cx, d::duration("latency.one_way", &budget.one_way, &mut ignore), &mut link_impair);
    }
    // A scheduled link gets its delay lines even when it starts without distance.
    let any = link_impair.iter().any(|i| !i.from_a.is_none() || !i.from_b.is_none()) || scheduled;
    if !any && spec.latency.is_none() {
        return None;
    }
    for (li, imp) in link_impair.iter().enumerate() {
        if let Some(n) = networks.iter_mut().find(|n| n.role == NetworkRole::Link && n.index == li + 1) {
            n.impair = Some(*imp);
        }
    }
    let (tolerance_us, tolerance_ppm) = spec.tolerance.clone().unwrap_or_default().resolve();
    // The path's delays and each hop's round trip come with `recompute`, once the plan is whole.
    Some(DistancePlan { converge: spec.converge, one_way_us: 0, back_us: 0, tolerance_us, tolerance_ppm })
}

/// The path's links as (link index, forward is `from_a`) in path order.
pub(super) fn path_links(cx: &Cx) -> Vec<(usize, bool)> {
    cx.path
        .windows(2)
        .filter_map(|w| {
            cx.links.iter().position(|l| l.joins(&w[0], &w[1])).map(|i| (i, cx.links[i].a == w[0]))
        })
        .collect()
}

/// The budget minus the delays the path's links already have, spread evenly over the others
/// (the first links take the microseconds that do not divide evenly), both directions.
fn spread_budget(cx: &Cx, budget_us: u64, imp: &mut [LinkImpair]) {
    let own = |i: usize| {
        let l = &cx.links[i];
        l.delay.is_some() || l.from_a.as_ref().is_some_and(|s| s.delay.is_some()) || l.from_b.as_ref().is_some_and(|s| s.delay.is_some())
    };
    let links = path_links(cx);
    let fixed: u64 = links
        .iter()
        .filter(|(i, _)| own(*i))
        .map(|(i, fwd)| if *fwd { imp[*i].from_a.delay_us } else { imp[*i].from_b.delay_us })
        .sum();
    let free: Vec<usize> = links.iter().map(|(i, _)| *i).filter(|i| !own(*i)).collect();
    if free.is_empty() {
        return;
    }
    let rest = budget_us.saturating_sub(fixed);
    let (each, extra) = (rest / free.len() as u64, rest % free.len() as u64);
    for (k, i) in free.iter().enumerate() {
        let delay = each + u64::from((k as u64) < extra);
        imp[*i].from_a.delay_us = delay;
        imp[*i].from_b.delay_us = delay;
    }
}

/// BGP and TCP settings for sessions whose link has a round trip of a second or more, with
/// `converge: with-delay`: the defaults give up on a SYN after about 127 s, time a session
/// out when a keepalive is later than the hold time, and abort a connect attempt when the
/// connect-retry timer fires before the SYN-ACK is back.
pub(super) fn session_profile(spec_converge: Converge, bgp: &BgpTimersPlan, routers: &mut [RouterPlan], networks: &[NetworkPlan]) {
    if spec_converge != Converge::WithDelay {
        return;
    }
    for r in routers.iter_mut() {
        let mut worst_rtt_us = 0;
        for n in &mut r.neighbors {
            let Some(imp) = networks.iter().find(|x| x.name == n.network).and_then(|x| x.impair) else { continue };
            let one_way = imp.from_a.delay_us.max(imp.from_b.delay_us) + imp.from_a.jitter_us.max(imp.from_b.jitter_us);
            let rtt = imp.from_a.delay_us + imp.from_b.delay_us + 2 * imp.from_a.jitter_us.max(imp.from_b.jitter_us);
            if rtt < 1_000_000 {
                continue;
            }
            worst_rtt_us = worst_rtt_us.max(rtt);
            let rtt_s = rtt.div_ceil(1_000_000);
            let keepalive = bgp.keepalive.max(clamp_u16(rtt_s));
            // A keepalive after a delay change can be late by the one-way delay itself.
            let hold = bgp.hold.max(clamp_u16(3 * u64::from(keepalive) + 2 * one_way.div_ceil(1_000_000)));
            let connect_retry = bgp.connect_retry.max(clamp_u16(rtt_s + 2));
            n.timers = Some(SessionTimers { keepalive, hold, connect_retry });
        }
        if worst_rtt_us > 0 {
            r.tcp = Some(tcp_for(worst_rtt_us));
        }
    }
}

fn clamp_u16(v: u64) -> u16 {
    v.min(u64::from(u16::MAX)) as u16
}

/// SYN retries double the wait each time from 1 s: enough that the last one is sent later
/// than two round trips; data retries likewise (RTO is capped at 120 s).
fn tcp_for(rtt_us: u64) -> TcpPlan {
    let need_s = 2 * rtt_us.div_ceil(1_000_000);
    let mut syn = 6u8;
    while ((1u64 << (syn + 1)) - 1) < need_s && syn < 20 {
        syn += 1;
    }
    let retries2 = (15 + need_s / 120).min(60) as u8;
    TcpPlan { syn_retries: syn, synack_retries: syn, retries2 }
}

/// A change to a running link's impairments (`path impair`): fields left out keep their
/// value; `down` drops every packet (loss 100 %), `up` ends that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImpairChange {
    pub delay_us: Option<u64>,
    pub jitter_us: Option<u64>,
    pub loss_ppm: Option<u32>,
    pub rate_bps: Option<u64>,
    pub down: bool,
    pub up: bool,
}

impl ImpairChange {
    fn apply(&self, i: &mut Impair) {
        if let Some(v) = self.delay_us {
            i.delay_us = v;
        }
        if let Some(v) = self.jitter_us {
            i.jitter_us = v;
        }
        if let Some(v) = self.rate_bps {
            i.rate_bps = v;
        }
        if self.up {
            i.loss_ppm = 0;
        }
        if let Some(v) = self.loss_ppm {
            i.loss_ppm = v;
        }
        if self.down {
            i.loss_ppm = 1_000_000;
        }
    }
}

/// Changes the link between routers `a` and `b` (both directions, or only packets sent by
/// `from`) in the plan, and the path's planned delays with it. Returns the link's network
/// name. The plan's hash stays the one the path was created from (its objects' labels).
pub fn change_link(plan: &mut Plan, a: &str, b: &str, from: Option<&str>, change: &ImpairChange) -> Result<String, String> {
    let path = plan.name.clone();
    let n = plan.networks.iter_mut().find(|n| n.joins(a, b)).ok_or_else(|| format!("no link between '{a}' and '{b}' in path '{path}'"))?;
    if let Some(f) = from {
        if f != a && f != b {
            return Err(format!("--from {f}: not an end of the link {a}–{b}"));
        }
    }
    let mut imp = n.impair.unwrap_or(LinkImpair { from_a: Impair::default(), from_b: Impair::default() });
    if from.is_none_or(|f| f == n.ends[0].name) {
        change.apply(&mut imp.from_a);
    }
    if from.is_none_or(|f| f == n.ends[1].name) {
        change.apply(&mut imp.from_b);
    }
    n.impair = Some(imp);
    let name = n.name.clone();
    recompute(plan);
    Ok(name)
}

/// The plan as its links are before their delays, loss and rates are applied: what a
/// `then-delay` path verifies against first (no planned round trips, no loss to measure).
pub fn without_distance(plan: &Plan) -> Plan {
    let mut zero = plan.clone();
    zero.distance = None;
    for n in &mut zero.networks {
        n.impair = None;
    }
    for t in &mut zero.expectations.traceroutes {
        t.rtt_us.clear();
    }
    zero
}

/// Each link of the path in path order: (impairment of packets toward the last hop, of
/// packets back toward the first).
pub fn path_directions(plan: &Plan) -> Vec<(Impair, Impair)> {
    plan.path
        .windows(2)
        .map(|w| {
            let Some(n) = plan.networks.iter().find(|n| n.joins(&w[0], &w[1])) else { return Default::default() };
            let Some(i) = n.impair else { return Default::default() };
            if n.ends[0].name == w[0] {
                (i.from_a, i.from_b)
            } else {
                (i.from_b, i.from_a)
            }
        })
        .collect()
}

/// The share of echo requests from the first host whose reply comes back, by the planned
/// loss of every link both ways; None on a path without loss.
pub fn round_trip_delivery(plan: &Plan) -> Option<f64> {
    let dirs = path_directions(plan);
    if dirs.iter().all(|(f, b)| f.loss_ppm == 0 && b.loss_ppm == 0) {
        return None;
    }
    let keep = |i: &Impair| 1.0 - f64::from(i.loss_ppm) / 1_000_000.0;
    Some(dirs.iter().map(|(f, b)| keep(f) * keep(b)).product())
}

/// The path's one-way delays and each traceroute hop's planned RTT, from its links (a link
/// between nodes takes at least its underlay's share each way).
pub fn recompute(plan: &mut Plan) {
    let links: Vec<(u64, u64)> = path_directions(plan)
        .iter()
        .zip(path_underlays(plan))
        .map(|((f, b), u)| (link_delay_us(f.delay_us, u), link_delay_us(b.delay_us, u)))
        .collect();
    let cumulative = |rtts: Vec<u64>| {
        let mut out = vec![0];
        let mut sum = 0;
        for r in rtts {
            sum += r;
            out.push(sum);
        }
        out.push(sum);
        out
    };
    let rtts: Vec<u64> = links.iter().map(|(f, b)| f + b).collect();
    let there = cumulative(rtts.clone());
    let back = cumulative(rtts.into_iter().rev().collect());
    let tol = plan.distance.as_ref().map_or_else(|| ToleranceSpec::default().resolve(), |d| (d.tolerance_us, d.tolerance_ppm));
    let converge = plan.distance.as_ref().map_or(Converge::WithDelay, |d| d.converge);
    plan.distance = Some(DistancePlan {
        converge,
        one_way_us: links.iter().map(|l| l.0).sum(),
        back_us: links.iter().map(|l| l.1).sum(),
        tolerance_us: tol.0,
        tolerance_ppm: tol.1,
    });
    if let [t0, t1] = &mut plan.expectations.traceroutes[..] {
        t0.rtt_us = there;
        t1.rtt_us = back;
    }
}

/// Each link of the path in path order: the underlay measured under it, if it crosses nodes.
fn path_underlays(plan: &Plan) -> Vec<Option<Underlay>> {
    plan.path.windows(2).map(|w| plan.networks.iter().find(|n| n.joins(&w[0], &w[1])).and_then(|n| n.underlay)).collect()
}

impl Underlay {
    /// From a burst's round trips (µs): the fastest; None without a reply.
    pub fn from_rtts(rtts_us: &[u64]) -> Option<Underlay> {
        let rtt_us = *rtts_us.iter().min()?;
        Some(Underlay { rtt_us, one_way_us: rtt_us / 2 })
    }
}

/// How long a direction's delay line holds each packet: its delay less the underlay's share,
/// not below zero.
pub fn line_delay_us(delay_us: u64, underlay: Option<Underlay>) -> u64 {
    delay_us.saturating_sub(underlay.map_or(0, |u| u.one_way_us))
}

/// The one-way delay a direction has: its delay, or the underlay's share where that alone is
/// longer.
pub fn link_delay_us(delay_us: u64, underlay: Option<Underlay>) -> u64 {
    delay_us.max(underlay.map_or(0, |u| u.one_way_us))
}

/// The two nodes of a link between nodes, in name order (None: a link on one node).
pub fn node_pair(plan: &Plan, n: &NetworkPlan) -> Option<(String, String)> {
    let [a, b] = &n.ends[..] else { return None };
    let (x, y) = (plan.router(&a.name)?.node.clone(), plan.router(&b.name)?.node.clone());
    match x.cmp(&y) {
        std::cmp::Ordering::Less => Some((x, y)),
        std::cmp::Ordering::Greater => Some((y, x)),
        std::cmp::Ordering::Equal => None,
    }
}

/// The pairs of nodes under the router links between nodes of a path with distance, each
/// once, in name order: what create measures before any delay line starts. `path plan`
/// cannot know them.
pub fn underlay_pairs(plan: &Plan) -> Vec<(String, String)> {
    if plan.distance.is_none() {
        return Vec::new();
    }
    let pairs: std::collections::BTreeSet<(String, String)> =
        plan.networks.iter().filter(|n| n.role == NetworkRole::Link && n.impair.is_some()).filter_map(|n| node_pair(plan, n)).collect();
    pairs.into_iter().collect()
}

/// A link whose underlay alone takes longer than a delay it is to have: its delay line in
/// that direction runs at zero, and the link is as long as the underlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderlayTooLong {
    /// `r2–r3`.
    pub link: String,
    /// The plan's network of the link.
    pub network: String,
    pub nodes: (String, String),
    pub underlay: Underlay,
    /// The link's delays (µs, one way) that the underlay exceeds, each once.
    pub delays_us: Vec<u64>,
}

impl std::fmt::Display for UnderlayTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let delays: Vec<String> = self.delays_us.iter().map(|d| ms(*d)).collect();
        write!(
            f,
            "link {} between nodes {} and {}: the underlay alone takes {} one way (measured round trip {}), more than its delay of {}; \
             its delay line runs at 0 ms and the link is {} long",
            self.link,
            self.nodes.0,
            self.nodes.1,
            ms(self.underlay.one_way_us),
            ms(self.underlay.rtt_us),
            delays.join(" / "),
            ms(self.underlay.one_way_us)
        )
    }
}

/// The links of `plan` whose underlay exceeds one of their (non-zero) delays, one entry each.
pub fn underlay_too_long(plan: &Plan) -> Vec<UnderlayTooLong> {
    plan.networks
        .iter()
        .filter_map(|n| {
            let (Some(u), Some(imp), [a, b]) = (n.underlay, n.impair, &n.ends[..]) else { return None };
            let mut delays_us: Vec<u64> =
                [imp.from_a.delay_us, imp.from_b.delay_us].into_iter().filter(|d| *d > 0 && *d < u.one_way_us).collect();
            delays_us.dedup();
            if delays_us.is_empty() {
                return None;
            }
            let link = format!("{}–{}", a.name, b.name);
            Some(UnderlayTooLong { link, network: n.name.clone(), nodes: node_pair(plan, n)?, underlay: u, delays_us })
        })
        .collect()
}

/// Records each measured underlay on the router links between its two nodes and plans the
/// path's delays with it; returns the links whose underlay alone exceeds a delay they are to
/// have (`underlay_too_long`). The plan's hash stays the spec's: a measurement is not a
/// change of the path.
pub fn set_underlay(plan: &mut Plan, measured: &std::collections::BTreeMap<(String, String), Underlay>) -> Vec<UnderlayTooLong> {
    let pairs: Vec<Option<(String, String)>> = plan.networks.iter().map(|n| node_pair(plan, n)).collect();
    for (n, pair) in plan.networks.iter_mut().zip(pairs) {
        if n.role == NetworkRole::Link && n.impair.is_some() {
            if let Some(u) = pair.and_then(|p| measured.get(&p)) {
                n.underlay = Some(*u);
            }
        }
    }
    recompute(plan);
    underlay_too_long(plan)
}

/// One link between nodes as `path show` reports it: the underlay under it and, per
/// direction, the delay it is to have and what its delay line holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CrossNodeLink {
    /// `r1–r2`: `ends[0]`–`ends[1]` of the link's network.
    pub link: String,
    pub ends: (String, String),
    pub nodes: (String, String),
    /// None: not measured (see the warning create printed).
    pub underlay: Option<Underlay>,
    /// `ends[0]` to `ends[1]`, then back: (planned delay, delay line), µs.
    pub delay_us: (u64, u64),
    pub line_delay_us: (u64, u64),
}

/// The router links between nodes of a path with distance.
pub fn cross_node_links(plan: &Plan) -> Vec<CrossNodeLink> {
    if plan.distance.is_none() {
        return Vec::new();
    }
    plan.networks
        .iter()
        .filter_map(|n| {
            let (Some(imp), [a, b]) = (n.impair, &n.ends[..]) else { return None };
            let nodes = node_pair(plan, n)?;
            let u = n.underlay;
            Some(CrossNodeLink {
                link: format!("{}–{}", a.name, b.name),
                ends: (a.name.clone(), b.name.clone()),
                nodes,
                underlay: u,
                delay_us: (imp.from_a.delay_us, imp.from_b.delay_us),
                line_delay_us: (line_delay_us(imp.from_a.delay_us, u), line_delay_us(imp.from_b.delay_us, u)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::plan::{build, Inventory};

    #[test]
    fn a_changed_link_changes_the_paths_planned_delays() {
        let s = crate::core::spec::chain("p", 4).unwrap();
        let mut p = build(&s, &Inventory::default()).unwrap();
        assert!(p.distance.is_none());
        let change = ImpairChange { delay_us: Some(5_000), ..Default::default() };
        let net = change_link(&mut p, "r3", "r2", Some("r2"), &change).unwrap();
        assert_eq!(net, "vte-p-l2");
        let d = p.distance.as_ref().unwrap();
        assert_eq!((d.one_way_us, d.back_us), (5_000, 0));
        assert_eq!(p.expectations.traceroutes[0].rtt_us, [0, 0, 5_000, 5_000, 5_000]);
        let down = ImpairChange { down: true, ..Default::default() };
        change_link(&mut p, "r1", "r2", None, &down).unwrap();
        assert_eq!(p.networks.iter().find(|n| n.name == "vte-p-l1").unwrap().impair.unwrap().from_b.loss_ppm, 1_000_000);
        assert!(change_link(&mut p, "r1", "r3", None, &down).is_err());
        assert!(change_link(&mut p, "r1", "r2", Some("r4"), &down).is_err());
    }

    #[test]
    fn a_then_delay_path_first_verifies_without_delays_or_loss() {
        let mut s = crate::core::spec::chain("p", 3).unwrap();
        s.link_defaults = Some(crate::core::spec::ImpairSpec { delay: Some("4m".into()), loss: Some("10".into()), ..Default::default() });
        s.converge = Converge::ThenDelay;
        let p = build(&s, &Inventory::default()).unwrap();
        assert!(round_trip_delivery(&p).is_some() && p.expectations.traceroutes[0].rtt_us.len() == 4);
        let zero = without_distance(&p);
        assert_eq!(zero.distance, None);
        assert_eq!(round_trip_delivery(&zero), None, "no loss burst while the losses are not applied");
        assert!(zero.expectations.traceroutes.iter().all(|t| t.rtt_us.is_empty()));
    }

    /// A 6-hop chain with 5 ms per link, placed round-robin over three nodes: every link
    /// crosses nodes (r1@n1 r2@n2 r3@n3 r4@n1 r5@n2 r6@n3).
    fn spread_chain() -> Plan {
        let mut s = crate::core::spec::chain("p", 6).unwrap();
        s.link_defaults = Some(crate::core::spec::ImpairSpec { delay: Some("5ms".into()), ..Default::default() });
        build(&s, &Inventory { nodes: vec!["n1".into(), "n2".into(), "n3".into()], taken: vec![], interfaces: None }).unwrap()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn the_underlay_is_measured_once_per_pair_of_nodes_under_links_with_distance() {
        let p = spread_chain();
        assert_eq!(underlay_pairs(&p), [pair("n1", "n2"), pair("n1", "n3"), pair("n2", "n3")]);
        let one_node = build(&crate::core::spec::chain("p", 6).unwrap(), &Inventory::default()).unwrap();
        assert!(underlay_pairs(&one_node).is_empty(), "no distance: nothing to measure");
        let mut s = crate::core::spec::chain("p", 6).unwrap();
        s.link_defaults = Some(crate::core::spec::ImpairSpec { delay: Some("5ms".into()), ..Default::default() });
        assert!(underlay_pairs(&build(&s, &Inventory::default()).unwrap()).is_empty(), "one node: no link between nodes");
        assert_eq!(Underlay::from_rtts(&[130, 100, 180]), Some(Underlay { rtt_us: 100, one_way_us: 50 }));
        assert_eq!(Underlay::from_rtts(&[]), None);
    }

    #[test]
    fn delay_lines_hold_the_delay_less_the_underlay_and_the_path_keeps_its_planned_delay() {
        let mut p = spread_chain();
        let before = p.expectations.traceroutes.clone();
        let measured = BTreeMap::from([
            (pair("n1", "n2"), Underlay { rtt_us: 100, one_way_us: 50 }),
            (pair("n2", "n3"), Underlay { rtt_us: 300, one_way_us: 150 }),
        ]);
        assert_eq!(set_underlay(&mut p, &measured), [], "5 ms is longer than every underlay");
        assert_eq!(p.expectations.traceroutes, before, "the path is as long as the spec says");
        let lines: Vec<(String, u64)> =
            crate::core::objects::impairments(&p).iter().map(|i| (i.link.clone(), i.line().delay_us)).collect();
        assert_eq!(lines[..4], [("r1–r2".into(), 4_950), ("r2–r1".into(), 4_950), ("r2–r3".into(), 4_850), ("r3–r2".into(), 4_850)]);
        assert_eq!(lines[4], ("r3–r4".into(), 5_000), "n1–n3 not measured: the whole delay");
        let cross = cross_node_links(&p);
        assert_eq!(cross.len(), 5);
        assert_eq!((cross[1].link.as_str(), &cross[1].nodes), ("r2–r3", &pair("n2", "n3")));
        assert_eq!((cross[1].underlay.map(|u| u.one_way_us), cross[1].delay_us, cross[1].line_delay_us), (Some(150), (5_000, 5_000), (4_850, 4_850)));
        assert_eq!(cross[2].underlay, None);
    }

    #[test]
    fn an_underlay_longer_than_a_links_delay_is_named_once_and_its_line_runs_at_zero() {
        let mut p = spread_chain();
        change_link(&mut p, "r2", "r3", None, &ImpairChange { delay_us: Some(100), ..Default::default() }).unwrap();
        change_link(&mut p, "r4", "r5", Some("r5"), &ImpairChange { delay_us: Some(0), ..Default::default() }).unwrap();
        let measured = BTreeMap::from([
            (pair("n1", "n2"), Underlay { rtt_us: 400, one_way_us: 200 }),
            (pair("n2", "n3"), Underlay { rtt_us: 400, one_way_us: 200 }),
        ]);
        let warnings = set_underlay(&mut p, &measured);
        assert_eq!(warnings.len(), 1, "r2–r3 only, once for both directions; r5 → r4 has no delay to miss: {warnings:?}");
        assert_eq!(
            warnings[0].to_string(),
            "link r2–r3 between nodes n2 and n3: the underlay alone takes 0.2 ms one way (measured round trip 0.4 ms), \
             more than its delay of 0.1 ms; its delay line runs at 0 ms and the link is 0.2 ms long"
        );
        let line = |link: &str| crate::core::objects::impairments(&p).into_iter().find(|i| i.link == link).unwrap().line().delay_us;
        assert_eq!((line("r2–r3"), line("r3–r2"), line("r4–r5")), (0, 0, 4_800));
        // r1–r2 5 ms, r2–r3 the underlay's 0.2 ms, then 5 ms again: planned as the path is.
        assert_eq!(p.expectations.traceroutes[0].rtt_us[..4], [0, 10_000, 10_400, 20_400]);
        assert_eq!(p.distance.as_ref().unwrap().back_us, 5_000 + 200 + 5_000 + 200 + 5_000);
    }

    #[test]
    fn syn_retries_outlast_two_round_trips() {
        assert_eq!(tcp_for(2_560_000).syn_retries, 6);
        let sixty_s_each_way = tcp_for(120_000_000);
        assert_eq!(sixty_s_each_way.syn_retries, 7, "2^8 - 1 = 255 s > 240 s");
        assert!(tcp_for(480_000_000).syn_retries >= 9);
    }
}
