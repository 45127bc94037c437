//! The trust label through the admin API: a fresh evaluation against a
//! profile, signed, and the latest background evaluation of each.

use async_trait::async_trait;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffre_label::Report;
use serde::{Deserialize, Serialize};

use crate::AdminState;
use crate::error::ApiError;

/// The deployment's trust label: implemented by the binary, which observes
/// the running server and holds the signing key.
#[async_trait]
pub trait Labels: Send + Sync {
    /// Evaluates a profile (by id or alias) against the system as it is now.
    async fn evaluate(&self, profile: &str) -> Result<Report, LabelError>;
    /// The signed report file (JSON with a detached JWS).
    fn sign(&self, report: &Report) -> Result<String, LabelError>;
    /// The last background evaluation of each profile.
    fn latest(&self) -> Vec<Report>;
    /// Asks for a new background evaluation now (a topology or policy change).
    fn wake(&self);
}

/// Why a label could not be given.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The message names the profiles known.
    #[error("{0}")]
    NoSuchProfile(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    CannotSign(String),
}

impl From<LabelError> for ApiError {
    fn from(e: LabelError) -> Self {
        match e {
            LabelError::NoSuchProfile(m) => ApiError(StatusCode::NOT_FOUND, "NoSuchProfile", m),
            LabelError::Failed(m) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "LabelFailed", m),
            LabelError::CannotSign(m) => ApiError(StatusCode::CONFLICT, "CannotSign", m),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct EvaluateQuery {
    profile: String,
    #[serde(default = "default_format")]
    format: String,
}

fn default_format() -> String {
    "json".into()
}

/// `GET /admin/v1/label?profile=NAME&format=json|text|html`: a fresh
/// evaluation; JSON comes signed.
pub(crate) async fn evaluate(
    State(state): State<AdminState>,
    Query(query): Query<EvaluateQuery>,
) -> Result<Response, ApiError> {
    let report = state.labels.evaluate(&query.profile).await?;
    let (content_type, body) = match query.format.as_str() {
        "json" => ("application/json", state.labels.sign(&report)?),
        "text" => ("text/plain; charset=utf-8", report.to_text()),
        "html" => ("text/html; charset=utf-8", report.to_html()),
        other => {
            return Err(ApiError(StatusCode::BAD_REQUEST, "BadFormat", format!("{other:?}: json, text or html")));
        }
    };
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

#[derive(Serialize)]
pub(crate) struct LatestView {
    profile: String,
    generated: String,
    conclusion: String,
    summary: coffre_label::Summary,
}

/// `GET /admin/v1/label/latest`: the last background evaluation of each profile.
pub(crate) async fn latest(State(state): State<AdminState>) -> Json<Vec<LatestView>> {
    Json(
        state
            .labels
            .latest()
            .into_iter()
            .map(|r| LatestView {
                conclusion: r.conclusion(),
                profile: r.profile,
                generated: r.generated,
                summary: r.summary,
            })
            .collect(),
    )
}
