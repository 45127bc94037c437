//! Coffre's S3 REST front: authenticates with SigV4 (via `s3s`), maps each S3
//! operation onto the object service, and answers in S3's XML and error codes.
//!
//! `s3s` parses requests, checks signatures and serialises responses; it adds
//! no protection of its own, so [`front`] guards every request before it gets
//! there (sizes, presign lifetime, region, chunk sizes, idle bodies).
//!
//! Map: [`front`] serves; `guards` (with `claim`, the one reading of a
//! request's authentication), `cors` (preflights and `Access-Control-*`
//! headers), `record`, `vhost` and `s3s_fixes` are its parts; `ops` holds
//! one file per S3 feature, which read requests through `request` and fill
//! answers through `response`; `error` maps errors.

mod auth;
mod authorize;
mod claim;
pub mod conn;
mod cors;
mod error;
pub mod front;
mod guards;
mod inferred;
mod ops;
mod record;
mod request;
mod response;
mod s3s_fixes;
mod sts;
mod vhost;

pub use auth::{Credential, KeyStore};
pub use authorize::{PolicySimulator, Verdict};
pub use claim::AuthMethod;
pub use cors::PREFLIGHT;
pub use front::{Front, FrontConfig, RequestObserver, RequestRecord};
pub use s3s_fixes::may_log;
