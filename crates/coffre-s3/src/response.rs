//! Response filling: s3s outputs from the object service's types (versions,
//! checksums, encryption, Object Lock), shared by every feature's handlers.
//!
//! s3s generates one output type per operation; many share field names but
//! no trait, so the fillers of such field groups are macros (`fill_*!`).

use coffre_core::blob::ByteStream;
use coffre_core::checksum::Checksums;
use coffre_core::meta::ContentHeaders;
use coffre_core::service::ObjectHead;
use coffre_core::types::{UnixNanos, VersionId};
use futures::TryStreamExt as _;
use s3s::S3Response;
use s3s::dto::{self, ChecksumType, ETag, Owner, Timestamp};

/// Reports how a version is encrypted in an S3 output.
macro_rules! fill_sse {
    ($out:expr, $sse:expr, $bucket:expr) => {{
        let r = $crate::ops::sse::reported($sse, || format!("coffre:bucket/{}", $bucket));
        $out.server_side_encryption = r.server_side_encryption;
        $out.ssekms_key_id = r.ssekms_key_id;
        $out.sse_customer_algorithm = r.sse_customer_algorithm;
        $out.sse_customer_key_md5 = r.sse_customer_key_md5;
    }};
}
pub(crate) use fill_sse;

/// Copies stored checksums into an S3 output: the generated DTOs share the
/// five field names but no trait, hence a macro.
macro_rules! fill_checksums {
    ($out:expr, $checksums:expr) => {{
        let c: &coffre_core::checksum::Checksums = $checksums;
        $out.checksum_crc32 = c.crc32.clone();
        $out.checksum_crc32c = c.crc32c.clone();
        $out.checksum_crc64nvme = c.crc64nvme.clone();
        $out.checksum_sha1 = c.sha1.clone();
        $out.checksum_sha256 = c.sha256.clone();
    }};
}
pub(crate) use fill_checksums;

/// Sets the Object Lock headers of a GET or HEAD answer.
macro_rules! fill_lock {
    ($out:expr, $meta:expr) => {{
        if let Some(r) = $meta.lock.retention {
            $out.object_lock_mode = Some(s3s::dto::ObjectLockMode::from_static($crate::ops::lock::mode_name(r.mode)));
            $out.object_lock_retain_until_date = Some($crate::response::timestamp(r.until));
        }
        if $meta.lock.legal_hold {
            $out.object_lock_legal_hold_status =
                Some(s3s::dto::ObjectLockLegalHoldStatus::from_static(s3s::dto::ObjectLockLegalHoldStatus::ON));
        }
    }};
}
pub(crate) use fill_lock;

/// Sets the representation headers of a GET or HEAD answer: the stored ones,
/// unless the request overrides them with `response-*` parameters.
macro_rules! fill_representation {
    ($out:expr, $input:expr, $meta:expr) => {{
        let h = &$meta.headers;
        $out.content_type = $input.response_content_type.or_else(|| Some($crate::response::content_type(h)));
        $out.content_encoding = $input.response_content_encoding.or_else(|| h.content_encoding.clone());
        $out.content_disposition = $input.response_content_disposition.or_else(|| h.content_disposition.clone());
        $out.content_language = $input.response_content_language.or_else(|| h.content_language.clone());
        $out.cache_control = $input.response_cache_control.or_else(|| h.cache_control.clone());
        $out.expires = $input.response_expires.or_else(|| $crate::response::expires(h));
    }};
}
pub(crate) use fill_representation;

/// What GET and HEAD answer alike about the version read and the bytes
/// selected (`$head` is the service's `ObjectHead`; `$requested` the version
/// the request named).
macro_rules! fill_object_head {
    ($out:expr, $input:expr, $head:expr, $requested:expr) => {{
        let head: &coffre_core::service::ObjectHead = $head;
        let m = &head.meta;
        $out.accept_ranges = Some("bytes".into());
        $out.content_length = Some((head.range.end - head.range.start) as i64);
        $out.content_range =
            head.partial.then(|| format!("bytes {}-{}/{}", head.range.start, head.range.end.saturating_sub(1), m.size));
        $out.parts_count = head.parts_count.map(|n| n as i32);
        $out.e_tag = Some($crate::response::etag(&m.etag));
        $out.last_modified = Some($crate::response::timestamp(m.last_modified));
        $out.metadata = $crate::response::metadata_out(&m.user_meta);
        $out.version_id = $crate::response::reported_version($requested, head);
        $crate::response::fill_representation!($out, $input, m);
        $crate::response::fill_lock!($out, m);
        $crate::response::fill_sse!($out, &m.sse, $input.bucket);
    }};
}
pub(crate) use fill_object_head;

pub fn owner(id: &str) -> Owner {
    Owner { display_name: Some(id.to_owned()), id: Some(id.to_owned()) }
}

/// The version a GET or HEAD names in `x-amz-version-id`: the one read,
/// unless it is the `null` version of a bucket that never had versioning,
/// read without naming it.
pub fn reported_version(requested: Option<&VersionId>, head: &ObjectHead) -> Option<String> {
    let read = &head.meta.version_id;
    (requested.is_some() || head.versioned || *read != VersionId::Null).then(|| read.as_str().to_owned())
}

pub fn checksum_type(composite: bool, checksums: &Checksums) -> Option<ChecksumType> {
    if checksums.is_empty() {
        return None;
    }
    Some(ChecksumType::from_static(if composite { ChecksumType::COMPOSITE } else { ChecksumType::FULL_OBJECT }))
}

/// The checksum type an upload announces: none without an algorithm.
pub fn upload_checksum_type(upload: &coffre_core::meta::UploadRecord) -> Option<ChecksumType> {
    upload.checksum_algorithm.map(|_| ChecksumType::from(upload.checksum_type.as_str().to_owned()))
}

/// `x-coffre-residency: FR/paris/par-a,FR/lyon/lyo-b`: where the object's
/// replicas are, on every GET and HEAD of a deployment with a topology.
pub fn with_residency<T>(mut response: S3Response<T>, locations: &[String]) -> S3Response<T> {
    if !locations.is_empty()
        && let Ok(value) = http::HeaderValue::from_str(&locations.join(","))
    {
        response.headers.insert("x-coffre-residency", value);
    }
    response
}

pub fn timestamp(t: UnixNanos) -> Timestamp {
    let dt =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(dt)
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

/// S3's answer for objects stored without a Content-Type.
pub fn content_type(h: &ContentHeaders) -> String {
    h.content_type.clone().unwrap_or_else(|| "binary/octet-stream".to_owned())
}

pub fn expires(h: &ContentHeaders) -> Option<Timestamp> {
    h.expires.as_deref().and_then(|s| Timestamp::parse(dto::TimestampFormat::HttpDate, s).ok())
}

pub fn metadata_out(v: &[(String, String)]) -> Option<dto::Metadata> {
    (!v.is_empty()).then(|| v.iter().cloned().collect())
}

/// Turns a service stream into a response body.
pub fn blob(stream: ByteStream) -> s3s::dto::StreamingBlob {
    let sync = sync_wrapper::SyncStream::new(stream.map_err(std::io::Error::other));
    s3s::dto::StreamingBlob::wrap(sync)
}

/// Percent-encodes a key for `encoding-type=url` listings, as S3 does: the
/// unreserved characters and `/` stay readable, every other byte is encoded.
pub fn encode_key(key: &str, url: bool) -> String {
    if !url {
        return key.to_owned();
    }
    key.split('/').map(|segment| urlencoding::encode(segment)).collect::<Vec<_>>().join("/")
}

/// The delimiter a listing echoes: none when the request gave an empty one (as S3).
pub fn echoed_delimiter(delimiter: Option<String>, url: bool) -> Option<String> {
    delimiter.filter(|d| !d.is_empty()).map(|d| encode_key(&d, url))
}
