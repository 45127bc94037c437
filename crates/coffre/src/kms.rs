//! Choosing and opening the key custodian a deployment names in `[kms]`.
//!
//! Secrets (the embedded master key's passphrase, a token PIN) come from the
//! environment only, never from the config file, and are never logged.
//!
//! Several gateways serving one deployment must share one custodian, or a KEK
//! one of them made is unknown to the others and their objects unreadable
//! there: a KMIP server or PKCS#11 token all of them reach, or the embedded
//! custodian on a directory all of them see (`[kms] dir`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use coffre_crypto::Kms;
use coffre_kms::embedded::EmbeddedKms;
use serde::Deserialize;

/// The `[kms]` section of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "custody", rename_all = "lowercase", deny_unknown_fields)]
pub enum KmsConfig {
    /// A master key and KEK files in `dir`, sealed by `COFFRE_KMS_PASSPHRASE` when set.
    Embedded {
        /// Default `DATA_DIR/kms`. Gateways sharing one metadata store need
        /// one directory they all see, or each makes KEKs the others lack.
        #[serde(default)]
        dir: Option<PathBuf>,
    },
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

/// A manual impl: the derive's `#[default]` only takes unit variants.
impl Default for KmsConfig {
    fn default() -> Self {
        KmsConfig::Embedded { dir: None }
    }
}

/// The custody a config names, without reaching the custodian.
pub fn custody_name(config: &KmsConfig) -> &'static str {
    match config {
        KmsConfig::Embedded { .. } => "embedded",
        KmsConfig::Pkcs11 { .. } => "pkcs11",
        KmsConfig::Kmip { .. } => "kmip",
    }
}

pub async fn open(config: &KmsConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn Kms>> {
    match config {
        KmsConfig::Kmip { addr, server_name, ca_cert, client_cert, client_key } => {
            let config = coffre_kms::kmip::KmipConfig {
                addr: addr.clone(),
                server_name: server_name.clone(),
                ca_cert: ca_cert.clone(),
                client_cert: client_cert.clone(),
                client_key: client_key.clone(),
            };
            let kms = coffre_kms::kmip::KmipKms::connect(config)
                .await
                .with_context(|| format!("connecting to the KMIP server at {addr}"))?;
            Ok(Arc::new(kms))
        }
        KmsConfig::Pkcs11 { module, token_label } => {
            let pin = std::env::var("COFFRE_KMS_PIN").context("the PKCS#11 custodian needs COFFRE_KMS_PIN")?;
            let config = coffre_kms::pkcs11::Pkcs11Config {
                module: module.clone(),
                token_label: token_label.clone(),
                pin: zeroize::Zeroizing::new(pin),
            };
            let kms = coffre_kms::pkcs11::Pkcs11Kms::open(config)
                .await
                .with_context(|| format!("opening PKCS#11 token {token_label:?} through {}", module.display()))?;
            Ok(Arc::new(kms))
        }
        KmsConfig::Embedded { dir } => {
            let passphrase = std::env::var("COFFRE_KMS_PASSPHRASE").ok().filter(|p| !p.is_empty());
            if let Some(passphrase) = &passphrase {
                crate::credentials::check_strength("COFFRE_KMS_PASSPHRASE", passphrase)?;
            }
            if passphrase.is_none() {
                tracing::warn!(
                    "the embedded master key is kept in clear on disk: set COFFRE_KMS_PASSPHRASE, or \
                     use an HSM or KMIP custodian, so that a copy of the disks alone does not read the data"
                );
            }
            let dir = dir.clone().unwrap_or_else(|| data_dir.join("kms"));
            let opened = match EmbeddedKms::open(&dir, passphrase.as_deref()) {
                // Gateways sharing the directory may start together: the one
                // that lost the race to create the master key reads the winner's.
                Err(_) if dir.join("master.key").exists() => EmbeddedKms::open(&dir, passphrase.as_deref()),
                opened => opened,
            };
            let kms = opened.with_context(|| format!("opening the embedded key custodian in {}", dir.display()))?;
            Ok(kms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        kms: Option<KmsConfig>,
    }

    fn parse(text: &str) -> Option<KmsConfig> {
        toml::from_str::<File>(text).expect("config").kms
    }

    #[test]
    fn the_embedded_custodian_takes_an_optional_directory() {
        assert!(matches!(parse("[kms]\ncustody = \"embedded\"\n"), Some(KmsConfig::Embedded { dir: None })));
        let shared = parse("[kms]\ncustody = \"embedded\"\ndir = \"/srv/coffre-kms\"\n");
        assert!(matches!(shared, Some(KmsConfig::Embedded { dir: Some(d) }) if d == Path::new("/srv/coffre-kms")));
        assert!(parse("").is_none());
        assert!(matches!(KmsConfig::default(), KmsConfig::Embedded { dir: None }));
        assert!(toml::from_str::<File>("[kms]\ncustody = \"embedded\"\ndirectory = \"/x\"\n").is_err());
    }
}
