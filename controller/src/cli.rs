//! Command-line surface: argument structs (help text, no logic) and their mapping onto
//! `commands`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::{self, cluster, images, impair, path, SpecInput, SpecSource};
use crate::core::spec;

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
    /// Replace the controller's certificate: the old one is revoked on every agent (the
    /// revocation list goes to each node over SSH) and every agent is reached with the new one.
    /// With --ca, replace the cluster CA itself and every certificate it signed.
    Rotate(RotateArgs),
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// Replace the CA: agents trust the old and the new CA while each gets a certificate of
    /// the new one, then the controller's, then the old CA is dropped everywhere. Run it again
    /// to go on after a node that did not answer.
    #[arg(long)]
    pub ca: bool,
    #[command(flatten)]
    pub ssh: SshLoginArgs,
}

#[derive(Args, Debug)]
pub struct SshLoginArgs {
    /// Private key to log in to the nodes with (default ~/.ssh/id_ed25519, then ~/.ssh/id_rsa).
    #[arg(long, short = 'i')]
    pub identity: Option<PathBuf>,
    /// known_hosts file (default ~/.ssh/known_hosts); unknown or changed host keys are refused.
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
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
    /// Stop a node's agent, remove its key and certificates from the node, revoke its
    /// certificate, make it leave the swarm and forget it.
    Remove(NodeRemoveArgs),
    /// Give a node's agent a fresh key and certificate (over SSH) and revoke the old one.
    Reissue(NodeReissueArgs),
}

#[derive(Args, Debug)]
pub struct NodeReissueArgs {
    pub name: String,
    #[command(flatten)]
    pub ssh: SshLoginArgs,
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
    #[arg(long, default_value_t = crate::exec::cluster::DEFAULT_AGENT_PORT)]
    pub agent_port: u16,
    /// Address the node's agent listens on (default: the node's swarm address; 0.0.0.0 for
    /// every interface, e.g. behind NAT).
    #[arg(long)]
    pub agent_listen: Option<std::net::IpAddr>,
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
    /// Change a running link's delay, jitter, loss or rate, or take it down or up, at once;
    /// the stored plan follows, so `path verify` judges against the change.
    Impair(ImpairArgs),
    /// Bring a running path back to its plan in place (after a container was restarted,
    /// stopped or removed, or dockerd restarted): containers started or made again, missing
    /// links, delay lines and rates made again, with the same names, addresses and ASNs;
    /// then the path verified.
    Repair(RepairArgs),
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    /// Path name.
    pub name: String,
    /// Skip verification after the repair.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub verdict: VerdictArgs,
}

#[derive(Args, Debug)]
pub struct ImpairArgs {
    /// Path name.
    pub name: String,
    /// The link, by its two routers: `r3-r4`.
    #[arg(long)]
    pub link: String,
    /// Only packets sent by this end of the link (default: both directions).
    #[arg(long)]
    pub from: Option<String>,
    /// One-way delay, e.g. 20ms, 1.28s, 4m.
    #[arg(long, value_name = "DURATION")]
    pub delay: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub jitter: Option<String>,
    /// Percent of packets dropped.
    #[arg(long, value_name = "PERCENT")]
    pub loss: Option<String>,
    /// e.g. 10mbit; 0 removes the limit.
    #[arg(long)]
    pub rate: Option<String>,
    /// Drop every packet (loss 100 %).
    #[arg(long, conflicts_with = "up")]
    pub down: bool,
    /// End a `--down`.
    #[arg(long)]
    pub up: bool,
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
    #[command(flatten)]
    pub verdict: VerdictArgs,
}

/// How a command waits for and prints its verdict.
#[derive(Args, Debug)]
pub struct VerdictArgs {
    /// Seconds to wait for convergence before verification fails (default: 60 s + 1 s per
    /// router after create, 45 s + 0.5 s per router after update, 30 s + 0.25 s per router
    /// for verify; the per-router term doubled with `announce: all`; plus eight round trips
    /// of a path with distance).
    #[arg(long)]
    pub timeout: Option<u64>,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Path name.
    pub name: String,
    #[command(flatten)]
    pub verdict: VerdictArgs,
    /// Also measure: `rate` (TCP throughput from the first host to the last with iperf3,
    /// against the slowest rate the plan sets on the path).
    #[arg(long, value_enum)]
    pub measure: Vec<MeasureArg>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureArg {
    Rate,
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
    #[command(flatten)]
    pub verdict: VerdictArgs,
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
    /// When a node does not answer: forget its share of the path (and the controller's
    /// state) instead of failing; a later delete while it answers removes what is left there.
    #[arg(long)]
    pub force: bool,
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
    /// One-way delay of every router-to-router link, e.g. 10ms or 1.28s (sets the spec's
    /// `link_defaults.delay`).
    #[arg(long, value_name = "DURATION")]
    pub delay: Option<String>,
    /// What verification proves (overrides the spec's `verify`): `full` (BGP tables,
    /// traceroutes and pings) or `control-plane` (BGP tables only, for paths longer than the
    /// 254 routers a packet can cross).
    #[arg(long, value_enum)]
    pub verify: Option<VerifyArg>,
    /// Which prefixes the routers announce (overrides the spec's `announce`): `ends` (the
    /// default: the two LANs and the two edge loopbacks) or `all` (every router's loopback
    /// too, each forced along the path and pinged from the first host).
    #[arg(long, value_enum)]
    pub announce: Option<AnnounceArg>,
    /// Address families the path carries (overrides the spec's `family`): `ipv4` (default),
    /// `ipv4,ipv6` (dual-stack) or `ipv6`.
    #[arg(long, value_name = "FAMILIES")]
    pub family: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceArg {
    Ends,
    All,
}

impl From<AnnounceArg> for spec::Announce {
    fn from(a: AnnounceArg) -> Self {
        match a {
            AnnounceArg::Ends => spec::Announce::Ends,
            AnnounceArg::All => spec::Announce::All,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyArg {
    Full,
    ControlPlane,
}

impl From<VerifyArg> for spec::VerifyMode {
    fn from(v: VerifyArg) -> Self {
        match v {
            VerifyArg::Full => spec::VerifyMode::Full,
            VerifyArg::ControlPlane => spec::VerifyMode::ControlPlane,
        }
    }
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Path(PathCommand::Plan(a)) => path::plan(&a.spec.into(), a.output.into()),
        Command::Path(PathCommand::Render(a)) => path::render(&a.spec.into(), &a.out),
        Command::Path(PathCommand::Create(a)) => runtime()?.block_on(path::create(path::CreateOptions {
            spec: a.spec.into(),
            replace: a.replace,
            verify: !a.no_verify,
            timeout: a.verdict.timeout.map(Duration::from_secs),
            output: a.verdict.output.into(),
        })),
        Command::Path(PathCommand::Repair(a)) => {
            runtime()?.block_on(path::repair(&a.name, !a.no_verify, a.verdict.timeout.map(Duration::from_secs), a.verdict.output.into()))
        }
        Command::Path(PathCommand::Verify(a)) => runtime()?.block_on(path::verify(
            &a.name,
            a.verdict.timeout.map(Duration::from_secs),
            a.verdict.output.into(),
            a.measure.contains(&MeasureArg::Rate),
        )),
        Command::Path(PathCommand::List(a)) => runtime()?.block_on(path::list(a.output.into())),
        Command::Path(PathCommand::Show(a)) => runtime()?.block_on(path::show(&a.name, a.output.into())),
        Command::Path(PathCommand::Delete(a)) => {
            let target = if a.target.all { None } else { a.target.name };
            runtime()?.block_on(path::delete(target.as_deref(), a.force))
        }
        Command::Path(PathCommand::Update(a)) => runtime()?.block_on(path::update(path::UpdateOptions {
            path: a.path,
            spec: a.spec.into(),
            verify: !a.no_verify,
            timeout: a.verdict.timeout.map(Duration::from_secs),
            output: a.verdict.output.into(),
        })),
        Command::Path(PathCommand::Impair(a)) => runtime()?.block_on(impair::impair(impair::ImpairOptions {
            name: a.name,
            link: a.link,
            from: a.from,
            delay: a.delay,
            jitter: a.jitter,
            loss: a.loss,
            rate: a.rate,
            down: a.down,
            up: a.up,
        })),
        Command::Images(ImagesCommand::Build(a)) => runtime()?.block_on(images::build(a.force)),
        Command::Cluster(ClusterCommand::Init(a)) => runtime()?.block_on(cluster::init(cluster::InitArgs { advertise_addr: a.advertise_addr })),
        Command::Cluster(ClusterCommand::Status(a)) | Command::Node(NodeCommand::List(a)) => runtime()?.block_on(cluster::status(a.output.into())),
        Command::Cluster(ClusterCommand::Rotate(a)) if a.ca => runtime()?.block_on(cluster::rotate_ca(a.ssh.into())),
        Command::Cluster(ClusterCommand::Rotate(a)) => runtime()?.block_on(cluster::rotate(a.ssh.into())),
        Command::Node(NodeCommand::Reissue(a)) => runtime()?.block_on(cluster::reissue(&a.name, a.ssh.into())),
        Command::Node(NodeCommand::Add(a)) => runtime()?.block_on(cluster::add(cluster::AddArgs {
            target: a.target,
            name: a.name,
            accept_new_host_key: a.accept_new_host_key,
            identity: a.identity,
            known_hosts: a.known_hosts,
            agent_port: a.agent_port,
            agent_listen: a.agent_listen,
        })),
        Command::Node(NodeCommand::Remove(a)) => {
            runtime()?.block_on(cluster::remove(cluster::RemoveArgs { name: a.name, force: a.force, identity: a.identity, known_hosts: a.known_hosts }))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

impl From<SpecArgs> for SpecInput {
    fn from(a: SpecArgs) -> Self {
        let source = match (a.source.file, a.source.hops) {
            (Some(f), _) => SpecSource::File(f),
            (None, Some(n)) => SpecSource::Hops(n),
            // clap's group makes one of them required.
            (None, None) => unreachable!("--hops or -f is required"),
        };
        SpecInput {
            source,
            name: a.name,
            nodes: a.nodes,
            wiring: a.wiring.map(Into::into),
            delay: a.delay,
            verify: a.verify.map(Into::into),
            announce: a.announce.map(Into::into),
            family: a.family,
        }
    }
}

impl From<Output> for commands::Output {
    fn from(o: Output) -> Self {
        match o {
            Output::Table => commands::Output::Table,
            Output::Json => commands::Output::Json,
        }
    }
}

impl From<SshLoginArgs> for crate::exec::cluster::SshArgs {
    fn from(a: SshLoginArgs) -> Self {
        crate::exec::cluster::SshArgs { identity: a.identity, known_hosts: a.known_hosts }
    }
}
