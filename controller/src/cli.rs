//! Command-line surface: argument structs (help text, no logic) and thin dispatch into the
//! library.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cluster;
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
    /// The cluster on this swarm manager: init (swarm, CA), status.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Cluster nodes: add over SSH, list, remove.
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Make this engine a swarm manager (if it is not one), create the cluster CA and the
    /// controller's client certificate. Safe to run again.
    Init(ClusterInitArgs),
    /// Every node: swarm state, agent reachability (mutual TLS), labelled containers.
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct ClusterInitArgs {
    /// Address of this machine that the other nodes reach (needed when not yet in a swarm).
    #[arg(long)]
    pub advertise_addr: Option<std::net::IpAddr>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Bootstrap a node over SSH: check Docker, join the swarm, load the images, start the
    /// agent with its own certificate. Host keys are checked against known_hosts.
    Add(NodeAddArgs),
    /// The cluster's nodes (same as `cluster status`).
    List(StatusArgs),
    /// Stop a node's agent, make it leave the swarm and forget it.
    Remove(NodeRemoveArgs),
}

#[derive(Args, Debug)]
pub struct NodeAddArgs {
    /// user@host[:port]
    pub target: String,
    /// Node name (default: the node's Docker host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Record an unknown host key in known_hosts instead of refusing. A changed key is
    /// always refused.
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// Private key to log in with (default ~/.ssh/id_ed25519, then ~/.ssh/id_rsa).
    #[arg(long, short = 'i')]
    pub identity: Option<PathBuf>,
    /// known_hosts file (default ~/.ssh/known_hosts).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// TCP port of the node's agent.
    #[arg(long, default_value_t = crate::cluster::DEFAULT_AGENT_PORT)]
    pub agent_port: u16,
}

#[derive(Args, Debug)]
pub struct NodeRemoveArgs {
    pub name: String,
    /// Remove the node's path containers, and forget it even if it does not answer.
    #[arg(long)]
    pub force: bool,
    #[arg(long, short = 'i')]
    pub identity: Option<PathBuf>,
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
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
    /// Re-point a running path at another chosen path over the same topology: the new TE
    /// policy is applied to the running routers (no container or network is recreated), the
    /// stored plan replaced, then the path verified.
    Update(UpdateArgs),
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
pub struct UpdateArgs {
    /// Name of the running path (the spec must carry the same name).
    #[arg(value_name = "NAME")]
    pub path: String,
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Skip verification after the update.
    #[arg(long)]
    pub no_verify: bool,
    /// Seconds to wait for convergence before verification fails.
    #[arg(long, default_value_t = 60)]
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
    /// How links are made (overrides the spec's `wiring`): `direct` (default; veth pairs on
    /// a node, VXLAN between nodes) or `docker` (a bridge network per link on a node, a swarm
    /// overlay between nodes).
    #[arg(long, value_enum)]
    pub wiring: Option<WiringArg>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WiringArg {
    Direct,
    Docker,
}

impl From<WiringArg> for spec::Wiring {
    fn from(w: WiringArg) -> Self {
        match w {
            WiringArg::Direct => spec::Wiring::Direct,
            WiringArg::Docker => spec::Wiring::Docker,
        }
    }
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
        Command::Path(PathCommand::Update(a)) => runtime()?.block_on(ops::update(a)),
        Command::Images(ImagesCommand::Build(a)) => runtime()?.block_on(ops::images_build(a.force)),
        Command::Cluster(ClusterCommand::Init(a)) => runtime()?.block_on(async {
            cluster::init(cluster::InitArgs { advertise_addr: a.advertise_addr }).await.map(|()| exit::OK)
        }),
        Command::Cluster(ClusterCommand::Status(a)) | Command::Node(NodeCommand::List(a)) => {
            runtime()?.block_on(ops::cluster_status(a.output))
        }
        Command::Node(NodeCommand::Add(a)) => runtime()?.block_on(async {
            cluster::add(cluster::AddArgs {
                target: a.target,
                name: a.name,
                accept_new_host_key: a.accept_new_host_key,
                identity: a.identity,
                known_hosts: a.known_hosts,
                agent_port: a.agent_port,
            })
            .await
            .map(|()| exit::OK)
        }),
        Command::Node(NodeCommand::Remove(a)) => runtime()?.block_on(async {
            cluster::remove(cluster::RemoveArgs {
                name: a.name,
                force: a.force,
                identity: a.identity,
                known_hosts: a.known_hosts,
            })
            .await
            .map(|()| exit::OK)
        }),
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

/// Reads the spec named by the arguments (file or --hops), with --wiring applied.
pub fn load_spec(a: &SpecArgs) -> anyhow::Result<spec::PathSpec> {
    let mut s = read_spec(a)?;
    if let Some(w) = a.wiring {
        s.wiring = Some(w.into());
        let problems = spec::validate(&s);
        if !problems.is_empty() {
            return Err(SpecError::Invalid { source_name: "--wiring".to_string(), problems }.into());
        }
    }
    Ok(s)
}

fn read_spec(a: &SpecArgs) -> anyhow::Result<spec::PathSpec> {
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
                            // The mode the file gets inside the container (scripts are 0755),
                            // so the rendered tree can be mounted or copied as it is.
                            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(f.mode))
                                .with_context(|| format!("setting the mode of {}", p.display()))?;
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
