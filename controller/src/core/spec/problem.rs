//! Problems found in a spec, each with its location, and the error that carries them all.

use std::fmt;

/// One problem found in a spec: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

impl Problem {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { location: location.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why a spec was refused. Both variants mean "bad input" (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{source_name}: {}", render_problems(.problems))]
    Invalid { source_name: String, problems: Vec<Problem> },
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = format!("{} problem(s)", problems.len());
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

impl SpecError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            SpecError::Invalid { problems, .. } => problems,
        }
    }
}

