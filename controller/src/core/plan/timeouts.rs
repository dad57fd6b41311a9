//! How long verification waits for a path to match its plan before it fails: a base per
//! command, a term per router, and the path's round trips. A fixed wait is either too long
//! to report a broken short path or too short for a long one to converge.

use std::time::Duration;

use super::Plan;
use crate::core::spec::Announce;

/// What verification follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// `path create`: every router boots, its sessions form, routes cross the path.
    Create,
    /// `path update`: the routers run; the new policy is applied and routes re-sent.
    Update,
    /// `path verify`: a running path, normally converged already.
    Verify,
}

impl After {
    /// The wait for any path, and the wait per router on it.
    fn terms(self) -> (Duration, Duration) {
        match self {
            After::Create => (Duration::from_secs(60), Duration::from_millis(1000)),
            After::Update => (Duration::from_secs(45), Duration::from_millis(500)),
            After::Verify => (Duration::from_secs(30), Duration::from_millis(250)),
        }
    }
}

/// Round trips of the path that verification may spend: each BGP session across a long link
/// needs a few round trips to form, and the probes need theirs.
pub const ROUND_TRIPS: u32 = 8;

/// The default `--timeout`: the base of `after`, plus its term for every router (each boots,
/// opens its sessions and passes routes on: about 50 ms a hop in FRR, 0.15 s of a create
/// on two cores; the term leaves room for a busy machine), doubled with `announce: all`
/// (every router then holds and passes on one more prefix per hop, and verification reads
/// tables that grow with the path), plus `ROUND_TRIPS` of the path's planned round trip.
pub fn verify_timeout(plan: &Plan, after: After) -> Duration {
    let (base, per_router) = after.terms();
    let per_router = if plan.announce == Announce::All { per_router * 2 } else { per_router };
    let rtt_us = plan.distance.as_ref().map_or(0, |d| d.one_way_us + d.back_us);
    base + per_router * plan.routers.len() as u32 + Duration::from_micros(rtt_us) * ROUND_TRIPS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{build, Inventory};
    use crate::core::spec::{self, Quantity};

    fn chain(hops: usize) -> spec::PathSpec {
        spec::chain_verified("t", hops, spec::VerifyMode::ControlPlane).unwrap()
    }

    fn timeout(s: &spec::PathSpec, after: After) -> Duration {
        verify_timeout(&build(&s.clone(), &Inventory::default()).unwrap(), after)
    }

    #[test]
    fn grows_with_the_routers_and_with_announce_all() {
        assert_eq!(timeout(&chain(1), After::Create), Duration::from_secs(61));
        assert_eq!(timeout(&chain(24), After::Create), Duration::from_secs(84));
        assert_eq!(timeout(&chain(24), After::Update), Duration::from_secs(57));
        assert_eq!(timeout(&chain(24), After::Verify), Duration::from_secs(36));
        assert_eq!(timeout(&chain(1000), After::Create), Duration::from_secs(1060));
        let mut all = chain(24);
        all.announce = Announce::All;
        assert_eq!(timeout(&all, After::Create), Duration::from_secs(108));
        assert_eq!(timeout(&all, After::Verify), Duration::from_secs(42));
    }

    #[test]
    fn adds_the_round_trips_of_a_long_path() {
        let mut s = chain(24);
        s.link_defaults = Some(spec::ImpairSpec { delay: Some(Quantity::from("5ms")), ..Default::default() });
        // 23 links × 5 ms each way: 230 ms a round trip, eight of them.
        assert_eq!(timeout(&s, After::Create), Duration::from_secs(84) + Duration::from_millis(8 * 230));
    }
}
