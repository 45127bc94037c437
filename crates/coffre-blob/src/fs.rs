//! The blob store's view of a disk: the few file and directory calls it makes.
//! [`StdFs`] is the real one, through `coffre-disk`; tests plug in a disk that loses power.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// A file opened through a [`BlobFs`]. Calls may block.
pub trait BlobFile: Send + Sync + 'static {
    /// Writes all of `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Reads exactly `len` bytes at `offset`: a file that ends sooner is an
    /// `UnexpectedEof` error, never a short read.
    fn read_at(&self, offset: u64, len: u64) -> io::Result<Bytes>;
    /// The file's current size.
    fn size(&self) -> io::Result<u64>;
    /// Makes the file's data and size durable (fsync). It does not make the
    /// file's name durable: that takes [`BlobFs::sync_dir`] on its directory.
    fn sync_all(&self) -> io::Result<()>;
}

/// The directory and file calls of the blob store. Calls may block.
pub trait BlobFs: Send + Sync + 'static {
    fn exists(&self, path: &Path) -> io::Result<bool>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates a file that must not exist yet, open for writing.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BlobFile>>;
    /// Opens an existing file for reading. The handle keeps the bytes readable
    /// even if the file is removed meanwhile.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn BlobFile>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable: names created or removed in it.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether calls wait on a device. Those run on tokio's blocking pool;
    /// the others (memory-only disks) run on the caller's task.
    fn blocks(&self) -> bool {
        true
    }
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

struct StdFile(File);

impl BlobFile for StdFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }

    fn read_at(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        read_chunk(&self.0, offset, len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn sync_all(&self) -> io::Result<()> {
        coffre_disk::sync_file(&self.0)
    }
}

/// Reads `len` bytes at `off` into a fresh buffer without zeroing it first
/// (zeroing cost a tenth of a GET's CPU). The file is reopened through
/// `/proc/self/fd` so each chunk has its own offset while the open handle
/// keeps a blob deleted meanwhile readable; elsewhere, positional reads.
fn read_chunk(file: &File, off: u64, len: u64) -> io::Result<Bytes> {
    use std::io::{Read as _, Seek as _};
    use std::os::fd::AsRawFd as _;
    let want = usize::try_from(len).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(want);
    match File::open(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(mut own) => {
            own.seek(io::SeekFrom::Start(off))?;
            own.take(len).read_to_end(&mut buf)?;
            if buf.len() != want {
                return Err(short_file());
            }
        }
        Err(_) => {
            buf.resize(want, 0);
            file.read_exact_at(&mut buf, off)?;
        }
    }
    Ok(Bytes::from(buf))
}

pub(crate) fn short_file() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than its record says")
}

impl BlobFs for StdFs {
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BlobFile>> {
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Arc::new(StdFile(file)))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn BlobFile>> {
        Ok(Arc::new(StdFile(File::open(path)?)))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        coffre_disk::sync_dir(dir)
    }
}
