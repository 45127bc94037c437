//! The admin API: health, metrics, and the JSON endpoints the `coffre` CLI
//! drives (access keys, buckets and their keys, residency, audit, trust label).
//!
//! # The authentication seam
//!
//! Everything under `/admin/` passes one [`AdminAuth`] first: it sees the
//! request's headers and the client's address, and answers with the admin
//! [`Principal`] it authenticated or a [`Refusal`] (a 401). Today's one
//! implementation is [`BearerToken`] (`Authorization: Bearer TOKEN`, TOKEN
//! being the admin token, never root's S3 secret); the console's
//! sessions and IAM plug in here as other implementations.
//!
//! Every request under `/admin/`, refused ones included, is an audit event
//! recorded durably before it is answered, naming the principal (or, when
//! refused, who the request claimed to be); acts on keys add their own `kms:`
//! events naming the keys created or destroyed.
//!
//! # What the binary plugs in
//!
//! Data is reached only through the [`ObjectService`] and the access keys of
//! `coffre-core`. The server's other parts come in as small traits the binary
//! implements ([`Audit`], [`Placement`], [`Labels`], [`Gateways`],
//! [`Simulator`]) and plain
//! data ([`LifecycleStatus`], closures for metrics and the TLS report). The
//! crate builds an [`axum::Router`]; the binary serves it on its own
//! listener, and puts the client's address in each request's extensions as
//! [`axum::extract::ConnectInfo`].

mod audit;
mod auth;
mod buckets;
mod error;
mod iam;
mod keys;
mod label;
mod residency;
mod status;
mod usage;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post};
use coffre_core::access::AccessKeys;
use coffre_core::service::ObjectService;

pub use audit::Audit;
pub use auth::{AdminAuth, BearerToken, Principal, Refusal};
pub use buckets::{BucketView, KekView, KmsView};
pub use error::ApiError;
pub use iam::{Answer, Question, Simulator};
pub use keys::{KeyDeletion, KeyView, generate_admin_token, generate_key_pair};
pub use label::{LabelError, Labels};
pub use residency::{Offender, Placement, RepairStatus, ScrubStatus};
pub use status::{CertInfo, Gateways, LifecycleStatus, ListenerTls, ReloadOutcome, TlsReport};
pub use usage::TenantUsage;

/// Renders the Prometheus metrics page.
pub type MetricsFn = dyn Fn() -> String + Send + Sync;
/// Reports the TLS settings of the listeners, as they are now.
pub type TlsReportFn = dyn Fn() -> TlsReport + Send + Sync;

/// What the admin API works with: the object service, and the parts of the
/// server the binary plugs in.
#[derive(Clone)]
pub struct AdminState {
    pub service: Arc<ObjectService>,
    pub access_keys: AccessKeys,
    /// The service's root principal: the admin acts on every tenant's buckets.
    pub root: coffre_core::types::Principal,
    pub auth: Arc<dyn AdminAuth>,
    /// `None`: the audit log is off.
    pub audit: Option<Arc<dyn Audit>>,
    pub metrics: Arc<MetricsFn>,
    pub tls: Arc<TlsReportFn>,
    pub lifecycle: Arc<Mutex<LifecycleStatus>>,
    /// Present when the data lives on storage targets.
    pub placement: Option<Arc<dyn Placement>>,
    pub labels: Arc<dyn Labels>,
    /// Present when the gateways of a deployment share a metadata database.
    pub gateways: Option<Arc<dyn Gateways>>,
    /// Decides as the S3 front does, for `coffre iam simulate`.
    pub simulator: Arc<dyn Simulator>,
}

/// The admin API: health and metrics open, everything under `/admin/`
/// authenticated and audited.
pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/admin/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route("/admin/v1/keys/{id}", delete(keys::delete_key).patch(keys::update_key))
        .route("/admin/v1/buckets", get(buckets::list_buckets))
        .route("/admin/v1/usage", get(usage::usage))
        .route("/admin/v1/buckets/{name}", get(buckets::bucket_info))
        .route("/admin/v1/buckets/{name}/rotate-key", post(buckets::rotate_key))
        .route("/admin/v1/buckets/{name}/erase", post(buckets::erase_bucket))
        .route("/admin/v1/kms", get(buckets::kms_status))
        .route("/admin/v1/lifecycle", get(status::lifecycle_status))
        .route("/admin/v1/gateways", get(status::gateways))
        .route("/admin/v1/tls", get(status::tls_status))
        .route("/admin/v1/audit/events", get(audit::audit_events))
        .route("/admin/v1/audit/head", get(audit::audit_head))
        .route("/admin/v1/buckets/{name}/residency", get(residency::get_residency).put(residency::put_residency))
        .route("/admin/v1/buckets/{name}/where", get(residency::object_where))
        .route("/admin/v1/targets", get(residency::list_targets))
        .route("/admin/v1/targets/{id}/lost", post(residency::declare_lost))
        .route("/admin/v1/repair", get(residency::repair_status).post(residency::start_repair))
        .route("/admin/v1/scrub", get(residency::scrub_status).post(residency::start_scrub))
        .route("/admin/v1/label", get(label::evaluate))
        .route("/admin/v1/label/latest", get(label::latest))
        .route("/admin/v1/iam/simulate", post(iam::simulate))
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::authenticate_and_audit));
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(status::ready))
        .route("/metrics", get(status::metrics))
        .merge(admin)
        .with_state(state)
}

/// A time as RFC 3339, as every admin view shows times.
pub fn rfc3339(t: coffre_core::types::UnixNanos) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0))
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
