//! Blob targets. Today: a local directory, one file per blob.
//!
//! File names come from random blob ids, never from object keys, so nothing a
//! client sends can choose where bytes land. A blob is durable (file and
//! directory entry synced) before `finish` returns. The store reaches the disk
//! only through [`fs::BlobFs`], so tests can run it on a disk that loses power.

#[cfg(test)]
mod crash_tests;
pub mod fs;
#[cfg(any(test, feature = "sim"))]
pub mod sim;

use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use coffre_core::Result;
use coffre_core::blob::{BlobStore, BlobWriter, ByteStream, Placement};
use coffre_core::types::BlobId;
use coffre_disk::FlushWindow;
use futures::{StreamExt as _, stream};

use crate::fs::{BlobFile, BlobFs, StdFs};

/// Writes reach the disk in chunks of this size; reads are served in them too.
const IO_CHUNK: usize = 1024 * 1024;
/// Chunks read ahead of the one being sent.
const READ_AHEAD: usize = 2;

pub struct DiskBlobStore {
    fs: Arc<dyn BlobFs>,
    root: PathBuf,
    /// Off only for benchmarks and the power-cut tests' negative control.
    fsync: bool,
}

impl DiskBlobStore {
    /// Opens (creating if needed) a blob directory with its 256 fan-out folders.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        Self::open_on(Arc::new(StdFs), root)
    }

    /// Opens a blob directory on `fs`: the real filesystem, or a simulated one.
    pub fn open_on(fs: Arc<dyn BlobFs>, root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        create_dir_durably(fs.as_ref(), &root)?;
        for i in 0..=255u8 {
            fs.create_dir_all(&root.join(format!("{i:02x}")))?;
        }
        fs.sync_dir(&root)?;
        Ok(Self { fs, root, fsync: true })
    }

    /// Never fsyncs: an acknowledged blob lives in the page cache only, and a
    /// power cut loses it. For benchmarks and the power-cut tests' negative
    /// control; the server warns loudly when it runs this way.
    pub fn unsynced(self) -> Self {
        Self { fsync: false, ..self }
    }

    fn path(&self, id: BlobId) -> PathBuf {
        let name = id.to_string();
        self.root.join(&name[..2]).join(name)
    }
}

/// Creates `dir` and its missing parents so that it survives a power cut. A
/// name is durable once the directory holding it is synced, and syncing `dir`
/// does not do it: each new directory's parent is synced, and `dir`'s own
/// parent always, since a start that died before that sync left a name that
/// only looks settled.
fn create_dir_durably(fs: &dyn BlobFs, dir: &Path) -> io::Result<()> {
    let mut parents = Vec::new();
    let mut at = dir;
    while let Some(parent) = at.parent() {
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        parents.push(parent);
        if fs.exists(parent)? {
            break;
        }
        at = parent;
    }
    fs.create_dir_all(dir)?;
    parents.iter().try_for_each(|p| fs.sync_dir(p))
}

/// A disk call under way.
type Io<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

/// Starts one disk call. On a real disk it starts at once on tokio's blocking
/// pool, so a chunk is written while the next one arrives. On a memory-only
/// disk it runs when first polled, on the caller's task: the order of disk
/// calls then follows the caller alone, which keeps a simulation replayable.
fn io<T: Send + 'static>(fs: &dyn BlobFs, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Io<T> {
    if fs.blocks() {
        let task = tokio::task::spawn_blocking(f);
        Box::pin(async move { task.await.map_err(io::Error::other)? })
    } else {
        Box::pin(async move { f() })
    }
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

struct DiskBlobWriter {
    fs: Arc<dyn BlobFs>,
    path: PathBuf,
    fsync: bool,
    file: Arc<dyn BlobFile>,
    buf: BytesMut,
    /// Bytes handed to the disk so far: where the next chunk goes.
    written: u64,
    len: u64,
    /// The chunk write under way. One at most, as `tokio::fs::File` keeps:
    /// each chunk waits for the one before, so they land in order.
    in_flight: Option<Io<()>>,
    /// Opened before the file was created: a flush that fails anywhere before
    /// this blob is durable may have dropped its pages.
    window: FlushWindow,
}

impl DiskBlobWriter {
    /// Waits for the chunk under way, if any.
    async fn settle(&mut self) -> io::Result<()> {
        match self.in_flight.take() {
            Some(write) => write.await,
            None => Ok(()),
        }
    }

    /// Hands the buffered bytes to the disk, after the chunk before them.
    async fn flush_buf(&mut self) -> io::Result<()> {
        self.settle().await?;
        if !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            let (file, offset) = (self.file.clone(), self.written);
            self.written += chunk.len() as u64;
            self.in_flight = Some(io(self.fs.as_ref(), move || file.write_at(offset, &chunk)));
        }
        Ok(())
    }

    /// Syncs the file, then its directory entry: only both make it survive a
    /// power cut, and only if no flush failed meanwhile (see [`FlushWindow`]).
    fn make_durable(&self) -> Io<()> {
        let (fs, file, dir, window) = (self.fs.clone(), self.file.clone(), parent(&self.path), self.window);
        io(self.fs.as_ref(), move || {
            file.sync_all()?;
            fs.sync_dir(&dir)?;
            window.check()
        })
    }
}

#[async_trait]
impl BlobWriter for DiskBlobWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.len += chunk.len() as u64;
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() >= IO_CHUNK {
            self.flush_buf().await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        self.flush_buf().await?;
        self.settle().await?;
        if self.fsync {
            self.make_durable().await?;
        }
        Ok(self.len)
    }

    async fn abort(mut self: Box<Self>) {
        // A chunk under way finishes on its own; its bytes go with the file.
        drop(self.in_flight.take());
        let (fs, path) = (self.fs.clone(), self.path.clone());
        let _ = io(self.fs.as_ref(), move || fs.remove_file(&path)).await;
    }
}

#[async_trait]
impl BlobStore for DiskBlobStore {
    async fn create(&self, id: BlobId, _placement: &Placement) -> Result<Box<dyn BlobWriter>> {
        let path = self.path(id);
        let window = FlushWindow::open();
        let (fs, at) = (self.fs.clone(), path.clone());
        let file = io(self.fs.as_ref(), move || fs.create_new(&at)).await?;
        Ok(Box::new(DiskBlobWriter {
            fs: self.fs.clone(),
            path,
            fsync: self.fsync,
            file,
            buf: BytesMut::with_capacity(IO_CHUNK),
            written: 0,
            len: 0,
            in_flight: None,
            window,
        }))
    }

    async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream> {
        let (fs, path) = (self.fs.clone(), self.path(id));
        let file = io(self.fs.as_ref(), move || fs.open(&path)).await?;
        let fs = self.fs.clone();
        let offsets =
            (range.start..range.end).step_by(IO_CHUNK).map(move |off| (off, (range.end - off).min(IO_CHUNK as u64)));
        let chunks = stream::iter(offsets)
            .map(move |(off, len)| {
                let file = file.clone();
                let chunk = io(fs.as_ref(), move || file.read_at(off, len));
                async move { Ok(chunk.await?) }
            })
            .buffered(READ_AHEAD);
        Ok(Box::pin(chunks))
    }

    /// The removal is durable when this returns (with fsync on): the collector
    /// forgets a blob once deleted, so one back after a power cut would leak.
    /// The directory is synced even if the blob was already gone, as an
    /// earlier removal may be the one not yet durable.
    async fn delete(&self, id: BlobId) -> Result<()> {
        let (fs, path, fsync) = (self.fs.clone(), self.path(id), self.fsync);
        io(self.fs.as_ref(), move || {
            match fs.remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            if fsync { fs.sync_dir(&parent(&path)) } else { Ok(()) }
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt as _;

    #[tokio::test]
    async fn write_then_read_ranges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskBlobStore::open(dir.path().join("blobs")).expect("open");
        let id = BlobId::generate();
        let data: Vec<u8> = (0..3 * IO_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut w = store.create(id, &Placement::default()).await.expect("create");
        for piece in data.chunks(70_000) {
            w.write(Bytes::copy_from_slice(piece)).await.expect("write");
        }
        assert_eq!(w.finish().await.expect("finish"), data.len() as u64);

        for range in [0..data.len() as u64, 5..IO_CHUNK as u64 + 9, (data.len() - 3) as u64..data.len() as u64] {
            let got: Vec<Bytes> =
                store.read(id, range.clone()).await.expect("read").try_collect().await.expect("stream");
            assert_eq!(got.concat(), &data[range.start as usize..range.end as usize]);
        }
        store.delete(id).await.expect("delete");
        store.delete(id).await.expect("deleting twice is fine");
        assert!(store.read(id, 0..1).await.is_err());
    }

    #[tokio::test]
    async fn a_read_under_way_outlives_the_delete_and_sees_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskBlobStore::open(dir.path()).expect("open");
        let id = BlobId::generate();
        let data: Vec<u8> = (0..2 * IO_CHUNK + 5).map(|i| (i % 7) as u8).collect();
        let mut w = store.create(id, &Placement::default()).await.expect("create");
        w.write(Bytes::from(data.clone())).await.expect("write");
        w.finish().await.expect("finish");
        let reading = store.read(id, 0..data.len() as u64).await.expect("read");
        store.delete(id).await.expect("delete");
        let got: Vec<Bytes> = reading.try_collect().await.expect("the open handle keeps the bytes");
        assert_eq!(got.concat(), data);

        let id = BlobId::generate();
        let mut w = store.create(id, &Placement::default()).await.expect("create");
        w.write(Bytes::from_static(b"short")).await.expect("write");
        w.finish().await.expect("finish");
        let past_end: Result<Vec<Bytes>> = store.read(id, 0..10).await.expect("read").try_collect().await;
        assert!(past_end.is_err(), "a blob shorter than asked is an error, not a short read");
    }

    #[tokio::test]
    async fn aborted_blob_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskBlobStore::open(dir.path()).expect("open");
        let id = BlobId::generate();
        let mut w = store.create(id, &Placement::default()).await.expect("create");
        w.write(Bytes::from_static(b"partial")).await.expect("write");
        w.abort().await;
        assert!(!store.path(id).exists());
    }
}
