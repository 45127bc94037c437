//! The admin API on its own port: health, Prometheus metrics, and JSON
//! endpoints for access keys and buckets that the `coffre` CLI drives.
//!
//! Everything under `/admin/` needs `Authorization: Bearer TOKEN`, where TOKEN
//! is `COFFRE_ADMIN_TOKEN` (when set) or the root `ACCESS_KEY:SECRET`. With
//! TLS on, the admin port speaks TLS too (same certificate and policy).
//!
//! Every request under `/admin/`, refused ones included, is an audit event
//! recorded durably before it is answered; acts on keys add their own
//! `kms:` events naming the keys created or destroyed.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coffre_core::meta::{AccessKeyRecord, BucketRecord};
use coffre_core::service::ObjectService;
use coffre_core::types::{AccessKeyId, BucketName, Principal, UnixNanos};
use coffre_s3::KeyStore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::metrics::Metrics;
use crate::residency;
use crate::trail::Trail;

#[derive(Clone)]
pub struct AdminState {
    pub service: Arc<ObjectService>,
    pub keys: KeyStore,
    pub root: Principal,
    pub admin_token: Option<String>,
    pub metrics: Arc<Metrics>,
    pub lifecycle: Arc<std::sync::Mutex<crate::lifecycle::Status>>,
    pub tls: Arc<crate::tls::Tls>,
    pub trail: Option<Arc<Trail>>,
    /// Present when the data lives on storage targets.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub labels: Arc<crate::label::Labels>,
    /// The audit log the gateways of a PostgreSQL deployment share.
    pub shared_audit: Option<Arc<dyn coffre_audit::LogStore>>,
    /// The database the gateways of a PostgreSQL deployment share.
    pub shared: Option<Arc<coffre_meta::PgMeta>>,
}

/// The client address of an admin connection.
#[derive(Clone, Copy)]
struct Peer(std::net::SocketAddr);

/// The error code of a refused admin request, for its audit event.
#[derive(Clone, Copy)]
struct ErrorCode(&'static str);

pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/admin/v1/keys", get(list_keys).post(create_key))
        .route("/admin/v1/keys/{id}", axum::routing::delete(delete_key))
        .route("/admin/v1/buckets", get(list_buckets))
        .route("/admin/v1/buckets/{name}", get(bucket_info))
        .route("/admin/v1/buckets/{name}/rotate-key", axum::routing::post(rotate_key))
        .route("/admin/v1/buckets/{name}/erase", axum::routing::post(erase_bucket))
        .route("/admin/v1/kms", get(kms_status))
        .route("/admin/v1/lifecycle", get(lifecycle_status))
        .route("/admin/v1/gateways", get(gateways))
        .route("/admin/v1/tls", get(tls_status))
        .route("/admin/v1/audit/events", get(audit_events))
        .route("/admin/v1/audit/head", get(audit_head))
        .route("/admin/v1/buckets/{name}/residency", get(residency::get_residency).put(residency::put_residency))
        .route("/admin/v1/buckets/{name}/where", get(residency::object_where))
        .route("/admin/v1/targets", get(residency::list_targets))
        .route("/admin/v1/targets/{id}/lost", axum::routing::post(residency::declare_lost))
        .route("/admin/v1/repair", get(residency::repair_status).post(residency::start_repair))
        .route("/admin/v1/label", get(crate::label::evaluate))
        .route("/admin/v1/label/latest", get(crate::label::latest))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route_layer(middleware::from_fn_with_state(state.clone(), audit_request));
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(admin)
        .with_state(state)
}

/// Serves an axum router (the admin API, a storage node's API) on `listener`
/// through the same connection loop as S3 (same TLS handshake, head guards,
/// TCP_NODELAY and drain) until `shutdown`.
pub async fn serve(
    name: &'static str,
    listener: tokio::net::TcpListener,
    router: Router,
    handshake: Option<Arc<dyn coffre_s3::conn::Handshake>>,
    limits: coffre_s3::conn::ConnLimits,
    shutdown: impl Future<Output = ()>,
    drain: std::time::Duration,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(router);
    let make = |peer| {
        let service = service.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            hyper::service::Service::call(&service, req)
        })
    };
    coffre_s3::conn::serve(listener, handshake, limits, make, shutdown, drain, name).await
}

/// An error in the admin API's JSON shape: `{"error": CODE, "message": ...}`.
pub struct ApiError(pub StatusCode, pub &'static str, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(serde_json::json!({ "error": self.1, "message": self.2 }))).into_response();
        response.extensions_mut().insert(ErrorCode(self.1));
        response
    }
}

/// The audit name of an admin request.
fn admin_operation(method: &axum::http::Method, path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches("/admin/v1/").split('/').collect();
    let name = match (method.as_str(), parts.as_slice()) {
        ("GET", ["keys"]) => "ListKeys",
        ("POST", ["keys"]) => "CreateKey",
        ("DELETE", ["keys", _]) => "DeleteKey",
        ("GET", ["buckets"]) => "ListBuckets",
        ("GET", ["buckets", _]) => "GetBucket",
        ("POST", ["buckets", _, "rotate-key"]) => "RotateBucketKey",
        ("POST", ["buckets", _, "erase"]) => "EraseBucket",
        ("GET", ["kms"]) => "KmsStatus",
        ("GET", ["lifecycle"]) => "LifecycleStatus",
        ("GET", ["gateways"]) => "ListGateways",
        ("GET", ["tls"]) => "TlsStatus",
        ("GET", ["audit", "events"]) => "AuditEvents",
        ("GET", ["audit", "head"]) => "AuditHead",
        ("GET", ["buckets", _, "residency"]) => "GetBucketResidency",
        ("PUT", ["buckets", _, "residency"]) => "PutBucketResidency",
        ("GET", ["buckets", _, "where"]) => "ObjectWhere",
        ("GET", ["targets"]) => "ListTargets",
        ("POST", ["targets", _, "lost"]) => "DeclareTargetLost",
        ("GET", ["repair"]) => "RepairStatus",
        ("POST", ["repair"]) => "StartRepair",
        ("GET", ["label"]) => "EvaluateLabel",
        ("GET", ["label", "latest"]) => "LabelLatest",
        _ => return format!("admin:{} {path}", method.as_str()),
    };
    format!("admin:{name}")
}

/// Who an admin request says it is: the root access key id, or "admin-token".
/// Never the token or the secret.
fn admin_principal(req: &Request) -> Option<String> {
    let token = req.headers().get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
    Some(match token.split_once(':') {
        Some((access_key, _)) => access_key.to_owned(),
        None => "admin-token".to_owned(),
    })
}

/// Records every admin request, durably, before its answer leaves.
async fn audit_request(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(trail) = state.trail.clone() else { return next.run(req).await };
    let mut event = trail.event(&admin_operation(req.method(), req.uri().path()));
    event.principal = admin_principal(&req);
    event.source = req.extensions().get::<Peer>().map(|p| p.0.to_string());
    let path: Vec<&str> = req.uri().path().split('/').collect();
    match path.as_slice() {
        ["", "admin", "v1", "buckets", bucket, ..] => event.bucket = Some((*bucket).to_owned()),
        ["", "admin", "v1", "keys", id] => event.detail = Some(format!("access_key={id}")),
        ["", "admin", "v1", "targets", id, ..] => event.detail = Some(format!("target={id}")),
        _ => {}
    }
    let response = next.run(req).await;
    event.status = response.status().as_u16();
    event.error = response.extensions().get::<ErrorCode>().map(|c| c.0.to_owned());
    match trail.act(event).await {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(error = %e, "an admin request could not be recorded in the audit log");
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "AuditUnavailable", "the audit log cannot record this act".into())
                .into_response()
        }
    }
}

/// Records what an act did to keys in the custodian.
async fn audit_keys(state: &AdminState, operation: &str, bucket: &str, detail: String) -> Result<(), ApiError> {
    let Some(trail) = &state.trail else { return Ok(()) };
    let mut event = trail.event(operation);
    event.bucket = Some(bucket.to_owned());
    event.status = 200;
    event.detail = Some(format!("custody={} {detail}", state.service.kms().custody()));
    trail.act(event).await.map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "AuditUnavailable",
            format!("the audit log cannot record this act: {e}"),
        )
    })
}

async fn audit_erasure(state: &AdminState, outcome: &coffre_core::service::EraseOutcome) -> Result<(), ApiError> {
    audit_keys(state, "kms:DestroyKey", &outcome.bucket, format!("keks={}", outcome.keks_destroyed.join(","))).await
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

/// The newest events this server appended (at most 1000), oldest first.
async fn audit_events(
    State(state): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
) -> Result<Json<Vec<coffre_audit::Event>>, ApiError> {
    let trail = state.trail.as_ref().ok_or_else(audit_off)?;
    Ok(Json(trail.log().recent(query.limit)))
}

/// The latest signed tree head and the public key that verifies it.
async fn audit_head(State(state): State<AdminState>) -> Result<Json<serde_json::Value>, ApiError> {
    let trail = state.trail.as_ref().ok_or_else(audit_off)?;
    let head = trail.log().latest_head().await;
    Ok(Json(serde_json::json!({
        "public_key": trail.log().public_key().to_string(),
        "events": trail.log().size(),
        "head": head,
    })))
}

fn audit_off() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "AuditOff", "the audit log is switched off on this server".into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "admin request failed");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string())
}

async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Result<Response, ApiError> {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let admin_ok = state.admin_token.as_deref().is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())));
    if admin_ok || state.keys.is_root_token(token) {
        Ok(next.run(req).await)
    } else {
        Err(ApiError(StatusCode::UNAUTHORIZED, "Unauthorized", "a valid bearer token is required".into()))
    }
}

async fn ready(State(state): State<AdminState>) -> Result<&'static str, ApiError> {
    state
        .service
        .meta()
        .buckets()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, "NotReady", e.to_string()))?;
    Ok("ready")
}

async fn lifecycle_status(State(state): State<AdminState>) -> Result<Json<crate::lifecycle::Status>, ApiError> {
    let status = state.lifecycle.lock().map_err(|_| internal("lifecycle status lock poisoned"))?.clone();
    Ok(Json(status))
}

#[derive(Serialize)]
struct GatewayView {
    name: String,
    /// Seconds since its last heartbeat (every 2 s; presumed dead after 30).
    heartbeat_age_secs: f64,
}

/// The gateways sharing this deployment's metadata database, oldest first.
async fn gateways(State(state): State<AdminState>) -> Result<Json<Vec<GatewayView>>, ApiError> {
    let shared = state.shared.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "NoSharedMetadata",
            "this server keeps its metadata to itself (engine = \"embedded\"): it is the only gateway".into(),
        )
    })?;
    let members = shared.members().await.map_err(service_error)?;
    Ok(Json(members.into_iter().map(|(name, age)| GatewayView { name, heartbeat_age_secs: age.max(0.0) }).collect()))
}

/// Versions, suites, groups and certificate of each listener, for operators
/// and for the trust label.
async fn tls_status(State(state): State<AdminState>) -> Json<crate::tls::TlsReport> {
    Json(state.tls.report())
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(),
    )
}

pub fn rfc3339(t: UnixNanos) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0))
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Serialize, Deserialize)]
pub struct KeyView {
    pub access_key_id: String,
    pub name: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_access_key: Option<String>,
}

fn key_view(k: &AccessKeyRecord) -> KeyView {
    KeyView {
        access_key_id: k.id.to_string(),
        name: k.name.clone(),
        created: rfc3339(k.created),
        secret_access_key: None,
    }
}

async fn list_keys(State(state): State<AdminState>) -> Result<Json<Vec<KeyView>>, ApiError> {
    let keys = state.keys.access_keys().list().await.map_err(internal)?;
    Ok(Json(keys.iter().map(key_view).collect()))
}

#[derive(Deserialize)]
struct CreateKey {
    name: String,
}

async fn create_key(
    State(state): State<AdminState>,
    Json(body): Json<CreateKey>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "InvalidName",
            "name must be 1 to 128 printable characters".into(),
        ));
    }
    let (access, secret) = crate::credentials::generate();
    let id = AccessKeyId::parse(&access).map_err(internal)?;
    let record = state.keys.access_keys().create(id, &secret, name).await.map_err(service_error)?;
    tracing::info!(access_key = %record.id, name = %record.name, "access key created");
    // The only time the secret leaves the server.
    let view = KeyView { secret_access_key: Some(secret), ..key_view(&record) };
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, Default)]
struct DeleteKeyQuery {
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
async fn delete_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<DeleteKeyQuery>,
) -> Result<Json<KeyDeletion>, ApiError> {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "NoSuchKey", format!("no access key {id:?}"));
    let parsed = AccessKeyId::parse(&id).map_err(|_| not_found())?;
    state.keys.access_keys().get(&parsed).await.map_err(internal)?.ok_or_else(not_found)?;
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
    let mut erased = Vec::new();
    for bucket in &owned {
        let outcome = state.service.erase_bucket(&state.root, &bucket.name).await.map_err(service_error)?;
        audit_erasure(&state, &outcome).await?;
        erased.push(outcome);
    }
    if !state.keys.access_keys().delete(&parsed).await.map_err(internal)? {
        return Err(not_found());
    }
    tracing::info!(access_key = %parsed, buckets_erased = erased.len(), "access key deleted");
    Ok(Json(KeyDeletion { access_key_id: id, erased }))
}

/// Object-service errors in the admin API's shape; the custodian being down is a 503.
pub fn service_error(e: coffre_core::Error) -> ApiError {
    match e {
        coffre_core::Error::Residency(_) | coffre_core::Error::Unavailable(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "StorageUnavailable", e.to_string())
        }
        coffre_core::Error::NoSuchBucket => ApiError(StatusCode::NOT_FOUND, "NoSuchBucket", e.to_string()),
        coffre_core::Error::KmsUnavailable(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "KmsUnavailable", e.to_string())
        }
        other => internal(other),
    }
}

#[derive(Serialize, Deserialize)]
pub struct KmsView {
    pub custody: String,
    pub location: String,
    pub detail: String,
}

/// Which custodian holds the keys, after checking it works end to end.
async fn kms_status(State(state): State<AdminState>) -> Result<Json<KmsView>, ApiError> {
    let kms = state.service.kms();
    match kms.status().await {
        Ok(s) => Ok(Json(KmsView { custody: s.custody.to_string(), location: s.location, detail: s.detail })),
        Err(e) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "KmsUnavailable",
            format!("{} custodian does not work: {e}", kms.custody()),
        )),
    }
}

fn bucket_name(name: &str) -> Result<BucketName, ApiError> {
    BucketName::parse(name).map_err(|_| ApiError(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {name:?}")))
}

async fn rotate_key(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<coffre_core::service::RotateOutcome>, ApiError> {
    let bucket = bucket_name(&name)?;
    let outcome = state.service.rotate_bucket_key(&state.root, &bucket).await.map_err(service_error)?;
    tracing::info!(bucket = %name, generation = outcome.new_generation, rewrapped = outcome.rewrapped, "bucket key rotated");
    let detail = format!(
        "new_kek={} generation={} rewrapped={} destroyed={}",
        outcome.new_kek,
        outcome.new_generation,
        outcome.rewrapped,
        outcome.keks_destroyed.join(",")
    );
    audit_keys(&state, "kms:RotateKey", &outcome.bucket, detail).await?;
    Ok(Json(outcome))
}

#[derive(Deserialize)]
struct EraseRequest {
    #[serde(default)]
    confirm: bool,
}

async fn erase_bucket(
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

async fn list_buckets(State(state): State<AdminState>) -> Result<Json<Vec<BucketView>>, ApiError> {
    let buckets = state.service.list_buckets(&state.root).await.map_err(internal)?;
    let mut out = Vec::with_capacity(buckets.len());
    for b in &buckets {
        out.push(bucket_view(&state, b).await?);
    }
    Ok(Json(out))
}

async fn bucket_info(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Json<BucketView>, ApiError> {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {name:?}"));
    let parsed = BucketName::parse(&name).map_err(|_| not_found())?;
    let bucket = match state.service.bucket(&state.root, &parsed).await {
        Ok(b) => b,
        Err(coffre_core::Error::NoSuchBucket) => return Err(not_found()),
        Err(e) => return Err(internal(e)),
    };
    Ok(Json(bucket_view(&state, &bucket).await?))
}
