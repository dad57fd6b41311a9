//! The pure core: no Docker, no network, no clock, no file system. Spec in, plan, rendered
//! files, the objects to make and the verdict out; golden-tested.

pub mod compare;
pub mod kinds;
pub mod objects;
pub mod plan;
pub mod render;
pub mod render_ipv6;
pub mod replan;
pub mod spec;
pub mod vpn_render;
