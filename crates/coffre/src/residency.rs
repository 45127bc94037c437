//! Where data lives, through the admin API: bucket residency policies, where
//! an object's replicas are, the storage targets' health, and repair.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use coffre_core::jobs::JobQueue;
use coffre_core::meta::BucketChange;
use coffre_core::types::{BucketName, ObjectKey, VersionId};
use coffre_meta::PgMeta;
use coffre_node::{ReplicatedBlobStore, SHARDS, Shard, ShardReport};
use coffre_topology::{ResidencyPolicy, TargetId};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::admin::{AdminState, ApiError, service_error};

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
/// Offending objects named in a refusal's message; the count says the rest.
const OFFENDERS_SHOWN: usize = 50;

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

/// What the admin API shows of repair.
#[derive(Debug, Clone, Serialize)]
pub struct RepairStatus {
    /// Shards are queued: a pass is under way on some gateway.
    pub running: bool,
    /// Shards queued, waiting or claimed, by every gateway.
    pub queued: u64,
    /// Shards in a whole pass.
    pub shards: u16,
    /// Passes this gateway saw end.
    pub passes: u64,
    /// This gateway's share of the current (or last) pass: blobs looked at,
    /// given new replicas, and not repairable yet (their shard runs again).
    pub scanned: u64,
    pub repaired: u64,
    pub failed: u64,
    pub last_error: Option<String>,
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

    /// Targets another gateway declared lost stop counting here too.
    async fn learn_lost(&self) {
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
                if report.last_error.is_some() {
                    p.last_error.clone_from(&report.last_error);
                }
                report.last_error.filter(|_| report.failed > 0)
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

fn cluster(state: &AdminState) -> Result<&Arc<Cluster>, ApiError> {
    state.cluster.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "NoTopology",
            "this server declares no storage targets: its data stays on its own disk".into(),
        )
    })
}

fn bucket_name(name: &str) -> Result<BucketName, ApiError> {
    BucketName::parse(name).map_err(|_| ApiError(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {name:?}")))
}

#[derive(Serialize)]
pub struct ResidencyView {
    pub bucket: String,
    /// `None`: the deployment's default, shown in `effective`.
    pub policy: Option<ResidencyPolicy>,
    pub effective: ResidencyPolicy,
}

pub async fn get_residency(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<ResidencyView>, ApiError> {
    let cluster = cluster(&state)?;
    let record = state.service.bucket(&state.root, &bucket_name(&name)?).await.map_err(service_error)?;
    let effective = record.residency.clone().unwrap_or_else(|| cluster.store.default_policy().clone());
    Ok(Json(ResidencyView { bucket: name, policy: record.residency, effective }))
}

/// Sets a bucket's policy. Refused, naming the objects, if any replica
/// stored so far would break it: tightening never strands data.
pub async fn put_residency(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Json(policy): Json<ResidencyPolicy>,
) -> Result<Json<ResidencyView>, ApiError> {
    let cluster = cluster(&state)?;
    let bucket = bucket_name(&name)?;
    state.service.bucket(&state.root, &bucket).await.map_err(service_error)?;
    let topology = cluster.store.topology();
    topology.check_policy(&policy).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "InvalidPolicy", e.to_string()))?;
    let offenders = cluster.store.offenders(&name, &policy).await.map_err(service_error)?;
    if !offenders.is_empty() {
        let shown: Vec<String> =
            offenders.iter().take(OFFENDERS_SHOWN).map(|o| format!("{} ({})", o.key, o.reasons.join("; "))).collect();
        let more = offenders.len().saturating_sub(OFFENDERS_SHOWN);
        let tail = if more > 0 { format!(", and {more} more") } else { String::new() };
        return Err(ApiError(
            StatusCode::CONFLICT,
            "PolicyWouldStrandData",
            format!(
                "{} stored object(s) would break this policy; move or delete them first: {}{tail}",
                offenders.len(),
                shown.join(", ")
            ),
        ));
    }
    let change = BucketChange::Residency(Some(policy.clone()));
    state.service.change_bucket(&state.root, &bucket, change).await.map_err(service_error)?;
    cluster.store.retag(&name, &policy).await.map_err(service_error)?;
    cluster.request_repair().await.map_err(service_error)?;
    state.labels.wake.notify_one();
    Ok(Json(ResidencyView { bucket: name, policy: Some(policy.clone()), effective: policy }))
}

#[derive(Deserialize)]
pub struct WhereQuery {
    key: String,
    version_id: Option<String>,
}

#[derive(Serialize)]
pub struct ReplicaView {
    pub target: String,
    pub location: String,
    pub country: String,
    pub region: String,
    pub site: String,
    pub operator: String,
    pub operator_name: String,
    pub up: bool,
    pub lost: bool,
    /// Blobs of the version on this target (one, or one per multipart part).
    pub blob_ids: Vec<String>,
}

#[derive(Serialize)]
pub struct WhereView {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub size: u64,
    pub replicas: Vec<ReplicaView>,
}

/// Where each replica of an object version is, with its operator.
pub async fn object_where(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(query): Query<WhereQuery>,
) -> Result<Json<WhereView>, ApiError> {
    let cluster = cluster(&state)?;
    let bucket = bucket_name(&name)?;
    let key =
        ObjectKey::parse(&query.key).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "InvalidKey", e.to_string()))?;
    let version = match &query.version_id {
        Some(v) => {
            Some(VersionId::parse(v).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "InvalidVersion", e.to_string()))?)
        }
        None => None,
    };
    let object = match state.service.object_version(&state.root, &bucket, &key, version.as_ref()).await {
        Ok(o) => o,
        Err(
            e @ (coffre_core::Error::NoSuchKey
            | coffre_core::Error::NoSuchVersion
            | coffre_core::Error::DeleteMarker { .. }),
        ) => {
            return Err(ApiError(StatusCode::NOT_FOUND, "NoSuchKey", e.to_string()));
        }
        Err(e) => return Err(service_error(e)),
    };
    let mut replicas: Vec<ReplicaView> = Vec::new();
    for blob in object.data.blobs() {
        let Some(placed) = cluster.store.replicas(blob).await.map_err(service_error)? else { continue };
        for target in placed.targets {
            match replicas.iter_mut().find(|r| r.target == target) {
                Some(seen) => seen.blob_ids.push(blob.to_string()),
                None => replicas.push(replica_view(&cluster.store, &target, blob.to_string())),
            }
        }
    }
    Ok(Json(WhereView {
        bucket: name,
        key: query.key,
        version_id: object.meta.version_id.as_str().to_owned(),
        size: object.meta.size,
        replicas,
    }))
}

fn replica_view(store: &ReplicatedBlobStore, target: &str, blob: String) -> ReplicaView {
    let id = TargetId(target.to_owned());
    let topology = store.topology();
    let declared = topology.target(&id);
    let operator = declared.and_then(|t| topology.operator(&t.operator));
    ReplicaView {
        target: target.to_owned(),
        location: declared.map(coffre_topology::Target::location).unwrap_or_default(),
        country: declared.map(|t| t.country.to_string()).unwrap_or_default(),
        region: declared.map(|t| t.region.clone()).unwrap_or_default(),
        site: declared.map(|t| t.site.clone()).unwrap_or_default(),
        operator: declared.map(|t| t.operator.to_string()).unwrap_or_default(),
        operator_name: operator.map(|o| o.name.clone()).unwrap_or_default(),
        up: store.health().is_up(&id),
        lost: store.health().is_lost(&id),
        blob_ids: vec![blob],
    }
}

#[derive(Serialize)]
pub struct TargetView {
    pub id: String,
    pub kind: String,
    pub endpoint: String,
    pub location: String,
    pub operator: String,
    pub capacity: u64,
    pub up: bool,
    pub lost: bool,
}

pub async fn list_targets(State(state): State<AdminState>) -> Result<Json<Vec<TargetView>>, ApiError> {
    let cluster = cluster(&state)?;
    let store = &cluster.store;
    let views = store
        .topology()
        .targets()
        .iter()
        .map(|t| TargetView {
            id: t.id.to_string(),
            kind: match t.kind {
                coffre_topology::TargetKind::Node => "node".into(),
                coffre_topology::TargetKind::S3 { .. } => "s3".into(),
            },
            endpoint: t.endpoint.clone(),
            location: t.location(),
            operator: t.operator.to_string(),
            capacity: t.capacity,
            up: store.health().is_up(&t.id),
            lost: store.health().is_lost(&t.id),
        })
        .collect();
    Ok(Json(views))
}

/// Declares a target gone for good; a repair pass is queued at once.
pub async fn declare_lost(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<RepairStatus>, ApiError> {
    let cluster = cluster(&state)?;
    cluster
        .store
        .declare_lost(&TargetId(id))
        .await
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, "NoSuchTarget", e.to_string()))?;
    cluster.request_repair().await.map_err(service_error)?;
    state.labels.wake.notify_one();
    Ok(Json(cluster.repair_status().await.map_err(service_error)?))
}

pub async fn repair_status(State(state): State<AdminState>) -> Result<Json<RepairStatus>, ApiError> {
    Ok(Json(cluster(&state)?.repair_status().await.map_err(service_error)?))
}

/// Queues a repair pass now.
pub async fn start_repair(State(state): State<AdminState>) -> Result<Json<RepairStatus>, ApiError> {
    let cluster = cluster(&state)?;
    cluster.request_repair().await.map_err(service_error)?;
    Ok(Json(cluster.repair_status().await.map_err(service_error)?))
}
