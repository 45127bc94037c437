//! The server's state as the admin API shows it: health, metrics, the
//! lifecycle worker, the gateways sharing the database, and TLS.

use std::path::PathBuf;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use coffre_core::lifecycle::Report;
use serde::Serialize;

use crate::AdminState;
use crate::error::{ApiError, internal, service_error};

pub(crate) async fn ready(State(state): State<AdminState>) -> Result<&'static str, ApiError> {
    state.service.ready().await.map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, "NotReady", e.to_string()))?;
    Ok("ready")
}

pub(crate) async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        (state.metrics)(),
    )
}

/// What `/admin/v1/lifecycle` shows: the lifecycle worker keeps it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LifecycleStatus {
    pub interval_secs: u64,
    pub running: bool,
    pub passes: u64,
    pub last_started: Option<String>,
    pub last_finished: Option<String>,
    pub last_duration_ms: Option<u64>,
    pub last_report: Option<Report>,
    pub last_error: Option<String>,
    /// Everything the passes did since the server started.
    pub totals: Report,
}

pub(crate) async fn lifecycle_status(State(state): State<AdminState>) -> Result<Json<LifecycleStatus>, ApiError> {
    let status = state.lifecycle.lock().map_err(|_| internal("lifecycle status lock poisoned"))?.clone();
    Ok(Json(status))
}

/// The gateways sharing this deployment's metadata database: implemented by
/// the binary over the database's membership table.
#[async_trait]
pub trait Gateways: Send + Sync {
    /// Each gateway's name and the seconds since its last heartbeat, oldest first.
    async fn members(&self) -> coffre_core::Result<Vec<(String, f64)>>;
}

#[derive(Serialize)]
pub(crate) struct GatewayView {
    name: String,
    /// Seconds since its last heartbeat (every 2 s; presumed dead after 30).
    heartbeat_age_secs: f64,
}

/// The gateways sharing this deployment's metadata database, oldest first.
pub(crate) async fn gateways(State(state): State<AdminState>) -> Result<Json<Vec<GatewayView>>, ApiError> {
    let gateways = state.gateways.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "NoSharedMetadata",
            "this server keeps its metadata to itself (engine = \"embedded\"): it is the only gateway".into(),
        )
    })?;
    let members = gateways.members().await.map_err(service_error)?;
    Ok(Json(members.into_iter().map(|(name, age)| GatewayView { name, heartbeat_age_secs: age.max(0.0) }).collect()))
}

/// What is known of the certificate in use.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// SHA-256 of the leaf certificate's DER, lowercase hex (what `openssl x509
    /// -fingerprint -sha256` prints, without colons).
    pub sha256_fingerprint: String,
    /// Certificates in the chain, leaf included.
    pub chain_length: usize,
    /// The private key's algorithm (ECDSA, RSA, ED25519).
    pub key_algorithm: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When this pair was read from disk (RFC 3339).
    pub loaded_at: String,
}

/// The outcome of the last reload request.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    pub at: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One listener's TLS settings, as `GET /admin/v1/tls` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerTls {
    pub enabled: bool,
    pub protocol_versions: Vec<String>,
    pub cipher_suites: Vec<String>,
    pub key_exchange_groups: Vec<String>,
    pub alpn: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertInfo>,
}

/// `GET /admin/v1/tls`: per listener, then the last reload.
#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    pub s3: ListenerTls,
    pub admin: ListenerTls,
    pub last_reload: Option<ReloadOutcome>,
}

/// Versions, suites, groups and certificate of each listener, for operators
/// and for the trust label.
pub(crate) async fn tls_status(State(state): State<AdminState>) -> Json<TlsReport> {
    Json((state.tls)())
}
