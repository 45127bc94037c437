//! The object service: S3 object semantics on top of a metadata engine and a
//! blob store, independent of HTTP.
//!
//! Write path: bytes go to a fresh blob (registered as pending first), the blob
//! is made durable, and only then does one metadata transaction make the new
//! version visible. A crash before that commit leaves a pending blob that the
//! next start collects; readers never see a half-written object.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::blob::{BlobStore, ByteStream, Placement};
use crate::checksum::{BodyDigest, ChecksumAlgorithm, Checksums, hex};
use crate::error::{Error, Result};
use crate::list::{self, ListPage, ListQuery};
use crate::lock::{LockState, MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, check_tags};
use crate::meta::{
    BucketChange, BucketKek, BucketRecord, BucketUsage, ContentHeaders, DataLocation, DeleteGuard, DeleteOutcome,
    MetaStore, ObjectVersion, PutObject, Sse, VersionChange, VersionMeta, Versioning, WriteCondition,
};
use crate::types::{BucketName, ObjectKey, Principal, UnixNanos, VersionId};
use crate::witness::{Change, ChangeWitness};

/// The largest single PUT, part, or copy S3 accepts.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Every part but the last must be at least this large.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Objects up to this size live in the metadata record, not in a blob.
    pub inline_threshold: usize,
    /// How long a replaced blob stays readable for GETs already under way.
    pub gc_grace: Duration,
    /// Rows one ListObjects request reads before its page ends truncated.
    pub list_max_rows: usize,
    /// New buckets start with all four Block Public Access settings on.
    pub block_public_access_by_default: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            inline_threshold: 4096,
            gc_grace: Duration::from_secs(60),
            list_max_rows: list::DEFAULT_MAX_SCAN,
            block_public_access_by_default: true,
        }
    }
}

/// A checksum the client vouches for, known up front or sent as a trailer.
pub enum ExpectedChecksum {
    Value(ChecksumAlgorithm, String),
    /// Read once the body has ended (aws-chunked trailers).
    Trailer(ChecksumAlgorithm, Box<dyn FnOnce() -> Option<String> + Send>),
    /// Compute and store, nothing to verify.
    Compute(ChecksumAlgorithm),
}

impl ExpectedChecksum {
    fn algorithm(&self) -> ChecksumAlgorithm {
        match self {
            Self::Value(a, _) | Self::Trailer(a, _) | Self::Compute(a) => *a,
        }
    }
}

/// What the client said about the body it sends.
#[derive(Default)]
pub struct BodyClaims {
    pub content_length: Option<u64>,
    pub content_md5: Option<[u8; 16]>,
    pub checksum: Option<ExpectedChecksum>,
}

pub struct PutRequest {
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub headers: ContentHeaders,
    pub user_meta: Vec<(String, String)>,
    pub condition: WriteCondition,
    pub claims: BodyClaims,
    pub tags: Vec<(String, String)>,
    /// Object Lock asked for by the request; the bucket default fills gaps.
    pub lock: Option<LockState>,
    /// Encryption asked for by the request; the bucket default fills the gap.
    pub sse: Option<SseChoice>,
}

#[derive(Debug, Clone)]
pub struct PutResult {
    pub etag: String,
    pub sse: Sse,
    /// `None` for the `null` version (versioning never enabled, or
    /// suspended): S3 then names no version in a write's answer.
    pub version_id: Option<VersionId>,
    pub checksums: Checksums,
    /// The checksum is `COMPOSITE` (`-N`), not of the whole object.
    pub checksum_composite: bool,
    pub last_modified: UnixNanos,
}

/// The conditional headers of GET and HEAD (and of copy sources).
#[derive(Debug, Clone, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-` or `bytes=first-last` (inclusive).
    From { first: u64, last: Option<u64> },
    /// `bytes=-length`: the last `length` bytes.
    Suffix { length: u64 },
}

impl ByteRange {
    /// The byte offsets this range selects in an object of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        match self {
            Self::From { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return Err(Error::InvalidRange { size });
                }
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                Ok(first..end)
            }
            Self::Suffix { length } => {
                if length == 0 || size == 0 {
                    return Err(Error::InvalidRange { size });
                }
                Ok(size.saturating_sub(length)..size)
            }
        }
    }
}

/// What GET and HEAD both answer: the version read (its SSE-C key and
/// conditions checked) and the bytes selected; GET adds the bytes.
pub struct ObjectHead {
    pub meta: VersionMeta,
    /// The byte range selected; the whole object when no range was asked.
    pub range: Range<u64>,
    pub partial: bool,
    /// How many parts the object has, when one part was asked for.
    pub parts_count: Option<u32>,
    /// Where the version's replicas are (`country/region/site`); empty when
    /// the deployment declares no topology.
    pub locations: Vec<String>,
    /// The bucket has had versioning: a read then names even the `null`
    /// version, as S3 does.
    pub versioned: bool,
    /// The checksums of the bytes answered: the object's for all of it, the
    /// part's for one part when they were kept, none for a range.
    pub checksums: Option<Checksums>,
}

/// One part of a multipart version, as GetObjectAttributes lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPart {
    pub number: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// `None` when not kept (see [`DataLocation::Parts`]).
    pub checksums: Option<Checksums>,
}

pub struct GetResult {
    pub head: ObjectHead,
    pub body: ByteStream,
}

/// What a GET or HEAD asks for besides the object's name.
#[derive(Default)]
pub struct ObjectRead {
    pub version: Option<VersionId>,
    pub conditions: ReadConditions,
    pub selection: Option<Selection>,
    /// SSE-C: the key the object was stored with.
    pub customer: Option<CustomerKey>,
}

/// Which bytes of an object a read wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Range(ByteRange),
    /// The n-th part (from 1) of a multipart object; part 1 of any other object is all of it.
    Part(u32),
}

/// The n-th part of a version: its byte range, how many parts the version
/// has, and the part's checksums when known (part 1 of an object not made of
/// parts is all of it, with the object's checksums).
fn part_of(object: &ObjectVersion, n: u32) -> Result<(Range<u64>, u32, Option<Checksums>)> {
    let not_satisfiable = || Error::InvalidPartNumber;
    match &object.data {
        DataLocation::Parts(parts, checksums) => {
            let index = usize::try_from(n).ok().and_then(|n| n.checked_sub(1)).ok_or_else(not_satisfiable)?;
            let part = parts.get(index).ok_or_else(not_satisfiable)?;
            let start: u64 = parts[..index].iter().map(|p| p.size).sum();
            Ok((start..start + part.size, parts.len() as u32, checksums.get(index).cloned()))
        }
        _ if n == 1 => Ok((0..object.meta.size, 1, Some(object.meta.checksums.clone()))),
        _ => Err(not_satisfiable()),
    }
}

/// What a copy writes besides the bytes.
pub struct CopyOptions {
    pub metadata: MetadataDirective,
    /// `None` keeps the source's tags (`x-amz-tagging-directive: COPY`).
    pub tags: Option<Vec<(String, String)>>,
    pub lock: Option<LockState>,
    pub condition: WriteCondition,
    pub sse: Option<SseChoice>,
}

/// How a copy sets the new object's metadata.
pub enum MetadataDirective {
    Copy,
    Replace { headers: ContentHeaders, user_meta: Vec<(String, String)> },
}

pub struct CopySource {
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub version: Option<VersionId>,
    pub conditions: ReadConditions,
    /// SSE-C: the key the source was stored with.
    pub customer_key: Option<CustomerKey>,
}

impl CopySource {
    /// The source as a change event names it: `copy_source=BUCKET/KEY[?versionId=V]`.
    pub(crate) fn describe(&self) -> String {
        match &self.version {
            Some(v) => format!("copy_source={}/{}?versionId={}", self.bucket, self.key.as_str(), v.as_str()),
            None => format!("copy_source={}/{}", self.bucket, self.key.as_str()),
        }
    }
}

mod body;
mod buckets;
pub(crate) mod keys;
mod multipart;

pub use buckets::{EraseOutcome, RotateOutcome};
pub use keys::{CustomerKey, SseChoice};
pub use multipart::{CompletedPart, NewUpload, PartResult, PartUpload, UploadListing};

use body::{ReadKeys, Sealing};
use keys::{ChecksumKey, Keyring};

pub struct ObjectService {
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    keyring: Keyring,
    config: ServiceConfig,
    /// The audit log: every change is recorded there before it commits.
    witness: Arc<dyn ChangeWitness>,
}

pub(crate) fn unquote(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// True when an `If-Match`/`If-None-Match` list names this ETag (or is `*`).
fn etag_list_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(unquote).any(|t| t == "*" || t == etag)
}

impl ReadConditions {
    /// Applies the conditions in the order S3 does: If-Match, then
    /// If-Unmodified-Since (ignored when If-Match held), then If-None-Match,
    /// then If-Modified-Since (ignored when If-None-Match was given).
    pub fn check(&self, meta: &VersionMeta) -> Result<()> {
        let modified = meta.last_modified.as_secs();
        match &self.if_match {
            Some(list) if !etag_list_matches(list, &meta.etag) => return Err(Error::PreconditionFailed),
            Some(_) => {}
            None => {
                if self.if_unmodified_since.is_some_and(|t| modified > t) {
                    return Err(Error::PreconditionFailed);
                }
            }
        }
        match &self.if_none_match {
            Some(list) if etag_list_matches(list, &meta.etag) => {
                return Err(Error::NotModified { etag: meta.etag.clone() });
            }
            Some(_) => {}
            None => {
                if self.if_modified_since.is_some_and(|t| modified <= t) {
                    return Err(Error::NotModified { etag: meta.etag.clone() });
                }
            }
        }
        Ok(())
    }

    /// Copy-source conditions answer 412 where GET would answer 304.
    pub(crate) fn check_copy_source(&self, meta: &VersionMeta) -> Result<()> {
        match self.check(meta) {
            Err(Error::NotModified { .. }) => Err(Error::PreconditionFailed),
            other => other,
        }
    }
}

impl ObjectService {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        kms: Arc<dyn coffre_crypto::Kms>,
        config: ServiceConfig,
        witness: Arc<dyn ChangeWitness>,
    ) -> Self {
        Self { meta, blobs, keyring: Keyring::new(kms), config, witness }
    }

    /// Records `change` durably; the caller commits it only if this succeeds.
    pub(crate) async fn witness(&self, change: Change) -> Result<()> {
        self.witness.witness(change).await
    }

    pub fn kms(&self) -> &Arc<dyn coffre_crypto::Kms> {
        self.keyring.kms()
    }

    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    // ----- buckets -----

    /// Changes a bucket's configuration (versioning, tags, default retention).
    pub async fn change_bucket(&self, who: &Principal, name: &BucketName, change: BucketChange) -> Result<()> {
        match &change {
            BucketChange::Tags(tags) => check_tags(tags, MAX_BUCKET_TAGS)?,
            BucketChange::Lifecycle(Some(config)) => config.validate()?,
            _ => {}
        }
        self.bucket(who, name).await?;
        self.witness(Change::new("change:PutBucketConfig", who.into(), name).detail(change_kind(&change))).await?;
        self.meta.update_bucket(name, change).await
    }

    /// Changes the tags or the lock of the current (or named) version.
    pub async fn change_version(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
        change: VersionChange,
        bypass_governance: bool,
    ) -> Result<VersionId> {
        if let VersionChange::Tags(tags) = &change {
            check_tags(tags, MAX_OBJECT_TAGS)?;
        }
        let record = self.bucket(who, bucket).await?;
        let kind = match &change {
            VersionChange::Tags(_) => "kind=tags",
            VersionChange::Retention(_) => "kind=retention",
            VersionChange::LegalHold(_) => "kind=legal-hold",
        };
        let detail = if bypass_governance { format!("{kind} bypass_governance=true") } else { kind.to_owned() };
        self.witness(
            Change::new("change:PutObjectConfig", who.into(), bucket).key(key).version(version).detail(detail),
        )
        .await?;
        self.meta.update_version(bucket, record.id, key, version, change, bypass_governance).await
    }

    /// The bucket, if it exists and `who` may use it: as the S3 front read
    /// it to allow this request (the decision and the operation see one
    /// record, for one metadata read), else from the metadata.
    pub async fn bucket(&self, who: &Principal, name: &BucketName) -> Result<BucketRecord> {
        if let Some(granted) = who.granted.iter().find(|g| &g.name == name) {
            return Ok(BucketRecord::clone(granted));
        }
        let bucket = self.meta.bucket(name).await?.ok_or(Error::NoSuchBucket)?;
        if !who.may_access(&bucket.name, &bucket.owner) {
            return Err(Error::AccessDenied);
        }
        Ok(bucket)
    }

    pub async fn list_buckets(&self, who: &Principal) -> Result<Vec<BucketRecord>> {
        let mut all = self.meta.buckets().await?;
        all.retain(|b| who.owns(&b.owner));
        Ok(all)
    }

    pub async fn list_versions(
        &self,
        who: &Principal,
        bucket: &BucketName,
        query: &list::VersionQuery,
    ) -> Result<list::VersionPage> {
        self.bucket(who, bucket).await?;
        let query = list::VersionQuery { max_scan: self.config.list_max_rows, ..query.clone() };
        list::list_versions(self.meta.as_ref(), bucket, &query).await
    }

    pub async fn bucket_usage(&self, who: &Principal, name: &BucketName) -> Result<BucketUsage> {
        self.bucket(who, name).await?;
        self.meta.bucket_usage(name).await
    }

    // ----- objects -----

    pub async fn put_object(&self, who: &Principal, req: PutRequest, body: ByteStream) -> Result<PutResult> {
        self.put_recorded(who, req, body, None).await
    }

    /// A PUT whose change event carries `detail` (the source of a copy).
    async fn put_recorded(
        &self,
        who: &Principal,
        req: PutRequest,
        body: ByteStream,
        detail: Option<String>,
    ) -> Result<PutResult> {
        let bucket = self.bucket(who, &req.bucket).await?;
        check_tags(&req.tags, MAX_OBJECT_TAGS)?;
        let lock = initial_lock(&bucket, req.lock)?;
        let (sse, customer) = sse_for(&bucket, req.sse)?;
        let version_id = new_version_id(&bucket);
        let sealing = self.sealing(&bucket, &req.key, version_id.as_str(), 0, customer.as_ref()).await?;
        let checksum_key = customer.is_some().then(|| ChecksumKey::of(&sealing.key));
        let context = keys::checksum_context(&bucket.name, &req.key, version_id.as_str());
        let algorithms: Vec<_> = req.claims.checksum.iter().map(ExpectedChecksum::algorithm).collect();
        let (data, digest) = self.store_body(body, &algorithms, req.claims.content_length, true, sealing).await?;
        let pending = data.blobs();
        let outcome = async {
            let checksums = verify_claims(req.claims, &digest)?;
            let recorded = Recorded::of(sse, checksum_key.as_ref(), &digest.md5, &checksums, &context)?;
            let version = ObjectVersion {
                meta: VersionMeta {
                    version_id,
                    delete_marker: false,
                    size: digest.len,
                    etag: recorded.etag,
                    last_modified: UnixNanos::now(),
                    owner: who.access_key.clone(),
                    headers: req.headers,
                    user_meta: req.user_meta,
                    checksums: recorded.checksums,
                    checksum_composite: false,
                    tags: req.tags,
                    lock,
                    sse: recorded.sse,
                },
                data,
            };
            // The writer brought the key: it is told the checksums, sealed or not.
            let result = PutResult { checksums, ..PutResult::of(&version.meta) };
            let mut change = Change::new("change:PutObject", who.into(), &req.bucket)
                .key(&req.key)
                .version(Some(&version.meta.version_id));
            change.detail = detail;
            self.witness(change).await?;
            let put = PutObject {
                bucket: req.bucket,
                bucket_id: bucket.id,
                key: req.key,
                version,
                condition: req.condition,
                pending: pending.clone(),
            };
            self.meta.put_object(put).await?;
            Ok(result)
        }
        .await;
        self.release_on_error(outcome, &pending).await
    }

    /// HEAD: GET's read without the bytes.
    pub async fn head_object(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        read: ObjectRead,
    ) -> Result<ObjectHead> {
        Ok(self.resolve_read(who, bucket, key, read).await?.0)
    }

    /// GetObjectAttributes: the read resolved as HEAD resolves it, and the
    /// version's parts, none unless it is multipart.
    pub async fn object_attributes(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        read: ObjectRead,
    ) -> Result<(ObjectHead, Vec<ObjectPart>)> {
        let (head, data, _) = self.resolve_read(who, bucket, key, read).await?;
        let parts = match data {
            DataLocation::Parts(parts, checksums) => parts
                .iter()
                .enumerate()
                .map(|(i, p)| ObjectPart { number: p.number, size: p.size, checksums: checksums.get(i).cloned() })
                .collect(),
            _ => Vec::new(),
        };
        Ok((head, parts))
    }

    /// GET: the read resolved, then its bytes opened.
    pub async fn get_object(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        read: ObjectRead,
    ) -> Result<GetResult> {
        let (head, data, keys) = self.resolve_read(who, bucket, key, read).await?;
        let body = self.read_data(data, head.meta.size, head.range.clone(), keys);
        // Open the first segment before answering: a key that cannot be
        // unwrapped or a corrupt start is an error response, not a cut body.
        let body = first_chunk_checked(body).await?;
        Ok(GetResult { head, body })
    }

    /// The one read path of GET and HEAD: the version a read names (current
    /// unless `version` is given; delete markers read as missing), its SSE-C
    /// key and conditions checked, the range or part resolved, where its
    /// replicas are, and what opening its bytes takes.
    async fn resolve_read(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        read: ObjectRead,
    ) -> Result<(ObjectHead, DataLocation, ReadKeys)> {
        let ObjectRead { version, conditions, selection, customer } = read;
        let record = self.bucket(who, bucket).await?;
        let object = self.readable_version(&record, key, version.as_ref(), customer.as_ref()).await?;
        conditions.check(&object.meta)?;
        let size = object.meta.size;
        let (range, partial, parts_count, checksums) = match selection {
            Some(Selection::Range(r)) => (r.resolve(size)?, true, None, None),
            Some(Selection::Part(n)) => {
                let (range, count, checksums) = part_of(&object, n)?;
                (range, true, Some(count), checksums)
            }
            None => (0..size, false, None, Some(object.meta.checksums.clone())),
        };
        let locations = self.locations(&object.data).await?;
        let keys = ReadKeys { bucket: bucket.clone(), key: key.clone(), keks: record.keks, customer };
        let versioned = record.versioning != Versioning::Unversioned;
        let head = ObjectHead { meta: object.meta, range, partial, parts_count, locations, versioned, checksums };
        Ok((head, object.data, keys))
    }

    /// A version of a bucket already checked, its customer key checked too.
    async fn readable_version(
        &self,
        record: &BucketRecord,
        key: &ObjectKey,
        version: Option<&VersionId>,
        customer: Option<&CustomerKey>,
    ) -> Result<ObjectVersion> {
        let mut object = self.version_of(record, key, version).await?;
        keys::check_customer_key(&object.meta.sse, customer)?;
        if let (Sse::CustomerSealed { checksums: sealed, .. }, Some(customer)) = (&object.meta.sse, customer)
            && !sealed.is_empty()
        {
            // Sealed under the first data key: a single PUT's, or a multipart version's first part's.
            let first = object
                .data
                .keys()
                .first()
                .copied()
                .cloned()
                .ok_or_else(|| Error::Integrity("an SSE-C version with sealed checksums has no data key".into()))?;
            let data_key = self.keyring.open_data_key(&record.name, &record.keks, &first, Some(customer)).await?;
            let context = keys::checksum_context(&record.name, key, object.meta.version_id.as_str());
            object.meta.checksums = ChecksumKey::of(&data_key).open(sealed, &context)?;
        }
        Ok(object)
    }

    /// The version, without the SSE-C check: for operations on its metadata
    /// (tags, retention), which S3 allows without the customer's key.
    pub async fn object_version(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
    ) -> Result<ObjectVersion> {
        let record = self.bucket(who, bucket).await?;
        self.version_of(&record, key, version).await
    }

    async fn version_of(
        &self,
        record: &BucketRecord,
        key: &ObjectKey,
        version: Option<&VersionId>,
    ) -> Result<ObjectVersion> {
        let found = self.meta.object(&record.name, key, version).await?;
        match found {
            Some(v) if !v.meta.delete_marker => Ok(v),
            Some(marker) => Err(Error::DeleteMarker { version_id: marker.meta.version_id, named: version.is_some() }),
            None if version.is_some() => Err(Error::NoSuchVersion),
            None => Err(Error::NoSuchKey),
        }
    }

    /// Where a version's bytes are, each place once, in the blob store's order.
    pub async fn locations(&self, data: &DataLocation) -> Result<Vec<String>> {
        let mut places: Vec<String> = Vec::new();
        for blob in data.blobs() {
            for place in self.blobs.locations(blob).await? {
                if !places.contains(&place) {
                    places.push(place);
                }
            }
        }
        Ok(places)
    }

    /// The blob store, for the admin API's placement views.
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    pub async fn delete_object(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
        guard: &DeleteGuard,
    ) -> Result<DeleteOutcome> {
        let record = self.bucket(who, bucket).await?;
        let mut change = Change::new("change:DeleteObject", who.into(), bucket).key(key).version(version);
        if guard.bypass_governance {
            change = change.detail("bypass_governance=true");
        }
        self.witness(change).await?;
        self.meta.delete_object(bucket, record.id, key, version, guard).await
    }

    pub async fn copy_object(
        &self,
        who: &Principal,
        source: CopySource,
        bucket: &BucketName,
        key: &ObjectKey,
        opts: CopyOptions,
    ) -> Result<PutResult> {
        let (src, src_keys) = self.copy_source(who, &source).await?;
        let same_object = source.bucket == *bucket && source.key == *key && source.version.is_none();
        let same_encryption = opts.sse.is_none() && source.customer_key.is_none();
        if same_object && matches!(opts.metadata, MetadataDirective::Copy) && same_encryption {
            return Err(Error::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself without changing the \
                 object's metadata, storage class, website redirect location or encryption attributes."
                    .into(),
            ));
        }
        if src.meta.size > MAX_OBJECT_SIZE {
            return Err(Error::InvalidArgument("copy sources larger than 5 GiB need UploadPartCopy".into()));
        }
        let (headers, user_meta) = match opts.metadata {
            MetadataDirective::Copy => (src.meta.headers.clone(), src.meta.user_meta.clone()),
            MetadataDirective::Replace { headers, user_meta } => (headers, user_meta),
        };
        let checksum = src.meta.checksums.algorithms().next().map(ExpectedChecksum::Compute);
        let req = PutRequest {
            bucket: bucket.clone(),
            key: key.clone(),
            headers,
            user_meta,
            condition: opts.condition,
            claims: BodyClaims { content_length: Some(src.meta.size), content_md5: None, checksum },
            tags: opts.tags.unwrap_or_else(|| src.meta.tags.clone()),
            lock: opts.lock,
            sse: opts.sse,
        };
        let size = src.meta.size;
        let body = self.read_data(src.data, size, 0..size, src_keys);
        self.put_recorded(who, req, body, Some(source.describe())).await
    }

    /// The version a copy reads, its conditions checked, and its keys.
    pub(crate) async fn copy_source(&self, who: &Principal, source: &CopySource) -> Result<(ObjectVersion, ReadKeys)> {
        let record = self.bucket(who, &source.bucket).await?;
        let customer = source.customer_key.as_ref();
        let src = match self.readable_version(&record, &source.key, source.version.as_ref(), customer).await {
            Err(Error::DeleteMarker { named: true, .. }) => {
                return Err(Error::InvalidRequest(
                    "The source of a copy request may not specifically refer to a delete marker by version id.".into(),
                ));
            }
            other => other?,
        };
        source.conditions.check_copy_source(&src.meta)?;
        let keys = ReadKeys {
            bucket: source.bucket.clone(),
            key: source.key.clone(),
            keks: record.keks,
            customer: source.customer_key.clone(),
        };
        Ok((src, keys))
    }

    /// A fresh data key for a blob of `key` in `bucket`, bound to `origin` and `part`.
    pub(crate) async fn sealing(
        &self,
        bucket: &BucketRecord,
        key: &ObjectKey,
        origin: &str,
        part: u32,
        customer: Option<&CustomerKey>,
    ) -> Result<Sealing> {
        let kek = current_kek(bucket)?;
        let (data_key, sealed) = self.keyring.new_data_key(&bucket.name, kek, origin, part, customer).await?;
        let context = keys::segment_context(&bucket.name, key, &sealed);
        let placement = Placement {
            bucket: Some(bucket.name.as_str().to_owned()),
            key: Some(key.as_str().to_owned()),
            residency: bucket.residency.clone(),
        };
        Ok(Sealing { key: data_key, sealed, context, placement })
    }

    pub async fn list_objects(&self, who: &Principal, bucket: &BucketName, query: &ListQuery) -> Result<ListPage> {
        self.bucket(who, bucket).await?;
        let query = ListQuery { max_scan: self.config.list_max_rows, ..query.clone() };
        list::list(self.meta.as_ref(), bucket, &query).await
    }

    /// Applies the buckets' lifecycle rules as of `now`.
    pub async fn apply_lifecycle(&self, now: UnixNanos) -> Result<crate::lifecycle::Report> {
        crate::lifecycle::run(self.meta.as_ref(), self.witness.as_ref(), now).await
    }

    // ----- collection of unreferenced blobs -----

    /// At start-up: every blob still pending belongs to a write that died.
    pub async fn recover(&self) -> Result<usize> {
        let abandoned = self.meta.abandon_pending().await?;
        let collected = self.collect_before(UnixNanos::now()).await?;
        Ok(abandoned.max(collected))
    }

    /// Deletes blobs whose grace period has passed. Returns how many.
    pub async fn collect_garbage(&self) -> Result<usize> {
        let grace = i64::try_from(self.config.gc_grace.as_nanos()).unwrap_or(i64::MAX);
        self.collect_before(UnixNanos(UnixNanos::now().0.saturating_sub(grace))).await
    }

    async fn collect_before(&self, cutoff: UnixNanos) -> Result<usize> {
        let mut total = 0;
        loop {
            let batch = self.meta.collectable(cutoff, 256).await?;
            if batch.is_empty() {
                return Ok(total);
            }
            // A blob that cannot be deleted now (a storage target down) stays
            // queued without holding up the others behind it.
            let mut deleted = Vec::with_capacity(batch.len());
            for id in &batch {
                match self.blobs.delete(*id).await {
                    Ok(()) => deleted.push(*id),
                    Err(e) => tracing::warn!(blob = %id, error = %e, "a blob could not be collected yet; will retry"),
                }
            }
            if deleted.is_empty() {
                return Ok(total);
            }
            self.meta.forget_collected(&deleted).await?;
            total += deleted.len();
        }
    }
}

/// The lock a new version starts with: what the request asked for, with the
/// bucket's default retention where it named none. Asking for a lock on a
/// bucket without Object Lock is refused.
pub(crate) fn initial_lock(bucket: &BucketRecord, requested: Option<LockState>) -> Result<LockState> {
    let Some(config) = &bucket.object_lock else {
        return match requested {
            Some(r) if r != LockState::default() => Err(Error::NoLockConfiguration),
            _ => Ok(LockState::default()),
        };
    };
    let requested = requested.unwrap_or_default();
    let default = config.default_retention.map(|d| d.from(UnixNanos::now()));
    Ok(LockState { retention: requested.retention.or(default), legal_hold: requested.legal_hold })
}

pub(crate) fn current_kek(bucket: &BucketRecord) -> Result<&BucketKek> {
    bucket.current_kek().ok_or_else(|| Error::Meta(format!("bucket {} has no key-encryption key", bucket.name)))
}

/// The encryption a new version gets: the request's, else the bucket default's.
pub(crate) fn sse_for(bucket: &BucketRecord, asked: Option<SseChoice>) -> Result<(Sse, Option<CustomerKey>)> {
    let choice = asked.unwrap_or_else(|| match bucket.encryption.as_ref().map(|e| &e.sse) {
        Some(Sse::Kms { key_id }) => SseChoice::Kms { key_id: key_id.clone() },
        _ => SseChoice::S3,
    });
    choice.resolve()
}

/// Polls a body once so that a failure to start (a key the custodian will
/// not unwrap, a corrupt first segment) becomes the response, not a cut body.
async fn first_chunk_checked(mut body: ByteStream) -> Result<ByteStream> {
    use futures::StreamExt as _;
    match body.next().await {
        None => Ok(Box::pin(futures::stream::empty())),
        Some(Err(e)) => Err(e),
        Some(Ok(first)) => Ok(Box::pin(futures::stream::once(async move { Ok(first) }).chain(body))),
    }
}

/// What a version records of the digests of its plaintext: in clear, or for
/// SSE-C a random ETag and the checksums sealed (AWS gives no plaintext MD5
/// of an SSE-C object either).
struct Recorded {
    etag: String,
    checksums: Checksums,
    sse: Sse,
}

impl Recorded {
    fn of(sse: Sse, key: Option<&ChecksumKey>, md5: &[u8; 16], checksums: &Checksums, context: &[u8]) -> Result<Self> {
        match (sse, key) {
            (Sse::Customer(check), Some(key)) => {
                let sealed = if checksums.is_empty() { Vec::new() } else { key.seal(checksums, context)? };
                Ok(Self {
                    etag: hex(&keys::random_etag()?),
                    checksums: Checksums::default(),
                    sse: Sse::CustomerSealed { check, checksums: sealed },
                })
            }
            (sse, _) => Ok(Self { etag: hex(md5), checksums: checksums.clone(), sse }),
        }
    }
}

impl PutResult {
    /// What a write reports of the version it made.
    pub(crate) fn of(meta: &VersionMeta) -> Self {
        Self {
            etag: meta.etag.clone(),
            sse: meta.sse.clone(),
            version_id: (meta.version_id != VersionId::Null).then(|| meta.version_id.clone()),
            checksums: meta.checksums.clone(),
            checksum_composite: meta.checksum_composite,
            last_modified: meta.last_modified,
        }
    }
}

/// What a bucket change is, for its audit event (never its content: tags and
/// policies are the owner's business, the event says that they changed).
fn change_kind(change: &BucketChange) -> String {
    let kind = match change {
        BucketChange::Versioning(v) => return format!("kind=versioning state={v:?}"),
        BucketChange::Tags(_) => "tags",
        BucketChange::DefaultRetention(_) => "default-retention",
        BucketChange::Lifecycle(_) => "lifecycle",
        BucketChange::Encryption(_) => "encryption",
        BucketChange::Residency(_) => "residency",
        BucketChange::Policy(_) => "policy",
        BucketChange::PublicAccess(_) => "public-access-block",
        BucketChange::Cors(_) => "cors",
        BucketChange::AddKek(k) => return format!("kind=add-kek generation={}", k.generation),
        BucketChange::DropKeksBefore(g) => return format!("kind=drop-keks before={g}"),
    };
    format!("kind={kind}")
}

pub(crate) fn new_version_id(bucket: &BucketRecord) -> VersionId {
    match bucket.versioning {
        Versioning::Enabled => VersionId::generate(),
        Versioning::Unversioned | Versioning::Suspended => VersionId::Null,
    }
}

/// Checks what the client claimed against what arrived; returns the checksums to store.
pub(crate) fn verify_claims(claims: BodyClaims, digest: &BodyDigest) -> Result<Checksums> {
    if let Some(expected) = claims.content_length
        && expected != digest.len
    {
        return Err(Error::IncompleteBody { received: digest.len, expected });
    }
    if claims.content_md5.is_some_and(|md5| md5 != digest.md5) {
        return Err(Error::BadDigest);
    }
    let mut stored = Checksums::default();
    if let Some(expected) = claims.checksum {
        let alg = expected.algorithm();
        let computed = digest.checksums.get(alg).unwrap_or_default().to_owned();
        let claimed = match expected {
            ExpectedChecksum::Value(_, v) => Some(v),
            ExpectedChecksum::Trailer(_, read) => {
                Some(read().ok_or_else(|| Error::InvalidArgument(format!("the {alg} trailer is missing")))?)
            }
            ExpectedChecksum::Compute(_) => None,
        };
        if claimed.is_some_and(|c| c != computed) {
            return Err(Error::ChecksumMismatch(alg));
        }
        stored.set(alg, computed);
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_s3() {
        let r = |first, last| ByteRange::From { first, last };
        assert_eq!(r(0, Some(9)).resolve(100).ok(), Some(0..10));
        assert_eq!(r(90, None).resolve(100).ok(), Some(90..100));
        assert_eq!(r(90, Some(1000)).resolve(100).ok(), Some(90..100));
        assert_eq!(ByteRange::Suffix { length: 10 }.resolve(100).ok(), Some(90..100));
        assert_eq!(ByteRange::Suffix { length: 1000 }.resolve(100).ok(), Some(0..100));
        assert!(r(100, None).resolve(100).is_err());
        assert!(r(5, Some(4)).resolve(100).is_err());
        assert!(ByteRange::Suffix { length: 0 }.resolve(100).is_err());
    }

    #[test]
    fn conditions_follow_s3_precedence() {
        let meta = VersionMeta {
            version_id: VersionId::Null,
            delete_marker: false,
            size: 0,
            etag: "abc".into(),
            last_modified: UnixNanos(1_000 * 1_000_000_000),
            owner: crate::types::AccessKeyId::parse("owner").unwrap_or_else(|_| unreachable!()),
            headers: ContentHeaders::default(),
            user_meta: vec![],
            checksums: Checksums::default(),
            checksum_composite: false,
            tags: vec![],
            lock: LockState::default(),
            sse: Sse::S3,
        };
        let c = |f: fn(&mut ReadConditions)| {
            let mut c = ReadConditions::default();
            f(&mut c);
            c.check(&meta)
        };
        assert!(c(|c| c.if_match = Some("\"abc\"".into())).is_ok());
        assert!(matches!(c(|c| c.if_match = Some("\"x\"".into())), Err(Error::PreconditionFailed)));
        // If-Match holds, so a failing If-Unmodified-Since is ignored.
        assert!(
            c(|c| {
                c.if_match = Some("*".into());
                c.if_unmodified_since = Some(10)
            })
            .is_ok()
        );
        assert!(matches!(c(|c| c.if_unmodified_since = Some(10)), Err(Error::PreconditionFailed)));
        assert!(matches!(c(|c| c.if_none_match = Some("\"abc\"".into())), Err(Error::NotModified { .. })));
        assert!(matches!(c(|c| c.if_modified_since = Some(2_000)), Err(Error::NotModified { .. })));
        // If-None-Match does not match, so If-Modified-Since is ignored.
        assert!(
            c(|c| {
                c.if_none_match = Some("\"x\"".into());
                c.if_modified_since = Some(2_000)
            })
            .is_ok()
        );
    }
}
