//! Encryption in transit: loads the PEM certificate chain and key, builds the rustls server
//! configuration the S3 and admin listeners share, and swaps the pair on SIGHUP without a restart.
//!
//! # Policy
//!
//! SecNumCloud 3.2 §10.2 makes the ANSSI TLS guide (v1.2, 2020) the rule for network
//! encryption; its recommendations (summed up in docs/configuration.md, "TLS") give this
//! list. Every entry is one the guide recommends; what it allows and we leave out is
//! said with the reason.
//!
//! - Versions: TLS 1.3 and TLS 1.2. SSL, TLS 1.0 and 1.1 are off (the guide: 1.2 minimum).
//! - Key exchange: ephemeral ECDH only (forward secrecy) on X25519, secp256r1 and secp384r1.
//!   Finite-field DHE is not offered (rustls has none). The hybrid post-quantum X25519MLKEM768
//!   that rustls prefers by default is left out: the 2020 guide does not list it; adding it is a
//!   policy decision to take with the trust label.
//! - TLS 1.3 suites: TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256,
//!   TLS_CHACHA20_POLY1305_SHA256 (the guide's list less AES-128-CCM, which rustls lacks).
//! - TLS 1.2 suites: ECDHE-ECDSA and ECDHE-RSA with AES-256-GCM-SHA384, AES-128-GCM-SHA256 and
//!   CHACHA20-POLY1305-SHA256: AEAD only. CBC suites (the guide's "degraded" case) and RSA key
//!   transport (no forward secrecy) do not exist in rustls, so no setting could turn them on.
//! - The server's order of preference wins (AES-256-GCM first). No TLS compression, no
//!   renegotiation (rustls implements neither), no 0-RTT early data (replayable), ALPN
//!   `http/1.1` only.
//! - Certificates: the key types aws-lc-rs signs with (ECDSA P-256/P-384/P-521, RSA of 2048
//!   to 8192 bits, Ed25519). The guide wants RSA of at least 2048 bits, 3072 beyond 2030.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::{Context as _, bail};
use coffre_admin::{CertInfo, ListenerTls, ReloadOutcome, TlsReport};
use coffre_s3::conn::{Handshake, HandshakeFuture, Io};
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{cipher_suite as suite, default_provider, kx_group};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};
use sha2::Digest as _;
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its private key live (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsPaths {
    /// TLS needs both files; neither means plain HTTP; one alone is a mistake
    /// worth stopping for rather than silently serving plaintext.
    pub fn from_pair(cert: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<Option<Self>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (None, None) => Ok(None),
            (Some(cert), None) => bail!(
                "tls_cert is set ({}) but tls_key is not: TLS needs both (--tls-cert and --tls-key, \
                 COFFRE_TLS_CERT and COFFRE_TLS_KEY, or tls_cert and tls_key in the config file), \
                 or neither for plain HTTP",
                cert.display()
            ),
            (None, Some(key)) => bail!(
                "tls_key is set ({}) but tls_cert is not: TLS needs both (--tls-cert and --tls-key, \
                 COFFRE_TLS_CERT and COFFRE_TLS_KEY, or tls_cert and tls_key in the config file), \
                 or neither for plain HTTP",
                key.display()
            ),
        }
    }
}

/// Protocol versions, most preferred first.
pub static VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The only ALPN protocol offered: the listeners speak HTTP/1.1.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The server's TLS policy on the client side too (the admin CLI, the
/// metadata database), trusting `ca_cert` (PEM) when given, else the
/// system's certificate store.
pub fn client_config(ca_cert: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("reading CA certificates from {}", path.display()))?;
            if certs.is_empty() {
                bail!("{}: no CERTIFICATE block", path.display());
            }
            for cert in certs {
                roots.add(cert).with_context(|| format!("a CA certificate in {} is not usable", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!("no CA certificate in the system store: give a CA certificate file");
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(VERSIONS)
        .context("TLS client policy")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The policy above as a rustls crypto provider (aws-lc-rs), suites in the server's order.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..default_provider()
    }
}

/// A certificate chain with its signing key, as handshakes use it.
struct Loaded {
    key: Arc<CertifiedKey>,
    info: CertInfo,
}

/// Reads and checks the pair: PEM chain (leaf first), a PKCS#8, PKCS#1 or
/// SEC1 key that the provider accepts, and the key matching the leaf.
fn load(paths: &TlsPaths, provider: &CryptoProvider) -> anyhow::Result<Loaded> {
    let cert_pem =
        std::fs::read(&paths.cert).with_context(|| format!("reading TLS certificate file {}", paths.cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing PEM in TLS certificate file {}", paths.cert.display()))?;
    let Some(leaf) = chain.first() else {
        bail!(
            "TLS certificate file {}: no CERTIFICATE block (expected a PEM chain, server certificate first)",
            paths.cert.display()
        );
    };
    let fingerprint = hex(&sha2::Sha256::digest(leaf.as_ref()));
    let key_pem = std::fs::read(&paths.key).with_context(|| format!("reading TLS key file {}", paths.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow::anyhow!(
            "TLS key file {}: no usable private key (expected PEM PKCS#8, PKCS#1 RSA or SEC1 EC): {e}",
            paths.key.display()
        )
    })?;
    let chain_length = chain.len();
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        anyhow::anyhow!(
            "TLS key file {}: the key is not usable ({e}); accepted are ECDSA P-256/P-384/P-521, Ed25519, \
             and RSA of 2048 to 8192 bits",
            paths.key.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half; the handshake's own
        // signature check is then the only test, as in rustls's from_der.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            bail!("TLS key file {} does not match the certificate in {}", paths.key.display(), paths.cert.display())
        }
        Err(other) => bail!("TLS certificate file {}: {other}", paths.cert.display()),
    }
    warn_if_readable_by_others(&paths.key);
    let info = CertInfo {
        sha256_fingerprint: fingerprint,
        chain_length,
        key_algorithm: format!("{:?}", certified.key.algorithm()),
        cert_file: paths.cert.clone(),
        key_file: paths.key.clone(),
        loaded_at: now_rfc3339(),
    };
    Ok(Loaded { key: Arc::new(certified), info })
}

/// A private key others can read is a key others may have: say so, but
/// serve (the operator may have reasons, e.g. a group-owned secrets mount).
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(key = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "TLS key file is readable by other users; chmod 600 it");
    }
}

/// Holds the pair in use: each handshake reads it, a reload replaces it.
///
/// A `std::sync::RwLock<Arc<_>>` rather than arc-swap: a handshake costs an
/// ECDH and a signature, next to which an uncontended read lock is noise, and
/// writes happen once per SIGHUP; it saves a dependency in the server.
pub struct CertStore {
    paths: TlsPaths,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Loaded>>,
    last_reload: Mutex<Option<ReloadOutcome>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").field("paths", &self.paths).field("cert", &self.info()).finish()
    }
}

impl CertStore {
    pub fn open(paths: TlsPaths, provider: Arc<CryptoProvider>) -> anyhow::Result<Self> {
        let loaded = load(&paths, &provider)?;
        Ok(Self { paths, provider, current: RwLock::new(Arc::new(loaded)), last_reload: Mutex::new(None) })
    }

    // Poisoning cannot leave a half-written value here (the write is one Arc
    // store), so a poisoned lock is used as is rather than taking TLS down.
    fn current(&self) -> Arc<Loaded> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn info(&self) -> CertInfo {
        self.current().info.clone()
    }

    pub fn last_reload(&self) -> Option<ReloadOutcome> {
        self.last_reload.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-reads both files. On success new handshakes get the new pair
    /// (sessions already open keep theirs); on failure the old pair stays.
    pub fn reload(&self) -> anyhow::Result<CertInfo> {
        let result = load(&self.paths, &self.provider);
        let outcome = ReloadOutcome {
            at: now_rfc3339(),
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| format!("{e:#}")),
        };
        *self.last_reload.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        let loaded = Arc::new(result?);
        let info = loaded.info.clone();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(info)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key.clone())
    }
}

/// The rustls server configuration for the policy, reading its pair from `store`.
pub fn server_config(store: Arc<CertStore>, provider: Arc<CryptoProvider>) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .context("the TLS policy's versions do not fit its suites")?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.ignore_client_order = true;
    // Zero is rustls's default already; stated because replayable early data
    // would reach S3 operations that are not idempotent.
    config.max_early_data_size = 0;
    Ok(config)
}

/// The TLS handshake as the listeners' connection loop sees it.
struct RustlsHandshake(TlsAcceptor);

impl Handshake for RustlsHandshake {
    fn handshake(&self, tcp: tokio::net::TcpStream) -> HandshakeFuture {
        let accept = self.0.accept(tcp);
        Box::pin(async move { Ok(Box::new(accept.await?) as Box<dyn Io>) })
    }
}

/// The handshake of a listener with its own rustls configuration (a
/// storage node's mutual TLS).
pub fn handshake(config: ServerConfig) -> Arc<dyn Handshake> {
    Arc::new(RustlsHandshake(TlsAcceptor::from(Arc::new(config))))
}

/// TLS for both listeners, or its absence (plain HTTP).
pub struct Tls {
    store: Option<Arc<CertStore>>,
    provider: Arc<CryptoProvider>,
    acceptor: Option<TlsAcceptor>,
}

impl Tls {
    /// Loads the pair, or warns that traffic will be plaintext.
    pub fn setup(paths: Option<&TlsPaths>) -> anyhow::Result<Self> {
        let provider = Arc::new(provider());
        let Some(paths) = paths else {
            tracing::warn!(
                "TLS is off: S3 and admin traffic, credentials and data included, is not encrypted \
                 (set --tls-cert and --tls-key)"
            );
            return Ok(Self { store: None, provider, acceptor: None });
        };
        let store = Arc::new(CertStore::open(paths.clone(), provider.clone())?);
        let config = server_config(store.clone(), provider.clone())?;
        let info = store.info();
        tracing::info!(
            cert = %info.cert_file.display(),
            sha256 = %info.sha256_fingerprint,
            key = %info.key_algorithm,
            "TLS on: TLS 1.3 and 1.2, ECDHE with AEAD suites only"
        );
        Ok(Self { store: Some(store), provider, acceptor: Some(TlsAcceptor::from(Arc::new(config))) })
    }

    /// The handshake both listeners run before HTTP, if TLS is on.
    pub fn handshake(&self) -> Option<Arc<dyn Handshake>> {
        self.acceptor.clone().map(|a| Arc::new(RustlsHandshake(a)) as Arc<dyn Handshake>)
    }

    pub fn report(&self) -> TlsReport {
        let listener = match &self.store {
            None => ListenerTls {
                enabled: false,
                protocol_versions: Vec::new(),
                cipher_suites: Vec::new(),
                key_exchange_groups: Vec::new(),
                alpn: Vec::new(),
                certificate: None,
            },
            // Read from the provider the listeners use, so the report cannot
            // drift from what is enforced.
            Some(store) => ListenerTls {
                enabled: true,
                protocol_versions: VERSIONS.iter().map(|v| version_name(v.version)).collect(),
                cipher_suites: self
                    .provider
                    .cipher_suites
                    .iter()
                    .map(|s| s.suite().as_str().map_or_else(|| format!("{:?}", s.suite()), str::to_owned))
                    .collect(),
                key_exchange_groups: self
                    .provider
                    .kx_groups
                    .iter()
                    .map(|g| g.name().as_str().map_or_else(|| format!("{:?}", g.name()), str::to_owned))
                    .collect(),
                alpn: vec![String::from_utf8_lossy(ALPN_HTTP11).into_owned()],
                certificate: Some(store.info()),
            },
        };
        TlsReport {
            s3: listener.clone(),
            admin: listener,
            last_reload: self.store.as_ref().and_then(|s| s.last_reload()),
        }
    }

    /// Registers for SIGHUP now (so that an early signal cannot kill the
    /// server) and spawns the task that reloads the pair on each one until `stop`.
    pub fn reload_on_sighup(
        self: &Arc<Self>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listening for SIGHUP (certificate reload)")?;
        let tls = self.clone();
        Ok(tokio::spawn(async move {
            let mut stop = std::pin::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => return,
                    got = hangups.recv() => if got.is_none() { return },
                }
                tls.reload();
            }
        }))
    }

    /// One reload, logged either way.
    fn reload(&self) {
        let Some(store) = &self.store else {
            tracing::info!("SIGHUP: TLS is off, nothing to reload");
            return;
        };
        match store.reload() {
            Ok(info) => tracing::info!(
                cert = %info.cert_file.display(),
                sha256 = %info.sha256_fingerprint,
                "SIGHUP: TLS certificate reloaded; new connections use it"
            ),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "SIGHUP: TLS certificate reload failed; still serving the previous certificate"
            ),
        }
    }
}

fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tls").join(name)
    }

    fn pair(cert: &str, key: &str) -> TlsPaths {
        TlsPaths { cert: testdata(cert), key: testdata(key) }
    }

    fn open(paths: TlsPaths) -> anyhow::Result<CertStore> {
        CertStore::open(paths, Arc::new(provider()))
    }

    fn error_of(paths: TlsPaths) -> String {
        format!("{:#}", open(paths).expect_err("must not load"))
    }

    #[test]
    fn cert_and_key_go_together() {
        let (c, k) = (Some(PathBuf::from("c.pem")), Some(PathBuf::from("k.pem")));
        assert_eq!(TlsPaths::from_pair(None, None).expect("plain"), None);
        assert!(TlsPaths::from_pair(c.clone(), k.clone()).expect("both").is_some());
        let only_cert = format!("{:#}", TlsPaths::from_pair(c, None).expect_err("cert alone"));
        assert!(only_cert.contains("tls_key is not") && only_cert.contains("c.pem"), "{only_cert}");
        let only_key = format!("{:#}", TlsPaths::from_pair(None, k).expect_err("key alone"));
        assert!(only_key.contains("tls_cert is not") && only_key.contains("k.pem"), "{only_key}");
    }

    #[test]
    fn a_good_pair_loads_with_its_fingerprint() {
        let store = open(pair("ec-cert.pem", "ec-key.pem")).expect("load");
        let info = store.info();
        let der = CertificateDer::from_pem_file(testdata("ec-cert.pem")).expect("pem");
        assert_eq!(info.sha256_fingerprint, hex(&sha2::Sha256::digest(der.as_ref())));
        assert_eq!(info.sha256_fingerprint.len(), 64);
        assert_eq!((info.chain_length, info.key_algorithm.as_str()), (1, "ECDSA"));
        assert!(server_config(Arc::new(store), Arc::new(provider())).is_ok());
    }

    #[test]
    fn missing_files_are_named() {
        let e = error_of(pair("nope-cert.pem", "ec-key.pem"));
        assert!(e.contains("reading TLS certificate file") && e.contains("nope-cert.pem"), "{e}");
        let e = error_of(pair("ec-cert.pem", "nope-key.pem"));
        assert!(e.contains("reading TLS key file") && e.contains("nope-key.pem"), "{e}");
    }

    #[test]
    fn files_of_the_wrong_kind_are_refused() {
        let e = error_of(pair("ec-key.pem", "ec-key.pem"));
        assert!(e.contains("no CERTIFICATE block"), "{e}");
        let e = error_of(pair("ec-cert.pem", "ec-cert.pem"));
        assert!(e.contains("no usable private key"), "{e}");
        let e = error_of(pair("README.md", "ec-key.pem"));
        assert!(e.contains("no CERTIFICATE block"), "{e}");
    }

    #[test]
    fn a_key_that_does_not_match_is_refused() {
        let e = error_of(pair("ec-cert.pem", "other-key.pem"));
        assert!(e.contains("does not match the certificate") && e.contains("other-key.pem"), "{e}");
    }

    #[test]
    fn rsa_under_2048_bits_is_refused() {
        let e = error_of(pair("rsa1024-cert.pem", "rsa1024-key.pem"));
        assert!(e.contains("rsa1024-key.pem") && e.contains("RSA of 2048 to 8192 bits"), "{e}");
    }

    #[test]
    fn a_failed_reload_keeps_the_old_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = TlsPaths { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
        std::fs::copy(testdata("ec-cert.pem"), &paths.cert).expect("copy");
        std::fs::copy(testdata("ec-key.pem"), &paths.key).expect("copy");
        let store = open(paths.clone()).expect("load");
        let before = store.info().sha256_fingerprint;
        assert!(store.last_reload().is_none());

        std::fs::write(&paths.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("write");
        assert!(store.reload().is_err());
        assert_eq!(store.info().sha256_fingerprint, before, "the old pair still serves");
        let outcome = store.last_reload().expect("recorded");
        assert!(!outcome.ok && outcome.error.is_some_and(|e| e.contains("cert.pem")));

        std::fs::copy(testdata("rsa1024-cert.pem"), &paths.cert).expect("copy");
        std::fs::copy(testdata("rsa1024-key.pem"), &paths.key).expect("copy");
        assert!(store.reload().is_err(), "a weak key is refused on reload too");
        assert_eq!(store.info().sha256_fingerprint, before);
    }

    #[test]
    fn the_policy_is_tls12_and_13_with_aead_and_ecdhe_only() {
        let p = provider();
        let names: Vec<_> = p.cipher_suites.iter().map(|s| s.suite().as_str().unwrap_or("?")).collect();
        assert_eq!(names.len(), 9);
        assert!(names.iter().all(|n| n.contains("GCM") || n.contains("CHACHA20_POLY1305")), "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("TLS13_") || n.starts_with("TLS_ECDHE_")), "{names:?}");
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1, rustls::NamedGroup::secp384r1]);
        assert_eq!(VERSIONS.len(), 2);
    }
}
