//! Access keys and their secrets. SigV4 needs the secret itself, so it cannot
//! be hashed: it is stored wrapped by a key-encryption key of the custodian,
//! and unwrapped into a short-lived in-memory cache when a request needs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_crypto::{KekId, Kms};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::meta::{AccessKeyRecord, KeyRefusal, KeyStatus, MetaStore, SealedSecret};
use crate::service::keys::kms_error;
use crate::types::{AccessKeyId, UnixNanos};

/// The metadata setting that names the KEK wrapping access-key secrets.
const SECRETS_KEK_SETTING: &str = "access_key_secrets_kek";
/// How long an unwrapped secret and its key's status are reused by default:
/// short enough that a key disabled or deleted through another gateway stops
/// working soon, long enough that a busy client does not cost a custodian
/// call per request. `access_key_cache_secs` in the configuration.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// What a gateway remembers of a key between metadata reads.
#[derive(Clone)]
struct Known {
    secret: Zeroizing<String>,
    status: KeyStatus,
    expires: Option<UnixNanos>,
}

/// What a request's access key turned out to be.
pub enum KeyLookup {
    /// No such key.
    Unknown,
    /// The key exists and may not sign now.
    Refused(KeyRefusal),
    Usable(Zeroizing<String>),
}

/// What is known of each key, by id, with when it was read.
type SecretCache = HashMap<String, (Instant, Known)>;

#[derive(Clone)]
pub struct AccessKeys {
    meta: Arc<dyn MetaStore>,
    kms: Arc<dyn Kms>,
    kek: KekId,
    cache: Arc<Mutex<SecretCache>>,
    ttl: Duration,
}

fn context(id: &AccessKeyId) -> Vec<u8> {
    [b"coffre-access-key-v1:".as_slice(), id.as_str().as_bytes()].concat()
}

impl AccessKeys {
    /// Finds the secrets KEK named in the metadata, or makes it (once, even
    /// with several gateways starting at the same time).
    /// `ttl` bounds how long a change made through another gateway goes unseen here.
    pub async fn open(meta: Arc<dyn MetaStore>, kms: Arc<dyn Kms>, ttl: Duration) -> Result<Self> {
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
        Ok(Self { meta, kms, kek, cache: Arc::default(), ttl })
    }

    /// Stores a new key; the secret is returned to be shown once.
    pub async fn create(
        &self,
        id: AccessKeyId,
        secret: &str,
        name: &str,
        expires: Option<UnixNanos>,
    ) -> Result<AccessKeyRecord> {
        let wrapped = self.kms.wrap(&self.kek, secret.as_bytes(), &context(&id)).await.map_err(kms_error)?;
        let record = AccessKeyRecord {
            id,
            secret: SealedSecret { kek: self.kek.0.clone(), wrapped },
            name: name.to_owned(),
            created: UnixNanos::now(),
            status: KeyStatus::Active,
            expires,
        };
        self.meta.put_access_key(record.clone()).await?;
        Ok(record)
    }

    /// The secret of a key that may sign now. A key's status and expiry are
    /// read with its secret: a change made elsewhere is seen within the TTL,
    /// and expiry is checked on every request.
    pub async fn lookup(&self, id: &AccessKeyId) -> Result<KeyLookup> {
        let known = match self.cached(id)? {
            Some(hit) => hit,
            None => {
                let Some(record) = self.meta.access_key(id).await? else { return Ok(KeyLookup::Unknown) };
                let secret = self.unwrap_secret(&record).await?;
                let known = Known { secret, status: record.status, expires: record.expires };
                self.lock()?.insert(id.as_str().to_owned(), (Instant::now(), known.clone()));
                known
            }
        };
        Ok(match AccessKeyRecord::check(known.status, known.expires, UnixNanos::now()) {
            Ok(()) => KeyLookup::Usable(known.secret),
            Err(why) => KeyLookup::Refused(why),
        })
    }

    async fn unwrap_secret(&self, record: &AccessKeyRecord) -> Result<Zeroizing<String>> {
        let kek = KekId(record.secret.kek.clone());
        let plain = self.kms.unwrap(&kek, &record.secret.wrapped, &context(&record.id)).await.map_err(kms_error)?;
        Ok(Zeroizing::new(
            String::from_utf8(plain.to_vec())
                .map_err(|_| Error::Integrity("an access-key secret is not UTF-8".into()))?,
        ))
    }

    fn cached(&self, id: &AccessKeyId) -> Result<Option<Known>> {
        let mut cache = self.lock()?;
        match cache.get(id.as_str()) {
            Some((at, known)) if at.elapsed() < self.ttl => Ok(Some(known.clone())),
            Some(_) => {
                cache.remove(id.as_str());
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Sets a key's status and expiry; `None` when no such key exists. This
    /// gateway forgets the key at once, the others within the TTL.
    pub async fn update(
        &self,
        id: &AccessKeyId,
        status: Option<KeyStatus>,
        expires: Option<Option<UnixNanos>>,
    ) -> Result<Option<AccessKeyRecord>> {
        let Some(mut record) = self.meta.access_key(id).await? else { return Ok(None) };
        record.status = status.unwrap_or(record.status);
        record.expires = expires.unwrap_or(record.expires);
        self.meta.put_access_key(record.clone()).await?;
        self.lock()?.remove(id.as_str());
        Ok(Some(record))
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
