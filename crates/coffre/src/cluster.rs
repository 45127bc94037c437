//! The data-placement side of a gateway whose data lives on storage
//! targets: its replicated store, and two workers on the job queue, each a
//! pass of one job per shard of the blob-id space that every gateway takes
//! a share of: repair (replicas back to their policy's count after a loss)
//! and scrub (replicas read back and checked, bad ones rewritten). A third
//! worker checks at once the blobs a reader found corrupt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffre_admin::{RepairStatus, ScrubStatus};
use coffre_core::jobs::JobQueue;
use coffre_meta::PgMeta;
use coffre_node::repair::ShardReport;
use coffre_node::scrub::{Pace, ScrubReport};
use coffre_node::{ReplicatedBlobStore, SHARDS, Shard};
use tokio::sync::Notify;

use crate::config::ClusterSettings;

/// How often a repair pass is queued when nobody asks.
const REPAIR_INTERVAL: Duration = Duration::from_secs(60);
/// How often a gateway looks at the queue (and the lost targets) unwoken.
const POLL: Duration = Duration::from_secs(2);
/// A claimed shard lapses to another gateway after this if not finished.
const SHARD_HOLD: Duration = Duration::from_secs(300);
/// A shard with blobs that could not be handled runs again after this.
const SHARD_RETRY: Duration = Duration::from_secs(10);

/// What one shard of a job reports, added up over a pass.
pub trait Tally: Default + Clone + Send + 'static {
    fn add(&mut self, other: &Self);
    /// Why the shard must run again, if it must.
    fn failure(&self) -> Option<String>;
}

impl Tally for ShardReport {
    fn add(&mut self, other: &Self) {
        self.scanned += other.scanned;
        self.repaired += other.repaired;
        self.failed += other.failed;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }

    fn failure(&self) -> Option<String> {
        self.last_error.clone()
    }
}

impl Tally for ScrubReport {
    fn add(&mut self, other: &Self) {
        ScrubReport::add(self, other);
    }

    fn failure(&self) -> Option<String> {
        (self.failed > 0).then(|| self.last_error.clone().unwrap_or_default())
    }
}

/// One kind of sharded job: its queue name, when passes are queued, and
/// what this gateway saw of it.
struct Job<R> {
    /// The job kind in the queue, and the lease name of its periodic pass.
    kind: &'static str,
    interval: Option<Duration>,
    progress: Mutex<Progress<R>>,
    wake: Notify,
}

#[derive(Debug, Clone, Default)]
struct Progress<R> {
    /// A pass is under way (shards were queued when last looked).
    in_pass: bool,
    passes: u64,
    /// This gateway's share of the current (or last) pass.
    totals: R,
    /// Set only with a failure.
    last_error: Option<String>,
}

impl<R: Tally> Job<R> {
    fn new(kind: &'static str, interval: Option<Duration>) -> Self {
        Self { kind, interval, progress: Mutex::default(), wake: Notify::new() }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress<R>> {
        self.progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn request(&self, jobs: &dyn JobQueue) -> coffre_core::Result<()> {
        jobs.enqueue(self.kind, &Shard::every_key()).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Counts a shard's outcome; why it must run again, if it must.
    fn record(&self, outcome: coffre_core::Result<R>) -> Option<String> {
        let mut p = self.progress();
        match outcome {
            Ok(report) => {
                p.totals.add(&report);
                let failure = report.failure();
                if failure.is_some() {
                    p.last_error.clone_from(&failure);
                }
                failure
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
    async fn observe_queue(&self, jobs: &dyn JobQueue) {
        let Ok(queued) = jobs.queued(self.kind).await else { return };
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

/// The data-placement side of a server whose data lives on storage targets.
pub struct Cluster {
    pub store: Arc<ReplicatedBlobStore>,
    /// Shards: this gateway's own, or the queue every gateway shares.
    jobs: Arc<dyn JobQueue>,
    /// The shared database, when gateways must agree who queues passes.
    shared: Option<Arc<PgMeta>>,
    repair: Job<ShardReport>,
    scrub: Job<ScrubReport>,
    pace: Arc<Pace>,
    bytes_per_sec: Option<u64>,
    /// What checking the blobs readers reported corrupt found.
    suspects: Mutex<ScrubReport>,
}

impl Cluster {
    pub fn new(
        store: Arc<ReplicatedBlobStore>,
        jobs: Arc<dyn JobQueue>,
        shared: Option<Arc<PgMeta>>,
        settings: &ClusterSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            jobs,
            shared,
            repair: Job::new("repair", Some(REPAIR_INTERVAL)),
            scrub: Job::new("scrub", settings.scrub_interval),
            pace: Arc::new(Pace::new(settings.scrub_bytes_per_sec)),
            bytes_per_sec: settings.scrub_bytes_per_sec,
            suspects: Mutex::default(),
        })
    }

    /// Queues a whole repair pass, for every gateway to work, and wakes this one.
    pub async fn request_repair(&self) -> coffre_core::Result<()> {
        self.repair.request(self.jobs.as_ref()).await
    }

    pub async fn request_scrub(&self) -> coffre_core::Result<()> {
        self.scrub.request(self.jobs.as_ref()).await
    }

    pub async fn repair_status(&self) -> coffre_core::Result<RepairStatus> {
        let queued = self.jobs.queued(self.repair.kind).await?;
        let p = self.repair.progress().clone();
        Ok(RepairStatus {
            running: queued > 0,
            queued,
            shards: SHARDS,
            passes: p.passes,
            scanned: p.totals.scanned,
            repaired: p.totals.repaired,
            failed: p.totals.failed,
            last_error: p.last_error,
        })
    }

    pub async fn scrub_status(&self) -> coffre_core::Result<ScrubStatus> {
        let queued = self.jobs.queued(self.scrub.kind).await?;
        let p = self.scrub.progress().clone();
        let suspects = self.suspects.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let json = |r: &ScrubReport| serde_json::to_value(r).unwrap_or_default();
        Ok(ScrubStatus {
            running: queued > 0,
            queued,
            shards: SHARDS,
            passes: p.passes,
            interval_secs: self.scrub.interval.map(|d| d.as_secs()),
            bytes_per_sec: self.bytes_per_sec,
            pass: json(&p.totals),
            reported_by_readers: json(&suspects),
        })
    }

    /// Runs the three workers until `stop`: repair (a pass at start and
    /// every [`REPAIR_INTERVAL`]), scrub (every `scrub_interval_secs`), and
    /// the check of blobs readers found corrupt.
    pub async fn run(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // Give the first probes a moment, so a pass does not see every target down.
        self.store.probe_all().await;
        let suspects = {
            let me = self.clone();
            let stop = stopped(stop.clone());
            tokio::spawn(async move { me.store.check_suspects(&me.pace, stop, |one| me.count_suspect(one)).await })
        };
        let scrub = {
            let me = self.clone();
            let stop = stopped(stop.clone());
            tokio::spawn(async move {
                let store = me.store.clone();
                let pace = me.pace.clone();
                me.work(&me.scrub, stop, false, move |shard| {
                    let (store, pace) = (store.clone(), pace.clone());
                    async move { store.scrub_shard(shard, &pace).await }
                })
                .await;
            })
        };
        let store = self.store.clone();
        self.work(&self.repair, stopped(stop), true, move |shard| {
            let store = store.clone();
            async move { store.repair_shard(shard).await }
        })
        .await;
        let _ = scrub.await;
        let _ = suspects.await;
    }

    fn count_suspect(&self, one: &ScrubReport) {
        self.suspects.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(one);
    }

    /// Queues `job`'s passes when due and works its queue: when woken, and
    /// every [`POLL`]; `learn` also picks up the targets other gateways
    /// declared lost.
    async fn work<R, F, Fut>(&self, job: &Job<R>, stop: impl Future<Output = ()>, learn: bool, run: F)
    where
        R: Tally,
        F: Fn(Shard) -> Fut,
        Fut: Future<Output = coffre_core::Result<R>>,
    {
        let mut stop = std::pin::pin!(stop);
        // Repair passes from the start; a scrub pass, a read of everything,
        // only once its interval has gone by (a restart does not start one).
        let first = if learn { Duration::ZERO } else { job.interval.unwrap_or_default() };
        let mut next_pass = tokio::time::Instant::now() + first;
        loop {
            if let Some(interval) = job.interval
                && tokio::time::Instant::now() >= next_pass
            {
                self.queue_periodic_pass(job, interval).await;
                next_pass = tokio::time::Instant::now() + interval;
            }
            if learn {
                self.learn_lost().await;
            }
            if !self.work_queue(job, &mut stop, &run).await {
                return;
            }
            tokio::select! {
                () = &mut stop => return,
                () = job.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// With many gateways, only the holder of the job's lease queues it.
    async fn queue_periodic_pass<R: Tally>(&self, job: &Job<R>, interval: Duration) {
        if let Some(pg) = &self.shared {
            match pg.acquire_lease(job.kind, interval * 2 + Duration::from_secs(60)).await {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, job = job.kind, "could not take a job's lease; the next pass retries");
                    return;
                }
            }
        }
        if let Err(e) = self.jobs.enqueue(job.kind, &Shard::every_key()).await {
            tracing::warn!(error = %e, job = job.kind, "could not queue a pass; the next one retries");
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

    /// Claims and runs shards until none is due; false if stopped.
    async fn work_queue<R, F, Fut>(
        &self,
        job: &Job<R>,
        stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        run: &F,
    ) -> bool
    where
        R: Tally,
        F: Fn(Shard) -> Fut,
        Fut: Future<Output = coffre_core::Result<R>>,
    {
        let jobs = self.jobs.as_ref();
        loop {
            let claim = match jobs.claim(job.kind, SHARD_HOLD).await {
                Ok(Some(claim)) => claim,
                Ok(None) => {
                    job.observe_queue(jobs).await;
                    return true;
                }
                Err(e) => {
                    tracing::debug!(error = %e, job = job.kind, "could not claim a shard");
                    return true;
                }
            };
            let Some(shard) = Shard::from_key(&claim.key) else {
                tracing::warn!(key = ?claim.key, job = job.kind, "a job of no shard: dropped");
                let _ = jobs.finish(job.kind, &claim).await;
                continue;
            };
            job.begin_pass();
            let outcome = tokio::select! {
                () = stop.as_mut() => {
                    // Back to the queue at once, for another gateway or our restart.
                    let _ = jobs.retry(job.kind, &claim, Duration::ZERO, "the gateway stopped").await;
                    return false;
                }
                outcome = run(shard) => outcome,
            };
            let done = match job.record(outcome) {
                None => jobs.finish(job.kind, &claim).await,
                Some(why) => jobs.retry(job.kind, &claim, SHARD_RETRY, &why).await,
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, ?shard, job = job.kind, "could not end a shard's claim; it lapses");
            }
        }
    }
}

/// The admin API reads and steers the targets through the replicated store
/// and this gateway's repair and scrub.
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

    fn problem(&self, target: &coffre_topology::TargetId) -> Option<String> {
        self.store.health().problem(target)
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

    async fn request_scrub(&self) -> coffre_core::Result<()> {
        Cluster::request_scrub(self).await
    }

    async fn scrub_status(&self) -> coffre_core::Result<ScrubStatus> {
        Cluster::scrub_status(self).await
    }
}
