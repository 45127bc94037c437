//! Multipart uploads and their parts in the embedded engine.

use std::ops::Bound;

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::meta::{CompleteUpload, PartRecord, UploadMeta, UploadRecord};
use coffre_core::types::{BlobId, BucketName, ObjectKey, UploadId};
use redb::{ReadableTable, WriteTransaction};

use super::blobs::{clear_pending, enqueue_gc};
use super::buckets::get_bucket;
use super::objects::{plan_put, write_key};
use super::{EmbeddedMeta, PARTS, UPLOADS};
use crate::codec::{decode, encode, meta_err};

pub(super) fn upload_parts(txn: &WriteTransaction, upload_id: &str) -> Result<Vec<PartRecord>> {
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

pub(super) fn upload_exists(txn: &WriteTransaction, upload: (&str, &[u8], &str)) -> Result<bool> {
    Ok(txn.open_table(UPLOADS).map_err(meta_err)?.get(upload).map_err(meta_err)?.is_some())
}

#[async_trait]
impl UploadMeta for EmbeddedMeta {
    async fn create_upload(&self, upload: UploadRecord) -> Result<()> {
        self.write(move |txn| {
            get_bucket(txn, upload.bucket.as_str())?.ok_or(Error::NoSuchBucket)?.check_write(upload.bucket_id, &[])?;
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
            get_bucket(txn, upload.bucket.as_str())?
                .ok_or(Error::NoSuchBucket)?
                .check_write(upload.bucket_id, &[&part.key])?;
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
            let writes = plan_put(txn, &u.bucket, u.bucket_id, &u.key, complete.version, &complete.condition)?;
            let parts = remove_upload(txn, key)?;
            let unused: Vec<BlobId> =
                parts.iter().filter(|p| !complete.keep.contains(&p.number)).map(|p| p.blob).collect();
            enqueue_gc(txn, &unused)?;
            write_key(txn, u.bucket.as_str(), u.key.as_bytes(), writes)
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
}
