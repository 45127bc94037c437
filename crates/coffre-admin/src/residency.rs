//! Where data lives, through the admin API: bucket residency policies, where
//! an object's replicas are, the storage targets' health, and repair.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use coffre_core::meta::BucketChange;
use coffre_core::types::{BlobId, ObjectKey, VersionId};
use coffre_topology::{PolicyError, ResidencyPolicy, TargetId, Topology};
use serde::{Deserialize, Serialize};

use crate::AdminState;
use crate::error::{ApiError, bucket_name, service_error};

/// Offending objects named in a refusal's message; the count says the rest.
const OFFENDERS_SHOWN: usize = 50;

/// The storage targets as the admin API reads and steers them: implemented
/// by the binary over its replicated store and repair queue.
#[async_trait]
pub trait Placement: Send + Sync {
    fn topology(&self) -> &Topology;
    /// The policy of buckets that declare none.
    fn default_policy(&self) -> &ResidencyPolicy;
    fn is_up(&self, target: &TargetId) -> bool;
    fn is_lost(&self, target: &TargetId) -> bool;
    /// Why a target is down, as its last probe said (an identity refused,
    /// no answer, ...).
    fn problem(&self, _target: &TargetId) -> Option<String> {
        None
    }
    /// The objects of `bucket` with a replica `policy` would not allow.
    async fn offenders(&self, bucket: &str, policy: &ResidencyPolicy) -> coffre_core::Result<Vec<Offender>>;
    /// Records `policy` on every replica of `bucket`, for repair to follow.
    async fn retag(&self, bucket: &str, policy: &ResidencyPolicy) -> coffre_core::Result<()>;
    /// The targets holding a blob, `None` for a blob the index does not know.
    async fn replicas(&self, blob: BlobId) -> coffre_core::Result<Option<Vec<String>>>;
    /// Declares a target gone for good.
    async fn declare_lost(&self, target: &TargetId) -> coffre_core::Result<()>;
    /// Queues a whole repair pass.
    async fn request_repair(&self) -> coffre_core::Result<()>;
    async fn repair_status(&self) -> coffre_core::Result<RepairStatus>;
    /// Queues a whole scrub pass.
    async fn request_scrub(&self) -> coffre_core::Result<()>;
    async fn scrub_status(&self) -> coffre_core::Result<ScrubStatus>;
}

/// What the admin API shows of scrub: replicas read back and checked
/// against the checksum recorded when their blob was written.
#[derive(Debug, Clone, Serialize)]
pub struct ScrubStatus {
    /// Shards are queued: a pass is under way on some gateway.
    pub running: bool,
    pub queued: u64,
    pub shards: u16,
    /// Passes this gateway saw end.
    pub passes: u64,
    /// Seconds between passes (`None`: only on request).
    pub interval_secs: Option<u64>,
    /// The read pace of this gateway's scrub (`None`: unbounded).
    pub bytes_per_sec: Option<u64>,
    /// This gateway's share of the current (or last) pass, then of the
    /// blobs readers reported corrupt since it started.
    pub pass: serde_json::Value,
    pub reported_by_readers: serde_json::Value,
}

/// An object a policy would strand, and why.
#[derive(Debug, Clone)]
pub struct Offender {
    pub key: String,
    pub reasons: Vec<String>,
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

fn placement(state: &AdminState) -> Result<&Arc<dyn Placement>, ApiError> {
    state.placement.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "NoTopology",
            "this server declares no storage targets: its data stays on its own disk".into(),
        )
    })
}

#[derive(Serialize)]
pub(crate) struct ResidencyView {
    bucket: String,
    /// `None`: the deployment's default, shown in `effective`.
    policy: Option<ResidencyPolicy>,
    effective: ResidencyPolicy,
}

pub(crate) async fn get_residency(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<ResidencyView>, ApiError> {
    let placement = placement(&state)?;
    let record = state.service.bucket(&state.root, &bucket_name(&name)?).await.map_err(service_error)?;
    let effective = record.residency.clone().unwrap_or_else(|| placement.default_policy().clone());
    Ok(Json(ResidencyView { bucket: name, policy: record.residency, effective }))
}

/// Sets a bucket's policy. Refused if it is wider than the operator's
/// `[residency]` (403, every way named), and, naming the objects, if any
/// replica stored so far would break it: tightening never strands data.
pub(crate) async fn put_residency(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Json(policy): Json<ResidencyPolicy>,
) -> Result<Json<ResidencyView>, ApiError> {
    let placement = placement(&state)?;
    let bucket = bucket_name(&name)?;
    state.service.bucket(&state.root, &bucket).await.map_err(service_error)?;
    placement.topology().check_bounded(&policy, placement.default_policy()).map_err(|e| match e {
        PolicyError::Wider(_) => ApiError(StatusCode::FORBIDDEN, "ResidencyPolicyNotAllowed", e.to_string()),
        other => ApiError(StatusCode::BAD_REQUEST, "InvalidPolicy", other.to_string()),
    })?;
    let offenders = placement.offenders(&name, &policy).await.map_err(service_error)?;
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
    placement.retag(&name, &policy).await.map_err(service_error)?;
    placement.request_repair().await.map_err(service_error)?;
    state.labels.wake();
    Ok(Json(ResidencyView { bucket: name, policy: Some(policy.clone()), effective: policy }))
}

#[derive(Deserialize)]
pub(crate) struct WhereQuery {
    key: String,
    version_id: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct ReplicaView {
    target: String,
    location: String,
    country: String,
    region: String,
    site: String,
    operator: String,
    operator_name: String,
    up: bool,
    lost: bool,
    /// Blobs of the version on this target (one, or one per multipart part).
    blob_ids: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct WhereView {
    bucket: String,
    key: String,
    version_id: String,
    size: u64,
    replicas: Vec<ReplicaView>,
}

/// Where each replica of an object version is, with its operator.
pub(crate) async fn object_where(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(query): Query<WhereQuery>,
) -> Result<Json<WhereView>, ApiError> {
    let placement = placement(&state)?;
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
        let Some(targets) = placement.replicas(blob).await.map_err(service_error)? else { continue };
        for target in targets {
            match replicas.iter_mut().find(|r| r.target == target) {
                Some(seen) => seen.blob_ids.push(blob.to_string()),
                None => replicas.push(replica_view(placement.as_ref(), &target, blob.to_string())),
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

fn replica_view(placement: &dyn Placement, target: &str, blob: String) -> ReplicaView {
    let id = TargetId(target.to_owned());
    let topology = placement.topology();
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
        up: placement.is_up(&id),
        lost: placement.is_lost(&id),
        blob_ids: vec![blob],
    }
}

#[derive(Serialize)]
pub(crate) struct TargetView {
    id: String,
    kind: String,
    endpoint: String,
    location: String,
    operator: String,
    capacity: u64,
    up: bool,
    lost: bool,
    /// Why it is down, if it is.
    problem: Option<String>,
}

pub(crate) async fn list_targets(State(state): State<AdminState>) -> Result<Json<Vec<TargetView>>, ApiError> {
    let placement = placement(&state)?;
    let views = placement
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
            up: placement.is_up(&t.id),
            lost: placement.is_lost(&t.id),
            problem: placement.problem(&t.id),
        })
        .collect();
    Ok(Json(views))
}

/// Declares a target gone for good; a repair pass is queued at once.
pub(crate) async fn declare_lost(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<RepairStatus>, ApiError> {
    let placement = placement(&state)?;
    placement
        .declare_lost(&TargetId(id))
        .await
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, "NoSuchTarget", e.to_string()))?;
    placement.request_repair().await.map_err(service_error)?;
    state.labels.wake();
    Ok(Json(placement.repair_status().await.map_err(service_error)?))
}

pub(crate) async fn repair_status(State(state): State<AdminState>) -> Result<Json<RepairStatus>, ApiError> {
    Ok(Json(placement(&state)?.repair_status().await.map_err(service_error)?))
}

pub(crate) async fn scrub_status(State(state): State<AdminState>) -> Result<Json<ScrubStatus>, ApiError> {
    Ok(Json(placement(&state)?.scrub_status().await.map_err(service_error)?))
}

/// Queues a scrub pass now.
pub(crate) async fn start_scrub(State(state): State<AdminState>) -> Result<Json<ScrubStatus>, ApiError> {
    let placement = placement(&state)?;
    placement.request_scrub().await.map_err(service_error)?;
    Ok(Json(placement.scrub_status().await.map_err(service_error)?))
}

/// Queues a repair pass now.
pub(crate) async fn start_repair(State(state): State<AdminState>) -> Result<Json<RepairStatus>, ApiError> {
    let placement = placement(&state)?;
    placement.request_repair().await.map_err(service_error)?;
    Ok(Json(placement.repair_status().await.map_err(service_error)?))
}
