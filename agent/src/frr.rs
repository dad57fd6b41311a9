//! Readers for FRR's JSON output. Tolerant: FRR adds and renames fields between versions,
//! so every field has a default and unknown fields are ignored. vtysh's exit code is not
//! reliable (PLATFORM notes): output that does not parse as JSON is an error.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected output from `{command}`: {reason} (output starts: {head:?})")]
pub struct ParseError {
    pub command: &'static str,
    pub reason: String,
    pub head: String,
}

fn parse_err(command: &'static str, text: &str, e: serde_json::Error) -> ParseError {
    ParseError { command, reason: e.to_string(), head: text.chars().take(120).collect() }
}

/// `show bgp ipv4 unicast json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct BgpTable {
    #[serde(default, rename = "routerId")]
    pub router_id: Option<String>,
    #[serde(default, rename = "localAS")]
    pub local_as: Option<u32>,
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<BgpPath>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct BgpPath {
    #[serde(default)]
    pub valid: bool,
    #[serde(default)]
    pub bestpath: bool,
    /// Space-separated AS path; empty for locally originated routes.
    #[serde(default)]
    pub path: String,
    #[serde(default, rename = "locPrf")]
    pub local_pref: Option<u32>,
    #[serde(default, rename = "peerId")]
    pub peer_id: Option<String>,
    #[serde(default)]
    pub nexthops: Vec<NextHop>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct NextHop {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub used: bool,
}

/// The best path for one prefix, reduced to what verification compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestRoute {
    /// ASNs in order; AS sets (`{..}`) and confederation segments are kept as `None`.
    pub as_path: Vec<Option<u32>>,
    /// None for a locally originated route (FRR shows 0.0.0.0).
    pub next_hop: Option<Ipv4Addr>,
    pub local_pref: Option<u32>,
}

impl BgpPath {
    pub fn as_path(&self) -> Vec<Option<u32>> {
        self.path.split_whitespace().map(|t| t.parse().ok()).collect()
    }

    pub fn next_hop(&self) -> Option<Ipv4Addr> {
        self.nexthops
            .iter()
            .find(|n| n.used)
            .or_else(|| self.nexthops.first())
            .and_then(|n| n.ip.as_deref())
            .and_then(|ip| ip.parse().ok())
            .filter(|ip: &Ipv4Addr| !ip.is_unspecified())
    }
}

impl BgpTable {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        serde_json::from_str(text).map_err(|e| parse_err("show bgp ipv4 unicast json", text, e))
    }

    /// The best path for `prefix` (`10.0.0.0/24`), if FRR has one.
    pub fn best(&self, prefix: &str) -> Option<BestRoute> {
        let p = self.routes.get(prefix)?.iter().find(|p| p.bestpath)?;
        Some(BestRoute { as_path: p.as_path(), next_hop: p.next_hop(), local_pref: p.local_pref })
    }
}

/// `show bgp summary json` (the IPv4 unicast part).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct BgpSummary {
    #[serde(default, rename = "ipv4Unicast")]
    pub ipv4_unicast: Option<AfSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AfSummary {
    #[serde(default)]
    pub peers: BTreeMap<String, PeerSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PeerSummary {
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default, rename = "remoteAs")]
    pub remote_as: Option<u32>,
    #[serde(default)]
    pub state: String,
    #[serde(default, rename = "pfxRcd")]
    pub prefixes_received: Option<u64>,
}

impl BgpSummary {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        serde_json::from_str(text).map_err(|e| parse_err("show bgp summary json", text, e))
    }

    pub fn peers(&self) -> BTreeMap<String, PeerSummary> {
        self.ipv4_unicast.as_ref().map(|a| a.peers.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = include_str!("../fixtures/frr-8.4/show-bgp-ipv4-unicast.json");
    const SUMMARY: &str = include_str!("../fixtures/frr-8.4/show-bgp-summary.json");
    const SUMMARY_DOWN: &str = include_str!("../fixtures/frr-8.4/show-bgp-summary-peer-down.json");

    #[test]
    fn reads_learned_and_local_routes_from_real_frr_output() {
        let t = BgpTable::parse(TABLE).unwrap();
        assert_eq!(t.local_as, Some(65001));
        let learned = t.best("10.200.2.0/24").unwrap();
        assert_eq!(learned.as_path, vec![Some(65002)]);
        assert_eq!(learned.next_hop, Some("10.199.250.3".parse().unwrap()));
        let local = t.best("10.255.0.1/32").unwrap();
        assert!(local.as_path.is_empty());
        assert_eq!(local.next_hop, None);
        assert!(t.best("10.9.9.0/24").is_none());
    }

    #[test]
    fn reads_session_states() {
        let up = BgpSummary::parse(SUMMARY).unwrap().peers();
        assert_eq!(up["10.199.250.3"].state, "Established");
        let down = BgpSummary::parse(SUMMARY_DOWN).unwrap().peers();
        assert_ne!(down.values().next().unwrap().state, "Established");
    }

    #[test]
    fn non_json_is_an_error() {
        let e = BgpTable::parse("% Unknown command: show bgp foo").unwrap_err();
        assert!(e.head.starts_with("% Unknown"));
    }
}
