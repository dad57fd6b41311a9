//! Command-line surface: argument structs (help text, no logic) and thin dispatch into the
//! library.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit;
use crate::ops;
use crate::plan::{self, Inventory, Plan, PlanError};
use crate::render;
use crate::spec::{self, SpecError};

#[derive(Parser, Debug)]
#[command(name = "vnet-te", version, about = "Forced-path BGP testbeds on Docker: plan, render, create, verify")]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Plan, render, create, inspect and delete paths.
    #[command(subcommand)]
    Path(PathCommand),
    /// Container images for routers and experiment hosts.
    #[command(subcommand)]
    Images(ImagesCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImagesCommand {
    /// Build the router and host images offline (debootstrap + docker import).
    Build(ImagesBuildArgs),
}

#[derive(Args, Debug)]
pub struct ImagesBuildArgs {
    /// Rebuild even when the image tag already exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum PathCommand {
    /// Show the resolved plan: routers, ASNs, addresses, placement, expectations.
    Plan(PlanArgs),
    /// Write every container's config files, one directory per router or host.
    Render(RenderArgs),
    /// Create the path on the Docker engine, then verify it (control and data plane).
    Create(CreateArgs),
    /// Verify a running path against its plan.
    Verify(VerifyArgs),
    /// List the paths found on the engine (by their labels).
    List(ListArgs),
    /// Show one path: its plan and the state of its containers.
    Show(ShowArgs),
    /// Delete a path (or every path) and everything it created.
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Delete an existing path of the same name first.
    #[arg(long)]
    pub replace: bool,
    /// Skip verification after create.
    #[arg(long)]
    pub no_verify: bool,
    /// Seconds to wait for convergence before verification fails.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Path name.
    pub name: String,
    /// Seconds to wait for convergence.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    pub name: String,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct DeleteTarget {
    /// Path name.
    pub name: Option<String>,
    /// Delete every vnet-te path on the engine.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub target: DeleteTarget,
}

#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// Build an N-router chain (each router its own AS).
    #[arg(long, value_name = "N")]
    pub hops: Option<usize>,
    /// Read the path spec from a YAML file.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    #[command(flatten)]
    pub source: Source,
    /// Path name for --hops (default: chain<N>).
    #[arg(long)]
    pub name: Option<String>,
    /// Plan for these nodes instead of the local engine (comma-separated), e.g. to preview a
    /// cluster placement.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Output directory (created; one sub-directory per router or host).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Maps an error to the documented exit code: bad input is 2, anything else 3.
pub fn exit_code_for(e: &anyhow::Error) -> i32 {
    // downcast_ref also finds values attached with `.context(..)`, which chain() hides.
    let bad = e.downcast_ref::<BadInput>().is_some()
        || e.downcast_ref::<SpecError>().is_some()
        || e.downcast_ref::<PlanError>().is_some()
        || e.chain().any(|c| c.is::<SpecError>() || c.is::<PlanError>() || c.is::<BadInput>());
    if bad {
        exit::BAD_INPUT
    } else {
        exit::FAILED
    }
}

/// Invalid flags or arguments beyond what clap checks.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Path(PathCommand::Create(a)) => runtime()?.block_on(ops::create(a)),
        Command::Path(PathCommand::Verify(a)) => runtime()?.block_on(ops::verify(a)),
        Command::Path(PathCommand::List(a)) => runtime()?.block_on(ops::list(a)),
        Command::Path(PathCommand::Show(a)) => runtime()?.block_on(ops::show(a)),
        Command::Path(PathCommand::Delete(a)) => runtime()?.block_on(ops::delete(a)),
        Command::Images(ImagesCommand::Build(a)) => runtime()?.block_on(ops::images_build(a.force)),
        Command::Path(PathCommand::Plan(a)) => {
            let plan = load_plan(&a.spec)?;
            match a.output {
                Output::Table => print!("{plan}"),
                Output::Json => println!("{}", plan_json(&plan)),
            }
            Ok(exit::OK)
        }
        Command::Path(PathCommand::Render(a)) => {
            let plan = load_plan(&a.spec)?;
            let n = write_rendered(&plan, &a.out)?;
            println!("wrote {n} files for {} containers under {}", plan.routers.len() + plan.hosts.len(), a.out.display());
            Ok(exit::OK)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

pub fn plan_json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("plan serialises")
}

/// Reads the spec named by the arguments (file or --hops).
pub fn load_spec(a: &SpecArgs) -> anyhow::Result<spec::PathSpec> {
    match (&a.source.file, a.source.hops) {
        (Some(f), _) => {
            if a.name.is_some() {
                return Err(BadInput("--name is only used with --hops (the spec file names the path)".into()).into());
            }
            let text = std::fs::read_to_string(f).with_context(|| format!("reading path spec {}", f.display()))?;
            Ok(spec::parse_yaml(&f.display().to_string(), &text)?)
        }
        (None, Some(n)) => {
            let name = a.name.clone().unwrap_or_else(|| format!("chain{n}"));
            Ok(spec::chain(&name, n)?)
        }
        (None, None) => Err(BadInput("give --hops N or -f FILE".into()).into()),
    }
}

pub fn inventory_for(a: &SpecArgs) -> Inventory {
    if a.nodes.is_empty() {
        Inventory::default()
    } else {
        Inventory { nodes: a.nodes.clone(), taken: Vec::new() }
    }
}

pub(crate) fn load_plan(a: &SpecArgs) -> anyhow::Result<Plan> {
    let spec = load_spec(a)?;
    Ok(plan::build(&spec, &inventory_for(a))?)
}

/// Writes `<out>/<container>/<file>` for every rendered file; returns how many.
pub fn write_rendered(plan: &Plan, out: &Path) -> anyhow::Result<usize> {
    let files: Vec<(String, Vec<render::RenderedFile>)> = render::render(plan)?.into_iter().collect();
    // Thousands of small files: creating them dominates, so spread it over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = files.len().div_ceil(threads).max(64);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> anyhow::Result<usize> {
                    let mut n = 0;
                    for (object, list) in part {
                        let dir = out.join(object);
                        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                        for f in list {
                            let p = dir.join(&f.name);
                            std::fs::write(&p, &f.content).with_context(|| format!("writing {}", p.display()))?;
                            n += 1;
                        }
                    }
                    Ok(n)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("writer thread panicked")).sum()
    })
}
