//! `vnet-te-delay`: the delay line of one link end (packets arriving there). Run it in the link
//! end's network namespace (`nsenter -t PID -n`, `ip netns exec`), then install the queue rule
//! there.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use tracing_subscriber::EnvFilter;
use vnet_te_agent::delay::control::{self, Request};
use vnet_te_agent::delay::nfqueue::QueueOptions;
use vnet_te_agent::delay::owner::Owner;
use vnet_te_agent::delay::units::{parse_duration, parse_rate, queue_len_for, DEFAULT_LINE_RATE_BPS};
use vnet_te_agent::delay::{DelayLine, LineConfig, Settings};

#[derive(Debug, Parser)]
#[command(name = "vnet-te-delay", version, about = "vnet-te delay line: holds a link end's NFQUEUE packets for a delay")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Bind the queue in this network namespace and hold packets until stopped.
    Run(RunArgs),
    /// Print the settings and counters of a running delay line (JSON).
    Status(ControlArgs),
    /// Change a running delay line's settings; those not given keep their value.
    Set {
        #[command(flatten)]
        control: ControlArgs,
        #[arg(long, value_parser = parse_duration)]
        delay: Option<Duration>,
        #[arg(long, value_parser = parse_duration)]
        jitter: Option<Duration>,
        /// Percent of packets dropped.
        #[arg(long)]
        loss: Option<f64>,
    },
    /// Release every held packet and end the delay line.
    Stop(ControlArgs),
}

#[derive(Debug, clap::Args)]
struct ControlArgs {
    /// The control socket (a filesystem path, reachable from any namespace).
    #[arg(long)]
    control: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// NFQUEUE queue number, as in the rule's `--queue-num`.
    #[arg(long)]
    queue: u16,
    #[command(flatten)]
    control: ControlArgs,
    /// One-way delay added to each packet (e.g. 50ms, 1.3s).
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    delay: Duration,
    /// Each packet's delay is drawn uniformly from delay ± jitter.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    jitter: Duration,
    /// With jitter, let packets overtake each other (default: they leave in arrival order).
    #[arg(long)]
    reorder: bool,
    /// Percent of packets dropped.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Packets the kernel may hold; default: enough for --rate over delay + jitter.
    #[arg(long)]
    queue_max_len: Option<u32>,
    /// The link's rate, to size the queue (e.g. 100mbit).
    #[arg(long, value_parser = parse_rate, default_value_t = DEFAULT_LINE_RATE_BPS)]
    rate: u64,
    /// Accept packets undelayed when the queue is full (default: the kernel drops them).
    #[arg(long)]
    fail_open: bool,
    /// Take GSO packets unsegmented (far fewer messages at high rates).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
    gso: bool,
    /// End (releasing what is held) once process PID has exited, e.g. the init of the
    /// container whose namespace the line is in: the line would otherwise keep that
    /// namespace alive after the container is gone.
    #[arg(long, value_name = "PID")]
    exit_with: Option<u32>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match Args::parse().command {
        Cmd::Run(args) => run(args),
        Cmd::Status(c) => print(&c, &Request::Status),
        Cmd::Stop(c) => print(&c, &Request::Stop),
        Cmd::Set { control, delay, jitter, loss } => {
            let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
            print(&control, &Request::Set { delay_ms: ms(delay), jitter_ms: ms(jitter), loss_percent: loss })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vnet-te-delay: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print(c: &ControlArgs, request: &Request) -> Result<(), String> {
    let reply = control::request(&c.control, request).map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&reply).expect("replies serialize"));
    match reply.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A packet the scheduler lets out late is a wrong delay: on a busy machine the line runs
/// SCHED_FIFO where that is allowed (root, in a cgroup with real-time time, as on a single
/// host), before any thread starts so that they all inherit it; elsewhere (a cgroup without
/// real-time time, as in a nested node) at normal priority, as the log says.
fn realtime() {
    let pid = std::process::id().to_string();
    let chrt = std::process::Command::new("chrt")
        .args(["-f", "-p", "10", &pid])
        .stdin(std::process::Stdio::null())
        .output();
    match chrt {
        Ok(o) if o.status.success() => tracing::info!("running SCHED_FIFO, priority 10"),
        Ok(o) => tracing::info!(reason = %String::from_utf8_lossy(&o.stderr).trim(), "running at normal priority"),
        Err(e) => tracing::info!(reason = %e, "running at normal priority (no chrt)"),
    }
}

fn run(args: RunArgs) -> Result<(), String> {
    realtime();
    // SIGTERM and SIGINT are taken by a thread of their own (threads inherit this mask), so
    // a stop by signal releases held packets like a `stop` request.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().map_err(|e| format!("blocking signals: {e}"))?;

    let settings = Settings {
        delay_ms: args.delay.as_secs_f64() * 1000.0,
        jitter_ms: args.jitter.as_secs_f64() * 1000.0,
        loss_percent: args.loss,
    };
    let max_len = args.queue_max_len.unwrap_or_else(|| queue_len_for(args.rate, args.delay + args.jitter, 1500));
    let queue = QueueOptions { queue: args.queue, max_len, fail_open: args.fail_open, gso: args.gso };
    let owner = args.exit_with.map(Owner::of).transpose()?;
    let server = control::Server::bind(&args.control.control).map_err(|e| e.to_string())?;
    let socket = server.file();
    let line = DelayLine::start(LineConfig { queue, settings, reorder: args.reorder }).map_err(|e| e.to_string())?;
    tracing::info!(queue = args.queue, max_len, control = %args.control.control.display(), "delay line ready");

    let c = line.control();
    std::thread::spawn(move || server.serve(&c));
    let c = line.control();
    std::thread::spawn(move || {
        if let Ok(signal) = signals.wait() {
            tracing::info!(%signal, "stopping");
            c.stop();
        }
    });
    if let Some(owner) = owner {
        let c = line.control();
        std::thread::spawn(move || {
            owner.wait_gone();
            tracing::info!(pid = owner.pid, "the owner has exited; stopping");
            c.stop();
        });
    }
    let control = line.control();
    line.wait();
    if let Some(socket) = socket {
        socket.remove(&args.control.control);
    }
    tracing::info!(counters = ?control.status().counters, "delay line stopped");
    Ok(())
}
