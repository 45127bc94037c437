//! Who is at each end of a node link: one certificate per storage node and
//! per gateway, issued by a certificate authority of the cluster's own
//! (`coffre cluster ca`, `coffre cluster issue`), and the mutual-TLS rules
//! built on them.
//!
//! An identity is a DNS name under the reserved `.invalid` top-level domain
//! (RFC 6761: it never resolves, so it can name nothing but a Coffre
//! identity): `ID.node.coffre.invalid` for the node serving target `ID`,
//! `NAME.gateway.coffre.invalid` for a gateway. Node certificates carry the
//! serverAuth extended key usage only and gateway certificates clientAuth
//! only, and the CA is name-constrained to `coffre.invalid`, so:
//!
//! - a node accepts only clients whose certificate chains to the cluster CA
//!   and names a gateway (a node's certificate cannot act as a gateway);
//! - a gateway accepts only the node whose certificate names the target it
//!   dialled (a node cannot serve under another target's name);
//! - both ends are then authenticated by the channel, replies included.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};

/// The domain every identity lives under; the CA may sign nothing else.
pub const DOMAIN: &str = "coffre.invalid";
/// File names in an identity directory (`coffre cluster issue --out`).
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
/// The CA's private key, in the directory of `coffre cluster ca` only.
pub const CA_KEY_FILE: &str = "ca.key";
/// How long an issued certificate is valid unless told otherwise.
pub const DEFAULT_DAYS: u32 = 825;
/// How long the CA is valid.
const CA_DAYS: u32 = 3650;

/// The party a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The storage node serving this target id.
    Node(String),
    /// A gateway of this name.
    Gateway(String),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Node(id) => write!(f, "node {id}"),
            Identity::Gateway(name) => write!(f, "gateway {name}"),
        }
    }
}

impl Identity {
    /// A node identity for target `id`, if `id` can be put in a certificate.
    pub fn node(id: &str) -> Result<Self, String> {
        check_label(id).map_err(|why| format!("target id {id:?} {why}"))?;
        Ok(Identity::Node(id.to_owned()))
    }

    pub fn gateway(name: &str) -> Result<Self, String> {
        check_label(name).map_err(|why| format!("gateway name {name:?} {why}"))?;
        Ok(Identity::Gateway(name.to_owned()))
    }

    /// The DNS name in the certificate's subjectAltName.
    pub fn dns_name(&self) -> String {
        match self {
            Identity::Node(id) => format!("{id}.node.{DOMAIN}"),
            Identity::Gateway(name) => format!("{name}.gateway.{DOMAIN}"),
        }
    }

    fn from_dns_name(name: &str) -> Option<Self> {
        let rest = name.strip_suffix(DOMAIN)?.strip_suffix('.')?;
        let (label, role) = rest.split_once('.')?;
        check_label(label).ok()?;
        match role {
            "node" => Some(Identity::Node(label.to_owned())),
            "gateway" => Some(Identity::Gateway(label.to_owned())),
            _ => None,
        }
    }

    /// The identity a DER certificate names, from its DNS subjectAltNames
    /// (exactly one Coffre identity, or none).
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Option<Self> {
        use x509_cert::der::Decode as _;
        use x509_cert::ext::pkix::SubjectAltName;
        use x509_cert::ext::pkix::name::GeneralName;
        let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
        let (_, names) = cert.tbs_certificate.get::<SubjectAltName>().ok()??;
        let mut found = names.0.iter().filter_map(|n| match n {
            GeneralName::DnsName(dns) => Identity::from_dns_name(dns.as_str()),
            _ => None,
        });
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// Like [`Self::of_certificate`], for messages: what a certificate names.
    fn describe(cert: &CertificateDer<'_>) -> String {
        Self::of_certificate(cert).map_or_else(|| "no Coffre identity".to_owned(), |i| i.to_string())
    }
}

/// One DNS label: what a target id or gateway name must be to be named in a certificate.
fn check_label(label: &str) -> Result<(), &'static str> {
    let ok_chars = label.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if label.is_empty() || label.len() > 63 || !ok_chars || label.starts_with('-') || label.ends_with('-') {
        return Err("cannot be named in a certificate: use 1 to 63 lower-case letters, digits and inner hyphens");
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path, why: impl fmt::Display) -> IdentityError {
    IdentityError::File { path: path.to_owned(), why: why.to_string() }
}

/// Writes `contents` to a new file with `mode`, refusing to replace one.
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), IdentityError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| file_error(path, format!("cannot create it ({e}); nothing was replaced")))?;
    file.write_all(contents.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| file_error(path, e))
}

fn create_dir(dir: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| file_error(dir, e))
}

fn rcgen_error(e: rcgen::Error) -> IdentityError {
    IdentityError::Invalid(format!("making the certificate: {e}"))
}

fn validity(params: &mut rcgen::CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks a little behind the issuer's.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

fn ca_params(common_name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(rcgen::NameConstraints {
        permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName(DOMAIN.to_owned())],
        excluded_subtrees: Vec::new(),
    });
    params
}

/// `coffre cluster ca`: a new CA in `dir` (`ca.pem`, and `ca.key` mode
/// 0600), named `name`. Refuses to replace an existing one.
pub fn create_ca(dir: &Path, name: &str) -> Result<PathBuf, IdentityError> {
    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        return Err(IdentityError::Invalid(format!("CA name {name:?}: letters, digits and hyphens only")));
    }
    create_dir(dir)?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
    let mut params = ca_params(&format!("Coffre cluster CA {name}"));
    validity(&mut params, CA_DAYS);
    let cert = params.self_signed(&key).map_err(rcgen_error)?;
    write_new(&dir.join(CA_KEY_FILE), &key.serialize_pem(), 0o600)?;
    write_new(&dir.join(CA_FILE), &cert.pem(), 0o644)?;
    Ok(dir.join(CA_FILE))
}

/// `coffre cluster issue`: a key and certificate for `identity`, signed by
/// the CA in `ca_dir`, written to `out` with a copy of the CA certificate
/// (the directory a node's or gateway's `[cluster] identity` names).
pub fn issue(ca_dir: &Path, identity: &Identity, out: &Path, days: u32) -> Result<(), IdentityError> {
    let ca_path = ca_dir.join(CA_FILE);
    let ca_pem = std::fs::read_to_string(&ca_path).map_err(|e| file_error(&ca_path, e))?;
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| file_error(&ca_path, e))?;
    let key_path = ca_dir.join(CA_KEY_FILE);
    let ca_key_pem = std::fs::read_to_string(&key_path).map_err(|e| file_error(&key_path, e))?;
    let ca_key = rcgen::KeyPair::from_pem(&ca_key_pem).map_err(|e| file_error(&key_path, e))?;
    let issuer = rcgen::Issuer::new(ca_params(&ca_common_name(&ca_der, &ca_path)?), ca_key);

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
    let mut params = rcgen::CertificateParams::new(vec![identity.dns_name()]).map_err(rcgen_error)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("coffre {identity}"));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match identity {
        Identity::Node(_) => rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        Identity::Gateway(_) => rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| IdentityError::Invalid("no randomness".into()))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    validity(&mut params, days);
    let cert = params.signed_by(&key, &issuer).map_err(rcgen_error)?;
    // Checked like a peer would, so a CA key that does not match its
    // certificate is found now rather than at the first handshake.
    verify_chain(cert.der(), &ca_der, identity).map_err(IdentityError::Invalid)?;

    create_dir(out)?;
    write_new(&out.join(KEY_FILE), &key.serialize_pem(), 0o600)?;
    write_new(&out.join(CERT_FILE), &cert.pem(), 0o644)?;
    write_new(&out.join(CA_FILE), &ca_pem, 0o644)
}

/// The CA certificate's common name (ours are a single CN).
fn ca_common_name(ca: &CertificateDer<'_>, path: &Path) -> Result<String, IdentityError> {
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(ca.as_ref()).map_err(|e| file_error(path, e))?;
    let subject = cert.tbs_certificate.subject.to_string();
    subject
        .strip_prefix("CN=")
        .filter(|cn| cn.starts_with("Coffre cluster CA "))
        .map(str::to_owned)
        .ok_or_else(|| file_error(path, format!("not a CA made by `coffre cluster ca` (subject {subject})")))
}

/// Checks `cert` chains to `ca` and is valid for `identity`'s role and name now.
fn verify_chain(cert: &CertificateDer<'_>, ca: &CertificateDer<'static>, identity: &Identity) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| format!("the CA certificate is not usable: {e}"))?;
    let roots = Arc::new(roots);
    let now = UnixTime::now();
    match identity {
        Identity::Node(_) => {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| e.to_string())?;
            let name = ServerName::try_from(identity.dns_name()).map_err(|e| e.to_string())?;
            verifier.verify_server_cert(cert, &[], &name, &[], now).map(drop).map_err(|e| e.to_string())
        }
        Identity::Gateway(_) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots, provider).build().map_err(|e| e.to_string())?;
            verifier.verify_client_cert(cert, &[], now).map(drop).map_err(|e| e.to_string())?;
            match Identity::of_certificate(cert) {
                Some(found) if found == *identity => Ok(()),
                _ => Err(format!("the certificate names {}, not {identity}", Identity::describe(cert))),
            }
        }
    }
}

/// A refusal with our own words, carried through rustls to the peer's log
/// (ours) and to the error the request gets.
#[derive(Debug)]
struct Refusal(String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

fn refuse(why: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal(why)))))
}

/// This process's place in the cluster: its certificate and key, and the
/// cluster CA it trusts, loaded from an identity directory.
pub struct ClusterTls {
    identity: Identity,
    dir: PathBuf,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: Arc<CryptoProvider>,
    versions: &'static [&'static SupportedProtocolVersion],
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTls").field("identity", &self.identity).field("dir", &self.dir).finish()
    }
}

impl ClusterTls {
    /// Reads `dir` (`ca.pem`, `cert.pem`, `key.pem`) and checks that the
    /// certificate chains to the CA and names a Coffre identity.
    pub fn load(
        dir: &Path,
        provider: Arc<CryptoProvider>,
        versions: &'static [&'static SupportedProtocolVersion],
    ) -> Result<Self, IdentityError> {
        let read_certs = |name: &str| -> Result<Vec<CertificateDer<'static>>, IdentityError> {
            let path = dir.join(name);
            let pem = std::fs::read(&path).map_err(|e| file_error(&path, e))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error(&path, e))?;
            if certs.is_empty() {
                return Err(file_error(&path, "no CERTIFICATE block"));
            }
            Ok(certs)
        };
        let cas = read_certs(CA_FILE)?;
        let chain = read_certs(CERT_FILE)?;
        let key_path = dir.join(KEY_FILE);
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_error(&key_path, e))?;
        let identity = Identity::of_certificate(&chain[0]).ok_or_else(|| {
            file_error(&dir.join(CERT_FILE), "names no Coffre node or gateway (issue it with `coffre cluster issue`)")
        })?;
        let mut roots = RootCertStore::empty();
        for ca in &cas {
            roots.add(ca.clone()).map_err(|e| file_error(&dir.join(CA_FILE), e))?;
        }
        // The key must be the certificate's, and usable under the policy.
        let signing = provider.key_provider.load_private_key(key.clone_key()).map_err(|e| file_error(&key_path, e))?;
        if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
            CertifiedKey::new(chain.clone(), signing).keys_match()
        {
            return Err(file_error(&key_path, format!("does not match {}", dir.join(CERT_FILE).display())));
        }
        let tls = Self { identity, dir: dir.to_owned(), roots: Arc::new(roots), chain, key, provider, versions };
        verify_chain(&tls.chain[0], &cas[0], &tls.identity).map_err(|why| {
            file_error(
                &dir.join(CERT_FILE),
                format!("{why} (against the cluster CA in {})", dir.join(CA_FILE).display()),
            )
        })?;
        Ok(tls)
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The file holding the CA this process trusts, for messages.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    /// A storage node's listener: its own certificate, and gateways of the
    /// cluster only as clients.
    pub fn server_config(&self) -> Result<ServerConfig, IdentityError> {
        let inner = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
            .build()
            .map_err(|e| IdentityError::Invalid(format!("the cluster CA: {e}")))?;
        let verifier = Arc::new(GatewaysOnly { inner, ca_file: self.ca_file() });
        let signing = self
            .provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|e| file_error(&self.dir.join(KEY_FILE), e))?;
        let certified = Arc::new(CertifiedKey::new(self.chain.clone(), signing));
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Fixed(certified)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.max_early_data_size = 0;
        Ok(config)
    }

    /// A gateway's link to the node serving `target`: this gateway's
    /// certificate, and that node's only as a server.
    pub fn client_config(&self, target: &str) -> Result<ClientConfig, IdentityError> {
        let expected = Identity::node(target).map_err(IdentityError::Invalid)?;
        let name = ServerName::try_from(expected.dns_name()).map_err(|e| IdentityError::Invalid(e.to_string()))?;
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| IdentityError::Invalid(format!("the cluster CA: {e}")))?;
        let verifier = Arc::new(NodeNamed { inner, name, expected, ca_file: self.ca_file() });
        ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| file_error(&self.dir.join(KEY_FILE), e))
    }
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The node's side: a client certificate must chain to the cluster CA (and
/// carry clientAuth, which only gateway certificates do) and name a gateway.
#[derive(Debug)]
struct GatewaysOnly {
    inner: Arc<dyn ClientCertVerifier>,
    ca_file: PathBuf,
}

impl ClientCertVerifier for GatewaysOnly {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let named = Identity::describe(end_entity);
        let checked = self.inner.verify_client_cert(end_entity, intermediates, now).map_err(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose)
            | rustls::Error::InvalidCertificate(CertificateError::InvalidPurposeContext { .. }) => {
                refuse(format!("a certificate naming {named} is not a gateway's (no clientAuth usage)"))
            }
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature | CertificateError::BadEncoding,
            ) => refuse(format!(
                "a client certificate naming {named} does not chain to the cluster CA in {}",
                self.ca_file.display()
            )),
            other => other,
        });
        let outcome = checked.and_then(|ok| match Identity::of_certificate(end_entity) {
            Some(Identity::Gateway(_)) => Ok(ok),
            _ => Err(refuse(format!("a certificate naming {named} is not a gateway's"))),
        });
        match &outcome {
            Ok(_) => tracing::debug!(client = %named, "node API client authenticated"),
            Err(e) => tracing::warn!(error = %e, "refused a node API client"),
        }
        outcome
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The gateway's side: the server's certificate must chain to the cluster CA
/// and name the node of exactly the target dialled, whatever address it was
/// reached at.
#[derive(Debug)]
struct NodeNamed {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
    expected: Identity,
    ca_file: PathBuf,
}

impl ServerCertVerifier for NodeNamed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let named = Identity::describe(end_entity);
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp, now).map_err(|e| match e {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature | CertificateError::BadEncoding,
            ) => refuse(format!(
                "its certificate (naming {named}) does not chain to the cluster CA this gateway trusts ({}): \
                 the node and this gateway were issued by different CAs",
                self.ca_file.display()
            )),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => refuse(format!("its certificate names {named}, not {}: refused", self.expected)),
            rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
            ) => refuse(format!("its certificate (naming {named}) is not a node's (no serverAuth usage)")),
            rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                refuse(format!("its certificate (naming {named}) has expired: issue a new one"))
            }
            other => other,
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a failed request to a node says about identities, if it failed on
/// one: a certificate this gateway refused, or this gateway's certificate
/// refused by the node (a TLS alert).
pub fn tls_refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let tls = find_tls_error(error, 0)?;
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => Some(other.0.to_string()),
        rustls::Error::InvalidCertificate(other) => Some(format!("its certificate was refused: {other:?}")),
        rustls::Error::AlertReceived(alert) => Some(format!(
            "it refused this gateway's certificate (TLS alert {alert:?}): the node trusts another cluster CA, or \
             this process's certificate is not a gateway's"
        )),
        _ => None,
    }
}

/// The rustls error somewhere in `error`'s chain. An `io::Error` reports
/// its inner error's source rather than the inner error (and hyper-rustls
/// wraps one io::Error in another), so each is opened too.
fn find_tls_error<'e>(error: &'e (dyn std::error::Error + 'static), depth: usize) -> Option<&'e rustls::Error> {
    if depth > 16 {
        return None;
    }
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|e| e as &(dyn std::error::Error + 'static));
    if let Some(found) = inner.and_then(|e| find_tls_error(e, depth + 1)) {
        return Some(found);
    }
    error.source().and_then(|e| find_tls_error(e, depth + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_their_dns_names() {
        for id in [Identity::node("par-1").expect("node"), Identity::gateway("gw-0").expect("gateway")] {
            assert_eq!(Identity::from_dns_name(&id.dns_name()), Some(id));
        }
        assert_eq!(Identity::from_dns_name("par-1.node.example.com"), None);
        assert_eq!(Identity::from_dns_name("a.b.node.coffre.invalid"), None);
        assert!(Identity::node("Par_1").is_err());
        assert!(Identity::gateway("").is_err());
        assert!(Identity::node("-x").is_err());
    }

    #[test]
    fn issued_certificates_name_their_identity_and_chain_to_their_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca");
        create_ca(&ca, "test").expect("ca");
        assert!(create_ca(&ca, "test").is_err(), "an existing CA is never replaced");
        let node = Identity::node("par-1").expect("id");
        issue(&ca, &node, &dir.path().join("n"), 2).expect("issue");
        let gw = Identity::gateway("gw-0").expect("id");
        issue(&ca, &gw, &dir.path().join("g"), 2).expect("issue");
        use std::os::unix::fs::PermissionsExt as _;
        for key in [ca.join(CA_KEY_FILE), dir.path().join("n").join(KEY_FILE)] {
            assert_eq!(std::fs::metadata(&key).expect("key").permissions().mode() & 0o777, 0o600);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions = rustls::DEFAULT_VERSIONS;
        let loaded = ClusterTls::load(&dir.path().join("n"), provider.clone(), versions).expect("load");
        assert_eq!(loaded.identity(), &node);
        assert!(loaded.server_config().is_ok());
        let loaded = ClusterTls::load(&dir.path().join("g"), provider.clone(), versions).expect("load");
        assert_eq!(loaded.identity(), &gw);
        assert!(loaded.client_config("par-1").is_ok());

        // A certificate of another CA does not load against this one.
        let other = dir.path().join("other");
        create_ca(&other, "other").expect("ca");
        std::fs::copy(other.join(CA_FILE), dir.path().join("g").join(CA_FILE)).expect("copy");
        let e = ClusterTls::load(&dir.path().join("g"), provider, versions).expect_err("wrong CA");
        assert!(e.to_string().contains("cluster CA"), "{e}");
    }
}
