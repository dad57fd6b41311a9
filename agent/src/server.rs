//! The agent service: the `Node` operations of one node over HTTPS with mutual TLS.
//!
//! One route per `Node` method, `POST /v1/<method>` with the arguments as a JSON object
//! (see [`wire`]) and the method's result as JSON; `GET /v1/health` names the node and the
//! agent version. A failed operation answers a non-2xx status with a JSON [`wire::ErrorBody`]
//! `{kind, doing, message}`; the client turns it back into a `NodeError`. Nothing else is
//! served: no generic exec, no shell.
//!
//! TLS: every connection must present a client certificate that chains to the cluster CA
//! (see `tls::server_config`); a handshake without one fails before any HTTP is read.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::node::{Node, NodeError, NodeResult};

/// Largest request body accepted (container specs carry whole config files).
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// A client that has not finished its TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The agent's version, reported by `/v1/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The request and answer bodies, shared with `remote`.
pub mod wire {
    use std::net::Ipv4Addr;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct NoArgs {}

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Refs {
        pub refs: Vec<String>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Label {
        pub label: String,
        pub value: Option<String>,
    }

    /// A container or network name.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Name {
        pub name: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FileRef {
        pub container: String,
        pub path: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Router {
        pub router: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Traceroute {
        pub host: String,
        pub target: Ipv4Addr,
        pub max_hops: u32,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Ping {
        pub host: String,
        pub target: Ipv4Addr,
        pub size: Option<u32>,
        pub dont_fragment: bool,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PingUntil {
        pub host: String,
        pub target: Ipv4Addr,
        pub within_secs: u32,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct WaitBgpd {
        pub router: String,
        pub within_secs: u32,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Enable {
        pub enable: bool,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Container {
        pub container: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FrrConfig {
        pub router: String,
        pub config: String,
        pub remove: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Files {
        pub container: String,
        pub files: Vec<crate::node::FileSpec>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Health {
        pub node: String,
        pub version: String,
    }

    /// The body of every non-2xx answer.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ErrorBody {
        /// `docker`, `not_running`, `failed`, `parse` (the `NodeError` variant), or
        /// `bad_request`, `unknown_operation`, `too_large` (the request itself).
        pub kind: String,
        /// What the agent was doing.
        pub doing: String,
        pub message: String,
        /// `not_running` only: the container.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub container: Option<String>,
    }
}

use wire::ErrorBody;

#[derive(Clone)]
struct AppState {
    node: Arc<dyn Node>,
}

type Args<T> = Result<Json<T>, JsonRejection>;

fn error(status: StatusCode, body: ErrorBody) -> Response {
    (status, Json(body)).into_response()
}

fn node_error(e: NodeError) -> ErrorBody {
    match e {
        NodeError::Docker { doing, source } => {
            ErrorBody { kind: "docker".into(), doing, message: source.to_string(), container: None }
        }
        NodeError::NotRunning { doing, container } => ErrorBody {
            kind: "not_running".into(),
            doing,
            message: format!("container {container} is not running"),
            container: Some(container),
        },
        NodeError::Failed { doing, message } => ErrorBody { kind: "failed".into(), doing, message, container: None },
        NodeError::Parse(p) => ErrorBody {
            kind: "parse".into(),
            doing: "parsing FRR output".into(),
            message: p.to_string(),
            container: None,
        },
    }
}

/// Runs one operation: decodes the arguments, calls the node, encodes the answer.
async fn answer<T, R, F, Fut>(state: AppState, op: &'static str, args: Args<T>, call: F) -> Response
where
    T: DeserializeOwned,
    R: Serialize,
    F: FnOnce(Arc<dyn Node>, T) -> Fut,
    Fut: Future<Output = NodeResult<R>>,
{
    let args = match args {
        Ok(Json(a)) => a,
        Err(rejection) => {
            let status = rejection.status();
            let kind = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_request" };
            warn!(op, %status, "rejected request: {}", rejection.body_text());
            return error(
                status,
                ErrorBody { kind: kind.into(), doing: format!("decoding {op}"), message: rejection.body_text(), container: None },
            );
        }
    };
    let started = std::time::Instant::now();
    match call(state.node, args).await {
        Ok(r) => {
            debug!(op, elapsed_ms = started.elapsed().as_millis() as u64, "ok");
            Json(r).into_response()
        }
        Err(e) => {
            warn!(op, elapsed_ms = started.elapsed().as_millis() as u64, "failed: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, node_error(e))
        }
    }
}

// One handler per `Node` method; the route is the method name.

async fn images_present(State(s): State<AppState>, a: Args<wire::Refs>) -> Response {
    answer(s, "images_present", a, |n, a| async move { n.images_present(&a.refs).await }).await
}

async fn taken_subnets(State(s): State<AppState>, a: Args<wire::NoArgs>) -> Response {
    answer(s, "taken_subnets", a, |n, _| async move { n.taken_subnets().await }).await
}

async fn find_containers(State(s): State<AppState>, a: Args<wire::Label>) -> Response {
    answer(s, "find_containers", a, |n, a| async move { n.find_containers(&a.label, a.value.as_deref()).await }).await
}

async fn find_networks(State(s): State<AppState>, a: Args<wire::Label>) -> Response {
    answer(s, "find_networks", a, |n, a| async move { n.find_networks(&a.label, a.value.as_deref()).await }).await
}

async fn create_network(State(s): State<AppState>, a: Args<crate::node::NetworkSpec>) -> Response {
    answer(s, "create_network", a, |n, a| async move { n.create_network(&a).await }).await
}

async fn remove_network(State(s): State<AppState>, a: Args<wire::Name>) -> Response {
    answer(s, "remove_network", a, |n, a| async move { n.remove_network(&a.name).await }).await
}

async fn create_container(State(s): State<AppState>, a: Args<crate::node::ContainerSpec>) -> Response {
    answer(s, "create_container", a, |n, a| async move { n.create_container(&a).await }).await
}

async fn start_container(State(s): State<AppState>, a: Args<wire::Name>) -> Response {
    answer(s, "start_container", a, |n, a| async move { n.start_container(&a.name).await }).await
}

async fn remove_container(State(s): State<AppState>, a: Args<wire::Name>) -> Response {
    answer(s, "remove_container", a, |n, a| async move { n.remove_container(&a.name).await }).await
}

async fn read_file(State(s): State<AppState>, a: Args<wire::FileRef>) -> Response {
    answer(s, "read_file", a, |n, a| async move { n.read_file(&a.container, &a.path).await }).await
}

async fn bgp_table(State(s): State<AppState>, a: Args<wire::Router>) -> Response {
    answer(s, "bgp_table", a, |n, a| async move { n.bgp_table(&a.router).await }).await
}

async fn bgp_summary(State(s): State<AppState>, a: Args<wire::Router>) -> Response {
    answer(s, "bgp_summary", a, |n, a| async move { n.bgp_summary(&a.router).await }).await
}

async fn traceroute(State(s): State<AppState>, a: Args<wire::Traceroute>) -> Response {
    answer(s, "traceroute", a, |n, a| async move { n.traceroute(&a.host, a.target, a.max_hops).await }).await
}

async fn ping(State(s): State<AppState>, a: Args<wire::Ping>) -> Response {
    answer(s, "ping", a, |n, a| async move { n.ping(&a.host, a.target, a.size, a.dont_fragment).await }).await
}

async fn bridge_forwarding(State(s): State<AppState>, a: Args<wire::Enable>) -> Response {
    answer(s, "bridge_forwarding", a, |n, a| async move { n.bridge_forwarding(a.enable).await }).await
}

async fn bgp_evpn_routes(State(s): State<AppState>, a: Args<wire::Router>) -> Response {
    answer(s, "bgp_evpn_routes", a, |n, a| async move { n.bgp_evpn_routes(&a.router).await }).await
}

async fn evpn_vnis(State(s): State<AppState>, a: Args<wire::Router>) -> Response {
    answer(s, "evpn_vnis", a, |n, a| async move { n.evpn_vnis(&a.router).await }).await
}

async fn interface_counters(State(s): State<AppState>, a: Args<wire::Container>) -> Response {
    answer(s, "interface_counters", a, |n, a| async move { n.interface_counters(&a.container).await }).await
}

async fn apply_frr_config(State(s): State<AppState>, a: Args<wire::FrrConfig>) -> Response {
    answer(s, "apply_frr_config", a, |n, a| async move { n.apply_frr_config(&a.router, &a.config, &a.remove).await })
        .await
}

async fn write_files(State(s): State<AppState>, a: Args<wire::Files>) -> Response {
    answer(s, "write_files", a, |n, a| async move { n.write_files(&a.container, &a.files).await }).await
}

async fn ping_until(State(s): State<AppState>, a: Args<wire::PingUntil>) -> Response {
    answer(s, "ping_until", a, |n, a| async move { n.ping_until(&a.host, a.target, a.within_secs).await }).await
}

async fn wait_bgpd(State(s): State<AppState>, a: Args<wire::WaitBgpd>) -> Response {
    answer(s, "wait_bgpd", a, |n, a| async move { n.wait_bgpd(&a.router, a.within_secs).await }).await
}

async fn connect_vxlan(State(s): State<AppState>, a: Args<crate::node::VxlanSpec>) -> Response {
    answer(s, "connect_vxlan", a, |n, a| async move { n.connect_vxlan(&a).await }).await
}

async fn connect_veth(State(s): State<AppState>, a: Args<crate::node::VethSpec>) -> Response {
    answer(s, "connect_veth", a, |n, a| async move { n.connect_veth(&a).await }).await
}

async fn health(State(s): State<AppState>) -> Json<wire::Health> {
    Json(wire::Health { node: s.node.name().to_string(), version: VERSION.to_string() })
}

async fn unknown(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        ErrorBody {
            kind: "unknown_operation".into(),
            doing: format!("routing {}", uri.path()),
            message: format!("this agent (version {VERSION}) has no operation {}", uri.path()),
            container: None,
        },
    )
}

/// The HTTP routes in front of `node` (no TLS: see [`serve`]).
pub fn router(node: Arc<dyn Node>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/images_present", post(images_present))
        .route("/v1/taken_subnets", post(taken_subnets))
        .route("/v1/find_containers", post(find_containers))
        .route("/v1/find_networks", post(find_networks))
        .route("/v1/create_network", post(create_network))
        .route("/v1/remove_network", post(remove_network))
        .route("/v1/create_container", post(create_container))
        .route("/v1/start_container", post(start_container))
        .route("/v1/remove_container", post(remove_container))
        .route("/v1/read_file", post(read_file))
        .route("/v1/bgp_table", post(bgp_table))
        .route("/v1/bgp_summary", post(bgp_summary))
        .route("/v1/traceroute", post(traceroute))
        .route("/v1/ping", post(ping))
        .route("/v1/bridge_forwarding", post(bridge_forwarding))
        .route("/v1/bgp_evpn_routes", post(bgp_evpn_routes))
        .route("/v1/evpn_vnis", post(evpn_vnis))
        .route("/v1/interface_counters", post(interface_counters))
        .route("/v1/apply_frr_config", post(apply_frr_config))
        .route("/v1/write_files", post(write_files))
        .route("/v1/connect_veth", post(connect_veth))
        .route("/v1/connect_vxlan", post(connect_vxlan))
        .route("/v1/ping_until", post(ping_until))
        .route("/v1/wait_bgpd", post(wait_bgpd))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(AppState { node })
}

/// Serves `node` on `listener` with mutual TLS until `shutdown` completes (then stops
/// accepting; connections in progress are left to finish on their own).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    node: Arc<dyn Node>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(node.clone());
    info!(node = node.name(), addr = %listener.local_addr()?, version = VERSION, "agent listening (mutual TLS)");
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => {
                info!("shutting down");
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(connection(tcp, peer, acceptor, app));
    }
}

async fn connection(tcp: tokio::net::TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, app: Router) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            warn!(%peer, "TLS handshake refused: {e}");
            return;
        }
        Err(_) => {
            warn!(%peer, "TLS handshake timed out");
            return;
        }
    };
    debug!(%peer, "client authenticated");
    let service = TowerToHyperService::new(app);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        debug!(%peer, "connection ended: {e}");
    }
}
