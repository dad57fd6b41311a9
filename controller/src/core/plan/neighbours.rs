//! The kernel's IPv4 neighbour table is one for the whole machine, every network namespace's
//! entries counted together against `net.ipv4.neigh.default.gc_thresh3` (1024 by default).
//! Each link end learns the other ends of its link; past the limit new neighbours fail ("No
//! buffer space available"), sessions stay in Active and the path never verifies.

use super::Plan;

/// Neighbour entries the path's containers on `node` need: each end of a link or LAN placed
/// there, one for every other end of that network.
pub fn entries_on(plan: &Plan, node: &str) -> usize {
    let node_of = |end: &str| plan.router(end).map(|r| r.node.as_str()).or_else(|| plan.host(end).map(|h| h.node.as_str()));
    plan.networks
        .iter()
        .map(|n| n.ends.iter().filter(|e| node_of(&e.name) == Some(node)).count() * n.ends.len().saturating_sub(1))
        .sum()
}

/// A warning when the entries the path needs on `node`, on top of `in_use`, pass `limit`.
pub fn warning(plan: &Plan, node: &str, in_use: usize, limit: usize) -> Option<String> {
    let need = entries_on(plan, node);
    (need > 0 && in_use + need > limit).then(|| {
        let want = (in_use + need).next_power_of_two().max(1024) * 2;
        format!(
            "path '{}' needs {need} neighbour entries on node {node}, {in_use} are in use and the kernel allows {limit} \
             (net.ipv4.neigh.default.gc_thresh3, one table for every namespace): routers past it cannot reach their \
             neighbours and the path will not verify; raise it first, e.g. `sysctl -w net.ipv4.neigh.default.gc_thresh1={} \
             net.ipv4.neigh.default.gc_thresh2={} net.ipv4.neigh.default.gc_thresh3={want}`",
            plan.name,
            want / 4,
            want / 2
        )
    })
}

/// The entries in the table now, from `/proc/net/stat/arp_cache` (its first column, hex).
pub fn entries_in_use(arp_cache: &str) -> Option<usize> {
    usize::from_str_radix(arp_cache.lines().nth(1)?.split_whitespace().next()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{build, Inventory};
    use crate::core::spec;

    fn chain(hops: usize, nodes: &[&str]) -> Plan {
        let inv = Inventory { nodes: nodes.iter().map(|n| n.to_string()).collect(), taken: Vec::new(), interfaces: None };
        build(&spec::chain_verified("nb", hops, spec::VerifyMode::ControlPlane).unwrap(), &inv).unwrap()
    }

    #[test]
    fn every_end_learns_the_other_ends_of_its_network() {
        // 24 routers: 23 links between them and two LANs, two ends each.
        let p = chain(24, &["local"]);
        assert_eq!(entries_on(&p, "local"), 2 * 25);
        assert_eq!(entries_on(&p, "elsewhere"), 0);
        // Over three nodes the ends are shared out and add up to the same.
        let p = chain(24, &["n1", "n2", "n3"]);
        let per_node: Vec<usize> = ["n1", "n2", "n3"].iter().map(|n| entries_on(&p, n)).collect();
        assert!(per_node.iter().all(|&e| e > 0 && e < 50), "{per_node:?}");
        assert_eq!(per_node.iter().sum::<usize>(), 50);
    }

    #[test]
    fn the_entries_in_use_are_the_first_column_in_hex() {
        let text = "entries  allocs   destroys hash_grows\n000003f2 00002f61 00002c62 00000005\n000003f2 00000000 00000000 00000000\n";
        assert_eq!(entries_in_use(text), Some(1010));
        assert_eq!(entries_in_use("entries\n"), None);
        assert_eq!(entries_in_use(""), None);
    }

    #[test]
    fn a_path_past_the_table_is_warned_of_with_the_setting_that_fixes_it() {
        let p = chain(600, &["local"]);
        assert_eq!(warning(&p, "local", 0, 4096), None);
        let w = warning(&p, "local", 100, 1024).expect("1202 + 100 > 1024");
        assert!(w.contains("needs 1202 neighbour entries on node local, 100 are in use and the kernel allows 1024"), "{w}");
        assert!(w.contains("gc_thresh3=4096"), "{w}");
        assert_eq!(warning(&chain(24, &["local"]), "local", 900, 1024), None);
        assert!(warning(&chain(24, &["local"]), "local", 1000, 1024).is_some());
    }
}
