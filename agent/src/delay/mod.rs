//! The delay line: link delay, jitter and loss for kernels without netem.
//!
//! An iptables rule in a link end's namespace hands every packet arriving on its interface to
//! an NFQUEUE queue ([`rules`] says why arriving, not leaving); one `vnet-te-delay` process per
//! link end, started in that namespace, binds the queue and accepts each packet once it is
//! due ([`line`]). Queue numbers are per namespace: a router's ends need distinct ones. Packets stay
//! in the kernel meanwhile: the process sees only their ids (metadata-only copies), so its
//! cost per packet is one small message in and a share of one verdict out.
//!
//! It speaks nfnetlink_queue itself ([`nfqueue`], over the netlink socket rtnetlink already
//! brings) rather than through the `nfq` crate, which gives one verdict per packet only: in
//! arrival order a single `NFQNL_MSG_VERDICT_BATCH` releases everything due at one timer
//! tick, and the verdicts of a tick with reordering share one datagram.
//!
//! Timing: a dedicated release thread sleeps on a condition variable until the earliest due
//! time, with 1 µs timer slack (tokio's timer wheel has 1 ms granularity, too coarse here).
//! Settings change at run time through a Unix socket ([`control`]). A line started for a
//! container ends with it ([`owner`]). A line given a timeline applies its changes itself at
//! their instants ([`schedule`]).

pub mod control;
pub mod line;
pub mod nfqueue;
pub mod owner;
pub mod rules;
pub mod schedule;
pub mod units;

pub use line::{Control, Counters, DelayLine, LineConfig, Settings, Status};

#[derive(Debug, thiserror::Error)]
pub enum DelayError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("binding NFQUEUE queue {queue}: {reason}")]
    Bind { queue: u16, reason: String },
    #[error("delay settings: {0}")]
    Settings(String),
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("unreadable reply from the delay line at {path}: {reason}")]
    Reply { path: String, reason: String },
}
