//! The object service's errors: one variant per outcome a client must be able
//! to tell apart. The S3 front maps each onto its S3 error code.

use crate::checksum::ChecksumAlgorithm;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid bucket name {0}")]
    InvalidBucketName(String),
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the bucket name is taken by another account")]
    BucketAlreadyExists,
    #[error("you already own this bucket")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the key does not exist")]
    NoSuchKey,
    #[error("the version does not exist")]
    NoSuchVersion,
    /// The read reached a delete marker: the current version of a deleted
    /// key (`named` false), or a marker asked for by its version id.
    #[error("the object is a delete marker")]
    DeleteMarker { version_id: crate::types::VersionId, named: bool },
    #[error("the upload does not exist; it may have been completed or aborted")]
    NoSuchUpload,
    #[error("access denied")]
    AccessDenied,
    /// Object Lock forbids the change (retention or legal hold).
    #[error("{0}")]
    Locked(String),
    /// An erasure refused: versions under a COMPLIANCE retention not yet ended.
    #[error(
        "the bucket holds {versions} object version(s) under COMPLIANCE retention, the latest retained until \
         {until}: it cannot be erased before then"
    )]
    ErasureLocked { versions: u64, until: String },
    #[error("{0}")]
    InvalidTag(String),
    #[error("tags cannot be more than {max}")]
    TooManyTags { max: usize },
    /// The bucket's state forbids the request (e.g. suspending versioning under Object Lock).
    #[error("{0}")]
    InvalidBucketState(String),
    #[error("Object Lock is not enabled on this bucket")]
    NoLockConfiguration,
    #[error("object key is longer than 1024 bytes")]
    KeyTooLong,
    #[error("{0}")]
    InvalidArgument(String),
    /// A request that is well-formed but cannot be carried out as asked.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("at least one of the preconditions did not hold")]
    PreconditionFailed,
    /// Carries the ETag, which a 304 response repeats.
    #[error("not modified")]
    NotModified { etag: String },
    #[error("the requested range is not satisfiable (object size {size})")]
    InvalidRange { size: u64 },
    #[error("the requested part number is not satisfiable")]
    InvalidPartNumber,
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    #[error("the {0} checksum you specified did not match what we received")]
    ChecksumMismatch(ChecksumAlgorithm),
    #[error("the body ended before its declared length ({received} of {expected} bytes)")]
    IncompleteBody { received: u64, expected: u64 },
    #[error("the object exceeds the maximum allowed size of {max} bytes")]
    EntityTooLarge { max: u64 },
    #[error("part {part} is smaller than the minimum of 5 MiB")]
    EntityTooSmall { part: u32 },
    #[error("{0}")]
    InvalidPart(String),
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata engine failed: {0}")]
    Meta(String),
    /// The bucket's residency policy cannot be met with the storage targets
    /// up now: nothing was stored anywhere.
    #[error("the residency policy cannot be met: {0}")]
    Residency(String),
    /// A residency policy wider than the operator's `[residency]`: what a
    /// tenant (or the admin API) may only narrow. Says every way it widens.
    #[error("{0}")]
    ResidencyNotAllowed(String),
    /// Storage targets needed for the request cannot be reached: retry later.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The metadata database cannot be reached, or did not confirm a commit:
    /// retry later (the message says whether a change may have been applied).
    #[error("the metadata database is unavailable: {0}")]
    MetaUnavailable(String),
    /// The key custodian cannot be reached: nothing was changed, retry later.
    #[error("the key custodian is unavailable: {0}")]
    KmsUnavailable(String),
    /// The audit log cannot record the change: it was not made.
    #[error("the audit log cannot record this change: {0}")]
    AuditUnavailable(String),
    /// Stored bytes or a wrapped key failed authentication: answered with an
    /// error, never with data.
    #[error("stored data failed its integrity check: {0}")]
    Integrity(String),
    /// The custodian does not hold a key the metadata names: not destroyed by
    /// Coffre (a destroyed key leaves the metadata with it), but missing, as
    /// from a custodian that is not the deployment's or lost key files.
    #[error("the key custodian does not hold this key: {0}")]
    KeyMissing(String),
    /// The key that sealed the data no longer exists (crypto-erased).
    #[error("the data key of this object is gone: {0}")]
    KeyDestroyed(String),
    /// The bucket's key was rotated while the write was in flight: retry it.
    #[error("the bucket's key of generation {generation} was retired while this write was in flight")]
    KeyRotated { generation: u32 },
    /// SSE-C: the object needs the customer's key and none was given.
    #[error(
        "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to \
         retrieve the object."
    )]
    CustomerKeyRequired,
    /// SSE-C: the key given is not the one the object was stored with.
    #[error("the customer-provided key does not match the object's key")]
    CustomerKeyMismatch,
    /// SSE-C: a key was given for an object not stored with one.
    #[error("The encryption parameters are not applicable to this object.")]
    CustomerKeyNotApplicable,
}

/// An error and its causes on one line, each cause once: "error performing
/// TLS handshake" alone does not say that the certificate was refused, or why.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        // Some errors print their cause in their own message already.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}
