//! Metadata engines for Coffre's object service.
//!
//! `embedded` keeps everything in one redb file: ACID, ordered B-trees, and
//! no server to run. The PostgreSQL engine will implement the same
//! [`coffre_core::meta::MetaStore`] trait over the same record shapes.

pub mod embedded;
mod rekey;
mod watched;

pub use embedded::EmbeddedMeta;
