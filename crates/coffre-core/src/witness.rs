//! The audit seam of the object service: every change is witnessed (recorded
//! durably in the audit log) before the metadata commit that applies it.
//!
//! Write-ahead, not write-after: a crash or a dropped connection between the
//! two steps can leave an event whose change never committed (the request's
//! own event, with its error status, shows that), never a committed change
//! without its event. If the log cannot record, the change is not made.

use std::future::Future;

use crate::error::Result;
use crate::types::{BucketName, ObjectKey, Principal, VersionId};

tokio::task_local! {
    /// The id of the S3 or admin request being served, set by the front
    /// around the whole request so that change events name it.
    static REQUEST_ID: String;
}

/// Runs `fut` as the request `id`: changes it makes carry that id.
pub async fn in_request<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The id of the request being served, if any.
pub fn current_request() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Who makes a change: the principal the request was verified as, or a
/// background job acting on the operator's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Principal(String),
    /// `lifecycle`..., with what the job acts on (`rule=ID`).
    Job {
        name: &'static str,
        on: String,
    },
}

impl From<&Principal> for Actor {
    fn from(who: &Principal) -> Self {
        Self::Principal(who.access_key.to_string())
    }
}

/// One change about to be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `PutObject`, `DeleteObject`, `lifecycle:Expire`...
    pub operation: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub version: Option<String>,
    /// Facts of the change (`copy_source=...`, `kind=versioning`).
    pub detail: Option<String>,
    pub actor: Actor,
    /// The request that asks for it; `None` for jobs.
    pub request_id: Option<String>,
}

impl Change {
    /// A change of `bucket` by `actor`, in the current request.
    pub fn new(operation: &str, actor: Actor, bucket: &BucketName) -> Self {
        Self {
            operation: operation.to_owned(),
            bucket: Some(bucket.to_string()),
            key: None,
            version: None,
            detail: None,
            actor,
            request_id: current_request(),
        }
    }

    pub fn key(mut self, key: &ObjectKey) -> Self {
        self.key = Some(key.as_str().to_owned());
        self
    }

    pub fn version(mut self, version: Option<&VersionId>) -> Self {
        self.version = version.map(|v| v.as_str().to_owned());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Records changes before they are made. An error means the change must not
/// be made ([`Error::AuditUnavailable`](crate::Error::AuditUnavailable)).
#[async_trait::async_trait]
pub trait ChangeWitness: Send + Sync + 'static {
    async fn witness(&self, change: Change) -> Result<()>;
}

/// For tools and tests that run without an audit log (and a server whose
/// operator turned it off): changes are made unrecorded.
pub struct NoAuditLog;

#[async_trait::async_trait]
impl ChangeWitness for NoAuditLog {
    async fn witness(&self, _change: Change) -> Result<()> {
        Ok(())
    }
}
