//! Blob targets. Today: a local directory, one file per blob.
//!
//! File names come from random blob ids, never from object keys, so nothing a
//! client sends can choose where bytes land. A blob is durable (file and
//! directory entry synced) before `finish` returns.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use coffre_core::Result;
use coffre_core::blob::{BlobStore, BlobWriter, ByteStream};
use coffre_core::types::BlobId;
use futures::{StreamExt as _, stream};
use tokio::io::AsyncWriteExt as _;

/// Writes reach the disk in chunks of this size; reads are served in them too.
const IO_CHUNK: usize = 1024 * 1024;
/// Chunks read ahead of the one being sent.
const READ_AHEAD: usize = 2;

/// Reads `len` bytes at `off` into a fresh buffer without zeroing it first
/// (zeroing cost a tenth of a GET's CPU). The file is reopened through
/// `/proc/self/fd` so each chunk has its own offset while the open handle
/// keeps a blob deleted meanwhile readable; elsewhere, positional reads.
fn read_chunk(file: &File, off: u64, len: u64) -> io::Result<Bytes> {
    use std::io::{Read as _, Seek as _};
    use std::os::fd::AsRawFd as _;
    let mut buf = Vec::with_capacity(len as usize);
    match File::open(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(mut own) => {
            own.seek(io::SeekFrom::Start(off))?;
            own.take(len).read_to_end(&mut buf)?;
            if buf.len() as u64 != len {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than its record says"));
            }
        }
        Err(_) => {
            buf.resize(len as usize, 0);
            file.read_exact_at(&mut buf, off)?;
        }
    }
    Ok(Bytes::from(buf))
}

pub struct DiskBlobStore {
    root: PathBuf,
    /// Off only for benchmarks and the power-cut tests' negative control.
    fsync: bool,
}

impl DiskBlobStore {
    /// Opens (creating if needed) a blob directory with its 256 fan-out folders.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        for i in 0..=255u8 {
            std::fs::create_dir_all(root.join(format!("{i:02x}")))?;
        }
        sync_dir(&root)?;
        Ok(Self { root, fsync: true })
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

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

struct DiskBlobWriter {
    path: PathBuf,
    fsync: bool,
    file: tokio::fs::File,
    buf: BytesMut,
    len: u64,
}

impl DiskBlobWriter {
    async fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = self.buf.split();
            self.file.write_all(&chunk).await?;
        }
        Ok(())
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
        self.file.flush().await?;
        if self.fsync {
            self.file.sync_all().await?;
            let dir = self.path.parent().map(Path::to_path_buf).unwrap_or_default();
            blocking(move || sync_dir(&dir)).await?;
        }
        Ok(self.len)
    }

    async fn abort(self: Box<Self>) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

#[async_trait]
impl BlobStore for DiskBlobStore {
    async fn create(&self, id: BlobId) -> Result<Box<dyn BlobWriter>> {
        let path = self.path(id);
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?;
        Ok(Box::new(DiskBlobWriter { path, fsync: self.fsync, file, buf: BytesMut::with_capacity(IO_CHUNK), len: 0 }))
    }

    async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream> {
        let path = self.path(id);
        let file = Arc::new(blocking(move || File::open(path)).await?);
        let offsets =
            (range.start..range.end).step_by(IO_CHUNK).map(move |off| (off, (range.end - off).min(IO_CHUNK as u64)));
        let chunks = stream::iter(offsets)
            .map(move |(off, len)| {
                let file = file.clone();
                async move { Ok(blocking(move || read_chunk(&file, off, len)).await?) }
            })
            .buffered(READ_AHEAD);
        Ok(Box::pin(chunks))
    }

    async fn delete(&self, id: BlobId) -> Result<()> {
        match tokio::fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
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
        let mut w = store.create(id).await.expect("create");
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
        let mut w = store.create(id).await.expect("create");
        w.write(Bytes::from(data.clone())).await.expect("write");
        w.finish().await.expect("finish");
        let reading = store.read(id, 0..data.len() as u64).await.expect("read");
        store.delete(id).await.expect("delete");
        let got: Vec<Bytes> = reading.try_collect().await.expect("the open handle keeps the bytes");
        assert_eq!(got.concat(), data);

        let id = BlobId::generate();
        let mut w = store.create(id).await.expect("create");
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
        let mut w = store.create(id).await.expect("create");
        w.write(Bytes::from_static(b"partial")).await.expect("write");
        w.abort().await;
        assert!(!store.path(id).exists());
    }
}
