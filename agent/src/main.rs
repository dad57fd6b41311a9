//! `vnet-te-agent`: serves this node's Docker engine to the vnet-te controller over HTTPS with
//! mutual TLS (the `Node` operations only; see `vnet_te_agent::server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vnet_te_agent::docker::LocalNode;
use vnet_te_agent::node::Node;
use vnet_te_agent::revocation::{Revocations, REVOKED_FILE};
use vnet_te_agent::server;
use vnet_te_agent::tls::{self, IssuedCert};

#[derive(Debug, Parser)]
#[command(name = "vnet-te-agent", version, about = "vnet-te node agent: this node's Docker operations over mutual TLS")]
struct Args {
    /// Address and port to listen on: the node's own address (`node add` gives the one the
    /// swarm advertises); 0.0.0.0 listens on every interface of the node.
    #[arg(long, default_value = "0.0.0.0:7443")]
    listen: SocketAddr,
    /// Directory with ca.pem (the cluster CA), cert.pem and key.pem (this agent's certificate),
    /// and revoked.txt (the cluster's revoked certificates; absent: none).
    #[arg(long, default_value = "/etc/vnet-te/agent")]
    cert_dir: PathBuf,
    /// This node's name as the controller's plan knows it (the CN of cert.pem).
    #[arg(long)]
    node_name: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("vnet-te-agent: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(args: Args) -> Result<(), (u8, String)> {
    let missing = IssuedCert::missing_files(&args.cert_dir);
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
        return Err((
            2,
            format!(
                "missing certificate files: {} (the agent needs {}, {} and {} in {}, issued by the cluster CA \
                 for node {}; choose another directory with --cert-dir)",
                list.join(", "),
                tls::CA_CERT_FILE,
                tls::CERT_FILE,
                tls::KEY_FILE,
                args.cert_dir.display(),
                args.node_name
            ),
        ));
    }
    let id = IssuedCert::load(&args.cert_dir).map_err(|e| (2, e.to_string()))?;
    // The controller replaces revoked.txt in the certificate directory; it is re-read at
    // the next handshake after each change.
    let revoked = Revocations::file(&args.cert_dir.join(REVOKED_FILE)).map_err(|e| (2, format!("revocation list: {e}")))?;
    let config = tls::server_config_with(&id, Arc::new(revoked)).map_err(|e| (2, e.to_string()))?;
    let node = LocalNode::connect(&args.node_name).await.map_err(|e| (3, e.to_string()))?;
    let node: Arc<dyn Node> = Arc::new(node);
    let limits = server::Limits::default();
    raise_descriptor_limit(limits.descriptors());
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| (3, format!("listening on {}: {e}", args.listen)))?;
    server::serve_with(listener, config, node, limits, shutdown_signal()).await.map_err(|e| (3, format!("serving on {}: {e}", args.listen)))
}

/// Raises the soft limit on open descriptors towards the hard one, so that the agent's own
/// limits, not the descriptor table, bound what it holds (a container's soft limit is often
/// 1024); warns when even the hard limit is lower than `wanted` (plus room for the rest).
fn raise_descriptor_limit(wanted: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let wanted = wanted + 256;
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < wanted => {
            let new = wanted.min(hard);
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, new, hard) {
                tracing::warn!("raising the open file limit from {soft} to {new}: {e}");
            } else if new < wanted {
                tracing::warn!("open file limit {new} (hard): below the {wanted} the agent's limits may use");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("reading the open file limit: {e}"),
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
