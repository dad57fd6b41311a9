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
//!
//! Before a client has shown its certificate it costs the agent as little as it can: a
//! bounded number of handshakes at once, fewer from any one address, each given
//! [`Limits::handshake_timeout`]; a connection beyond a bound is closed as soon as it is
//! accepted (left in the kernel's queue, it would hold up the controller's own). After it,
//! connections and operations at once are bounded too, and a request's headers must arrive
//! in time.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::node::{Node, NodeError};
use crate::request::{self, Request, RequestError, BODY_LIMIT};

/// What the agent takes on at once, and how long it waits for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, handshakes included.
    pub connections: usize,
    /// Connections still in their TLS handshake at once: in all, and from one address.
    pub handshakes: usize,
    pub handshakes_per_peer: usize,
    /// A client that has not finished its TLS handshake by then is dropped (the controller
    /// on a LAN needs milliseconds).
    pub handshake_timeout: Duration,
    /// A request's headers must have arrived by then. hyper runs this timer on a kept-alive
    /// connection's wait for its next request too, so it outlasts the controller's idle
    /// connections ([`crate::remote::POOL_IDLE_TIMEOUT`]): the agent never closes one the
    /// controller is about to reuse.
    pub header_read_timeout: Duration,
    /// Operations running at once; the next ones wait their turn.
    pub operations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 1024,
            handshakes: 64,
            handshakes_per_peer: 8,
            handshake_timeout: Duration::from_secs(3),
            header_read_timeout: crate::remote::POOL_IDLE_TIMEOUT + Duration::from_secs(10),
            // A create waits for every router's bgpd at once; each wait is short.
            operations: 512,
        }
    }
}

impl Limits {
    /// The descriptors these limits may hold at most: every connection, and an operation's
    /// own (its Docker connection, a namespace, a pipe or two).
    pub fn descriptors(&self) -> u64 {
        (self.connections + self.handshakes + 4 * self.operations) as u64
    }
}
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
    operations: Arc<Semaphore>,
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
    let Ok(_turn) = s.operations.acquire().await else { unreachable!("the semaphore is never closed") };
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

/// The HTTP routes in front of `node`, at most `operations` running at once (no TLS: see
/// [`serve`]).
pub fn router(node: Arc<dyn Node>, operations: usize) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/op", post(operation))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(AppState { node, operations: Arc::new(Semaphore::new(operations)) })
}

/// The connections open and the handshakes under way, in all and by address.
struct Admission {
    limits: Limits,
    connections: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place: held while it is open.
struct Admitted {
    _connection: OwnedSemaphorePermit,
    handshake: Option<Handshake>,
}

/// A handshake's place: given back when the handshake ends, however it ends.
struct Handshake {
    admission: Arc<Admission>,
    peer: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut per_peer = self.admission.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

impl Admission {
    fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            connections: Arc::new(Semaphore::new(limits.connections)),
            handshakes: Arc::new(Semaphore::new(limits.handshakes)),
            per_peer: Mutex::new(HashMap::new()),
        })
    }

    /// A place for a new connection from `peer`, or why there is none.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, &'static str> {
        let connection = self.connections.clone().try_acquire_owned().map_err(|_| "too many connections")?;
        let permit = self.handshakes.clone().try_acquire_owned().map_err(|_| "too many handshakes")?;
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_peer.entry(peer).or_insert(0);
        if *n >= self.limits.handshakes_per_peer {
            return Err("too many handshakes from this address");
        }
        *n += 1;
        drop(per_peer);
        Ok(Admitted { _connection: connection, handshake: Some(Handshake { admission: self.clone(), peer, _permit: permit }) })
    }
}

/// Serves `node` on `listener` with mutual TLS until `shutdown` completes (then stops
/// accepting; connections in progress are left to finish on their own).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    node: Arc<dyn Node>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, tls, node, Limits::default(), shutdown).await
}

/// [`serve`] within `limits`.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    node: Arc<dyn Node>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(node.clone(), limits.operations);
    let admission = Admission::new(limits);
    info!(node = node.name(), addr = %listener.local_addr()?, version = VERSION, ?limits, "agent listening (mutual TLS)");
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
        let admitted = match admission.admit(peer.ip()) {
            Ok(a) => a,
            Err(why) => {
                // Debug only: a flood would otherwise fill the log.
                debug!(%peer, "connection closed unread: {why}");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(connection(tcp, peer, acceptor, app, admitted, limits));
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    mut admitted: Admitted,
    limits: Limits,
) {
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await;
    admitted.handshake = None;
    let tls = match handshake {
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
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        debug!(%peer, "connection ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(connections: usize, handshakes: usize, per_peer: usize) -> Limits {
        Limits { connections, handshakes, handshakes_per_peer: per_peer, ..Limits::default() }
    }

    #[test]
    fn one_address_gets_its_share_of_handshakes_and_others_keep_theirs() {
        let admission = Admission::new(limits(100, 10, 2));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = [admission.admit(a).unwrap(), admission.admit(a).unwrap()];
        assert_eq!(admission.admit(a).err(), Some("too many handshakes from this address"));
        let other = admission.admit(b).unwrap();
        // A finished handshake gives its place back; the connection keeps its own.
        let [mut one, _two] = first;
        one.handshake = None;
        assert!(admission.admit(a).is_ok());
        drop(other);
        assert_eq!(admission.connections.available_permits(), 100 - 2, "one and _two are still open");
    }

    #[test]
    fn handshakes_and_connections_are_bounded_in_all() {
        let admission = Admission::new(limits(3, 2, 8));
        let peer = |i: u8| IpAddr::from([10, 0, 0, i]);
        let mut open = vec![admission.admit(peer(1)).unwrap(), admission.admit(peer(2)).unwrap()];
        assert_eq!(admission.admit(peer(3)).err(), Some("too many handshakes"));
        for c in &mut open {
            c.handshake = None;
        }
        open.push(admission.admit(peer(3)).unwrap());
        assert_eq!(admission.admit(peer(4)).err(), Some("too many connections"));
        drop(open);
        assert!(admission.admit(peer(4)).is_ok());
        assert!(admission.per_peer.lock().unwrap().len() <= 1, "addresses are forgotten with their handshakes");
    }
}
