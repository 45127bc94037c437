//! The embedded metadata engine: one redb file, a group-committing writer.
//!
//! All writes go through the disk layer's group-commit writer
//! ([`coffre_disk::GroupCommit`]), so concurrent small PUTs share an fsync
//! instead of queueing for one each. A job checks all its conditions before
//! it writes anything, so a job that fails leaves nothing behind in the
//! shared transaction. Callers hear back only after the commit is durable.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::meta::{
    AccessKeyRecord, BucketChange, BucketRecord, BucketUsage, CompleteUpload, DeleteGuard, DeleteOutcome, EraseReport,
    KeyCursor, KeySlot, ListedObject, ListedVersion, MetaStore, ObjectVersion, PartRecord, PutObject, UploadRecord,
    VersionChange, VersionCursor, VersionMeta, Versioning, WriteCondition,
};
use coffre_core::types::{AccessKeyId, BlobId, BucketName, ObjectKey, UnixNanos, UploadId, VersionId};
use coffre_disk::GroupCommit;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase as _, ReadableTable, StorageBackend, TableDefinition,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::rekey;

pub(crate) type ObjKey<'a> = (&'a str, &'a [u8]);

pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// Current version of each key: `(bucket, key) → (seq, ObjectVersion)`.
pub(crate) const OBJECTS: TableDefinition<ObjKey, &[u8]> = TableDefinition::new("objects");
/// Noncurrent versions, newest first: `(bucket, key, u64::MAX - seq) → (seq, ObjectVersion)`.
pub(crate) const VERSIONS: TableDefinition<(&str, &[u8], u64), &[u8]> = TableDefinition::new("object_versions");
pub(crate) const UPLOADS: TableDefinition<(&str, &[u8], &str), &[u8]> = TableDefinition::new("multipart_uploads");
pub(crate) const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("multipart_parts");
/// Blobs being written: collected at start-up if their write never committed.
const PENDING: TableDefinition<u128, i64> = TableDefinition::new("pending_blobs");
/// Blobs no version refers to any more, with the time they were let go.
const GC_QUEUE: TableDefinition<u128, i64> = TableDefinition::new("gc_queue");
const ACCESS_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("access_keys");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");

/// Jobs a single commit may carry: enough to amortise the sync, few enough
/// that one slow batch does not hold many callers.
const MAX_BATCH: usize = 256;

pub(crate) fn meta_err(e: impl std::fmt::Display) -> Error {
    Error::Meta(e.to_string())
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(meta_err)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(meta_err)
}

/// Decodes `(seq, VersionMeta)` from a stored `(seq, ObjectVersion)` without
/// copying the inline data that follows it.
fn decode_meta(bytes: &[u8]) -> Result<VersionMeta> {
    let (_seq, rest): (u64, &[u8]) = postcard::take_from_bytes(bytes).map_err(meta_err)?;
    let (meta, _data): (VersionMeta, &[u8]) = postcard::take_from_bytes(rest).map_err(meta_err)?;
    Ok(meta)
}

pub struct EmbeddedMeta {
    db: Arc<Database>,
    writer: GroupCommit,
}

impl EmbeddedMeta {
    /// Opens or creates the database file, creating every table.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Durability::Immediate)
    }

    /// Commits are never synced: a power cut loses acknowledged writes. For
    /// benchmarks and the power-cut tests' negative control only.
    pub fn open_unsynced(path: &Path) -> Result<Self> {
        Self::open_with(path, Durability::None)
    }

    /// Opens or creates a database on `backend` instead of a file: the crash
    /// tests run it on a simulated disk that loses power.
    pub fn open_backend(backend: impl StorageBackend) -> Result<Self> {
        Self::start(Database::builder().create_with_backend(backend).map_err(meta_err)?, Durability::Immediate)
    }

    /// [`Self::open_backend`] with commits never synced, as
    /// [`Self::open_unsynced`]: the crash tests' negative control.
    pub fn open_backend_unsynced(backend: impl StorageBackend) -> Result<Self> {
        Self::start(Database::builder().create_with_backend(backend).map_err(meta_err)?, Durability::None)
    }

    fn open_with(path: &Path, durability: Durability) -> Result<Self> {
        Self::start(coffre_disk::open_database(path).map_err(meta_err)?, durability)
    }

    /// Creates every table, then starts the writer thread.
    fn start(db: Database, durability: Durability) -> Result<Self> {
        let db = Arc::new(db);
        let txn = db.begin_write().map_err(meta_err)?;
        {
            txn.open_table(BUCKETS).map_err(meta_err)?;
            txn.open_table(OBJECTS).map_err(meta_err)?;
            txn.open_table(VERSIONS).map_err(meta_err)?;
            txn.open_table(UPLOADS).map_err(meta_err)?;
            txn.open_table(PARTS).map_err(meta_err)?;
            txn.open_table(PENDING).map_err(meta_err)?;
            txn.open_table(GC_QUEUE).map_err(meta_err)?;
            txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            txn.open_table(SETTINGS).map_err(meta_err)?;
        }
        txn.commit().map_err(meta_err)?;

        let writer = GroupCommit::start("coffre-meta-writer", db.clone(), durability, MAX_BATCH).map_err(meta_err)?;
        Ok(Self { db, writer })
    }

    /// Runs `f` in the next group commit; resolves once that commit is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.writer.write(f).await.map_err(|e| Error::Meta(format!("metadata {e}")))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(meta_err)?;
            f(&txn)
        })
        .await
        .map_err(meta_err)?
    }
}

// ----- helpers that run inside a transaction -----

fn get_bucket(txn: &WriteTransaction, name: &str) -> Result<Option<BucketRecord>> {
    let t = txn.open_table(BUCKETS).map_err(meta_err)?;
    t.get(name).map_err(meta_err)?.map(|v| decode(v.value())).transpose()
}

pub(crate) fn enqueue_gc(txn: &WriteTransaction, blobs: &[BlobId]) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let now = UnixNanos::now().0;
    let mut gc = txn.open_table(GC_QUEUE).map_err(meta_err)?;
    for b in blobs {
        gc.insert(b.0, now).map_err(meta_err)?;
    }
    Ok(())
}

fn clear_pending(txn: &WriteTransaction, blobs: &[BlobId]) -> Result<()> {
    let mut p = txn.open_table(PENDING).map_err(meta_err)?;
    for b in blobs {
        p.remove(b.0).map_err(meta_err)?;
    }
    Ok(())
}

fn current(txn: &WriteTransaction, bucket: &str, key: &[u8]) -> Result<Option<(u64, ObjectVersion)>> {
    let t = txn.open_table(OBJECTS).map_err(meta_err)?;
    t.get((bucket, key)).map_err(meta_err)?.map(|v| decode(v.value())).transpose()
}

pub(crate) fn check_condition(cond: &WriteCondition, current: Option<&ObjectVersion>) -> Result<()> {
    let live = current.filter(|v| !v.meta.delete_marker);
    match cond {
        WriteCondition::None => Ok(()),
        WriteCondition::KeyAbsent if live.is_some() => Err(Error::PreconditionFailed),
        WriteCondition::KeyAbsent => Ok(()),
        WriteCondition::EtagMatches(etag) => match live {
            None => Err(Error::NoSuchKey),
            Some(v) if &v.meta.etag != etag => Err(Error::PreconditionFailed),
            Some(_) => Ok(()),
        },
    }
}

/// Makes `version` the current version of `key`, keeping or dropping the old
/// current one as the bucket's versioning state says. Checks first, then writes.
fn apply_put(
    txn: &WriteTransaction,
    bucket: &BucketName,
    key: &ObjectKey,
    version: ObjectVersion,
    cond: &WriteCondition,
) -> Result<()> {
    let record = get_bucket(txn, bucket.as_str())?.ok_or(Error::NoSuchBucket)?;
    record.check_sealed(&version.data.keys())?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let old = current(txn, b, k)?;
    check_condition(cond, old.as_ref().map(|(_, v)| v))?;
    let seq = old.as_ref().map_or(1, |(s, _)| s + 1);
    let mut garbage = Vec::new();
    if let Some((old_seq, old_version)) = old {
        let keep_old = match record.versioning {
            Versioning::Unversioned => false,
            Versioning::Enabled => true,
            Versioning::Suspended => old_version.meta.version_id != VersionId::Null,
        };
        if keep_old {
            let mut t = txn.open_table(VERSIONS).map_err(meta_err)?;
            t.insert((b, k, u64::MAX - old_seq), encode(&(old_seq, &old_version))?.as_slice()).map_err(meta_err)?;
        } else {
            garbage.extend(old_version.data.blobs());
        }
    }
    if version.meta.version_id == VersionId::Null && record.versioning != Versioning::Unversioned {
        // Only one null version may exist: a new one replaces a noncurrent one.
        let mut t = txn.open_table(VERSIONS).map_err(meta_err)?;
        for (rev, _, v) in noncurrent_in(&t, b, k)? {
            if v.meta.version_id == VersionId::Null {
                garbage.extend(v.data.blobs());
                t.remove((b, k, rev)).map_err(meta_err)?;
            }
        }
    }
    let mut t = txn.open_table(OBJECTS).map_err(meta_err)?;
    t.insert((b, k), encode(&(seq, &version))?.as_slice()).map_err(meta_err)?;
    drop(t);
    enqueue_gc(txn, &garbage)
}

/// Applies a configuration change to a bucket's record (both engines).
pub(crate) fn apply_bucket_change(record: &mut BucketRecord, change: BucketChange) -> Result<()> {
    match change {
        BucketChange::Versioning(Versioning::Unversioned) => {
            return Err(Error::InvalidArgument("a bucket's versioning can be Enabled or Suspended only".into()));
        }
        BucketChange::Versioning(Versioning::Suspended) if record.object_lock.is_some() => {
            return Err(Error::InvalidBucketState(
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
                    .into(),
            ));
        }
        BucketChange::Versioning(v) => record.versioning = v,
        BucketChange::Tags(tags) => record.tags = tags,
        BucketChange::Lifecycle(config) => record.lifecycle = config,
        BucketChange::DefaultRetention(default) => {
            let config = record.object_lock.as_mut().ok_or(Error::NoLockConfiguration)?;
            config.default_retention = default;
        }
        BucketChange::Encryption(config) => record.encryption = config,
        BucketChange::Residency(policy) => record.residency = policy,
        BucketChange::AddKek(kek) => record.keks.push(kek),
        BucketChange::DropKeksBefore(generation) => record.keks.retain(|k| k.generation >= generation),
    }
    Ok(())
}

/// Noncurrent versions of one key, newest first, with their table positions.
pub(crate) fn noncurrent_in(
    t: &redb::Table<(&str, &[u8], u64), &[u8]>,
    bucket: &str,
    key: &[u8],
) -> Result<Vec<(u64, u64, ObjectVersion)>> {
    let mut out = Vec::new();
    for row in t.range((bucket, key, 0u64)..=(bucket, key, u64::MAX)).map_err(meta_err)? {
        let (k, v) = row.map_err(meta_err)?;
        let (seq, version): (u64, ObjectVersion) = decode(v.value())?;
        out.push((k.value().2, seq, version));
    }
    Ok(out)
}

pub(crate) fn delete_marker(owner: coffre_core::types::AccessKeyId, version_id: VersionId) -> ObjectVersion {
    ObjectVersion {
        meta: VersionMeta {
            version_id,
            delete_marker: true,
            size: 0,
            etag: String::new(),
            last_modified: UnixNanos::now(),
            owner,
            headers: Default::default(),
            user_meta: Vec::new(),
            checksums: Default::default(),
            checksum_composite: false,
            tags: Vec::new(),
            lock: Default::default(),
            sse: Default::default(),
        },
        data: coffre_core::meta::DataLocation::None,
    }
}

fn apply_delete(
    txn: &WriteTransaction,
    bucket: &BucketName,
    key: &ObjectKey,
    version: Option<&VersionId>,
    guard: &DeleteGuard,
) -> Result<DeleteOutcome> {
    let record = get_bucket(txn, bucket.as_str())?.ok_or(Error::NoSuchBucket)?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let old = current(txn, b, k)?;
    if let Some(etag) = &guard.if_match {
        let target = match version {
            None => old.as_ref().map(|(_, v)| v.clone()),
            Some(id) => find_version(txn, b, k, old.as_ref(), id)?,
        };
        check_condition(&WriteCondition::EtagMatches(etag.clone()), target.as_ref())?;
    }
    match (version, record.versioning) {
        (None, Versioning::Unversioned) => {
            if let Some((_, v)) = old {
                txn.open_table(OBJECTS).map_err(meta_err)?.remove((b, k)).map_err(meta_err)?;
                enqueue_gc(txn, &v.data.blobs())?;
            }
            Ok(DeleteOutcome { version_id: None, delete_marker: false })
        }
        (None, versioning) => {
            let id = if versioning == Versioning::Enabled { VersionId::generate() } else { VersionId::Null };
            let marker = delete_marker(record.owner.clone(), id.clone());
            apply_put(txn, bucket, key, marker, &WriteCondition::None)?;
            Ok(DeleteOutcome { version_id: Some(id), delete_marker: true })
        }
        (Some(wanted), _) => delete_version(txn, b, k, old, wanted, guard.bypass_governance),
    }
}

/// The named version of a key, current or not.
fn find_version(
    txn: &WriteTransaction,
    b: &str,
    k: &[u8],
    current: Option<&(u64, ObjectVersion)>,
    id: &VersionId,
) -> Result<Option<ObjectVersion>> {
    if let Some((_, v)) = current.filter(|(_, v)| &v.meta.version_id == id) {
        return Ok(Some(v.clone()));
    }
    let t = txn.open_table(VERSIONS).map_err(meta_err)?;
    Ok(noncurrent_in(&t, b, k)?.into_iter().find(|(_, _, v)| &v.meta.version_id == id).map(|(_, _, v)| v))
}

/// Removes one named version; if it was current, the newest noncurrent one takes its place.
fn delete_version(
    txn: &WriteTransaction,
    b: &str,
    k: &[u8],
    old: Option<(u64, ObjectVersion)>,
    wanted: &VersionId,
    bypass_governance: bool,
) -> Result<DeleteOutcome> {
    let now = UnixNanos::now();
    if let Some((_, v)) = old.as_ref().filter(|(_, v)| &v.meta.version_id == wanted) {
        v.meta.lock.check_delete(now, bypass_governance)?;
        let was_marker = v.meta.delete_marker;
        let garbage = v.data.blobs();
        let mut versions = txn.open_table(VERSIONS).map_err(meta_err)?;
        let promoted = noncurrent_in(&versions, b, k)?.into_iter().next();
        let mut objects = txn.open_table(OBJECTS).map_err(meta_err)?;
        match promoted {
            Some((rev, seq, next)) => {
                versions.remove((b, k, rev)).map_err(meta_err)?;
                objects.insert((b, k), encode(&(seq, &next))?.as_slice()).map_err(meta_err)?;
            }
            None => {
                objects.remove((b, k)).map_err(meta_err)?;
            }
        }
        drop((versions, objects));
        enqueue_gc(txn, &garbage)?;
        return Ok(DeleteOutcome { version_id: Some(wanted.clone()), delete_marker: was_marker });
    }
    let mut versions = txn.open_table(VERSIONS).map_err(meta_err)?;
    let found = noncurrent_in(&versions, b, k)?.into_iter().find(|(_, _, v)| &v.meta.version_id == wanted);
    let Some((rev, _, v)) = found else {
        // S3 answers a delete of a version that is not there with success.
        return Ok(DeleteOutcome { version_id: Some(wanted.clone()), delete_marker: false });
    };
    v.meta.lock.check_delete(now, bypass_governance)?;
    versions.remove((b, k, rev)).map_err(meta_err)?;
    drop(versions);
    enqueue_gc(txn, &v.data.blobs())?;
    Ok(DeleteOutcome { version_id: Some(wanted.clone()), delete_marker: v.meta.delete_marker })
}

fn upload_parts(txn: &WriteTransaction, upload_id: &str) -> Result<Vec<PartRecord>> {
    let t = txn.open_table(PARTS).map_err(meta_err)?;
    let mut out = Vec::new();
    for row in t.range((upload_id, 0u32)..=(upload_id, u32::MAX)).map_err(meta_err)? {
        let (_, v) = row.map_err(meta_err)?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Removes an upload and all its parts, returning the parts.
pub(crate) fn remove_upload(txn: &WriteTransaction, upload: (&str, &[u8], &str)) -> Result<Vec<PartRecord>> {
    let parts = upload_parts(txn, upload.2)?;
    let mut t = txn.open_table(PARTS).map_err(meta_err)?;
    for p in &parts {
        t.remove((upload.2, p.number)).map_err(meta_err)?;
    }
    txn.open_table(UPLOADS).map_err(meta_err)?.remove(upload).map_err(meta_err)?;
    Ok(parts)
}

fn upload_exists(txn: &WriteTransaction, upload: (&str, &[u8], &str)) -> Result<bool> {
    Ok(txn.open_table(UPLOADS).map_err(meta_err)?.get(upload).map_err(meta_err)?.is_some())
}

pub(crate) fn prefix_start<'a>(prefix: &'a [u8], start: Bound<&'a [u8]>) -> Bound<&'a [u8]> {
    match start {
        Bound::Unbounded => Bound::Included(prefix),
        Bound::Included(s) => Bound::Included(s.max(prefix)),
        Bound::Excluded(s) if s < prefix => Bound::Included(prefix),
        Bound::Excluded(s) => Bound::Excluded(s),
    }
}

#[async_trait]
impl MetaStore for EmbeddedMeta {
    async fn create_bucket(&self, bucket: BucketRecord) -> Result<()> {
        self.write(move |txn| {
            let name = bucket.name.as_str();
            if let Some(existing) = get_bucket(txn, name)? {
                return Err(if existing.owner == bucket.owner {
                    Error::BucketAlreadyOwnedByYou
                } else {
                    Error::BucketAlreadyExists
                });
            }
            let mut t = txn.open_table(BUCKETS).map_err(meta_err)?;
            t.insert(name, encode(&bucket)?.as_slice()).map_err(meta_err)?;
            Ok(())
        })
        .await
    }

    async fn bucket(&self, name: &BucketName) -> Result<Option<BucketRecord>> {
        let name = name.clone();
        self.read(move |txn| {
            let t = txn.open_table(BUCKETS).map_err(meta_err)?;
            t.get(name.as_str()).map_err(meta_err)?.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn buckets(&self) -> Result<Vec<BucketRecord>> {
        self.read(|txn| {
            let t = txn.open_table(BUCKETS).map_err(meta_err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(meta_err)? {
                out.push(decode(row.map_err(meta_err)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_bucket(&self, name: &BucketName) -> Result<()> {
        let name = name.clone();
        self.write(move |txn| {
            let b = name.as_str();
            get_bucket(txn, b)?.ok_or(Error::NoSuchBucket)?;
            let lo: &[u8] = &[];
            let has_objects = txn
                .open_table(OBJECTS)
                .map_err(meta_err)?
                .range((b, lo)..)
                .map_err(meta_err)?
                .next()
                .transpose()
                .map_err(meta_err)?
                .is_some_and(|(k, _)| k.value().0 == b);
            let has_versions = txn
                .open_table(VERSIONS)
                .map_err(meta_err)?
                .range((b, lo, 0u64)..)
                .map_err(meta_err)?
                .next()
                .transpose()
                .map_err(meta_err)?
                .is_some_and(|(k, _)| k.value().0 == b);
            let has_uploads = txn
                .open_table(UPLOADS)
                .map_err(meta_err)?
                .range((b, lo, "")..)
                .map_err(meta_err)?
                .next()
                .transpose()
                .map_err(meta_err)?
                .is_some_and(|(k, _)| k.value().0 == b);
            if has_objects || has_versions || has_uploads {
                return Err(Error::BucketNotEmpty);
            }
            txn.open_table(BUCKETS).map_err(meta_err)?.remove(b).map_err(meta_err)?;
            Ok(())
        })
        .await
    }

    async fn erase_bucket(&self, name: &BucketName) -> Result<EraseReport> {
        let name = name.clone();
        self.write(move |txn| rekey::erase_bucket(txn, name.as_str())).await
    }

    async fn sealed_keys(
        &self,
        bucket: &BucketName,
        below_generation: u32,
        after: Option<KeyCursor>,
        limit: usize,
    ) -> Result<(Vec<KeySlot>, Option<KeyCursor>)> {
        let bucket = bucket.clone();
        self.read(move |txn| rekey::sealed_keys(txn, bucket.as_str(), below_generation, after, limit)).await
    }

    async fn replace_sealed_keys(&self, bucket: &BucketName, keys: Vec<KeySlot>) -> Result<usize> {
        let bucket = bucket.clone();
        self.write(move |txn| rekey::replace_sealed_keys(txn, bucket.as_str(), keys)).await
    }

    async fn bucket_usage(&self, name: &BucketName) -> Result<BucketUsage> {
        let name = name.clone();
        self.read(move |txn| {
            let b = name.as_str();
            let lo: &[u8] = &[];
            let mut usage = BucketUsage::default();
            let objects = txn.open_table(OBJECTS).map_err(meta_err)?;
            for row in objects.range((b, lo)..).map_err(meta_err)? {
                let (k, v) = row.map_err(meta_err)?;
                if k.value().0 != b {
                    break;
                }
                let meta = decode_meta(v.value())?;
                if !meta.delete_marker {
                    usage.objects += 1;
                    usage.bytes += meta.size;
                }
            }
            let uploads = txn.open_table(UPLOADS).map_err(meta_err)?;
            for row in uploads.range((b, lo, "")..).map_err(meta_err)? {
                if row.map_err(meta_err)?.0.value().0 != b {
                    break;
                }
                usage.uploads += 1;
            }
            Ok(usage)
        })
        .await
    }

    async fn update_bucket(&self, name: &BucketName, change: BucketChange) -> Result<()> {
        let name = name.clone();
        self.write(move |txn| {
            let mut record = get_bucket(txn, name.as_str())?.ok_or(Error::NoSuchBucket)?;
            apply_bucket_change(&mut record, change)?;
            let mut t = txn.open_table(BUCKETS).map_err(meta_err)?;
            t.insert(name.as_str(), encode(&record)?.as_slice()).map_err(meta_err)?;
            Ok(())
        })
        .await
    }

    async fn list_versions(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        from: Bound<VersionCursor>,
        limit: usize,
    ) -> Result<Vec<ListedVersion>> {
        let (bucket, prefix) = (bucket.clone(), prefix.to_vec());
        self.read(move |txn| {
            let b = bucket.as_str();
            let objects = txn.open_table(OBJECTS).map_err(meta_err)?;
            let versions = txn.open_table(VERSIONS).map_err(meta_err)?;
            // Within the first key, skip versions up to and including this one.
            let (start, mut skip_until) = match &from {
                Bound::Unbounded => (Bound::Included(prefix.clone()), None),
                Bound::Included(c) => (Bound::Included(c.key.clone().max(prefix.clone())), None),
                Bound::Excluded(c) if c.key < prefix => (Bound::Included(prefix.clone()), None),
                Bound::Excluded(VersionCursor { key, after_version: Some(v) }) => {
                    (Bound::Included(key.clone()), Some((key.clone(), v.clone())))
                }
                Bound::Excluded(c) => (Bound::Excluded(c.key.clone()), None),
            };
            let lower = match &start {
                Bound::Included(k) => Bound::Included((b, k.as_slice())),
                Bound::Excluded(k) => Bound::Excluded((b, k.as_slice())),
                Bound::Unbounded => Bound::Unbounded,
            };
            let mut out = Vec::new();
            // Every key with noncurrent versions has a current row, so walking
            // `objects` and then each key's history visits every version.
            for row in objects.range::<ObjKey>((lower, Bound::Unbounded)).map_err(meta_err)? {
                let (k, v) = row.map_err(meta_err)?;
                let (kb, kk) = k.value();
                if kb != b || !kk.starts_with(&prefix) {
                    break;
                }
                let key = ObjectKey::parse(std::str::from_utf8(kk).map_err(meta_err)?)?;
                let mut all = vec![(decode_meta(v.value())?, true)];
                for old in versions.range((b, kk, 0u64)..=(b, kk, u64::MAX)).map_err(meta_err)? {
                    all.push((decode_meta(old.map_err(meta_err)?.1.value())?, false));
                }
                for (meta, is_latest) in all {
                    if let Some((skip_key, skip_version)) = &skip_until {
                        if skip_key.as_slice() == kk {
                            if &meta.version_id == skip_version {
                                skip_until = None;
                            }
                            continue;
                        }
                        skip_until = None;
                    }
                    if out.len() == limit {
                        return Ok(out);
                    }
                    out.push(ListedVersion { key: key.clone(), meta, is_latest });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
    ) -> Result<Option<ObjectVersion>> {
        let (bucket, key, version) = (bucket.clone(), key.clone(), version.cloned());
        self.read(move |txn| {
            let (b, k) = (bucket.as_str(), key.as_bytes());
            let objects = txn.open_table(OBJECTS).map_err(meta_err)?;
            let cur: Option<(u64, ObjectVersion)> =
                objects.get((b, k)).map_err(meta_err)?.map(|v| decode(v.value())).transpose()?;
            let Some(wanted) = version else { return Ok(cur.map(|(_, v)| v)) };
            if let Some((_, v)) = cur.filter(|(_, v)| v.meta.version_id == wanted) {
                return Ok(Some(v));
            }
            let versions = txn.open_table(VERSIONS).map_err(meta_err)?;
            for row in versions.range((b, k, 0u64)..=(b, k, u64::MAX)).map_err(meta_err)? {
                let (_, v) = row.map_err(meta_err)?;
                let (_, version): (u64, ObjectVersion) = decode(v.value())?;
                if version.meta.version_id == wanted {
                    return Ok(Some(version));
                }
            }
            Ok(None)
        })
        .await
    }

    async fn put_object(&self, put: PutObject) -> Result<()> {
        self.write(move |txn| {
            apply_put(txn, &put.bucket, &put.key, put.version, &put.condition)?;
            clear_pending(txn, &put.pending)
        })
        .await
    }

    async fn delete_object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
        guard: &DeleteGuard,
    ) -> Result<DeleteOutcome> {
        let (bucket, key, version, guard) = (bucket.clone(), key.clone(), version.cloned(), guard.clone());
        self.write(move |txn| apply_delete(txn, &bucket, &key, version.as_ref(), &guard)).await
    }

    async fn update_version(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
        change: VersionChange,
        bypass_governance: bool,
    ) -> Result<VersionId> {
        let (bucket, key, version) = (bucket.clone(), key.clone(), version.cloned());
        self.write(move |txn| {
            let record = get_bucket(txn, bucket.as_str())?.ok_or(Error::NoSuchBucket)?;
            let (b, k) = (bucket.as_str(), key.as_bytes());
            let cur = current(txn, b, k)?;
            // Find the version: the current row, or a noncurrent one by id.
            let (slot, seq, mut target) = match (cur, &version) {
                (Some((seq, v)), None) => (None, seq, v),
                (Some((seq, v)), Some(id)) if &v.meta.version_id == id => (None, seq, v),
                (_, Some(id)) => {
                    let t = txn.open_table(VERSIONS).map_err(meta_err)?;
                    let found = noncurrent_in(&t, b, k)?.into_iter().find(|(_, _, v)| &v.meta.version_id == id);
                    let (rev, seq, v) = found.ok_or(Error::NoSuchVersion)?;
                    (Some(rev), seq, v)
                }
                (None, None) => return Err(Error::NoSuchKey),
            };
            if target.meta.delete_marker {
                return Err(Error::DeleteMarker { version_id: target.meta.version_id, named: version.is_some() });
            }
            let lock_change = matches!(change, VersionChange::Retention(_) | VersionChange::LegalHold(_));
            if lock_change && record.object_lock.is_none() {
                return Err(Error::NoLockConfiguration);
            }
            match change {
                VersionChange::Tags(tags) => target.meta.tags = tags,
                VersionChange::Retention(r) => {
                    target.meta.lock.check_retention_change(r, UnixNanos::now(), bypass_governance)?;
                    target.meta.lock.retention = r;
                }
                VersionChange::LegalHold(on) => target.meta.lock.legal_hold = on,
            }
            let id = target.meta.version_id.clone();
            let bytes = encode(&(seq, &target))?;
            match slot {
                None => txn.open_table(OBJECTS).map_err(meta_err)?.insert((b, k), bytes.as_slice()).map(drop),
                Some(rev) => {
                    txn.open_table(VERSIONS).map_err(meta_err)?.insert((b, k, rev), bytes.as_slice()).map(drop)
                }
            }
            .map_err(meta_err)?;
            Ok(id)
        })
        .await
    }

    async fn list_objects(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        start: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ListedObject>> {
        let bucket = bucket.clone();
        let prefix = prefix.to_vec();
        let start: Bound<Vec<u8>> = start.map(<[u8]>::to_vec);
        self.read(move |txn| {
            let b = bucket.as_str();
            let t = txn.open_table(OBJECTS).map_err(meta_err)?;
            let lower = match prefix_start(&prefix, start.as_ref().map(Vec::as_slice)) {
                Bound::Included(s) => Bound::Included((b, s)),
                Bound::Excluded(s) => Bound::Excluded((b, s)),
                Bound::Unbounded => Bound::Unbounded,
            };
            let mut out = Vec::new();
            for row in t.range::<ObjKey>((lower, Bound::Unbounded)).map_err(meta_err)? {
                let (k, v) = row.map_err(meta_err)?;
                let (kb, kk) = k.value();
                if kb != b || !kk.starts_with(&prefix) || out.len() == limit {
                    break;
                }
                let meta = decode_meta(v.value())?;
                if meta.delete_marker {
                    continue;
                }
                let key = std::str::from_utf8(kk).map_err(meta_err)?;
                out.push(ListedObject { key: ObjectKey::parse(key)?, meta });
            }
            Ok(out)
        })
        .await
    }

    async fn create_upload(&self, upload: UploadRecord) -> Result<()> {
        self.write(move |txn| {
            get_bucket(txn, upload.bucket.as_str())?.ok_or(Error::NoSuchBucket)?;
            let mut t = txn.open_table(UPLOADS).map_err(meta_err)?;
            let key = (upload.bucket.as_str(), upload.key.as_bytes(), upload.upload_id.as_str());
            t.insert(key, encode(&upload)?.as_slice()).map_err(meta_err)?;
            Ok(())
        })
        .await
    }

    async fn upload(&self, bucket: &BucketName, key: &ObjectKey, upload_id: &UploadId) -> Result<Option<UploadRecord>> {
        let (bucket, key, id) = (bucket.clone(), key.clone(), upload_id.clone());
        self.read(move |txn| {
            let t = txn.open_table(UPLOADS).map_err(meta_err)?;
            t.get((bucket.as_str(), key.as_bytes(), id.as_str()))
                .map_err(meta_err)?
                .map(|v| decode(v.value()))
                .transpose()
        })
        .await
    }

    async fn put_part(&self, upload: &UploadRecord, part: PartRecord) -> Result<()> {
        let upload = upload.clone();
        self.write(move |txn| {
            let id = upload.upload_id.as_str();
            if !upload_exists(txn, (upload.bucket.as_str(), upload.key.as_bytes(), id))? {
                return Err(Error::NoSuchUpload);
            }
            get_bucket(txn, upload.bucket.as_str())?.ok_or(Error::NoSuchBucket)?.check_sealed(&[&part.key])?;
            let mut t = txn.open_table(PARTS).map_err(meta_err)?;
            let replaced: Option<PartRecord> =
                t.get((id, part.number)).map_err(meta_err)?.map(|v| decode(v.value())).transpose()?;
            t.insert((id, part.number), encode(&part)?.as_slice()).map_err(meta_err)?;
            drop(t);
            if let Some(old) = replaced {
                enqueue_gc(txn, &[old.blob])?;
            }
            clear_pending(txn, &[part.blob])
        })
        .await
    }

    async fn parts(&self, upload_id: &UploadId, after: u32, limit: usize) -> Result<Vec<PartRecord>> {
        let id = upload_id.clone();
        self.read(move |txn| {
            let t = txn.open_table(PARTS).map_err(meta_err)?;
            let mut out = Vec::new();
            let lower = (id.as_str(), after.saturating_add(1));
            for row in t.range(lower..=(id.as_str(), u32::MAX)).map_err(meta_err)? {
                if out.len() == limit || after == u32::MAX {
                    break;
                }
                out.push(decode(row.map_err(meta_err)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn uploads(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        after: Option<(&[u8], Option<&UploadId>)>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>> {
        let bucket = bucket.clone();
        let prefix = prefix.to_vec();
        let after = after.map(|(k, u)| (k.to_vec(), u.map(|u| u.as_str().to_owned())));
        self.read(move |txn| {
            let b = bucket.as_str();
            let t = txn.open_table(UPLOADS).map_err(meta_err)?;
            // Upload ids are lowercase hex, so "~" sorts after all of them:
            // excluding (key, "~") skips every upload of `key`.
            let lower = match &after {
                Some((k, Some(u))) if k.as_slice() >= prefix.as_slice() => {
                    Bound::Excluded((b, k.as_slice(), u.as_str()))
                }
                Some((k, None)) if k.as_slice() >= prefix.as_slice() => Bound::Excluded((b, k.as_slice(), "~")),
                _ => Bound::Included((b, prefix.as_slice(), "")),
            };
            let mut out = Vec::new();
            for row in t.range::<(&str, &[u8], &str)>((lower, Bound::Unbounded)).map_err(meta_err)? {
                let (k, v) = row.map_err(meta_err)?;
                let (kb, kk, _) = k.value();
                if kb != b || !kk.starts_with(&prefix) || out.len() == limit {
                    break;
                }
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn complete_upload(&self, complete: CompleteUpload) -> Result<()> {
        self.write(move |txn| {
            let u = &complete.upload;
            let key = (u.bucket.as_str(), u.key.as_bytes(), u.upload_id.as_str());
            if !upload_exists(txn, key)? {
                return Err(Error::NoSuchUpload);
            }
            // Every check before the first write: the transaction is shared.
            get_bucket(txn, u.bucket.as_str())?
                .ok_or(Error::NoSuchBucket)?
                .check_sealed(&complete.version.data.keys())?;
            let existing = current(txn, u.bucket.as_str(), u.key.as_bytes())?;
            check_condition(&complete.condition, existing.as_ref().map(|(_, v)| v))?;
            let parts = remove_upload(txn, key)?;
            let unused: Vec<BlobId> =
                parts.iter().filter(|p| !complete.keep.contains(&p.number)).map(|p| p.blob).collect();
            enqueue_gc(txn, &unused)?;
            apply_put(txn, &u.bucket, &u.key, complete.version, &WriteCondition::None)
        })
        .await
    }

    async fn abort_upload(&self, bucket: &BucketName, key: &ObjectKey, upload_id: &UploadId) -> Result<()> {
        let (bucket, key, id) = (bucket.clone(), key.clone(), upload_id.clone());
        self.write(move |txn| {
            let k = (bucket.as_str(), key.as_bytes(), id.as_str());
            if !upload_exists(txn, k)? {
                return Err(Error::NoSuchUpload);
            }
            let parts = remove_upload(txn, k)?;
            enqueue_gc(txn, &parts.iter().map(|p| p.blob).collect::<Vec<_>>())
        })
        .await
    }

    async fn register_pending(&self, blobs: &[BlobId]) -> Result<()> {
        let blobs = blobs.to_vec();
        self.write(move |txn| {
            let now = UnixNanos::now().0;
            let mut t = txn.open_table(PENDING).map_err(meta_err)?;
            for b in blobs {
                t.insert(b.0, now).map_err(meta_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn abandon_pending(&self) -> Result<usize> {
        self.write(|txn| {
            let mut pending = txn.open_table(PENDING).map_err(meta_err)?;
            let mut ids = Vec::new();
            for row in pending.iter().map_err(meta_err)? {
                ids.push(BlobId(row.map_err(meta_err)?.0.value()));
            }
            for id in &ids {
                pending.remove(id.0).map_err(meta_err)?;
            }
            drop(pending);
            enqueue_gc(txn, &ids)?;
            Ok(ids.len())
        })
        .await
    }

    async fn release_pending(&self, blobs: &[BlobId]) -> Result<()> {
        let blobs = blobs.to_vec();
        self.write(move |txn| {
            clear_pending(txn, &blobs)?;
            enqueue_gc(txn, &blobs)
        })
        .await
    }

    async fn collectable(&self, enqueued_before: UnixNanos, limit: usize) -> Result<Vec<BlobId>> {
        self.read(move |txn| {
            let t = txn.open_table(GC_QUEUE).map_err(meta_err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(meta_err)? {
                let (k, v) = row.map_err(meta_err)?;
                if v.value() <= enqueued_before.0 {
                    out.push(BlobId(k.value()));
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn forget_collected(&self, blobs: &[BlobId]) -> Result<()> {
        let blobs = blobs.to_vec();
        self.write(move |txn| {
            let mut t = txn.open_table(GC_QUEUE).map_err(meta_err)?;
            for b in blobs {
                t.remove(b.0).map_err(meta_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn put_access_key(&self, key: AccessKeyRecord) -> Result<()> {
        self.write(move |txn| {
            let mut t = txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            t.insert(key.id.as_str(), encode(&key)?.as_slice()).map_err(meta_err)?;
            Ok(())
        })
        .await
    }

    async fn access_key(&self, id: &AccessKeyId) -> Result<Option<AccessKeyRecord>> {
        let id = id.clone();
        self.read(move |txn| {
            let t = txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            t.get(id.as_str()).map_err(meta_err)?.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        self.read(|txn| {
            let t = txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(meta_err)? {
                out.push(decode(row.map_err(meta_err)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_access_key(&self, id: &AccessKeyId) -> Result<bool> {
        let id = id.clone();
        self.write(move |txn| {
            let mut t = txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            Ok(t.remove(id.as_str()).map_err(meta_err)?.is_some())
        })
        .await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_owned();
        self.read(move |txn| {
            let t = txn.open_table(SETTINGS).map_err(meta_err)?;
            Ok(t.get(name.as_str()).map_err(meta_err)?.map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn put_setting_if_absent(&self, name: &str, value: &str) -> Result<String> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(move |txn| {
            let mut t = txn.open_table(SETTINGS).map_err(meta_err)?;
            if let Some(existing) = t.get(name.as_str()).map_err(meta_err)?.map(|v| v.value().to_owned()) {
                return Ok(existing);
            }
            t.insert(name.as_str(), value.as_str()).map_err(meta_err)?;
            Ok(value)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_database_is_built_aside_and_a_half_built_one_is_thrown_away() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("meta.redb");
        // What a power cut during an earlier first start could leave.
        std::fs::write(dir.path().join("meta.redb.new"), vec![0; 8192]).expect("leftover");
        let meta = EmbeddedMeta::open(&path).expect("open");
        assert!(!dir.path().join("meta.redb.new").exists());
        meta.put_setting_if_absent("k", "v").await.expect("write");
        drop(meta);
        // The writer thread lets go of the file once it sees the channel close.
        let mut reopened = EmbeddedMeta::open(&path);
        for _ in 0..200 {
            if reopened.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            reopened = EmbeddedMeta::open(&path);
        }
        let meta = reopened.expect("reopen");
        assert_eq!(meta.setting("k").await.expect("read").as_deref(), Some("v"));
    }
}
