//! KEK destructions owed, in the embedded engine: recorded before they are
//! tried (with an erasure, in its transaction), forgotten once done.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::{KekDestroy, KekLedger};
use coffre_core::types::UnixNanos;
use redb::{ReadableTable as _, WriteTransaction};

use super::{EmbeddedMeta, KEK_DESTROYS};
use crate::codec::{decode, encode, meta_err};

/// Records `destroys` in `txn`; a KEK already recorded keeps its record.
pub(super) fn queue(txn: &WriteTransaction, destroys: &[KekDestroy]) -> Result<()> {
    let mut t = txn.open_table(KEK_DESTROYS).map_err(meta_err)?;
    for d in destroys {
        if t.get(d.kek.as_str()).map_err(meta_err)?.is_none() {
            t.insert(d.kek.as_str(), encode(d)?.as_slice()).map_err(meta_err)?;
        }
    }
    Ok(())
}

#[async_trait]
impl KekLedger for EmbeddedMeta {
    async fn queue_kek_destroys(&self, destroys: Vec<KekDestroy>) -> Result<()> {
        self.write(move |txn| queue(txn, &destroys)).await
    }

    async fn kek_destroys(&self) -> Result<Vec<KekDestroy>> {
        let mut all: Vec<KekDestroy> = self
            .read(|txn| {
                let t = txn.open_table(KEK_DESTROYS).map_err(meta_err)?;
                t.iter().map_err(meta_err)?.map(|row| decode(row.map_err(meta_err)?.1.value())).collect()
            })
            .await?;
        all.sort_by_key(|d| d.since);
        Ok(all)
    }

    async fn kek_destroyed(&self, kek: &str) -> Result<()> {
        let kek = kek.to_owned();
        self.write(move |txn| {
            txn.open_table(KEK_DESTROYS).map_err(meta_err)?.remove(kek.as_str()).map_err(meta_err)?;
            Ok(())
        })
        .await
    }

    async fn kek_destroy_failed(&self, kek: &str, error: &str) -> Result<()> {
        let (kek, error) = (kek.to_owned(), error.to_owned());
        self.write(move |txn| {
            let mut t = txn.open_table(KEK_DESTROYS).map_err(meta_err)?;
            let Some(mut record) =
                t.get(kek.as_str()).map_err(meta_err)?.map(|v| decode::<KekDestroy>(v.value())).transpose()?
            else {
                return Ok(()); // destroyed meanwhile by another attempt
            };
            record.attempts += 1;
            record.last_error = Some(error);
            record.last_attempt = Some(UnixNanos::now());
            t.insert(kek.as_str(), encode(&record)?.as_slice()).map_err(meta_err)?;
            Ok(())
        })
        .await
    }
}
