//! Coffre's key custodians, the I/O half of encryption at rest: they hold the
//! key-encryption keys that `coffre_crypto::Kms` describes, and use them there.
//!
//! - [`embedded`]: a master key in the data directory seals one file per KEK;
//! - [`pkcs11`]: KEKs live in a PKCS#11 token (an HSM);
//! - [`kmip`]: KEKs live in an external key manager reached over KMIP and TLS.

pub mod embedded;
pub mod kmip;
pub mod pkcs11;
