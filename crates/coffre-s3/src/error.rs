//! S3 errors: the service's errors mapped onto the codes and statuses S3
//! clients expect, and the XML error bodies the front writes itself.

use coffre_core::Error;
use coffre_core::types::VersionId;
use http::{Response, StatusCode};
use s3s::{S3Error, S3ErrorCode, s3_error};

/// [`s3_err`], with the header of a failed precondition named in the
/// message (a write or a delete carries only the conditions given).
pub fn s3_err_naming(condition: Option<&'static str>) -> impl Fn(Error) -> S3Error {
    move |e| match (e, condition) {
        (Error::PreconditionFailed, Some(header)) => S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            format!("At least one of the pre-conditions you specified did not hold: {header}"),
        ),
        (e, _) => s3_err(e),
    }
}

/// Maps a service error onto the S3 error a client expects.
pub fn s3_err(e: Error) -> S3Error {
    use S3ErrorCode as C;
    let code = match &e {
        Error::InvalidBucketName(_) => C::InvalidBucketName,
        Error::NoSuchBucket => C::NoSuchBucket,
        Error::BucketAlreadyExists => C::BucketAlreadyExists,
        Error::BucketAlreadyOwnedByYou => C::BucketAlreadyOwnedByYou,
        Error::BucketNotEmpty => C::BucketNotEmpty,
        Error::NoSuchKey => C::NoSuchKey,
        Error::NoSuchVersion => C::NoSuchVersion,
        Error::DeleteMarker { version_id, named } => return delete_marker_error(version_id, *named),
        Error::NoSuchUpload => C::NoSuchUpload,
        Error::AccessDenied | Error::Locked(_) | Error::ErasureLocked { .. } => C::AccessDenied,
        Error::InvalidTag(_) => C::InvalidTag,
        Error::TooManyTags { max } => {
            // AWS answers this one with the generic BadRequest code.
            let mut err = S3Error::with_message(
                C::Custom("BadRequest".into()),
                format!("Object tags cannot be greater than {max}"),
            );
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            return err;
        }
        Error::InvalidBucketState(_) => C::InvalidBucketState,
        Error::NoLockConfiguration => {
            return S3Error::with_message(C::InvalidRequest, "Bucket is missing Object Lock Configuration");
        }
        Error::KeyTooLong => C::KeyTooLongError,
        Error::InvalidArgument(_) => C::InvalidArgument,
        Error::InvalidRequest(_) => C::InvalidRequest,
        Error::PreconditionFailed => C::PreconditionFailed,
        Error::NotModified { etag } => {
            let mut err = S3Error::new(C::NotModified);
            if let Ok(v) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
                let mut headers = http::HeaderMap::new();
                headers.insert(http::header::ETAG, v);
                err.set_headers(headers);
            }
            return err;
        }
        Error::InvalidRange { .. } => C::InvalidRange,
        Error::InvalidPartNumber => {
            let mut err = S3Error::with_message(
                C::Custom("InvalidPartNumber".into()),
                "The requested partnumber is not satisfiable",
            );
            err.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            return err;
        }
        Error::BadDigest | Error::ChecksumMismatch(_) => C::BadDigest,
        Error::IncompleteBody { .. } => C::IncompleteBody,
        Error::Body(why) => return body_error(why),
        Error::EntityTooLarge { .. } => C::EntityTooLarge,
        Error::EntityTooSmall { .. } => C::EntityTooSmall,
        Error::InvalidPart(_) => C::InvalidPart,
        Error::InvalidPartOrder => C::InvalidPartOrder,
        Error::Io(_) | Error::Meta(_) => {
            tracing::error!(error = %e, "internal error");
            return s3_error!(InternalError, "We encountered an internal error. Please try again.");
        }
        Error::KeyRotated { .. } => {
            return s3_error!(
                ServiceUnavailable,
                "The bucket's key was rotated while this write was in flight; nothing was stored. Please retry."
            );
        }
        Error::Residency(why) => {
            // No AWS code says this; a 503 tells SDKs to retry, since a target
            // coming back up can make the policy satisfiable again.
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("ResidencyPolicyUnsatisfiable".into()),
                format!(
                    "The bucket's residency policy cannot be met by the storage targets up now; nothing was stored: {why}"
                ),
            );
            err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
            return err;
        }
        Error::ResidencyNotAllowed(why) => {
            // No AWS code says this: a tenant asked for more than the
            // operator allows, which no retry changes.
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("ResidencyPolicyNotAllowed".into()),
                format!("The residency policy is not allowed; nothing was changed: {why}"),
            );
            err.set_status_code(http::StatusCode::FORBIDDEN);
            return err;
        }
        Error::Unavailable(_) => {
            tracing::error!(error = %e, "storage targets unavailable");
            return s3_error!(
                ServiceUnavailable,
                "Storage nodes needed for this request are unavailable. Please try again."
            );
        }
        Error::AuditUnavailable(_) => {
            tracing::error!(error = %e, "audit log unavailable");
            return s3_error!(ServiceUnavailable, "The audit log cannot record this change; nothing was changed");
        }
        Error::MetaUnavailable(_) => {
            tracing::error!(error = %e, "metadata database unavailable");
            return s3_error!(ServiceUnavailable, "The metadata database is unavailable. Please try again.");
        }
        Error::KmsUnavailable(_) => {
            tracing::error!(error = %e, "key custodian unavailable");
            return s3_error!(
                ServiceUnavailable,
                "The key management service is unavailable; nothing was changed. Please try again."
            );
        }
        Error::Integrity(_) => {
            tracing::error!(error = %e, "stored data failed authentication");
            return s3_error!(InternalError, "The stored object failed its integrity check and was not returned.");
        }
        Error::KeyMissing(_) => {
            tracing::error!(error = %e, "the key custodian lacks a key the metadata names");
            return s3_error!(
                InternalError,
                "The key custodian does not hold the key of this data, which was not destroyed: check that this \
                 server uses the deployment's key custodian. Nothing was returned or changed."
            );
        }
        Error::KeyDestroyed(_) => {
            tracing::error!(error = %e, "stored data has no key");
            return s3_error!(InternalError, "The key of this object has been destroyed: its data cannot be read.");
        }
        Error::CustomerKeyRequired | Error::CustomerKeyNotApplicable => C::InvalidRequest,
        Error::CustomerKeyMismatch => {
            // S3 answers a wrong SSE-C key with a bare 403.
            return S3Error::with_message(C::AccessDenied, "Access Denied");
        }
    };
    S3Error::with_message(code, e.to_string())
}

/// A read that lands on a delete marker: 404 for the current version of a
/// deleted key, 405 when the marker was named by its version id; both say so
/// in `x-amz-delete-marker`, as S3 does.
fn delete_marker_error(version_id: &VersionId, named: bool) -> S3Error {
    let mut err = if named {
        S3Error::with_message(
            S3ErrorCode::MethodNotAllowed,
            "The specified method is not allowed against this resource.",
        )
    } else {
        S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
    if let Ok(v) = http::HeaderValue::from_str(version_id.as_str()) {
        headers.insert("x-amz-version-id", v);
    }
    if named {
        headers.insert(http::header::ALLOW, http::HeaderValue::from_static("DELETE"));
    }
    err.set_headers(headers);
    err
}

/// s3s 0.14 reports payload verification failures as stream errors of
/// private types, so they are told apart by their message.
fn body_error(why: &str) -> S3Error {
    if why.contains("Sha256Mismatch") {
        let mut err = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        err.set_status_code(http::StatusCode::BAD_REQUEST);
        return err;
    }
    if why.contains("SignatureMismatch") {
        return s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided (aws-chunked chunk signature)."
        );
    }
    S3Error::with_message(S3ErrorCode::IncompleteBody, format!("The request body could not be read in full: {why}"))
}

/// An S3 XML error body, for answers the front gives before or instead of s3s.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
        xml_escape(code),
        xml_escape(message)
    );
    let mut resp = Response::new(s3s::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    resp
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An S3 error whose code s3s does not list, with its status.
pub(crate) fn custom_error(code: &'static str, status: http::StatusCode, message: impl Into<String>) -> S3Error {
    let mut err = S3Error::with_message(S3ErrorCode::Custom(code.into()), message.into());
    err.set_status_code(status);
    err
}
