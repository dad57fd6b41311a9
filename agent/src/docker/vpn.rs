//! IPsec operations in a vnet-te container (see `crate::vpn`): fixed scripts, whose only
//! arguments are typed addresses.

use crate::node::{NodeError, NodeResult, Probe};
use crate::vpn::{VpnOp, COUNT_CHAIN, STRONGSWAN_CONF, SWANCTL_CONF};

use super::LocalNode;

/// A throwaway ESP state between two documentation addresses: the kernel refuses it
/// ("Requested type not found") when it has no ESP.
const PROBE_ESP: &str = r#"spi=0x7e5a0001
if out=$(ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi $spi mode tunnel \
    enc 'cbc(aes)' 0x00112233445566778899aabbccddeeff \
    auth-trunc 'hmac(sha256)' 0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff 128 2>&1); then
  ip xfrm state delete src 192.0.2.1 dst 192.0.2.2 proto esp spi $spi
  echo "kernel ESP: yes"
else
  echo "kernel ESP: no ($out)"
  exit 1
fi"#;

/// charon in the background (its own session, so the exec returns), then the configuration
/// once its control socket answers (within 10 s).
const START: &str = r#"export STRONGSWAN_CONF="$1"
if ! pidof charon-systemd >/dev/null; then
  setsid /usr/sbin/charon-systemd </dev/null >/dev/null 2>&1 &
fi
i=0
until swanctl --stats >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then echo "charon did not answer within 10 s"; tail -n 20 /var/log/charon.log 2>/dev/null; exit 1; fi
  sleep 0.1
done
swanctl --load-all --noprompt --file "$2" 2>&1 | grep -v -e "failed to load" -e "opening directory"
exit "${PIPESTATUS:-0}""#;

const COUNT_START: &str = r#"c="$1"; a="$2"; b="$3"
iptables -w -t mangle -N "$c" 2>/dev/null || iptables -w -t mangle -F "$c" || exit 1
iptables -w -t mangle -C FORWARD -j "$c" 2>/dev/null || iptables -w -t mangle -I FORWARD -j "$c" || exit 1
iptables -w -t mangle -A "$c" -p esp -m comment --comment esp &&
iptables -w -t mangle -A "$c" -p udp --dport 4500 -m comment --comment nat-t &&
iptables -w -t mangle -A "$c" -p icmp -s "$a" -d "$b" -m comment --comment plain-ab &&
iptables -w -t mangle -A "$c" -p icmp -s "$b" -d "$a" -m comment --comment plain-ba"#;

/// Both families' chains: CountStart made one of them, by the addresses' family.
const COUNT_STOP: &str = r#"c="$1"
for t in iptables ip6tables; do
  while $t -w -t mangle -D FORWARD -j "$c" 2>/dev/null; do :; done
  $t -w -t mangle -F "$c" 2>/dev/null
  $t -w -t mangle -X "$c" 2>/dev/null
done
true"#;

/// Whichever family's chain exists (the comments' counters add up in `parse_counts`).
const COUNT_READ: &str = r#"c="$1"; ok=1
for t in iptables ip6tables; do
  $t -w -t mangle -L "$c" -n -v -x 2>/dev/null && ok=0
done
[ "$ok" = 0 ] || { echo "no counting chain $c"; exit 1; }"#;

pub(super) async fn run(node: &LocalNode, container: &str, op: &VpnOp) -> NodeResult<Probe> {
    let doing = op.doing(container);
    let cmd: Vec<&str> = match op {
        VpnOp::ProbeEsp {} => vec!["sh", "-c", PROBE_ESP],
        VpnOp::Start {} => vec!["bash", "-c", START, "start", STRONGSWAN_CONF, SWANCTL_CONF],
        VpnOp::ListSas {} => vec!["swanctl", "--list-sas", "--noblock"],
        VpnOp::CountStart { a: x, b: y } => {
            if x.is_ipv4() != y.is_ipv4() {
                return Err(NodeError::Refused { doing, message: "the two addresses are of different families".into() });
            }
            let (a, b) = (x.to_string(), y.to_string());
            let tool = if x.is_ipv4() { COUNT_START.to_string() } else { COUNT_START.replace("iptables", "ip6tables").replace("-p icmp", "-p ipv6-icmp") };
            return exec(node, container, &["sh", "-c", &tool, "count", COUNT_CHAIN, &a, &b], &doing).await;
        }
        VpnOp::CountRead {} => vec!["sh", "-c", COUNT_READ, "read", COUNT_CHAIN],
        VpnOp::CountStop {} => vec!["sh", "-c", COUNT_STOP, "stop", COUNT_CHAIN],
    };
    exec(node, container, &cmd, &doing).await
}

async fn exec(node: &LocalNode, container: &str, cmd: &[&str], doing: &str) -> NodeResult<Probe> {
    let (code, output) = node.exec(container, cmd, doing).await?;
    Ok(Probe { success: code == 0, output })
}
