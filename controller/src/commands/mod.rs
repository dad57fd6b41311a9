//! One module per verb group. Each takes plain arguments (no clap types), does its work
//! through `core` and `exec`, prints, and returns an exit code.

use std::path::{Path, PathBuf};
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
    /// Overrides the spec's `family` (`ipv4,ipv6`).
    pub family: Option<String>,
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
    if let Some(f) = &a.family {
        let families = spec::ipv6::parse_families(f).map_err(|e| SpecError::Invalid { source_name: "--family".into(), problems: vec![spec::Problem::new("--family", e)] })?;
        s.family = Some(families);
        revalidate(&s, "--family")?;
    }
    if let Some(d) = &a.delay {
        let mut defaults = s.link_defaults.take().unwrap_or_default();
        defaults.delay = Some(spec::Quantity(d.clone()));
        s.link_defaults = Some(defaults);
        revalidate(&s, "--delay")?;
    }
    for w in spec::warnings(&s) {
        eprintln!("warning: {w}");
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

/// A spec file that is missing or not text is bad input (exit 2); other read errors are not.
fn read_spec_file(f: &std::path::Path) -> anyhow::Result<String> {
    let bytes = match std::fs::read(f) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BadInput(format!("{}: no such file", f.display())).into());
        }
        Err(e) => return Err(e).with_context(|| format!("reading path spec {}", f.display())),
    };
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        BadInput(format!("{}: not UTF-8 text (byte {at} is not valid UTF-8); a path spec is YAML text", f.display())).into()
    })
}

fn read_spec(a: &SpecInput) -> anyhow::Result<PathSpec> {
    match &a.source {
        SpecSource::File(f) => {
            if a.name.is_some() {
                return Err(BadInput("--name is only used with --hops (the spec file names the path)".into()).into());
            }
            let text = read_spec_file(f)?;
            // Files a spec names (a contact plan) are relative to the spec's directory.
            let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
            let read = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| e.to_string());
            Ok(spec::parse_yaml_with(&f.display().to_string(), &text, &read)?)
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
        Inventory { nodes: a.nodes.clone(), taken: Vec::new(), interfaces: None }
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

/// Holds path `name`'s lock for the life of the value (one create, update, impair or delete
/// per name at a time). A name no path can have is refused first: it also names the lock file.
pub(crate) fn lock_path(name: &str) -> anyhow::Result<crate::exec::lock::PathLock> {
    if let Some(problem) = spec::name_problem(name) {
        return Err(BadInput(format!("path name: {problem}")).into());
    }
    Ok(crate::exec::lock::PathLock::acquire(name)?)
}

/// Resolves at the first SIGINT, SIGTERM or SIGHUP, with the signal's name. Once watched,
/// these signals no longer end the process by themselves, for as long as it runs: a command
/// that watches them in one phase must watch them in every later one.
pub(crate) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

pub(crate) fn print_report(report: &Report, output: Output) {
    let text = match output {
        Output::Table => report.to_string(),
        Output::Json => format!("{}\n", serde_json::to_string_pretty(report).expect("report serialises")),
    };
    // The verdict is the exit code; a reader that went away does not change it.
    let _ = emit(&text);
}

/// Writes command output to stdout; a reader that went away (`path plan | head`) is not an
/// error, where `print!` would panic.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
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
