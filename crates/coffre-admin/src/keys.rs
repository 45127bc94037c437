//! Access keys through the admin API: list, create (the secret shown once,
//! an expiry optional), enable, disable or re-date, delete (crypto-erasing the
//! buckets the key owns, when asked).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use coffre_core::meta::{AccessKeyRecord, BucketRecord, KeyStatus};
use coffre_core::types::{AccessKeyId, UnixNanos};
use serde::{Deserialize, Serialize};

use crate::audit::{ActDetail, audit_erasure};
use crate::error::{ApiError, internal, service_error};
use crate::{AdminState, rfc3339};

#[derive(Serialize, Deserialize)]
pub struct KeyView {
    pub access_key_id: String,
    pub name: String,
    pub created: String,
    /// `active` or `inactive`.
    pub status: String,
    /// RFC 3339; absent: the key does not expire.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_access_key: Option<String>,
}

fn key_view(k: &AccessKeyRecord) -> KeyView {
    KeyView {
        access_key_id: k.id.to_string(),
        name: k.name.clone(),
        created: rfc3339(k.created),
        status: status_name(k.status).to_owned(),
        expires: k.expires.map(rfc3339),
        secret_access_key: None,
    }
}

fn status_name(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "active",
        KeyStatus::Inactive => "inactive",
    }
}

fn bad_request(code: &'static str, message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, code, message)
}

/// An expiry from the API: RFC 3339, and in the future (a key born expired
/// is a mistake, not a request).
fn parse_expiry(text: &str) -> Result<UnixNanos, ApiError> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| bad_request("InvalidExpiry", format!("expires {text:?} is not an RFC 3339 time: {e}")))?;
    let nanos = i64::try_from(at.unix_timestamp_nanos())
        .map_err(|_| bad_request("InvalidExpiry", format!("expires {text:?} is out of range")))?;
    if nanos <= UnixNanos::now().0 {
        return Err(bad_request("InvalidExpiry", format!("expires {text:?} is not in the future")));
    }
    Ok(UnixNanos(nanos))
}

/// Random characters from the OS RNG (through UUID v4's generator).
fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().into_bytes() {
            // Rejection sampling keeps every character equally likely.
            let limit = 256 - (256 % alphabet.len());
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A fresh admin bearer token: 43 letters and digits, about 256 bits.
pub fn generate_admin_token() -> String {
    random_string(43, &SECRET_ALPHABET[..62])
}

/// A fresh access key pair, in the shape AWS uses (20-char id, 40-char secret).
pub fn generate_key_pair() -> (String, String) {
    (format!("CF{}", random_string(18, KEY_ALPHABET)), random_string(40, SECRET_ALPHABET))
}

pub(crate) async fn list_keys(State(state): State<AdminState>) -> Result<Json<Vec<KeyView>>, ApiError> {
    let keys = state.access_keys.list().await.map_err(internal)?;
    Ok(Json(keys.iter().map(key_view).collect()))
}

#[derive(Deserialize)]
pub(crate) struct CreateKey {
    name: String,
    /// RFC 3339; absent: the key does not expire.
    #[serde(default)]
    expires: Option<String>,
}

pub(crate) async fn create_key(
    State(state): State<AdminState>,
    Json(body): Json<CreateKey>,
) -> Result<(StatusCode, Extension<ActDetail>, Json<KeyView>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(bad_request("InvalidName", "name must be 1 to 128 printable characters".into()));
    }
    let expires = body.expires.as_deref().map(parse_expiry).transpose()?;
    let (access, secret) = generate_key_pair();
    let id = AccessKeyId::parse(&access).map_err(internal)?;
    let record = state.access_keys.create(id, &secret, name, expires).await.map_err(service_error)?;
    tracing::info!(access_key = %record.id, name = %record.name, expires = ?record.expires, "access key created");
    // The only time the secret leaves the server.
    let view = KeyView { secret_access_key: Some(secret), ..key_view(&record) };
    // Its intent was recorded before (by the audit layer); its id comes with the outcome.
    Ok((StatusCode::CREATED, Extension(ActDetail(format!("access_key={}", record.id))), Json(view)))
}

#[derive(Deserialize)]
pub(crate) struct UpdateKey {
    /// `active` or `inactive`; absent: unchanged.
    #[serde(default)]
    status: Option<String>,
    /// RFC 3339, or `never`; absent: unchanged.
    #[serde(default)]
    expires: Option<String>,
}

/// Enables, disables or re-dates a key. Every gateway refuses a disabled or
/// expired key within `access_key_cache_secs` (this one at once).
pub(crate) async fn update_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Json(body): Json<UpdateKey>,
) -> Result<(Extension<ActDetail>, Json<KeyView>), ApiError> {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "NoSuchKey", format!("no access key {id:?}"));
    let parsed = AccessKeyId::parse(&id).map_err(|_| not_found())?;
    let status = match body.status.as_deref() {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("active") => Some(KeyStatus::Active),
        Some(s) if s.eq_ignore_ascii_case("inactive") => Some(KeyStatus::Inactive),
        Some(s) => return Err(bad_request("InvalidStatus", format!("status {s:?} is neither active nor inactive"))),
    };
    let expires = match body.expires.as_deref() {
        None => None,
        Some("never") => Some(None),
        Some(text) => Some(Some(parse_expiry(text)?)),
    };
    let record =
        state.access_keys.update(&parsed, status, expires).await.map_err(service_error)?.ok_or_else(not_found)?;
    tracing::info!(access_key = %record.id, status = ?record.status, expires = ?record.expires, "access key updated");
    let detail = format!("access_key={} status={}", record.id, status_name(record.status));
    Ok((Extension(ActDetail(detail)), Json(key_view(&record))))
}

#[derive(Deserialize, Default)]
pub(crate) struct DeleteKeyQuery {
    /// Crypto-erase the buckets the key owns (its tenant's data) with it.
    #[serde(default)]
    erase_buckets: bool,
}

/// What deleting an access key did.
#[derive(Serialize, Deserialize)]
pub struct KeyDeletion {
    pub access_key_id: String,
    pub erased: Vec<coffre_core::service::EraseOutcome>,
}

/// Deletes an access key. A key that owns buckets is refused unless asked to
/// erase them: the tenant's last key takes its data with it, by crypto-erasure.
pub(crate) async fn delete_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(query): Query<DeleteKeyQuery>,
) -> Result<Json<KeyDeletion>, ApiError> {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "NoSuchKey", format!("no access key {id:?}"));
    let parsed = AccessKeyId::parse(&id).map_err(|_| not_found())?;
    state.access_keys.get(&parsed).await.map_err(internal)?.ok_or_else(not_found)?;
    let owned: Vec<BucketRecord> = state
        .service
        .list_buckets(&state.root)
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|b| b.owner == parsed)
        .collect();
    if !owned.is_empty() && !query.erase_buckets {
        let names: Vec<String> = owned.iter().map(|b| b.name.to_string()).collect();
        return Err(ApiError(
            StatusCode::CONFLICT,
            "KeyOwnsBuckets",
            format!("access key {id} owns buckets {names:?}: delete them first, or erase them with the key"),
        ));
    }
    for bucket in &owned {
        state.service.check_erasable(&state.root, &bucket.name).await.map_err(service_error)?;
    }
    let mut erased = Vec::new();
    for bucket in &owned {
        let outcome = state.service.erase_bucket(&state.root, &bucket.name).await.map_err(service_error)?;
        audit_erasure(&state, &outcome).await?;
        erased.push(outcome);
    }
    if !state.access_keys.delete(&parsed).await.map_err(internal)? {
        return Err(not_found());
    }
    tracing::info!(access_key = %parsed, buckets_erased = erased.len(), "access key deleted");
    Ok(Json(KeyDeletion { access_key_id: id, erased }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pairs_have_the_aws_shape() {
        let (access, secret) = generate_key_pair();
        assert_eq!(access.len(), 20);
        assert!(access.starts_with("CF"));
        assert!(AccessKeyId::parse(&access).is_ok());
        assert_eq!(secret.len(), 40);
        assert!(secret.bytes().all(|b| SECRET_ALPHABET.contains(&b)));
    }
}
