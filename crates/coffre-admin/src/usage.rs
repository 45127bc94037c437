//! What each tenant stores, for the operator: buckets, objects, bytes and
//! unfinished uploads per owner. Until tenants exist a key is its own tenant.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::AdminState;
use crate::error::{ApiError, internal};

/// One tenant's usage: the sum over the buckets its key owns.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TenantUsage {
    pub owner: String,
    pub buckets: u64,
    pub objects: u64,
    pub bytes: u64,
    pub multipart_uploads: u64,
}

/// Every key (root included) with what its buckets hold; a key without
/// buckets is listed with zeros, so an operator sees every tenant. It reads
/// every bucket's usage, as `GET /admin/v1/buckets` does.
pub(crate) async fn usage(State(state): State<AdminState>) -> Result<Json<Vec<TenantUsage>>, ApiError> {
    let mut by_owner: BTreeMap<String, TenantUsage> = BTreeMap::new();
    let keys = state.access_keys.list().await.map_err(internal)?;
    for owner in keys.iter().map(|k| &k.id).chain([&state.root.access_key]) {
        by_owner.insert(owner.to_string(), TenantUsage { owner: owner.to_string(), ..TenantUsage::default() });
    }
    for bucket in state.service.list_buckets(&state.root).await.map_err(internal)? {
        let used = state.service.bucket_usage(&state.root, &bucket.name).await.map_err(internal)?;
        let owner = bucket.owner.to_string();
        let tenant = by_owner.entry(owner.clone()).or_insert_with(|| TenantUsage { owner, ..TenantUsage::default() });
        tenant.buckets += 1;
        tenant.objects += used.objects;
        tenant.bytes += used.bytes;
        tenant.multipart_uploads += used.uploads;
    }
    Ok(Json(by_owner.into_values().collect()))
}
