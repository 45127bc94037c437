//! Deployment settings in PostgreSQL.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::SettingMeta;
use futures::FutureExt as _;

use super::store::{execute, query_opt};
use super::{PgMeta, Tx, TxError, TxResult};

pub(super) async fn put_setting_tx(tx: &Tx<'_>, input: &(String, String)) -> TxResult<String> {
    let sql = "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    execute(tx, sql, &[&input.0, &input.1]).await?;
    let row = query_opt(tx, "SELECT value FROM settings WHERE name = $1", &[&input.0]).await?;
    row.map(|r| r.get(0)).ok_or_else(|| TxError::Retry)
}

#[async_trait]
impl SettingMeta for PgMeta {
    async fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(self.read_row("SELECT value FROM settings WHERE name = $1", &[&name]).await?.map(|r| r.get(0)))
    }

    async fn put_setting_if_absent(&self, name: &str, value: &str) -> Result<String> {
        self.txn(&(name.to_owned(), value.to_owned()), |tx, i| put_setting_tx(tx, i).boxed()).await
    }
}
