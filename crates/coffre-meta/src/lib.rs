//! Metadata engines for Coffre's object service.
//!
//! `embedded` keeps everything in one redb file: ACID, ordered B-trees, and
//! no server to run. `postgres` implements the same
//! [`coffre_core::meta::MetaStore`] trait over the same record shapes in a
//! PostgreSQL database that many gateways share.

mod codec;
pub mod embedded;
pub mod postgres;

pub use embedded::EmbeddedMeta;
pub use postgres::{PgMeta, PgOptions};
