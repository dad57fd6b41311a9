//! What the agent's tests share: a cluster CA with a controller certificate, an agent served
//! on a loopback port in front of any `Node`, and the controller's client for it.
#![allow(dead_code)] // each test binary uses its own part

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vnet_te_agent::node::{ContainerRole, ContainerSpec, Node};
use vnet_te_agent::remote::RemoteNode;
use vnet_te_agent::server;
use vnet_te_agent::tls::{self, ClusterCa, IssuedCert};

/// The image of the node tests' idle host containers.
pub const HOST_IMAGE: &str = "vnet-te/host:0.1.0";

/// An idle host container on no Docker network (its own empty namespace: links are made
/// afterwards), with a path's labels, since a node acts only on vnet-te's containers. `test`
/// names the path (`TEST-test`) and goes in the `vnet-te.test` label.
pub fn idle_host(name: &str, test: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        hostname: "h".into(),
        image: HOST_IMAGE.into(),
        role: ContainerRole::Host,
        attachments: Vec::new(),
        files: Vec::new(),
        env: Vec::new(),
        cmd: vec!["sleep".into(), "infinity".into()],
        labels: std::collections::BTreeMap::from([
            ("vnet-te.path".into(), format!("{test}-test")),
            ("vnet-te.role".into(), "host".into()),
            ("vnet-te.test".into(), test.into()),
        ]),
        sysctls: Default::default(),
        devices: Vec::new(),
        limits: Default::default(),
    }
}

pub struct Pki {
    pub ca: ClusterCa,
    pub controller: IssuedCert,
}

impl Pki {
    pub fn new() -> Self {
        let ca = ClusterCa::generate().unwrap();
        let controller = ca.issue_controller("vnet-te controller").unwrap();
        Pki { ca, controller }
    }
    pub fn agent(&self, name: &str) -> IssuedCert {
        self.ca.issue_agent(name, &[], &["127.0.0.1".parse().unwrap()]).unwrap()
    }
}

pub struct Agent {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

pub async fn start_on(listener: TcpListener, cert: &IssuedCert, node: Arc<dyn Node>) -> Agent {
    let addr = listener.local_addr().unwrap();
    let config = tls::server_config(cert).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        server::serve(listener, config, node, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Agent { addr, _stop: stop }
}

pub async fn start(cert: &IssuedCert, node: Arc<dyn Node>) -> Agent {
    start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), cert, node).await
}

pub fn remote(name: &str, addr: SocketAddr, id: &IssuedCert) -> RemoteNode {
    RemoteNode::new(name, addr, &tls::client_config(id).unwrap()).unwrap()
}


/// The real node of this machine's Docker engine, with vnet-te's images; or why not.
pub async fn docker_node(images: &[String]) -> Result<Arc<vnet_te_agent::docker::LocalNode>, String> {
    let node = vnet_te_agent::docker::LocalNode::connect("local").await.map_err(|e| format!("no Docker engine: {e}"))?;
    let present = node.images_present(images).await.map_err(|e| format!("reading images: {e}"))?;
    match present.iter().find(|(_, here)| !**here) {
        Some((missing, _)) => Err(format!("image {missing} is missing (`vnet-te images build`)")),
        None => Ok(Arc::new(node)),
    }
}
