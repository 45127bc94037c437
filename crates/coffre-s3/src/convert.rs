//! Conversions between S3 wire values (s3s DTOs) and the object service's types.

use coffre_core::Error;
use coffre_core::blob::ByteStream;
use coffre_core::checksum::ChecksumAlgorithm;
use coffre_core::meta::ContentHeaders;
use coffre_core::service::{ByteRange, ReadConditions};
use coffre_core::types::{BucketName, ObjectKey, UnixNanos, VersionId};
use futures::TryStreamExt as _;
use s3s::dto::{self, ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, s3_error};

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
        Error::AccessDenied | Error::Locked(_) => C::AccessDenied,
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
        Error::Unavailable(_) => {
            tracing::error!(error = %e, "storage targets unavailable");
            return s3_error!(
                ServiceUnavailable,
                "Storage nodes needed for this request are unavailable. Please try again."
            );
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

pub fn bucket(name: &str) -> s3s::S3Result<BucketName> {
    BucketName::parse(name).map_err(s3_err)
}

pub fn key(key: &str) -> s3s::S3Result<ObjectKey> {
    ObjectKey::parse(key).map_err(s3_err)
}

pub fn version(v: Option<&str>) -> s3s::S3Result<Option<VersionId>> {
    v.map(VersionId::parse).transpose().map_err(|_| s3_error!(InvalidArgument, "Invalid version id specified"))
}

pub fn timestamp(t: UnixNanos) -> Timestamp {
    let dt =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(dt)
}

fn unix_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn condition(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(t) => t.value().to_owned(),
    }
}

pub fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(condition),
        if_none_match: if_none_match.map(condition),
        if_modified_since: if_modified_since.map(unix_secs),
        if_unmodified_since: if_unmodified_since.map(unix_secs),
    }
}

pub fn range(r: dto::Range) -> ByteRange {
    match r {
        dto::Range::Int { first, last } => ByteRange::From { first, last },
        dto::Range::Suffix { length } => ByteRange::Suffix { length },
    }
}

/// Parses `bytes=first-last` as UploadPartCopy's `x-amz-copy-source-range` requires.
pub fn copy_source_range(s: &str) -> s3s::S3Result<ByteRange> {
    let bad = || s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last");
    let spec = s.strip_prefix("bytes=").ok_or_else(bad)?;
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = first.parse().map_err(|_| bad())?;
    let last: u64 = last.parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok(ByteRange::From { first, last: Some(last) })
}

pub fn content_headers(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
) -> ContentHeaders {
    let expires = expires.and_then(|t| {
        let mut buf = Vec::new();
        t.format(dto::TimestampFormat::HttpDate, &mut buf).ok()?;
        String::from_utf8(buf).ok()
    });
    // `aws-chunked` describes the transfer, not the object: S3 does not keep it.
    let content_encoding = content_encoding.and_then(|e| {
        let kept: Vec<&str> =
            e.split(',').map(str::trim).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked")).collect();
        (!kept.is_empty()).then(|| kept.join(","))
    });
    ContentHeaders { content_type, content_encoding, content_disposition, content_language, cache_control, expires }
}

/// S3's answer for objects stored without a Content-Type.
pub fn content_type(h: &ContentHeaders) -> String {
    h.content_type.clone().unwrap_or_else(|| "binary/octet-stream".to_owned())
}

/// S3 caps user metadata (names and values of `x-amz-meta-*`) at 2 KB.
pub const MAX_USER_METADATA: usize = 2048;

pub fn check_user_meta(m: &[(String, String)]) -> s3s::S3Result<()> {
    let size: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size of {MAX_USER_METADATA} bytes ({size} given)"
        ));
    }
    Ok(())
}

pub fn expires(h: &ContentHeaders) -> Option<Timestamp> {
    h.expires.as_deref().and_then(|s| Timestamp::parse(dto::TimestampFormat::HttpDate, s).ok())
}

pub fn user_meta(m: Option<dto::Metadata>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = m.map(|m| m.into_iter().collect()).unwrap_or_default();
    v.sort();
    v
}

pub fn metadata_out(v: &[(String, String)]) -> Option<dto::Metadata> {
    (!v.is_empty()).then(|| v.iter().cloned().collect())
}

pub fn checksum_algorithm(a: Option<&dto::ChecksumAlgorithm>) -> s3s::S3Result<Option<ChecksumAlgorithm>> {
    a.map(|a| ChecksumAlgorithm::parse(a.as_str())).transpose().map_err(s3_err)
}

/// Turns the request body into the service's stream type.
pub fn body(blob: Option<s3s::dto::StreamingBlob>) -> ByteStream {
    match blob {
        Some(b) => Box::pin(b.map_err(|e| Error::Body(e.to_string()))),
        None => Box::pin(futures::stream::empty()),
    }
}

/// Turns a service stream into a response body.
pub fn blob(stream: ByteStream) -> s3s::dto::StreamingBlob {
    let sync = sync_wrapper::SyncStream::new(stream.map_err(std::io::Error::other));
    s3s::dto::StreamingBlob::wrap(sync)
}

/// Percent-encodes a key for `encoding-type=url` listings.
pub fn encode_key(key: &str, url: bool) -> String {
    if url { urlencoding::encode(key).into_owned() } else { key.to_owned() }
}

pub fn is_url_encoding(e: Option<&dto::EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str().eq_ignore_ascii_case(dto::EncodingType::URL))
}

/// CreateBucket's `x-coffre-residency-policy: allow=FR,DE; replicas=2;
/// distinct-sites=2; operator=op-fr; require-qualification=secnumcloud`: the
/// CLI's flags, as `name=value[,value]` pairs separated by `;`.
pub const RESIDENCY_POLICY_HEADER: &str = "x-coffre-residency-policy";

pub fn residency_policy(value: &http::HeaderValue) -> s3s::S3Result<coffre_topology::ResidencyPolicy> {
    let invalid =
        |why: String| S3Error::with_message(S3ErrorCode::InvalidArgument, format!("{RESIDENCY_POLICY_HEADER}: {why}"));
    let text = value.to_str().map_err(|_| invalid("not ASCII".into()))?;
    let mut policy = coffre_topology::ResidencyPolicy::single();
    for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, values) = pair.split_once('=').ok_or_else(|| invalid(format!("{pair:?} is not name=value")))?;
        let list = || values.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
        let count = || values.trim().parse::<u8>().map_err(|_| invalid(format!("{name}: {values:?} is not a count")));
        match name.trim() {
            "allow" => policy.allow = list(),
            "replicas" => policy.replicas = count()?,
            "distinct-sites" => policy.distinct_sites = count()?,
            "operator" => policy.operators = list(),
            "require-qualification" => policy.require_qualifications = list(),
            other => return Err(invalid(format!("unknown field {other:?}"))),
        }
    }
    Ok(policy)
}
