//! Encryption at rest for Coffre, pure (no files, sockets or tokens): the segment
//! format object bytes are stored in, the key hierarchy above it, the custodians' contract.
//!
//! The hierarchy has three levels:
//! - a **data key** (DEK), fresh and random for every blob Coffre writes (every
//!   object version, every multipart part), seals that blob's segments;
//! - a **key-encryption key** (KEK) per bucket wraps the data keys; it lives in
//!   the custodian and is used there (an HSM never lets it out);
//! - the **custodian** itself ([`kms::Kms`]): embedded (a master key in the data
//!   directory), PKCS#11, or KMIP, implemented in `coffre-kms`.
//!
//! Destroying a bucket's KEKs in the custodian makes every data key of the
//! bucket, and so every byte of it, unreadable: crypto-erasure.

pub mod kms;
pub mod segment;
pub mod wrap;

pub use kms::{Custody, KekId, Kms, KmsError, KmsResult, KmsStatus};
pub use segment::{DataKey, Opener, ReadPlan, Sealer, SegmentContext};

/// Failures of the segment format and of local key handling.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Stored bytes or a wrapped key did not authenticate: tampering, rot, or
    /// the wrong key. Never answered with data.
    #[error("integrity check failed: {0}")]
    Integrity(&'static str),
    #[error("the system random generator failed")]
    Random,
    #[error("crypto library refused an operation: {0}")]
    Internal(&'static str),
}
