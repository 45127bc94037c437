//! Choosing and opening the key custodian a deployment names in `[kms]`.
//!
//! Secrets (the embedded master key's passphrase, a token PIN) come from the
//! environment only, never from the config file, and are never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use coffre_crypto::Kms;
use coffre_crypto::embedded::EmbeddedKms;
use serde::Deserialize;

/// The `[kms]` section of the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "custody", rename_all = "lowercase", deny_unknown_fields)]
pub enum KmsConfig {
    /// A master key in `DATA_DIR/kms`, sealed by `COFFRE_KMS_PASSPHRASE` when set.
    #[default]
    Embedded,
    /// KEKs inside a PKCS#11 token; its user PIN comes from `COFFRE_KMS_PIN`.
    Pkcs11 { module: PathBuf, token_label: String },
    /// KEKs in a KMIP server, reached over mutual TLS.
    Kmip {
        /// `host:port` (KMIP's port is 5696).
        addr: String,
        /// The name the server's certificate must carry.
        server_name: String,
        /// PEM files: the CA to trust, and Coffre's client certificate and key.
        ca_cert: PathBuf,
        client_cert: PathBuf,
        client_key: PathBuf,
    },
}

/// The custody a config names, without reaching the custodian.
pub fn custody_name(config: &KmsConfig) -> &'static str {
    match config {
        KmsConfig::Embedded => "embedded",
        KmsConfig::Pkcs11 { .. } => "pkcs11",
        KmsConfig::Kmip { .. } => "kmip",
    }
}

pub async fn open(config: &KmsConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn Kms>> {
    match config {
        KmsConfig::Kmip { addr, server_name, ca_cert, client_cert, client_key } => {
            let config = coffre_crypto::kmip::KmipConfig {
                addr: addr.clone(),
                server_name: server_name.clone(),
                ca_cert: ca_cert.clone(),
                client_cert: client_cert.clone(),
                client_key: client_key.clone(),
            };
            let kms = coffre_crypto::kmip::KmipKms::connect(config)
                .await
                .with_context(|| format!("connecting to the KMIP server at {addr}"))?;
            Ok(Arc::new(kms))
        }
        KmsConfig::Pkcs11 { module, token_label } => {
            let pin = std::env::var("COFFRE_KMS_PIN").context("the PKCS#11 custodian needs COFFRE_KMS_PIN")?;
            let config = coffre_crypto::pkcs11::Pkcs11Config {
                module: module.clone(),
                token_label: token_label.clone(),
                pin: zeroize::Zeroizing::new(pin),
            };
            let kms = coffre_crypto::pkcs11::Pkcs11Kms::open(config)
                .await
                .with_context(|| format!("opening PKCS#11 token {token_label:?} through {}", module.display()))?;
            Ok(Arc::new(kms))
        }
        KmsConfig::Embedded => {
            let passphrase = std::env::var("COFFRE_KMS_PASSPHRASE").ok().filter(|p| !p.is_empty());
            if passphrase.is_none() {
                tracing::warn!(
                    "the embedded master key is kept in clear in the data directory: set COFFRE_KMS_PASSPHRASE, or \
                     use an HSM or KMIP custodian, so that a copy of the disks alone does not read the data"
                );
            }
            let kms = EmbeddedKms::open(&data_dir.join("kms"), passphrase.as_deref())
                .context("opening the embedded key custodian")?;
            Ok(kms)
        }
    }
}
