//! Credentials: root from the configuration, other keys from the metadata
//! store, their secrets unwrapped by the key custodian ([`AccessKeys`]).

use async_trait::async_trait;
use coffre_core::access::{AccessKeys, KeyLookup};
use coffre_core::types::{AccessKeyId, Principal};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq as _;

/// An access key and its secret.
#[derive(Clone)]
pub struct Credential {
    pub access_key: AccessKeyId,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        f.debug_struct("Credential").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

/// Looks up secrets for SigV4 and tells who a key belongs to.
#[derive(Clone)]
pub struct KeyStore {
    root: Credential,
    keys: AccessKeys,
}

impl KeyStore {
    pub fn new(root: Credential, keys: AccessKeys) -> Self {
        Self { root, keys }
    }

    pub fn root_key(&self) -> &AccessKeyId {
        &self.root.access_key
    }

    pub fn access_keys(&self) -> &AccessKeys {
        &self.keys
    }

    pub fn principal(&self, access_key: &str) -> Option<Principal> {
        let id = AccessKeyId::parse(access_key).ok()?;
        let is_root = id == self.root.access_key;
        Some(Principal::key(id, is_root))
    }

    /// Checks a bearer token of the form `ACCESS_KEY:SECRET` against root, in constant time.
    pub fn is_root_token(&self, token: &str) -> bool {
        let expected = format!("{}:{}", self.root.access_key, self.root.secret);
        bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }
}

#[async_trait]
impl S3Auth for KeyStore {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.root.access_key.as_str() {
            return Ok(SecretKey::from(self.root.secret.clone()));
        }
        let unknown =
            || s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.");
        let id = AccessKeyId::parse(access_key).map_err(|_| unknown())?;
        match self.keys.lookup(&id).await {
            Ok(KeyLookup::Usable(secret)) => Ok(SecretKey::from(secret.as_str().to_owned())),
            Ok(KeyLookup::Unknown) => Err(unknown()),
            Ok(KeyLookup::Refused(why)) => {
                // The same answer as an unknown key: the caller has not shown
                // it holds the secret, so it learns nothing of the key's state.
                tracing::info!(access_key = %id, refusal = ?why, "a request signed by a key that may not sign now");
                Err(unknown())
            }
            Err(e @ coffre_core::Error::KmsUnavailable(_)) => {
                tracing::error!(error = %e, "cannot unwrap an access-key secret");
                Err(s3_error!(ServiceUnavailable, "The key management service is unavailable. Please try again."))
            }
            Err(e @ coffre_core::Error::MetaUnavailable(_)) => {
                tracing::error!(error = %e, "cannot read an access key");
                Err(s3_error!(ServiceUnavailable, "The metadata database is unavailable. Please try again."))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read an access key");
                Err(s3_error!(InternalError, "We encountered an internal error. Please try again."))
            }
        }
    }
}
