//! The embedded engine's blob ledger: blobs pending a commit and the
//! collection queue of blobs no version references.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::BlobLedger;
use coffre_core::types::{BlobId, UnixNanos};
use redb::{ReadableTable, WriteTransaction};

use super::{EmbeddedMeta, GC_QUEUE, PENDING};
use crate::codec::meta_err;

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

pub(super) fn clear_pending(txn: &WriteTransaction, blobs: &[BlobId]) -> Result<()> {
    let mut p = txn.open_table(PENDING).map_err(meta_err)?;
    for b in blobs {
        p.remove(b.0).map_err(meta_err)?;
    }
    Ok(())
}

#[async_trait]
impl BlobLedger for EmbeddedMeta {
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
}
