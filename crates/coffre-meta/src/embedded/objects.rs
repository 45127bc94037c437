//! Object versions in the embedded engine: the rows the version planners
//! (`coffre_core::versions`) ask for, their decisions written, and listings.

use std::ops::Bound;

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::list;
use coffre_core::meta::{
    DeleteGuard, DeleteOutcome, ListedObject, ListedVersion, ObjectMeta, ObjectVersion, PutObject, VersionChange,
    VersionCursor, WriteCondition,
};
use coffre_core::types::{BucketId, BucketName, ObjectKey, VersionId};
use coffre_core::versions::{self, CurrentRow, DeleteRequest, KeyRows, KeyWrites, Reads, StoredVersion, UpdateRequest};
use redb::{ReadableTable, WriteTransaction};

use super::blobs::{clear_pending, enqueue_gc};
use super::buckets::get_bucket;
use super::{EmbeddedMeta, OBJECTS, ObjKey, VERSIONS, decode_meta};
use crate::codec::{decode, encode, meta_err};

pub(super) fn current(txn: &WriteTransaction, bucket: &str, key: &[u8]) -> Result<Option<StoredVersion>> {
    let t = txn.open_table(OBJECTS).map_err(meta_err)?;
    let row: Option<(u64, ObjectVersion)> =
        t.get((bucket, key)).map_err(meta_err)?.map(|v| decode(v.value())).transpose()?;
    Ok(row.map(|(seq, version)| StoredVersion { seq, version }))
}

/// The key's rows a planner asked for, read in this (exclusive) write transaction.
pub(super) fn key_rows(
    txn: &WriteTransaction,
    b: &str,
    k: &[u8],
    current: Option<StoredVersion>,
    reads: &Reads,
) -> Result<KeyRows> {
    let mut rows = KeyRows { current, ..KeyRows::default() };
    if *reads == Reads::default() {
        return Ok(rows);
    }
    let t = txn.open_table(VERSIONS).map_err(meta_err)?;
    for (i, (_, seq, version)) in noncurrent_in(&t, b, k)?.into_iter().enumerate() {
        let stored = StoredVersion { seq, version };
        if i == 0 && reads.newest {
            rows.newest = Some(stored.clone());
        }
        if reads.wants(&stored.version.meta) {
            let slot = if reads.named.as_ref() == Some(&stored.version.meta.version_id) {
                &mut rows.named
            } else {
                &mut rows.null
            };
            *slot = Some(stored);
        }
    }
    Ok(rows)
}

/// Applies what a planner decided for one key.
pub(super) fn write_key(txn: &WriteTransaction, b: &str, k: &[u8], writes: KeyWrites) -> Result<()> {
    let mut versions = txn.open_table(VERSIONS).map_err(meta_err)?;
    for seq in &writes.remove_noncurrent {
        versions.remove((b, k, u64::MAX - seq)).map_err(meta_err)?;
    }
    for s in writes.demote.iter().chain(&writes.rewrite) {
        versions.insert((b, k, u64::MAX - s.seq), encode(&(s.seq, &s.version))?.as_slice()).map_err(meta_err)?;
    }
    drop(versions);
    let mut objects = txn.open_table(OBJECTS).map_err(meta_err)?;
    match writes.current {
        CurrentRow::Unchanged => {}
        CurrentRow::Set(s) => drop(objects.insert((b, k), encode(&(s.seq, &s.version))?.as_slice()).map_err(meta_err)?),
        CurrentRow::Remove => drop(objects.remove((b, k)).map_err(meta_err)?),
    }
    drop(objects);
    enqueue_gc(txn, &writes.garbage)
}

/// Plans a put of `version` as the key's current version; nothing is written yet.
pub(super) fn plan_put(
    txn: &WriteTransaction,
    bucket: &BucketName,
    began_in: BucketId,
    key: &ObjectKey,
    version: ObjectVersion,
    cond: &WriteCondition,
) -> Result<KeyWrites> {
    let record = get_bucket(txn, bucket.as_str())?.ok_or(Error::NoSuchBucket)?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let rows = key_rows(txn, b, k, current(txn, b, k)?, &Reads::for_put(&record, &version))?;
    versions::plan_put(&record, began_in, &rows, version, cond)
}

pub(super) fn delete(
    txn: &WriteTransaction,
    bucket: &BucketName,
    key: &ObjectKey,
    req: &DeleteRequest,
) -> Result<DeleteOutcome> {
    let record = get_bucket(txn, bucket.as_str())?.ok_or(Error::NoSuchBucket)?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let cur = current(txn, b, k)?;
    let reads = Reads::for_delete(&record, cur.as_ref(), req.version.as_ref());
    let (writes, outcome) = versions::plan_delete(&record, &key_rows(txn, b, k, cur, &reads)?, req)?;
    write_key(txn, b, k, writes)?;
    Ok(outcome)
}

pub(super) fn update(
    txn: &WriteTransaction,
    bucket: &BucketName,
    key: &ObjectKey,
    req: &UpdateRequest,
) -> Result<VersionId> {
    let record = get_bucket(txn, bucket.as_str())?.ok_or(Error::NoSuchBucket)?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let cur = current(txn, b, k)?;
    let reads = Reads::for_update(cur.as_ref(), req.version.as_ref());
    let (writes, id) = versions::plan_update(&record, &key_rows(txn, b, k, cur, &reads)?, req)?;
    write_key(txn, b, k, writes)?;
    Ok(id)
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

#[async_trait]
impl ObjectMeta for EmbeddedMeta {
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
                // Read lazily: a key with many versions costs only the rows the page takes.
                let olds = versions.range((b, kk, 0u64)..=(b, kk, u64::MAX)).map_err(meta_err)?;
                let olds = olds.map(|old| Ok((decode_meta(old.map_err(meta_err)?.1.value())?, false)));
                for entry in std::iter::once(decode_meta(v.value()).map(|m| (m, true))).chain(olds) {
                    let (meta, is_latest) = entry?;
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
            let writes = plan_put(txn, &put.bucket, put.bucket_id, &put.key, put.version, &put.condition)?;
            write_key(txn, put.bucket.as_str(), put.key.as_bytes(), writes)?;
            clear_pending(txn, &put.pending)
        })
        .await
    }

    async fn delete_object(
        &self,
        bucket: &BucketName,
        began_in: BucketId,
        key: &ObjectKey,
        version: Option<&VersionId>,
        guard: &DeleteGuard,
    ) -> Result<DeleteOutcome> {
        let (bucket, key) = (bucket.clone(), key.clone());
        let req = DeleteRequest::now(began_in, version, guard);
        self.write(move |txn| delete(txn, &bucket, &key, &req)).await
    }

    async fn update_version(
        &self,
        bucket: &BucketName,
        began_in: BucketId,
        key: &ObjectKey,
        version: Option<&VersionId>,
        change: VersionChange,
        bypass_governance: bool,
    ) -> Result<VersionId> {
        let (bucket, key) = (bucket.clone(), key.clone());
        let req = UpdateRequest::now(began_in, version, change, bypass_governance);
        self.write(move |txn| update(txn, &bucket, &key, &req)).await
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
            let lower = match list::prefix_start(&prefix, start.as_ref().map(Vec::as_slice)) {
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
}
