//! Access keys in PostgreSQL.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::{AccessKeyMeta, AccessKeyRecord};
use coffre_core::types::AccessKeyId;

use super::{PgMeta, db_err};
use crate::codec::{decode, encode};

#[async_trait]
impl AccessKeyMeta for PgMeta {
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
}
