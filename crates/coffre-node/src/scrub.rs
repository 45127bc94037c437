//! Scrub: reads every replica back, at a bounded pace, and checks it against
//! the checksum its blob's record took when it was written (CRC-64/NVME of
//! the sealed bytes: no key is needed, and a node never sees one). A replica
//! that differs, is short, or is missing is written again from one that
//! checks out. The same check runs at once on a blob a reader found corrupt
//! (its bytes failed AEAD): see [`Suspects`].
//!
//! Like repair, a pass is one job per shard of the blob-id space on the job
//! queue, so the gateways share it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coffre_core::Result;
use coffre_core::types::BlobId;
use coffre_topology::TargetId;
use futures::StreamExt as _;
use tokio::sync::Notify;

use crate::backend::Backend;
use crate::client::TargetError;
use crate::repair::Shard;
use crate::replicated::{Replicas, ReplicatedBlobStore};

/// Blobs read from the index per step.
const PAGE: usize = 256;
/// Suspects waiting at most: past this a report is dropped (the next scrub
/// pass still finds the replica).
const MAX_SUSPECTS: usize = 4096;

/// Blobs a reader found corrupt, each once until checked.
#[derive(Default)]
pub struct Suspects {
    pending: Mutex<BTreeSet<BlobId>>,
    wake: Notify,
}

impl Suspects {
    pub(crate) fn add(&self, id: BlobId) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() < MAX_SUSPECTS && pending.insert(id) {
            tracing::warn!(blob = %id, "a replica failed authentication on read; its replicas will be checked");
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Option<BlobId> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).pop_first()
    }
}

/// How fast scrub reads: bytes per second across a gateway's scrub reads
/// (`None`: as fast as the targets answer).
#[derive(Debug)]
pub struct Pace {
    bytes_per_sec: Option<u64>,
    state: Mutex<(Instant, u64)>,
}

impl Pace {
    pub fn new(bytes_per_sec: Option<u64>) -> Self {
        Self { bytes_per_sec: bytes_per_sec.filter(|&b| b > 0), state: Mutex::new((Instant::now(), 0)) }
    }

    /// Counts `bytes` read and sleeps long enough to stay under the pace.
    async fn spend(&self, bytes: u64) {
        let Some(rate) = self.bytes_per_sec else { return };
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            // A fresh window every minute, so an idle spell is not banked.
            if state.0.elapsed() > Duration::from_secs(60) {
                *state = (Instant::now(), 0);
            }
            state.1 += bytes;
            Duration::from_secs_f64(state.1 as f64 / rate as f64).saturating_sub(state.0.elapsed())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// What checking blobs found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScrubReport {
    /// Blobs looked at.
    pub blobs: u64,
    /// Replicas read whole and found to match their checksum.
    pub replicas_ok: u64,
    /// Bytes read back.
    pub bytes: u64,
    /// Replicas that differed from their checksum, were short or missing.
    pub corrupt: u64,
    /// Of those, written again from a good replica.
    pub repaired: u64,
    /// Blobs recorded before checksums existed: their replicas were
    /// compared with each other instead (and the checksum recorded when
    /// they agree).
    pub unverifiable: u64,
    /// Replicas not checked: their target was down or lost.
    pub skipped: u64,
    /// Blobs whose check could not finish (a replica unreadable on a target
    /// that is up, no good replica to copy from): their shard runs again.
    pub failed: u64,
    pub last_error: Option<String>,
}

impl ScrubReport {
    pub fn add(&mut self, other: &ScrubReport) {
        self.blobs += other.blobs;
        self.replicas_ok += other.replicas_ok;
        self.bytes += other.bytes;
        self.corrupt += other.corrupt;
        self.repaired += other.repaired;
        self.unverifiable += other.unverifiable;
        self.skipped += other.skipped;
        self.failed += other.failed;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }

    fn fail(&mut self, id: BlobId, why: impl std::fmt::Display) {
        self.failed += 1;
        self.last_error = Some(format!("blob {id}: {why}"));
    }
}

/// One replica read back.
enum Found {
    /// Its checksum and size.
    Read(u64, u64),
    Missing,
    /// Could not be read now (target down, cut short): no verdict.
    Unreadable(String),
}

impl ReplicatedBlobStore {
    /// Checks the blobs readers reported corrupt, as they come, until
    /// `stop`, telling `checked` what each check found.
    pub async fn check_suspects(
        &self,
        pace: &Arc<Pace>,
        stop: impl Future<Output = ()>,
        checked: impl Fn(&ScrubReport),
    ) {
        let mut stop = std::pin::pin!(stop);
        loop {
            while let Some(id) = self.suspects.take() {
                let mut report = ScrubReport::default();
                match self.check_blob(id, pace).await {
                    Ok(one) => report.add(&one),
                    Err(e) => report.fail(id, e),
                }
                checked(&report);
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.suspects.wake.notified() => {}
            }
        }
    }

    /// Scrubs every blob of `shard`.
    pub async fn scrub_shard(&self, shard: Shard, pace: &Arc<Pace>) -> Result<ScrubReport> {
        let (first, last) = shard.bounds();
        let mut after = first.checked_sub(1).map(BlobId);
        let mut report = ScrubReport::default();
        loop {
            let page = self.index().page(after, PAGE).await?;
            let Some((next, _)) = page.last() else { return Ok(report) };
            after = Some(*next);
            for (id, _) in page {
                if id.0 > last {
                    return Ok(report);
                }
                match self.check_blob(id, pace).await {
                    Ok(one) => report.add(&one),
                    Err(e) => report.fail(id, e),
                }
            }
        }
    }

    /// Reads each live replica of `id` whole, compares it with the recorded
    /// checksum, and writes the bad ones again from a good one.
    pub async fn check_blob(&self, id: BlobId, pace: &Arc<Pace>) -> Result<ScrubReport> {
        let mut report = ScrubReport { blobs: 1, ..ScrubReport::default() };
        let Some(replicas) = self.index().get(id).await? else { return Ok(report) };
        let mut found = Vec::new();
        for target in &replicas.targets {
            let tid = TargetId(target.clone());
            // A lost target is repair's business, a down one is no verdict:
            // its replica is checked by a pass that finds it up.
            if self.health().is_lost(&tid) || !self.health().is_up(&tid) {
                report.skipped += 1;
                continue;
            }
            let backend = self.backend(&tid)?;
            let seen = read_whole(backend.as_ref(), id, replicas.size, pace).await;
            if let Found::Read(_, size) = &seen {
                report.bytes += size;
            }
            found.push((tid, backend, seen));
        }
        let every_replica_read = report.skipped == 0;
        let adopted = || every_replica_read.then(|| self.adopt(&found, replicas.size)).flatten();
        let Some(expected) = replicas.checksum.or_else(adopted) else {
            report.unverifiable += 1;
            let sums: BTreeSet<u64> =
                found.iter().filter_map(|(_, _, f)| if let Found::Read(c, _) = f { Some(*c) } else { None }).collect();
            if sums.len() > 1 {
                report.fail(id, "its replicas differ and it was recorded without a checksum: a GET finds the bad one");
            }
            return Ok(report);
        };
        if replicas.checksum.is_none() {
            report.unverifiable += 1;
            let recorded = Replicas { checksum: Some(expected), ..replicas.clone() };
            let _ = self.index().replace_if(id, &replicas, &recorded).await;
        }
        let good: Vec<&(TargetId, Arc<dyn Backend>, Found)> = found
            .iter()
            .filter(|(_, _, f)| matches!(f, Found::Read(c, s) if *c == expected && *s == replicas.size))
            .collect();
        report.replicas_ok += good.len() as u64;
        for (target, backend, seen) in &found {
            let why = match seen {
                Found::Read(c, s) if *c == expected && *s == replicas.size => continue,
                Found::Read(_, s) if *s != replicas.size => format!("{s} bytes instead of {}", replicas.size),
                Found::Read(..) => "its bytes differ from the checksum recorded at write".to_owned(),
                Found::Missing => "missing".to_owned(),
                Found::Unreadable(why) => {
                    report.fail(id, format!("{target}: {why}"));
                    continue;
                }
            };
            report.corrupt += 1;
            tracing::warn!(blob = %id, target_id = %target, problem = %why, "a replica is corrupt");
            let sources: Vec<Arc<dyn Backend>> = good.iter().map(|(_, b, _)| b.clone()).collect();
            match self.rewrite(id, &replicas, target, backend.as_ref(), &sources, expected, pace).await {
                Ok(()) => {
                    report.repaired += 1;
                    tracing::info!(blob = %id, target_id = %target, "rewrote a corrupt replica from a good one");
                }
                Err(e) => report.fail(id, format!("{target} ({why}) could not be rewritten: {e}")),
            }
        }
        Ok(report)
    }

    /// A blob recorded without a checksum: the one all its replicas share,
    /// if they were all read and agree (one down might be the only good one).
    fn adopt(&self, found: &[(TargetId, Arc<dyn Backend>, Found)], size: u64) -> Option<u64> {
        let sums: BTreeSet<u64> = found
            .iter()
            .filter_map(|(_, _, f)| if let Found::Read(c, s) = f { (*s == size).then_some(*c) } else { None })
            .collect();
        let all_read = found.iter().all(|(_, _, f)| matches!(f, Found::Read(..)));
        (all_read && sums.len() == 1).then(|| sums.into_iter().next()).flatten()
    }

    /// Replaces the replica on `target` with a copy of a good one, checked
    /// against `expected` as it streams; the copy is dropped if the blob was
    /// deleted or moved off `target` meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn rewrite(
        &self,
        id: BlobId,
        replicas: &Replicas,
        target: &TargetId,
        dest: &dyn Backend,
        sources: &[Arc<dyn Backend>],
        expected: u64,
        pace: &Arc<Pace>,
    ) -> Result<()> {
        if sources.is_empty() {
            return Err(coffre_core::Error::Unavailable("no replica checks out to copy from".into()));
        }
        match dest.delete(id).await {
            Ok(()) | Err(TargetError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut last = None;
        for source in sources {
            match copy_checked(source.as_ref(), dest, id, replicas.size, expected, pace).await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        let still = self.index().get(id).await?;
        if !still.is_some_and(|r| r.targets.contains(&target.0)) {
            let _ = dest.delete(id).await;
        }
        Ok(())
    }
}

/// Reads a whole replica, returning its checksum and size.
async fn read_whole(backend: &dyn Backend, id: BlobId, size: u64, pace: &Pace) -> Found {
    let mut stream = match backend.read(id, 0..size).await {
        Ok(stream) => stream,
        Err(TargetError::NotFound { .. }) => return Found::Missing,
        Err(e) => return Found::Unreadable(e.to_string()),
    };
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                crc.update(&chunk);
                read += chunk.len() as u64;
                pace.spend(chunk.len() as u64).await;
            }
            // A replica cut short by its node is a short replica only if the
            // node said so by ending; an error is no verdict.
            Err(e) => return Found::Unreadable(e.to_string()),
        }
    }
    Found::Read(crc.finalize(), read)
}

/// Streams `source` into a new blob on `dest`; fails (and deletes the copy)
/// unless what went through matches `expected` and `size`.
async fn copy_checked(
    source: &dyn Backend,
    dest: &dyn Backend,
    id: BlobId,
    size: u64,
    expected: u64,
    pace: &Arc<Pace>,
) -> Result<()> {
    let stream = source.read(id, 0..size).await?;
    let crc = Arc::new(Mutex::new(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme)));
    let (tap, pace) = (crc.clone(), pace.clone());
    // A read error ends the upload short, and the size check below fails the copy.
    let body = stream.take_while(|chunk| std::future::ready(chunk.is_ok())).filter_map(|c| async move { c.ok() }).then(
        move |chunk: Bytes| {
            let (tap, pace) = (tap.clone(), pace.clone());
            async move {
                tap.lock().unwrap_or_else(PoisonError::into_inner).update(&chunk);
                pace.spend(chunk.len() as u64).await;
                chunk
            }
        },
    );
    let stored = dest.put(id, Box::pin(body)).await;
    let crc = crc.lock().unwrap_or_else(PoisonError::into_inner).finalize();
    let fail = |why: String| coffre_core::Error::Unavailable(format!("copying blob {id}: {why}"));
    let outcome = match stored {
        Ok(n) if n != size => Err(fail(format!("stored {n} of {size} bytes"))),
        Ok(_) if crc != expected => Err(fail("the source's bytes do not match the checksum".into())),
        Ok(_) => Ok(()),
        Err(e) => Err(e.into()),
    };
    if outcome.is_err() {
        let _ = dest.delete(id).await;
    }
    outcome
}
