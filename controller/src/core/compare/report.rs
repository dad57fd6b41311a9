//! The verdict: per hop, per router off the path, per probe; a table or JSON.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{ATTACH_PING, EVPN, HOP_PING, L2_PING, L2_PING_DF, VXLAN_PATH};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HopStatus {
    Ok,
    /// Not read yet or no routes yet.
    Missing,
    WrongPath,
    Down,
}

impl fmt::Display for HopStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HopStatus::Ok => "ok",
            HopStatus::Missing => "MISSING",
            HopStatus::WrongPath => "WRONG PATH",
            HopStatus::Down => "DOWN",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopReport {
    /// 1-based position on the path.
    pub hop: usize,
    pub router: String,
    pub asn: u32,
    pub node: String,
    /// Expected AS path toward the last hop's LAN.
    pub expected: Vec<u32>,
    /// Observed AS path toward the last hop's LAN (None: no route).
    pub observed: Option<Vec<Option<u32>>>,
    pub status: HopStatus,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub kind: String,
    pub from: String,
    pub to: String,
    pub target: Ipv4Addr,
    pub expected: Vec<Ipv4Addr>,
    pub observed: Vec<Option<Ipv4Addr>>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<String>,
    /// What was seen, for kinds whose evidence is not a list of addresses.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
}

/// A router off the forced path: it must stay a plain eBGP speaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffPathReport {
    pub router: String,
    pub asn: u32,
    pub node: String,
    pub status: HopStatus,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub path: String,
    pub plan_hash: String,
    pub verified: bool,
    pub control_plane_ok: bool,
    pub hops: Vec<HopReport>,
    /// Routers off the path (absent when every router is on it).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub off_path: Vec<OffPathReport>,
    pub probes: Vec<ProbeReport>,
    /// Measured delays per direction (paths with distance).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub distance: Vec<super::distance::DelayReport>,
    /// Throughput against the path's planned rate (`--measure rate`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rate: Option<super::distance::RateMeasure>,
    /// Link directions the schedule has down now: the path was not probed.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub down_by_schedule: Vec<crate::core::plan::schedule::DownNow>,
    /// What was not checked, and why.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    /// Wall time to the verdict, in milliseconds (set by `verify`, not by `compare`).
    pub elapsed_ms: u64,
    /// The families and IPv6 probes of a path that carries IPv6.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ipv6: Option<super::ipv6::Report6>,
}


pub(super) fn show_path(p: &[Option<u32>]) -> String {
    let words: Vec<String> = p.iter().map(|a| a.map(|a| a.to_string()).unwrap_or_else(|| "{set}".into())).collect();
    if words.len() > 6 {
        format!("{} … {} ({} ASes)", words[..3].join(" "), words[words.len() - 1], words.len())
    } else {
        words.join(" ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>4}  {:<12} {:>10}  {:<10} {:<40} {:<24} status", "hop", "router", "AS", "node", "expected AS path (to last hop)", "observed")?;
        for h in &self.hops {
            let exp: Vec<Option<u32>> = h.expected.iter().map(|a| Some(*a)).collect();
            let expected = if exp.is_empty() { "(originates)".to_string() } else { show_path(&exp) };
            let observed = match &h.observed {
                None => "-".to_string(),
                Some(o) if *o == exp => "= expected".to_string(),
                Some(o) if o.is_empty() => "(originates)".to_string(),
                Some(o) => show_path(o),
            };
            writeln!(f, "{:>4}  {:<12} {:>10}  {:<10} {:<40} {:<24} {}", h.hop, h.router, h.asn, h.node, expected, observed, h.status)?;
            for p in &h.problems {
                writeln!(f, "        {p}")?;
            }
        }
        for h in &self.off_path {
            let note = if h.status == HopStatus::Ok { "ok (plain eBGP: no TE preference, shortest AS path)".to_string() } else { h.status.to_string() };
            writeln!(f, "{:>4}  {:<12} {:>10}  {:<10} off the path: {note}", "-", h.router, h.asn, h.node)?;
            for p in &h.problems {
                writeln!(f, "        {p}")?;
            }
        }
        // One line for the hops' loopbacks when all answer; each one that does not, by name.
        let hop_pings: Vec<&ProbeReport> = self.probes.iter().filter(|p| p.kind == HOP_PING).collect();
        if let Some(first) = hop_pings.first() {
            let failed: Vec<&&ProbeReport> = hop_pings.iter().filter(|p| !p.ok).collect();
            let status = if failed.is_empty() { "ok".to_string() } else { format!("FAILED: {} of {} do not answer", failed.len(), hop_pings.len()) };
            writeln!(f, "ping {} → every hop's loopback ({}): {status}", first.from, hop_pings.len())?;
            for p in failed {
                writeln!(f, "        {}", p.problem.clone().unwrap_or_default())?;
            }
        }
        for p in self.probes.iter().filter(|p| p.kind != HOP_PING) {
            let mut status = if p.ok { "ok".to_string() } else { format!("FAILED: {}", p.problem.clone().unwrap_or_default()) };
            if let Some(d) = p.detail.as_ref().filter(|d| !d.is_empty()) {
                status.push_str(&format!(" ({d})"));
            }
            match p.kind.as_str() {
                "traceroute" => writeln!(f, "traceroute {} → {} ({} hops): {}", p.from, p.to, p.expected.len(), status)?,
                EVPN => writeln!(f, "evpn {} ← {} (VTEP {}): {}", p.from, p.to, p.target, status)?,
                L2_PING => writeln!(f, "l2 ping {} → {} ({}): {}", p.from, p.to, p.target, status)?,
                L2_PING_DF => writeln!(f, "l2 ping DF {} → {} ({}): {}", p.from, p.to, p.target, status)?,
                VXLAN_PATH => writeln!(f, "vxlan {} → {} on the planned links: {}", p.from, p.to, status)?,
                ATTACH_PING => writeln!(f, "ping {} → {}'s attached LAN ({}): {}", p.from, p.to, p.target, status)?,
                k if k.starts_with("ipsec") => writeln!(f, "{k} {} → {}: {}", p.from, p.to, status)?,
                _ => writeln!(f, "ping {} → {} ({}): {}", p.from, p.to, p.target, status)?,
            }
        }
        for d in &self.distance {
            let e = &d.end_to_end;
            let measured = e.measured_us.map_or("no reply".to_string(), crate::core::plan::ms);
            writeln!(
                f,
                "delay {} → {}: round trip {measured} (planned {} ± {}), {} hops: {}",
                d.from,
                d.to,
                crate::core::plan::ms(e.planned_us),
                crate::core::plan::ms(e.allowance_us),
                d.hops.len(),
                if d.ok { "ok".to_string() } else { "FAILED".to_string() }
            )?;
            for p in &d.problems {
                writeln!(f, "        {p}")?;
            }
        }
        if let Some(r) = &self.rate {
            let status = if r.ok { "ok".to_string() } else { format!("FAILED: {}", r.problem.clone().unwrap_or_default()) };
            let measured = r.measured_bps.map_or("-".to_string(), |m| format!("{:.2} Mbit/s", m as f64 / 1e6));
            writeln!(f, "rate {} → {}: {measured} (planned {:.2} Mbit/s): {status}", r.from, r.to, r.planned_bps as f64 / 1e6)?;
        }
        for d in &self.down_by_schedule {
            let until = d.until_ms.map_or(String::new(), |u| format!(" until +{} s", u as f64 / 1000.0));
            writeln!(f, "link {}: DOWN by schedule since +{} s{until}", d.link, d.since_ms as f64 / 1000.0)?;
        }
        if let Some(six) = &self.ipv6 {
            write!(f, "{six}")?;
        }
        if let Some(n) = &self.note {
            writeln!(f, "{n}")?;
        }
        writeln!(
            f,
            "path {}: {} ({} hops, {:.1} s)",
            self.path,
            if self.verified { "VERIFIED" } else { "NOT VERIFIED" },
            self.hops.len(),
            self.elapsed_ms as f64 / 1000.0
        )
    }
}

