//! Coffre's S3 REST front: authenticates with SigV4 (via `s3s`), maps each S3
//! operation onto the object service, and answers in S3's XML and error codes.
//!
//! `s3s` parses requests, checks signatures and serialises responses; it adds
//! no protection of its own, so [`front`] guards every request before it gets
//! there (sizes, presign lifetime, region, chunk sizes, idle bodies).

mod auth;
pub mod conn;
mod convert;
pub mod front;
mod inferred;
mod lifecycle;
mod ops;
mod sse;
mod worm;

pub use auth::{Credential, KeyStore};
pub use front::{Front, FrontConfig, RequestObserver, RequestRecord};
