//! Coffre's domain: validated names, object versions, and the object service.
//!
//! The object service owns S3 object semantics (versions, conditions, multipart,
//! listing); it reaches storage only through the [`meta::MetaStore`] and
//! [`blob::BlobStore`] traits, which engines in other crates implement.

pub mod access;
pub mod blob;
pub mod checksum;
pub mod cors;
pub mod error;
pub mod jobs;
pub mod lifecycle;
pub mod list;
pub mod lock;
pub mod meta;
pub mod placement;
pub mod service;
pub mod types;
pub mod versions;
pub mod witness;

pub use error::{Error, Result};
