//! The cluster PKI: one CA per cluster, a server certificate per agent, a client certificate
//! for the controller, and the rustls configurations that make every connection mutual TLS.
//!
//! - The CA is self-signed (path length 0: it signs leaves only) and lives as `ca.pem` and
//!   `ca-key.pem` in a directory on the controller's machine.
//! - An agent certificate has CN = node name, the node name as a DNS SAN (the controller
//!   verifies the agent *as that node*, see `remote`) plus the DNS names and IP addresses
//!   given, and the serverAuth EKU only: it cannot act as a client of another agent.
//! - The controller certificate has the clientAuth EKU only.
//! - Issued material is saved as `cert.pem`, `key.pem` and `ca.pem` in one directory.
//! - Both ends check the peer's certificate against the cluster's revocation list
//!   (`revocation`) at the handshake, after the chain.
//!
//! Key files are written with mode 0600. Only the `ring` provider is used, TLS 1.3 only
//! (both ends are ours).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::revocation::{RevocationList, Revocations};

/// File names in a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// File names in an agent's or the controller's certificate directory.
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// Subject CN of a generated cluster CA, followed by a random tag so that two clusters' CAs
/// never share a name (a certificate of the other one is then an unknown issuer, not a bad
/// signature).
pub const CA_COMMON_NAME: &str = "vnet-te cluster CA";
/// Validity of the CA certificate.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// Validity of an agent's certificate (`vnet-te node reissue` replaces it).
pub const AGENT_VALIDITY_DAYS: i64 = 365;
/// Validity of the controller's certificate: it is root on every node, so it is short-lived
/// (`vnet-te cluster rotate` replaces it, also once it has expired).
pub const CONTROLLER_VALIDITY_DAYS: i64 = 90;

#[derive(Debug, thiserror::Error)]
#[error("{doing}: {message}")]
pub struct TlsError {
    pub doing: String,
    pub message: String,
}

pub type TlsResult<T> = Result<T, TlsError>;

fn fail<E: std::fmt::Display>(doing: impl Into<String>) -> impl FnOnce(E) -> TlsError {
    let doing = doing.into();
    move |e| TlsError { doing, message: e.to_string() }
}

/// The only crypto provider we build with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether a node name is a DNS name: then it is a SAN of the agent's certificate and the
/// name the controller checks the agent against (see `remote`). Not when it reads as an
/// address (`10`, `10.0.0.1`).
pub fn name_is_dns(name: &str) -> bool {
    name.parse::<IpAddr>().is_err()
        && !name.rsplit('.').next().unwrap_or("").chars().all(|c| c.is_ascii_digit())
        && rustls_pki_types::DnsName::try_from(name).is_ok()
}

/// The cluster certificate authority (certificate and signing key).
pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A certificate issued by the cluster CA, with its private key and the CA certificate,
/// all PEM: what one agent or the controller needs to speak mutual TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("IssuedCert").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// When the (first) certificate in `cert_pem` expires, in seconds since the Unix epoch.
pub fn not_after_unix(cert_pem: &str) -> TlsResult<i64> {
    let doing = "reading a certificate's validity";
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(fail(doing))?;
    let cert = pem.parse_x509().map_err(fail(doing))?;
    Ok(cert.validity().not_after.timestamp())
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // An hour back: tolerate clocks of the cluster's machines that lag a little.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "vnet-te");
    dn.push(DnType::CommonName, common_name);
    dn
}

impl ClusterCa {
    /// A new self-signed CA (ECDSA P-256, CA constraints with path length 0, ~10 years).
    pub fn generate() -> TlsResult<Self> {
        let doing = "generating the cluster CA";
        let key = KeyPair::generate().map_err(fail(doing))?;
        let mut params = CertificateParams::default();
        let tag: String = key.public_key_raw().iter().rev().take(6).map(|b| format!("{b:02x}")).collect();
        params.distinguished_name = dn(&format!("{CA_COMMON_NAME} {tag}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut params, CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key).map_err(fail(doing))?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// A CA from its PEM certificate and PEM (PKCS#8) private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> TlsResult<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(fail("reading the CA private key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(fail("reading the CA certificate"))?;
        Ok(ClusterCa { cert_pem: cert_pem.to_string(), issuer })
    }

    /// Loads `ca.pem` and `ca-key.pem` from `dir`.
    pub fn load(dir: &Path) -> TlsResult<Self> {
        let cert = read(&dir.join(CA_CERT_FILE))?;
        let key = read(&dir.join(CA_KEY_FILE))?;
        Self::from_pem(&cert, &key)
    }

    /// Saves `ca.pem` (0644) and `ca-key.pem` (0600) into `dir`, creating it.
    pub fn save(&self, dir: &Path) -> TlsResult<()> {
        create_dir(dir)?;
        write(&dir.join(CA_KEY_FILE), &self.issuer.key().serialize_pem(), 0o600)?;
        write(&dir.join(CA_CERT_FILE), &self.cert_pem, 0o644)
    }

    /// Loads the CA from `dir`, or generates and saves one when `dir` has no `ca.pem`.
    /// The flag says whether it was generated.
    pub fn load_or_generate(dir: &Path) -> TlsResult<(Self, bool)> {
        if dir.join(CA_CERT_FILE).exists() {
            return Ok((Self::load(dir)?, false));
        }
        let ca = Self::generate()?;
        ca.save(dir)?;
        Ok((ca, true))
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for the agent of `node_name`: CN and a DNS SAN = `node_name`
    /// (when it is a valid DNS name), plus every DNS name and IP address given.
    pub fn issue_agent(&self, node_name: &str, dns_names: &[String], ips: &[IpAddr]) -> TlsResult<IssuedCert> {
        let doing = format!("issuing the agent certificate of node {node_name}");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(node_name);
        let mut names: Vec<&str> = Vec::new();
        if name_is_dns(node_name) {
            names.push(node_name);
        }
        for d in dns_names {
            if !names.contains(&d.as_str()) {
                names.push(d);
            }
        }
        for d in names {
            let name = d.try_into().map_err(|e| TlsError { doing: doing.clone(), message: format!("DNS name {d:?}: {e}") })?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        if params.subject_alt_names.is_empty() {
            return Err(TlsError { doing, message: format!("{node_name:?} is not a DNS name and no other name or address was given") });
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, &doing, AGENT_VALIDITY_DAYS)
    }

    /// A client certificate for the controller (clientAuth EKU, no SAN).
    pub fn issue_controller(&self, common_name: &str) -> TlsResult<IssuedCert> {
        let doing = format!("issuing the controller certificate {common_name:?}");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, &doing, CONTROLLER_VALIDITY_DAYS)
    }

    fn issue(&self, mut params: CertificateParams, doing: &str, days: i64) -> TlsResult<IssuedCert> {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, days);
        let key = KeyPair::generate().map_err(fail(doing))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(fail(doing))?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), ca_pem: self.cert_pem.clone() })
    }
}

impl IssuedCert {
    /// Saves `cert.pem`, `key.pem` (0600) and `ca.pem` into `dir`, creating it.
    pub fn save(&self, dir: &Path) -> TlsResult<()> {
        create_dir(dir)?;
        write(&dir.join(KEY_FILE), &self.key_pem, 0o600)?;
        write(&dir.join(CERT_FILE), &self.cert_pem, 0o644)?;
        write(&dir.join(CA_CERT_FILE), &self.ca_pem, 0o644)
    }

    /// Loads `cert.pem`, `key.pem` and `ca.pem` from `dir`.
    pub fn load(dir: &Path) -> TlsResult<Self> {
        Ok(IssuedCert { cert_pem: read(&dir.join(CERT_FILE))?, key_pem: read(&dir.join(KEY_FILE))?, ca_pem: read(&dir.join(CA_CERT_FILE))? })
    }

    /// The files `load` needs that are missing from `dir`.
    pub fn missing_files(dir: &Path) -> Vec<PathBuf> {
        [CERT_FILE, KEY_FILE, CA_CERT_FILE].iter().map(|f| dir.join(f)).filter(|p| !p.exists()).collect()
    }

    fn chain(&self) -> TlsResult<Vec<CertificateDer<'static>>> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(fail("reading the certificate"))?;
        if chain.is_empty() {
            return Err(TlsError { doing: "reading the certificate".into(), message: "no PEM certificate found".into() });
        }
        Ok(chain)
    }

    fn key(&self) -> TlsResult<PrivateKeyDer<'static>> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(fail("reading the private key"))
    }

    fn roots(&self) -> TlsResult<Arc<RootCertStore>> {
        let doing = "reading the cluster CA certificate";
        let mut roots = RootCertStore::empty();
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.map_err(fail(doing))?).map_err(fail(doing))?;
            n += 1;
        }
        if n == 0 {
            return Err(TlsError { doing: doing.into(), message: "no PEM certificate found".into() });
        }
        Ok(Arc::new(roots))
    }
}

/// The agent's rustls configuration: presents `id` and REQUIRES a client certificate that
/// chains to the cluster CA (`id.ca_pem`) and allows client authentication.
pub fn server_config(id: &IssuedCert) -> TlsResult<Arc<ServerConfig>> {
    server_config_with(id, Arc::new(Revocations::Fixed(Arc::default())))
}

/// [`server_config`], refusing every client certificate on `revoked` at the handshake.
pub fn server_config_with(id: &IssuedCert, revoked: Arc<Revocations>) -> TlsResult<Arc<ServerConfig>> {
    let doing = "building the agent TLS configuration";
    let inner = WebPkiClientVerifier::builder_with_provider(id.roots()?, provider()).build().map_err(fail(doing))?;
    let verifier = Arc::new(UnrevokedClient { inner, revoked });
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(fail(doing))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain()?, id.key()?)
        .map_err(fail(doing))?;
    Ok(Arc::new(config))
}

/// The controller's rustls configuration: trusts only the cluster CA (`id.ca_pem`) and
/// presents `id` as its client certificate.
pub fn client_config(id: &IssuedCert) -> TlsResult<ClientConfig> {
    client_config_with(id, RevocationList::default())
}

/// [`client_config`], refusing every agent whose certificate is on `revoked`.
pub fn client_config_with(id: &IssuedCert, revoked: RevocationList) -> TlsResult<ClientConfig> {
    let doing = "building the controller TLS configuration";
    let inner = WebPkiServerVerifier::builder_with_provider(id.roots()?, provider()).build().map_err(fail(doing))?;
    let verifier = Arc::new(UnrevokedServer { inner, revoked: Revocations::Fixed(Arc::new(revoked)) });
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(fail(doing))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(id.chain()?, id.key()?)
        .map_err(fail(doing))
}

/// The refusal of a revoked certificate: the peer gets a `certificate_revoked` alert.
fn revoked_error(reason: String) -> rustls::Error {
    if reason.contains(" is revoked ") {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
    } else {
        rustls::Error::General(reason)
    }
}

/// The cluster CA's client verification, then the revocation list.
#[derive(Debug)]
struct UnrevokedClient {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Arc<Revocations>,
}

impl ClientCertVerifier for UnrevokedClient {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if let Err(reason) = self.revoked.check(end_entity) {
            tracing::warn!("client certificate refused: {reason}");
            return Err(revoked_error(reason));
        }
        Ok(verified)
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The cluster CA's server verification, then the revocation list.
#[derive(Debug)]
struct UnrevokedServer {
    inner: Arc<WebPkiServerVerifier>,
    revoked: Revocations,
}

impl ServerCertVerifier for UnrevokedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.revoked.check(end_entity).map_err(revoked_error)?;
        Ok(verified)
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn read(path: &Path) -> TlsResult<String> {
    fs::read_to_string(path).map_err(fail(format!("reading {}", path.display())))
}

fn create_dir(dir: &Path) -> TlsResult<()> {
    fs::create_dir_all(dir).map_err(fail(format!("creating {}", dir.display())))
}

/// Writes `content` with `mode`, also when the file already existed with another mode.
fn write(path: &Path, content: &str, mode: u32) -> TlsResult<()> {
    let doing = format!("writing {}", path.display());
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path).map_err(fail(&doing))?;
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(fail(&doing))?;
    f.write_all(content.as_bytes()).map_err(fail(&doing))?;
    f.sync_all().map_err(fail(&doing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_roundtrips_through_a_directory_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, generated) = ClusterCa::load_or_generate(dir.path()).unwrap();
        assert!(generated);
        let mode = |f: &str| fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(CA_KEY_FILE), 0o600);
        assert_eq!(mode(CA_CERT_FILE), 0o644);
        let (again, generated) = ClusterCa::load_or_generate(dir.path()).unwrap();
        assert!(!generated);
        assert_eq!(again.cert_pem(), ca.cert_pem());

        // A certificate issued by the reloaded CA is trusted by a config built from the
        // original CA's certificate (same issuer name and key).
        let agent = again.issue_agent("n1", &[], &["127.0.0.1".parse().unwrap()]).unwrap();
        assert_eq!(agent.ca_pem, ca.cert_pem());
        let out = dir.path().join("n1");
        agent.save(&out).unwrap();
        assert_eq!(fs::metadata(out.join(KEY_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(IssuedCert::load(&out).unwrap(), agent);
        assert!(IssuedCert::missing_files(&out).is_empty());
        server_config(&agent).unwrap();
        client_config(&ca.issue_controller("controller").unwrap()).unwrap();
    }

    #[test]
    fn node_names_that_are_dns_names() {
        assert!(name_is_dns("n1"));
        assert!(name_is_dns("node-2.lab"));
        assert!(!name_is_dns("10.0.0.1"));
        assert!(!name_is_dns("10"));
        assert!(!name_is_dns("a b"));
        assert!(!name_is_dns("::1"));
    }

    #[test]
    fn agent_without_any_usable_name_is_refused() {
        let ca = ClusterCa::generate().unwrap();
        let e = ca.issue_agent("not a dns name", &[], &[]).unwrap_err();
        assert!(e.message.contains("not a DNS name"), "{e}");
        // With an address it is fine.
        ca.issue_agent("not a dns name", &[], &["10.0.0.1".parse().unwrap()]).unwrap();
    }

    #[test]
    fn broken_pem_is_reported_with_what_was_read() {
        let e = ClusterCa::from_pem("garbage", "garbage").unwrap_err();
        assert!(e.doing.contains("CA private key"), "{e}");
    }
}
