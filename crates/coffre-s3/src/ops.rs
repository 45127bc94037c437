//! The S3 operations Coffre implements, each a thin mapping onto the object
//! service. Anything not listed here answers `NotImplemented` (s3s's default).

use std::sync::Arc;

use async_trait::async_trait;
use coffre_core::checksum::{ChecksumAlgorithm as Algorithm, Checksums};
use coffre_core::list::{ListQuery, VersionQuery};
use coffre_core::lock::Period;
use coffre_core::meta::{BucketChange, DeleteGuard, VersionChange, Versioning, WriteCondition};
use coffre_core::service::{
    BodyClaims, CompletedPart, CopyOptions, CopySource, CustomerKey, ExpectedChecksum, MetadataDirective, NewUpload,
    ObjectRead, ObjectService, PartUpload, PutRequest, ReadConditions, Selection, part_range,
};
use coffre_core::types::{Principal, UploadId};
use http::HeaderMap;
use s3s::TrailingHeaders;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::auth::KeyStore;
use crate::convert::{self, s3_err};
use crate::{sse, worm};

/// The representation headers an S3 input carries (moved out of it).
macro_rules! content_headers_of {
    ($input:expr) => {
        convert::content_headers(
            $input.content_type,
            $input.content_encoding,
            $input.content_disposition,
            $input.content_language,
            $input.cache_control,
            $input.expires,
        )
    };
}

/// The Object Lock an S3 input asks for in its `x-amz-object-lock-*` headers.
macro_rules! lock_of {
    ($input:expr) => {
        worm::lock_from_headers(
            $input.object_lock_mode.as_ref(),
            $input.object_lock_retain_until_date.as_ref(),
            $input.object_lock_legal_hold_status.as_ref(),
        )
    };
}

/// The validated SSE-C key of an S3 input (`x-amz-server-side-encryption-customer-*`).
macro_rules! customer_key_of {
    ($self:ident, $input:expr) => {
        sse::customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )
        .and_then(|key| $self.secure_customer_key(key))
    };
}

/// The source's SSE-C key of a copy (`x-amz-copy-source-server-side-encryption-customer-*`).
macro_rules! copy_source_key_of {
    ($self:ident, $input:expr) => {
        sse::customer_key(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            $input.copy_source_sse_customer_key.as_deref(),
            $input.copy_source_sse_customer_key_md5.as_deref(),
        )
        .and_then(|key| $self.secure_customer_key(key))
    };
}

/// The encryption a write asks for, SSE-C included.
macro_rules! sse_choice_of {
    ($self:ident, $input:expr) => {
        sse::choice(
            $input.server_side_encryption.as_ref(),
            $input.ssekms_key_id.as_deref(),
            customer_key_of!($self, $input)?,
        )
    };
}

/// Reports how a version is encrypted in an S3 output.
macro_rules! fill_sse {
    ($out:expr, $sse:expr, $bucket:expr) => {{
        let r = sse::reported($sse, || format!("coffre:bucket/{}", $bucket));
        $out.server_side_encryption = r.server_side_encryption;
        $out.ssekms_key_id = r.ssekms_key_id;
        $out.sse_customer_algorithm = r.sse_customer_algorithm;
        $out.sse_customer_key_md5 = r.sse_customer_key_md5;
    }};
}

/// Copies stored checksums into an S3 output: the generated DTOs share the
/// five field names but no trait, hence a macro.
macro_rules! fill_checksums {
    ($out:expr, $checksums:expr) => {{
        let c: &Checksums = $checksums;
        $out.checksum_crc32 = c.crc32.clone();
        $out.checksum_crc32c = c.crc32c.clone();
        $out.checksum_crc64nvme = c.crc64nvme.clone();
        $out.checksum_sha1 = c.sha1.clone();
        $out.checksum_sha256 = c.sha256.clone();
    }};
}

/// The checksums an S3 input carries (moved out of it).
macro_rules! checksums_of {
    ($input:expr) => {
        Checksums {
            crc32: $input.checksum_crc32,
            crc32c: $input.checksum_crc32c,
            crc64nvme: $input.checksum_crc64nvme,
            sha1: $input.checksum_sha1,
            sha256: $input.checksum_sha256,
        }
    };
}

/// Sets the Object Lock headers of a GET or HEAD answer.
macro_rules! fill_lock {
    ($out:expr, $meta:expr) => {{
        if let Some(r) = $meta.lock.retention {
            $out.object_lock_mode = Some(ObjectLockMode::from_static(worm::mode_name(r.mode)));
            $out.object_lock_retain_until_date = Some(convert::timestamp(r.until));
        }
        if $meta.lock.legal_hold {
            $out.object_lock_legal_hold_status =
                Some(ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON));
        }
    }};
}

/// Sets the representation headers of a GET or HEAD answer: the stored ones,
/// unless the request overrides them with `response-*` parameters.
macro_rules! fill_representation {
    ($out:expr, $input:expr, $meta:expr) => {{
        let h = &$meta.headers;
        $out.content_type = $input.response_content_type.or_else(|| Some(convert::content_type(h)));
        $out.content_encoding = $input.response_content_encoding.or_else(|| h.content_encoding.clone());
        $out.content_disposition = $input.response_content_disposition.or_else(|| h.content_disposition.clone());
        $out.content_language = $input.response_content_language.or_else(|| h.content_language.clone());
        $out.cache_control = $input.response_cache_control.or_else(|| h.cache_control.clone());
        $out.expires = $input.response_expires.or_else(|| convert::expires(h));
    }};
}

pub struct CoffreS3 {
    pub service: Arc<ObjectService>,
    pub keys: KeyStore,
    pub region: String,
    /// False on a plain-HTTP listener: SSE-C keys would cross the wire in clear.
    pub customer_keys_allowed: bool,
}

const MAX_LIST_KEYS: usize = 1000;

fn page_size(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_LIST_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_LIST_KEYS)),
    }
}

impl CoffreS3 {
    async fn change_version(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        change: VersionChange,
        bypass_governance: bool,
    ) -> S3Result<String> {
        let (bucket, key, version) = (convert::bucket(bucket)?, convert::key(key)?, convert::version(version)?);
        let id = self
            .service
            .change_version(who, &bucket, &key, version.as_ref(), change, bypass_governance)
            .await
            .map_err(s3_err)?;
        Ok(id.as_str().to_owned())
    }

    /// The version whose lock state is asked for, in a bucket with Object Lock.
    async fn locked_version(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> S3Result<coffre_core::meta::ObjectVersion> {
        let (bucket, key, version) = (convert::bucket(bucket)?, convert::key(key)?, convert::version(version)?);
        let record = self.service.bucket(who, &bucket).await.map_err(s3_err)?;
        if record.object_lock.is_none() {
            return Err(s3_err(coffre_core::Error::NoLockConfiguration));
        }
        self.service.object_version(who, &bucket, &key, version.as_ref()).await.map_err(s3_err)
    }

    /// Refuses an SSE-C key that came over plain HTTP, as S3 does.
    fn secure_customer_key(&self, key: Option<CustomerKey>) -> S3Result<Option<CustomerKey>> {
        if key.is_some() && !self.customer_keys_allowed {
            return Err(s3_error!(
                InvalidRequest,
                "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure \
                 connection."
            ));
        }
        Ok(key)
    }

    fn who<T>(&self, req: &S3Request<T>) -> S3Result<Principal> {
        let creds = req.credentials.as_ref().ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
        self.keys.principal(&creds.access_key).ok_or_else(|| s3_error!(InvalidAccessKeyId))
    }
}

/// The checksum a request vouches for: a header value, a trailer to read
/// once the body ends, or just an algorithm to compute.
fn expected_checksum(
    headers: &HeaderMap,
    trailers: Option<TrailingHeaders>,
    algorithm: Option<&ChecksumAlgorithm>,
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
        let alg = Algorithm::parse(alg_name).map_err(s3_err)?;
        let trailers =
            trailers.ok_or_else(|| s3_error!(InvalidRequest, "x-amz-trailer requires a streaming payload"))?;
        let read =
            move || trailers.read(|h| h.get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::to_owned)).flatten();
        return Ok(Some(ExpectedChecksum::Trailer(alg, Box::new(read))));
    }
    let alg = convert::checksum_algorithm(algorithm)?;
    Ok(alg.map(ExpectedChecksum::Compute))
}

fn etag_condition(headers: &HeaderMap, name: http::header::HeaderName) -> S3Result<Option<ETagCondition>> {
    headers
        .get(&name)
        .map(|v| ETagCondition::parse_http_header(v.as_bytes()))
        .transpose()
        .map_err(|_| s3_error!(InvalidArgument, "invalid {name} header"))
}

fn content_md5(v: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = v else { return Ok(None) };
    let bytes = base64_simd::STANDARD.decode_to_vec(v).ok();
    let digest = bytes.and_then(|b| <[u8; 16]>::try_from(b).ok());
    digest.map(Some).ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))
}

fn content_length(n: Option<i64>) -> S3Result<Option<u64>> {
    n.map(|n| u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "Content-Length must not be negative")))
        .transpose()
}

fn write_condition(
    if_none_match: Option<&ETagCondition>,
    if_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    match (if_none_match, if_match) {
        (Some(ETagCondition::Any), None) => Ok(WriteCondition::KeyAbsent),
        (Some(_), _) => Err(s3_error!(NotImplemented, "If-None-Match on writes supports only '*'")),
        (None, Some(ETagCondition::ETag(t))) => Ok(WriteCondition::EtagMatches(t.value().to_owned())),
        (None, Some(ETagCondition::Any)) => Err(s3_error!(NotImplemented, "If-Match: * on writes is not supported")),
        (None, None) => Ok(WriteCondition::None),
    }
}

fn copy_source(
    src: &CopySource_,
    conditions: ReadConditions,
    customer_key: Option<coffre_core::service::CustomerKey>,
) -> S3Result<CopySource> {
    let (bucket, key, version_id) = match src {
        s3s::dto::CopySource::Bucket { bucket, key, version_id } => (bucket, key, version_id),
        _ => return Err(s3_error!(NotImplemented, "copy sources must name a bucket and key")),
    };
    Ok(CopySource {
        bucket: convert::bucket(bucket)?,
        key: convert::key(key)?,
        version: convert::version(version_id.as_deref())?,
        conditions,
        customer_key,
    })
}

type CopySource_ = s3s::dto::CopySource;

fn owner(id: &str) -> Owner {
    Owner { display_name: Some(id.to_owned()), id: Some(id.to_owned()) }
}

#[async_trait]
impl S3 for CoffreS3 {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let who = self.who(&req)?;
        let name = convert::bucket(&req.input.bucket)?;
        if let Some(loc) = req.input.create_bucket_configuration.as_ref().and_then(|c| c.location_constraint.as_ref())
            && loc.as_str() != self.region
        {
            return Err(s3_error!(
                InvalidLocationConstraint,
                "The specified location-constraint is not valid: this server's region is {}",
                self.region
            ));
        }
        let object_lock = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
        let residency = match req.headers.get(convert::RESIDENCY_POLICY_HEADER) {
            Some(value) => Some(convert::residency_policy(value)?),
            None => None,
        };
        self.service.create_bucket_with(&who, name.clone(), object_lock, residency).await.map_err(s3_err)?;
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        let who = self.who(&req)?;
        self.service.bucket(&who, &convert::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let who = self.who(&req)?;
        self.service.bucket(&who, &convert::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        // us-east-1 is spelled as an empty constraint, as AWS does.
        let location = (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
    }

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let who = self.who(&req)?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let buckets = self.service.list_buckets(&who).await.map_err(s3_err)?;
        let buckets = buckets
            .into_iter()
            .filter(|b| b.name.as_str().starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name.to_string()),
                creation_date: Some(convert::timestamp(b.created)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(who.access_key.as_str())),
            prefix: req.input.prefix,
            continuation_token: None,
        }))
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let config = sse::bucket_default(input.server_side_encryption_configuration)?;
        let change = BucketChange::Encryption(Some(config));
        self.service.change_bucket(&who, &convert::bucket(&input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let who = self.who(&req)?;
        let record = self.service.bucket(&who, &convert::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(sse::bucket_config(record.encryption.as_ref())),
        }))
    }

    /// Back to the default (SSE-S3): the data stays encrypted either way.
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let who = self.who(&req)?;
        let change = BucketChange::Encryption(None);
        self.service.change_bucket(&who, &convert::bucket(&req.input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        let who = self.who(&req)?;
        self.service.delete_bucket(&who, &convert::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &convert::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        // A bucket that never had versioning answers an empty configuration.
        let status = match bucket.versioning {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
        };
        Ok(S3Response::new(GetBucketVersioningOutput { status, ..Default::default() }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        if input.versioning_configuration.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let versioning = match input.versioning_configuration.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => return Err(s3_error!(MalformedXML, "The versioning Status must be Enabled or Suspended")),
        };
        let bucket = convert::bucket(&input.bucket)?;
        self.service.change_bucket(&who, &bucket, BucketChange::Versioning(versioning)).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        let query = VersionQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            key_marker: input.key_marker.clone().filter(|k| !k.is_empty()),
            version_marker: convert::version(input.version_id_marker.as_deref().filter(|v| !v.is_empty()))?,
            max_keys: page_size(input.max_keys)?,
        };
        let page = self.service.list_versions(&who, &bucket, &query).await.map_err(s3_err)?;
        let url = convert::is_url_encoding(input.encoding_type.as_ref());
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for v in &page.versions {
            let key = Some(convert::encode_key(v.key.as_str(), url));
            let version_id = Some(v.meta.version_id.as_str().to_owned());
            let last_modified = Some(convert::timestamp(v.meta.last_modified));
            let owner = Some(owner(v.meta.owner.as_str()));
            if v.meta.delete_marker {
                markers.push(DeleteMarkerEntry { key, version_id, last_modified, owner, is_latest: Some(v.is_latest) });
            } else {
                versions.push(ObjectVersion {
                    key,
                    version_id,
                    last_modified,
                    owner,
                    is_latest: Some(v.is_latest),
                    e_tag: Some(convert::etag(&v.meta.etag)),
                    size: Some(v.meta.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    ..Default::default()
                });
            }
        }
        let order = crate::front::VersionOrder(page.versions.iter().map(|v| v.meta.delete_marker).collect());
        let mut resp = S3Response::new(ListObjectVersionsOutput {
            name: Some(bucket.to_string()),
            prefix: Some(convert::encode_key(&query.prefix, url)),
            delimiter: input.delimiter.map(|d| convert::encode_key(&d, url)),
            key_marker: input.key_marker,
            version_id_marker: input.version_id_marker,
            max_keys: Some(query.max_keys as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker: page.next_key_marker.map(|k| convert::encode_key(&k, url)),
            next_version_id_marker: page.next_version_marker.map(|v| v.as_str().to_owned()),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                page.common_prefixes
                    .iter()
                    .map(|p| CommonPrefix { prefix: Some(convert::encode_key(p, url)) })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        });
        resp.extensions.insert(order);
        Ok(resp)
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let change = VersionChange::Tags(worm::tags_from_dto(input.tagging.tag_set)?);
        let id =
            self.change_version(&who, &input.bucket, &input.key, input.version_id.as_deref(), change, false).await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id: Some(id) }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let version = convert::version(input.version_id.as_deref())?;
        let (bucket, key) = (convert::bucket(&input.bucket)?, convert::key(&input.key)?);
        let object = self.service.object_version(&who, &bucket, &key, version.as_ref()).await.map_err(s3_err)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: worm::tags_to_dto(&object.meta.tags),
            version_id: Some(object.meta.version_id.as_str().to_owned()),
        }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let change = VersionChange::Tags(Vec::new());
        let id =
            self.change_version(&who, &input.bucket, &input.key, input.version_id.as_deref(), change, false).await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput { version_id: Some(id) }))
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let change = BucketChange::Tags(worm::tags_from_dto(input.tagging.tag_set)?);
        self.service.change_bucket(&who, &convert::bucket(&input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketTaggingOutput {}))
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &convert::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        if bucket.tags.is_empty() {
            return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
        }
        Ok(S3Response::new(GetBucketTaggingOutput { tag_set: worm::tags_to_dto(&bucket.tags) }))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let who = self.who(&req)?;
        let bucket = convert::bucket(&req.input.bucket)?;
        self.service.change_bucket(&who, &bucket, BucketChange::Tags(Vec::new())).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketTaggingOutput {}))
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        let record = self.service.bucket(&who, &bucket).await.map_err(s3_err)?;
        if record.object_lock.is_none() {
            return Err(s3_error!(
                InvalidBucketState,
                "Object Lock configuration cannot be enabled on existing buckets: create the bucket with Object Lock"
            ));
        }
        let default = worm::default_retention_from_dto(input.object_lock_configuration)?;
        self.service.change_bucket(&who, &bucket, BucketChange::DefaultRetention(default)).await.map_err(s3_err)?;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &convert::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let Some(config) = bucket.object_lock else {
            return Err(s3_error!(
                ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket"
            ));
        };
        let rule = config.default_retention.map(|d| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from_static(worm::mode_name(d.mode))),
                days: match d.period {
                    Period::Days(n) => Some(n as i32),
                    Period::Years(_) => None,
                },
                years: match d.period {
                    Period::Years(n) => Some(n as i32),
                    Period::Days(_) => None,
                },
            }),
        });
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
                rule,
            }),
        }))
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let change = VersionChange::Retention(worm::retention_from_dto(input.retention)?);
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        self.change_version(&who, &input.bucket, &input.key, input.version_id.as_deref(), change, bypass).await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let object = self.locked_version(&who, &input.bucket, &input.key, input.version_id.as_deref()).await?;
        let Some(r) = object.meta.lock.retention else {
            return Err(s3_error!(
                NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration"
            ));
        };
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from_static(worm::mode_name(r.mode))),
                retain_until_date: Some(convert::timestamp(r.until)),
            }),
        }))
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let on = match input.legal_hold.and_then(|h| h.status).as_ref().map(ObjectLockLegalHoldStatus::as_str) {
            Some(ObjectLockLegalHoldStatus::ON) => true,
            Some(ObjectLockLegalHoldStatus::OFF) => false,
            _ => return Err(s3_error!(MalformedXML, "LegalHold Status must be ON or OFF")),
        };
        let change = VersionChange::LegalHold(on);
        self.change_version(&who, &input.bucket, &input.key, input.version_id.as_deref(), change, false).await?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let object = self.locked_version(&who, &input.bucket, &input.key, input.version_id.as_deref()).await?;
        let status =
            if object.meta.lock.legal_hold { ObjectLockLegalHoldStatus::ON } else { ObjectLockLegalHoldStatus::OFF };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) }),
        }))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let config = crate::lifecycle::config_from_dto(input.lifecycle_configuration)?;
        let change = BucketChange::Lifecycle(Some(config));
        self.service.change_bucket(&who, &convert::bucket(&input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &convert::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let Some(config) = bucket.lifecycle else {
            return Err(s3_error!(NoSuchLifecycleConfiguration, "The lifecycle configuration does not exist"));
        };
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(crate::lifecycle::config_to_dto(&config)),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let who = self.who(&req)?;
        let bucket = convert::bucket(&req.input.bucket)?;
        self.service.change_bucket(&who, &bucket, BucketChange::Lifecycle(None)).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let who = self.who(&req)?;
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let input = req.input;
        let given = checksums_of!(input);
        let user_meta = convert::user_meta(input.metadata);
        convert::check_user_meta(&user_meta)?;
        let put = PutRequest {
            bucket: convert::bucket(&input.bucket)?,
            key: convert::key(&input.key)?,
            headers: content_headers_of!(input),
            user_meta,
            condition: write_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?,
            claims: BodyClaims {
                content_length: content_length(input.content_length)?,
                content_md5: content_md5(input.content_md5.as_deref())?,
                checksum: expected_checksum(&headers, trailers, input.checksum_algorithm.as_ref(), given)?,
            },
            tags: worm::tags_from_header(input.tagging.as_deref())?,
            lock: lock_of!(input)?,
            sse: sse_choice_of!(self, input)?,
        };
        let done = self.service.put_object(&who, put, convert::body(input.body)).await.map_err(s3_err)?;
        let mut out = PutObjectOutput {
            e_tag: Some(convert::etag(&done.etag)),
            version_id: done.version_id.as_ref().map(|v| v.as_str().to_owned()),
            ..Default::default()
        };
        fill_sse!(out, &done.sse, input.bucket);
        fill_checksums!(out, &done.checksums);
        if !done.checksums.is_empty() {
            out.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        }
        Ok(S3Response::new(out))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let selection = match (input.range, input.part_number) {
            (Some(_), Some(_)) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Cannot specify both Range header and partNumber query parameter"
                ));
            }
            (Some(r), None) => Some(Selection::Range(convert::range(r))),
            (None, Some(n)) => Some(Selection::Part(part_number(Some(n))?)),
            (None, None) => None,
        };
        let bucket = convert::bucket(&input.bucket)?;
        let key = convert::key(&input.key)?;
        let version = convert::version(input.version_id.as_deref())?;
        let conditions = convert::read_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let read =
            ObjectRead { version: version.clone(), conditions, selection, customer: customer_key_of!(self, input)? };
        let got = self.service.get_object(&who, &bucket, &key, read).await.map_err(s3_err)?;
        let m = &got.meta;
        let mut out = GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some((got.range.end - got.range.start) as i64),
            content_range: got
                .partial
                .then(|| format!("bytes {}-{}/{}", got.range.start, got.range.end.saturating_sub(1), m.size)),
            e_tag: Some(convert::etag(&m.etag)),
            last_modified: Some(convert::timestamp(m.last_modified)),
            metadata: convert::metadata_out(&m.user_meta),
            version_id: reported_version(version.as_ref(), &m.version_id),
            parts_count: got.parts_count.map(|n| n as i32),
            ..Default::default()
        };
        fill_representation!(out, input, m);
        fill_lock!(out, m);
        fill_sse!(out, &m.sse, input.bucket);
        out.tag_count = (!m.tags.is_empty()).then_some(m.tags.len() as i32);
        if input.checksum_mode.is_some() && !got.partial {
            fill_checksums!(out, &m.checksums);
            out.checksum_type = checksum_type(m.checksum_composite, &m.checksums);
        }
        out.body = Some(convert::blob(got.body));
        Ok(with_residency(S3Response::new(out), &got.locations))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        let key = convert::key(&input.key)?;
        let version = convert::version(input.version_id.as_deref())?;
        let conditions = convert::read_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let customer = customer_key_of!(self, input)?;
        let object =
            self.service.head_object(&who, &bucket, &key, version.as_ref(), customer.as_ref()).await.map_err(s3_err)?;
        let m = &object.meta;
        conditions.check(m).map_err(s3_err)?;
        let (range, parts_count) = match (input.range, input.part_number) {
            (Some(_), Some(_)) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Cannot specify both Range header and partNumber query parameter"
                ));
            }
            (Some(r), None) => (Some(convert::range(r).resolve(m.size).map_err(s3_err)?), None),
            (None, Some(n)) => {
                let (range, count) = part_range(&object.data, m.size, part_number(Some(n))?).map_err(s3_err)?;
                (Some(range), Some(count as i32))
            }
            (None, None) => (None, None),
        };
        let (length, content_range) = match range {
            Some(r) => (r.end - r.start, Some(format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), m.size))),
            None => (m.size, None),
        };
        let mut out = HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(length as i64),
            content_range,
            parts_count,
            e_tag: Some(convert::etag(&m.etag)),
            last_modified: Some(convert::timestamp(m.last_modified)),
            metadata: convert::metadata_out(&m.user_meta),
            version_id: reported_version(version.as_ref(), &m.version_id),
            ..Default::default()
        };
        fill_representation!(out, input, m);
        fill_lock!(out, m);
        fill_sse!(out, &m.sse, input.bucket);
        if input.checksum_mode.is_some() {
            fill_checksums!(out, &m.checksums);
            out.checksum_type = checksum_type(m.checksum_composite, &m.checksums);
        }
        let mut resp = S3Response::new(out);
        // s3s 0.14's HeadObject output has no TagCount field; S3 sends the header.
        if !m.tags.is_empty() {
            resp.headers.insert("x-amz-tagging-count", http::HeaderValue::from(m.tags.len()));
        }
        let locations = self.service.locations(&object.data).await.map_err(s3_err)?;
        Ok(with_residency(resp, &locations))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        let key = convert::key(&input.key)?;
        let version = convert::version(input.version_id.as_deref())?;
        let guard = DeleteGuard {
            bypass_governance: input.bypass_governance_retention.unwrap_or(false),
            if_match: match input.if_match {
                Some(ETagCondition::ETag(t)) => Some(t.value().to_owned()),
                Some(ETagCondition::Any) => {
                    return Err(s3_error!(NotImplemented, "If-Match: * on DELETE is not supported"));
                }
                None => None,
            },
        };
        let done = self.service.delete_object(&who, &bucket, &key, version.as_ref(), &guard).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: done.delete_marker.then_some(true),
            version_id: done.version_id.map(|v| v.as_str().to_owned()),
            ..Default::default()
        }))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        self.service.bucket(&who, &bucket).await.map_err(s3_err)?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "DeleteObjects accepts at most 1000 keys"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let guard =
            DeleteGuard { bypass_governance: input.bypass_governance_retention.unwrap_or(false), if_match: None };
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            let outcome = async {
                let key = convert::key(&obj.key)?;
                let version = convert::version(obj.version_id.as_deref())?;
                self.service.delete_object(&who, &bucket, &key, version.as_ref(), &guard).await.map_err(s3_err)
            }
            .await;
            match outcome {
                Ok(done) if !quiet => deleted.push(DeletedObject {
                    key: Some(obj.key),
                    version_id: obj.version_id,
                    delete_marker: done.delete_marker.then_some(true),
                    delete_marker_version_id: done
                        .delete_marker
                        .then(|| done.version_id.map(|v| v.as_str().to_owned()))
                        .flatten(),
                }),
                Ok(_) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    key: Some(obj.key),
                    version_id: obj.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let who = self.who(&req)?;
        // s3s 0.14's model predates conditional CopyObject: read the headers ourselves.
        let condition = write_condition(
            etag_condition(&req.headers, http::header::IF_NONE_MATCH)?.as_ref(),
            etag_condition(&req.headers, http::header::IF_MATCH)?.as_ref(),
        )?;
        let input = req.input;
        let conditions = convert::read_conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let source = copy_source(&input.copy_source, conditions, copy_source_key_of!(self, input)?)?;
        let source_version = source.version.clone();
        let directive = match input.metadata_directive.as_ref().map(MetadataDirective_::as_str) {
            None | Some(MetadataDirective_::COPY) => MetadataDirective::Copy,
            Some(MetadataDirective_::REPLACE) => MetadataDirective::Replace {
                headers: content_headers_of!(input),
                user_meta: {
                    let m = convert::user_meta(input.metadata);
                    convert::check_user_meta(&m)?;
                    m
                },
            },
            Some(other) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive {other:?}")),
        };
        let tags = match input.tagging_directive.as_ref().map(TaggingDirective::as_str) {
            None | Some(TaggingDirective::COPY) => None,
            Some(TaggingDirective::REPLACE) => Some(worm::tags_from_header(input.tagging.as_deref())?),
            Some(other) => return Err(s3_error!(InvalidArgument, "Unknown tagging directive {other:?}")),
        };
        let lock = lock_of!(input)?;
        let opts = CopyOptions { metadata: directive, tags, lock, condition, sse: sse_choice_of!(self, input)? };
        let bucket = convert::bucket(&input.bucket)?;
        let key = convert::key(&input.key)?;
        let done = self.service.copy_object(&who, source, &bucket, &key, opts).await.map_err(s3_err)?;
        let mut result = CopyObjectResult {
            e_tag: Some(convert::etag(&done.etag)),
            last_modified: Some(convert::timestamp(done.last_modified)),
            ..Default::default()
        };
        fill_checksums!(result, &done.checksums);
        let mut out = CopyObjectOutput {
            copy_object_result: Some(result),
            copy_source_version_id: source_version.map(|v| v.as_str().to_owned()),
            version_id: done.version_id.as_ref().map(|v| v.as_str().to_owned()),
            ..Default::default()
        };
        fill_sse!(out, &done.sse, input.bucket);
        Ok(S3Response::new(out))
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let v2 = req.map_input(|i| ListObjectsV2Input {
            bucket: i.bucket,
            delimiter: i.delimiter,
            encoding_type: i.encoding_type,
            max_keys: i.max_keys,
            prefix: i.prefix,
            start_after: i.marker,
            ..Default::default()
        });
        let marker = v2.input.start_after.clone();
        let out = self.list_objects_v2(v2).await?.output;
        // V1 gives a NextMarker only when a delimiter is used; clients use the last key otherwise.
        let next_marker = match &out.next_continuation_token {
            Some(token) if out.delimiter.is_some() => Some(decode_token(token)?),
            _ => None,
        };
        Ok(S3Response::new(ListObjectsOutput {
            name: out.name,
            prefix: out.prefix,
            marker,
            max_keys: out.max_keys,
            is_truncated: out.is_truncated,
            contents: out.contents,
            common_prefixes: out.common_prefixes,
            delimiter: out.delimiter,
            next_marker: next_marker
                .map(|m| convert::encode_key(&m, convert::is_url_encoding(out.encoding_type.as_ref()))),
            encoding_type: out.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        let after = match &input.continuation_token {
            Some(token) => Some(decode_token(token)?),
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            after,
            max_keys: page_size(input.max_keys)?,
        };
        let page = self.service.list_objects(&who, &bucket, &query).await.map_err(s3_err)?;
        let url = convert::is_url_encoding(input.encoding_type.as_ref());
        let fetch_owner = input.fetch_owner.unwrap_or(false);
        let contents: Vec<Object> = page
            .objects
            .iter()
            .map(|o| Object {
                key: Some(convert::encode_key(o.key.as_str(), url)),
                size: Some(o.meta.size as i64),
                e_tag: Some(convert::etag(&o.meta.etag)),
                last_modified: Some(convert::timestamp(o.meta.last_modified)),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                owner: fetch_owner.then(|| owner(o.meta.owner.as_str())),
                checksum_algorithm: o
                    .meta
                    .checksums
                    .algorithms()
                    .next()
                    .map(|a| vec![ChecksumAlgorithm::from(a.as_str().to_owned())]),
                ..Default::default()
            })
            .collect();
        let common_prefixes: Vec<CommonPrefix> =
            page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(convert::encode_key(p, url)) }).collect();
        let key_count = (contents.len() + common_prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(bucket.to_string()),
            prefix: Some(convert::encode_key(&query.prefix, url)),
            delimiter: input.delimiter.map(|d| convert::encode_key(&d, url)),
            max_keys: Some(query.max_keys as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.is_truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: page.is_truncated.then(|| page.last.as_deref().map(encode_token)).flatten(),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            start_after: input.start_after.map(|s| convert::encode_key(&s, url)),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        let key = convert::key(&input.key)?;
        let algorithm = convert::checksum_algorithm(input.checksum_algorithm.as_ref())?;
        if input.checksum_type.as_ref().is_some_and(|t| t.as_str() == ChecksumType::FULL_OBJECT) {
            return Err(s3_error!(NotImplemented, "FULL_OBJECT multipart checksums are not supported yet"));
        }
        let headers = content_headers_of!(input);
        let user_meta = convert::user_meta(input.metadata);
        convert::check_user_meta(&user_meta)?;
        let tags = worm::tags_from_header(input.tagging.as_deref())?;
        let lock = lock_of!(input)?;
        let sse = sse_choice_of!(self, input)?;
        let new = NewUpload { bucket, key, headers, user_meta, checksum_algorithm: algorithm, tags, lock, sse };
        let upload = self.service.create_upload(&who, new).await.map_err(s3_err)?;
        let mut out = CreateMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key),
            upload_id: Some(upload.upload_id.as_str().to_owned()),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: algorithm.map(|_| ChecksumType::from_static(ChecksumType::COMPOSITE)),
            ..Default::default()
        };
        fill_sse!(out, &upload.sse, input.bucket);
        Ok(S3Response::new(out))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let who = self.who(&req)?;
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let input = req.input;
        let part = PartUpload {
            bucket: convert::bucket(&input.bucket)?,
            key: convert::key(&input.key)?,
            upload_id: UploadId::parse(&input.upload_id).map_err(s3_err)?,
            part_number: part_number(Some(input.part_number))?,
            customer_key: customer_key_of!(self, input)?,
        };
        let given = checksums_of!(input);
        let claims = BodyClaims {
            content_length: content_length(input.content_length)?,
            content_md5: content_md5(input.content_md5.as_deref())?,
            checksum: expected_checksum(&headers, trailers, input.checksum_algorithm.as_ref(), given)?,
        };
        let done = self.service.upload_part(&who, part, claims, convert::body(input.body)).await.map_err(s3_err)?;
        let mut out = UploadPartOutput { e_tag: Some(convert::etag(&done.etag)), ..Default::default() };
        fill_checksums!(out, &done.checksums);
        fill_sse!(out, &done.sse, input.bucket);
        Ok(S3Response::new(out))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let conditions = convert::read_conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let source = copy_source(&input.copy_source, conditions, copy_source_key_of!(self, input)?)?;
        let source_version = source.version.clone();
        let range = input.copy_source_range.as_deref().map(convert::copy_source_range).transpose()?;
        let part = PartUpload {
            bucket: convert::bucket(&input.bucket)?,
            key: convert::key(&input.key)?,
            upload_id: UploadId::parse(&input.upload_id).map_err(s3_err)?,
            part_number: part_number(Some(input.part_number))?,
            customer_key: customer_key_of!(self, input)?,
        };
        let done = self.service.upload_part_copy(&who, part, source, range).await.map_err(s3_err)?;
        let mut result = CopyPartResult {
            e_tag: Some(convert::etag(&done.etag)),
            last_modified: Some(convert::timestamp(done.last_modified)),
            ..Default::default()
        };
        fill_checksums!(result, &done.checksums);
        let mut out = UploadPartCopyOutput {
            copy_part_result: Some(result),
            copy_source_version_id: source_version.map(|v| v.as_str().to_owned()),
            ..Default::default()
        };
        fill_sse!(out, &done.sse, input.bucket);
        Ok(S3Response::new(out))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        let key = convert::key(&input.key)?;
        let upload_id = UploadId::parse(&input.upload_id).map_err(s3_err)?;
        let condition = write_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?;
        let parts = input.multipart_upload.and_then(|m| m.parts).ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        })?;
        let mut requested = Vec::with_capacity(parts.len());
        for p in parts {
            let number = p.part_number.ok_or_else(|| s3_error!(MalformedXML, "every Part needs a PartNumber"))?;
            let etag = p.e_tag.ok_or_else(|| s3_error!(MalformedXML, "every Part needs an ETag"))?;
            requested.push(CompletedPart {
                number: part_number(Some(number))?,
                etag: etag.value().to_owned(),
                checksums: checksums_of!(p),
            });
        }
        let done = self
            .service
            .complete_upload(&who, &bucket, &key, &upload_id, requested, condition)
            .await
            .map_err(s3_err)?;
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(convert::etag(&done.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: done.version_id.as_ref().map(|v| v.as_str().to_owned()),
            checksum_type: (!done.checksums.is_empty()).then(|| ChecksumType::from_static(ChecksumType::COMPOSITE)),
            ..Default::default()
        };
        fill_checksums!(out, &done.checksums);
        let r = sse::reported(&done.sse, || format!("coffre:bucket/{}", input.bucket));
        out.server_side_encryption = r.server_side_encryption;
        out.ssekms_key_id = r.ssekms_key_id;
        Ok(S3Response::new(out))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let upload_id = UploadId::parse(&input.upload_id).map_err(s3_err)?;
        self.service
            .abort_upload(&who, &convert::bucket(&input.bucket)?, &convert::key(&input.key)?, &upload_id)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let upload_id = UploadId::parse(&input.upload_id).map_err(s3_err)?;
        let max = page_size(input.max_parts)?;
        let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
        let (upload, parts, truncated) = self
            .service
            .list_parts(&who, &convert::bucket(&input.bucket)?, &convert::key(&input.key)?, &upload_id, marker, max)
            .await
            .map_err(s3_err)?;
        let next = parts.last().map(|p| p.number as i32);
        let parts = parts
            .into_iter()
            .map(|p| {
                let mut part = Part {
                    part_number: Some(p.number as i32),
                    e_tag: Some(convert::etag(&coffre_core::checksum::hex(&p.md5))),
                    size: Some(p.size as i64),
                    last_modified: Some(convert::timestamp(p.last_modified)),
                    ..Default::default()
                };
                fill_checksums!(part, &p.checksums);
                part
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            parts: Some(parts),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            owner: Some(owner(upload.owner.as_str())),
            initiator: Some(Initiator {
                id: Some(upload.owner.to_string()),
                display_name: Some(upload.owner.to_string()),
            }),
            checksum_algorithm: upload.checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = convert::bucket(&input.bucket)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = page_size(input.max_uploads)?;
        let upload_marker = input.upload_id_marker.as_deref().map(UploadId::parse).transpose().map_err(s3_err)?;
        let after = input.key_marker.as_deref().map(|k| (k, upload_marker.as_ref()));
        let listing = self
            .service
            .list_uploads(&who, &bucket, &prefix, input.delimiter.as_deref(), after, max)
            .await
            .map_err(s3_err)?;
        let url = convert::is_url_encoding(input.encoding_type.as_ref());
        let last = listing.uploads.last().map(|u| (u.key.to_string(), u.upload_id.as_str().to_owned()));
        let uploads = listing
            .uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(convert::encode_key(u.key.as_str(), url)),
                upload_id: Some(u.upload_id.as_str().to_owned()),
                initiated: Some(convert::timestamp(u.initiated)),
                owner: Some(owner(u.owner.as_str())),
                initiator: Some(Initiator { id: Some(u.owner.to_string()), display_name: Some(u.owner.to_string()) }),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                checksum_algorithm: u.checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(listing.is_truncated),
            next_key_marker: listing.is_truncated.then(|| last.as_ref().map(|l| l.0.clone())).flatten(),
            next_upload_id_marker: listing.is_truncated.then(|| last.map(|l| l.1)).flatten(),
            uploads: Some(uploads),
            common_prefixes: Some(
                listing.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

type MetadataDirective_ = s3s::dto::MetadataDirective;

/// The version a GET or HEAD names in `x-amz-version-id`: the one read,
/// unless it is the `null` version of a read that named none.
fn reported_version(
    requested: Option<&coffre_core::types::VersionId>,
    read: &coffre_core::types::VersionId,
) -> Option<String> {
    match (requested, read) {
        (None, coffre_core::types::VersionId::Null) => None,
        _ => Some(read.as_str().to_owned()),
    }
}

fn part_number(n: Option<i32>) -> S3Result<u32> {
    n.and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=coffre_core::service::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

fn checksum_type(composite: bool, checksums: &Checksums) -> Option<ChecksumType> {
    if checksums.is_empty() {
        return None;
    }
    Some(ChecksumType::from_static(if composite { ChecksumType::COMPOSITE } else { ChecksumType::FULL_OBJECT }))
}

/// Continuation tokens are opaque to clients: the resume key, base64url.
fn encode_token(last: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(last.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

/// `x-coffre-residency: FR/paris/par-a,FR/lyon/lyo-b`: where the object's
/// replicas are, on every GET and HEAD of a deployment with a topology.
fn with_residency<T>(mut response: S3Response<T>, locations: &[String]) -> S3Response<T> {
    if !locations.is_empty()
        && let Ok(value) = http::HeaderValue::from_str(&locations.join(","))
    {
        response.headers.insert("x-coffre-residency", value);
    }
    response
}
