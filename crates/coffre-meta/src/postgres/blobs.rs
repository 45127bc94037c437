//! The blob ledger in PostgreSQL: blobs pending a commit (by gateway) and
//! the collection queue, claimed by one collector at a time.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::BlobLedger;
use coffre_core::types::{BlobId, UnixNanos};
use futures::FutureExt as _;

use super::cluster::{not_ours, sweep_dead};
use super::placement::{blob_id, blob_key};
use super::store::{execute, limit_param, query};
use super::{PgMeta, Tx, TxError, TxResult, db_err};

pub(crate) async fn enqueue_gc(tx: &Tx<'_>, blobs: &[Vec<u8>]) -> TxResult<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let sql = "INSERT INTO gc_queue (blob, enqueued_at) SELECT b, $2 FROM unnest($1::BYTEA[]) AS b
               ON CONFLICT (blob) DO NOTHING";
    execute(tx, sql, &[&blobs, &UnixNanos::now().0]).await.map(drop)
}

pub(super) async fn enqueue_blobs(tx: &Tx<'_>, blobs: &[BlobId]) -> TxResult<()> {
    enqueue_gc(tx, &keys_of(blobs)).await
}

pub(super) fn keys_of(blobs: &[BlobId]) -> Vec<Vec<u8>> {
    blobs.iter().map(|b| blob_key(*b).to_vec()).collect()
}

/// Ends the pending state of blobs a write now commits. Every one must still
/// be pending: a row gone means this gateway was presumed dead and the blob
/// queued for collection, so committing it would reference a deleted blob.
pub(super) async fn clear_pending(tx: &Tx<'_>, blobs: &[BlobId]) -> TxResult<()> {
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

pub(super) async fn register_pending_tx(tx: &Tx<'_>, input: &(Vec<Vec<u8>>, [u8; 16])) -> TxResult<()> {
    let sql = "INSERT INTO pending_blobs (blob, gateway) SELECT b, $2 FROM unnest($1::BYTEA[]) AS b";
    execute(tx, sql, &[&input.0, &input.1.as_slice()]).await.map(drop)
}

pub(super) async fn release_pending_tx(tx: &Tx<'_>, blobs: &[BlobId]) -> TxResult<()> {
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
pub(super) async fn claim_collectable_tx(tx: &Tx<'_>, input: &(i64, usize)) -> TxResult<Vec<BlobId>> {
    let pick = "SELECT blob FROM gc_queue WHERE enqueued_at <= $1 AND run_after <= now()
                ORDER BY enqueued_at LIMIT $2 FOR UPDATE SKIP LOCKED";
    let rows = query(tx, pick, &[&input.0, &limit_param(input.1)]).await?;
    let keys: Vec<Vec<u8>> = rows.iter().map(|row| row.get(0)).collect();
    let hide = "UPDATE gc_queue SET run_after = now() + INTERVAL '15 seconds', attempts = attempts + 1
                WHERE blob = ANY($1)";
    execute(tx, hide, &[&keys]).await?;
    keys.iter().map(|key| Ok(blob_id(key)?)).collect()
}

#[async_trait]
impl BlobLedger for PgMeta {
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
}
