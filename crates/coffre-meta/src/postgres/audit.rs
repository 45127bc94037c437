//! The shared audit log's store: events numbered by one counter row, heads
//! recorded only under the signing lease (see `coffre_audit::shared`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coffre_audit::merkle::{Hash, leaf_hash};
use coffre_audit::{AuditError, Event, LogStore, SignedHead};
use futures::FutureExt as _;

use super::{PgMeta, Tx, TxResult};

const LEASE: &str = "audit-signer";

/// The audit log of every gateway on this database.
pub struct PgAudit {
    meta: Arc<PgMeta>,
}

impl PgMeta {
    pub fn audit_store(self: &Arc<Self>) -> PgAudit {
        PgAudit { meta: self.clone() }
    }
}

fn audit_err(e: impl std::fmt::Display) -> AuditError {
    AuditError::Invalid(format!("shared audit log: {e}"))
}

async fn append_tx(tx: &Tx<'_>, events: &[Event]) -> TxResult<()> {
    let count = events.len() as i64;
    let stmt = tx.prepare_cached("UPDATE audit_counter SET next_seq = next_seq + $1 RETURNING next_seq - $1").await?;
    let first: i64 = tx.query_one(&stmt, &[&count]).await?.get(0);
    let mut seqs = Vec::with_capacity(events.len());
    let mut lines = Vec::with_capacity(events.len());
    let mut leaves = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let seq = first + i as i64;
        let mut event = event.clone();
        event.seq = seq as u64;
        let line = event.canonical();
        leaves.push(leaf_hash(&line).to_vec());
        lines.push(line);
        seqs.push(seq);
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit_events (seq, line, leaf) SELECT * FROM unnest($1::INT8[], $2::BYTEA[], $3::BYTEA[])",
        )
        .await?;
    tx.execute(&stmt, &[&seqs, &lines, &leaves]).await?;
    Ok(())
}

#[async_trait]
impl LogStore for PgAudit {
    async fn append(&self, events: Vec<Event>) -> coffre_audit::Result<()> {
        self.meta.txn(events.as_slice(), |tx, e| append_tx(tx, e).boxed()).await.map_err(audit_err)
    }

    async fn leaves(&self, from: u64, limit: usize) -> coffre_audit::Result<Vec<Hash>> {
        let sql = "SELECT leaf FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2";
        let rows = self.meta.read_rows(sql, &[&(from as i64), &(limit as i64)]).await.map_err(audit_err)?;
        rows.iter()
            .map(|r| r.get::<_, &[u8]>(0).try_into().map_err(|_| audit_err("a leaf hash is not 32 bytes")))
            .collect()
    }

    async fn lines(&self, from: u64, limit: usize) -> coffre_audit::Result<Vec<Vec<u8>>> {
        let sql = "SELECT line FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2";
        let rows = self.meta.read_rows(sql, &[&(from as i64), &(limit as i64)]).await.map_err(audit_err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn signing_lease(&self, ttl: Duration) -> coffre_audit::Result<Option<i64>> {
        Ok(self.meta.acquire_lease(LEASE, ttl).await.map_err(audit_err)?.map(|lease| lease.epoch))
    }

    async fn put_head(&self, head: &SignedHead, epoch: i64) -> coffre_audit::Result<bool> {
        // The lease is checked in the statement that writes: a holder deposed
        // between signing and recording writes nothing.
        let sql = "INSERT INTO audit_heads (head, size, line, epoch)
                   SELECT $1, $2, $3, $4 WHERE EXISTS (
                       SELECT 1 FROM leases
                       WHERE name = $5 AND holder = $6 AND epoch = $4 AND expires_at > now())
                   ON CONFLICT (head) DO NOTHING";
        let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] =
            &[&(head.head as i64), &(head.size as i64), &head.to_line(), &epoch, &LEASE, &self.meta.gateway.as_slice()];
        let client = self.meta.client().await.map_err(audit_err)?;
        let written = client.execute(sql, params).await.map_err(audit_err)?;
        Ok(written == 1)
    }

    async fn heads(&self) -> coffre_audit::Result<Vec<SignedHead>> {
        let rows = self.meta.read_rows("SELECT line FROM audit_heads ORDER BY head", &[]).await.map_err(audit_err)?;
        rows.iter().map(|r| serde_json::from_str(r.get(0)).map_err(audit_err)).collect()
    }
}
