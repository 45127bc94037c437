//! Access keys and their secrets. SigV4 needs the secret itself, so it cannot
//! be hashed: it is stored wrapped by a key-encryption key of the custodian,
//! and unwrapped into a short-lived in-memory cache when a request needs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_crypto::{KekId, Kms};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::meta::{AccessKeyRecord, MetaStore, SealedSecret};
use crate::service::keys::kms_error;
use crate::types::{AccessKeyId, UnixNanos};

/// The metadata setting that names the KEK wrapping access-key secrets.
const SECRETS_KEK_SETTING: &str = "access_key_secrets_kek";
/// How long an unwrapped secret is reused: short enough that a key deleted
/// through another gateway stops working soon, long enough that a busy
/// client does not cost a custodian call per request.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// Unwrapped secrets by access key id, with when they were unwrapped.
type SecretCache = HashMap<String, (Instant, Zeroizing<String>)>;

#[derive(Clone)]
pub struct AccessKeys {
    meta: Arc<dyn MetaStore>,
    kms: Arc<dyn Kms>,
    kek: KekId,
    cache: Arc<Mutex<SecretCache>>,
}

fn context(id: &AccessKeyId) -> Vec<u8> {
    [b"coffre-access-key-v1:".as_slice(), id.as_str().as_bytes()].concat()
}

impl AccessKeys {
    /// Finds the secrets KEK named in the metadata, or makes it (once, even
    /// with several gateways starting at the same time).
    pub async fn open(meta: Arc<dyn MetaStore>, kms: Arc<dyn Kms>) -> Result<Self> {
        let kek = match meta.setting(SECRETS_KEK_SETTING).await? {
            Some(id) => KekId(id),
            None => {
                let made = kms.create_kek("coffre access-key secrets").await.map_err(kms_error)?;
                let winner = meta.put_setting_if_absent(SECRETS_KEK_SETTING, &made.0).await?;
                if winner != made.0 {
                    // Another gateway got there first: ours was never used.
                    let _ = kms.destroy_kek(&made).await;
                }
                KekId(winner)
            }
        };
        Ok(Self { meta, kms, kek, cache: Arc::default() })
    }

    /// Stores a new key; the secret is returned to be shown once.
    pub async fn create(&self, id: AccessKeyId, secret: &str, name: &str) -> Result<AccessKeyRecord> {
        let wrapped = self.kms.wrap(&self.kek, secret.as_bytes(), &context(&id)).await.map_err(kms_error)?;
        let record = AccessKeyRecord {
            id,
            secret: SealedSecret { kek: self.kek.0.clone(), wrapped },
            name: name.to_owned(),
            created: UnixNanos::now(),
        };
        self.meta.put_access_key(record.clone()).await?;
        Ok(record)
    }

    /// The secret of a key, or `None` for a key that does not exist.
    pub async fn secret(&self, id: &AccessKeyId) -> Result<Option<Zeroizing<String>>> {
        if let Some(secret) = self.cached(id)? {
            return Ok(Some(secret));
        }
        let Some(record) = self.meta.access_key(id).await? else { return Ok(None) };
        let kek = KekId(record.secret.kek.clone());
        let plain = self.kms.unwrap(&kek, &record.secret.wrapped, &context(id)).await.map_err(kms_error)?;
        let secret = Zeroizing::new(
            String::from_utf8(plain.to_vec())
                .map_err(|_| Error::Integrity("an access-key secret is not UTF-8".into()))?,
        );
        self.lock()?.insert(id.as_str().to_owned(), (Instant::now(), secret.clone()));
        Ok(Some(secret))
    }

    fn cached(&self, id: &AccessKeyId) -> Result<Option<Zeroizing<String>>> {
        let mut cache = self.lock()?;
        match cache.get(id.as_str()) {
            Some((at, secret)) if at.elapsed() < CACHE_TTL => Ok(Some(secret.clone())),
            Some(_) => {
                cache.remove(id.as_str());
                Ok(None)
            }
            None => Ok(None),
        }
    }

    pub async fn list(&self) -> Result<Vec<AccessKeyRecord>> {
        self.meta.access_keys().await
    }

    pub async fn get(&self, id: &AccessKeyId) -> Result<Option<AccessKeyRecord>> {
        self.meta.access_key(id).await
    }

    /// Returns false when no such key existed.
    pub async fn delete(&self, id: &AccessKeyId) -> Result<bool> {
        self.lock()?.remove(id.as_str());
        self.meta.delete_access_key(id).await
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, SecretCache>> {
        self.cache.lock().map_err(|_| Error::Meta("the access-key cache lock was poisoned".into()))
    }
}
