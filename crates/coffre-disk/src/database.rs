//! redb files on the disk layer: created whole, synced through the failed-flush
//! record, and written by one thread that commits queued writes together.
//!
//! Group commit: one writer thread runs every queued job in a single write
//! transaction and syncs it once, so concurrent small writes share an fsync
//! instead of queueing for one each. Jobs share that transaction, so a job
//! checks all its conditions before it writes anything: one that fails
//! leaves nothing behind. Callers hear back only after the commit is durable.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use crate::flush::{parent_dir, sync_dir};
use crate::watched::WatchedFile;

/// Opens the database at `path`, creating it (whole) if there is none, on a
/// backend whose syncs report to the failed-flush record.
pub fn open_database(path: &Path) -> io::Result<Database> {
    create_if_missing(path)?;
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    Database::builder().create_with_backend(WatchedFile::new(file)?).map_err(io::Error::other)
}

/// Creates the database file if there is none, whole or not at all, and
/// makes its name durable. redb writes its magic number last and refuses a
/// file cut short before that for good, so a power cut while it creates one
/// in place would stop every later start. A new database is built under
/// another name (redb syncs it), renamed into place, and the directory
/// synced; that last sync runs on every start, since a start that died
/// before it left a name that only looks settled.
fn create_if_missing(path: &Path) -> io::Result<()> {
    if !path.try_exists()? {
        let mut fresh = path.as_os_str().to_owned();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        // A leftover of a start that died while creating it: never in use.
        match std::fs::remove_file(&fresh) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        drop(Database::create(&fresh).map_err(io::Error::other)?);
        std::fs::rename(&fresh, path)?;
    }
    sync_dir(parent_dir(path))
}

/// Why a write through [`GroupCommit`] did not become durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("writer has stopped")]
    Stopped,
    /// The writer could not start a transaction for the job (logged there).
    #[error("writer dropped a job")]
    Dropped,
}

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> Reply + Send>;

/// The queue of a database's writer thread.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer thread `name` on `db`. A commit carries at most
    /// `max_batch` jobs: enough to amortise the sync, few enough that one
    /// slow batch does not hold many callers.
    pub fn start(name: &str, db: Arc<Database>, durability: Durability, max_batch: usize) -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let writer = name.to_owned();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run_writer(&db, &queue, durability, max_batch, &writer))?;
        Ok(Self { jobs })
    }

    /// Runs `job` in the next group commit; gives its outcome once that
    /// commit is durable. A commit that fails discards every job's outcome.
    pub async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&WriteTransaction) -> T + Send + 'static,
    ) -> Result<T, CommitError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let outcome = job(txn);
            Box::new(move |commit| {
                let _ = tx.send(commit.map(|()| outcome).map_err(CommitError::Commit));
            })
        });
        self.jobs.send(job).map_err(|_| CommitError::Stopped)?;
        rx.await.map_err(|_| CommitError::Dropped)?
    }
}

fn run_writer(db: &Database, jobs: &mpsc::Receiver<Job>, durability: Durability, max_batch: usize, name: &str) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut txn = match db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                fail_all(batch, name, &e.to_string());
                continue;
            }
        };
        if let Err(e) = txn.set_durability(durability) {
            fail_all(batch, name, &e.to_string());
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(&txn)).collect();
        let commit = txn.commit().map_err(|e| e.to_string());
        if let Err(e) = &commit {
            tracing::error!(writer = name, error = %e, "group commit failed");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
}

fn fail_all(batch: Vec<Job>, name: &str, why: &str) {
    tracing::error!(writer = name, error = %why, "write transaction could not start");
    // Dropping a job drops its reply channel: its caller sees the failure.
    drop(batch);
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase as _, TableDefinition};

    use super::*;

    const TABLE: TableDefinition<u64, u64> = TableDefinition::new("t");

    #[tokio::test]
    async fn queued_writes_share_commits_and_are_readable_after() {
        let _no_failure_injected = crate::flush::RECORD.read().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.redb");
        let db = Arc::new(open_database(&path).expect("create"));
        let writer = GroupCommit::start("test-writer", db.clone(), Durability::Immediate, 4).expect("start");
        let tasks: Vec<_> = (0..10u64)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .write(move |txn| -> Result<u64, redb::Error> {
                            txn.open_table(TABLE)?.insert(i, i * 2)?;
                            Ok(i)
                        })
                        .await
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.expect("task").expect("committed").expect("applied"), i as u64);
        }
        let txn = db.begin_read().expect("read");
        assert_eq!(txn.open_table(TABLE).expect("table").get(9).expect("get").map(|v| v.value()), Some(18));
        assert!(!dir.path().join("index.redb.new").exists(), "no half-made database left");
    }
}
