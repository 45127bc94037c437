//! A simulated disk that loses power, for crash tests of the blob store and of
//! the metadata engine (through a redb backend over a [`SimFile`]).
//!
//! The model is the strict one (docs/durability.md, "Crash simulation"):
//! - every file has a visible image (what calls see) and a durable one (what
//!   survives a crash); `sync_all` / `sync_data` make the whole visible image
//!   durable, size included;
//! - every directory has visible and durable entries; creating or removing a
//!   name shows at once but becomes durable only when that directory is
//!   synced. Syncing a file does not make its name durable;
//! - [`SimFs::crash`] builds the disk a reboot would find: the durable state
//!   and, in [`CrashMode::KeepRandom`], a random subset of the unsynced pages
//!   (a disk cache flushes in any order), the old or the new size of each file
//!   (grown regions read as zeros unless their pages were kept), and a random
//!   prefix of each directory's pending entry changes (journals keep order);
//! - [`SimFs::fail_next_syncs`] makes syncs fail with EIO. A failed file sync
//!   writes back a random part of the dirty pages and forgets the rest, as
//!   Linux marks the pages clean after a failed fsync: a later sync succeeds
//!   without them. A failed directory sync keeps the unsynced entries pending;
//!   real filesystems abort their journal on a metadata write error and fail
//!   every later call, which no caller can mistake for success.
//!
//! Everything is deterministic given the seeds. Calls are counted ("ops":
//! writes, size changes, syncs, creates, removes) so a test can place crash
//! points and tell which acknowledgements came before them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use crate::fs::{BlobFile, BlobFs, short_file};

/// Unsynced data is lost or kept in units of this many bytes.
pub const PAGE: usize = 4096;

type Page = Arc<[u8; PAGE]>;
type Ino = u64;
const ROOT: Ino = 0;
/// Linux's EIO.
const EIO: i32 = 5;

/// A small seeded PRNG (SplitMix64): enough for choosing crash states, and
/// the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True `num` times out of `den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// What a crash keeps besides the durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Nothing: every unsynced write and entry change is lost.
    DropUnsynced,
    /// A random subset of unsynced pages, the old or new size of each file,
    /// and a random prefix of each directory's pending entry changes.
    KeepRandom,
}

/// Crash images to take automatically while a workload runs.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Seeds the choice of points and of what each image keeps.
    pub seed: u64,
    /// Take one image just before and one just after every successful sync.
    pub around_syncs: bool,
    /// Also take one after any op with this chance, in thousandths.
    pub per_mille: u64,
}

/// A crash image taken during a run: the disk a reboot would find if power
/// had gone after `at_op` ops.
pub struct Crash {
    pub at_op: u64,
    pub mode: CrashMode,
    pub fs: SimFs,
}

/// The contents of one file: pages, `None` for zeros. Bytes past `len` in the
/// last page are always zero, so growing a file shows zeros.
#[derive(Debug, Clone, Default)]
struct Image {
    len: u64,
    pages: Vec<Option<Page>>,
}

fn page_count(len: u64) -> usize {
    usize::try_from(len.div_ceil(PAGE as u64)).unwrap_or(usize::MAX)
}

/// Splits a byte offset into a page index and an offset in that page.
fn at(offset: u64) -> (usize, usize) {
    let page = usize::try_from(offset / PAGE as u64).unwrap_or(usize::MAX);
    (page, (offset % PAGE as u64) as usize)
}

impl Image {
    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        if end > self.len {
            self.len = end;
            self.pages.resize(page_count(end), None);
        }
        let mut done = 0;
        while done < data.len() {
            let (page, start) = at(offset + done as u64);
            let n = (PAGE - start).min(data.len() - done);
            let slot = self.pages[page].get_or_insert_with(|| Arc::new([0; PAGE]));
            Arc::make_mut(slot)[start..start + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
    }

    /// Fills `out` from `offset`; the caller checks the bounds.
    fn read(&self, offset: u64, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            let (page, start) = at(offset + done as u64);
            let n = (PAGE - start).min(out.len() - done);
            match self.pages.get(page).and_then(Option::as_ref) {
                Some(p) => out[done..done + n].copy_from_slice(&p[start..start + n]),
                None => out[done..done + n].fill(0),
            }
            done += n;
        }
    }

    fn set_len(&mut self, len: u64) {
        self.pages.resize(page_count(len), None);
        let (last, keep) = at(len);
        if keep > 0
            && let Some(Some(p)) = self.pages.get_mut(last)
        {
            Arc::make_mut(p)[keep..].fill(0);
        }
        self.len = len;
    }

    /// Copies page `index` of `from`, cut to this image's length.
    fn take_page(&mut self, from: &Image, index: usize) {
        if index >= self.pages.len() {
            return;
        }
        self.pages[index] = from.pages.get(index).cloned().flatten();
        let (last, keep) = at(self.len);
        if index == last
            && keep > 0
            && let Some(p) = &mut self.pages[index]
        {
            Arc::make_mut(p)[keep..].fill(0);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct FileNode {
    visible: Image,
    durable: Image,
    /// Pages where the visible image may differ from what a sync would
    /// write: written, or inside a size change, since the last sync.
    dirty: BTreeSet<usize>,
}

impl FileNode {
    fn mark(&mut self, from: u64, to: u64) {
        let (lo, hi) = (from.min(to), from.max(to));
        if lo < hi {
            self.dirty.extend(at(lo).0..page_count(hi));
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let old = self.visible.len;
        self.visible.write(offset, data);
        self.mark(offset, offset + data.len() as u64);
        // Growth, and a hole before `offset`, are new too.
        self.mark(old, self.visible.len);
    }

    fn set_len(&mut self, len: u64) {
        self.mark(self.visible.len, len);
        // The page cut at the new end changes too (its tail becomes zero).
        self.mark(len, len + 1);
        self.visible.set_len(len);
    }

    /// The durable image with whatever of the unsynced state `mode` keeps.
    fn settle(&self, rng: &mut SimRng, mode: CrashMode) -> Image {
        let mut image = self.durable.clone();
        if mode == CrashMode::DropUnsynced || self.dirty.is_empty() {
            return image;
        }
        if rng.chance(1, 2) {
            image.set_len(self.visible.len);
        }
        for &page in &self.dirty {
            if rng.chance(1, 2) {
                image.take_page(&self.visible, page);
            }
        }
        image
    }

    fn sync(&mut self) {
        let mut durable = std::mem::take(&mut self.durable);
        durable.set_len(self.visible.len);
        for &page in &self.dirty {
            durable.take_page(&self.visible, page);
        }
        self.durable = durable;
        self.dirty.clear();
    }

    /// After a failed sync: part of the dirty pages reached the disk, the
    /// rest is forgotten (still visible, never written back).
    fn fail_sync(&mut self, rng: &mut SimRng) {
        self.durable = self.settle(rng, CrashMode::KeepRandom);
        self.dirty.clear();
    }
}

#[derive(Debug, Clone, Default)]
struct DirNode {
    visible: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
    /// Entry changes not yet durable, oldest first: a name linked to an
    /// inode, or unlinked (`None`).
    pending: Vec<(String, Option<Ino>)>,
}

impl DirNode {
    fn link(&mut self, name: &str, ino: Ino) {
        self.visible.insert(name.to_owned(), ino);
        self.pending.push((name.to_owned(), Some(ino)));
    }

    fn unlink(&mut self, name: &str) {
        self.visible.remove(name);
        self.pending.push((name.to_owned(), None));
    }

    /// Makes the first `n` pending changes durable.
    fn apply(&mut self, n: usize) {
        for (name, change) in self.pending.drain(..n) {
            match change {
                Some(ino) => self.durable.insert(name, ino),
                None => self.durable.remove(&name),
            };
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Change,
    Sync,
}

struct Disk {
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
    ops: u64,
    /// Syncs still to fail.
    fail_syncs: u32,
    failed_syncs: u64,
    /// Decides what a failed sync writes back.
    rng: SimRng,
    capture: Option<(Capture, SimRng)>,
    crashes: Vec<Crash>,
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(EIO)
}

/// The names along `path`; `..` and non-UTF-8 names are not simulated.
fn names(path: &Path) -> io::Result<Vec<&str>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => {
                out.push(n.to_str().ok_or_else(|| io::Error::other("SimFs: non-UTF-8 name"))?);
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::other("SimFs: only plain paths are simulated"));
            }
        }
    }
    Ok(out)
}

impl Disk {
    fn new(seed: u64) -> Self {
        Self {
            nodes: BTreeMap::from([(ROOT, Node::Dir(DirNode::default()))]),
            next_ino: ROOT + 1,
            ops: 0,
            fail_syncs: 0,
            failed_syncs: 0,
            rng: SimRng::new(seed),
            capture: None,
            crashes: Vec::new(),
        }
    }

    fn dir(&self, ino: Ino) -> io::Result<&DirNode> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(io::Error::from(io::ErrorKind::NotADirectory)),
            None => Err(not_found()),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> io::Result<&mut DirNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(io::Error::from(io::ErrorKind::NotADirectory)),
            None => Err(not_found()),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> io::Result<&mut FileNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(io::Error::from(io::ErrorKind::IsADirectory)),
            None => Err(not_found()),
        }
    }

    fn file(&self, ino: Ino) -> io::Result<&FileNode> {
        match self.nodes.get(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(io::Error::from(io::ErrorKind::IsADirectory)),
            None => Err(not_found()),
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for name in names(path)? {
            ino = *self.dir(ino)?.visible.get(name).ok_or_else(not_found)?;
        }
        Ok(ino)
    }

    /// The directory holding `path` and the last name in it.
    fn parent<'p>(&self, path: &'p Path) -> io::Result<(Ino, &'p str)> {
        let names = names(path)?;
        let (last, dirs) = names.split_last().ok_or_else(|| io::Error::other("SimFs: no file name"))?;
        let mut ino = ROOT;
        for name in dirs {
            ino = *self.dir(ino)?.visible.get(*name).ok_or_else(not_found)?;
        }
        Ok((ino, last))
    }

    fn add(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    /// Counts one op, runs it, and takes the crash images the capture asks for.
    fn op<T>(&mut self, kind: Kind, run: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        if kind == Kind::Sync {
            self.maybe_capture(true);
        }
        self.ops += 1;
        let out = run(self);
        self.maybe_capture(kind == Kind::Sync && out.is_ok());
        out
    }

    fn maybe_capture(&mut self, at_sync: bool) {
        let Some((capture, mut rng)) = self.capture.take() else { return };
        if (at_sync && capture.around_syncs) || rng.chance(capture.per_mille, 1000) {
            let mode = if rng.chance(3, 4) { CrashMode::KeepRandom } else { CrashMode::DropUnsynced };
            let image = self.crash_image(rng.next_u64(), mode);
            self.crashes.push(Crash { at_op: self.ops, mode, fs: SimFs::wrap(image) });
        }
        self.capture = Some((capture, rng));
    }

    /// Takes a sync failure if one is due: part of the dirty state reached the disk.
    fn sync_fails(&mut self) -> bool {
        if self.fail_syncs == 0 {
            return false;
        }
        self.fail_syncs -= 1;
        self.failed_syncs += 1;
        true
    }

    fn sync_file(&mut self, ino: Ino) -> io::Result<()> {
        let failed = self.sync_fails();
        let mut rng = self.rng.clone();
        let file = self.file_mut(ino)?;
        if failed {
            file.fail_sync(&mut rng);
        } else {
            file.sync();
        }
        self.rng = rng;
        if failed { Err(eio()) } else { Ok(()) }
    }

    fn sync_dir(&mut self, ino: Ino) -> io::Result<()> {
        let pending = self.dir(ino)?.pending.len();
        if self.sync_fails() {
            // Some of the changes may have made it; the rest stay pending.
            let done = usize::try_from(self.rng.below(pending as u64 + 1)).unwrap_or(0);
            self.dir_mut(ino)?.apply(done);
            return Err(eio());
        }
        self.dir_mut(ino)?.apply(pending);
        Ok(())
    }

    /// What a reboot after a power cut now would find.
    fn crash_image(&self, seed: u64, mode: CrashMode) -> Disk {
        let mut rng = SimRng::new(seed);
        let mut image = Disk::new(rng.next_u64());
        image.next_ino = self.next_ino;
        image.nodes.clear();
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if image.nodes.contains_key(&ino) {
                continue;
            }
            let node = match self.nodes.get(&ino) {
                Some(Node::Dir(d)) => {
                    let mut survivor = d.clone();
                    let keep = match mode {
                        CrashMode::DropUnsynced => 0,
                        CrashMode::KeepRandom => rng.below(d.pending.len() as u64 + 1),
                    };
                    survivor.apply(usize::try_from(keep).unwrap_or(0));
                    survivor.pending.clear();
                    survivor.visible = survivor.durable.clone();
                    todo.extend(survivor.durable.values().rev().copied());
                    Node::Dir(survivor)
                }
                Some(Node::File(f)) => {
                    let durable = f.settle(&mut rng, mode);
                    Node::File(FileNode { visible: durable.clone(), durable, dirty: BTreeSet::new() })
                }
                None => continue,
            };
            image.nodes.insert(ino, node);
        }
        image
    }
}

/// The simulated disk. Clones share it; [`SimFs::crash`] makes a new one.
#[derive(Clone)]
pub struct SimFs {
    disk: Arc<Mutex<Disk>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFs").field("ops", &self.ops()).finish()
    }
}

impl SimFs {
    /// An empty disk holding only a root directory. `seed` decides what failed syncs keep.
    pub fn new(seed: u64) -> Self {
        Self::wrap(Disk::new(seed))
    }

    fn wrap(disk: Disk) -> Self {
        Self { disk: Arc::new(Mutex::new(disk)) }
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The disk a reboot would find after a power cut now. This disk goes on
    /// as if nothing happened; the image shares nothing with it.
    pub fn crash(&self, seed: u64, mode: CrashMode) -> SimFs {
        Self::wrap(self.lock().crash_image(seed, mode))
    }

    /// Makes the next `n` syncs (of files or directories) fail with EIO.
    pub fn fail_next_syncs(&self, n: u32) {
        self.lock().fail_syncs = n;
    }

    /// Syncs failed so far.
    pub fn failed_syncs(&self) -> u64 {
        self.lock().failed_syncs
    }

    /// Ops run so far: writes, size changes, syncs, creates and removes.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Starts taking crash images while the disk is used; see [`SimFs::take_crashes`].
    pub fn capture(&self, capture: Capture) {
        let rng = SimRng::new(capture.seed);
        self.lock().capture = Some((capture, rng));
    }

    /// The crash images taken so far, oldest first.
    pub fn take_crashes(&self) -> Vec<Crash> {
        std::mem::take(&mut self.lock().crashes)
    }

    /// Creates a file that must not exist yet.
    pub fn create_file(&self, path: &Path) -> io::Result<SimFile> {
        let mut disk = self.lock();
        let (dir, name) = disk.parent(path)?;
        if disk.dir(dir)?.visible.contains_key(name) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let ino = disk.op(Kind::Change, |d| {
            let ino = d.add(Node::File(FileNode::default()));
            d.dir_mut(dir)?.link(name, ino);
            Ok(ino)
        })?;
        Ok(SimFile { disk: self.disk.clone(), ino })
    }

    pub fn open_file(&self, path: &Path) -> io::Result<SimFile> {
        let disk = self.lock();
        let ino = disk.lookup(path)?;
        disk.file(ino)?;
        Ok(SimFile { disk: self.disk.clone(), ino })
    }

    /// A file's whole visible contents.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open_file(path)?;
        let mut out = vec![0; usize::try_from(file.len()?).map_err(io::Error::other)?];
        file.read_exact_at(0, &mut out)?;
        Ok(out)
    }

    /// The names in a directory, sorted.
    pub fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let disk = self.lock();
        Ok(disk.dir(disk.lookup(path)?)?.visible.keys().cloned().collect())
    }
}

impl BlobFs for SimFs {
    fn exists(&self, path: &Path) -> io::Result<bool> {
        match self.lock().lookup(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        let mut ino = ROOT;
        for name in names(dir)? {
            ino = match disk.dir(ino)?.visible.get(name) {
                Some(&child) => child,
                None => disk.op(Kind::Change, |d| {
                    let child = d.add(Node::Dir(DirNode::default()));
                    d.dir_mut(ino)?.link(name, child);
                    Ok(child)
                })?,
            };
        }
        disk.dir(ino).map(drop)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BlobFile>> {
        Ok(Arc::new(self.create_file(path)?))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn BlobFile>> {
        Ok(Arc::new(self.open_file(path)?))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        let (dir, name) = disk.parent(path)?;
        let ino = *disk.dir(dir)?.visible.get(name).ok_or_else(not_found)?;
        disk.file(ino)?;
        disk.op(Kind::Change, |d| {
            d.dir_mut(dir)?.unlink(name);
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        let ino = disk.lookup(dir)?;
        disk.dir(ino)?;
        disk.op(Kind::Sync, |d| d.sync_dir(ino))
    }

    fn blocks(&self) -> bool {
        false
    }
}

/// An open file of a [`SimFs`]. It stays usable after its name is removed.
#[derive(Clone)]
pub struct SimFile {
    disk: Arc<Mutex<Disk>>,
    ino: Ino,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile").field("ino", &self.ino).finish()
    }
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.lock().file(self.ino)?.visible.len)
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `out` from `offset`; reading past the end is an `UnexpectedEof` error.
    pub fn read_exact_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let disk = self.lock();
        let image = &disk.file(self.ino)?.visible;
        if offset.checked_add(out.len() as u64).is_none_or(|end| end > image.len) {
            return Err(short_file());
        }
        image.read(offset, out);
        Ok(())
    }

    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let ino = self.ino;
        self.lock().op(Kind::Change, |d| {
            d.file_mut(ino)?.write(offset, data);
            Ok(())
        })
    }

    /// Grows (with zeros) or cuts the file.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        let ino = self.ino;
        self.lock().op(Kind::Change, |d| {
            d.file_mut(ino)?.set_len(len);
            Ok(())
        })
    }

    /// Makes the visible data and size durable (fsync, fdatasync: the same here).
    pub fn sync_data(&self) -> io::Result<()> {
        let ino = self.ino;
        self.lock().op(Kind::Sync, |d| d.sync_file(ino))
    }
}

impl BlobFile for SimFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        SimFile::write_at(self, offset, data)
    }

    fn read_at(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let mut out = vec![0; usize::try_from(len).map_err(io::Error::other)?];
        self.read_exact_at(offset, &mut out)?;
        Ok(Bytes::from(out))
    }

    fn size(&self) -> io::Result<u64> {
        self.len()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn unsynced_data_and_names_are_lost() {
        let fs = SimFs::new(1);
        fs.create_dir_all(p("/d")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        let f = fs.create_file(p("/d/a")).unwrap();
        f.write_at(0, b"hello").unwrap();
        f.sync_data().unwrap();
        // The data is durable but the name is not: the file is gone.
        let crashed = fs.crash(7, CrashMode::DropUnsynced);
        assert!(!crashed.exists(p("/d/a")).unwrap());
        fs.sync_dir(p("/d")).unwrap();
        f.write_at(5, b" world").unwrap();
        let crashed = fs.crash(7, CrashMode::DropUnsynced);
        assert_eq!(crashed.read(p("/d/a")).unwrap(), b"hello");
        assert_eq!(fs.read(p("/d/a")).unwrap(), b"hello world");
    }

    #[test]
    fn keep_random_yields_every_mix_of_pages_and_sizes() {
        let fs = SimFs::new(1);
        let f = fs.create_file(p("/f")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        f.write_at(0, &[1; PAGE]).unwrap();
        f.sync_data().unwrap();
        f.write_at(0, &[2; PAGE]).unwrap();
        f.write_at(PAGE as u64, &[3; PAGE]).unwrap();
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            let data = fs.crash(seed, CrashMode::KeepRandom).read(p("/f")).unwrap();
            seen.insert((data.len(), data[0], data.get(PAGE).copied()));
        }
        let want = [(PAGE, 1, None), (PAGE, 2, None), (2 * PAGE, 1, Some(0)), (2 * PAGE, 1, Some(3))];
        for w in want {
            assert!(seen.contains(&w), "{w:?} never came up: {seen:?}");
        }
    }

    #[test]
    fn directory_changes_survive_in_order() {
        let fs = SimFs::new(1);
        for name in ["/a", "/b", "/c"] {
            fs.create_file(p(name)).unwrap();
        }
        for seed in 0..32 {
            let names = fs.crash(seed, CrashMode::KeepRandom).list_dir(p("/")).unwrap();
            assert!(["", "a", "ab", "abc"].contains(&names.concat().as_str()), "{names:?}");
        }
    }

    #[test]
    fn a_failed_sync_forgets_the_dirty_pages() {
        let fs = SimFs::new(3);
        let f = fs.create_file(p("/f")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        f.write_at(0, &[9; 8 * PAGE]).unwrap();
        fs.fail_next_syncs(1);
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        f.sync_data().expect("a retried sync succeeds");
        assert_eq!(fs.failed_syncs(), 1);
        // Still visible, but what the failed sync dropped never became durable.
        assert_eq!(fs.read(p("/f")).unwrap(), vec![9; 8 * PAGE]);
        let durable = fs.crash(0, CrashMode::DropUnsynced).read(p("/f")).unwrap();
        assert_eq!(durable.len(), 8 * PAGE, "the size was synced");
        assert!(durable.contains(&0), "some pages were dropped (seed 3)");
    }

    #[test]
    fn set_len_zeroes_and_a_removed_file_stays_readable_through_its_handle() {
        let fs = SimFs::new(1);
        let f = fs.create_file(p("/f")).unwrap();
        f.write_at(0, &[5; 100]).unwrap();
        f.set_len(10).unwrap();
        f.set_len(20).unwrap();
        let mut out = [1; 20];
        f.read_exact_at(0, &mut out).unwrap();
        assert_eq!(out[..10], [5; 10]);
        assert_eq!(out[10..], [0; 10]);
        fs.remove_file(p("/f")).unwrap();
        assert!(!fs.exists(p("/f")).unwrap());
        f.read_exact_at(0, &mut out).unwrap();
        assert!(f.read_exact_at(15, &mut out).is_err());
    }

    #[test]
    fn capture_takes_images_around_syncs() {
        let fs = SimFs::new(1);
        fs.capture(Capture { seed: 5, around_syncs: true, per_mille: 0 });
        let f = fs.create_file(p("/f")).unwrap();
        f.write_at(0, b"x").unwrap();
        f.sync_data().unwrap();
        let crashes = fs.take_crashes();
        assert_eq!(crashes.iter().map(|c| c.at_op).collect::<Vec<_>>(), [2, 3]);
    }
}
