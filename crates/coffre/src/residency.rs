//! Where data lives, through the admin API: bucket residency policies, where
//! an object's replicas are, the storage targets' health, and repair.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use coffre_core::meta::BucketChange;
use coffre_core::types::{BucketName, ObjectKey, VersionId};
use coffre_node::ReplicatedBlobStore;
use coffre_topology::{ResidencyPolicy, TargetId};
use serde::{Deserialize, Serialize};

use crate::admin::{AdminState, ApiError, service_error};
use crate::cluster::{Cluster, RepairStatus};

/// Offending objects named in a refusal's message; the count says the rest.
const OFFENDERS_SHOWN: usize = 50;

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
