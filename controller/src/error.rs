//! Exit codes and the one mapping from an error to its code.

use crate::core::plan::PlanError;
use crate::core::spec::SpecError;
use crate::exec::lock::LockError;

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: i32 = 0;
    /// Verification ran and the network differs from the plan.
    pub const VERIFY_FAILED: i32 = 1;
    /// The input (spec, flags) is invalid, or another run is changing the same path;
    /// nothing was created.
    pub const BAD_INPUT: i32 = 2;
    /// An operation failed (Docker, agent, I/O); the message says what to run next.
    pub const FAILED: i32 = 3;
}

/// Invalid flags or arguments beyond what clap checks.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Maps an error to the documented exit code: bad input is 2, anything else 3.
pub fn exit_code_for(e: &anyhow::Error) -> i32 {
    // downcast_ref also finds values attached with `.context(..)`, which chain() hides.
    let bad = e.downcast_ref::<BadInput>().is_some()
        || e.downcast_ref::<SpecError>().is_some()
        || e.downcast_ref::<PlanError>().is_some()
        || e.chain().any(|c| c.is::<SpecError>() || c.is::<PlanError>() || c.is::<BadInput>())
        || e.chain().any(|c| matches!(c.downcast_ref::<LockError>(), Some(LockError::Busy { .. })));
    if bad {
        exit::BAD_INPUT
    } else {
        exit::FAILED
    }
}
