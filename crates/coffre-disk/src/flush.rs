//! fsync of files and directories, each counted in a process-wide record of
//! failed flushes that every writer's [`FlushWindow`] checks.
//!
//! One failed device flush may drop pages any file wrote since its last good
//! flush, so a later fsync that succeeds proves nothing for writes made before.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Failed fsync-like calls since the process started, from any file.
static FAILED_FLUSHES: AtomicU64 = AtomicU64::new(0);

/// Runs one fsync-like call on the real disk; a failure is counted, so every
/// other writer whose writes were in flight learns of it.
pub(crate) fn sync(call: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    call().inspect_err(|_| {
        FAILED_FLUSHES.fetch_add(1, Ordering::SeqCst);
    })
}

/// Makes a file's data and size durable (fsync).
pub fn sync_file(file: &File) -> io::Result<()> {
    sync(|| file.sync_all())
}

/// Makes a file's data durable, and its size when that changed (fdatasync):
/// for appends, where the inode's other fields do not matter.
pub fn sync_data(file: &File) -> io::Result<()> {
    sync(|| file.sync_data())
}

/// Makes the names created or removed in `dir` durable: a new file survives a
/// power cut only once both it and its directory are synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = File::open(dir)?;
    sync(|| dir.sync_all())
}

/// The directory holding `path`'s name: its parent, or `.` for a bare name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A span of writes that must all reach the disk: opened before the first
/// write, checked after the last sync.
#[derive(Debug, Clone, Copy)]
pub struct FlushWindow(u64);

impl FlushWindow {
    pub fn open() -> Self {
        Self(FAILED_FLUSHES.load(Ordering::SeqCst))
    }

    /// Fails if a flush failed anywhere since the window opened: the disk may
    /// have dropped this window's writes even though its own syncs succeeded.
    pub fn check(self) -> io::Result<()> {
        let now = FAILED_FLUSHES.load(Ordering::SeqCst);
        if now == self.0 {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "{} disk flush(es) failed while these writes were in flight; the disk may have dropped them",
            now - self.0
        )))
    }
}

/// The failed-flush record is one per process, and the tests of this crate
/// share a process: a test that fails a flush on purpose holds this lock
/// alone, so it never closes the window of a test that needs its writes to
/// succeed (those share it).
#[cfg(test)]
pub(crate) static RECORD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_flush_anywhere_closes_every_open_window() {
        let _alone = RECORD.write().await;
        let before = FlushWindow::open();
        sync(|| Ok(())).expect("a good sync");
        before.check().expect("no flush failed yet");
        let failed = sync(|| Err(io::Error::from_raw_os_error(5)));
        assert!(failed.is_err(), "the failure is passed on");
        assert!(before.check().is_err(), "an open window sees the failure");
        FlushWindow::open().check().expect("a window opened after it does not");
    }

    #[test]
    fn a_bare_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("master.key")), Path::new("."));
        assert_eq!(parent_dir(Path::new("kms/master.key")), Path::new("kms"));
        sync_dir(parent_dir(Path::new("master.key"))).expect("the current directory syncs");
    }
}
