//! Deployment settings in the embedded engine.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::SettingMeta;
use redb::ReadableTable;

use super::{EmbeddedMeta, SETTINGS};
use crate::codec::meta_err;

#[async_trait]
impl SettingMeta for EmbeddedMeta {
    async fn setting(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_owned();
        self.read(move |txn| {
            let t = txn.open_table(SETTINGS).map_err(meta_err)?;
            Ok(t.get(name.as_str()).map_err(meta_err)?.map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn put_setting_if_absent(&self, name: &str, value: &str) -> Result<String> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(move |txn| {
            let mut t = txn.open_table(SETTINGS).map_err(meta_err)?;
            if let Some(existing) = t.get(name.as_str()).map_err(meta_err)?.map(|v| v.value().to_owned()) {
                return Ok(existing);
            }
            t.insert(name.as_str(), value.as_str()).map_err(meta_err)?;
            Ok(value)
        })
        .await
    }
}
