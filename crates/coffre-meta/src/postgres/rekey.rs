//! Key rotation in PostgreSQL: finding data keys wrapped by an old KEK and
//! writing their rewrapped form.

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::meta::{DataKeyMeta, DataLocation, KeyCursor, KeyPlace, KeySlot, PartRecord, UploadRecord};
use coffre_core::types::{BucketName, VersionId};
use futures::FutureExt as _;

use super::store::{SCAN_BATCH, execute, object_key, query, query_opt};
use super::{PgMeta, Tx, TxResult};
use crate::codec::{decode, encode};

type KeysInput = (BucketName, u32, Option<KeyCursor>, usize);

async fn sealed_keys_tx(tx: &Tx<'_>, input: &KeysInput) -> TxResult<(Vec<KeySlot>, Option<KeyCursor>)> {
    let (bucket, below, after, limit) = input;
    let b = bucket.as_str();
    let mut out = Vec::new();
    if matches!(after, None | Some(KeyCursor::Current(_))) {
        let mut from = match after {
            Some(KeyCursor::Current(k)) => Some(k.clone()),
            _ => None,
        };
        loop {
            let sql = "SELECT key, version_id, data FROM objects WHERE bucket = $1 AND key > $2 ORDER BY key LIMIT $3";
            let rows = query(tx, sql, &[&b, &from.clone().unwrap_or_default(), &SCAN_BATCH]).await?;
            for row in &rows {
                let k: &[u8] = row.get(0);
                push_data_keys(&mut out, k, row.get(1), row.get(2), *below)?;
                if out.len() >= *limit {
                    return Ok((out, Some(KeyCursor::Current(k.to_vec()))));
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == SCAN_BATCH => from = Some(last.get(0)),
                _ => break,
            }
        }
    }
    if !matches!(after, Some(KeyCursor::Upload(..))) {
        let (mut key, mut rev): (Vec<u8>, i64) = match after {
            Some(KeyCursor::Noncurrent(k, rev)) => (k.clone(), i64::try_from(*rev).unwrap_or(i64::MAX)),
            _ => (Vec::new(), -1),
        };
        loop {
            let sql = "SELECT key, rev, version_id, data FROM object_versions
                       WHERE bucket = $1 AND (key, rev) > ($2, $3) ORDER BY key, rev LIMIT $4";
            let rows = query(tx, sql, &[&b, &key, &rev, &SCAN_BATCH]).await?;
            for row in &rows {
                let k: &[u8] = row.get(0);
                push_data_keys(&mut out, k, row.get(2), row.get(3), *below)?;
                if out.len() >= *limit {
                    let r: i64 = row.get(1);
                    return Ok((out, Some(KeyCursor::Noncurrent(k.to_vec(), r.max(0) as u64))));
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == SCAN_BATCH => (key, rev) = (last.get(0), last.get(1)),
                _ => break,
            }
        }
    }
    let (mut key, mut upload): (Vec<u8>, Vec<u8>) = match after {
        Some(KeyCursor::Upload(k, id)) => (k.clone(), id.as_str().as_bytes().to_vec()),
        _ => (Vec::new(), Vec::new()),
    };
    loop {
        let sql = "SELECT key, record FROM multipart_uploads WHERE bucket = $1 AND (key, upload_id) > ($2, $3)
                   ORDER BY key, upload_id LIMIT $4";
        let rows = query(tx, sql, &[&b, &key, &upload, &SCAN_BATCH]).await?;
        for row in &rows {
            let record: UploadRecord = decode(row.get(1))?;
            let sql = "SELECT record FROM multipart_parts WHERE upload_id = $1 ORDER BY part_no";
            for part in query(tx, sql, &[&record.upload_id.as_str().as_bytes()]).await? {
                let part: PartRecord = decode(part.get(0))?;
                let place = KeyPlace::Part { upload: record.upload_id.clone(), number: part.number };
                KeySlot::push_older(&mut out, place, vec![&part.key], *below);
            }
            if out.len() >= *limit {
                return Ok((out, Some(KeyCursor::Upload(row.get::<_, Vec<u8>>(0), record.upload_id))));
            }
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == SCAN_BATCH => {
                key = last.get(0);
                upload = decode::<UploadRecord>(last.get(1))?.upload_id.as_str().as_bytes().to_vec();
            }
            _ => break,
        }
    }
    Ok((out, None))
}

fn push_data_keys(out: &mut Vec<KeySlot>, key: &[u8], version: &str, data: &[u8], below: u32) -> Result<()> {
    let data: DataLocation = decode(data)?;
    let place = KeyPlace::Version { key: object_key(key)?, version: VersionId::parse(version)? };
    KeySlot::push_older(out, place, data.keys(), below);
    Ok(())
}

async fn replace_keys_tx(tx: &Tx<'_>, input: &(BucketName, Vec<KeySlot>)) -> TxResult<usize> {
    let (bucket, slots) = input;
    let b = bucket.as_str();
    let mut replaced = 0;
    for slot in slots {
        let swapped = match &slot.place {
            KeyPlace::Version { key, version } => {
                let k = key.as_bytes();
                let sql =
                    "SELECT data, 0::INT8 FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3 FOR UPDATE";
                let cur = query_opt(tx, sql, &[&b, &k, &version.as_str()]).await?;
                let sql = "SELECT data, rev FROM object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3
                           FOR UPDATE";
                let found = match cur {
                    Some(row) => Some((row, true)),
                    None => query_opt(tx, sql, &[&b, &k, &version.as_str()]).await?.map(|row| (row, false)),
                };
                match found {
                    None => false,
                    Some((row, is_current)) => {
                        let mut data: DataLocation = decode(row.get(0))?;
                        let swapped = data.replace_key(&slot.key);
                        if swapped {
                            let bytes = encode(&data)?;
                            if is_current {
                                let sql = "UPDATE objects SET data = $3 WHERE bucket = $1 AND key = $2";
                                execute(tx, sql, &[&b, &k, &bytes]).await?;
                            } else {
                                let rev: i64 = row.get(1);
                                let sql =
                                    "UPDATE object_versions SET data = $4 WHERE bucket = $1 AND key = $2 AND rev = $3";
                                execute(tx, sql, &[&b, &k, &rev, &bytes]).await?;
                            }
                        }
                        swapped
                    }
                }
            }
            KeyPlace::Part { upload, number } => {
                let id = upload.as_str().as_bytes();
                let number = i32::try_from(*number).unwrap_or(i32::MAX);
                let sql = "SELECT record FROM multipart_parts WHERE upload_id = $1 AND part_no = $2 FOR UPDATE";
                let part: Option<PartRecord> =
                    query_opt(tx, sql, &[&id, &number]).await?.map(|row| decode(row.get(0))).transpose()?;
                match part.filter(|p| p.key.key_id == slot.key.key_id) {
                    None => false,
                    Some(mut part) => {
                        part.key = slot.key.clone();
                        let sql = "UPDATE multipart_parts SET record = $3 WHERE upload_id = $1 AND part_no = $2";
                        execute(tx, sql, &[&id, &number, &encode(&part)?]).await?;
                        true
                    }
                }
            }
        };
        replaced += usize::from(swapped);
    }
    Ok(replaced)
}

#[async_trait]
impl DataKeyMeta for PgMeta {
    async fn sealed_keys(
        &self,
        bucket: &BucketName,
        below_generation: u32,
        after: Option<KeyCursor>,
        limit: usize,
    ) -> Result<(Vec<KeySlot>, Option<KeyCursor>)> {
        let input = (bucket.clone(), below_generation, after, limit);
        self.snapshot(&input, |tx, i| sealed_keys_tx(tx, i).boxed()).await
    }

    async fn replace_sealed_keys(&self, bucket: &BucketName, keys: Vec<KeySlot>) -> Result<usize> {
        self.txn(&(bucket.clone(), keys), |tx, i| replace_keys_tx(tx, i).boxed()).await
    }
}
