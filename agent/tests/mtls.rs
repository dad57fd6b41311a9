//! The agent service and `RemoteNode` over REAL mutual TLS on 127.0.0.1 ephemeral ports, in
//! front of a logic-only fake `Node` (and, when a Docker engine answers, the real LocalNode).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vnet_te_agent::frr::{BgpSummary, BgpTable, EvpnRoutes, EvpnVnis};
use vnet_te_agent::probe::{parse_interface_counters, InterfaceCounters};
use vnet_te_agent::node::{
    Attachment, ContainerRole, ContainerSpec, FileSpec, Found, NetworkSpec, Node, NodeError, NodeResult, Probe,
};
use vnet_te_agent::remote::RemoteNode;
use vnet_te_agent::server;
use vnet_te_agent::tls::{self, ClusterCa, IssuedCert};

// ---------------------------------------------------------------- fake node

/// Answers from fixed data; counts every operation that reached it.
/// Leaves `write_files` to the trait's default ("not supported by this node").
struct Fake {
    name: String,
    calls: AtomicUsize,
    last_container: Mutex<Option<ContainerSpec>>,
    last_frr_config: Mutex<Option<(String, String, String)>>,
}

impl Fake {
    fn new(name: &str) -> Arc<Self> {
        Arc::new(Fake {
            name: name.into(),
            calls: AtomicUsize::new(0),
            last_container: Mutex::new(None),
            last_frr_config: Mutex::new(None),
        })
    }
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn fixture_table() -> BgpTable {
    let text = include_str!("../fixtures/frr-8.4/show-bgp-ipv4-unicast.json");
    BgpTable::parse(text).unwrap()
}

fn fixture_evpn() -> EvpnRoutes {
    EvpnRoutes::parse(include_str!("../fixtures/frr-8.4/show-bgp-l2vpn-evpn.json")).unwrap()
}

fn fixture_vnis() -> EvpnVnis {
    EvpnVnis::parse(include_str!("../fixtures/frr-8.4/show-evpn-vni.json")).unwrap()
}

fn fixture_counters() -> Vec<InterfaceCounters> {
    parse_interface_counters(include_str!("../fixtures/frr-8.4/ip-s-j-addr-show.json")).unwrap()
}

#[async_trait]
impl Node for Fake {
    fn name(&self) -> &str {
        &self.name
    }
    async fn images_present(&self, refs: &[String]) -> NodeResult<BTreeMap<String, bool>> {
        self.hit();
        Ok(refs.iter().map(|r| (r.clone(), r.starts_with("vnet-te/"))).collect())
    }
    async fn taken_subnets(&self) -> NodeResult<Vec<String>> {
        self.hit();
        Ok(vec!["172.17.0.0/16".into(), "10.199.0.0/29".into()])
    }
    async fn find_containers(&self, label: &str, value: Option<&str>) -> NodeResult<Vec<Found>> {
        self.hit();
        Ok(vec![Found {
            name: format!("{label}={}", value.unwrap_or("*")),
            labels: BTreeMap::from([(label.to_string(), value.unwrap_or("").to_string())]),
            running: value.is_some(),
            subnets: vec![],
        }])
    }
    async fn find_networks(&self, _label: &str, _value: Option<&str>) -> NodeResult<Vec<Found>> {
        self.hit();
        Ok(vec![])
    }
    async fn create_network(&self, spec: &NetworkSpec) -> NodeResult<()> {
        self.hit();
        Err(NodeError::Failed { doing: format!("creating network {}", spec.name), message: "subnet overlaps".into() })
    }
    async fn remove_network(&self, name: &str) -> NodeResult<()> {
        self.hit();
        if name == "boom" {
            return Err(NodeError::Failed {
                doing: "removing network boom".into(),
                message: "network boom has active endpoints".into(),
            });
        }
        Ok(())
    }
    async fn create_container(&self, spec: &ContainerSpec) -> NodeResult<()> {
        self.hit();
        *self.last_container.lock().unwrap() = Some(spec.clone());
        Ok(())
    }
    async fn start_container(&self, name: &str) -> NodeResult<()> {
        self.hit();
        Err(NodeError::NotRunning { doing: format!("starting {name}"), container: name.into() })
    }
    async fn remove_container(&self, _name: &str) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn read_file(&self, container: &str, path: &str) -> NodeResult<Option<String>> {
        self.hit();
        Ok((path == "/etc/frr/frr.conf").then(|| format!("! {container}\nrouter bgp 65001\n")))
    }
    async fn bgp_table(&self, _router: &str) -> NodeResult<BgpTable> {
        self.hit();
        Ok(fixture_table())
    }
    async fn bgp_summary(&self, _router: &str) -> NodeResult<BgpSummary> {
        self.hit();
        Ok(BgpSummary::parse("not json")?)
    }
    async fn traceroute(&self, host: &str, target: Ipv4Addr, max_hops: u32) -> NodeResult<Probe> {
        self.hit();
        Ok(Probe { success: true, output: format!("{host} -> {target} in {max_hops}") })
    }
    async fn ping(&self, host: &str, target: Ipv4Addr, size: Option<u32>, dont_fragment: bool) -> NodeResult<Probe> {
        self.hit();
        Ok(Probe { success: !dont_fragment, output: format!("{host} {target} {size:?}") })
    }
    async fn bridge_forwarding(&self, _enable: bool) -> NodeResult<()> {
        self.hit();
        Ok(())
    }
    async fn bgp_evpn_routes(&self, _router: &str) -> NodeResult<EvpnRoutes> {
        self.hit();
        Ok(fixture_evpn())
    }
    async fn evpn_vnis(&self, _router: &str) -> NodeResult<EvpnVnis> {
        self.hit();
        Ok(fixture_vnis())
    }
    async fn interface_counters(&self, _container: &str) -> NodeResult<Vec<InterfaceCounters>> {
        self.hit();
        Ok(fixture_counters())
    }
    async fn apply_frr_config(&self, router: &str, config: &str, remove: &str) -> NodeResult<()> {
        self.hit();
        *self.last_frr_config.lock().unwrap() = Some((router.into(), config.into(), remove.into()));
        Ok(())
    }
}

// ---------------------------------------------------------------- harness

struct Pki {
    ca: ClusterCa,
    controller: IssuedCert,
}

impl Pki {
    fn new() -> Self {
        let ca = ClusterCa::generate().unwrap();
        let controller = ca.issue_controller("vnet-te controller").unwrap();
        Pki { ca, controller }
    }
    fn agent(&self, name: &str) -> IssuedCert {
        self.ca.issue_agent(name, &[], &["127.0.0.1".parse().unwrap()]).unwrap()
    }
}

struct Agent {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_on(listener: TcpListener, cert: &IssuedCert, node: Arc<dyn Node>) -> Agent {
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

async fn start(cert: &IssuedCert, node: Arc<dyn Node>) -> Agent {
    start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), cert, node).await
}

fn remote(name: &str, addr: SocketAddr, id: &IssuedCert) -> RemoteNode {
    RemoteNode::new(name, addr, &tls::client_config(id).unwrap()).unwrap()
}

/// The error and all its causes, including those io::Error keeps to itself.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(" | ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

fn failed(e: NodeError) -> (String, String) {
    match e {
        NodeError::Failed { doing, message } => (doing, message),
        other => panic!("expected NodeError::Failed, got {other:?}"),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn valid_controller_gets_health_and_round_trips_results_and_errors() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    let n1 = remote("n1", agent.addr, &pki.controller);
    let at = format!("node n1 ({})", agent.addr);

    let h = n1.health().await.unwrap();
    assert_eq!(h.node, "n1");
    assert_eq!(h.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(fake.calls(), 0, "health does not touch the node");

    assert_eq!(n1.taken_subnets().await.unwrap(), vec!["172.17.0.0/16", "10.199.0.0/29"]);
    let imgs = n1.images_present(&["vnet-te/frr".into(), "other".into()]).await.unwrap();
    assert_eq!(imgs, BTreeMap::from([("other".to_string(), false), ("vnet-te/frr".to_string(), true)]));
    let found = n1.find_containers("vnet-te.path", Some("p1")).await.unwrap();
    assert_eq!(found[0].name, "vnet-te.path=p1");
    assert!(found[0].running);
    let found = n1.find_containers("vnet-te.path", None).await.unwrap();
    assert_eq!(found[0].name, "vnet-te.path=*");
    assert!(!found[0].running);
    assert_eq!(n1.find_networks("x", None).await.unwrap(), vec![]);
    assert_eq!(n1.read_file("r1", "/etc/frr/frr.conf").await.unwrap().as_deref(), Some("! r1\nrouter bgp 65001\n"));
    assert_eq!(n1.read_file("r1", "/nope").await.unwrap(), None);
    let table = n1.bgp_table("r1").await.unwrap();
    assert_eq!(table, fixture_table());
    assert!(!table.routes.is_empty());
    let p = n1.traceroute("src", Ipv4Addr::new(10, 210, 1, 2), 24).await.unwrap();
    assert_eq!(p, Probe { success: true, output: "src -> 10.210.1.2 in 24".into() });
    let p = n1.ping("src", Ipv4Addr::new(10, 0, 0, 1), Some(1400), true).await.unwrap();
    assert_eq!(p, Probe { success: false, output: "src 10.0.0.1 Some(1400)".into() });
    n1.remove_network("fine").await.unwrap();
    n1.remove_container("c").await.unwrap();
    n1.bridge_forwarding(true).await.unwrap();

    // Errors come back with the agent's message, prefixed with the node and its address.
    let (doing, message) = failed(n1.remove_network("boom").await.unwrap_err());
    assert_eq!(doing, format!("{at}: removing network boom"));
    assert_eq!(message, "network boom has active endpoints");
    let (doing, message) = failed(
        n1.create_network(&NetworkSpec {
            name: "l1".into(),
            driver: "bridge".into(),
            subnet: "10.199.0.0/29".into(),
            gateway: "10.199.0.1".into(),
            ip_range: "10.199.0.0/30".into(),
            bridge_name: Some("vte1".into()),
            mtu: None,
            labels: BTreeMap::new(),
        })
        .await
        .unwrap_err(),
    );
    assert_eq!((doing.as_str(), message.as_str()), (format!("{at}: creating network l1").as_str(), "subnet overlaps"));
    match n1.start_container("r9").await.unwrap_err() {
        NodeError::NotRunning { doing, container } => {
            assert_eq!(doing, format!("{at}: starting r9"));
            assert_eq!(container, "r9");
        }
        other => panic!("expected NotRunning, got {other:?}"),
    }
    let (doing, message) = failed(n1.bgp_summary("r1").await.unwrap_err());
    assert!(doing.starts_with(&at), "{doing}");
    assert!(message.contains("show bgp summary json"), "{message}");

    // The operations added with EVPN and `path update`.
    let evpn = n1.bgp_evpn_routes("r1").await.unwrap();
    assert_eq!(evpn, fixture_evpn());
    assert!(!evpn.routes.is_empty());
    let vnis = n1.evpn_vnis("r1").await.unwrap();
    assert_eq!(vnis, fixture_vnis());
    assert!(!vnis.vnis.is_empty());
    let counters = n1.interface_counters("r1").await.unwrap();
    assert_eq!(counters, fixture_counters());
    assert!(!counters.is_empty());
    n1.apply_frr_config("r1", "router bgp 65001\n", "no route-map X\n").await.unwrap();
    assert_eq!(
        fake.last_frr_config.lock().unwrap().clone(),
        Some(("r1".into(), "router bgp 65001\n".into(), "no route-map X\n".into()))
    );
    // An operation the node leaves to the trait's default: the agent's refusal comes back.
    let files = [FileSpec { path: "/etc/vnet-te/x".into(), mode: 0o644, content: "x".into() }];
    let (doing, message) = failed(n1.write_files("h1", &files).await.unwrap_err());
    assert_eq!(doing, format!("{at}: writing files into h1"));
    assert_eq!(message, "not supported by this node");
    assert_eq!(fake.calls(), 21);
}

#[tokio::test]
async fn large_container_specs_cross_intact() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    let n1 = remote("n1", agent.addr, &pki.controller);
    // Well past axum's 2 MiB default body limit.
    let big: String = "router bgp 65001\n".repeat(300_000);
    let spec = ContainerSpec {
        name: "r1".into(),
        hostname: "r1".into(),
        image: "vnet-te/frr".into(),
        role: ContainerRole::Router,
        attachments: vec![Attachment { network: "l1".into(), address: Ipv4Addr::new(10, 199, 0, 2) }],
        files: vec![FileSpec { path: "/etc/frr/frr.conf".into(), mode: 0o640, content: big }],
        env: vec!["VNET_TE_F0=x".into()],
        cmd: vec!["/usr/lib/frr/frrinit.sh".into(), "start".into()],
        labels: BTreeMap::from([("vnet-te.path".into(), "p1".into())]),
    };
    assert!(serde_json::to_vec(&spec).unwrap().len() > 5 * 1024 * 1024);
    n1.create_container(&spec).await.unwrap();
    assert_eq!(fake.last_container.lock().unwrap().as_ref(), Some(&spec));
}

#[tokio::test]
async fn unknown_operations_do_not_exist() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls::client_config(&pki.controller).unwrap())
        .resolve("n1", agent.addr)
        .build()
        .unwrap();
    let url = |op: &str| format!("https://n1:{}/v1/{op}", agent.addr.port());
    for op in ["exec", "shell", "run"] {
        let r = client.post(url(op)).body(r#"{"cmd":["id"]}"#).send().await.unwrap();
        assert_eq!(r.status(), 404, "{op}");
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(body["kind"], "unknown_operation");
    }
    // Malformed arguments: a JSON error body, the node is not called.
    let r = client.post(url("remove_network")).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["kind"], "bad_request");
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn handshake_without_client_certificate_fails_with_no_response() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;

    // Raw TLS: trusts the CA, presents nothing.
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(pki.ca.cert_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(agent.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("n1").unwrap();
    // TLS 1.3: the client may consider its side done before the server judged its (empty)
    // certificate; the refusal then arrives as an alert on the first read.
    let outcome = async {
        let mut s = connector.connect(name, tcp).await?;
        s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: n1\r\n\r\n").await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    }
    .await;
    let err = match outcome {
        Ok(bytes) => panic!("the agent answered without a client certificate: {:?}", String::from_utf8_lossy(&bytes)),
        Err(e) => e,
    };
    let rustls_err = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(rustls_err, Some(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired))),
        "expected a certificate_required alert, got {err:?}"
    );

    // Through reqwest too: an error, never a response.
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut r = rustls::RootCertStore::empty();
            for c in rustls_pki_types::pem::PemObject::pem_slice_iter(pki.ca.cert_pem().as_bytes()) {
                r.add(c.unwrap()).unwrap();
            }
            r
        })
        .with_no_client_auth();
    let client = reqwest::Client::builder().tls_backend_preconfigured(config).resolve("n1", agent.addr).build().unwrap();
    let e = client.get(format!("https://n1:{}/v1/health", agent.addr.port())).send().await.unwrap_err();
    assert!(chain(&e).contains("CertificateRequired"), "{}", chain(&e));
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let other = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    // Trusts our CA (so the server is accepted) but presents a certificate of another CA.
    let id = IssuedCert { ca_pem: pki.ca.cert_pem().to_string(), ..other.controller.clone() };
    let n1 = remote("n1", agent.addr, &id);
    let started = Instant::now();
    let (doing, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert_eq!(doing, format!("node n1 ({}): listing subnets", agent.addr));
    assert!(message.contains("received fatal alert: UnknownCA"), "{message}");
    assert!(!message.contains("attempts"), "TLS refusals are not retried: {message}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn agent_certificate_cannot_act_as_a_client() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    // Same CA, but serverAuth only: a compromised agent cannot drive another one.
    let n1 = remote("n1", agent.addr, &pki.agent("n2"));
    let (_, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert!(message.contains("received fatal alert"), "{message}");
    assert!(!message.contains("attempts"), "TLS refusals are not retried: {message}");
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn client_trusting_another_ca_refuses_the_agent() {
    let pki = Pki::new();
    let other = Pki::new();
    let fake = Fake::new("n1");
    let agent = start(&pki.agent("n1"), fake.clone()).await;
    // A valid controller certificate, but trusting only another CA.
    let id = IssuedCert { ca_pem: other.ca.cert_pem().to_string(), ..pki.controller.clone() };
    let n1 = remote("n1", agent.addr, &id);
    let (doing, message) = failed(n1.health().await.unwrap_err());
    assert!(doing.starts_with(&format!("node n1 ({})", agent.addr)), "{doing}");
    assert!(message.contains("invalid peer certificate: UnknownIssuer"), "{message}");
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn agent_with_another_nodes_certificate_is_refused() {
    let pki = Pki::new();
    let fake = Fake::new("n1");
    // n2's certificate (which also covers 127.0.0.1) served where the controller expects n1.
    let agent = start(&pki.agent("n2"), fake.clone()).await;
    let n1 = remote("n1", agent.addr, &pki.controller);
    let (_, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert!(message.contains("certificate not valid for name \"n1\""), "{message}");
    assert!(!message.contains("attempts"), "TLS refusals are not retried: {message}");
    assert_eq!(fake.calls(), 0);
    // Named as the certificate says, it works.
    assert_eq!(remote("n2", agent.addr, &pki.controller).taken_subnets().await.unwrap().len(), 2);
}

#[tokio::test]
async fn idempotent_reads_retry_until_the_agent_is_up_and_creations_do_not() {
    let pki = Pki::new();
    // A port that nobody listens on (yet).
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();

    let n1 = remote("n1", addr, &pki.controller);
    let started = Instant::now();
    let (doing, message) = failed(n1.start_container("r1").await.unwrap_err());
    assert_eq!(doing, format!("node n1 ({addr}): starting container r1"));
    assert!(!message.contains("attempts"), "{message}");
    assert!(started.elapsed() < Duration::from_millis(500), "no backoff for a creation");

    let (doing, message) = failed(n1.taken_subnets().await.unwrap_err());
    assert_eq!(doing, format!("node n1 ({addr}): listing subnets"));
    assert!(message.contains(&format!("after {} attempts", vnet_te_agent::remote::ATTEMPTS)), "{message}");

    // The agent comes up while the client is backing off: the read succeeds.
    let fake = Fake::new("n1");
    let cert = pki.agent("n1");
    let late = tokio::spawn({
        let fake = fake.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            start_on(TcpListener::bind(addr).await.unwrap(), &cert, fake).await
        }
    });
    assert_eq!(n1.taken_subnets().await.unwrap().len(), 2);
    assert_eq!(fake.calls(), 1);
    drop(late.await.unwrap());
}

#[tokio::test]
async fn real_local_node_through_the_agent_when_docker_answers() {
    let docker_up = std::process::Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !docker_up {
        println!("SKIP real_local_node_through_the_agent_when_docker_answers: no Docker engine answers `docker info`");
        return;
    }
    let local = match vnet_te_agent::docker::LocalNode::connect("local").await {
        Ok(l) => Arc::new(l),
        Err(e) => {
            println!("SKIP real_local_node_through_the_agent_when_docker_answers: {e}");
            return;
        }
    };
    let pki = Pki::new();
    let agent = start(&pki.agent("local"), local.clone()).await;
    let remote = remote("local", agent.addr, &pki.controller);
    assert_eq!(remote.health().await.unwrap().node, "local");
    // Other processes may create or remove networks meanwhile: compare sorted, a few tries.
    let mut same = false;
    for _ in 0..3 {
        let mut direct = local.taken_subnets().await.unwrap();
        let mut via_agent = remote.taken_subnets().await.unwrap();
        assert!(!direct.is_empty(), "the default bridge network has a subnet");
        direct.sort();
        via_agent.sort();
        if direct == via_agent {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(same, "taken_subnets through the agent differs from LocalNode's");
    // A read of an absent container comes back as the agent's Docker error.
    let (doing, message) = failed(remote.bgp_table("vnet-te-no-such-container-xyz").await.unwrap_err());
    assert!(doing.starts_with(&format!("node local ({})", agent.addr)), "{doing}");
    assert!(message.to_lowercase().contains("no such container"), "{message}");
}

/// The `Node` trait's methods, read from its source: methods added with a default compile
/// without the agent or `RemoteNode` knowing them, so this test catches one forgotten.
fn trait_methods() -> Vec<String> {
    let src = include_str!("../src/node.rs");
    let start = src.find("pub trait Node").expect("trait Node in node.rs");
    let body = &src[start..];
    let body = &body[..body.find("\n}\n").expect("end of trait Node")];
    body.match_indices("async fn ")
        .map(|(i, _)| {
            let rest = &body[i + "async fn ".len()..];
            rest[..rest.find(['(', '<']).unwrap()].to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_node_method_has_a_route_and_a_remote_forwarder() {
    let methods = trait_methods();
    assert!(methods.len() >= 15 && methods.iter().any(|m| m == "taken_subnets"), "{methods:?}");
    let remote_src = include_str!("../src/remote.rs");
    let pki = Pki::new();
    let agent = start(&pki.agent("n1"), Fake::new("n1")).await;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls::client_config(&pki.controller).unwrap())
        .resolve("n1", agent.addr)
        .build()
        .unwrap();
    for m in &methods {
        assert!(remote_src.contains(&format!("async fn {m}(")), "RemoteNode does not forward Node::{m}");
        let r = client
            .post(format!("https://n1:{}/v1/{m}", agent.addr.port()))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 404, "the agent has no route for Node::{m}");
    }
}
