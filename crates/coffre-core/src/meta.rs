//! The metadata engine's contract: ordered, transactional storage of buckets,
//! object versions, multipart state, blob lifecycle and access keys.
//!
//! Every method is one atomic transaction, so conditions (`If-None-Match`,
//! "bucket still exists", "upload not aborted") are checked where they are
//! applied. The record shapes follow the relational schema of the PostgreSQL
//! engine to come: `objects` holds the current version of each key,
//! `object_versions` the noncurrent ones, and inline data rides in the record.

use std::ops::Bound;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::checksum::{ChecksumAlgorithm, ChecksumType, Checksums};
use crate::cors::CorsConfig;
use crate::error::Result;
use crate::lifecycle::LifecycleConfig;
use crate::lock::{DefaultRetention, LockConfig, LockState, Retention};
use crate::types::{AccessKeyId, BlobId, BucketId, BucketName, ObjectKey, UnixNanos, UploadId, VersionId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    Unversioned,
    Enabled,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: BucketName,
    pub owner: AccessKeyId,
    pub created: UnixNanos,
    pub versioning: Versioning,
    /// Set at creation only: Object Lock cannot be switched on later.
    pub object_lock: Option<LockConfig>,
    pub tags: Vec<(String, String)>,
    pub lifecycle: Option<LifecycleConfig>,
    /// The bucket's key-encryption keys, oldest first; the last wraps new data keys.
    pub keks: Vec<BucketKek>,
    /// What PutBucketEncryption set: how objects are reported, not whether
    /// they are encrypted (they always are).
    pub encryption: Option<BucketEncryption>,
    /// Where the bucket's data may live; `None`: the deployment's default.
    pub residency: Option<coffre_topology::ResidencyPolicy>,
    /// Which bucket of that name this is; writes carry it to their commit.
    /// Last, so that records written before it read as [`BucketId::LEGACY`].
    #[serde(default = "crate::types::legacy_bucket_id", deserialize_with = "BucketId::read_or_legacy")]
    pub id: BucketId,
    /// The bucket policy, as the owner wrote it (checked when it was put).
    #[serde(default, deserialize_with = "read_or_none")]
    pub policy: Option<String>,
    /// Block Public Access; `None` once deleted. On for new buckets, and for
    /// buckets made before it existed (nothing was public then).
    #[serde(default = "PublicAccessBlock::all_on", deserialize_with = "PublicAccessBlock::read_or_all_on")]
    pub public_access: Option<PublicAccessBlock>,
    /// PutBucketCors's rules; `None` for records written before CORS existed.
    #[serde(default, deserialize_with = "read_or_none")]
    pub cors: Option<CorsConfig>,
}

/// A trailing field's default for a record written before it existed
/// (postcard runs out of bytes where it would be).
fn read_or_default<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(T::deserialize(d).unwrap_or_default())
}

/// A trailing optional field of a record written before the field existed
/// (postcard runs out of bytes where it would be) reads as `None`.
fn read_or_none<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<T>::deserialize(d).unwrap_or(None))
}

/// A bucket's Block Public Access settings, as S3 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse requests that would set a public ACL.
    pub block_public_acls: bool,
    /// Ignore public ACLs (Coffre keeps none: ownership is enforced).
    pub ignore_public_acls: bool,
    /// Refuse a bucket policy that grants public access.
    pub block_public_policy: bool,
    /// Give a public policy's grants to the owner's tenant only.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL_ON: Self = Self {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };

    pub fn all_on() -> Option<Self> {
        Some(Self::ALL_ON)
    }

    fn read_or_all_on<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
        Ok(Option::<Self>::deserialize(d).unwrap_or(Some(Self::ALL_ON)))
    }
}

/// A key-encryption key of a bucket, held by the key custodian.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketKek {
    pub generation: u32,
    /// The custodian's name for it (`coffre_crypto::KekId`).
    pub id: String,
    pub created: UnixNanos,
}

/// A bucket's default encryption, as S3 names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    pub sse: Sse,
    pub bucket_key_enabled: bool,
}

/// How a version was asked to be encrypted, which is how it is reported.
/// The bytes are sealed the same way in every case; SSE-C adds the
/// customer's key to the data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Sse {
    /// `AES256`: S3-managed keys.
    #[default]
    S3,
    /// `aws:kms`, with the key id the client named, if any.
    Kms { key_id: Option<String> },
    /// SSE-C: only a salted HMAC of the customer's key is kept, to recognise
    /// it. Versions written before checksums were sealed have this form.
    Customer(CustomerKeyCheck),
    /// SSE-C with the checksums the client asked for sealed under the
    /// object's keys (`VersionMeta::checksums` stays empty): only a request
    /// bringing the customer's key opens them. Empty when none was asked for.
    CustomerSealed { check: CustomerKeyCheck, checksums: Vec<u8> },
}

impl Sse {
    /// The customer's key check, for SSE-C versions of either form.
    pub fn customer(&self) -> Option<&CustomerKeyCheck> {
        match self {
            Self::Customer(check) | Self::CustomerSealed { check, .. } => Some(check),
            Self::S3 | Self::Kms { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerKeyCheck {
    pub salt: [u8; 16],
    pub fingerprint: [u8; 32],
    /// Base64 MD5 of the key, echoed back as S3 does (it says nothing of the key).
    pub key_md5: String,
}

impl BucketRecord {
    pub fn new(name: BucketName, owner: AccessKeyId) -> Self {
        Self {
            name,
            id: BucketId::generate(),
            owner,
            created: UnixNanos::now(),
            versioning: Versioning::Unversioned,
            object_lock: None,
            tags: Vec::new(),
            lifecycle: None,
            keks: Vec::new(),
            encryption: None,
            residency: None,
            policy: None,
            public_access: Some(PublicAccessBlock::ALL_ON),
            cors: None,
        }
    }

    /// The KEK that wraps new data keys.
    pub fn current_kek(&self) -> Option<&BucketKek> {
        self.keks.last()
    }

    pub fn kek(&self, generation: u32) -> Option<&BucketKek> {
        self.keks.iter().find(|k| k.generation == generation)
    }

    /// Refuses data keys wrapped by a KEK the bucket no longer has: a write
    /// that began before a key rotation and ends after it must not commit
    /// keys that are about to be destroyed. Part of [`Self::check_write`].
    fn check_sealed(&self, keys: &[&SealedKey]) -> crate::error::Result<()> {
        match keys.iter().find(|k| self.kek(k.kek_generation).is_none()) {
            Some(k) => Err(crate::error::Error::KeyRotated { generation: k.kek_generation }),
            None => Ok(()),
        }
    }

    /// What every commit of new data checks inside its transaction, against
    /// the bucket record read there: the bucket is still the one the write
    /// was authorised in (`began_in`), not another created since under the
    /// same name, answered as S3 answers a bucket gone (`NoSuchBucket`); and
    /// its data keys are wrapped by KEKs the bucket still has.
    pub fn check_write(&self, began_in: BucketId, keys: &[&SealedKey]) -> crate::error::Result<()> {
        if self.id != began_in {
            return Err(crate::error::Error::NoSuchBucket);
        }
        self.check_sealed(keys)
    }

    /// Applies a configuration change, refusing the ones S3 forbids.
    pub fn apply(&mut self, change: BucketChange) -> crate::error::Result<()> {
        use crate::error::Error;
        match change {
            BucketChange::Versioning(Versioning::Unversioned) => {
                return Err(Error::InvalidArgument("a bucket's versioning can be Enabled or Suspended only".into()));
            }
            BucketChange::Versioning(Versioning::Suspended) if self.object_lock.is_some() => {
                return Err(Error::InvalidBucketState(
                    "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
                        .into(),
                ));
            }
            BucketChange::Versioning(v) => self.versioning = v,
            BucketChange::Tags(tags) => self.tags = tags,
            BucketChange::Lifecycle(config) => self.lifecycle = config,
            BucketChange::DefaultRetention(default) => {
                let config = self.object_lock.as_mut().ok_or(Error::NoLockConfiguration)?;
                config.default_retention = default;
            }
            BucketChange::Encryption(config) => self.encryption = config,
            BucketChange::Residency(policy) => self.residency = policy,
            BucketChange::Cors(config) => self.cors = config,
            BucketChange::AddKek(kek) => self.keks.push(kek),
            BucketChange::DropKeksBefore(generation) => self.keks.retain(|k| k.generation >= generation),
            BucketChange::Policy(policy) => self.policy = policy,
            BucketChange::PublicAccess(block) => self.public_access = block,
        }
        Ok(())
    }
}

/// A change to a bucket's configuration, applied atomically by the engine.
#[derive(Debug, Clone)]
pub enum BucketChange {
    /// Never back to `Unversioned`; never `Suspended` under Object Lock.
    Versioning(Versioning),
    Tags(Vec<(String, String)>),
    /// Fails with `NoLockConfiguration` on a bucket created without Object Lock.
    DefaultRetention(Option<DefaultRetention>),
    Lifecycle(Option<LifecycleConfig>),
    Encryption(Option<BucketEncryption>),
    Residency(Option<coffre_topology::ResidencyPolicy>),
    Cors(Option<CorsConfig>),
    /// A new KEK for new writes (key rotation).
    AddKek(BucketKek),
    /// Forgets the KEKs older than this generation, once nothing uses them.
    DropKeksBefore(u32),
    /// A bucket policy already checked by the front (`None`: deleted).
    Policy(Option<String>),
    PublicAccess(Option<PublicAccessBlock>),
}

/// What a delete must respect besides the bucket's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteGuard {
    /// `x-amz-bypass-governance-retention`.
    pub bypass_governance: bool,
    /// `If-Match`, `x-amz-if-match-size`, `x-amz-if-match-last-modified-time`:
    /// what the version deleted must be, when there is one (a delete marker
    /// counts); a conditional delete that finds nothing succeeds and changes nothing.
    pub if_match: VersionMatch,
}

/// What a version must be for a conditional delete to apply to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionMatch {
    pub etag: Option<EtagTest>,
    pub size: Option<u64>,
    /// Whole seconds since the epoch, as HTTP dates carry them.
    pub last_modified_secs: Option<i64>,
}

impl VersionMatch {
    /// Whether any test is given.
    pub fn is_set(&self) -> bool {
        self.etag.is_some() || self.size.is_some() || self.last_modified_secs.is_some()
    }

    /// Whether `v` is what every given test asks.
    pub fn holds(&self, v: &VersionMeta) -> bool {
        self.etag.as_ref().is_none_or(|t| t.matches(&v.etag))
            && self.size.is_none_or(|s| s == v.size)
            && self.last_modified_secs.is_none_or(|t| t == v.last_modified.as_secs())
    }
}

/// The value of an `If-Match` or `If-None-Match` header: `*` or one ETag (unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagTest {
    Any,
    Etag(String),
}

impl EtagTest {
    /// Whether a version of this ETag (unquoted) passes the test.
    pub fn matches(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Etag(e) => e == etag,
        }
    }
}

/// A change to one version's metadata (its bytes never change).
#[derive(Debug, Clone)]
pub enum VersionChange {
    Tags(Vec<(String, String)>),
    Retention(Option<Retention>),
    LegalHold(bool),
}

/// HTTP representation headers S3 stores and returns as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
}

/// Everything about a version except its bytes. Listing reads only this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub version_id: VersionId,
    pub delete_marker: bool,
    pub size: u64,
    /// Unquoted: hex MD5, or `hex-N` for multipart.
    pub etag: String,
    pub last_modified: UnixNanos,
    pub owner: AccessKeyId,
    pub headers: ContentHeaders,
    /// `x-amz-meta-*` without the prefix, in the order given.
    pub user_meta: Vec<(String, String)>,
    pub checksums: Checksums,
    /// Multipart objects carry a checksum of checksums (`COMPOSITE`).
    pub checksum_composite: bool,
    pub tags: Vec<(String, String)>,
    pub lock: LockState,
    pub sse: Sse,
}

/// A blob's data key as stored: wrapped by a bucket KEK, never in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// Also in the blob's header: ties the stored bytes to this record.
    pub key_id: [u8; 16],
    pub kek_generation: u32,
    pub wrapped: Vec<u8>,
    /// What the segments are bound to: the version id of a single PUT, the
    /// upload id of a part (the version does not exist yet when it is written).
    pub origin: String,
    pub part: u32,
}

/// One part of a multipart object, in object order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    pub number: u32,
    pub blob: BlobId,
    /// Plaintext bytes.
    pub size: u64,
    pub key: SealedKey,
}

/// Where a version's bytes are, always sealed (`coffre_crypto::segment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataLocation {
    /// Small objects live in the metadata record itself, sealed like a blob.
    Inline {
        sealed: Vec<u8>,
        key: SealedKey,
    },
    Blob {
        id: BlobId,
        key: SealedKey,
    },
    /// The parts in object order, then each one's checksums in the same
    /// order: none for objects completed before part checksums were kept
    /// (a trailing field, so that those records still read) and for SSE-C
    /// objects, whose part checksums stay sealed with their upload's parts.
    Parts(Vec<PartRef>, #[serde(deserialize_with = "read_or_default")] Vec<Checksums>),
    /// Delete markers have no data.
    None,
}

impl DataLocation {
    /// The blobs a version owns, to collect when it goes away.
    pub fn blobs(&self) -> Vec<BlobId> {
        match self {
            Self::Blob { id, .. } => vec![*id],
            Self::Parts(parts, _) => parts.iter().map(|p| p.blob).collect(),
            Self::Inline { .. } | Self::None => Vec::new(),
        }
    }

    /// Every data key the version's bytes are sealed under.
    pub fn keys(&self) -> Vec<&SealedKey> {
        match self {
            Self::Inline { key, .. } | Self::Blob { key, .. } => vec![key],
            Self::Parts(parts, _) => parts.iter().map(|p| &p.key).collect(),
            Self::None => Vec::new(),
        }
    }

    /// Replaces the key with the same id by `new` (a rewrapped copy); false if there is none.
    pub fn replace_key(&mut self, new: &SealedKey) -> bool {
        match self.keys_mut().into_iter().find(|k| k.key_id == new.key_id) {
            Some(k) => {
                *k = new.clone();
                true
            }
            None => false,
        }
    }

    pub fn keys_mut(&mut self) -> Vec<&mut SealedKey> {
        match self {
            Self::Inline { key, .. } | Self::Blob { key, .. } => vec![key],
            Self::Parts(parts, _) => parts.iter_mut().map(|p| &mut p.key).collect(),
            Self::None => Vec::new(),
        }
    }
}

/// A version as stored. `meta` comes first so engines can decode it alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    pub meta: VersionMeta,
    pub data: DataLocation,
}

/// What must hold about the current version for a write to apply. A delete
/// marker as current version counts as no version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    None,
    /// `If-None-Match: *`: only if no current version exists.
    KeyAbsent,
    /// `If-None-Match: etag`: only if the current version, if any, has another ETag.
    EtagDiffers(String),
    /// `If-Match: *`: only if a current version exists.
    KeyPresent,
    /// `If-Match: etag`: only if the current version has this ETag.
    EtagMatches(String),
}

#[derive(Debug, Clone)]
pub struct PutObject {
    pub bucket: BucketName,
    /// The bucket the write was authorised in ([`BucketRecord::check_write`]).
    pub bucket_id: BucketId,
    pub key: ObjectKey,
    pub version: ObjectVersion,
    pub condition: WriteCondition,
    /// Blobs registered as pending for this write; cleared on commit.
    pub pending: Vec<BlobId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version removed, or the delete marker created.
    pub version_id: Option<VersionId>,
    pub delete_marker: bool,
}

/// The rule of DeleteBucket, as on AWS: a bucket holding no version nor
/// delete marker goes, and its unfinished uploads with it; only those the
/// caller recorded as aborted, so that an upload created meanwhile keeps the
/// bucket (its abort would go unrecorded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketRemoval {
    pub uploads: Vec<UploadId>,
}

impl BucketRemoval {
    /// Checked by the engine in its deleting transaction, over the rows it
    /// found under lock: whether a version remains, and the bucket's uploads.
    pub fn check<'a>(
        &self,
        has_versions: bool,
        uploads: impl IntoIterator<Item = &'a str>,
    ) -> crate::error::Result<()> {
        let unrecorded = |id: &str| !self.uploads.iter().any(|u| u.as_str() == id);
        if has_versions || uploads.into_iter().any(unrecorded) {
            return Err(crate::error::Error::BucketNotEmpty);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub upload_id: UploadId,
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub initiated: UnixNanos,
    pub owner: AccessKeyId,
    pub headers: ContentHeaders,
    pub user_meta: Vec<(String, String)>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    pub tags: Vec<(String, String)>,
    pub lock: LockState,
    /// Fixed at creation: every part must be sealed the same way.
    pub sse: Sse,
    /// The bucket the upload was created in: its parts and its completion
    /// commit only there ([`BucketRecord::check_write`]). Last, so that
    /// records written before it read as [`BucketId::LEGACY`].
    #[serde(default = "crate::types::legacy_bucket_id", deserialize_with = "BucketId::read_or_legacy")]
    pub bucket_id: BucketId,
    /// How the completed object's checksum derives from the parts'. Last, so
    /// that uploads created before it read as `Composite`, all there was then.
    #[serde(default, deserialize_with = "read_or_default")]
    pub checksum_type: ChecksumType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub number: u32,
    pub blob: BlobId,
    pub size: u64,
    pub md5: [u8; 16],
    pub last_modified: UnixNanos,
    pub checksums: Checksums,
    pub key: SealedKey,
    /// An SSE-C part's checksums, sealed under its keys as a PUT's are
    /// (`checksums` stays empty): only a request bringing the customer's key
    /// opens them. Last, so that parts recorded before it read as sealing none.
    #[serde(default, deserialize_with = "crate::types::read_or_empty")]
    pub sealed_checksums: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct CompleteUpload {
    pub upload: UploadRecord,
    pub version: ObjectVersion,
    /// The parts the object keeps; every other part of the upload is collected.
    pub keep: Vec<u32>,
    /// Checked before anything changes: a failed condition keeps the upload.
    pub condition: WriteCondition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub id: AccessKeyId,
    /// SigV4 needs the secret itself, so it is wrapped, not hashed.
    pub secret: SealedSecret,
    pub name: String,
    pub created: UnixNanos,
    /// Keys written before status existed are active.
    #[serde(default, deserialize_with = "read_or_default")]
    pub status: KeyStatus,
    /// After this instant the key is refused; `None`: it does not expire.
    #[serde(default, deserialize_with = "read_or_none")]
    pub expires: Option<UnixNanos>,
}

/// Whether an access key may sign requests (IAM's `Active`/`Inactive`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    #[default]
    Active,
    Inactive,
}

/// Why a stored key may not sign a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Inactive,
    Expired,
}

impl AccessKeyRecord {
    /// The one rule for whether a key of this status and expiry signs at
    /// `now` (on the two fields, which the secret cache keeps).
    pub fn check(status: KeyStatus, expires: Option<UnixNanos>, now: UnixNanos) -> std::result::Result<(), KeyRefusal> {
        if status == KeyStatus::Inactive {
            return Err(KeyRefusal::Inactive);
        }
        match expires {
            Some(at) if now >= at => Err(KeyRefusal::Expired),
            _ => Ok(()),
        }
    }
}

/// An access-key secret wrapped by a KEK of the custodian (`access.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub kek: String,
    pub wrapped: Vec<u8>,
}

/// A page of a listing scan, in key byte order.
#[derive(Debug, Clone)]
pub struct ListedObject {
    pub key: ObjectKey,
    pub meta: VersionMeta,
}

/// One entry of a version listing: a version or a delete marker.
#[derive(Debug, Clone)]
pub struct ListedVersion {
    pub key: ObjectKey,
    pub meta: VersionMeta,
    pub is_latest: bool,
}

/// Where a version listing resumes: strictly after this key, or after this
/// version of it (the versions of one key run newest first).
#[derive(Debug, Clone)]
pub struct VersionCursor {
    pub key: Vec<u8>,
    pub after_version: Option<VersionId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketUsage {
    pub objects: u64,
    pub bytes: u64,
    pub uploads: u64,
}

/// Where a sealed data key is recorded, for key rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlace {
    /// A version, current or not (`VersionId::Null` included).
    Version { key: ObjectKey, version: VersionId },
    /// A part of an upload still in progress.
    Part { upload: UploadId, number: u32 },
}

/// A data key found by [`MetaStore::sealed_keys`].
#[derive(Debug, Clone)]
pub struct KeySlot {
    pub place: KeyPlace,
    pub key: SealedKey,
}

impl KeySlot {
    /// Adds the keys wrapped by a KEK older than `below`, found at `place`:
    /// what a key rotation must rewrap.
    pub fn push_older(out: &mut Vec<KeySlot>, place: KeyPlace, keys: Vec<&SealedKey>, below: u32) {
        for key in keys.into_iter().filter(|k| k.kek_generation < below) {
            out.push(KeySlot { place: place.clone(), key: key.clone() });
        }
    }
}

/// Where a scan for data keys resumes: just after this record. The scan
/// walks current versions, then noncurrent ones, then uploads' parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCursor {
    Current(Vec<u8>),
    /// Object key and the engine's position among its noncurrent versions.
    Noncurrent(Vec<u8>, u64),
    Upload(Vec<u8>, UploadId),
}

/// What erasing a bucket removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EraseReport {
    pub versions: u64,
    pub uploads: u64,
    pub blobs: u64,
}

/// A KEK to destroy in the custodian: recorded before it is tried (in the
/// erasing transaction for an erasure), kept until the custodian confirms,
/// retried meanwhile by every gateway's background job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KekDestroy {
    /// The custodian's id of the KEK.
    pub kek: String,
    /// The bucket it belonged to, for the operator.
    pub bucket: String,
    pub since: UnixNanos,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub last_attempt: Option<UnixNanos>,
}

impl KekDestroy {
    pub fn new(kek: &BucketKek, bucket: &BucketName) -> Self {
        Self {
            kek: kek.id.clone(),
            bucket: bucket.to_string(),
            since: UnixNanos::now(),
            attempts: 0,
            last_error: None,
            last_attempt: None,
        }
    }
}

/// Everything a metadata engine stores, as one trait object for the object
/// service. Each role below is its own trait, implemented in its own file of
/// each engine; a component that needs one role names only that one.
pub trait MetaStore:
    BucketMeta + DataKeyMeta + ObjectMeta + UploadMeta + BlobLedger + AccessKeyMeta + SettingMeta + KekLedger
{
}

impl<T> MetaStore for T where
    T: BucketMeta + DataKeyMeta + ObjectMeta + UploadMeta + BlobLedger + AccessKeyMeta + SettingMeta + KekLedger
{
}

/// Buckets and their configuration.
#[async_trait]
pub trait BucketMeta: Send + Sync + 'static {
    /// Fails with `BucketAlreadyOwnedByYou` or `BucketAlreadyExists` when taken.
    async fn create_bucket(&self, bucket: BucketRecord) -> Result<()>;
    async fn bucket(&self, name: &BucketName) -> Result<Option<BucketRecord>>;
    async fn buckets(&self) -> Result<Vec<BucketRecord>>;
    /// Deletes the bucket and, in the same transaction, the unfinished
    /// uploads `aborting` names, their parts' blobs queued for collection.
    /// Fails with `BucketNotEmpty`, changing nothing, while any version
    /// remains or any upload outside `aborting` ([`BucketRemoval::check`]).
    async fn delete_bucket(&self, name: &BucketName, aborting: &BucketRemoval) -> Result<()>;
    async fn bucket_usage(&self, name: &BucketName) -> Result<BucketUsage>;
    async fn update_bucket(&self, name: &BucketName, change: BucketChange) -> Result<()>;
    /// Removes the bucket with everything in it, queueing its blobs for
    /// collection and recording `destroys` in the same transaction
    /// (crypto-erasure: the caller then destroys its KEKs). Fails with
    /// `ErasureLocked`, changing nothing, while a version is under an
    /// unexpired COMPLIANCE retention.
    async fn erase_bucket(&self, name: &BucketName, destroys: Vec<KekDestroy>) -> Result<EraseReport>;
}

/// Data keys wrapped by a bucket's KEKs, found and rewrapped for key rotation.
#[async_trait]
pub trait DataKeyMeta: Send + Sync + 'static {
    /// Data keys of the bucket wrapped by a KEK older than `generation`, in
    /// records after `after`, stopping once `limit` are found; the cursor to
    /// go on from, or `None` when the scan reached the end.
    async fn sealed_keys(
        &self,
        bucket: &BucketName,
        below_generation: u32,
        after: Option<KeyCursor>,
        limit: usize,
    ) -> Result<(Vec<KeySlot>, Option<KeyCursor>)>;
    /// Replaces data keys found by `sealed_keys` (matched by `key_id`) with
    /// their rewrapped form; a key changed or gone meanwhile is skipped.
    /// Returns how many were replaced.
    async fn replace_sealed_keys(&self, bucket: &BucketName, keys: Vec<KeySlot>) -> Result<usize>;
}

/// Object versions: the version rules applied, and listings.
#[async_trait]
pub trait ObjectMeta: Send + Sync + 'static {
    /// The current version, or the named one.
    async fn object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
    ) -> Result<Option<ObjectVersion>>;
    /// Makes `put.version` current, applying the bucket's versioning rule; the
    /// data of any version it replaces is queued for collection.
    async fn put_object(&self, put: PutObject) -> Result<()>;
    /// Deletes as S3 does for the bucket's versioning state. Removing a
    /// version under Object Lock fails with `Locked` (governance yields to
    /// `guard.bypass_governance`); a failed `guard.if_match` changes nothing;
    /// a bucket that is not `began_in` any more fails with `NoSuchBucket`.
    async fn delete_object(
        &self,
        bucket: &BucketName,
        began_in: BucketId,
        key: &ObjectKey,
        version: Option<&VersionId>,
        guard: &DeleteGuard,
    ) -> Result<DeleteOutcome>;
    /// Changes the current (or named) version's tags or lock; returns its id.
    /// A bucket that is not `began_in` any more fails with `NoSuchBucket`.
    async fn update_version(
        &self,
        bucket: &BucketName,
        began_in: BucketId,
        key: &ObjectKey,
        version: Option<&VersionId>,
        change: VersionChange,
        bypass_governance: bool,
    ) -> Result<VersionId>;
    /// Current versions (delete markers excluded) whose key starts with
    /// `prefix`, from `start` on in byte order, at most `limit`.
    async fn list_objects(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        start: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ListedObject>>;

    /// Every version and delete marker, in key order and newest first within
    /// a key, whose key starts with `prefix`, resuming at `from` (a key
    /// `Included` means all of its versions), at most `limit`.
    async fn list_versions(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        from: Bound<VersionCursor>,
        limit: usize,
    ) -> Result<Vec<ListedVersion>>;
}

/// Multipart uploads and their parts.
#[async_trait]
pub trait UploadMeta: Send + Sync + 'static {
    async fn create_upload(&self, upload: UploadRecord) -> Result<()>;
    async fn upload(&self, bucket: &BucketName, key: &ObjectKey, upload_id: &UploadId) -> Result<Option<UploadRecord>>;
    /// Records a part (replacing one of the same number, whose blob is queued
    /// for collection) and ends its blob's pending state (`register_pending`
    /// comes first, as for `put_object`). Fails with `NoSuchUpload` if the
    /// upload is gone.
    async fn put_part(&self, upload: &UploadRecord, part: PartRecord) -> Result<()>;
    async fn parts(&self, upload_id: &UploadId, after: u32, limit: usize) -> Result<Vec<PartRecord>>;
    /// Uploads in (key, upload id) order, after the given markers.
    async fn uploads(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        after: Option<(&[u8], Option<&UploadId>)>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>>;
    /// Atomically removes the upload and makes its object current.
    async fn complete_upload(&self, complete: CompleteUpload) -> Result<()>;
    async fn abort_upload(&self, bucket: &BucketName, key: &ObjectKey, upload_id: &UploadId) -> Result<()>;
}

/// Blob lifecycle: a blob is registered before its bytes are written, so a
/// crash between write and commit leaves a record to collect it by.
#[async_trait]
pub trait BlobLedger: Send + Sync + 'static {
    async fn register_pending(&self, blobs: &[BlobId]) -> Result<()>;
    /// Moves every pending blob to the collection queue (at start-up, when no
    /// write can still be in flight).
    async fn abandon_pending(&self) -> Result<usize>;
    /// Moves these pending blobs to the collection queue (a failed write).
    async fn release_pending(&self, blobs: &[BlobId]) -> Result<()>;
    /// Blobs queued before `enqueued_before`, at most `limit`, for the caller
    /// to delete. An engine that several collectors share hands each blob to
    /// one of them at a time: what it returned is hidden from the next calls
    /// for a while, and comes back then unless `forget_collected` was called.
    async fn collectable(&self, enqueued_before: UnixNanos, limit: usize) -> Result<Vec<BlobId>>;
    async fn forget_collected(&self, blobs: &[BlobId]) -> Result<()>;
}

/// Access keys and their sealed secrets.
#[async_trait]
pub trait AccessKeyMeta: Send + Sync + 'static {
    async fn put_access_key(&self, key: AccessKeyRecord) -> Result<()>;
    async fn access_key(&self, id: &AccessKeyId) -> Result<Option<AccessKeyRecord>>;
    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>>;
    /// Returns false when no such key existed.
    async fn delete_access_key(&self, id: &AccessKeyId) -> Result<bool>;
}

/// Settings of the deployment (e.g. which KEK wraps access-key secrets).
#[async_trait]
pub trait SettingMeta: Send + Sync + 'static {
    async fn setting(&self, name: &str) -> Result<Option<String>>;
    /// Sets `name` unless it is set already; returns the value in force.
    async fn put_setting_if_absent(&self, name: &str, value: &str) -> Result<String>;
}

/// KEKs whose destruction is owed: recorded first, forgotten once done.
#[async_trait]
pub trait KekLedger: Send + Sync + 'static {
    /// Records KEKs to destroy; one already recorded keeps its record.
    async fn queue_kek_destroys(&self, destroys: Vec<KekDestroy>) -> Result<()>;
    /// Every destruction still owed, oldest first.
    async fn kek_destroys(&self) -> Result<Vec<KekDestroy>>;
    /// The custodian destroyed it: forgotten.
    async fn kek_destroyed(&self, kek: &str) -> Result<()>;
    /// One more attempt failed, with why.
    async fn kek_destroy_failed(&self, kek: &str, error: &str) -> Result<()>;
}
