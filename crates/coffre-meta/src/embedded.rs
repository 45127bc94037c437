//! The embedded metadata engine: one redb file, a group-committing writer.
//!
//! All writes go through the disk layer's group-commit writer
//! ([`coffre_disk::GroupCommit`]), so concurrent small PUTs share an fsync
//! instead of queueing for one each. A job checks all its conditions before
//! it writes anything, so a job that fails leaves nothing behind in the
//! shared transaction. Callers hear back only after the commit is durable.

use std::path::Path;
use std::sync::Arc;

use coffre_core::error::{Error, Result};
use coffre_core::meta::VersionMeta;
use coffre_disk::GroupCommit;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase as _, StorageBackend, TableDefinition, WriteTransaction,
};

use crate::codec::meta_err;

mod access_keys;
mod blobs;
mod buckets;
mod keks;
mod objects;
mod rekey;
mod settings;
mod uploads;

pub(crate) use blobs::enqueue_gc;
pub(crate) use objects::noncurrent_in;
pub(crate) use uploads::remove_upload;

pub(crate) type ObjKey<'a> = (&'a str, &'a [u8]);

pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// Current version of each key: `(bucket, key) → (seq, ObjectVersion)`.
pub(crate) const OBJECTS: TableDefinition<ObjKey, &[u8]> = TableDefinition::new("objects");
/// Noncurrent versions, newest first: `(bucket, key, u64::MAX - seq) → (seq, ObjectVersion)`.
pub(crate) const VERSIONS: TableDefinition<(&str, &[u8], u64), &[u8]> = TableDefinition::new("object_versions");
pub(crate) const UPLOADS: TableDefinition<(&str, &[u8], &str), &[u8]> = TableDefinition::new("multipart_uploads");
pub(crate) const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("multipart_parts");
/// Blobs being written: collected at start-up if their write never committed.
const PENDING: TableDefinition<u128, i64> = TableDefinition::new("pending_blobs");
/// Blobs no version refers to any more, with the time they were let go.
const GC_QUEUE: TableDefinition<u128, i64> = TableDefinition::new("gc_queue");
const ACCESS_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("access_keys");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
/// KEK destructions owed, by KEK id (`keks.rs`).
const KEK_DESTROYS: TableDefinition<&str, &[u8]> = TableDefinition::new("kek_destroys");

/// Jobs a single commit may carry: enough to amortise the sync, few enough
/// that one slow batch does not hold many callers.
const MAX_BATCH: usize = 256;

/// Decodes `(seq, VersionMeta)` from a stored `(seq, ObjectVersion)` without
/// copying the inline data that follows it.
fn decode_meta(bytes: &[u8]) -> Result<VersionMeta> {
    let (_seq, rest): (u64, &[u8]) = postcard::take_from_bytes(bytes).map_err(meta_err)?;
    let (meta, _data): (VersionMeta, &[u8]) = postcard::take_from_bytes(rest).map_err(meta_err)?;
    Ok(meta)
}

/// Compacts a metadata file no server has open: live pages move to the front
/// and the file is cut after them, so freed pages (an erased bucket's names,
/// tags and metadata among them) past the cut leave the file. Returns its
/// sizes before and after, in bytes.
pub fn compact_file(path: &Path) -> Result<(u64, u64)> {
    let size = || std::fs::metadata(path).map(|m| m.len()).map_err(meta_err);
    let before = size()?;
    let mut db = coffre_disk::open_database(path).map_err(meta_err)?;
    while db.compact().map_err(meta_err)? {}
    drop(db);
    Ok((before, size()?))
}

pub struct EmbeddedMeta {
    db: Arc<Database>,
    writer: GroupCommit,
}

impl EmbeddedMeta {
    /// Opens or creates the database file, creating every table.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Durability::Immediate)
    }

    /// Commits are never synced: a power cut loses acknowledged writes. For
    /// benchmarks and the power-cut tests' negative control only.
    pub fn open_unsynced(path: &Path) -> Result<Self> {
        Self::open_with(path, Durability::None)
    }

    /// Opens or creates a database on `backend` instead of a file: the crash
    /// tests run it on a simulated disk that loses power.
    pub fn open_backend(backend: impl StorageBackend) -> Result<Self> {
        Self::start(Database::builder().create_with_backend(backend).map_err(meta_err)?, Durability::Immediate)
    }

    /// [`Self::open_backend`] with commits never synced, as
    /// [`Self::open_unsynced`]: the crash tests' negative control.
    pub fn open_backend_unsynced(backend: impl StorageBackend) -> Result<Self> {
        Self::start(Database::builder().create_with_backend(backend).map_err(meta_err)?, Durability::None)
    }

    fn open_with(path: &Path, durability: Durability) -> Result<Self> {
        Self::start(coffre_disk::open_database(path).map_err(meta_err)?, durability)
    }

    /// Creates every table, then starts the writer thread.
    fn start(db: Database, durability: Durability) -> Result<Self> {
        let db = Arc::new(db);
        let txn = db.begin_write().map_err(meta_err)?;
        {
            txn.open_table(BUCKETS).map_err(meta_err)?;
            txn.open_table(OBJECTS).map_err(meta_err)?;
            txn.open_table(VERSIONS).map_err(meta_err)?;
            txn.open_table(UPLOADS).map_err(meta_err)?;
            txn.open_table(PARTS).map_err(meta_err)?;
            txn.open_table(PENDING).map_err(meta_err)?;
            txn.open_table(GC_QUEUE).map_err(meta_err)?;
            txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            txn.open_table(SETTINGS).map_err(meta_err)?;
            txn.open_table(KEK_DESTROYS).map_err(meta_err)?;
        }
        txn.commit().map_err(meta_err)?;

        let writer = GroupCommit::start("coffre-meta-writer", db.clone(), durability, MAX_BATCH).map_err(meta_err)?;
        Ok(Self { db, writer })
    }

    /// Runs `f` in the next group commit; resolves once that commit is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.writer.write(f).await.map_err(|e| Error::Meta(format!("metadata {e}")))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(meta_err)?;
            f(&txn)
        })
        .await
        .map_err(meta_err)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_core::meta::SettingMeta;

    #[tokio::test]
    async fn a_new_database_is_built_aside_and_a_half_built_one_is_thrown_away() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("meta.redb");
        // What a power cut during an earlier first start could leave.
        std::fs::write(dir.path().join("meta.redb.new"), vec![0; 8192]).expect("leftover");
        let meta = EmbeddedMeta::open(&path).expect("open");
        assert!(!dir.path().join("meta.redb.new").exists());
        meta.put_setting_if_absent("k", "v").await.expect("write");
        drop(meta);
        // The writer thread lets go of the file once it sees the channel close.
        let mut reopened = EmbeddedMeta::open(&path);
        for _ in 0..200 {
            if reopened.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            reopened = EmbeddedMeta::open(&path);
        }
        let meta = reopened.expect("reopen");
        assert_eq!(meta.setting("k").await.expect("read").as_deref(), Some("v"));
    }
}
