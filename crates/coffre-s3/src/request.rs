//! Request parsing: s3s inputs (DTO fields and headers) into the object
//! service's types, each value validated here, once, before any handler uses it.
//!
//! s3s generates one input type per operation; many share field names but no
//! trait, so the readers of such field groups are macros (`*_of!`).

use coffre_core::Error;
use coffre_core::blob::ByteStream;
use coffre_core::checksum::{ChecksumAlgorithm, Checksums};
use coffre_core::meta::{ContentHeaders, EtagTest, VersionMatch, WriteCondition};
use coffre_core::service::{ByteRange, CopySource, CustomerKey, ExpectedChecksum, ReadConditions, Selection};
use coffre_core::types::{BucketName, ObjectKey, VersionId};
use futures::TryStreamExt as _;
use http::HeaderMap;
use s3s::dto::{self, ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders, s3_error};

use crate::error::s3_err;
use crate::ops::CoffreS3;

/// The representation headers an S3 input carries (moved out of it).
macro_rules! content_headers_of {
    ($input:expr) => {
        $crate::request::content_headers(
            $input.content_type,
            $input.content_encoding,
            $input.content_disposition,
            $input.content_language,
            $input.cache_control,
            $input.expires,
        )
    };
}
pub(crate) use content_headers_of;

/// The checksums an S3 input carries (moved out of it).
macro_rules! checksums_of {
    ($input:expr) => {
        coffre_core::checksum::Checksums {
            crc32: $input.checksum_crc32,
            crc32c: $input.checksum_crc32c,
            crc64nvme: $input.checksum_crc64nvme,
            sha1: $input.checksum_sha1,
            sha256: $input.checksum_sha256,
        }
    };
}
pub(crate) use checksums_of;

/// The Object Lock an S3 input asks for in its `x-amz-object-lock-*` headers.
macro_rules! lock_of {
    ($input:expr) => {
        $crate::ops::lock::lock_from_headers(
            $input.object_lock_mode.as_ref(),
            $input.object_lock_retain_until_date.as_ref(),
            $input.object_lock_legal_hold_status.as_ref(),
        )
    };
}
pub(crate) use lock_of;

/// The validated SSE-C key of an S3 input (`x-amz-server-side-encryption-customer-*`).
macro_rules! customer_key_of {
    ($self:ident, $input:expr) => {
        $crate::ops::sse::customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )
        .and_then(|key| $self.secure_customer_key(key))
    };
}
pub(crate) use customer_key_of;

/// The source's SSE-C key of a copy (`x-amz-copy-source-server-side-encryption-customer-*`).
macro_rules! copy_source_key_of {
    ($self:ident, $input:expr) => {
        $crate::ops::sse::customer_key(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            $input.copy_source_sse_customer_key.as_deref(),
            $input.copy_source_sse_customer_key_md5.as_deref(),
        )
        .and_then(|key| $self.secure_customer_key(key))
    };
}
pub(crate) use copy_source_key_of;

/// The encryption a write asks for, SSE-C included.
macro_rules! sse_choice_of {
    ($self:ident, $input:expr) => {
        $crate::ops::sse::choice(
            $input.server_side_encryption.as_ref(),
            $input.ssekms_key_id.as_deref(),
            $crate::request::customer_key_of!($self, $input)?,
        )
    };
}
pub(crate) use sse_choice_of;

/// What a GET or HEAD asks for besides the object's name: the range or part,
/// the version, the conditions and the SSE-C key.
macro_rules! object_read_of {
    ($self:ident, $input:expr) => {
        coffre_core::service::ObjectRead {
            selection: $crate::request::selection($input.range, $input.part_number)?,
            version: $crate::request::version($input.version_id.as_deref())?,
            conditions: $crate::request::read_conditions(
                $input.if_match.as_ref(),
                $input.if_none_match.as_ref(),
                $input.if_modified_since.as_ref(),
                $input.if_unmodified_since.as_ref(),
            ),
            customer: $crate::request::customer_key_of!($self, $input)?,
        }
    };
}
pub(crate) use object_read_of;

impl CoffreS3 {
    /// Refuses an SSE-C key that came over plain HTTP, as S3 does.
    pub fn secure_customer_key(&self, key: Option<CustomerKey>) -> S3Result<Option<CustomerKey>> {
        if key.is_some() && !self.customer_keys_allowed {
            return Err(s3_error!(
                InvalidRequest,
                "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure \
                 connection."
            ));
        }
        Ok(key)
    }
}

const MAX_LIST_KEYS: usize = 1000;

pub fn page_size(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_LIST_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_LIST_KEYS)),
    }
}

/// The checksum a request vouches for: a header value, a trailer to read
/// once the body ends, or just an algorithm to compute.
pub fn expected_checksum(
    headers: &HeaderMap,
    trailers: Option<TrailingHeaders>,
    algorithm: Option<&dto::ChecksumAlgorithm>,
    given: Checksums,
) -> S3Result<Option<ExpectedChecksum>> {
    if let Some(alg) = given.algorithms().next() {
        let value = given.get(alg).unwrap_or_default().to_owned();
        return Ok(Some(ExpectedChecksum::Value(alg, value)));
    }
    let trailer = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    if let Some(name) = trailer
        && let Some(alg_name) = name.strip_prefix("x-amz-checksum-")
    {
        let alg = ChecksumAlgorithm::parse(alg_name).map_err(s3_err)?;
        let trailers =
            trailers.ok_or_else(|| s3_error!(InvalidRequest, "x-amz-trailer requires a streaming payload"))?;
        let read =
            move || trailers.read(|h| h.get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::to_owned)).flatten();
        return Ok(Some(ExpectedChecksum::Trailer(alg, Box::new(read))));
    }
    let alg = checksum_algorithm(algorithm)?;
    Ok(alg.map(ExpectedChecksum::Compute))
}

pub fn etag_condition(headers: &HeaderMap, name: http::header::HeaderName) -> S3Result<Option<ETagCondition>> {
    headers
        .get(&name)
        .map(|v| ETagCondition::parse_http_header(v.as_bytes()))
        .transpose()
        .map_err(|_| s3_error!(InvalidArgument, "invalid {name} header"))
}

pub fn content_md5(v: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = v else { return Ok(None) };
    let bytes = base64_simd::STANDARD.decode_to_vec(v).ok();
    let digest = bytes.and_then(|b| <[u8; 16]>::try_from(b).ok());
    digest.map(Some).ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))
}

pub fn content_length(n: Option<i64>) -> S3Result<Option<u64>> {
    n.map(|n| u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "Content-Length must not be negative")))
        .transpose()
}

/// `If-None-Match` and `If-Match` of PutObject and CompleteMultipartUpload,
/// checked against the current version inside the commit.
pub fn write_condition(
    if_none_match: Option<&ETagCondition>,
    if_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    match (if_none_match.map(etag_test), if_match.map(etag_test)) {
        (Some(EtagTest::Any), None) => Ok(WriteCondition::KeyAbsent),
        (Some(EtagTest::Etag(t)), None) => Ok(WriteCondition::EtagDiffers(t)),
        (None, Some(EtagTest::Any)) => Ok(WriteCondition::KeyPresent),
        (None, Some(EtagTest::Etag(t))) => Ok(WriteCondition::EtagMatches(t)),
        (None, None) => Ok(WriteCondition::None),
        (Some(_), Some(_)) => Err(s3_error!(NotImplemented, "If-Match and If-None-Match together on a write")),
    }
}

/// The header a write condition came in, to name when it fails.
pub fn condition_header(cond: &WriteCondition) -> Option<&'static str> {
    match cond {
        WriteCondition::None => None,
        WriteCondition::KeyAbsent | WriteCondition::EtagDiffers(_) => Some("If-None-Match"),
        WriteCondition::KeyPresent | WriteCondition::EtagMatches(_) => Some("If-Match"),
    }
}

/// The headers of the conditions of a delete, to name when one fails.
pub fn delete_condition_headers(m: &VersionMatch) -> Option<&'static str> {
    match (m.etag.is_some(), m.size.is_some(), m.last_modified_secs.is_some()) {
        (false, false, false) => None,
        (true, false, false) => Some("If-Match"),
        (false, true, false) => Some("x-amz-if-match-size"),
        (false, false, true) => Some("x-amz-if-match-last-modified-time"),
        _ => Some("If-Match, x-amz-if-match-size, x-amz-if-match-last-modified-time"),
    }
}

/// An `If-Match`-style value with its quotes taken off.
pub fn etag_test(c: &ETagCondition) -> EtagTest {
    match c {
        ETagCondition::Any => EtagTest::Any,
        ETagCondition::ETag(t) => EtagTest::Etag(t.value().to_owned()),
    }
}

/// The conditions of DeleteObject (and of one key of DeleteObjects).
pub fn delete_match(
    etag: Option<&ETagCondition>,
    size: Option<i64>,
    last_modified: Option<&Timestamp>,
) -> S3Result<VersionMatch> {
    let size = size
        .map(|n| u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "x-amz-if-match-size must not be negative")))
        .transpose()?;
    Ok(VersionMatch { etag: etag.map(etag_test), size, last_modified_secs: last_modified.map(unix_secs) })
}

pub fn copy_source(
    src: &dto::CopySource,
    conditions: ReadConditions,
    customer_key: Option<CustomerKey>,
) -> S3Result<CopySource> {
    let dto::CopySource::Bucket { bucket: name, key: object, version_id } = src else {
        return Err(s3_error!(NotImplemented, "copy sources must name a bucket and key"));
    };
    Ok(CopySource {
        bucket: bucket(name)?,
        key: key(object)?,
        version: version(version_id.as_deref())?,
        conditions,
        customer_key,
    })
}

pub fn part_number(n: Option<i32>) -> S3Result<u32> {
    n.and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=coffre_core::service::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

/// Which bytes a GET or HEAD selects: a `Range` or a `partNumber`, not both.
pub fn selection(range: Option<dto::Range>, part: Option<i32>) -> S3Result<Option<Selection>> {
    match (range, part) {
        (Some(_), Some(_)) => {
            Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"))
        }
        (Some(r), None) => Ok(Some(Selection::Range(self::range(r)))),
        (None, Some(n)) => Ok(Some(Selection::Part(part_number(Some(n))?))),
        (None, None) => Ok(None),
    }
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

fn unix_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
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

pub fn user_meta(m: Option<dto::Metadata>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = m.map(|m| m.into_iter().collect()).unwrap_or_default();
    v.sort();
    v
}

pub fn checksum_algorithm(a: Option<&dto::ChecksumAlgorithm>) -> s3s::S3Result<Option<ChecksumAlgorithm>> {
    a.map(|a| ChecksumAlgorithm::parse(a.as_str())).transpose().map_err(s3_err)
}

pub fn checksum_type(t: Option<&dto::ChecksumType>) -> s3s::S3Result<Option<coffre_core::checksum::ChecksumType>> {
    t.map(|t| coffre_core::checksum::ChecksumType::parse(t.as_str())).transpose().map_err(s3_err)
}

/// Turns the request body into the service's stream type.
pub fn body(blob: Option<s3s::dto::StreamingBlob>) -> ByteStream {
    match blob {
        Some(b) => Box::pin(b.map_err(|e| Error::Body(e.to_string()))),
        None => Box::pin(futures::stream::empty()),
    }
}

pub fn is_url_encoding(e: Option<&dto::EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str().eq_ignore_ascii_case(dto::EncodingType::URL))
}

/// CreateBucket's `x-coffre-residency-policy: allow=FR,DE; replicas=2;
/// distinct-sites=2; operator=op-fr; require-qualification=secnumcloud`: the
/// CLI's flags, as `name=value[,value]` pairs separated by `;`. What it does
/// not name comes from the operator's `[residency]`, which it may only narrow.
pub const RESIDENCY_POLICY_HEADER: &str = "x-coffre-residency-policy";

pub fn residency_policy(value: &http::HeaderValue) -> s3s::S3Result<coffre_topology::PolicyRequest> {
    let invalid =
        |why: String| S3Error::with_message(S3ErrorCode::InvalidArgument, format!("{RESIDENCY_POLICY_HEADER}: {why}"));
    let text = value.to_str().map_err(|_| invalid("not ASCII".into()))?;
    let mut policy = coffre_topology::PolicyRequest::default();
    for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, values) = pair.split_once('=').ok_or_else(|| invalid(format!("{pair:?} is not name=value")))?;
        let list = || values.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
        let count = || values.trim().parse::<u8>().map_err(|_| invalid(format!("{name}: {values:?} is not a count")));
        match name.trim() {
            "allow" => policy.allow = Some(list()),
            "replicas" => policy.replicas = Some(count()?),
            "distinct-sites" => policy.distinct_sites = Some(count()?),
            "operator" => policy.operators = Some(list()),
            "require-qualification" => policy.require_qualifications = list(),
            other => return Err(invalid(format!("unknown field {other:?}"))),
        }
    }
    Ok(policy)
}
