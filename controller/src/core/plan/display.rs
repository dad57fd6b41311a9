//! The plan for people: one line per router, the hosts, the traceroutes, and the distance.

use std::fmt;

use super::*;
use crate::core::spec::distance::Impair;

impl fmt::Display for Plan {
    /// A human table of the plan: one line per router, then the networks summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "path {} (plan {}): {} routers, {} on the path, {} networks, {} node(s), l2vpn {}",
            self.name,
            self.hash,
            self.routers.len(),
            self.path.len(),
            self.networks.len(),
            self.nodes.len(),
            match self.l2vpn {
                L2vpnMode::None => "none",
                L2vpnMode::Evpn => "evpn",
            }
        )?;
        writeln!(f, "{:>4}  {:<12} {:<5} {:>10}  {:<15} {:<10} interfaces", "hop", "router", "kind", "asn", "loopback", "node")?;
        let mut rows: Vec<&RouterPlan> = self.path_routers().collect();
        rows.extend(self.routers.iter().filter(|r| r.hop.is_none()));
        for r in rows {
            let ifs: Vec<String> =
                r.interfaces.iter().map(|i| format!("{}/{}→{}", i.address, i.prefix_len, i.peer)).collect();
            writeln!(
                f,
                "{:>4}  {:<12} {:<5} {:>10}  {:<15} {:<10} {}",
                r.hop.map(|h| (h + 1).to_string()).unwrap_or_else(|| "-".into()),
                r.name,
                r.kind.to_string(),
                r.asn,
                r.loopback.addr().to_string(),
                r.node,
                ifs.join(" ")
            )?;
        }
        for h in &self.hosts {
            writeln!(f, "host {} {}/{} via {} on {}", h.name, h.address, h.prefix_len, h.router, h.node)?;
            if let Some(a) = &h.attach {
                writeln!(
                    f,
                    "host {} on the LAN of {} (node {}) as {} {}/{}: machines there route the path's prefixes via {}",
                    h.name,
                    a.parent,
                    h.node,
                    a.ifname,
                    a.address,
                    a.subnet.prefix_len(),
                    a.address
                )?;
            }
        }
        let cross = self.networks.iter().filter(|n| n.cross_host).count();
        writeln!(f, "links crossing hosts: {cross}")?;
        if self.announce == crate::core::spec::Announce::All {
            writeln!(
                f,
                "announce all: every router originates its loopback, forced along the path on every hop; {1} pings the {0} hops' loopbacks",
                self.path.len(),
                self.hosts.first().map_or("?", |h| h.name.as_str())
            )?;
        }
        if self.carries_ipv4() {
            for t in &self.expectations.traceroutes {
                let hops: Vec<String> = t.hops.iter().map(|h| h.to_string()).collect();
                writeln!(f, "traceroute {} → {}: {}", t.from, t.to, hops.join(" "))?;
            }
        }
        if let Some(six) = &self.ipv6 {
            writeln!(f, "family: {}", crate::core::compare::ipv6::family(six))?;
            for (r, r6) in self.routers.iter().zip(&six.routers) {
                let ifs: Vec<String> = r6.interfaces.iter().map(|i| format!("{}/{}", i.address, i.prefix_len)).collect();
                writeln!(f, "ipv6 {} loopback {} interfaces {}", r.name, r6.loopback, ifs.join(" "))?;
            }
            for h in &six.hosts {
                writeln!(f, "ipv6 host {} {}/{} via {}", h.name, h.address, h.prefix_len, h.gateway)?;
            }
            for (from, to, _, hops) in crate::core::compare::ipv6::traceroutes(self, six) {
                let hops: Vec<String> = hops.iter().map(|h| h.to_string()).collect();
                writeln!(f, "traceroute6 {from} → {to}: {}", hops.join(" "))?;
            }
        }
        if let Some(d) = &self.distance {
            for n in &self.networks {
                let (Some(i), [a, b]) = (n.impair, &n.ends[..]) else { continue };
                writeln!(f, "link {}–{}: {} → {}: {}; {} → {}: {}", a.name, b.name, a.name, b.name, i.from_a, b.name, a.name, i.from_b)?;
            }
            writeln!(
                f,
                "distance: one way {} → {} {}, back {}; converge {}",
                self.path.first().map_or("?", String::as_str),
                self.path.last().map_or("?", String::as_str),
                ms(d.one_way_us),
                ms(d.back_us),
                match d.converge {
                    Converge::WithDelay => "with-delay",
                    Converge::ThenDelay => "then-delay",
                }
            )?;
        }
        if let Some(sched) = &self.schedule {
            writeln!(f, "schedule (seconds after the path verified):")?;
            for d in &sched.directions {
                let steps: Vec<String> = d.steps.iter().map(|s| format!("+{} s {}", s.at_ms as f64 / 1000.0, s.state)).collect();
                writeln!(f, "  {}: {}", d.link, if steps.is_empty() { "unchanged".to_string() } else { steps.join("; ") })?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for schedule::LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.down {
            f.write_str("down")
        } else {
            write!(f, "{}", self.impair)
        }
    }
}

/// Microseconds as milliseconds for people (`1280 ms`, `0.25 ms`).
pub fn ms(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format!("{} ms", us / 1000)
    } else {
        format!("{} ms", us as f64 / 1000.0)
    }
}

impl fmt::Display for Impair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![format!("delay {}", ms(self.delay_us))];
        if self.jitter_us > 0 {
            parts.push(format!("jitter ±{}", ms(self.jitter_us)));
        }
        if self.loss_ppm > 0 {
            parts.push(format!("loss {} %", f64::from(self.loss_ppm) / 10_000.0));
        }
        if self.rate_bps > 0 {
            parts.push(format!("rate {} Mbit/s", self.rate_bps as f64 / 1e6));
        }
        f.write_str(&parts.join(", "))
    }
}

