//! CIDR blocks that cover sets of addresses exactly.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// CIDR blocks exactly covering the addresses `start..=end`, as few as possible.
pub fn cover(mut start: u64, end: u64) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    while start <= end {
        // The largest aligned block at `start` that stays within `end`.
        let mut size: u64 = if start == 0 { 1 << 32 } else { 1 << start.trailing_zeros().min(32) };
        while start + size - 1 > end {
            size >>= 1;
        }
        let len = 32 - size.trailing_zeros() as u8;
        out.push(Ipv4Net::new(Ipv4Addr::from(start as u32), len).expect("prefix length ≤ 32"));
        start += size;
    }
    out
}

/// The fewest CIDR blocks holding exactly `addrs` (in any order, repeats allowed): each run
/// of consecutive addresses is covered by `cover`. Sorted.
pub fn blocks(addrs: impl IntoIterator<Item = Ipv4Addr>) -> Vec<Ipv4Net> {
    let mut a: Vec<u64> = addrs.into_iter().map(|a| u64::from(u32::from(a))).collect();
    a.sort_unstable();
    a.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < a.len() {
        let mut j = i;
        while j + 1 < a.len() && a[j + 1] == a[j] + 1 {
            j += 1;
        }
        out.extend(cover(a[i], a[j]));
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, 255, 0, n as u8)
    }

    #[test]
    fn cover_is_exact_and_minimal() {
        let c = cover(u64::from(u32::from(Ipv4Addr::new(10, 0, 0, 8))), u64::from(u32::from(Ipv4Addr::new(10, 0, 0, 31))));
        let s: Vec<String> = c.iter().map(|n| n.to_string()).collect();
        assert_eq!(s, ["10.0.0.8/29", "10.0.0.16/28"]);
    }

    #[test]
    fn blocks_hold_exactly_the_addresses() {
        // A chain's middle hops 2..=23: one range, a handful of blocks.
        let b = blocks((2..=23).map(ip));
        let s: Vec<String> = b.iter().map(|n| n.to_string()).collect();
        assert_eq!(s, ["10.255.0.2/31", "10.255.0.4/30", "10.255.0.8/29", "10.255.0.16/29"]);
        // Scattered addresses: exactly those, nothing between them.
        let set = [3u32, 4, 5, 9, 200, 7, 4];
        let b = blocks(set.iter().map(|n| ip(*n)));
        for n in 0..=255u32 {
            let inside = b.iter().any(|blk| blk.contains(&ip(n)));
            assert_eq!(inside, set.contains(&n), "{n}: {b:?}");
        }
        assert!(blocks(std::iter::empty()).is_empty());
        assert_eq!(blocks([ip(7)]), vec![Ipv4Net::new(ip(7), 32).unwrap()]);
    }
}
