//! Access keys in the embedded engine.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::{AccessKeyMeta, AccessKeyRecord};
use coffre_core::types::AccessKeyId;
use redb::ReadableTable;

use super::{ACCESS_KEYS, EmbeddedMeta};
use crate::codec::{decode, encode, meta_err};

#[async_trait]
impl AccessKeyMeta for EmbeddedMeta {
    async fn put_access_key(&self, key: AccessKeyRecord) -> Result<()> {
        self.write(move |txn| {
            let mut t = txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            t.insert(key.id.as_str(), encode(&key)?.as_slice()).map_err(meta_err)?;
            Ok(())
        })
        .await
    }

    async fn access_key(&self, id: &AccessKeyId) -> Result<Option<AccessKeyRecord>> {
        let id = id.clone();
        self.read(move |txn| {
            let t = txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            t.get(id.as_str()).map_err(meta_err)?.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        self.read(|txn| {
            let t = txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(meta_err)? {
                out.push(decode(row.map_err(meta_err)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_access_key(&self, id: &AccessKeyId) -> Result<bool> {
        let id = id.clone();
        self.write(move |txn| {
            let mut t = txn.open_table(ACCESS_KEYS).map_err(meta_err)?;
            Ok(t.remove(id.as_str()).map_err(meta_err)?.is_some())
        })
        .await
    }
}
