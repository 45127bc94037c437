//! Choosing and opening the key custodian a deployment names in `[kms]`.
//!
//! Secrets (the embedded master key's passphrase, a token PIN) come from the
//! environment only, never from the config file, and are never logged.

use std::path::Path;
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
}

pub fn open(config: &KmsConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn Kms>> {
    match config {
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
