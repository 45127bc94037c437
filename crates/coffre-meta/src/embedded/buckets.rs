//! Buckets in the embedded engine: their records, usage, and removal.

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::meta::{
    BucketChange, BucketMeta, BucketRecord, BucketRemoval, BucketUsage, EraseReport, KekDestroy, UploadRecord,
};
use coffre_core::types::BucketName;
use redb::{ReadableTable, WriteTransaction};

use super::blobs::enqueue_gc;
use super::uploads::remove_upload;
use super::{BUCKETS, EmbeddedMeta, OBJECTS, UPLOADS, VERSIONS, decode_meta};
use crate::codec::{decode, encode, meta_err};

pub(super) fn get_bucket(txn: &WriteTransaction, name: &str) -> Result<Option<BucketRecord>> {
    let t = txn.open_table(BUCKETS).map_err(meta_err)?;
    t.get(name).map_err(meta_err)?.map(|v| decode(v.value())).transpose()
}

/// Whether the bucket holds a current or noncurrent version (or delete marker).
fn has_versions(txn: &WriteTransaction, b: &str) -> Result<bool> {
    let lo: &[u8] = &[];
    let current = txn
        .open_table(OBJECTS)
        .map_err(meta_err)?
        .range((b, lo)..)
        .map_err(meta_err)?
        .next()
        .transpose()
        .map_err(meta_err)?
        .is_some_and(|(k, _)| k.value().0 == b);
    let noncurrent = txn
        .open_table(VERSIONS)
        .map_err(meta_err)?
        .range((b, lo, 0u64)..)
        .map_err(meta_err)?
        .next()
        .transpose()
        .map_err(meta_err)?
        .is_some_and(|(k, _)| k.value().0 == b);
    Ok(current || noncurrent)
}

fn bucket_uploads(txn: &WriteTransaction, b: &str) -> Result<Vec<UploadRecord>> {
    let lo: &[u8] = &[];
    let t = txn.open_table(UPLOADS).map_err(meta_err)?;
    let mut out = Vec::new();
    for row in t.range((b, lo, "")..).map_err(meta_err)? {
        let (k, v) = row.map_err(meta_err)?;
        if k.value().0 != b {
            break;
        }
        out.push(decode(v.value())?);
    }
    Ok(out)
}

#[async_trait]
impl BucketMeta for EmbeddedMeta {
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

    async fn delete_bucket(&self, name: &BucketName, aborting: &BucketRemoval) -> Result<()> {
        let (name, aborting) = (name.clone(), aborting.clone());
        self.write(move |txn| {
            let b = name.as_str();
            get_bucket(txn, b)?.ok_or(Error::NoSuchBucket)?;
            let uploads = bucket_uploads(txn, b)?;
            aborting.check(has_versions(txn, b)?, uploads.iter().map(|u| u.upload_id.as_str()))?;
            for u in &uploads {
                let parts = remove_upload(txn, (b, u.key.as_bytes(), u.upload_id.as_str()))?;
                enqueue_gc(txn, &parts.iter().map(|p| p.blob).collect::<Vec<_>>())?;
            }
            txn.open_table(BUCKETS).map_err(meta_err)?.remove(b).map_err(meta_err)?;
            Ok(())
        })
        .await
    }

    async fn erase_bucket(&self, name: &BucketName, destroys: Vec<KekDestroy>) -> Result<EraseReport> {
        let name = name.clone();
        self.write(move |txn| {
            let report = super::rekey::erase_bucket(txn, name.as_str())?;
            super::keks::queue(txn, &destroys)?;
            Ok(report)
        })
        .await
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
            record.apply(change)?;
            let mut t = txn.open_table(BUCKETS).map_err(meta_err)?;
            t.insert(name.as_str(), encode(&record)?.as_slice()).map_err(meta_err)?;
            Ok(())
        })
        .await
    }
}
