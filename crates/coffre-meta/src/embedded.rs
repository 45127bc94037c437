//! The embedded metadata engine: one redb file, a group-committing writer.
//!
//! All writes go through one writer thread that runs every queued job in a
//! single redb transaction and syncs it once (group commit), so concurrent
//! small PUTs share an fsync instead of queueing for one each. A job checks
//! all its conditions before it writes anything, so a job that fails leaves
//! nothing behind in the shared transaction. Callers hear back only after the
//! commit is durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use coffre_core::error::{Error, Result};
use coffre_core::meta::VersionMeta;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase as _, StorageBackend, TableDefinition, WriteTransaction,
};
use tokio::sync::oneshot;

use crate::codec::meta_err;
use crate::watched::WatchedFile;

mod access_keys;
mod blobs;
mod buckets;
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

type Reply = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> Reply + Send>;

pub struct EmbeddedMeta {
    db: Arc<Database>,
    jobs: mpsc::Sender<Job>,
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
        create_if_missing(path).map_err(meta_err)?;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(meta_err)?;
        let backend = WatchedFile::new(file).map_err(meta_err)?;
        Self::start(Database::builder().create_with_backend(backend).map_err(meta_err)?, durability)
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
        }
        txn.commit().map_err(meta_err)?;

        let (tx, rx) = mpsc::channel::<Job>();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("coffre-meta-writer".into())
            .spawn(move || run_writer(&writer_db, &rx, durability))
            .map_err(meta_err)?;
        Ok(Self { db, jobs: tx })
    }

    /// Runs `f` in the next group commit; resolves once that commit is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let outcome = f(txn);
            Box::new(move |commit| {
                let result = match commit {
                    Ok(()) => outcome,
                    Err(e) => Err(Error::Meta(format!("commit failed: {e}"))),
                };
                let _ = tx.send(result);
            })
        });
        self.jobs.send(job).map_err(|_| Error::Meta("metadata writer has stopped".into()))?;
        rx.await.map_err(|_| Error::Meta("metadata writer dropped a job".into()))?
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

/// Creates the database file if there is none, whole or not at all, and
/// makes its name durable. redb writes its magic number last and refuses a
/// file cut short before that for good, so a power cut while it creates one
/// in place would stop every later start. A new database is built under
/// another name (redb syncs it), renamed into place, and the directory
/// synced; that last sync runs on every start, since a start that died
/// before it left a name that only looks settled.
fn create_if_missing(path: &Path) -> std::io::Result<()> {
    if !path.try_exists()? {
        let mut fresh = path.as_os_str().to_owned();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        // A leftover of a start that died while creating it: never in use.
        match std::fs::remove_file(&fresh) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        drop(Database::create(&fresh).map_err(std::io::Error::other)?);
        std::fs::rename(&fresh, path)?;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

fn run_writer(db: &Database, jobs: &mpsc::Receiver<Job>, durability: Durability) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut txn = match db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                fail_all(batch, &e.to_string());
                continue;
            }
        };
        if let Err(e) = txn.set_durability(durability) {
            fail_all(batch, &e.to_string());
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(&txn)).collect();
        let commit = txn.commit().map_err(|e| e.to_string());
        if let Err(e) = &commit {
            tracing::error!(error = %e, "metadata commit failed");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
}

fn fail_all(batch: Vec<Job>, why: &str) {
    tracing::error!(error = %why, "metadata write transaction could not start");
    // Dropping a job drops its reply channel: its caller sees the failure.
    drop(batch);
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
