//! [`MetaStore`] over SQL: each method one transaction (or one statement for
//! reads), with the same rules as the embedded engine, shared with it where
//! they do not touch storage (`check_condition`, bucket changes, key swaps).

use std::ops::Bound;

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::list::prefix_successor;
use coffre_core::meta::{
    AccessKeyRecord, BucketChange, BucketRecord, BucketUsage, CompleteUpload, DataLocation, DeleteGuard, DeleteOutcome,
    EraseReport, KeyCursor, KeyPlace, KeySlot, ListedObject, ListedVersion, MetaStore, ObjectVersion, PartRecord,
    PutObject, UploadRecord, VersionChange, VersionCursor, VersionMeta, Versioning, WriteCondition,
};
use coffre_core::types::{AccessKeyId, BlobId, BucketName, ObjectKey, UnixNanos, UploadId, VersionId};
use futures::FutureExt as _;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::cluster::{not_ours, sweep_dead};
use super::placement::{blob_id, blob_key};
use super::{PgMeta, Tx, TxError, TxResult, db_err};
use crate::embedded::{apply_bucket_change, check_condition, decode, delete_marker, encode, prefix_start};
use crate::rekey::{push_old, swap_key};

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Rows read per step when a scan has no natural limit.
const SCAN_BATCH: i64 = 256;

async fn query(tx: &Tx<'_>, sql: &str, params: &Params<'_>) -> TxResult<Vec<Row>> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.query(&stmt, params).await?)
}

async fn query_opt(tx: &Tx<'_>, sql: &str, params: &Params<'_>) -> TxResult<Option<Row>> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.query_opt(&stmt, params).await?)
}

async fn execute(tx: &Tx<'_>, sql: &str, params: &Params<'_>) -> TxResult<u64> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&stmt, params).await?)
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn object_key(bytes: &[u8]) -> Result<ObjectKey> {
    ObjectKey::parse(std::str::from_utf8(bytes).map_err(|e| Error::Meta(format!("a stored key: {e}")))?)
}

/// A version as a row holds it: its write counter and the version.
struct Stored {
    seq: i64,
    version: ObjectVersion,
}

/// From the columns `seq, meta, data`, starting at `at`.
fn stored(row: &Row, at: usize) -> TxResult<Stored> {
    let meta: VersionMeta = decode(row.get(at + 1))?;
    let data: DataLocation = decode(row.get(at + 2))?;
    Ok(Stored { seq: row.get(at), version: ObjectVersion { meta, data } })
}

fn data_blobs(bytes: &[u8]) -> TxResult<Vec<BlobId>> {
    Ok(decode::<DataLocation>(bytes)?.blobs())
}

// ----- pieces every write transaction shares -----

async fn bucket_row(tx: &Tx<'_>, name: &BucketName, sql: &str) -> TxResult<BucketRecord> {
    let row = query_opt(tx, sql, &[&name.as_str()]).await?.ok_or(Error::NoSuchBucket)?;
    Ok(decode(row.get(0))?)
}

/// The bucket, locked against configuration changes until commit.
async fn bucket_shared(tx: &Tx<'_>, name: &BucketName) -> TxResult<BucketRecord> {
    bucket_row(tx, name, "SELECT record FROM buckets WHERE name = $1 FOR SHARE").await
}

/// The key's current version, its row locked until commit.
async fn current(tx: &Tx<'_>, b: &str, k: &[u8]) -> TxResult<Option<Stored>> {
    let sql = "SELECT seq, meta, data FROM objects WHERE bucket = $1 AND key = $2 FOR UPDATE";
    query_opt(tx, sql, &[&b, &k]).await?.map(|row| stored(&row, 0)).transpose()
}

pub(crate) async fn enqueue_gc(tx: &Tx<'_>, blobs: &[Vec<u8>]) -> TxResult<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let sql = "INSERT INTO gc_queue (blob, enqueued_at) SELECT b, $2 FROM unnest($1::BYTEA[]) AS b
               ON CONFLICT (blob) DO NOTHING";
    execute(tx, sql, &[&blobs, &UnixNanos::now().0]).await.map(drop)
}

async fn enqueue_blobs(tx: &Tx<'_>, blobs: &[BlobId]) -> TxResult<()> {
    enqueue_gc(tx, &keys_of(blobs)).await
}

fn keys_of(blobs: &[BlobId]) -> Vec<Vec<u8>> {
    blobs.iter().map(|b| blob_key(*b).to_vec()).collect()
}

/// Ends the pending state of blobs a write now commits. Every one must still
/// be pending: a row gone means this gateway was presumed dead and the blob
/// queued for collection, so committing it would reference a deleted blob.
async fn clear_pending(tx: &Tx<'_>, blobs: &[BlobId]) -> TxResult<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let keys = keys_of(blobs);
    let cleared = execute(tx, "DELETE FROM pending_blobs WHERE blob = ANY($1)", &[&keys]).await?;
    if cleared < keys.len() as u64 {
        return Err(TxError::App(not_ours()));
    }
    Ok(())
}

async fn insert_noncurrent(tx: &Tx<'_>, b: &str, k: &[u8], old: &Stored) -> TxResult<()> {
    let sql = "INSERT INTO object_versions (bucket, key, rev, seq, version_id, delete_marker, size, meta, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let meta = &old.version.meta;
    let size = i64::try_from(meta.size).map_err(|e| Error::Meta(e.to_string()))?;
    let params: &Params = &[
        &b,
        &k,
        &(i64::MAX - old.seq),
        &old.seq,
        &meta.version_id.as_str(),
        &meta.delete_marker,
        &size,
        &encode(meta)?,
        &encode(&old.version.data)?,
    ];
    execute(tx, sql, params).await.map(drop)
}

/// Writes the key's current row; `exists` says whether it had one (locked).
async fn write_current(
    tx: &Tx<'_>,
    b: &str,
    k: &[u8],
    seq: i64,
    version: &ObjectVersion,
    exists: bool,
) -> TxResult<()> {
    let meta = &version.meta;
    let size = i64::try_from(meta.size).map_err(|e| Error::Meta(e.to_string()))?;
    let (meta_bytes, data_bytes) = (encode(meta)?, encode(&version.data)?);
    let params: &Params =
        &[&b, &k, &seq, &meta.version_id.as_str(), &meta.delete_marker, &size, &meta_bytes, &data_bytes];
    if exists {
        let sql = "UPDATE objects SET seq = $3, version_id = $4, delete_marker = $5, size = $6, meta = $7, data = $8
                   WHERE bucket = $1 AND key = $2";
        return execute(tx, sql, params).await.map(drop);
    }
    let sql = "INSERT INTO objects (bucket, key, seq, version_id, delete_marker, size, meta, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (bucket, key) DO NOTHING";
    // Another writer created the key since we looked: run again, locking its row.
    match execute(tx, sql, params).await? {
        0 => Err(TxError::Retry),
        _ => Ok(()),
    }
}

/// Makes `version` current, keeping or dropping the old current version as
/// the bucket's versioning says; the same rule as the embedded engine.
async fn apply_put(
    tx: &Tx<'_>,
    bucket: &BucketName,
    key: &ObjectKey,
    version: &ObjectVersion,
    cond: &WriteCondition,
) -> TxResult<()> {
    let record = bucket_shared(tx, bucket).await?;
    record.check_sealed(&version.data.keys())?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let old = current(tx, b, k).await?;
    check_condition(cond, old.as_ref().map(|s| &s.version))?;
    let seq = old.as_ref().map_or(1, |s| s.seq + 1);
    let mut garbage = Vec::new();
    if let Some(old) = &old {
        let keep_old = match record.versioning {
            Versioning::Unversioned => false,
            Versioning::Enabled => true,
            Versioning::Suspended => old.version.meta.version_id != VersionId::Null,
        };
        if keep_old {
            insert_noncurrent(tx, b, k, old).await?;
        } else {
            garbage.extend(old.version.data.blobs());
        }
    }
    if version.meta.version_id == VersionId::Null && record.versioning != Versioning::Unversioned {
        // Only one null version may exist: a new one replaces a noncurrent one.
        let sql = "DELETE FROM object_versions WHERE bucket = $1 AND key = $2 AND version_id = 'null' RETURNING data";
        for row in query(tx, sql, &[&b, &k]).await? {
            garbage.extend(data_blobs(row.get(0))?);
        }
    }
    write_current(tx, b, k, seq, version, old.is_some()).await?;
    enqueue_blobs(tx, &garbage).await
}

/// A noncurrent version by id, its row locked: `(rev, stored)`.
async fn noncurrent(tx: &Tx<'_>, b: &str, k: &[u8], id: &VersionId) -> TxResult<Option<(i64, Stored)>> {
    let sql = "SELECT rev, seq, meta, data FROM object_versions
               WHERE bucket = $1 AND key = $2 AND version_id = $3 FOR UPDATE";
    match query_opt(tx, sql, &[&b, &k, &id.as_str()]).await? {
        Some(row) => Ok(Some((row.get(0), stored(&row, 1)?))),
        None => Ok(None),
    }
}

async fn put_object_tx(tx: &Tx<'_>, put: &PutObject) -> TxResult<()> {
    apply_put(tx, &put.bucket, &put.key, &put.version, &put.condition).await?;
    clear_pending(tx, &put.pending).await
}

type DeleteInput = (BucketName, ObjectKey, Option<VersionId>, DeleteGuard);

async fn delete_tx(tx: &Tx<'_>, input: &DeleteInput) -> TxResult<DeleteOutcome> {
    let (bucket, key, version, guard) = input;
    let record = bucket_shared(tx, bucket).await?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let old = current(tx, b, k).await?;
    if let Some(etag) = &guard.if_match {
        let target = match version {
            None => old.as_ref().map(|s| s.version.clone()),
            Some(id) if old.as_ref().is_some_and(|s| &s.version.meta.version_id == id) => {
                old.as_ref().map(|s| s.version.clone())
            }
            Some(id) => noncurrent(tx, b, k, id).await?.map(|(_, s)| s.version),
        };
        check_condition(&WriteCondition::EtagMatches(etag.clone()), target.as_ref())?;
    }
    match (version, record.versioning) {
        (None, Versioning::Unversioned) => {
            if let Some(old) = old {
                execute(tx, "DELETE FROM objects WHERE bucket = $1 AND key = $2", &[&b, &k]).await?;
                enqueue_blobs(tx, &old.version.data.blobs()).await?;
            }
            Ok(DeleteOutcome { version_id: None, delete_marker: false })
        }
        (None, versioning) => {
            let id = if versioning == Versioning::Enabled { VersionId::generate() } else { VersionId::Null };
            let marker = delete_marker(record.owner.clone(), id.clone());
            apply_put(tx, bucket, key, &marker, &WriteCondition::None).await?;
            Ok(DeleteOutcome { version_id: Some(id), delete_marker: true })
        }
        (Some(wanted), _) => delete_version(tx, b, k, old, wanted, guard.bypass_governance).await,
    }
}

/// Removes one named version; if it was current, the newest noncurrent one
/// takes its place.
async fn delete_version(
    tx: &Tx<'_>,
    b: &str,
    k: &[u8],
    old: Option<Stored>,
    wanted: &VersionId,
    bypass_governance: bool,
) -> TxResult<DeleteOutcome> {
    let now = UnixNanos::now();
    if let Some(cur) = old.filter(|s| &s.version.meta.version_id == wanted) {
        cur.version.meta.lock.check_delete(now, bypass_governance)?;
        let sql = "SELECT rev, seq, meta, data FROM object_versions WHERE bucket = $1 AND key = $2
                   ORDER BY rev LIMIT 1 FOR UPDATE";
        match query_opt(tx, sql, &[&b, &k]).await? {
            Some(row) => {
                let (rev, next): (i64, Stored) = (row.get(0), stored(&row, 1)?);
                let sql = "DELETE FROM object_versions WHERE bucket = $1 AND key = $2 AND rev = $3";
                execute(tx, sql, &[&b, &k, &rev]).await?;
                write_current(tx, b, k, next.seq, &next.version, true).await?;
            }
            None => {
                execute(tx, "DELETE FROM objects WHERE bucket = $1 AND key = $2", &[&b, &k]).await?;
            }
        }
        enqueue_blobs(tx, &cur.version.data.blobs()).await?;
        return Ok(DeleteOutcome { version_id: Some(wanted.clone()), delete_marker: cur.version.meta.delete_marker });
    }
    let Some((rev, found)) = noncurrent(tx, b, k, wanted).await? else {
        // S3 answers a delete of a version that is not there with success.
        return Ok(DeleteOutcome { version_id: Some(wanted.clone()), delete_marker: false });
    };
    found.version.meta.lock.check_delete(now, bypass_governance)?;
    execute(tx, "DELETE FROM object_versions WHERE bucket = $1 AND key = $2 AND rev = $3", &[&b, &k, &rev]).await?;
    enqueue_blobs(tx, &found.version.data.blobs()).await?;
    Ok(DeleteOutcome { version_id: Some(wanted.clone()), delete_marker: found.version.meta.delete_marker })
}

type UpdateInput = (BucketName, ObjectKey, Option<VersionId>, VersionChange, bool);

async fn update_version_tx(tx: &Tx<'_>, input: &UpdateInput) -> TxResult<VersionId> {
    let (bucket, key, version, change, bypass_governance) = input;
    let record = bucket_shared(tx, bucket).await?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let cur = current(tx, b, k).await?;
    // The version: the current row, or a noncurrent one by id (`Some(rev)`).
    let (slot, mut target) = match (cur, version) {
        (Some(s), None) => (None, s.version),
        (Some(s), Some(id)) if &s.version.meta.version_id == id => (None, s.version),
        (_, Some(id)) => {
            let (rev, s) = noncurrent(tx, b, k, id).await?.ok_or(Error::NoSuchVersion)?;
            (Some(rev), s.version)
        }
        (None, None) => return Err(Error::NoSuchKey.into()),
    };
    if target.meta.delete_marker {
        let named = version.is_some();
        return Err(Error::DeleteMarker { version_id: target.meta.version_id, named }.into());
    }
    let lock_change = matches!(change, VersionChange::Retention(_) | VersionChange::LegalHold(_));
    if lock_change && record.object_lock.is_none() {
        return Err(Error::NoLockConfiguration.into());
    }
    match change {
        VersionChange::Tags(tags) => target.meta.tags = tags.clone(),
        VersionChange::Retention(r) => {
            target.meta.lock.check_retention_change(*r, UnixNanos::now(), *bypass_governance)?;
            target.meta.lock.retention = *r;
        }
        VersionChange::LegalHold(on) => target.meta.lock.legal_hold = *on,
    }
    let meta = encode(&target.meta)?;
    match slot {
        None => execute(tx, "UPDATE objects SET meta = $3 WHERE bucket = $1 AND key = $2", &[&b, &k, &meta]).await?,
        Some(rev) => {
            let sql = "UPDATE object_versions SET meta = $4 WHERE bucket = $1 AND key = $2 AND rev = $3";
            execute(tx, sql, &[&b, &k, &rev, &meta]).await?
        }
    };
    Ok(target.meta.version_id)
}

// ----- buckets -----

async fn create_bucket_tx(tx: &Tx<'_>, bucket: &BucketRecord) -> TxResult<()> {
    let name = bucket.name.as_str();
    if let Some(row) = query_opt(tx, "SELECT record FROM buckets WHERE name = $1 FOR UPDATE", &[&name]).await? {
        let existing: BucketRecord = decode(row.get(0))?;
        let taken =
            if existing.owner == bucket.owner { Error::BucketAlreadyOwnedByYou } else { Error::BucketAlreadyExists };
        return Err(taken.into());
    }
    let sql = "INSERT INTO buckets (name, record) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    match execute(tx, sql, &[&name, &encode(bucket)?]).await? {
        0 => Err(TxError::Retry),
        _ => Ok(()),
    }
}

async fn delete_bucket_tx(tx: &Tx<'_>, name: &BucketName) -> TxResult<()> {
    bucket_row(tx, name, "SELECT record FROM buckets WHERE name = $1 FOR UPDATE").await?;
    let b = name.as_str();
    let sql = "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = $1)
                   OR EXISTS (SELECT 1 FROM object_versions WHERE bucket = $1)
                   OR EXISTS (SELECT 1 FROM multipart_uploads WHERE bucket = $1)";
    let busy: bool = query_opt(tx, sql, &[&b]).await?.is_some_and(|row| row.get(0));
    if busy {
        return Err(Error::BucketNotEmpty.into());
    }
    execute(tx, "DELETE FROM buckets WHERE name = $1", &[&b]).await.map(drop)
}

async fn update_bucket_tx(tx: &Tx<'_>, input: &(BucketName, BucketChange)) -> TxResult<()> {
    let (name, change) = input;
    let mut record = bucket_row(tx, name, "SELECT record FROM buckets WHERE name = $1 FOR UPDATE").await?;
    apply_bucket_change(&mut record, change.clone())?;
    execute(tx, "UPDATE buckets SET record = $2 WHERE name = $1", &[&name.as_str(), &encode(&record)?]).await.map(drop)
}

async fn erase_bucket_tx(tx: &Tx<'_>, name: &BucketName) -> TxResult<EraseReport> {
    let b = name.as_str();
    if execute(tx, "DELETE FROM buckets WHERE name = $1", &[&b]).await? == 0 {
        return Err(Error::NoSuchBucket.into());
    }
    let mut report = EraseReport::default();
    let mut garbage = Vec::new();
    for sql in [
        "DELETE FROM objects WHERE bucket = $1 RETURNING data",
        "DELETE FROM object_versions WHERE bucket = $1 RETURNING data",
    ] {
        for row in query(tx, sql, &[&b]).await? {
            garbage.extend(data_blobs(row.get(0))?);
            report.versions += 1;
        }
    }
    let uploads: Vec<Vec<u8>> = query(tx, "DELETE FROM multipart_uploads WHERE bucket = $1 RETURNING upload_id", &[&b])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    report.uploads = uploads.len() as u64;
    let sql = "DELETE FROM multipart_parts WHERE upload_id = ANY($1) RETURNING record";
    for row in query(tx, sql, &[&uploads]).await? {
        garbage.push(decode::<PartRecord>(row.get(0))?.blob);
    }
    report.blobs = garbage.len() as u64;
    enqueue_blobs(tx, &garbage).await?;
    Ok(report)
}

// ----- multipart uploads -----

/// An upload's primary key: bucket, key, upload id.
type UploadPk = (BucketName, ObjectKey, UploadId);

fn upload_pk(u: &UploadRecord) -> UploadPk {
    (u.bucket.clone(), u.key.clone(), u.upload_id.clone())
}

async fn create_upload_tx(tx: &Tx<'_>, upload: &UploadRecord) -> TxResult<()> {
    bucket_shared(tx, &upload.bucket).await?;
    let (b, k, id) = (upload.bucket.as_str(), upload.key.as_bytes(), upload.upload_id.as_str().as_bytes());
    let sql = "INSERT INTO multipart_uploads (bucket, key, upload_id, record) VALUES ($1, $2, $3, $4)";
    execute(tx, sql, &[&b, &k, &id, &encode(upload)?]).await.map(drop)
}

/// Locks the upload's row (`FOR SHARE` lets parts arrive side by side;
/// completion and abort take it `FOR UPDATE`).
async fn lock_upload(tx: &Tx<'_>, upload: &UploadPk, mode: &str) -> TxResult<()> {
    let (b, k, id) = (upload.0.as_str(), upload.1.as_bytes(), upload.2.as_str().as_bytes());
    let sql = format!("SELECT 1 FROM multipart_uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3 {mode}");
    query_opt(tx, &sql, &[&b, &k, &id]).await?.ok_or(Error::NoSuchUpload)?;
    Ok(())
}

async fn put_part_tx(tx: &Tx<'_>, input: &(UploadRecord, PartRecord)) -> TxResult<()> {
    let (upload, part) = input;
    lock_upload(tx, &upload_pk(upload), "FOR SHARE").await?;
    bucket_shared(tx, &upload.bucket).await?.check_sealed(&[&part.key])?;
    let id = upload.upload_id.as_str().as_bytes();
    let number = i32::try_from(part.number).map_err(|_| Error::InvalidArgument("part number".into()))?;
    let sql = "SELECT record FROM multipart_parts WHERE upload_id = $1 AND part_no = $2 FOR UPDATE";
    let replaced: Option<PartRecord> =
        query_opt(tx, sql, &[&id, &number]).await?.map(|row| decode(row.get(0))).transpose()?;
    let record = encode(part)?;
    match &replaced {
        Some(_) => {
            let sql = "UPDATE multipart_parts SET record = $3 WHERE upload_id = $1 AND part_no = $2";
            execute(tx, sql, &[&id, &number, &record]).await?;
        }
        None => {
            let sql = "INSERT INTO multipart_parts (upload_id, part_no, record) VALUES ($1, $2, $3)
                       ON CONFLICT (upload_id, part_no) DO NOTHING";
            if execute(tx, sql, &[&id, &number, &record]).await? == 0 {
                return Err(TxError::Retry);
            }
        }
    }
    if let Some(old) = replaced {
        enqueue_blobs(tx, &[old.blob]).await?;
    }
    clear_pending(tx, &[part.blob]).await
}

/// Deletes the upload's row and parts; returns the parts.
async fn remove_upload(tx: &Tx<'_>, upload: &UploadPk) -> TxResult<Vec<PartRecord>> {
    let (b, k, id) = (upload.0.as_str(), upload.1.as_bytes(), upload.2.as_str().as_bytes());
    let sql = "DELETE FROM multipart_uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3";
    if execute(tx, sql, &[&b, &k, &id]).await? == 0 {
        return Err(Error::NoSuchUpload.into());
    }
    let sql = "DELETE FROM multipart_parts WHERE upload_id = $1 RETURNING record";
    query(tx, sql, &[&id]).await?.iter().map(|row| Ok(decode(row.get(0))?)).collect()
}

async fn complete_upload_tx(tx: &Tx<'_>, complete: &CompleteUpload) -> TxResult<()> {
    let u = &complete.upload;
    let pk = upload_pk(u);
    lock_upload(tx, &pk, "FOR UPDATE").await?;
    // Every check before the first write, as the embedded engine does.
    bucket_shared(tx, &u.bucket).await?.check_sealed(&complete.version.data.keys())?;
    let existing = current(tx, u.bucket.as_str(), u.key.as_bytes()).await?;
    check_condition(&complete.condition, existing.as_ref().map(|s| &s.version))?;
    let parts = remove_upload(tx, &pk).await?;
    let unused: Vec<BlobId> = parts.iter().filter(|p| !complete.keep.contains(&p.number)).map(|p| p.blob).collect();
    enqueue_blobs(tx, &unused).await?;
    apply_put(tx, &u.bucket, &u.key, &complete.version, &WriteCondition::None).await
}

async fn abort_upload_tx(tx: &Tx<'_>, upload: &UploadPk) -> TxResult<()> {
    let parts = remove_upload(tx, upload).await?;
    enqueue_blobs(tx, &parts.iter().map(|p| p.blob).collect::<Vec<_>>()).await
}

// ----- listings (one snapshot each) -----

/// A statement whose placeholders are numbered as its parameters are added.
struct Sql<'a> {
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Sql<'a> {
    fn new() -> Self {
        Self { params: Vec::new() }
    }

    /// The placeholder of a new parameter.
    fn arg(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// `key >= LOWER` (or `>`), and `key < END` when the prefix has an end.
    fn key_range(&mut self, lower: &'a Bound<&'a [u8]>, end: &'a Option<Vec<u8>>) -> String {
        let mut text = match lower {
            Bound::Included(k) => format!("key >= {}", self.arg(k)),
            Bound::Excluded(k) => format!("key > {}", self.arg(k)),
            Bound::Unbounded => "TRUE".to_owned(),
        };
        if let Some(end) = end {
            text += &format!(" AND key < {}", self.arg(end));
        }
        text
    }
}

type ListInput = (BucketName, Vec<u8>, Bound<VersionCursor>, usize);

async fn list_versions_tx(tx: &Tx<'_>, input: &ListInput) -> TxResult<Vec<ListedVersion>> {
    let (bucket, prefix, from, limit) = input;
    let b = bucket.as_str();
    let mut out = Vec::new();
    // The cursor's own key first when the listing resumes inside it.
    let lower: Bound<Vec<u8>> = match from {
        Bound::Unbounded => Bound::Included(prefix.clone()),
        Bound::Included(c) => Bound::Included(c.key.clone().max(prefix.clone())),
        Bound::Excluded(c) if c.key < *prefix => Bound::Included(prefix.clone()),
        Bound::Excluded(VersionCursor { key, after_version: Some(v) }) => {
            if key.starts_with(prefix) {
                versions_after(tx, b, key, v, *limit, &mut out).await?;
            }
            Bound::Excluded(key.clone())
        }
        Bound::Excluded(c) => Bound::Excluded(c.key.clone()),
    };
    if out.len() >= *limit {
        return Ok(out);
    }
    let n = limit_param(limit - out.len());
    let lower = lower.as_ref().map(Vec::as_slice);
    let end = prefix_successor(prefix);
    let mut sql = Sql::new();
    let text = format!(
        "SELECT key, meta FROM objects WHERE bucket = {} AND {} ORDER BY key LIMIT {}",
        sql.arg(&b),
        sql.key_range(&lower, &end),
        sql.arg(&n)
    );
    let heads = query(tx, &text, &sql.params).await?;
    let (Some(lo), Some(hi)) = (heads.first(), heads.last()) else { return Ok(out) };
    // Noncurrent versions of the same keys, in one range read.
    let (lo, hi): (&[u8], &[u8]) = (lo.get(0), hi.get(0));
    let sql = "SELECT key, meta FROM object_versions WHERE bucket = $1 AND key >= $2 AND key <= $3
               ORDER BY key, rev LIMIT $4";
    let olds = query(tx, sql, &[&b, &lo, &hi, &n]).await?;
    let mut olds = olds.iter().peekable();
    for head in &heads {
        let k: &[u8] = head.get(0);
        let key = object_key(k)?;
        let mut entries = vec![(decode::<VersionMeta>(head.get(1))?, true)];
        while let Some(old) = olds.next_if(|old| old.get::<_, &[u8]>(0) <= k) {
            if old.get::<_, &[u8]>(0) == k {
                entries.push((decode(old.get(1))?, false));
            }
        }
        for (meta, is_latest) in entries {
            if out.len() == *limit {
                return Ok(out);
            }
            out.push(ListedVersion { key: key.clone(), meta, is_latest });
        }
    }
    Ok(out)
}

/// The versions of `key` after version `after`, newest first (none at all
/// if `after` is not among them, as the embedded engine does).
async fn versions_after(
    tx: &Tx<'_>,
    b: &str,
    k: &[u8],
    after: &VersionId,
    limit: usize,
    out: &mut Vec<ListedVersion>,
) -> TxResult<()> {
    let sql = "SELECT meta, 0 AS rev FROM objects WHERE bucket = $1 AND key = $2
               UNION ALL SELECT meta, rev FROM object_versions WHERE bucket = $1 AND key = $2
               ORDER BY rev";
    let rows = query(tx, sql, &[&b, &k]).await?;
    let key = object_key(k)?;
    let mut seen = false;
    for (i, row) in rows.iter().enumerate() {
        let meta: VersionMeta = decode(row.get(0))?;
        if !seen {
            seen = &meta.version_id == after;
            continue;
        }
        if out.len() == limit {
            break;
        }
        out.push(ListedVersion { key: key.clone(), meta, is_latest: i == 0 });
    }
    Ok(())
}

type KeysInput = (BucketName, u32, Option<KeyCursor>, usize);

async fn sealed_keys_tx(tx: &Tx<'_>, input: &KeysInput) -> TxResult<(Vec<KeySlot>, Option<KeyCursor>)> {
    let (bucket, below, after, limit) = input;
    let b = bucket.as_str();
    let mut out = Vec::new();
    if matches!(after, None | Some(KeyCursor::Current(_))) {
        let mut from = match after {
            Some(KeyCursor::Current(k)) => Some(k.clone()),
            _ => None,
        };
        loop {
            let sql = "SELECT key, version_id, data FROM objects WHERE bucket = $1 AND key > $2 ORDER BY key LIMIT $3";
            let rows = query(tx, sql, &[&b, &from.clone().unwrap_or_default(), &SCAN_BATCH]).await?;
            for row in &rows {
                let k: &[u8] = row.get(0);
                push_data_keys(&mut out, k, row.get(1), row.get(2), *below)?;
                if out.len() >= *limit {
                    return Ok((out, Some(KeyCursor::Current(k.to_vec()))));
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == SCAN_BATCH => from = Some(last.get(0)),
                _ => break,
            }
        }
    }
    if !matches!(after, Some(KeyCursor::Upload(..))) {
        let (mut key, mut rev): (Vec<u8>, i64) = match after {
            Some(KeyCursor::Noncurrent(k, rev)) => (k.clone(), i64::try_from(*rev).unwrap_or(i64::MAX)),
            _ => (Vec::new(), -1),
        };
        loop {
            let sql = "SELECT key, rev, version_id, data FROM object_versions
                       WHERE bucket = $1 AND (key, rev) > ($2, $3) ORDER BY key, rev LIMIT $4";
            let rows = query(tx, sql, &[&b, &key, &rev, &SCAN_BATCH]).await?;
            for row in &rows {
                let k: &[u8] = row.get(0);
                push_data_keys(&mut out, k, row.get(2), row.get(3), *below)?;
                if out.len() >= *limit {
                    let r: i64 = row.get(1);
                    return Ok((out, Some(KeyCursor::Noncurrent(k.to_vec(), r.max(0) as u64))));
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == SCAN_BATCH => (key, rev) = (last.get(0), last.get(1)),
                _ => break,
            }
        }
    }
    let (mut key, mut upload): (Vec<u8>, Vec<u8>) = match after {
        Some(KeyCursor::Upload(k, id)) => (k.clone(), id.as_str().as_bytes().to_vec()),
        _ => (Vec::new(), Vec::new()),
    };
    loop {
        let sql = "SELECT key, record FROM multipart_uploads WHERE bucket = $1 AND (key, upload_id) > ($2, $3)
                   ORDER BY key, upload_id LIMIT $4";
        let rows = query(tx, sql, &[&b, &key, &upload, &SCAN_BATCH]).await?;
        for row in &rows {
            let record: UploadRecord = decode(row.get(1))?;
            let sql = "SELECT record FROM multipart_parts WHERE upload_id = $1 ORDER BY part_no";
            for part in query(tx, sql, &[&record.upload_id.as_str().as_bytes()]).await? {
                let part: PartRecord = decode(part.get(0))?;
                let place = KeyPlace::Part { upload: record.upload_id.clone(), number: part.number };
                push_old(&mut out, place, vec![&part.key], *below);
            }
            if out.len() >= *limit {
                return Ok((out, Some(KeyCursor::Upload(row.get::<_, Vec<u8>>(0), record.upload_id))));
            }
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == SCAN_BATCH => {
                key = last.get(0);
                upload = decode::<UploadRecord>(last.get(1))?.upload_id.as_str().as_bytes().to_vec();
            }
            _ => break,
        }
    }
    Ok((out, None))
}

fn push_data_keys(out: &mut Vec<KeySlot>, key: &[u8], version: &str, data: &[u8], below: u32) -> Result<()> {
    let data: DataLocation = decode(data)?;
    let place = KeyPlace::Version { key: object_key(key)?, version: VersionId::parse(version)? };
    push_old(out, place, data.keys(), below);
    Ok(())
}

async fn replace_keys_tx(tx: &Tx<'_>, input: &(BucketName, Vec<KeySlot>)) -> TxResult<usize> {
    let (bucket, slots) = input;
    let b = bucket.as_str();
    let mut replaced = 0;
    for slot in slots {
        let swapped = match &slot.place {
            KeyPlace::Version { key, version } => {
                let k = key.as_bytes();
                let sql =
                    "SELECT data, 0::INT8 FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3 FOR UPDATE";
                let cur = query_opt(tx, sql, &[&b, &k, &version.as_str()]).await?;
                let sql = "SELECT data, rev FROM object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3
                           FOR UPDATE";
                let found = match cur {
                    Some(row) => Some((row, true)),
                    None => query_opt(tx, sql, &[&b, &k, &version.as_str()]).await?.map(|row| (row, false)),
                };
                match found {
                    None => false,
                    Some((row, is_current)) => {
                        let mut data: DataLocation = decode(row.get(0))?;
                        let swapped = swap_key(&mut data, &slot.key);
                        if swapped {
                            let bytes = encode(&data)?;
                            if is_current {
                                let sql = "UPDATE objects SET data = $3 WHERE bucket = $1 AND key = $2";
                                execute(tx, sql, &[&b, &k, &bytes]).await?;
                            } else {
                                let rev: i64 = row.get(1);
                                let sql =
                                    "UPDATE object_versions SET data = $4 WHERE bucket = $1 AND key = $2 AND rev = $3";
                                execute(tx, sql, &[&b, &k, &rev, &bytes]).await?;
                            }
                        }
                        swapped
                    }
                }
            }
            KeyPlace::Part { upload, number } => {
                let id = upload.as_str().as_bytes();
                let number = i32::try_from(*number).unwrap_or(i32::MAX);
                let sql = "SELECT record FROM multipart_parts WHERE upload_id = $1 AND part_no = $2 FOR UPDATE";
                let part: Option<PartRecord> =
                    query_opt(tx, sql, &[&id, &number]).await?.map(|row| decode(row.get(0))).transpose()?;
                match part.filter(|p| p.key.key_id == slot.key.key_id) {
                    None => false,
                    Some(mut part) => {
                        part.key = slot.key.clone();
                        let sql = "UPDATE multipart_parts SET record = $3 WHERE upload_id = $1 AND part_no = $2";
                        execute(tx, sql, &[&id, &number, &encode(&part)?]).await?;
                        true
                    }
                }
            }
        };
        replaced += usize::from(swapped);
    }
    Ok(replaced)
}

// ----- blob lifecycle, keys, settings -----

async fn register_pending_tx(tx: &Tx<'_>, input: &(Vec<Vec<u8>>, [u8; 16])) -> TxResult<()> {
    let sql = "INSERT INTO pending_blobs (blob, gateway) SELECT b, $2 FROM unnest($1::BYTEA[]) AS b";
    execute(tx, sql, &[&input.0, &input.1.as_slice()]).await.map(drop)
}

async fn release_pending_tx(tx: &Tx<'_>, blobs: &[BlobId]) -> TxResult<()> {
    let keys = keys_of(blobs);
    execute(tx, "DELETE FROM pending_blobs WHERE blob = ANY($1)", &[&keys]).await?;
    enqueue_gc(tx, &keys).await
}

/// Claims due blobs for this collector: out of sight for 15 s (a collection
/// pass and then some), so no other gateway collects them meanwhile; back in
/// sight after that if this one died, or could not delete them, before
/// `forget_collected`.
///
/// Two statements, not `UPDATE … WHERE blob IN (SELECT … LIMIT n FOR UPDATE
/// SKIP LOCKED)`: PostgreSQL may plan that subquery as the inner side of a
/// nested loop and run it again for every row, each run skipping the rows
/// just pushed out of sight, so one claim takes the whole queue.
async fn claim_collectable_tx(tx: &Tx<'_>, input: &(i64, usize)) -> TxResult<Vec<BlobId>> {
    let pick = "SELECT blob FROM gc_queue WHERE enqueued_at <= $1 AND run_after <= now()
                ORDER BY enqueued_at LIMIT $2 FOR UPDATE SKIP LOCKED";
    let rows = query(tx, pick, &[&input.0, &limit_param(input.1)]).await?;
    let keys: Vec<Vec<u8>> = rows.iter().map(|row| row.get(0)).collect();
    let hide = "UPDATE gc_queue SET run_after = now() + INTERVAL '15 seconds', attempts = attempts + 1
                WHERE blob = ANY($1)";
    execute(tx, hide, &[&keys]).await?;
    keys.iter().map(|key| Ok(blob_id(key)?)).collect()
}

async fn put_setting_tx(tx: &Tx<'_>, input: &(String, String)) -> TxResult<String> {
    let sql = "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    execute(tx, sql, &[&input.0, &input.1]).await?;
    let row = query_opt(tx, "SELECT value FROM settings WHERE name = $1", &[&input.0]).await?;
    row.map(|r| r.get(0)).ok_or_else(|| TxError::Retry)
}

impl PgMeta {
    pub(crate) async fn read_rows(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.query(&stmt, params).await.map_err(db_err)
    }

    pub(crate) async fn read_row(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        Ok(self.read_rows(sql, params).await?.into_iter().next())
    }
}

#[async_trait]
impl MetaStore for PgMeta {
    async fn create_bucket(&self, bucket: BucketRecord) -> Result<()> {
        self.txn(&bucket, |tx, b| create_bucket_tx(tx, b).boxed()).await
    }

    async fn bucket(&self, name: &BucketName) -> Result<Option<BucketRecord>> {
        let row = self.read_row("SELECT record FROM buckets WHERE name = $1", &[&name.as_str()]).await?;
        row.map(|r| decode(r.get(0))).transpose()
    }

    async fn buckets(&self) -> Result<Vec<BucketRecord>> {
        let rows = self.read_rows("SELECT record FROM buckets", &[]).await?;
        let mut out: Vec<BucketRecord> = rows.iter().map(|r| decode(r.get(0))).collect::<Result<_>>()?;
        // Byte order, as the embedded engine lists them; never the database's collation.
        out.sort_by(|a, b| a.name.as_str().as_bytes().cmp(b.name.as_str().as_bytes()));
        Ok(out)
    }

    async fn delete_bucket(&self, name: &BucketName) -> Result<()> {
        self.txn(name, |tx, n| delete_bucket_tx(tx, n).boxed()).await
    }

    async fn bucket_usage(&self, name: &BucketName) -> Result<BucketUsage> {
        let sql = "SELECT (SELECT count(*) FROM objects WHERE bucket = $1 AND NOT delete_marker),
                          (SELECT COALESCE(sum(size), 0)::INT8 FROM objects WHERE bucket = $1 AND NOT delete_marker),
                          (SELECT count(*) FROM multipart_uploads WHERE bucket = $1)";
        let row = self.read_row(sql, &[&name.as_str()]).await?.ok_or_else(|| Error::Meta("no usage row".into()))?;
        let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(BucketUsage { objects: count(0), bytes: count(1), uploads: count(2) })
    }

    async fn update_bucket(&self, name: &BucketName, change: BucketChange) -> Result<()> {
        self.txn(&(name.clone(), change), |tx, i| update_bucket_tx(tx, i).boxed()).await
    }

    async fn erase_bucket(&self, name: &BucketName) -> Result<EraseReport> {
        self.txn(name, |tx, n| erase_bucket_tx(tx, n).boxed()).await
    }

    async fn sealed_keys(
        &self,
        bucket: &BucketName,
        below_generation: u32,
        after: Option<KeyCursor>,
        limit: usize,
    ) -> Result<(Vec<KeySlot>, Option<KeyCursor>)> {
        let input = (bucket.clone(), below_generation, after, limit);
        self.snapshot(&input, |tx, i| sealed_keys_tx(tx, i).boxed()).await
    }

    async fn replace_sealed_keys(&self, bucket: &BucketName, keys: Vec<KeySlot>) -> Result<usize> {
        self.txn(&(bucket.clone(), keys), |tx, i| replace_keys_tx(tx, i).boxed()).await
    }

    async fn object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
    ) -> Result<Option<ObjectVersion>> {
        let (b, k) = (bucket.as_str(), key.as_bytes());
        let row = match version {
            None => {
                self.read_row("SELECT seq, meta, data FROM objects WHERE bucket = $1 AND key = $2", &[&b, &k]).await?
            }
            // One statement, one snapshot: a version promoted or demoted
            // meanwhile is found on one side or the other.
            Some(id) => {
                let sql = "SELECT seq, meta, data FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3
                           UNION ALL
                           SELECT seq, meta, data FROM object_versions
                           WHERE bucket = $1 AND key = $2 AND version_id = $3";
                self.read_row(sql, &[&b, &k, &id.as_str()]).await?
            }
        };
        row.map(|r| stored(&r, 0).map(|s| s.version).map_err(super::tx_err)).transpose()
    }

    async fn put_object(&self, put: PutObject) -> Result<()> {
        self.txn(&put, |tx, p| put_object_tx(tx, p).boxed()).await
    }

    async fn delete_object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
        guard: &DeleteGuard,
    ) -> Result<DeleteOutcome> {
        let input = (bucket.clone(), key.clone(), version.cloned(), guard.clone());
        self.txn(&input, |tx, i| delete_tx(tx, i).boxed()).await
    }

    async fn update_version(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
        change: VersionChange,
        bypass_governance: bool,
    ) -> Result<VersionId> {
        let input = (bucket.clone(), key.clone(), version.cloned(), change, bypass_governance);
        self.txn(&input, |tx, i| update_version_tx(tx, i).boxed()).await
    }

    async fn list_objects(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        start: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ListedObject>> {
        let lower = prefix_start(prefix, start);
        let end = prefix_successor(prefix);
        let (b, n) = (bucket.as_str(), limit_param(limit));
        let mut sql = Sql::new();
        let text = format!(
            "SELECT key, meta FROM objects WHERE bucket = {} AND {} AND NOT delete_marker ORDER BY key LIMIT {}",
            sql.arg(&b),
            sql.key_range(&lower, &end),
            sql.arg(&n)
        );
        let rows = self.read_rows(&text, &sql.params).await?;
        rows.iter().map(|r| Ok(ListedObject { key: object_key(r.get(0))?, meta: decode(r.get(1))? })).collect()
    }

    async fn list_versions(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        from: Bound<VersionCursor>,
        limit: usize,
    ) -> Result<Vec<ListedVersion>> {
        let input = (bucket.clone(), prefix.to_vec(), from, limit);
        self.snapshot(&input, |tx, i| list_versions_tx(tx, i).boxed()).await
    }

    async fn create_upload(&self, upload: UploadRecord) -> Result<()> {
        self.txn(&upload, |tx, u| create_upload_tx(tx, u).boxed()).await
    }

    async fn upload(&self, bucket: &BucketName, key: &ObjectKey, upload_id: &UploadId) -> Result<Option<UploadRecord>> {
        let sql = "SELECT record FROM multipart_uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3";
        let params: &Params = &[&bucket.as_str(), &key.as_bytes(), &upload_id.as_str().as_bytes()];
        self.read_row(sql, params).await?.map(|r| decode(r.get(0))).transpose()
    }

    async fn put_part(&self, upload: &UploadRecord, part: PartRecord) -> Result<()> {
        self.txn(&(upload.clone(), part), |tx, i| put_part_tx(tx, i).boxed()).await
    }

    async fn parts(&self, upload_id: &UploadId, after: u32, limit: usize) -> Result<Vec<PartRecord>> {
        let Ok(after) = i32::try_from(after) else { return Ok(Vec::new()) };
        let sql = "SELECT record FROM multipart_parts WHERE upload_id = $1 AND part_no > $2 ORDER BY part_no LIMIT $3";
        let rows = self.read_rows(sql, &[&upload_id.as_str().as_bytes(), &after, &limit_param(limit)]).await?;
        rows.iter().map(|r| decode(r.get(0))).collect()
    }

    async fn uploads(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        after: Option<(&[u8], Option<&UploadId>)>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>> {
        let end = prefix_successor(prefix);
        let (b, n) = (bucket.as_str(), limit_param(limit));
        let after: Option<(&[u8], Option<&[u8]>)> = after.map(|(k, u)| (k, u.map(|u| u.as_str().as_bytes())));
        let mut sql = Sql::new();
        let bucket_arg = sql.arg(&b);
        let cursor = match &after {
            Some((k, Some(u))) if *k >= prefix => format!("(key, upload_id) > ({}, {})", sql.arg(k), sql.arg(u)),
            Some((k, None)) if *k >= prefix => format!("key > {}", sql.arg(k)),
            _ => format!("key >= {}", sql.arg(&prefix)),
        };
        let range = match &end {
            Some(end) => format!(" AND key < {}", sql.arg(end)),
            None => String::new(),
        };
        let text = format!(
            "SELECT record FROM multipart_uploads WHERE bucket = {bucket_arg} AND {cursor}{range}
             ORDER BY key, upload_id LIMIT {}",
            sql.arg(&n)
        );
        let rows = self.read_rows(&text, &sql.params).await?;
        rows.iter().map(|r| decode(r.get(0))).collect()
    }

    async fn complete_upload(&self, complete: CompleteUpload) -> Result<()> {
        self.txn(&complete, |tx, c| complete_upload_tx(tx, c).boxed()).await
    }

    async fn abort_upload(&self, bucket: &BucketName, key: &ObjectKey, upload_id: &UploadId) -> Result<()> {
        let pk = (bucket.clone(), key.clone(), upload_id.clone());
        self.txn(&pk, |tx, u| abort_upload_tx(tx, u).boxed()).await
    }

    async fn register_pending(&self, blobs: &[BlobId]) -> Result<()> {
        self.txn(&(keys_of(blobs), self.gateway), |tx, i| register_pending_tx(tx, i).boxed()).await
    }

    /// Many gateways share the queue, so "every pending blob" would take the
    /// blobs of live gateways' writes: only this gateway's own (from before
    /// its restart) and those of gateways presumed dead go.
    async fn abandon_pending(&self) -> Result<usize> {
        self.txn(&Some(self.gateway), |tx, i| sweep_dead(tx, i).boxed()).await
    }

    async fn release_pending(&self, blobs: &[BlobId]) -> Result<()> {
        self.txn(blobs, |tx, b| release_pending_tx(tx, b).boxed()).await
    }

    async fn collectable(&self, enqueued_before: UnixNanos, limit: usize) -> Result<Vec<BlobId>> {
        let swept = self.txn(&None, |tx, i| sweep_dead(tx, i).boxed()).await?;
        if swept > 0 {
            tracing::info!(blobs = swept, "queued the blobs of writes by gateways presumed dead");
        }
        self.txn(&(enqueued_before.0, limit), |tx, i| claim_collectable_tx(tx, i).boxed()).await
    }

    async fn forget_collected(&self, blobs: &[BlobId]) -> Result<()> {
        let client = self.client().await?;
        client.execute("DELETE FROM gc_queue WHERE blob = ANY($1)", &[&keys_of(blobs)]).await.map_err(db_err)?;
        Ok(())
    }

    async fn put_access_key(&self, key: AccessKeyRecord) -> Result<()> {
        let client = self.client().await?;
        let sql = "INSERT INTO access_keys (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = excluded.record";
        client.execute(sql, &[&key.id.as_str(), &encode(&key)?]).await.map_err(db_err)?;
        Ok(())
    }

    async fn access_key(&self, id: &AccessKeyId) -> Result<Option<AccessKeyRecord>> {
        let row = self.read_row("SELECT record FROM access_keys WHERE id = $1", &[&id.as_str()]).await?;
        row.map(|r| decode(r.get(0))).transpose()
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        let rows = self.read_rows("SELECT record FROM access_keys", &[]).await?;
        let mut out: Vec<AccessKeyRecord> = rows.iter().map(|r| decode(r.get(0))).collect::<Result<_>>()?;
        out.sort_by(|a, b| a.id.as_str().as_bytes().cmp(b.id.as_str().as_bytes()));
        Ok(out)
    }

    async fn delete_access_key(&self, id: &AccessKeyId) -> Result<bool> {
        let client = self.client().await?;
        let n = client.execute("DELETE FROM access_keys WHERE id = $1", &[&id.as_str()]).await.map_err(db_err)?;
        Ok(n > 0)
    }

    async fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(self.read_row("SELECT value FROM settings WHERE name = $1", &[&name]).await?.map(|r| r.get(0)))
    }

    async fn put_setting_if_absent(&self, name: &str, value: &str) -> Result<String> {
        self.txn(&(name.to_owned(), value.to_owned()), |tx, i| put_setting_tx(tx, i).boxed()).await
    }
}
