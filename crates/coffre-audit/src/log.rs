//! The writer: appends events to the current segment, makes them durable by
//! group commit, signs tree heads on a timer and at shutdown, and moves
//! segments past retention to hash-only files.
//!
//! Durability: an append with [`Durability::Sync`] returns once its event
//! (and every event before it) is on disk; one `fdatasync` serves every
//! append waiting at that moment. [`Durability::Batched`] appends return at
//! once and reach the disk within the configured batch window. A failed write
//! or `fdatasync` poisons the log: after an fsync error Linux may have
//! dropped the dirty pages, so a retry that "succeeds" proves nothing, and
//! every later append fails until the server restarts and recovers the file.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use time::OffsetDateTime;

use crate::event::{Event, parse_time};
use crate::head::{SignedHead, Signer};
use crate::merkle::{Frontier, leaf_hash};
use crate::store::{LogDir, SegmentKind, sync_dir, write_atomic};
use crate::syncer::Syncer;
use crate::{AuditError, Result};

/// How many recent events the admin API can show.
const RECENT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the append returns.
    Sync,
    /// On disk within [`AuditConfig::batch_window`].
    Batched,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The log directory (segments and heads).
    pub dir: PathBuf,
    /// The Ed25519 signing key (PKCS#8, mode 0600), outside `dir`.
    pub key_path: PathBuf,
    /// Longest time a batched event stays in memory only.
    pub batch_window: Duration,
    /// Time between signed tree heads (a head is signed only if the tree grew).
    pub head_interval: Duration,
    /// Segments younger than this keep their events.
    pub retention: Duration,
    /// A segment is closed once it reaches this size.
    pub segment_bytes: u64,
    /// Off only for benchmarks and the power-cut tests' negative control:
    /// "durable" then means "handed to the kernel".
    pub fsync: bool,
}

impl AuditConfig {
    pub fn new(dir: PathBuf, key_path: PathBuf) -> Self {
        Self {
            dir,
            key_path,
            batch_window: Duration::from_secs(1),
            head_interval: Duration::from_secs(60),
            // A year: SecNumCloud asks for six months at least (LOG-03 of the trust label).
            retention: Duration::from_secs(365 * 24 * 3600),
            segment_bytes: 64 * 1024 * 1024,
            fsync: true,
        }
    }
}

pub struct AuditLog {
    dir: LogDir,
    config: AuditConfig,
    signer: Signer,
    state: Arc<Mutex<State>>,
    syncer: Syncer,
    heads: tokio::sync::Mutex<Option<SignedHead>>,
    recent: Mutex<VecDeque<Event>>,
}

pub(crate) struct State {
    pub(crate) file: File,
    segment_first: u64,
    /// Bytes of the current segment, written or still in `pending`.
    segment_len: u64,
    /// Events not yet handed to the kernel: one write(2) per flush rather
    /// than per event. Flushed by every sync, and at 64 KiB.
    pending: Vec<u8>,
    pub(crate) frontier: Frontier,
    /// Set by a failed write or sync: the log takes no more events.
    pub(crate) poisoned: Option<String>,
    closed: bool,
}

/// Flush `pending` at this size without waiting for a sync.
const PENDING_LIMIT: usize = 64 * 1024;

impl State {
    /// Hands the pending events to the kernel. On failure (a full disk) the
    /// partial write is taken back and the events stay pending, in order,
    /// for the next try: nothing is reordered or half-written.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        let written = self.segment_len - self.pending.len() as u64;
        let mut done = 0;
        while done < self.pending.len() {
            match self.file.write(&self.pending[done..]) {
                Ok(0) => return self.undo(written, done, std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return self.undo(written, done, e),
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Takes back the `done` bytes of a failed flush, so that the next try
    /// starts on a line boundary; if even that fails, the log is poisoned.
    fn undo(&mut self, written: u64, done: usize, error: std::io::Error) -> std::io::Result<()> {
        if done > 0
            && let Err(undo) = self.file.set_len(written)
        {
            self.poisoned = Some(format!("a write failed ({error}) and could not be undone ({undo})"));
        }
        Err(error)
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AuditLog {
    /// Opens the log, repairing a tail cut by a crash (events never
    /// acknowledged), and refusing a log whose body does not read back.
    pub fn open(config: AuditConfig) -> Result<Self> {
        let dir = LogDir::new(&config.dir);
        for d in [dir.root().to_path_buf(), dir.segments_dir()] {
            std::fs::create_dir_all(&d).map_err(AuditError::io(format!("creating {}", d.display())))?;
        }
        let signer = Signer::load_or_create(&config.key_path)?;
        let latest_head = repair_heads(&dir)?;
        repair_tail(&dir)?;

        let mut frontier = Frontier::default();
        let size = dir
            .scan(|leaf| {
                frontier.push(leaf.hash);
                Ok(())
            })
            .map_err(|e| {
                AuditError::Invalid(format!(
                    "the audit log in {} does not read back ({e}); run `coffre audit verify --from {}` and move the \
                     damaged log aside before starting again",
                    dir.root().display(),
                    dir.root().display()
                ))
            })?;
        if let Some(head) = &latest_head
            && head.size > size
        {
            return Err(AuditError::Invalid(format!(
                "the latest signed head covers {} events but the log holds {size}: events were lost or removed",
                head.size
            )));
        }
        let (file, segment_first, segment_len) = open_current(&dir, size)?;
        let pending = Vec::with_capacity(PENDING_LIMIT);
        let state = State { file, segment_first, segment_len, pending, frontier, poisoned: None, closed: false };
        let state = Arc::new(Mutex::new(state));
        let syncer = Syncer::start(state.clone(), size, config.fsync)
            .map_err(AuditError::io("starting the audit sync thread"))?;
        Ok(Self {
            dir,
            config,
            signer,
            state,
            syncer,
            heads: tokio::sync::Mutex::new(latest_head),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        })
    }

    pub fn public_key(&self) -> crate::PublicKey {
        self.signer.public_key()
    }

    /// Number of events appended so far.
    pub fn size(&self) -> u64 {
        lock(&self.state).frontier.size()
    }

    /// Appends `event` (its `seq` is assigned here) and returns its sequence
    /// number, once the event is as durable as `durability` asks.
    pub async fn append(&self, event: Event, durability: Durability) -> Result<u64> {
        let seq = self.append_batched(event)?;
        if durability == Durability::Sync {
            self.sync_through(seq + 1).await?;
        }
        Ok(seq)
    }

    /// Appends `event` in memory; it reaches the disk within the batch
    /// window, or with the next synchronous append.
    pub fn append_batched(&self, mut event: Event) -> Result<u64> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(AuditError::Closed);
        }
        if let Some(why) = &state.poisoned {
            return Err(AuditError::Invalid(format!("the audit log stopped taking events: {why}")));
        }
        event.seq = state.frontier.size();
        let mut line = event.canonical();
        let hash = leaf_hash(&line);
        line.push(b'\n');
        if state.segment_len > 0 && state.segment_len + line.len() as u64 > self.config.segment_bytes {
            self.rotate(&mut state)?;
        }
        state.pending.extend_from_slice(&line);
        state.segment_len += line.len() as u64;
        state.frontier.push(hash);
        if state.pending.len() >= PENDING_LIMIT {
            // A failure leaves the events pending: the sync reports it.
            let _ = state.flush();
        }
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(event);
        Ok(state.frontier.size() - 1)
    }

    /// Closes the current segment and starts the next one, durably.
    fn rotate(&self, state: &mut State) -> Result<()> {
        let poison = |state: &mut State, e: AuditError| {
            state.poisoned = Some(format!("closing a segment failed: {e}"));
            e
        };
        if let Err(e) = state.flush() {
            return Err(AuditError::io("writing a full segment")(e));
        }
        if let Err(e) = coffre_disk::sync_data(&state.file) {
            return Err(poison(state, AuditError::io("syncing a full segment")(e)));
        }
        let first = state.frontier.size();
        match create_segment(&self.dir, first) {
            Ok(file) => {
                state.file = file;
                state.segment_first = first;
                state.segment_len = 0;
                Ok(())
            }
            Err(e) => Err(poison(state, e)),
        }
    }

    /// Returns once the first `count` events are on disk.
    async fn sync_through(&self, count: u64) -> Result<()> {
        if self.syncer.wait_for(count).await {
            return Ok(());
        }
        let why = lock(&self.state).poisoned.clone().unwrap_or_else(|| "the sync thread stopped".into());
        Err(AuditError::Invalid(format!("the audit log stopped taking events: {why}")))
    }

    /// Makes every appended event durable.
    pub async fn sync(&self) -> Result<()> {
        let size = self.size();
        self.sync_through(size).await
    }

    /// Signs a head over everything appended so far (if the tree grew since
    /// the last one), then applies retention.
    pub async fn sign_head(&self) -> Result<Option<SignedHead>> {
        let mut latest = self.heads.lock().await;
        let (size, root) = {
            let state = lock(&self.state);
            (state.frontier.size(), state.frontier.root())
        };
        if latest.as_ref().is_some_and(|h| h.size == size) {
            return Ok(None);
        }
        self.sync_through(size).await?;
        let number = latest.as_ref().map_or(0, |h| h.head + 1);
        let time_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let head = self.signer.sign(number, size, time_ms, &root);
        let path = self.dir.heads_path();
        let what = format!("appending a signed head to {}", path.display());
        let mut file =
            OpenOptions::new().create(true).append(true).open(&path).map_err(AuditError::io(what.clone()))?;
        let line = format!("{}\n", head.to_line());
        file.write_all(line.as_bytes()).and_then(|()| coffre_disk::sync_data(&file)).map_err(AuditError::io(what))?;
        if number == 0 {
            sync_dir(self.dir.root())?;
        }
        *latest = Some(head.clone());
        let covered = head.size;
        drop(latest);
        self.apply_retention(covered)?;
        Ok(Some(head))
    }

    pub async fn latest_head(&self) -> Option<SignedHead> {
        self.heads.lock().await.clone()
    }

    /// The newest events, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<Event> {
        let recent = lock(&self.recent);
        recent.iter().skip(recent.len().saturating_sub(limit)).cloned().collect()
    }

    /// Replaces closed segments older than the retention period, and covered
    /// by a signed head, by their leaf hashes: proofs for the events that
    /// remain, and consistency between every head, still verify.
    fn apply_retention(&self, covered: u64) -> Result<usize> {
        let current = lock(&self.state).segment_first;
        let horizon = OffsetDateTime::now_utc() - self.config.retention;
        let segments = self.dir.segments()?;
        let mut pruned = 0;
        for pair in segments.windows(2) {
            let (segment, next) = (&pair[0], &pair[1]);
            if segment.kind != SegmentKind::Events {
                continue;
            }
            if segment.first >= current || next.first > covered {
                break;
            }
            if newest_time(&segment.path)?.is_none_or(|t| t > horizon) {
                break;
            }
            let bytes =
                std::fs::read(&segment.path).map_err(AuditError::io(format!("reading {}", segment.path.display())))?;
            let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
            let hashes: Vec<u8> = lines.iter().flat_map(|l| leaf_hash(l)).collect();
            write_atomic(&self.dir.segment_path(segment.first, SegmentKind::Hashes), &hashes)?;
            std::fs::remove_file(&segment.path)
                .map_err(AuditError::io(format!("removing {}", segment.path.display())))?;
            sync_dir(&self.dir.segments_dir())?;
            tracing::info!(segment = %segment.path.display(), events = lines.len(), "audit segment past retention: kept its hashes only");
            pruned += 1;
        }
        Ok(pruned)
    }

    /// Syncs batched events every batch window and signs heads every head
    /// interval until `stop`, then signs a last head.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut sync_tick = tokio::time::interval(self.config.batch_window);
        let mut head_tick = tokio::time::interval(self.config.head_interval);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        head_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = sync_tick.tick() => {
                    if let Err(e) = self.sync().await {
                        tracing::error!(error = %e, "audit log sync failed");
                    }
                }
                _ = head_tick.tick() => {
                    if let Err(e) = self.sign_head().await {
                        tracing::error!(error = %e, "signing an audit tree head failed");
                    }
                }
            }
        }
    }

    /// Signs a last head and takes no more events.
    pub async fn close(&self) -> Result<Option<SignedHead>> {
        let head = self.sign_head().await;
        lock(&self.state).closed = true;
        head
    }
}

/// The time of a closed segment's last event, read from its tail only:
/// retention looks at the oldest kept segment on every head.
fn newest_time(path: &std::path::Path) -> Result<Option<OffsetDateTime>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const TAIL: u64 = 64 * 1024;
    let what = format!("reading {}", path.display());
    let mut file = File::open(path).map_err(AuditError::io(what.clone()))?;
    let len = file.metadata().map_err(AuditError::io(what.clone()))?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).map_err(AuditError::io(what.clone()))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(AuditError::io(what))?;
    let last = tail.strip_suffix(b"\n").unwrap_or(&tail).rsplit(|&b| b == b'\n').next().unwrap_or(&[]);
    Ok(Event::from_canonical(last).ok().and_then(|e| parse_time(&e.time)))
}

impl Drop for AuditLog {
    /// Hands batched events to the kernel, so that a log dropped without
    /// `close` (a test, an error path) keeps what it was given.
    fn drop(&mut self) {
        let _ = lock(&self.state).flush();
    }
}

fn create_segment(dir: &LogDir, first: u64) -> Result<File> {
    let path = dir.segment_path(first, SegmentKind::Events);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(AuditError::io(format!("creating {}", path.display())))?;
    sync_dir(&dir.segments_dir())?;
    Ok(file)
}

/// The segment new events go to: the last one if it holds events, else a new one.
fn open_current(dir: &LogDir, size: u64) -> Result<(File, u64, u64)> {
    match dir.segments()?.last() {
        Some(last) if last.kind == SegmentKind::Events => {
            let file = OpenOptions::new()
                .append(true)
                .open(&last.path)
                .map_err(AuditError::io(format!("opening {}", last.path.display())))?;
            let len = file.metadata().map_err(AuditError::io("reading the segment size"))?.len();
            Ok((file, last.first, len))
        }
        _ => Ok((create_segment(dir, size)?, size, 0)),
    }
}

/// Cuts the last segment back to its last whole, canonical, in-sequence
/// event: what follows was being written when the process or machine died,
/// and was never acknowledged.
fn repair_tail(dir: &LogDir) -> Result<()> {
    let Some(last) = dir.segments()?.into_iter().rev().find(|s| s.kind == SegmentKind::Events) else {
        return Ok(());
    };
    let bytes = std::fs::read(&last.path).map_err(AuditError::io(format!("reading {}", last.path.display())))?;
    let mut good = 0usize;
    let mut next = last.first;
    while let Some(end) = bytes[good..].iter().position(|&b| b == b'\n') {
        match Event::from_canonical(&bytes[good..good + end]) {
            Ok(event) if event.seq == next => {
                good += end + 1;
                next += 1;
            }
            _ => break,
        }
    }
    if good < bytes.len() {
        tracing::warn!(
            segment = %last.path.display(),
            dropped_bytes = bytes.len() - good,
            "audit log tail cut by a crash: dropping the unfinished event(s)"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(&last.path)
            .map_err(AuditError::io(format!("opening {}", last.path.display())))?;
        file.set_len(good as u64)
            .and_then(|()| coffre_disk::sync_file(&file))
            .map_err(AuditError::io("truncating the segment"))?;
    }
    Ok(())
}

/// Drops a head line cut short by a crash and returns the latest head.
fn repair_heads(dir: &LogDir) -> Result<Option<SignedHead>> {
    let path = dir.heads_path();
    let Ok(bytes) = std::fs::read(&path) else { return Ok(None) };
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        tracing::warn!(file = %path.display(), "signed head cut short by a crash: dropping it");
        let file = OpenOptions::new().write(true).open(&path).map_err(AuditError::io("opening the heads file"))?;
        file.set_len(whole as u64)
            .and_then(|()| coffre_disk::sync_file(&file))
            .map_err(AuditError::io("truncating the heads file"))?;
    }
    let heads = dir.read_heads()?;
    match heads.last() {
        None => Ok(None),
        Some((_, Ok(head))) => Ok(Some(head.clone())),
        Some((line, Err(why))) => {
            Err(AuditError::Invalid(format!("{} line {line}: {why}; run `coffre audit verify`", path.display())))
        }
    }
}

#[async_trait::async_trait]
impl crate::AuditTrail for AuditLog {
    async fn append(&self, event: Event, durability: Durability) -> Result<()> {
        AuditLog::append(self, event, durability).await.map(drop)
    }

    fn append_batched(&self, event: Event) -> Result<()> {
        AuditLog::append_batched(self, event).map(drop)
    }

    fn public_key(&self) -> crate::PublicKey {
        AuditLog::public_key(self)
    }

    fn size(&self) -> u64 {
        AuditLog::size(self)
    }

    fn recent(&self, limit: usize) -> Vec<Event> {
        AuditLog::recent(self, limit)
    }

    async fn latest_head(&self) -> Option<SignedHead> {
        AuditLog::latest_head(self).await
    }

    async fn run(&self, stop: crate::Stop) {
        AuditLog::run(self, stop).await
    }

    async fn close(&self) -> Result<Option<SignedHead>> {
        AuditLog::close(self).await
    }
}
