//! The embedded engine's bulk key work: finding and replacing wrapped data
//! keys for key rotation, and removing a whole bucket for crypto-erasure.

use std::ops::Bound;

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::lock::ComplianceLocks;
use coffre_core::meta::{
    DataKeyMeta, EraseReport, KeyCursor, KeyPlace, KeySlot, ObjectVersion, PartRecord, SealedKey, UploadRecord,
};
use coffre_core::types::{BlobId, BucketName, ObjectKey, UnixNanos, UploadId};
use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};

use super::{BUCKETS, EmbeddedMeta, OBJECTS, PARTS, UPLOADS, VERSIONS, enqueue_gc, noncurrent_in, remove_upload};
use crate::codec::{decode, encode, meta_err};

const NO_KEY: &[u8] = &[];

fn object_key(bytes: &[u8]) -> Result<ObjectKey> {
    let key = std::str::from_utf8(bytes).map_err(meta_err)?;
    ObjectKey::parse(key).map_err(meta_err)
}

/// The same for one stored version, current or noncurrent.
fn push_old_of_version(out: &mut Vec<KeySlot>, key: &[u8], stored: &[u8], below: u32) -> Result<()> {
    let (_, version): (u64, ObjectVersion) = decode(stored)?;
    let place = KeyPlace::Version { key: object_key(key)?, version: version.meta.version_id.clone() };
    KeySlot::push_older(out, place, version.data.keys(), below);
    Ok(())
}

/// Data keys of `bucket` wrapped by a KEK older than `below`, in records after
/// `after`, until `limit` are found; with the cursor to resume from.
pub(crate) fn sealed_keys(
    txn: &ReadTransaction,
    bucket: &str,
    below: u32,
    after: Option<KeyCursor>,
    limit: usize,
) -> Result<(Vec<KeySlot>, Option<KeyCursor>)> {
    let mut out = Vec::new();
    if matches!(after, None | Some(KeyCursor::Current(_))) {
        let from = match &after {
            Some(KeyCursor::Current(k)) => Bound::Excluded((bucket, k.as_slice())),
            _ => Bound::Included((bucket, NO_KEY)),
        };
        let objects = txn.open_table(OBJECTS).map_err(meta_err)?;
        for row in objects.range::<(&str, &[u8])>((from, Bound::Unbounded)).map_err(meta_err)? {
            let (k, v) = row.map_err(meta_err)?;
            if k.value().0 != bucket {
                break;
            }
            push_old_of_version(&mut out, k.value().1, v.value(), below)?;
            if out.len() >= limit {
                return Ok((out, Some(KeyCursor::Current(k.value().1.to_vec()))));
            }
        }
    }
    if !matches!(after, Some(KeyCursor::Upload(..))) {
        let from = match &after {
            Some(KeyCursor::Noncurrent(k, rev)) => Bound::Excluded((bucket, k.as_slice(), *rev)),
            _ => Bound::Included((bucket, NO_KEY, 0u64)),
        };
        let versions = txn.open_table(VERSIONS).map_err(meta_err)?;
        for row in versions.range::<(&str, &[u8], u64)>((from, Bound::Unbounded)).map_err(meta_err)? {
            let (k, v) = row.map_err(meta_err)?;
            let (b, key, rev) = k.value();
            if b != bucket {
                break;
            }
            push_old_of_version(&mut out, key, v.value(), below)?;
            if out.len() >= limit {
                return Ok((out, Some(KeyCursor::Noncurrent(key.to_vec(), rev))));
            }
        }
    }
    let from = match &after {
        Some(KeyCursor::Upload(k, id)) => Bound::Excluded((bucket, k.as_slice(), id.as_str())),
        _ => Bound::Included((bucket, NO_KEY, "")),
    };
    let uploads = txn.open_table(UPLOADS).map_err(meta_err)?;
    let parts = txn.open_table(PARTS).map_err(meta_err)?;
    for row in uploads.range::<(&str, &[u8], &str)>((from, Bound::Unbounded)).map_err(meta_err)? {
        let (k, v) = row.map_err(meta_err)?;
        if k.value().0 != bucket {
            break;
        }
        let upload: UploadRecord = decode(v.value())?;
        let id = upload.upload_id.as_str();
        for part in parts.range((id, 0u32)..=(id, u32::MAX)).map_err(meta_err)? {
            let part: PartRecord = decode(part.map_err(meta_err)?.1.value())?;
            let place = KeyPlace::Part { upload: upload.upload_id.clone(), number: part.number };
            KeySlot::push_older(&mut out, place, vec![&part.key], below);
        }
        if out.len() >= limit {
            return Ok((out, Some(KeyCursor::Upload(k.value().1.to_vec(), upload.upload_id.clone()))));
        }
    }
    Ok((out, None))
}

/// Swaps in rewrapped keys, matched by key id; returns how many were swapped.
pub(crate) fn replace_sealed_keys(txn: &WriteTransaction, bucket: &str, slots: Vec<KeySlot>) -> Result<usize> {
    let mut replaced = 0;
    for slot in slots {
        let swapped = match &slot.place {
            KeyPlace::Version { key, version } => replace_in_version(txn, bucket, key, version, &slot.key)?,
            KeyPlace::Part { upload, number } => replace_in_part(txn, upload, *number, &slot.key)?,
        };
        replaced += usize::from(swapped);
    }
    Ok(replaced)
}

fn replace_in_version(
    txn: &WriteTransaction,
    bucket: &str,
    key: &ObjectKey,
    version_id: &coffre_core::types::VersionId,
    new: &SealedKey,
) -> Result<bool> {
    let k = key.as_bytes();
    let mut objects = txn.open_table(OBJECTS).map_err(meta_err)?;
    let current: Option<(u64, ObjectVersion)> =
        objects.get((bucket, k)).map_err(meta_err)?.map(|v| decode(v.value())).transpose()?;
    if let Some((seq, mut version)) = current.filter(|(_, v)| &v.meta.version_id == version_id) {
        if !version.data.replace_key(new) {
            return Ok(false);
        }
        objects.insert((bucket, k), encode(&(seq, &version))?.as_slice()).map_err(meta_err)?;
        return Ok(true);
    }
    let mut versions = txn.open_table(VERSIONS).map_err(meta_err)?;
    let found = noncurrent_in(&versions, bucket, k)?.into_iter().find(|(_, _, v)| &v.meta.version_id == version_id);
    let Some((rev, seq, mut version)) = found else { return Ok(false) };
    if !version.data.replace_key(new) {
        return Ok(false);
    }
    versions.insert((bucket, k, rev), encode(&(seq, &version))?.as_slice()).map_err(meta_err)?;
    Ok(true)
}

fn replace_in_part(txn: &WriteTransaction, upload: &UploadId, number: u32, new: &SealedKey) -> Result<bool> {
    let mut parts = txn.open_table(PARTS).map_err(meta_err)?;
    let found: Option<PartRecord> =
        parts.get((upload.as_str(), number)).map_err(meta_err)?.map(|v| decode(v.value())).transpose()?;
    let Some(mut part) = found.filter(|p| p.key.key_id == new.key_id) else { return Ok(false) };
    part.key = new.clone();
    parts.insert((upload.as_str(), number), encode(&part)?.as_slice()).map_err(meta_err)?;
    Ok(true)
}

/// Removes the bucket and every version and upload in it; queues the blobs.
/// A noncurrent version with its (key, rev).
type Noncurrent = ((Vec<u8>, u64), ObjectVersion);

/// Every noncurrent version of the bucket.
fn noncurrent_of(txn: &WriteTransaction, bucket: &str) -> Result<Vec<Noncurrent>> {
    txn.open_table(VERSIONS)
        .map_err(meta_err)?
        .range((bucket, NO_KEY, 0u64)..)
        .map_err(meta_err)?
        .map(|row| row.map_err(meta_err))
        .take_while(|row| row.as_ref().map_or(true, |(k, _)| k.value().0 == bucket))
        .map(|row| {
            row.and_then(|(k, v)| {
                let (_, key, rev) = k.value();
                Ok(((key.to_vec(), rev), decode::<(u64, ObjectVersion)>(v.value())?.1))
            })
        })
        .collect()
}

pub(crate) fn erase_bucket(txn: &WriteTransaction, bucket: &str) -> Result<EraseReport> {
    let mut report = EraseReport::default();
    let mut garbage: Vec<BlobId> = Vec::new();
    if txn.open_table(BUCKETS).map_err(meta_err)?.get(bucket).map_err(meta_err)?.is_none() {
        return Err(Error::NoSuchBucket);
    }
    let mut objects = txn.open_table(OBJECTS).map_err(meta_err)?;
    let doomed: Vec<(Vec<u8>, ObjectVersion)> = objects
        .range((bucket, NO_KEY)..)
        .map_err(meta_err)?
        .map(|row| row.map_err(meta_err))
        .take_while(|row| row.as_ref().map_or(true, |(k, _)| k.value().0 == bucket))
        .map(|row| row.and_then(|(k, v)| Ok((k.value().1.to_vec(), decode::<(u64, ObjectVersion)>(v.value())?.1))))
        .collect::<Result<_>>()?;
    let doomed_noncurrent = noncurrent_of(txn, bucket)?;
    let now = UnixNanos::now();
    let mut locks = ComplianceLocks::default();
    doomed
        .iter()
        .map(|d| &d.1)
        .chain(doomed_noncurrent.iter().map(|d| &d.1))
        .for_each(|v| locks.note(&v.meta.lock, now));
    // Checked before anything is removed: a refused erasure changes nothing.
    locks.check_erase()?;
    txn.open_table(BUCKETS).map_err(meta_err)?.remove(bucket).map_err(meta_err)?;
    for (key, version) in doomed {
        garbage.extend(version.data.blobs());
        objects.remove((bucket, key.as_slice())).map_err(meta_err)?;
        report.versions += 1;
    }
    let mut versions = txn.open_table(VERSIONS).map_err(meta_err)?;
    for ((key, rev), version) in doomed_noncurrent {
        garbage.extend(version.data.blobs());
        versions.remove((bucket, key.as_slice(), rev)).map_err(meta_err)?;
        report.versions += 1;
    }
    drop((objects, versions));
    let uploads: Vec<(Vec<u8>, String)> = txn
        .open_table(UPLOADS)
        .map_err(meta_err)?
        .range((bucket, NO_KEY, "")..)
        .map_err(meta_err)?
        .map(|row| row.map_err(meta_err))
        .take_while(|row| row.as_ref().map_or(true, |(k, _)| k.value().0 == bucket))
        .map(|row| row.map(|(k, _)| (k.value().1.to_vec(), k.value().2.to_owned())))
        .collect::<Result<_>>()?;
    for (key, id) in uploads {
        let parts = remove_upload(txn, (bucket, key.as_slice(), id.as_str()))?;
        garbage.extend(parts.iter().map(|p| p.blob));
        report.uploads += 1;
    }
    report.blobs = garbage.len() as u64;
    enqueue_gc(txn, &garbage)?;
    Ok(report)
}

#[async_trait]
impl DataKeyMeta for EmbeddedMeta {
    async fn sealed_keys(
        &self,
        bucket: &BucketName,
        below_generation: u32,
        after: Option<KeyCursor>,
        limit: usize,
    ) -> Result<(Vec<KeySlot>, Option<KeyCursor>)> {
        let bucket = bucket.clone();
        self.read(move |txn| sealed_keys(txn, bucket.as_str(), below_generation, after, limit)).await
    }

    async fn replace_sealed_keys(&self, bucket: &BucketName, keys: Vec<KeySlot>) -> Result<usize> {
        let bucket = bucket.clone();
        self.write(move |txn| replace_sealed_keys(txn, bucket.as_str(), keys)).await
    }
}
