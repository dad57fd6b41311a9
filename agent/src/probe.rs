//! Reading traceroute output (`traceroute -n -q 1 -w 1 ...`, Debian's traceroute).

use std::net::Ipv4Addr;

/// One address per TTL, `None` where no reply came (`*`).
pub fn parse_traceroute(text: &str) -> Vec<Option<Ipv4Addr>> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let ttl = words.next()?;
            ttl.parse::<u32>().ok()?;
            Some(words.next().and_then(|w| w.parse().ok()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hops_and_gaps() {
        let out = "traceroute to 10.210.1.10 (10.210.1.10), 30 hops max, 60 byte packets\n 1  10.210.0.2  0.071 ms\n 2  *\n 3  10.210.1.10  0.120 ms\n";
        assert_eq!(
            parse_traceroute(out),
            vec![Some("10.210.0.2".parse().unwrap()), None, Some("10.210.1.10".parse().unwrap())]
        );
    }
}
