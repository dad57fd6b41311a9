//! vnet-te: path intent → plan → router configs → containers → verification.
//!
//! - `core`: pure (spec → plan passes → rendered files, objects to make, comparison);
//! - `exec`: I/O through the node interface (create, teardown, observe, apply, cluster);
//! - `commands`: one module per verb group over plain arguments;
//! - `cli`: the clap structs and their mapping onto `commands`.
//!
//! Imports go downward only: cli → commands → exec → core.

pub mod cli;
pub mod commands;
pub mod core;
pub mod error;
pub mod exec;

pub use error::exit;
