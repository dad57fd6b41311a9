//! vnet-te agent library: what runs on (or for) one node.
//!
//! - `node`: the `Node` interface — the allow-listed operations the controller needs on a
//!   node (networks, containers, config upload, BGP reads, traceroute/ping). Implemented
//!   in-process by `docker::LocalNode` (embedded single-host mode) and, in a cluster, by
//!   the HTTPS agent in front of the same code.
//! - `request`: the agent's protocol, one `Request` variant per `Node` operation and one
//!   `dispatch`; `server` serves it over mutual TLS, `remote::RemoteNode` speaks it.
//! - `frr`, `probe`: tolerant parsers of FRR's `show ... json` and of traceroute output,
//!   shared by both binaries and tested against outputs captured from real FRR 8.4.
//! - `delay`: the delay line (NFQUEUE) that gives links delay, jitter and loss without netem.
//! - `vpn`: strongSwan operations on a VPN end or transit router and readers of their output.
//! - `vty`: `show` commands straight to an FRR daemon's socket in a router (no exec).

pub mod delay;
pub mod docker;
pub mod frr;
pub mod node;
pub mod probe;
pub mod remote;
pub mod request;
pub mod revocation;
pub mod server;
pub mod netns;
pub mod scope;
pub mod tls;
pub mod vty;
pub mod vpn;
