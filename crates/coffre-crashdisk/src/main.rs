//! `coffre-crashdisk IMAGE MOUNTPOINT`: serves IMAGE over FUSE as
//! `MOUNTPOINT/disk.img`, a disk with a volatile write cache that can lose
//! power, and `MOUNTPOINT/ctl`, its control file. Test tooling for the
//! power-cut tests; never part of the server.
//!
//! Writes land in an in-memory overlay of 4 KiB pages and reach IMAGE only
//! when the kernel flushes: a loop device over `disk.img` turns every
//! REQ_PREFLUSH (and FUA, emulated with a flush) into a FUSE `fsync`. So a
//! filesystem on that loop device sees a disk whose unflushed writes are
//! lost on a cut, exactly what a power cut does to a disk's cache.
//!
//! `ctl` takes one command per write:
//! - `cut`: drop every pending page, then fail every later write and flush
//!   with EIO (the disk is dead: nothing after the cut can become durable);
//! - `cut-keep-random SEED`: persist a seeded random subset of the pending
//!   pages first (a disk may have written any of them), then as `cut`;
//! - `fail-flushes N`: the next N flushes fail with EIO and drop their pages,
//!   as Linux marks pages clean after a failed writeback.
//!
//! Reading `ctl` gives counters: writes, flushes, pending and dropped pages,
//! whether the disk is dead, and failed flushes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner, MountOption, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};

const PAGE: u64 = 4096;
const DISK: INodeNo = INodeNo(2);
const CTL: INodeNo = INodeNo(3);
const TTL: Duration = Duration::from_secs(3600);

struct State {
    image: File,
    size: u64,
    /// Written but not flushed: page index → page.
    pending: HashMap<u64, Box<[u8]>>,
    dead: bool,
    /// Flushes still to fail.
    fail_flushes: u64,
    writes: u64,
    flushes: u64,
    failed: u64,
    /// Pages the cut threw away.
    dropped: u64,
}

struct CrashDisk {
    state: Mutex<State>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// The page as the disk would return it: pending if written, else durable.
    fn page(&self, index: u64) -> std::io::Result<Box<[u8]>> {
        if let Some(page) = self.pending.get(&index) {
            return Ok(page.clone());
        }
        let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
        let start = index * PAGE;
        let len = PAGE.min(self.size.saturating_sub(start)) as usize;
        self.image.read_exact_at(&mut page[..len], start)?;
        Ok(page)
    }

    fn read(&self, offset: u64, size: u32) -> std::io::Result<Vec<u8>> {
        let end = (offset + u64::from(size)).min(self.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let page = self.page(at / PAGE)?;
            let from = (at % PAGE) as usize;
            let take = ((PAGE - at % PAGE).min(end - at)) as usize;
            out.extend_from_slice(&page[from..from + take]);
            at += take as u64;
        }
        Ok(out)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let index = at / PAGE;
            let mut page = self.page(index)?;
            let from = (at % PAGE) as usize;
            let take = (PAGE as usize - from).min(rest.len());
            page[from..from + take].copy_from_slice(&rest[..take]);
            self.pending.insert(index, page);
            rest = &rest[take..];
            at += take as u64;
        }
        self.writes += 1;
        Ok(())
    }

    fn persist(&mut self, index: u64, page: &[u8]) -> std::io::Result<()> {
        let start = index * PAGE;
        let len = PAGE.min(self.size.saturating_sub(start)) as usize;
        self.image.write_all_at(&page[..len], start)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let pages: Vec<(u64, Box<[u8]>)> = self.pending.drain().collect();
        for (index, page) in &pages {
            self.persist(*index, page)?;
        }
        self.flushes += 1;
        Ok(())
    }

    fn command(&mut self, line: &str) -> Result<(), String> {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("cut"), None) => {
                self.dropped += self.pending.len() as u64;
                self.pending.clear();
                self.dead = true;
            }
            (Some("cut-keep-random"), Some(seed)) => {
                let mut rng = seed.parse::<u64>().map_err(|e| format!("seed: {e}"))? | 1;
                let pages: Vec<(u64, Box<[u8]>)> = self.pending.drain().collect();
                for (index, page) in pages {
                    // xorshift64: a coin per page, replayable by seed.
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if rng & 1 == 1 {
                        self.persist(index, &page).map_err(|e| e.to_string())?;
                    } else {
                        self.dropped += 1;
                    }
                }
                self.dead = true;
            }
            (Some("fail-flushes"), Some(n)) => self.fail_flushes = n.parse().map_err(|e| format!("count: {e}"))?,
            _ => return Err(format!("unknown command {line:?}")),
        }
        Ok(())
    }

    fn counters(&self) -> String {
        format!(
            "writes {}\nflushes {}\npending {}\ndropped {}\ndead {}\nfailed {}\n",
            self.writes,
            self.flushes,
            self.pending.len(),
            self.dropped,
            self.dead,
            self.failed
        )
    }
}

fn attr(ino: INodeNo, size: u64) -> FileAttr {
    let (kind, perm, nlink) = match ino {
        INodeNo::ROOT => (FileType::Directory, 0o700, 2),
        _ => (FileType::RegularFile, 0o600, 1),
    };
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm,
        nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: PAGE as u32,
    }
}

impl CrashDisk {
    fn attr_of(&self, ino: INodeNo) -> Option<FileAttr> {
        match ino {
            INodeNo::ROOT => Some(attr(ino, 0)),
            DISK => Some(attr(ino, lock(&self.state).size)),
            CTL => Some(attr(ino, 0)),
            _ => None,
        }
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Filesystem for CrashDisk {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ino = match (parent, name.to_str()) {
            (INodeNo::ROOT, Some("disk.img")) => DISK,
            (INodeNo::ROOT, Some("ctl")) => CTL,
            _ => return reply.error(Errno::ENOENT),
        };
        match self.attr_of(ino) {
            Some(a) => reply.entry(&TTL, &a, fuser::Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr_of(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    /// Truncation (`echo cut > ctl` opens with O_TRUNC) and time changes
    /// are accepted and ignored: the disk's size is fixed.
    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.attr_of(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // The control file has no size: direct I/O makes reads reach us anyway.
        let flags = if ino == CTL { FopenFlags::FOPEN_DIRECT_IO } else { FopenFlags::empty() };
        reply.opened(FileHandle(0), flags);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let state = lock(&self.state);
        match ino {
            DISK => match state.read(offset, size) {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(io_errno(&e)),
            },
            CTL => {
                let text = state.counters().into_bytes();
                let from = (offset as usize).min(text.len());
                // Never more than asked: the kernel fails a longer reply with EIO.
                let to = (from + size as usize).min(text.len());
                reply.data(&text[from..to]);
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = lock(&self.state);
        match ino {
            DISK if state.dead => reply.error(Errno::EIO),
            DISK if offset + data.len() as u64 > state.size => reply.error(Errno::ENOSPC),
            DISK => match state.write(offset, data) {
                Ok(()) => reply.written(data.len() as u32),
                Err(e) => reply.error(io_errno(&e)),
            },
            CTL => match state.command(&String::from_utf8_lossy(data)) {
                Ok(()) => reply.written(data.len() as u32),
                Err(why) => {
                    eprintln!("coffre-crashdisk: {why}");
                    reply.error(Errno::EINVAL)
                }
            },
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut state = lock(&self.state);
        if ino != DISK {
            return reply.ok();
        }
        if state.dead {
            return reply.error(Errno::EIO);
        }
        if state.fail_flushes > 0 {
            state.fail_flushes -= 1;
            state.failed += 1;
            state.pending.clear();
            return reply.error(Errno::EIO);
        }
        match state.flush() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(io_errno(&e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock: LockOwner, reply: ReplyEmpty) {
        // close(2), not a disk flush: nothing becomes durable here.
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOENT);
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
            (DISK, FileType::RegularFile, "disk.img"),
            (CTL, FileType::RegularFile, "ctl"),
        ];
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(ino, (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, image, mountpoint] = args.as_slice() else {
        eprintln!("usage: coffre-crashdisk IMAGE MOUNTPOINT");
        return std::process::ExitCode::from(2);
    };
    let opened = std::fs::OpenOptions::new().read(true).write(true).open(image);
    let image_file = match opened {
        Ok(f) => f,
        Err(e) => {
            eprintln!("coffre-crashdisk: opening {image}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let size = image_file.metadata().map(|m| m.len()).unwrap_or(0);
    let disk = CrashDisk {
        state: Mutex::new(State {
            image: image_file,
            size,
            pending: HashMap::new(),
            dead: false,
            fail_flushes: 0,
            writes: 0,
            flushes: 0,
            failed: 0,
            dropped: 0,
        }),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![MountOption::FSName("coffre-crashdisk".into()), MountOption::RW];
    match fuser::mount(disk, PathBuf::from(mountpoint), &config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffre-crashdisk: mounting {mountpoint}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
