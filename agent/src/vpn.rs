//! IPsec (strongSwan) operations on a VPN end or a transit router, and tolerant readers of
//! what they print: `swanctl --list-sas` and the counting chain's `iptables -L -v -x`.
//!
//! The ends run charon with vnet-te's own strongswan.conf and swanctl.conf, both under
//! `/etc/vnet-te/` (written by `Node::write_files`); transit routers get a counting chain for
//! the duration of one ping burst.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where an end's configuration lives (under `scope::WRITABLE_PREFIX`).
pub const STRONGSWAN_CONF: &str = "/etc/vnet-te/strongswan.conf";
pub const SWANCTL_CONF: &str = "/etc/vnet-te/swanctl.conf";
/// The counting chain on transit routers (mangle table, jumped to from FORWARD).
pub const COUNT_CHAIN: &str = "VNET-TE-VPN";
/// The devices a VPN end may be given: the TUN device libipsec's `ipsec0` is made on.
pub const ALLOWED_DEVICES: &[&str] = &["/dev/net/tun"];

/// One IPsec operation in a container of a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum VpnOp {
    /// Whether the kernel takes an ESP state (a throwaway XFRM state, added and removed in the
    /// container's own namespace): success means kernel ESP works.
    ProbeEsp {},
    /// Starts charon (if it does not run yet) and loads swanctl.conf.
    Start {},
    /// `swanctl --list-sas`.
    ListSas {},
    /// A fresh counting chain: ESP, UDP to port 4500 (NAT-T, libipsec), and plaintext ICMP
    /// between `a` and `b` either way.
    CountStart { a: IpAddr, b: IpAddr },
    /// The counting chain's counters (`iptables -L -v -x`).
    CountRead {},
    /// Removes the counting chain (absent is success).
    CountStop {},
}

impl VpnOp {
    pub fn doing(&self, container: &str) -> String {
        match self {
            VpnOp::ProbeEsp {} => format!("probing kernel ESP in {container}"),
            VpnOp::Start {} => format!("starting strongSwan in {container}"),
            VpnOp::ListSas {} => format!("listing the IPsec SAs of {container}"),
            VpnOp::CountStart { .. } => format!("adding the IPsec counting rules in {container}"),
            VpnOp::CountRead {} => format!("reading the IPsec counting rules in {container}"),
            VpnOp::CountStop {} => format!("removing the IPsec counting rules in {container}"),
        }
    }
}

/// One SA as `swanctl --list-sas` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaLine {
    pub name: String,
    /// `ESTABLISHED`, `CONNECTING`, … (IKE) or `INSTALLED`, … (CHILD).
    pub state: String,
    /// CHILD SAs: `TUNNEL`, `TUNNEL-in-UDP`, …
    pub mode: Option<String>,
}

/// The IKE and CHILD SAs in `swanctl --list-sas` output. IKE lines start in column 0
/// (`vte: #1, ESTABLISHED, IKEv2, …`), CHILD lines are indented and carry a reqid
/// (`  vte: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:…`); everything else is skipped.
pub fn parse_sas(text: &str) -> (Vec<SaLine>, Vec<SaLine>) {
    let (mut ike, mut child) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let Some((name, rest)) = trimmed.split_once(": #") else { continue };
        if name.is_empty() || name.contains(char::is_whitespace) {
            continue;
        }
        let fields: Vec<&str> = rest.split(", ").map(str::trim).collect();
        if fields.get(1).is_some_and(|f| f.starts_with("reqid ")) {
            if let Some(state) = fields.get(2) {
                child.push(SaLine { name: name.into(), state: state.to_string(), mode: fields.get(3).map(|m| m.to_string()) });
            }
        } else if line.len() == trimmed.len() {
            if let Some(state) = fields.get(1) {
                ike.push(SaLine { name: name.into(), state: state.to_string(), mode: None });
            }
        }
    }
    (ike, child)
}

/// Packets per rule of the counting chain, by the rule's comment (`esp`, `nat-t`,
/// `plain-ab`, `plain-ba`), from `iptables -L CHAIN -n -v -x` output.
pub fn parse_counts(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(start) = line.find("/* ") else { continue };
        let Some(len) = line[start + 3..].find(" */") else { continue };
        let comment = &line[start + 3..start + 3 + len];
        if let Some(Ok(pkts)) = line.split_whitespace().next().map(str::parse::<u64>) {
            *out.entry(comment.to_string()).or_default() += pkts;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST_SAS: &str = "vte: #1, ESTABLISHED, IKEv2, c24f86da72bd9d61_i* c5b1e10c36922850_r
  local  '172.31.250.10' @ 172.31.250.10[4500]
  remote '172.31.250.20' @ 172.31.250.20[4500]
  AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048
  established 3s ago, rekeying in 13193s
  vte: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-128/HMAC_SHA2_256_128
    installed 3s ago, rekeying in 3358s, expires in 3957s
    in  5117587f,      0 bytes,     0 packets
    out a3f1bac3,      0 bytes,     0 packets
    local  172.31.250.10/32
    remote 172.31.250.20/32
";

    #[test]
    fn reads_ike_and_child_sas_from_real_swanctl_output() {
        let (ike, child) = parse_sas(LIST_SAS);
        assert_eq!(ike, [SaLine { name: "vte".into(), state: "ESTABLISHED".into(), mode: None }]);
        assert_eq!(child, [SaLine { name: "vte".into(), state: "INSTALLED".into(), mode: Some("TUNNEL-in-UDP".into()) }]);
        assert_eq!(parse_sas(""), (vec![], vec![]));
        let (ike, child) = parse_sas("vte: #2, CONNECTING, IKEv2, 1_i 0_r\n  local  '%any' @ 10.0.0.1[500]\n");
        assert_eq!(ike[0].state, "CONNECTING");
        assert!(child.is_empty());
    }

    #[test]
    fn reads_the_counting_chain() {
        let text = "Chain VNET-TE-VPN (1 references)
    pkts      bytes target     prot opt in     out     source               destination
       0        0            50   --  *      *       0.0.0.0/0            0.0.0.0/0            /* esp */
     412    61240            17   --  *      *       0.0.0.0/0            0.0.0.0/0            udp dpt:4500 /* nat-t */
       3      252            1    --  *      *       10.210.0.3           10.210.1.3           /* plain-ab */
";
        let c = parse_counts(text);
        assert_eq!(c.get("esp"), Some(&0));
        assert_eq!(c.get("nat-t"), Some(&412));
        assert_eq!(c.get("plain-ab"), Some(&3));
        assert_eq!(c.get("plain-ba"), None);
    }

    #[test]
    fn ops_travel_as_tagged_json() {
        let op = VpnOp::CountStart { a: "10.0.0.1".parse().unwrap(), b: "10.0.0.2".parse().unwrap() };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(json, r#"{"do":"count_start","a":"10.0.0.1","b":"10.0.0.2"}"#);
        assert_eq!(serde_json::from_str::<VpnOp>(&json).unwrap(), op);
        assert!(serde_json::from_str::<VpnOp>(r#"{"do":"shell","cmd":"id"}"#).is_err());
    }
}
