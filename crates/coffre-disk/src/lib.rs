//! Coffre's disk layer, the one place that makes writes durable: every writer
//! to disk (blobs, metadata, the placement index, the audit log, key files) goes through it.
//!
//! - [`flush`]: fsync of files and of the directories holding their names,
//!   each counted in the process-wide record of failed flushes;
//! - [`atomic`]: files that appear whole or not at all;
//! - [`database`]: redb files created whole, synced through that record, and
//!   the group-commit writer that shares one sync among concurrent writes.

pub mod atomic;
pub mod database;
pub mod flush;
mod watched;

pub use atomic::{create_private, replace};
pub use database::{CommitError, GroupCommit, open_database};
pub use flush::{FlushWindow, parent_dir, sync_data, sync_dir, sync_file};
