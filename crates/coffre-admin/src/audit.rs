//! The admin API and the audit log: every request under `/admin/` becomes an
//! event before it is answered, and the log is read through `/admin/v1/audit`.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coffre_audit::{AuditError, AuditTrail, Event};
use serde::Deserialize;

use crate::AdminState;
use crate::error::{ApiError, ErrorCode};

/// The server's audit trail, as the admin API records to and reads it.
/// Implemented by the binary's trail (its node name, its log).
#[async_trait]
pub trait Audit: Send + Sync {
    /// An event of this server, now.
    fn event(&self, operation: &str) -> Event;
    /// Records an administrative act, durably.
    async fn act(&self, event: Event) -> Result<(), AuditError>;
    /// The log itself, for its recent events and signed head.
    fn log(&self) -> &Arc<dyn AuditTrail>;
}

/// The name of an admin request's act (`CreateKey`; `POST /admin/v1/x` for
/// a path no route serves).
fn act_name(method: &Method, path: &str) -> String {
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
        ("GET", ["scrub"]) => "ScrubStatus",
        ("POST", ["scrub"]) => "StartScrub",
        ("GET", ["label"]) => "EvaluateLabel",
        ("GET", ["label", "latest"]) => "LabelLatest",
        _ => return format!("{} {path}", method.as_str()),
    };
    name.to_owned()
}

/// Whether a request may change something: every method but a read's.
/// Such a request is recorded before its handler runs, whatever its route.
fn may_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What an act's handler adds to its event once it is done (the id of a
/// key it created), put in the response's extensions.
#[derive(Clone)]
pub(crate) struct ActDetail(pub String);

/// Authenticates the request through the seam, records the intent of an
/// authenticated request that may change something before its handler runs
/// (if the log cannot take it, nothing is done), answers it (or refuses it),
/// and records the outcome, durably, before the answer leaves.
pub(crate) async fn authenticate_and_audit(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let authenticated = state.auth.authenticate(req.headers(), peer).await;
    let Some(trail) = state.audit.clone() else {
        return match authenticated {
            Ok(_) => next.run(req).await,
            Err(refusal) => unauthorized(refusal.message),
        };
    };
    let name = act_name(req.method(), req.uri().path());
    let mut event = request_event(trail.as_ref(), &name, req.uri().path(), peer);
    let response = match authenticated {
        Ok(principal) => {
            event.principal = Some(principal.name);
            if may_change(req.method())
                && let Err(refused) = record_intent(trail.as_ref(), &name, event.clone()).await
            {
                return refused;
            }
            next.run(req).await
        }
        Err(refusal) => {
            event.principal = refusal.claimed;
            unauthorized(refusal.message)
        }
    };
    event.status = response.status().as_u16();
    event.error = response.extensions().get::<ErrorCode>().map(|c| c.0.to_owned());
    if let Some(ActDetail(done)) = response.extensions().get::<ActDetail>() {
        event.detail = Some(event.detail.map_or_else(|| done.clone(), |d| format!("{d} {done}")));
    }
    match trail.act(event).await {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(error = %e, "an admin request could not be recorded in the audit log");
            unrecorded("the audit log cannot record this act")
        }
    }
}

/// Records, durably, that the act of `event` is about to be made; if the
/// log cannot take it, the refusal to answer instead (its outcome is handed
/// to the log all the same, which writes it after the intent once it can).
async fn record_intent(trail: &dyn Audit, name: &str, event: Event) -> Result<(), Response> {
    let intent = Event { operation: format!("intent:{name}"), ..event.clone() };
    let Err(e) = trail.act(intent).await else { return Ok(()) };
    tracing::error!(error = %e, act = %name, "an admin act could not be recorded: refused");
    let outcome = Event { status: 503, error: Some("AuditUnavailable".into()), ..event };
    let _ = trail.act(outcome).await;
    Err(unrecorded("The audit log cannot record this act; nothing was changed"))
}

/// The event of an admin request, before it is answered: its act, client,
/// and what its path names; one request id for its intent and its outcome.
fn request_event(trail: &dyn Audit, name: &str, path: &str, peer: Option<SocketAddr>) -> Event {
    let mut event = trail.event(&format!("admin:{name}"));
    event.request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase();
    event.source = peer.map(|p| p.to_string());
    let path: Vec<&str> = path.split('/').collect();
    match path.as_slice() {
        ["", "admin", "v1", "buckets", bucket, ..] => event.bucket = Some((*bucket).to_owned()),
        ["", "admin", "v1", "keys", id] => event.detail = Some(format!("access_key={id}")),
        ["", "admin", "v1", "targets", id, ..] => event.detail = Some(format!("target={id}")),
        _ => {}
    }
    event
}

fn unauthorized(message: String) -> Response {
    ApiError(StatusCode::UNAUTHORIZED, "Unauthorized", message).into_response()
}

fn unrecorded(message: &str) -> Response {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, "AuditUnavailable", message.into()).into_response()
}

/// Records what an act did to keys in the custodian.
pub(crate) async fn audit_keys(
    state: &AdminState,
    operation: &str,
    bucket: &str,
    detail: String,
) -> Result<(), ApiError> {
    let Some(trail) = &state.audit else { return Ok(()) };
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

pub(crate) async fn audit_erasure(
    state: &AdminState,
    outcome: &coffre_core::service::EraseOutcome,
) -> Result<(), ApiError> {
    let detail = format!("keks={} pending={}", outcome.keks_destroyed.join(","), outcome.keks_pending.join(","));
    audit_keys(state, "kms:DestroyKey", &outcome.bucket, detail).await
}

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

/// The newest events this server appended (at most 1000), oldest first.
pub(crate) async fn audit_events(
    State(state): State<AdminState>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let trail = state.audit.as_ref().ok_or_else(audit_off)?;
    Ok(Json(trail.log().recent(query.limit)))
}

/// The latest signed tree head and the public key that verifies it.
pub(crate) async fn audit_head(State(state): State<AdminState>) -> Result<Json<serde_json::Value>, ApiError> {
    let trail = state.audit.as_ref().ok_or_else(audit_off)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_requests_have_audit_names() {
        assert_eq!(act_name(&Method::POST, "/admin/v1/keys"), "CreateKey");
        assert_eq!(act_name(&Method::DELETE, "/admin/v1/keys/CFXYZ"), "DeleteKey");
        assert_eq!(act_name(&Method::PUT, "/admin/v1/buckets/b/residency"), "PutBucketResidency");
        assert_eq!(act_name(&Method::POST, "/admin/v1/targets/t1/lost"), "DeclareTargetLost");
        assert_eq!(act_name(&Method::GET, "/admin/v1/label/latest"), "LabelLatest");
        assert_eq!(act_name(&Method::PATCH, "/admin/v1/keys"), "PATCH /admin/v1/keys");
    }

    #[test]
    fn every_method_but_a_reads_may_change() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(may_change(&method), "{method}");
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!may_change(&method), "{method}");
        }
    }
}
