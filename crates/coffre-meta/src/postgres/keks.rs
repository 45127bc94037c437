//! KEK destructions owed, in PostgreSQL: recorded before they are tried
//! (with an erasure, in its transaction), deleted once done.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::{KekDestroy, KekLedger};
use coffre_core::types::UnixNanos;
use futures::FutureExt as _;

use super::store::{execute, query_opt};
use super::{PgMeta, Tx, TxResult};
use crate::codec::{decode, encode};

/// Records `destroys` in `tx`; a KEK already recorded keeps its record.
pub(super) async fn queue_tx(tx: &Tx<'_>, destroys: &[KekDestroy]) -> TxResult<()> {
    let sql = "INSERT INTO kek_destroys (kek, record) VALUES ($1, $2) ON CONFLICT (kek) DO NOTHING";
    for d in destroys {
        execute(tx, sql, &[&d.kek, &encode(d)?]).await?;
    }
    Ok(())
}

async fn destroyed_tx(tx: &Tx<'_>, kek: &str) -> TxResult<()> {
    execute(tx, "DELETE FROM kek_destroys WHERE kek = $1", &[&kek]).await.map(drop)
}

async fn failed_tx(tx: &Tx<'_>, input: &(String, String)) -> TxResult<()> {
    let (kek, error) = input;
    let sql = "SELECT record FROM kek_destroys WHERE kek = $1 FOR UPDATE";
    let Some(row) = query_opt(tx, sql, &[kek]).await? else { return Ok(()) };
    let mut record: KekDestroy = decode(row.get(0))?;
    record.attempts += 1;
    record.last_error = Some(error.clone());
    record.last_attempt = Some(UnixNanos::now());
    execute(tx, "UPDATE kek_destroys SET record = $2 WHERE kek = $1", &[kek, &encode(&record)?]).await.map(drop)
}

#[async_trait]
impl KekLedger for PgMeta {
    async fn queue_kek_destroys(&self, destroys: Vec<KekDestroy>) -> Result<()> {
        self.txn(&destroys, |tx, d| queue_tx(tx, d).boxed()).await
    }

    async fn kek_destroys(&self) -> Result<Vec<KekDestroy>> {
        let rows = self.read_rows("SELECT record FROM kek_destroys", &[]).await?;
        let mut all: Vec<KekDestroy> = rows.iter().map(|r| decode(r.get(0))).collect::<Result<_>>()?;
        all.sort_by_key(|d| d.since);
        Ok(all)
    }

    async fn kek_destroyed(&self, kek: &str) -> Result<()> {
        self.txn(kek, |tx, k| destroyed_tx(tx, k).boxed()).await
    }

    async fn kek_destroy_failed(&self, kek: &str, error: &str) -> Result<()> {
        self.txn(&(kek.to_owned(), error.to_owned()), |tx, i| failed_tx(tx, i).boxed()).await
    }
}
