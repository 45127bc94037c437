//! The gateway's blob store: each blob goes to the targets its bucket's
//! residency policy allows, in parallel, and counts as stored only once every
//! replica is durable; reads take any healthy replica and move on to the next
//! one if a node fails, even mid-stream.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use coffre_core::blob::{BlobStore, BlobWriter, ByteStream, Placement};
use coffre_core::types::BlobId;
use coffre_core::{Error, Result};
use coffre_topology::{PolicyError, PolicyRequest, ResidencyPolicy, Target, TargetId, Topology};
use futures::{StreamExt as _, stream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::{self, Backend, BodyStream};
use crate::client::{NodeClient, TargetError};
use crate::index::PlacementIndex;
pub use crate::index::Replicas;
use coffre_core::placement::PlacementStore;

/// Chunks buffered per replica: the slowest replica paces the upload.
const CHANNEL_CHUNKS: usize = 4;
/// How often every target is asked whether it is up.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Told of every target going down or coming back up.
pub type HealthObserver = Box<dyn Fn(&TargetId, bool) + Send + Sync>;

/// Which targets answer, as last probed, and which were declared lost.
pub struct TargetHealth {
    up: BTreeMap<TargetId, AtomicBool>,
    lost: Mutex<BTreeSet<TargetId>>,
    /// Why each target that is down is down, as its last probe said.
    problems: Mutex<BTreeMap<TargetId, String>>,
    observer: std::sync::OnceLock<HealthObserver>,
}

impl TargetHealth {
    fn new(topology: &Topology, lost: Vec<String>) -> Self {
        let up = topology.targets().iter().map(|t| (t.id.clone(), AtomicBool::new(true))).collect();
        let lost = lost.into_iter().map(TargetId).collect();
        Self { up, lost: Mutex::new(lost), problems: Mutex::default(), observer: std::sync::OnceLock::new() }
    }

    /// Sets the one observer of up/down changes (the audit log); later calls are ignored.
    pub fn observe(&self, observer: HealthObserver) {
        let _ = self.observer.set(observer);
    }

    pub fn is_lost(&self, id: &TargetId) -> bool {
        self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(id)
    }

    /// Up: answering the probe and not declared lost.
    pub fn is_up(&self, id: &TargetId) -> bool {
        self.up.get(id).is_some_and(|flag| flag.load(Ordering::Relaxed)) && !self.is_lost(id)
    }

    /// Why `id` is down (its last probe's error), if it is.
    pub fn problem(&self, id: &TargetId) -> Option<String> {
        self.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned()
    }

    /// Records a probe's outcome: `Err(why)` is down, and why.
    fn record(&self, id: &TargetId, outcome: std::result::Result<(), String>) {
        let mut problems = self.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &outcome {
            Ok(()) => drop(problems.remove(id)),
            Err(why) => {
                if problems.insert(id.clone(), why.clone()).as_ref() != Some(why) {
                    tracing::warn!(target_id = %id, problem = %why, "storage target fails its probe");
                }
            }
        }
        drop(problems);
        self.set(id, outcome.is_ok());
    }

    fn set(&self, id: &TargetId, up: bool) {
        if let Some(flag) = self.up.get(id) {
            let was = flag.swap(up, Ordering::Relaxed);
            if was != up {
                if up {
                    tracing::info!(target_id = %id, "storage target is up");
                } else {
                    tracing::warn!(target_id = %id, problem = ?self.problem(id), "storage target is down");
                }
                if let Some(observer) = self.observer.get() {
                    observer(id, up);
                }
            }
        }
    }
}

pub struct ReplicatedBlobStore {
    topology: Arc<Topology>,
    default_policy: ResidencyPolicy,
    /// How to reach each target of the topology.
    backends: BTreeMap<TargetId, Arc<dyn Backend>>,
    index: PlacementIndex,
    health: Arc<TargetHealth>,
    /// Blobs a reader found corrupt, waiting for [`Self::check_blob`].
    pub(crate) suspects: crate::scrub::Suspects,
}

pub(crate) fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// A policy refused: wider than the operator's `[residency]`, or invalid.
fn policy_error(e: PolicyError) -> Error {
    match e {
        PolicyError::Wider(_) => Error::ResidencyNotAllowed(e.to_string()),
        other => Error::InvalidArgument(other.to_string()),
    }
}

/// The write cannot meet its residency policy with the targets up now.
fn unsatisfiable(why: impl std::fmt::Display) -> Error {
    Error::Residency(why.to_string())
}

impl ReplicatedBlobStore {
    /// `placement` holds where each blob's replicas are: the gateway's own
    /// file ([`crate::FilePlacement`]) or the shared metadata database.
    pub async fn open(
        topology: Arc<Topology>,
        default_policy: ResidencyPolicy,
        client: Option<NodeClient>,
        placement: Arc<dyn PlacementStore>,
    ) -> Result<Arc<Self>> {
        let index = PlacementIndex::new(placement);
        let health = Arc::new(TargetHealth::new(&topology, index.lost().await?));
        let mut backends = BTreeMap::new();
        for target in topology.targets() {
            let backend = backend::for_target(target, client.as_ref())
                .map_err(|e| Error::InvalidArgument(format!("target {}: {e}", target.id)))?;
            backends.insert(target.id.clone(), backend);
        }
        let suspects = crate::scrub::Suspects::default();
        Ok(Arc::new(Self { topology, default_policy, backends, index, health, suspects }))
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The policy of buckets that set none.
    pub fn default_policy(&self) -> &ResidencyPolicy {
        &self.default_policy
    }

    pub fn health(&self) -> &TargetHealth {
        &self.health
    }

    /// Probes every target until the store is dropped.
    pub fn spawn_probes(self: &Arc<Self>) -> JoinHandle<()> {
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(store) = store.upgrade() else { return };
                store.probe_all().await;
            }
        })
    }

    /// Asks every target whether it is up, all at once.
    pub async fn probe_all(&self) {
        let probes = self.backends.iter().map(|(id, backend)| async move {
            let outcome = backend.probe().await.map_err(|e| e.to_string());
            self.health.record(id, outcome);
        });
        futures::future::join_all(probes).await;
    }

    fn target(&self, id: &TargetId) -> Option<&Target> {
        self.topology.target(id)
    }

    pub(crate) fn backend(&self, id: &TargetId) -> Result<Arc<dyn Backend>> {
        self.backends.get(id).cloned().ok_or_else(|| Error::Residency(format!("target {id} is not in the topology")))
    }

    /// The placement index in pages: blobs after `after`, at most `limit`.
    pub async fn replicas_page(&self, after: Option<BlobId>, limit: usize) -> Result<Vec<(BlobId, Replicas)>> {
        self.index.page(after, limit).await
    }

    /// Where a blob's replicas are, from the placement index.
    pub async fn replicas(&self, id: BlobId) -> Result<Option<Replicas>> {
        self.index.get(id).await
    }

    /// Marks a target lost for good: never used again, its replicas no longer
    /// count, and repair replaces them.
    pub async fn declare_lost(&self, id: &TargetId) -> Result<()> {
        if self.topology.target(id).is_none() {
            return Err(Error::InvalidArgument(format!("no target {id} in the topology")));
        }
        self.index.declare_lost(id.to_string()).await?;
        self.health.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone());
        Ok(())
    }

    /// Learns the targets another gateway declared lost since this one
    /// started; returns those newly learned.
    pub async fn refresh_lost(&self) -> Result<Vec<String>> {
        let declared = self.index.lost().await?;
        let mut lost = self.health.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(declared.into_iter().filter(|t| lost.insert(TargetId(t.clone()))).collect())
    }

    /// The replicas of `id` in the order to try them: up ones first.
    fn read_order(&self, replicas: &Replicas) -> Vec<(TargetId, Arc<dyn Backend>)> {
        let mut targets: Vec<(TargetId, Arc<dyn Backend>)> = replicas
            .targets
            .iter()
            .map(|t| TargetId(t.clone()))
            .filter(|t| !self.health.is_lost(t))
            .filter_map(|t| self.backends.get(&t).cloned().map(|b| (t, b)))
            .collect();
        targets.sort_by_key(|(t, _)| !self.health.is_up(t));
        targets
    }

    pub(crate) fn read_replicas(&self, id: BlobId, replicas: &Replicas, range: Range<u64>) -> Result<ByteStream> {
        let targets = self.read_order(replicas);
        if targets.is_empty() {
            return Err(Error::Unavailable(format!("every replica of blob {id} is on a lost target")));
        }
        Ok(failover_stream(targets, id, range))
    }

    pub(crate) fn index(&self) -> &PlacementIndex {
        &self.index
    }

    /// "; down: par-1 (why), ..." for the targets that fail their probe.
    fn down_targets(&self) -> String {
        let down: Vec<String> = self
            .backends
            .keys()
            .filter(|t| !self.health.is_lost(t))
            .filter_map(|t| self.health.problem(t).map(|why| format!("{t} ({why})")))
            .collect();
        if down.is_empty() { String::new() } else { format!("; down: {}", down.join("; ")) }
    }
}

#[async_trait]
impl BlobStore for ReplicatedBlobStore {
    async fn create(&self, id: BlobId, placement: &Placement) -> Result<Box<dyn BlobWriter>> {
        let policy = placement.residency.clone().unwrap_or_else(|| self.default_policy.clone());
        // A bucket's policy older than a narrower `[residency]` places nothing outside it.
        self.topology.check_bounded(&policy, &self.default_policy).map_err(policy_error)?;
        let chosen = self
            .topology
            .place(&policy, &id.0.to_be_bytes(), today(), |t| self.health.is_up(&t.id))
            .map_err(|e| unsatisfiable(format!("{e}{}", self.down_targets())))?;
        let mut replicas = Vec::with_capacity(chosen.len());
        for target in chosen {
            let backend = self.backend(&target)?;
            let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
            let body: BodyStream =
                Box::pin(stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) }));
            let uploader = backend.clone();
            let upload = tokio::spawn(async move { uploader.put(id, body).await });
            replicas.push(Replica { target, backend, tx: Some(tx), upload });
        }
        Ok(Box::new(ReplicatedWriter {
            id,
            bucket: placement.bucket.clone().unwrap_or_default(),
            key: placement.key.clone().unwrap_or_default(),
            policy,
            replicas,
            len: 0,
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
            index: self.index.clone(),
        }))
    }

    async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream> {
        let Some(replicas) = self.index.get(id).await? else {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no replicas of blob {id}"),
            )));
        };
        self.read_replicas(id, &replicas, range)
    }

    /// Fails while a live replica could not be deleted, so the collector
    /// retries; replicas on lost targets are forgotten.
    async fn delete(&self, id: BlobId) -> Result<()> {
        let Some(seen) = self.index.get(id).await? else { return self.delete_unplaced(id).await };
        let mut left = Vec::new();
        for target in &seen.targets {
            let tid = TargetId(target.clone());
            let Some(backend) = self.backends.get(&tid).filter(|_| !self.health.is_lost(&tid)) else { continue };
            match backend.delete(id).await {
                Ok(()) | Err(TargetError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(blob = %id, target_id = %tid, error = %e, "could not delete a replica; will retry");
                    left.push(target.clone());
                }
            }
        }
        // Conditional on the record the deletes acted on: a repair that added
        // a replica meanwhile makes this fail, and the next attempt deletes it too.
        if !self.index.remove_if(id, &seen).await? {
            return Err(Error::Unavailable(format!("blob {id} gained a replica while being deleted; will retry")));
        }
        if left.is_empty() {
            return Ok(());
        }
        let remaining = left.len();
        self.index.put(id, &Replicas { targets: left, ..seen }).await?;
        Err(Error::Unavailable(format!("{remaining} replica(s) of blob {id} could not be deleted yet")))
    }

    /// The live replicas again, this time starting from the `attempt`-th
    /// in read order (and failing over to the others, wrapping round).
    async fn read_again(&self, id: BlobId, range: Range<u64>, attempt: usize) -> Result<Option<ByteStream>> {
        let Some(replicas) = self.index.get(id).await? else { return Ok(None) };
        let mut targets = self.read_order(&replicas);
        if attempt >= targets.len() {
            return Ok(None);
        }
        targets.rotate_left(attempt);
        Ok(Some(failover_stream(targets, id, range)))
    }

    fn suspect(&self, id: BlobId) {
        self.suspects.add(id);
    }

    fn bucket_policy(&self, asked: &PolicyRequest) -> Result<ResidencyPolicy> {
        self.topology.bucket_policy(asked, &self.default_policy).map_err(policy_error)
    }

    async fn locations(&self, id: BlobId) -> Result<Vec<String>> {
        let Some(replicas) = self.index.get(id).await? else { return Ok(Vec::new()) };
        Ok(replicas.targets.iter().filter_map(|t| self.target(&TargetId(t.clone()))).map(Target::location).collect())
    }
}

struct Replica {
    target: TargetId,
    backend: Arc<dyn Backend>,
    /// `None` once the body is complete.
    tx: Option<mpsc::Sender<Bytes>>,
    upload: JoinHandle<std::result::Result<u64, TargetError>>,
}

struct ReplicatedWriter {
    id: BlobId,
    bucket: String,
    key: String,
    policy: ResidencyPolicy,
    replicas: Vec<Replica>,
    len: u64,
    /// Of the sealed bytes, recorded for scrub to check replicas against.
    crc: crc_fast::Digest,
    index: PlacementIndex,
}

impl ReplicatedWriter {
    /// Deletes whatever any replica kept, so a failed write leaves nothing behind.
    async fn discard(&mut self) {
        for replica in &mut self.replicas {
            replica.tx = None;
            replica.upload.abort();
        }
        for replica in &self.replicas {
            match replica.backend.delete(self.id).await {
                Ok(()) | Err(TargetError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(blob = %self.id, target_id = %replica.target, error = %e,
                    "a failed write left a replica behind"),
            }
        }
    }

    async fn failure(&mut self, which: usize) -> Error {
        let replica = &mut self.replicas[which];
        replica.tx = None;
        let why = match (&mut replica.upload).await {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => "the node answered before the body ended".into(),
            Err(e) => e.to_string(),
        };
        let target = replica.target.clone();
        self.discard().await;
        Error::Unavailable(format!("writing a replica to target {target} failed: {why}"))
    }
}

/// A writer dropped without `finish` or `abort` (its request went away):
/// the uploads are cut, so no target mistakes a short body for a whole blob.
impl Drop for ReplicatedWriter {
    fn drop(&mut self) {
        for replica in &self.replicas {
            replica.upload.abort();
        }
    }
}

#[async_trait]
impl BlobWriter for ReplicatedWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.len += chunk.len() as u64;
        self.crc.update(&chunk);
        for i in 0..self.replicas.len() {
            let sent = match &self.replicas[i].tx {
                Some(tx) => tx.send(chunk.clone()).await.is_ok(),
                None => false,
            };
            if !sent {
                return Err(self.failure(i).await);
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        for replica in &mut self.replicas {
            replica.tx = None;
        }
        let mut failed = None;
        for i in 0..self.replicas.len() {
            let outcome = match (&mut self.replicas[i].upload).await {
                Ok(Ok(size)) if size == self.len => Ok(()),
                Ok(Ok(size)) => Err(format!("stored {size} bytes of {}", self.len)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = outcome {
                failed = Some(format!("writing a replica to target {} failed: {why}", self.replicas[i].target));
                break;
            }
        }
        if let Some(why) = failed {
            self.discard().await;
            return Err(Error::Unavailable(why));
        }
        let replicas = Replicas {
            size: self.len,
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            policy: self.policy.clone(),
            targets: self.replicas.iter().map(|r| r.target.to_string()).collect(),
            checksum: Some(self.crc.finalize()),
        };
        if let Err(e) = self.index.put(self.id, &replicas).await {
            self.discard().await;
            return Err(e);
        }
        Ok(self.len)
    }

    async fn abort(mut self: Box<Self>) {
        self.discard().await;
    }
}

/// Reads `range` from the first replica that answers; if it fails mid-stream,
/// resumes at the same offset on the next one. Stops at the range's end,
/// whatever a replica would send after it; when every replica failed, the
/// error names each with its failure.
pub(crate) fn failover_stream(targets: Vec<(TargetId, Arc<dyn Backend>)>, id: BlobId, range: Range<u64>) -> ByteStream {
    struct State {
        targets: std::vec::IntoIter<(TargetId, Arc<dyn Backend>)>,
        current: Option<(TargetId, ByteStream)>,
        id: BlobId,
        at: u64,
        end: u64,
        failures: Vec<String>,
    }
    let state = State {
        targets: targets.into_iter(),
        current: None,
        id,
        at: range.start,
        end: range.end,
        failures: Vec::new(),
    };
    Box::pin(stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        loop {
            if s.at >= s.end {
                return None;
            }
            if let Some((target, current)) = s.current.as_mut() {
                match current.next().await {
                    Some(Ok(chunk)) => {
                        let room = (s.end - s.at) as usize;
                        let chunk = if chunk.len() > room { chunk.slice(..room) } else { chunk };
                        s.at += chunk.len() as u64;
                        return Some((Ok(chunk), Some(s)));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(blob = %s.id, target_id = %target, error = %e, at = s.at, "a replica failed mid-read; trying the next");
                        s.failures.push(format!("{target}: {e}"));
                        s.current = None;
                    }
                    None => {
                        s.failures.push(format!("{target}: the replica ended early at byte {}", s.at));
                        s.current = None;
                    }
                }
                continue;
            }
            let Some((target, backend)) = s.targets.next() else {
                let why = if s.failures.is_empty() { "no replica answered".to_owned() } else { s.failures.join("; ") };
                let e = Error::Unavailable(format!("no replica of blob {} could be read: {why}", s.id));
                return Some((Err(e), None));
            };
            match backend.read(s.id, s.at..s.end).await {
                Ok(stream) => s.current = Some((target, stream)),
                Err(e) => s.failures.push(e.to_string()),
            }
        }
    }))
}

impl ReplicatedBlobStore {
    /// A blob with no placement record was never finished (a write cut short
    /// by a crash): it may have reached any target, so every live one is
    /// asked to delete it. Unreachable targets keep their orphan.
    async fn delete_unplaced(&self, id: BlobId) -> Result<()> {
        for (target, backend) in &self.backends {
            if self.health.is_lost(target) || !self.health.is_up(target) {
                continue;
            }
            if let Err(e) = backend.delete(id).await {
                tracing::warn!(blob = %id, target_id = %target, error = %e, "an unfinished blob may remain on a target");
            }
        }
        Ok(())
    }
}

/// A blob whose replicas break a policy, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Offender {
    pub key: String,
    pub blob: String,
    pub targets: Vec<String>,
    pub reasons: Vec<String>,
}

impl ReplicatedBlobStore {
    /// Every blob of `bucket` whose live replicas would break `policy`.
    pub async fn offenders(&self, bucket: &str, policy: &ResidencyPolicy) -> Result<Vec<Offender>> {
        let mut found = Vec::new();
        self.each_of_bucket(bucket, |id, replicas| {
            let live: Vec<TargetId> =
                replicas.targets.iter().map(|t| TargetId(t.clone())).filter(|t| !self.health.is_lost(t)).collect();
            if let Err(reasons) = self.topology.satisfies(policy, &live, today()) {
                found.push(Offender {
                    key: replicas.key.clone(),
                    blob: id.to_string(),
                    targets: replicas.targets.clone(),
                    reasons,
                });
            }
            None
        })
        .await?;
        Ok(found)
    }

    /// Records `policy` on every blob of `bucket`, so repair follows the
    /// bucket's current rules, not those of the day a blob was written.
    pub async fn retag(&self, bucket: &str, policy: &ResidencyPolicy) -> Result<u64> {
        let written = self
            .each_of_bucket(bucket, |_, replicas| {
                (replicas.policy != *policy).then(|| Replicas { policy: policy.clone(), ..replicas.clone() })
            })
            .await?;
        Ok(written.len() as u64)
    }

    /// Visits the blobs of `bucket` page by page; `visit` may return a new
    /// record, which is written back. Returns the ids written back.
    async fn each_of_bucket(
        &self,
        bucket: &str,
        mut visit: impl FnMut(BlobId, &Replicas) -> Option<Replicas>,
    ) -> Result<Vec<BlobId>> {
        let mut after = None;
        let mut written = Vec::new();
        loop {
            let page = self.index.page(after, 512).await?;
            let Some((last, _)) = page.last() else { return Ok(written) };
            after = Some(*last);
            for (id, replicas) in page.into_iter().filter(|(_, r)| r.bucket == bucket) {
                if self.write_back(id, replicas, &mut visit).await? {
                    written.push(id);
                }
            }
        }
    }

    /// Writes `visit`'s new record over `seen`, visiting again whatever a
    /// repair or a delete changed meanwhile (a deleted blob stays deleted).
    async fn write_back(
        &self,
        id: BlobId,
        mut seen: Replicas,
        visit: &mut impl FnMut(BlobId, &Replicas) -> Option<Replicas>,
    ) -> Result<bool> {
        for _ in 0..8 {
            let Some(updated) = visit(id, &seen) else { return Ok(false) };
            if self.index.replace_if(id, &seen, &updated).await? {
                return Ok(true);
            }
            match self.index.get(id).await? {
                Some(current) => seen = current,
                None => return Ok(false),
            }
        }
        Err(Error::Unavailable(format!("blob {id}'s placement kept changing under a rewrite")))
    }
}
