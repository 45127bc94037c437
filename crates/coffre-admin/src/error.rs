//! The admin API's error shape, `{"error": CODE, "message": ...}`, and how
//! object-service errors map onto it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error in the admin API's JSON shape: status, code, message.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub &'static str, pub String);

/// The error code of a refused admin request, for its audit event.
#[derive(Clone, Copy)]
pub(crate) struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(serde_json::json!({ "error": self.1, "message": self.2 }))).into_response();
        response.extensions_mut().insert(ErrorCode(self.1));
        response
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "admin request failed");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string())
}

/// Object-service errors in the admin API's shape; the custodian being down is a 503.
pub(crate) fn service_error(e: coffre_core::Error) -> ApiError {
    match e {
        coffre_core::Error::Residency(_) | coffre_core::Error::Unavailable(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "StorageUnavailable", e.to_string())
        }
        coffre_core::Error::ErasureLocked { .. } => {
            ApiError(StatusCode::CONFLICT, "ComplianceRetention", e.to_string())
        }
        coffre_core::Error::NoSuchBucket => ApiError(StatusCode::NOT_FOUND, "NoSuchBucket", e.to_string()),
        coffre_core::Error::AuditUnavailable(_) => ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "AuditUnavailable",
            "The audit log cannot record this change; nothing was changed".into(),
        ),
        coffre_core::Error::KmsUnavailable(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "KmsUnavailable", e.to_string())
        }
        coffre_core::Error::MetaUnavailable(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "MetadataUnavailable", e.to_string())
        }
        other => internal(other),
    }
}

/// A bucket name from the path; one that cannot exist is a bucket not found.
pub(crate) fn bucket_name(name: &str) -> Result<coffre_core::types::BucketName, ApiError> {
    coffre_core::types::BucketName::parse(name)
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {name:?}")))
}
