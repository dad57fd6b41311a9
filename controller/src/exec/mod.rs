//! I/O: everything that talks to nodes (through `vnet_te_agent::node::Node`) or to the
//! machine. Reads the core's plan and objects; decides nothing about the network itself.

pub mod apply;
pub mod cluster;
pub mod create;
pub mod distance;
pub mod lock;
#[cfg(test)] pub mod fake;
pub mod nodes;
pub mod observe;
pub mod observe_ipv6;
pub mod pool;
pub mod repair;
pub mod ssh;
pub mod state;
pub mod teardown;
pub mod vpn;

pub use nodes::{DeployError, Nodes, NoProgress, Progress, Step, PARALLELISM};
