//! The rules that send the packets arriving at a link end to its delay line, and an optional
//! rate limit: argument lists built by pure functions, and a runner for them.
//!
//! The rule sits in `mangle PREROUTING -i IF`: each end delays what arrives over the link, so
//! one line per end gives each direction its delay once, for forwarded packets and the
//! routers' own (BGP, ICMP) alike. Not at the sending end (`POSTROUTING -o`): a packet held
//! there still counts against its sending socket, and TCP small queues then let a local TCP
//! flow (a BGP session, iperf3) send about two packets per delay (4.8 Mbit/s at 10 ms, where
//! the same flow held at the receiving end reached 2.4 Gbit/s); a veth hands the far end a
//! packet that no socket owns any more.

use std::process::Command;
use std::time::Duration;

use super::DelayError;

/// Marks vnet-te's rules, so they can be told apart from anyone else's.
pub const RULE_COMMENT: &str = "vnet-te delay";

/// Where a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// This process's network namespace.
    Current,
    /// A namespace made with `ip netns add` (tests, benches).
    Named(String),
    /// The network namespace of a process, e.g. a router container's init (host PID); the
    /// node's own `iptables` binary acts there, so images need none.
    Pid(u32),
}

/// One program run with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
}

impl Invocation {
    fn new(program: &str, args: &[&str]) -> Self {
        Invocation { program: program.into(), args: args.iter().map(|a| a.to_string()).collect() }
    }

    /// The same command, run inside `ns`.
    pub fn within(self, ns: &Namespace) -> Invocation {
        let prefix: Vec<String> = match ns {
            Namespace::Current => return self,
            Namespace::Named(name) => vec!["ip".into(), "netns".into(), "exec".into(), name.clone()],
            Namespace::Pid(pid) => vec!["nsenter".into(), "-t".into(), pid.to_string(), "-n".into()],
        };
        let mut args: Vec<String> = prefix[1..].to_vec();
        args.push(self.program);
        args.extend(self.args);
        Invocation { program: prefix[0].clone(), args }
    }

    fn run(&self) -> Result<std::process::Output, DelayError> {
        Command::new(&self.program)
            .args(&self.args)
            .output()
            .map_err(|source| DelayError::Io { what: format!("running {}", self.display()), source })
    }

    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str()).chain(self.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
    }
}

/// What an iptables invocation does with the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOp {
    Append,
    Check,
    Delete,
}

/// A link end's queue rule: packets arriving on `ifname` go to queue `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRule {
    pub ifname: String,
    pub queue: u16,
    /// Let packets pass undelayed while no delay line listens (`--queue-bypass`); without it
    /// they are dropped, so a dead delay line shows as a dead link rather than a short one.
    pub bypass: bool,
}

impl QueueRule {
    /// The `iptables` and `ip6tables` invocations for `op`, IPv4 first.
    pub fn invocations(&self, op: RuleOp) -> Vec<Invocation> {
        let flag = match op {
            RuleOp::Append => "-A",
            RuleOp::Check => "-C",
            RuleOp::Delete => "-D",
        };
        let queue = self.queue.to_string();
        let mut args = vec!["-w", "-t", "mangle", flag, "PREROUTING", "-i", &self.ifname];
        args.extend(["-m", "comment", "--comment", RULE_COMMENT, "-j", "NFQUEUE", "--queue-num", &queue]);
        if self.bypass {
            args.push("--queue-bypass");
        }
        ["iptables", "ip6tables"].iter().map(|p| Invocation::new(p, &args)).collect()
    }

    /// Installs the rule in `ns` unless it is there already.
    pub fn install(&self, ns: &Namespace) -> Result<(), DelayError> {
        let checks = self.invocations(RuleOp::Check);
        for (check, append) in checks.into_iter().zip(self.invocations(RuleOp::Append)) {
            if check.within(ns).run()?.status.success() {
                continue;
            }
            succeed(append.within(ns))?;
        }
        Ok(())
    }

    /// Adds the rule to `ns` without looking for it first: for a namespace whose line has just
    /// started (a copy left by an earlier line would only be a second match never reached).
    pub fn append(&self, ns: &Namespace) -> Result<(), DelayError> {
        self.invocations(RuleOp::Append).into_iter().try_for_each(|append| succeed(append.within(ns)))
    }

    /// Removes the rule (every copy of it) from `ns`; a rule that is not there is no error.
    pub fn remove(&self, ns: &Namespace) -> Result<(), DelayError> {
        let checks = self.invocations(RuleOp::Check);
        for (check, delete) in checks.into_iter().zip(self.invocations(RuleOp::Delete)) {
            let check = check.within(ns);
            // Bounded: a rule that survives its deletion is reported, not retried forever.
            for _ in 0..8 {
                if !check.run()?.status.success() {
                    break;
                }
                succeed(delete.clone().within(ns))?;
            }
        }
        Ok(())
    }
}

fn succeed(inv: Invocation) -> Result<(), DelayError> {
    let out = inv.run()?;
    if out.status.success() {
        return Ok(());
    }
    Err(DelayError::Command { command: inv.display(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
}

/// Runs `inv`, failing with its stderr when it exits non-zero.
pub fn run(inv: Invocation) -> Result<(), DelayError> {
    succeed(inv)
}

/// Timer ticks per second of the kernels seen (CONFIG_HZ=250): tbf must be able to send a
/// tick's worth of bytes at once to reach its rate.
const HZ: u64 = 250;

/// `tc qdisc replace dev IF root tbf rate R burst B latency L`: at most `rate_bps` out of
/// `ifname`, packets waiting at most `latency` for tokens. The burst is one timer tick's worth
/// of bytes, at least two full-size frames.
pub fn tbf(ifname: &str, rate_bps: u64, latency: Duration) -> Invocation {
    let burst = (rate_bps / 8 / HZ).max(2 * 1514).to_string();
    let rate = format!("{rate_bps}bit");
    let latency = format!("{}us", latency.as_micros().max(1));
    Invocation::new("tc", &["qdisc", "replace", "dev", ifname, "root", "tbf", "rate", &rate, "burst", &burst, "latency", &latency])
}

/// Removes the root qdisc of `ifname` (back to the default).
pub fn tbf_remove(ifname: &str) -> Invocation {
    Invocation::new("tc", &["qdisc", "del", "dev", ifname, "root"])
}

/// Sets the rate of packets leaving `ifname` (Some) or takes the limit away (None; none to take
/// away is no error), with each command placed by `place` (e.g. in a namespace).
pub fn set_rate(ifname: &str, rate_bps: Option<u64>, place: impl Fn(Invocation) -> Invocation) -> Result<(), DelayError> {
    match rate_bps {
        None => match run(place(tbf_remove(ifname))) {
            Err(DelayError::Command { stderr, .. }) if no_root_qdisc(&stderr) => Ok(()),
            r => r,
        },
        Some(rate) => run(place(tbf(ifname, rate, super::schedule::RATE_LATENCY))),
    }
}

/// Whether `tc qdisc del … root` failed only because there was no root qdisc to delete.
pub fn no_root_qdisc(stderr: &str) -> bool {
    stderr.contains("handle of zero") || stderr.contains("No such file or directory") || stderr.contains("Invalid handle")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(bypass: bool) -> QueueRule {
        QueueRule { ifname: "eth1".into(), queue: 3, bypass }
    }

    #[test]
    fn the_rule_queues_everything_arriving_on_the_interface_for_both_families() {
        let v = rule(false).invocations(RuleOp::Append);
        assert_eq!(
            v[0].display(),
            "iptables -w -t mangle -A PREROUTING -i eth1 -m comment --comment vnet-te delay -j NFQUEUE --queue-num 3"
        );
        assert_eq!(v[0].args[10], "vnet-te delay", "the comment is one argument");
        assert_eq!(v[1].program, "ip6tables");
        assert_eq!(v[1].args, v[0].args);
    }

    #[test]
    fn check_and_delete_name_the_same_rule() {
        let [a, c, d] = [RuleOp::Append, RuleOp::Check, RuleOp::Delete].map(|op| rule(true).invocations(op)[0].args.clone());
        assert_eq!(a.last().unwrap(), "--queue-bypass");
        let strip = |v: &[String], flag: &str| v.iter().filter(|a| *a != flag).cloned().collect::<Vec<_>>();
        assert_eq!(strip(&a, "-A"), strip(&c, "-C"));
        assert_eq!(strip(&a, "-A"), strip(&d, "-D"));
    }

    #[test]
    fn commands_run_inside_the_namespace_asked_for() {
        let inv = rule(false).invocations(RuleOp::Check).remove(0);
        assert_eq!(inv.clone().within(&Namespace::Current), inv);
        let named = inv.clone().within(&Namespace::Named("vtedl-a".into()));
        assert_eq!(named.program, "ip");
        assert_eq!(&named.args[..4], ["netns", "exec", "vtedl-a", "iptables"]);
        let pid = inv.within(&Namespace::Pid(4242));
        assert_eq!(pid.display().split(" -w ").next().unwrap(), "nsenter -t 4242 -n iptables");
    }

    #[test]
    fn tbf_bursts_one_tick_of_bytes_but_at_least_two_frames() {
        assert_eq!(
            tbf("eth1", 1_000_000_000, Duration::from_millis(50)).display(),
            "tc qdisc replace dev eth1 root tbf rate 1000000000bit burst 500000 latency 50000us"
        );
        assert_eq!(tbf("eth1", 1_000_000, Duration::from_millis(50)).args[9], "3028");
        assert_eq!(tbf_remove("eth1").display(), "tc qdisc del dev eth1 root");
    }
}
