//! The key custodian's contract: create, use and destroy key-encryption keys
//! (KEKs) that never leave the custodian; Coffre only sees wrapped data keys.

use std::fmt;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// Which custodian holds the KEKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custody {
    /// A master key in the data directory, optionally sealed by a passphrase.
    Embedded,
    /// A PKCS#11 token (an HSM; SoftHSM2 in tests).
    Pkcs11,
    /// An external key manager speaking KMIP over TLS.
    Kmip,
}

impl fmt::Display for Custody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Embedded => "embedded",
            Self::Pkcs11 => "pkcs11",
            Self::Kmip => "kmip",
        })
    }
}

/// A KEK's name in its custodian: a file name, a PKCS#11 object id, a KMIP
/// unique identifier. Opaque to everyone else; stored in bucket records.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KekId(pub String);

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret no longer than this is all a custodian is asked to wrap.
pub const MAX_WRAP_INPUT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The custodian cannot be reached or refuses service: retry later.
    #[error("key custodian unavailable: {0}")]
    Unavailable(String),
    /// The KEK does not exist (never did, or was destroyed).
    #[error("key {0} does not exist in the key custodian")]
    NoSuchKey(KekId),
    /// A wrapped key did not authenticate under this KEK and context.
    #[error("a wrapped key failed authentication")]
    Integrity,
    #[error("key custodian: {0}")]
    Other(String),
}

pub type KmsResult<T> = std::result::Result<T, KmsError>;

/// What `coffre kms status` shows.
#[derive(Debug, Clone)]
pub struct KmsStatus {
    pub custody: Custody,
    /// Where the custodian is: a path, a module and slot, a host and port.
    pub location: String,
    /// Free text from the custodian (token label, server version).
    pub detail: String,
}

/// A key custodian. Every call may block on I/O (a file, a token, the
/// network); none ever returns or logs a KEK.
#[async_trait]
pub trait Kms: Send + Sync + 'static {
    fn custody(&self) -> Custody;

    /// Makes a fresh 256-bit KEK inside the custodian; `label` is for humans
    /// reading the custodian's inventory.
    async fn create_kek(&self, label: &str) -> KmsResult<KekId>;

    /// Encrypts `secret` (at most [`MAX_WRAP_INPUT`] bytes) under the KEK,
    /// authenticated together with `context`.
    async fn wrap(&self, kek: &KekId, secret: &[u8], context: &[u8]) -> KmsResult<Vec<u8>>;

    /// Reverses [`Kms::wrap`]; a changed blob or context gives `Integrity`.
    async fn unwrap(&self, kek: &KekId, wrapped: &[u8], context: &[u8]) -> KmsResult<Zeroizing<Vec<u8>>>;

    /// Destroys the KEK for good: whatever it wrapped becomes unreadable.
    /// Destroying a key that does not exist is not an error.
    async fn destroy_kek(&self, kek: &KekId) -> KmsResult<()>;

    /// Checks the custodian works end to end (a wrap and unwrap round trip
    /// under a probe key) and says where it is.
    async fn status(&self) -> KmsResult<KmsStatus>;
}
