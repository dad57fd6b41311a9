//! Sessions and boot order: which end of each BGP session listens, when each router boots,
//! and which routers' links wait for their bgpd. Decided here only; the renderer (`passive`),
//! the object builder (which veth end is made first) and the executor (start order, waits)
//! read the answers.

use std::collections::{BTreeMap, BTreeSet};

use super::{Plan, RouterPlan};
use crate::core::spec::RouterKind;

/// Which ends of a session between routers `a` and `b` (each with its index in the spec)
/// listen: the end that boots later (`start_rank`, then spec order), when both are FRR. The
/// end up first (its 1 s start timer run out) connects the moment the link appears, which
/// is once the listener's bgpd listens. Two ends that open at the same instant can collide
/// again and again.
pub fn listens(path_len: usize, a: (&RouterPlan, usize), b: (&RouterPlan, usize)) -> [bool; 2] {
    let both_frr = a.0.kind == RouterKind::Frr && b.0.kind == RouterKind::Frr;
    let starts = |(r, i): (&RouterPlan, usize)| (start_rank(path_len, r.hop), i);
    [both_frr && starts(a) > starts(b), both_frr && starts(b) > starts(a)]
}

/// When a router boots in a create, as a rank (lower first). Along the path, every other
/// router connects (hops 1, 3, 5, ...) and its neighbours listen (see `passive`); each
/// kind boots from both path ends inward, and a listening router boots `LISTEN_LAG`
/// places after the connecting routers as far from the ends as it is. So:
/// - a connecting router is about a second ahead of its listeners: its bgpd's fixed 1 s start
///   timer has run out when their link appears, and it connects at once;
/// - the sessions at the path ends, whose routes have the whole path left to cross, come up
///   first, and the last ones to come up sit mid-path, half the path from either end;
/// - a listener never waits for a connecting router that boots after it.
///
/// Routers off the path boot last.
pub fn start_rank(path_len: usize, hop: Option<usize>) -> usize {
    match hop {
        Some(h) => h.min(path_len.saturating_sub(h + 1)) + (h % 2) * LISTEN_LAG,
        None => usize::MAX,
    }
}

/// How many places a listening router boots after the connecting routers at its distance
/// from the path ends: about a second of container starts on a two-core machine (one every
/// 0.1 s or so when they queue), the connecting bgpd's start timer. At least 2, so a
/// listener always ranks after both its neighbours (whose distances differ from its own by
/// at most one).
pub const LISTEN_LAG: usize = 8;

/// The routers whose links wait until their bgpd listens (zebra, started before it, is up
/// then too): FRR routers whose boot script starts the daemons before the
/// links arrive (all but VXLAN tunnel ends, which set their tunnel up over the links first).
/// zebra sets each link's address and brings it up (zebra.conf). Two reasons:
/// - zebra must not be starting when a link appears (FRR 8.4 can then miss it);
/// - a link made while one end's bgpd listens already and the other's start timer has run
///   out comes up at once: the connecting end tries the moment its route to the neighbour
///   appears. Made earlier, that try fails and bgpd retries only a second later.
pub fn routers_waiting_for_bgp(plan: &Plan) -> BTreeSet<&str> {
    plan.routers
        .iter()
        .filter(|r| r.kind == RouterKind::Frr && r.vtep.is_none() && r.interfaces.iter().any(|i| i.ifname.is_some()))
        .map(|r| r.container.as_str())
        .collect()
}

/// Which routers start only once others are up (`Up::Ready`): a router that listens on a
/// session starts after the neighbour that connects, so that neighbour's bgpd is past its
/// 1 s start timer when the link appears and connects at once. It also keeps the early
/// routers' FRR start from competing for CPU with the later routers' container starts.
/// Only among `waiting` routers (their readiness is their bgpd); containers are created
/// meanwhile, only the start waits. Listening ends boot later by `start_rank`, so
/// this never waits in a circle.
pub fn start_after<'a>(plan: &'a Plan, waiting: &BTreeSet<&str>) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in plan.routers.iter().filter(|r| waiting.contains(r.container.as_str())) {
        for n in r.neighbors.iter().filter(|n| n.passive) {
            if let Some(peer) = plan.router(&n.peer).filter(|p| waiting.contains(p.container.as_str())) {
                out.entry(r.container.as_str()).or_default().push(peer.container.as_str());
            }
        }
    }
    out
}
