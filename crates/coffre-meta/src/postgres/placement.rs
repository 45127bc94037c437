//! The placement of every blob on the storage targets, in the shared
//! database, so that any gateway finds the replicas another one wrote.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::placement::PlacementStore;
use coffre_core::types::BlobId;
use deadpool_postgres::Pool;

use super::{db_err, get};

#[derive(Clone)]
pub struct PgPlacement {
    pool: Pool,
}

impl PgPlacement {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64> {
        let client = get(&self.pool).await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.execute(&stmt, params).await.map_err(db_err)
    }
}

/// Big-endian, so that byte order is id order.
pub(crate) fn blob_key(id: BlobId) -> [u8; 16] {
    id.0.to_be_bytes()
}

pub(crate) fn blob_id(bytes: &[u8]) -> Result<BlobId> {
    let raw: [u8; 16] =
        bytes.try_into().map_err(|_| coffre_core::Error::Meta(format!("a blob id of {} bytes", bytes.len())))?;
    Ok(BlobId(u128::from_be_bytes(raw)))
}

#[async_trait]
impl PlacementStore for PgPlacement {
    async fn put(&self, id: BlobId, record: Vec<u8>) -> Result<()> {
        let sql = "INSERT INTO placement (blob, record) VALUES ($1, $2)
                   ON CONFLICT (blob) DO UPDATE SET record = excluded.record";
        self.execute(sql, &[&blob_key(id).as_slice(), &record]).await.map(drop)
    }

    async fn replace_if(&self, id: BlobId, seen: Vec<u8>, record: Vec<u8>) -> Result<bool> {
        let sql = "UPDATE placement SET record = $3 WHERE blob = $1 AND record = $2";
        Ok(self.execute(sql, &[&blob_key(id).as_slice(), &seen, &record]).await? == 1)
    }

    async fn remove_if(&self, id: BlobId, seen: Vec<u8>) -> Result<bool> {
        let sql = "DELETE FROM placement WHERE blob = $1 AND record = $2";
        Ok(self.execute(sql, &[&blob_key(id).as_slice(), &seen]).await? == 1)
    }

    async fn get(&self, id: BlobId) -> Result<Option<Vec<u8>>> {
        let client = get(&self.pool).await?;
        let stmt = client.prepare_cached("SELECT record FROM placement WHERE blob = $1").await.map_err(db_err)?;
        let row = client.query_opt(&stmt, &[&blob_key(id).as_slice()]).await.map_err(db_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn page(&self, after: Option<BlobId>, limit: usize) -> Result<Vec<(BlobId, Vec<u8>)>> {
        let client = get(&self.pool).await?;
        // No cursor: the empty key sorts before every 16-byte id.
        let after: Vec<u8> = after.map(|id| blob_key(id).to_vec()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = client
            .prepare_cached("SELECT blob, record FROM placement WHERE blob > $1 ORDER BY blob LIMIT $2")
            .await
            .map_err(db_err)?;
        let rows = client.query(&stmt, &[&after, &limit]).await.map_err(db_err)?;
        rows.iter().map(|r| Ok((blob_id(r.get(0))?, r.get(1)))).collect()
    }

    async fn declare_lost(&self, target: &str) -> Result<()> {
        let sql = "INSERT INTO lost_targets (target) VALUES ($1) ON CONFLICT (target) DO NOTHING";
        self.execute(sql, &[&target]).await.map(drop)
    }

    async fn lost(&self) -> Result<Vec<String>> {
        let client = get(&self.pool).await?;
        let rows = client.query("SELECT target FROM lost_targets", &[]).await.map_err(db_err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
