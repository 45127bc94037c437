//! The data-placement side of a gateway whose data lives on storage
//! targets: its replicated store, and the repair worker on the job queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffre_admin::RepairStatus;
use coffre_core::jobs::JobQueue;
use coffre_meta::PgMeta;
use coffre_node::{ReplicatedBlobStore, SHARDS, Shard, ShardReport};
use tokio::sync::Notify;

/// How often a repair pass is queued when nobody asks.
const REPAIR_INTERVAL: Duration = Duration::from_secs(60);
/// How often a gateway looks at the queue (and the lost targets) unwoken.
const POLL: Duration = Duration::from_secs(2);
/// A claimed shard lapses to another gateway after this if not finished.
const SHARD_HOLD: Duration = Duration::from_secs(300);
/// A shard with blobs that could not be repaired runs again after this.
const SHARD_RETRY: Duration = Duration::from_secs(10);
/// The job kind of repair shards in the queue.
const REPAIR: &str = "repair";
/// With many gateways, the periodic pass is queued by this lease's holder.
const REPAIR_LEASE: &str = "repair";

/// The data-placement side of a server whose data lives on storage targets.
pub struct Cluster {
    pub store: Arc<ReplicatedBlobStore>,
    /// Repair shards: this gateway's own, or the queue every gateway shares.
    jobs: Arc<dyn JobQueue>,
    /// The shared database, when gateways must agree who queues passes.
    shared: Option<Arc<PgMeta>>,
    progress: Mutex<Progress>,
    wake_repair: Notify,
}

/// What this gateway saw and did of repair.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// A pass is under way (shards were queued when last looked).
    in_pass: bool,
    passes: u64,
    scanned: u64,
    repaired: u64,
    failed: u64,
    last_error: Option<String>,
}

impl Cluster {
    pub fn new(store: Arc<ReplicatedBlobStore>, jobs: Arc<dyn JobQueue>, shared: Option<Arc<PgMeta>>) -> Arc<Self> {
        Arc::new(Self { store, jobs, shared, progress: Mutex::default(), wake_repair: Notify::new() })
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a whole pass, for every gateway to work, and wakes this one.
    pub async fn request_repair(&self) -> coffre_core::Result<()> {
        self.jobs.enqueue(REPAIR, &Shard::every_key()).await?;
        self.wake_repair.notify_one();
        Ok(())
    }

    pub async fn repair_status(&self) -> coffre_core::Result<RepairStatus> {
        let queued = self.jobs.queued(REPAIR).await?;
        let p = self.progress().clone();
        Ok(RepairStatus {
            running: queued > 0,
            queued,
            shards: SHARDS,
            passes: p.passes,
            scanned: p.scanned,
            repaired: p.repaired,
            failed: p.failed,
            last_error: p.last_error,
        })
    }

    /// Queues a pass at start and every [`REPAIR_INTERVAL`] (with many
    /// gateways, only the lease holder does), and works the queue: when
    /// woken, and every [`POLL`].
    pub async fn run_repair(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        // Give the first probes a moment, so a pass does not see every target down.
        self.store.probe_all().await;
        let mut next_pass = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_pass {
                self.queue_periodic_pass().await;
                next_pass = tokio::time::Instant::now() + REPAIR_INTERVAL;
            }
            self.learn_lost().await;
            if !self.work_queue(&mut stop).await {
                return;
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.wake_repair.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn queue_periodic_pass(&self) {
        if let Some(pg) = &self.shared {
            match pg.acquire_lease(REPAIR_LEASE, REPAIR_INTERVAL * 2 + Duration::from_secs(60)).await {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not take the repair lease; the next pass retries");
                    return;
                }
            }
        }
        if let Err(e) = self.jobs.enqueue(REPAIR, &Shard::every_key()).await {
            tracing::warn!(error = %e, "could not queue a repair pass; the next one retries");
        }
    }

    /// Targets another gateway declared lost stop counting here too. A
    /// gateway alone declares its own losses: nothing to learn.
    async fn learn_lost(&self) {
        if self.shared.is_none() {
            return;
        }
        match self.store.refresh_lost().await {
            Ok(learned) if !learned.is_empty() => tracing::warn!(?learned, "targets declared lost by another gateway"),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "could not read the lost targets"),
        }
    }

    /// Claims and repairs shards until none is due; false if stopped.
    async fn work_queue(&self, stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        loop {
            let claim = match self.jobs.claim(REPAIR, SHARD_HOLD).await {
                Ok(Some(claim)) => claim,
                Ok(None) => {
                    self.observe_queue().await;
                    return true;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not claim a repair shard");
                    return true;
                }
            };
            let Some(shard) = Shard::from_key(&claim.key) else {
                tracing::warn!(key = ?claim.key, "a repair job of no shard: dropped");
                let _ = self.jobs.finish(REPAIR, &claim).await;
                continue;
            };
            self.begin_pass();
            let outcome = tokio::select! {
                () = stop.as_mut() => {
                    // Back to the queue at once, for another gateway or our restart.
                    let _ = self.jobs.retry(REPAIR, &claim, Duration::ZERO, "the gateway stopped").await;
                    return false;
                }
                outcome = self.store.repair_shard(shard) => outcome,
            };
            let failure = self.record(outcome);
            let done = match failure {
                None => self.jobs.finish(REPAIR, &claim).await,
                Some(why) => self.jobs.retry(REPAIR, &claim, SHARD_RETRY, &why).await,
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, ?shard, "could not end a repair shard's claim; it lapses");
            }
        }
    }

    /// Counts a shard's outcome; why it must run again, if it must.
    fn record(&self, outcome: coffre_core::Result<ShardReport>) -> Option<String> {
        let mut p = self.progress();
        match outcome {
            Ok(report) => {
                p.scanned += report.scanned;
                p.repaired += report.repaired;
                p.failed += report.failed;
                // Set only with a failure: the shard runs again.
                if report.last_error.is_some() {
                    p.last_error.clone_from(&report.last_error);
                }
                report.last_error
            }
            Err(e) => {
                p.last_error = Some(e.to_string());
                Some(e.to_string())
            }
        }
    }

    fn begin_pass(&self) {
        let mut p = self.progress();
        if !p.in_pass {
            *p = Progress { in_pass: true, passes: p.passes, ..Progress::default() };
        }
    }

    /// A pass ends, for this gateway, when it finds the queue empty.
    async fn observe_queue(&self) {
        let Ok(queued) = self.jobs.queued(REPAIR).await else { return };
        if queued > 0 {
            self.begin_pass();
            return;
        }
        let mut p = self.progress();
        if p.in_pass {
            p.in_pass = false;
            p.passes += 1;
        }
    }
}

/// The admin API reads and steers the targets through the replicated store
/// and this gateway's repair.
#[async_trait::async_trait]
impl coffre_admin::Placement for Cluster {
    fn topology(&self) -> &coffre_topology::Topology {
        self.store.topology()
    }

    fn default_policy(&self) -> &coffre_topology::ResidencyPolicy {
        self.store.default_policy()
    }

    fn is_up(&self, target: &coffre_topology::TargetId) -> bool {
        self.store.health().is_up(target)
    }

    fn is_lost(&self, target: &coffre_topology::TargetId) -> bool {
        self.store.health().is_lost(target)
    }

    async fn offenders(
        &self,
        bucket: &str,
        policy: &coffre_topology::ResidencyPolicy,
    ) -> coffre_core::Result<Vec<coffre_admin::Offender>> {
        let found = self.store.offenders(bucket, policy).await?;
        Ok(found.into_iter().map(|o| coffre_admin::Offender { key: o.key, reasons: o.reasons }).collect())
    }

    async fn retag(&self, bucket: &str, policy: &coffre_topology::ResidencyPolicy) -> coffre_core::Result<()> {
        self.store.retag(bucket, policy).await.map(drop)
    }

    async fn replicas(&self, blob: coffre_core::types::BlobId) -> coffre_core::Result<Option<Vec<String>>> {
        Ok(self.store.replicas(blob).await?.map(|r| r.targets))
    }

    async fn declare_lost(&self, target: &coffre_topology::TargetId) -> coffre_core::Result<()> {
        self.store.declare_lost(target).await
    }

    async fn request_repair(&self) -> coffre_core::Result<()> {
        Cluster::request_repair(self).await
    }

    async fn repair_status(&self) -> coffre_core::Result<RepairStatus> {
        Cluster::repair_status(self).await
    }
}
