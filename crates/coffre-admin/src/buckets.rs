//! Buckets through the admin API: their usage and keys, the custodian's
//! state, key rotation and crypto-erasure.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use coffre_core::meta::BucketRecord;
use coffre_core::types::BucketName;
use serde::{Deserialize, Serialize};

use crate::audit::{audit_erasure, audit_keys};
use crate::error::{ApiError, bucket_name, internal, service_error};
use crate::{AdminState, rfc3339};

#[derive(Serialize, Deserialize)]
pub struct KmsView {
    pub custody: String,
    pub location: String,
    pub detail: String,
    /// Key destructions owed and not done yet, oldest first.
    #[serde(default)]
    pub pending_destroys: Vec<PendingDestroyView>,
}

/// A KEK the custodian has not destroyed yet, retried in the background.
#[derive(Serialize, Deserialize)]
pub struct PendingDestroyView {
    pub kek: String,
    pub bucket: String,
    pub since: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub last_attempt: Option<String>,
}

/// Which custodian holds the keys, after checking it works end to end, and
/// the key destructions still owed (named in the error too when it fails).
pub(crate) async fn kms_status(State(state): State<AdminState>) -> Result<Json<KmsView>, ApiError> {
    let kms = state.service.kms();
    let pending: Vec<PendingDestroyView> = state
        .service
        .kek_destroys()
        .await
        .map_err(internal)?
        .into_iter()
        .map(|d| PendingDestroyView {
            kek: d.kek,
            bucket: d.bucket,
            since: rfc3339(d.since),
            attempts: d.attempts,
            last_error: d.last_error,
            last_attempt: d.last_attempt.map(rfc3339),
        })
        .collect();
    match kms.status().await {
        Ok(s) => Ok(Json(KmsView {
            custody: s.custody.to_string(),
            location: s.location,
            detail: s.detail,
            pending_destroys: pending,
        })),
        Err(e) => {
            let owed = match pending.last() {
                None => String::new(),
                Some(last) => format!(
                    "; {} key destruction(s) pending, the latest failed with: {}",
                    pending.len(),
                    last.last_error.as_deref().unwrap_or("not tried yet")
                ),
            };
            Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "KmsUnavailable",
                format!("{} custodian does not work: {e}{owed}", kms.custody()),
            ))
        }
    }
}

pub(crate) async fn rotate_key(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<coffre_core::service::RotateOutcome>, ApiError> {
    let bucket = bucket_name(&name)?;
    let outcome = state.service.rotate_bucket_key(&state.root, &bucket).await.map_err(service_error)?;
    tracing::info!(bucket = %name, generation = outcome.new_generation, rewrapped = outcome.rewrapped, "bucket key rotated");
    let detail = format!(
        "new_kek={} generation={} rewrapped={} destroyed={} pending={}",
        outcome.new_kek,
        outcome.new_generation,
        outcome.rewrapped,
        outcome.keks_destroyed.join(","),
        outcome.keks_pending.join(",")
    );
    audit_keys(&state, "kms:RotateKey", &outcome.bucket, detail).await?;
    Ok(Json(outcome))
}

#[derive(Deserialize)]
pub(crate) struct EraseRequest {
    #[serde(default)]
    confirm: bool,
}

pub(crate) async fn erase_bucket(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Json(body): Json<EraseRequest>,
) -> Result<Json<coffre_core::service::EraseOutcome>, ApiError> {
    if !body.confirm {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "ConfirmationRequired",
            "erasing a bucket destroys its keys and all its data for good: send {\"confirm\": true}".into(),
        ));
    }
    let bucket = bucket_name(&name)?;
    let outcome = state.service.erase_bucket(&state.root, &bucket).await.map_err(service_error)?;
    audit_erasure(&state, &outcome).await?;
    Ok(Json(outcome))
}

#[derive(Serialize, Deserialize)]
pub struct BucketView {
    pub name: String,
    pub owner: String,
    pub created: String,
    pub objects: u64,
    pub bytes: u64,
    pub multipart_uploads: u64,
    /// The bucket's key-encryption keys in the custodian, oldest first.
    pub keks: Vec<KekView>,
    /// The default encryption reported to S3 clients (`AES256` or `aws:kms`).
    pub default_encryption: String,
}

#[derive(Serialize, Deserialize)]
pub struct KekView {
    pub generation: u32,
    pub id: String,
    pub created: String,
}

async fn bucket_view(state: &AdminState, b: &BucketRecord) -> Result<BucketView, ApiError> {
    let usage = state.service.bucket_usage(&state.root, &b.name).await.map_err(internal)?;
    Ok(BucketView {
        name: b.name.to_string(),
        owner: b.owner.to_string(),
        created: rfc3339(b.created),
        objects: usage.objects,
        bytes: usage.bytes,
        multipart_uploads: usage.uploads,
        keks: b
            .keks
            .iter()
            .map(|k| KekView { generation: k.generation, id: k.id.clone(), created: rfc3339(k.created) })
            .collect(),
        default_encryption: match b.encryption.as_ref().map(|e| &e.sse) {
            Some(coffre_core::meta::Sse::Kms { .. }) => "aws:kms".into(),
            _ => "AES256".into(),
        },
    })
}

pub(crate) async fn list_buckets(State(state): State<AdminState>) -> Result<Json<Vec<BucketView>>, ApiError> {
    let buckets = state.service.list_buckets(&state.root).await.map_err(internal)?;
    let mut out = Vec::with_capacity(buckets.len());
    for b in &buckets {
        out.push(bucket_view(&state, b).await?);
    }
    Ok(Json(out))
}

pub(crate) async fn bucket_info(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<BucketView>, ApiError> {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {name:?}"));
    let parsed = BucketName::parse(&name).map_err(|_| not_found())?;
    let bucket = match state.service.bucket(&state.root, &parsed).await {
        Ok(b) => b,
        Err(coffre_core::Error::NoSuchBucket) => return Err(not_found()),
        Err(e) => return Err(internal(e)),
    };
    Ok(Json(bucket_view(&state, &bucket).await?))
}
