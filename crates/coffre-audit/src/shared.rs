//! One audit log for many gateways: events appended through a shared store
//! (the metadata database), which numbers them in one order for everyone,
//! and tree heads signed by whichever gateway holds the signing lease.
//!
//! Each gateway batches its events (group commit): whoever flushes stores
//! everything queued in one transaction, and appends that arrive meanwhile
//! wait for the next flush, so concurrent requests share a commit. A `Sync`
//! append flushes and returns once its event is committed; batched ones are
//! flushed by the background task, or by the next `Sync` append. A flush the
//! store refuses leaves its events in this gateway's spool (a file, see
//! [`crate::spool`]), stored ahead of later ones when the store takes them
//! again, also after a restart. Heads are signed over the store's
//! leaves by the lease holder only, and recorded only while its lease (and
//! epoch) still holds: two gateways never sign different heads of one number.
//! `export` writes the log in the directory layout `coffre audit verify`
//! reads, so an auditor checks it offline with the same tools.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot};

use crate::event::Event;
use crate::head::{SignedHead, Signer};
use crate::log::{Durability, lock};
use crate::merkle::{Frontier, Hash};
use crate::spool::Spool;
use crate::store::{LogDir, SegmentKind, write_atomic};
use crate::{AuditError, Result};

/// Where a shared log lives. Implemented over the metadata database.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Numbers `events` after every event already stored, in their order,
    /// and stores them (canonical line and leaf hash) in one transaction.
    async fn append(&self, events: Vec<Event>) -> Result<()>;
    /// Leaf hashes of the events numbered `from..`, in order, at most `limit`.
    async fn leaves(&self, from: u64, limit: usize) -> Result<Vec<Hash>>;
    /// Canonical lines of the events numbered `from..`, at most `limit`.
    async fn lines(&self, from: u64, limit: usize) -> Result<Vec<Vec<u8>>>;
    /// Takes or renews the signing lease; its epoch, or `None` if another holds it.
    async fn signing_lease(&self, ttl: Duration) -> Result<Option<i64>>;
    /// Records `head` if the lease of `epoch` still holds and no head of its
    /// number exists; false otherwise.
    async fn put_head(&self, head: &SignedHead, epoch: i64) -> Result<bool>;
    /// Every signed head, oldest first.
    async fn heads(&self) -> Result<Vec<SignedHead>>;
}

/// How many recent events of this gateway the admin API can show.
const RECENT: usize = 1000;
/// How often refused events are offered to the database again.
const REFUSED_RETRY: Duration = Duration::from_secs(1);
/// Leaves read per step when catching the tree up.
const LEAF_PAGE: usize = 10_000;

type Waiter = oneshot::Sender<Result<()>>;

pub struct SharedLog {
    store: Arc<dyn LogStore>,
    signer: Signer,
    head_interval: Duration,
    queue: Mutex<Vec<(Event, Option<Waiter>)>>,
    queued: Notify,
    /// One flush at a time: the others' events ride in the next one.
    flushing: tokio::sync::Mutex<()>,
    /// The tree as far as this gateway has read it (only the signer reads it).
    frontier: tokio::sync::Mutex<Frontier>,
    /// The frontier's size, readable without waiting for a signing pass.
    known: AtomicU64,
    latest: tokio::sync::Mutex<Option<SignedHead>>,
    recent: Mutex<VecDeque<Event>>,
    /// Events of flushes the database refused, oldest first, kept to be
    /// stored when it is back (in a file of this gateway: see [`Spool`]).
    refused: Mutex<Spool>,
    closed: Mutex<bool>,
}

impl SharedLog {
    /// A log over `store`; `refused` holds what an earlier run could not store.
    pub fn new(store: Arc<dyn LogStore>, signer: Signer, head_interval: Duration, refused: Spool) -> Self {
        Self {
            store,
            signer,
            head_interval,
            queue: Mutex::new(Vec::new()),
            queued: Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
            frontier: tokio::sync::Mutex::new(Frontier::default()),
            known: AtomicU64::new(0),
            latest: tokio::sync::Mutex::new(None),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            refused: Mutex::new(refused),
            closed: Mutex::new(false),
        }
    }

    fn enqueue(&self, event: Event, waiter: Option<Waiter>) -> Result<()> {
        if *lock(&self.closed) {
            return Err(AuditError::Closed);
        }
        {
            let mut recent = lock(&self.recent);
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        lock(&self.queue).push((event, waiter));
        self.queued.notify_one();
        Ok(())
    }

    /// Stores every queued event in one transaction, after those refused
    /// before, and answers its waiters. Refused events are kept: their
    /// requests were answered 503 or were reads, and happened all the same.
    async fn flush(&self) {
        let _turn = self.flushing.lock().await;
        let batch = std::mem::take(&mut *lock(&self.queue));
        let earlier = lock(&self.refused).backlog();
        if batch.is_empty() && earlier.is_empty() {
            return;
        }
        let (events, waiters): (Vec<Event>, Vec<Option<Waiter>>) = batch.into_iter().unzip();
        let retried = !earlier.is_empty();
        let outcome = self.store.append(earlier.into_iter().chain(events.iter().cloned()).collect()).await;
        match &outcome {
            Ok(()) if retried => lock(&self.refused).clear(),
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, events = events.len(), "audit events could not be stored yet: kept to be retried");
                lock(&self.refused).keep(events);
            }
        }
        for waiter in waiters.into_iter().flatten() {
            let _ = waiter.send(match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(AuditError::Invalid(format!("the shared audit log did not take the event: {e}"))),
            });
        }
    }

    /// Signs a head over the whole stored log if this gateway holds the
    /// signing lease and the log grew since the last head.
    pub async fn sign_head(&self) -> Result<Option<SignedHead>> {
        let Some(epoch) = self.store.signing_lease(self.head_interval * 3).await? else { return Ok(None) };
        let mut latest = self.latest.lock().await;
        if latest.is_none() {
            *latest = self.store.heads().await?.pop();
        }
        let mut frontier = self.frontier.lock().await;
        loop {
            let leaves = self.store.leaves(frontier.size(), LEAF_PAGE).await?;
            let done = leaves.len() < LEAF_PAGE;
            leaves.into_iter().for_each(|leaf| frontier.push(leaf));
            if done {
                break;
            }
        }
        let (size, root) = (frontier.size(), frontier.root());
        self.known.store(size, Ordering::Relaxed);
        drop(frontier);
        if latest.as_ref().is_some_and(|h| h.size >= size) {
            return Ok(None);
        }
        let number = latest.as_ref().map_or(0, |h| h.head + 1);
        let time_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let head = self.signer.sign(number, size, time_ms, &root);
        if !self.store.put_head(&head, epoch).await? {
            // Another gateway took the lease meanwhile: its heads win.
            *latest = None;
            return Ok(None);
        }
        *latest = Some(head.clone());
        Ok(Some(head))
    }
}

#[async_trait]
impl crate::AuditTrail for SharedLog {
    async fn append(&self, event: Event, durability: Durability) -> Result<()> {
        match durability {
            Durability::Batched => self.enqueue(event, None),
            Durability::Sync => {
                let (done, committed) = oneshot::channel();
                self.enqueue(event, Some(done))?;
                // Stored by this flush, or by the one running now if it took it.
                self.flush().await;
                committed.await.map_err(|_| AuditError::Closed)?
            }
        }
    }

    fn append_batched(&self, event: Event) -> Result<()> {
        self.enqueue(event, None)
    }

    fn public_key(&self) -> crate::PublicKey {
        self.signer.public_key()
    }

    fn size(&self) -> u64 {
        // As of this gateway's last signing pass (none if it never held the lease).
        self.known.load(Ordering::Relaxed)
    }

    fn recent(&self, limit: usize) -> Vec<Event> {
        let recent = lock(&self.recent);
        recent.iter().skip(recent.len().saturating_sub(limit)).cloned().collect()
    }

    async fn latest_head(&self) -> Option<SignedHead> {
        self.latest.lock().await.clone()
    }

    async fn run(&self, stop: crate::Stop) {
        let mut stop = stop;
        let mut head_tick = tokio::time::interval(self.head_interval);
        head_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry_tick = tokio::time::interval(REFUSED_RETRY);
        retry_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.queued.notified() => self.flush().await,
                _ = retry_tick.tick() => {
                    if !lock(&self.refused).is_empty() {
                        self.flush().await;
                    }
                }
                _ = head_tick.tick() => {
                    if let Err(e) = self.sign_head().await {
                        tracing::error!(error = %e, "signing a shared audit tree head failed");
                    }
                }
            }
        }
        self.flush().await;
    }

    async fn close(&self) -> Result<Option<SignedHead>> {
        self.flush().await;
        let head = self.sign_head().await;
        *lock(&self.closed) = true;
        head
    }
}

/// Writes the shared log as a log directory (`segments/0...0.jsonl` and
/// `heads.jsonl`) that `coffre audit verify --from DIR` checks offline.
/// Returns the number of events written.
pub async fn export(store: &dyn LogStore, dir: &Path) -> Result<u64> {
    let log = LogDir::new(dir);
    std::fs::create_dir_all(log.segments_dir()).map_err(AuditError::io(format!("creating {}", dir.display())))?;
    // Heads first: every head then covers events that the export holds.
    let heads = store.heads().await?;
    let mut events = Vec::new();
    let mut count = 0u64;
    loop {
        let lines = store.lines(count, LEAF_PAGE).await?;
        let done = lines.len() < LEAF_PAGE;
        for line in lines {
            events.extend_from_slice(&line);
            events.push(b'\n');
            count += 1;
        }
        if done {
            break;
        }
    }
    write_atomic(&log.segment_path(0, SegmentKind::Events), &events)?;
    let heads: String = heads.iter().map(|h| format!("{}\n", h.to_line())).collect();
    write_atomic(&log.heads_path(), heads.as_bytes())?;
    Ok(count)
}
