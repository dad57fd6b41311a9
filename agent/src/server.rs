//! The agent service: the `Node` operations of one node over HTTPS with mutual TLS.
//!
//! `POST /v1/op` takes a [`Request`] (JSON tagged by `op`, see `request`) and answers the
//! operation's result as JSON; `GET /v1/health` names the node and the agent version. A
//! refused request or a failed operation answers a non-2xx status with a JSON
//! [`wire::ErrorBody`] `{kind, doing, message}`; the client turns it back into a `NodeError`.
//! Nothing else is served: no generic exec, no shell.
//!
//! TLS: every connection must present a client certificate that chains to the cluster CA
//! (see `tls::server_config`); a handshake without one fails before any HTTP is read.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::node::{Node, NodeError};
use crate::request::{self, Request, RequestError, BODY_LIMIT};

/// A client that has not finished its TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The agent's version, reported by `/v1/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The answer bodies other than an operation's result, shared with `remote`.
pub mod wire {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Health {
        pub node: String,
        pub version: String,
    }

    /// The body of every non-2xx answer.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ErrorBody {
        /// `docker`, `not_running`, `failed`, `refused`, `parse` (the `NodeError` variant), or
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
        NodeError::Refused { doing, message } => ErrorBody { kind: "refused".into(), doing, message, container: None },
        NodeError::Parse(p) => ErrorBody {
            kind: "parse".into(),
            doing: "parsing FRR output".into(),
            message: p.to_string(),
            container: None,
        },
    }
}

fn refused(e: RequestError) -> Response {
    let status = match e {
        RequestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        RequestError::UnknownOp { .. } => StatusCode::NOT_FOUND,
        RequestError::Malformed { .. } => StatusCode::BAD_REQUEST,
    };
    warn!(%status, "refused request: {e}");
    error(status, ErrorBody { kind: e.kind().into(), doing: e.doing(), message: e.to_string(), container: None })
}

/// `POST /v1/op`: parses the request, runs it on the node, answers its result.
async fn operation(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let parsed = match body {
        Ok(bytes) => request::parse(&bytes),
        // Axum stops reading at `BODY_LIMIT`.
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(RequestError::TooLarge { limit: BODY_LIMIT }),
        Err(r) => Err(RequestError::Malformed { op: None, message: r.body_text() }),
    };
    let req: Request = match parsed {
        Ok(req) => req,
        Err(e) => return refused(e),
    };
    let op = req.op();
    let started = Instant::now();
    match request::dispatch(s.node.as_ref(), req).await {
        Ok(answer) => {
            debug!(op, elapsed_ms = started.elapsed().as_millis() as u64, "ok");
            Json(answer).into_response()
        }
        Err(e) => {
            warn!(op, elapsed_ms = started.elapsed().as_millis() as u64, "failed: {e}");
            let status = match e {
                NodeError::Refused { .. } => StatusCode::FORBIDDEN,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, node_error(e))
        }
    }
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
            message: format!("this agent (version {VERSION}) serves only POST /v1/op and GET /v1/health, not {}", uri.path()),
            container: None,
        },
    )
}

/// The HTTP routes in front of `node` (no TLS: see [`serve`]).
pub fn router(node: Arc<dyn Node>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/op", post(operation))
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
