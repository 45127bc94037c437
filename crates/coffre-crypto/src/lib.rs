//! Encryption at rest for Coffre: the segment format object bytes are stored
//! in, the key hierarchy above it, and the custodians (KMS) that hold its top.
//!
//! The hierarchy has three levels:
//! - a **data key** (DEK), fresh and random for every blob Coffre writes (every
//!   object version, every multipart part), seals that blob's segments;
//! - a **key-encryption key** (KEK) per bucket wraps the data keys; it lives in
//!   the custodian and is used there (an HSM never lets it out);
//! - the **custodian** itself ([`kms::Kms`]): embedded (a master key in the data
//!   directory), PKCS#11, or KMIP.
//!
//! Destroying a bucket's KEKs in the custodian makes every data key of the
//! bucket, and so every byte of it, unreadable: crypto-erasure.

pub mod kms;
pub mod pkcs11;
