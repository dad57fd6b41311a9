//! One module per verb group. Each takes plain arguments (no clap types), does its work
//! through `core` and `exec`, prints, and returns an exit code.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::core::compare::Report;
use crate::core::plan::{self, Inventory, Plan};
use crate::core::spec::{self, PathSpec, SpecError, VerifyMode, Wiring};
use crate::error::BadInput;
use crate::exec::observe::VerifyProgress;
use crate::exec::{Progress, Step};

pub mod cluster;
pub mod images;
pub mod impair;
pub mod path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// Where a spec comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// An N-router chain.
    Hops(usize),
    File(PathBuf),
}

/// A spec as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecInput {
    pub source: SpecSource,
    /// Path name for `Hops` (default `chain<N>`).
    pub name: Option<String>,
    /// Plan for these nodes instead of the engine's (previews only).
    pub nodes: Vec<String>,
    /// Overrides the spec's `wiring`.
    pub wiring: Option<Wiring>,
    /// One-way delay of every router link (sets `link_defaults.delay`).
    pub delay: Option<String>,
    /// Overrides the spec's `verify`.
    pub verify: Option<VerifyMode>,
    /// Overrides the spec's `announce`.
    pub announce: Option<spec::Announce>,
}

/// Reads the spec (file or chain), with the wiring override applied and checked.
pub fn load_spec(a: &SpecInput) -> anyhow::Result<PathSpec> {
    let mut s = read_spec(a)?;
    if let Some(w) = a.wiring {
        s.wiring = Some(w);
        revalidate(&s, "--wiring")?;
    }
    if let Some(v) = a.verify {
        s.verify = v;
        revalidate(&s, "--verify")?;
    }
    if let Some(x) = a.announce {
        s.announce = x;
        revalidate(&s, "--announce")?;
    }
    if let Some(d) = &a.delay {
        let mut defaults = s.link_defaults.take().unwrap_or_default();
        defaults.delay = Some(spec::Quantity(d.clone()));
        s.link_defaults = Some(defaults);
        revalidate(&s, "--delay")?;
    }
    Ok(s)
}

fn revalidate(s: &PathSpec, flag: &str) -> Result<(), SpecError> {
    let problems = spec::validate(s);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SpecError::Invalid { source_name: flag.to_string(), problems })
    }
}

fn read_spec(a: &SpecInput) -> anyhow::Result<PathSpec> {
    match &a.source {
        SpecSource::File(f) => {
            if a.name.is_some() {
                return Err(BadInput("--name is only used with --hops (the spec file names the path)".into()).into());
            }
            let text = std::fs::read_to_string(f).with_context(|| format!("reading path spec {}", f.display()))?;
            Ok(spec::parse_yaml(&f.display().to_string(), &text)?)
        }
        SpecSource::Hops(n) => {
            let name = a.name.clone().unwrap_or_else(|| format!("chain{n}"));
            Ok(spec::chain_verified(&name, *n, a.verify.unwrap_or_default())?)
        }
    }
}

/// The inventory a preview plans for: the named nodes, or the single local node.
pub fn inventory_for(a: &SpecInput) -> Inventory {
    if a.nodes.is_empty() {
        Inventory::default()
    } else {
        Inventory { nodes: a.nodes.clone(), taken: Vec::new() }
    }
}

/// The plan of a spec for a preview (`path plan`, `path render`).
pub fn preview_plan(a: &SpecInput) -> anyhow::Result<Plan> {
    let spec = load_spec(a)?;
    Ok(plan::build(&spec, &inventory_for(a))?)
}

pub fn plan_json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("plan serialises")
}

pub(crate) fn print_report(report: &Report, output: Output) {
    match output {
        Output::Table => print!("{report}"),
        Output::Json => println!("{}", serde_json::to_string_pretty(report).expect("report serialises")),
    }
}

/// A progress bar on stderr for create and verify.
pub(crate) struct Bar(ProgressBar);

impl Bar {
    pub(crate) fn new() -> Self {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                .expect("valid template"),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        Bar(pb)
    }

    pub(crate) fn update_phase(&self, phase: &str) {
        self.0.set_message(format!("verifying: {phase}"));
    }

    pub(crate) fn done(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn step(&self, step: Step, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(0);
        self.0.set_message(step.describe());
    }
    fn tick(&self) {
        self.0.inc(1);
    }
}

impl VerifyProgress for Bar {
    fn update(&self, ok: usize, total: usize, phase: &str) {
        self.0.set_length(total as u64);
        self.0.set_position(ok as u64);
        self.0.set_message(format!("verifying: {phase}"));
    }
}
