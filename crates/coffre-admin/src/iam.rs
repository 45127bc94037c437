//! Policy simulation through the admin API: the decision the S3 front would
//! make for a principal, an action and a resource, with its statements.

use std::collections::BTreeMap;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::AdminState;
use crate::error::ApiError;

/// Implemented by the binary with the S3 front's own authorizer, so a
/// simulation is decided by the code that decides requests.
#[async_trait]
pub trait Simulator: Send + Sync {
    /// `principal`: an access key id, `None` for anonymous. `Err`: the
    /// question cannot be asked (no such bucket, not an S3 resource).
    async fn simulate(&self, question: &Question) -> Result<Answer, String>;
}

/// `POST /admin/v1/iam/simulate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Question {
    /// An access key id, or `anonymous`.
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// Condition keys to set or override (`aws:SourceIp`, `s3:prefix`...).
    #[serde(default)]
    pub context: BTreeMap<String, String>,
}

impl Question {
    /// The access key asked about; `None` for `anonymous`.
    pub fn access_key(&self) -> Option<&str> {
        (self.principal != "anonymous").then_some(self.principal.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// `allow` or `deny`.
    pub decision: String,
    /// What decided, in one line (as the audit event says it).
    pub explanation: String,
    /// The deciding statements, `policy:Sid` (or `policy:#N`).
    pub statements: Vec<String>,
}

pub(crate) async fn simulate(
    State(state): State<AdminState>,
    Json(question): Json<Question>,
) -> Result<Json<Answer>, ApiError> {
    let answer = state
        .simulator
        .simulate(&question)
        .await
        .map_err(|why| ApiError(StatusCode::BAD_REQUEST, "InvalidSimulation", why))?;
    Ok(Json(answer))
}
