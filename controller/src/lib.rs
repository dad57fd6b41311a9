//! vnet-te: path intent → plan → router configs → containers → verification.
//!
//! Stages (see ARCHITECTURE in the README): `spec` (raw user input) → `plan` (pure, resolved
//! desired state) → `render` (config files) → executor (I/O) → verify.

pub mod cli;
pub mod cluster;
pub mod deploy;
pub mod ops;
pub mod plan;
pub mod pool;
pub mod render;
pub mod spec;
pub mod update;
pub mod ssh;
pub mod verify;

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: i32 = 0;
    /// Verification ran and the network differs from the plan.
    pub const VERIFY_FAILED: i32 = 1;
    /// The input (spec, flags) is invalid; nothing was created.
    pub const BAD_INPUT: i32 = 2;
    /// An operation failed (Docker, agent, I/O); the message says what to run next.
    pub const FAILED: i32 = 3;
}
