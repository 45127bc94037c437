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
}

pub async fn open(config: &KmsConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn Kms>> {
    match config {
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
