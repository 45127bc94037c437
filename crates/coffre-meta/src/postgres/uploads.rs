//! Multipart uploads and their parts in PostgreSQL.

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::list::prefix_successor;
use coffre_core::meta::{CompleteUpload, PartRecord, UploadMeta, UploadRecord};
use coffre_core::types::{BlobId, BucketName, ObjectKey, UploadId};
use futures::FutureExt as _;

use super::blobs::{clear_pending, enqueue_blobs};
use super::objects::{plan_put, write_key};
use super::store::{Params, Sql, bucket_shared, execute, limit_param, query, query_opt};
use super::{PgMeta, Tx, TxError, TxResult};
use crate::codec::{decode, encode};

/// An upload's primary key: bucket, key, upload id.
pub(super) type UploadPk = (BucketName, ObjectKey, UploadId);

pub(super) fn upload_pk(u: &UploadRecord) -> UploadPk {
    (u.bucket.clone(), u.key.clone(), u.upload_id.clone())
}

pub(super) async fn create_upload_tx(tx: &Tx<'_>, upload: &UploadRecord) -> TxResult<()> {
    bucket_shared(tx, &upload.bucket).await?.check_write(upload.bucket_id, &[])?;
    let (b, k, id) = (upload.bucket.as_str(), upload.key.as_bytes(), upload.upload_id.as_str().as_bytes());
    let sql = "INSERT INTO multipart_uploads (bucket, key, upload_id, record) VALUES ($1, $2, $3, $4)";
    execute(tx, sql, &[&b, &k, &id, &encode(upload)?]).await.map(drop)
}

/// Locks the upload's row (`FOR SHARE` lets parts arrive side by side;
/// completion and abort take it `FOR UPDATE`).
pub(super) async fn lock_upload(tx: &Tx<'_>, upload: &UploadPk, mode: &str) -> TxResult<()> {
    let (b, k, id) = (upload.0.as_str(), upload.1.as_bytes(), upload.2.as_str().as_bytes());
    let sql = format!("SELECT 1 FROM multipart_uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3 {mode}");
    query_opt(tx, &sql, &[&b, &k, &id]).await?.ok_or(Error::NoSuchUpload)?;
    Ok(())
}

pub(super) async fn put_part_tx(tx: &Tx<'_>, input: &(UploadRecord, PartRecord)) -> TxResult<()> {
    let (upload, part) = input;
    lock_upload(tx, &upload_pk(upload), "FOR SHARE").await?;
    bucket_shared(tx, &upload.bucket).await?.check_write(upload.bucket_id, &[&part.key])?;
    let id = upload.upload_id.as_str().as_bytes();
    let number = i32::try_from(part.number).map_err(|_| Error::InvalidArgument("part number".into()))?;
    let sql = "SELECT record FROM multipart_parts WHERE upload_id = $1 AND part_no = $2 FOR UPDATE";
    let replaced: Option<PartRecord> =
        query_opt(tx, sql, &[&id, &number]).await?.map(|row| decode(row.get(0))).transpose()?;
    let record = encode(part)?;
    match &replaced {
        Some(_) => {
            let sql = "UPDATE multipart_parts SET record = $3 WHERE upload_id = $1 AND part_no = $2";
            execute(tx, sql, &[&id, &number, &record]).await?;
        }
        None => {
            let sql = "INSERT INTO multipart_parts (upload_id, part_no, record) VALUES ($1, $2, $3)
                       ON CONFLICT (upload_id, part_no) DO NOTHING";
            if execute(tx, sql, &[&id, &number, &record]).await? == 0 {
                return Err(TxError::Retry);
            }
        }
    }
    if let Some(old) = replaced {
        enqueue_blobs(tx, &[old.blob]).await?;
    }
    clear_pending(tx, &[part.blob]).await
}

/// Deletes the upload's row and parts; returns the parts.
pub(super) async fn remove_upload(tx: &Tx<'_>, upload: &UploadPk) -> TxResult<Vec<PartRecord>> {
    let (b, k, id) = (upload.0.as_str(), upload.1.as_bytes(), upload.2.as_str().as_bytes());
    let sql = "DELETE FROM multipart_uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3";
    if execute(tx, sql, &[&b, &k, &id]).await? == 0 {
        return Err(Error::NoSuchUpload.into());
    }
    let sql = "DELETE FROM multipart_parts WHERE upload_id = $1 RETURNING record";
    query(tx, sql, &[&id]).await?.iter().map(|row| Ok(decode(row.get(0))?)).collect()
}

pub(super) async fn complete_upload_tx(tx: &Tx<'_>, complete: &CompleteUpload) -> TxResult<()> {
    let u = &complete.upload;
    let pk = upload_pk(u);
    lock_upload(tx, &pk, "FOR UPDATE").await?;
    // Every check before the first write.
    let (writes, existed) =
        plan_put(tx, &u.bucket, u.bucket_id, &u.key, &complete.version, &complete.condition).await?;
    let parts = remove_upload(tx, &pk).await?;
    let unused: Vec<BlobId> = parts.iter().filter(|p| !complete.keep.contains(&p.number)).map(|p| p.blob).collect();
    enqueue_blobs(tx, &unused).await?;
    write_key(tx, u.bucket.as_str(), u.key.as_bytes(), existed, writes).await
}

pub(super) async fn abort_upload_tx(tx: &Tx<'_>, upload: &UploadPk) -> TxResult<()> {
    let parts = remove_upload(tx, upload).await?;
    enqueue_blobs(tx, &parts.iter().map(|p| p.blob).collect::<Vec<_>>()).await
}

#[async_trait]
impl UploadMeta for PgMeta {
    async fn create_upload(&self, upload: UploadRecord) -> Result<()> {
        self.txn(&upload, |tx, u| create_upload_tx(tx, u).boxed()).await
    }

    async fn upload(&self, bucket: &BucketName, key: &ObjectKey, upload_id: &UploadId) -> Result<Option<UploadRecord>> {
        let sql = "SELECT record FROM multipart_uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3";
        let params: &Params = &[&bucket.as_str(), &key.as_bytes(), &upload_id.as_str().as_bytes()];
        self.read_row(sql, params).await?.map(|r| decode(r.get(0))).transpose()
    }

    async fn put_part(&self, upload: &UploadRecord, part: PartRecord) -> Result<()> {
        self.txn(&(upload.clone(), part), |tx, i| put_part_tx(tx, i).boxed()).await
    }

    async fn parts(&self, upload_id: &UploadId, after: u32, limit: usize) -> Result<Vec<PartRecord>> {
        let Ok(after) = i32::try_from(after) else { return Ok(Vec::new()) };
        let sql = "SELECT record FROM multipart_parts WHERE upload_id = $1 AND part_no > $2 ORDER BY part_no LIMIT $3";
        let rows = self.read_rows(sql, &[&upload_id.as_str().as_bytes(), &after, &limit_param(limit)]).await?;
        rows.iter().map(|r| decode(r.get(0))).collect()
    }

    async fn uploads(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        after: Option<(&[u8], Option<&UploadId>)>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>> {
        let end = prefix_successor(prefix);
        let (b, n) = (bucket.as_str(), limit_param(limit));
        let after: Option<(&[u8], Option<&[u8]>)> = after.map(|(k, u)| (k, u.map(|u| u.as_str().as_bytes())));
        let mut sql = Sql::new();
        let bucket_arg = sql.arg(&b);
        let cursor = match &after {
            Some((k, Some(u))) if *k >= prefix => format!("(key, upload_id) > ({}, {})", sql.arg(k), sql.arg(u)),
            Some((k, None)) if *k >= prefix => format!("key > {}", sql.arg(k)),
            _ => format!("key >= {}", sql.arg(&prefix)),
        };
        let range = match &end {
            Some(end) => format!(" AND key < {}", sql.arg(end)),
            None => String::new(),
        };
        let text = format!(
            "SELECT record FROM multipart_uploads WHERE bucket = {bucket_arg} AND {cursor}{range}
             ORDER BY key, upload_id LIMIT {}",
            sql.arg(&n)
        );
        let rows = self.read_rows(&text, &sql.params).await?;
        rows.iter().map(|r| decode(r.get(0))).collect()
    }

    async fn complete_upload(&self, complete: CompleteUpload) -> Result<()> {
        self.txn(&complete, |tx, c| complete_upload_tx(tx, c).boxed()).await
    }

    async fn abort_upload(&self, bucket: &BucketName, key: &ObjectKey, upload_id: &UploadId) -> Result<()> {
        let pk = (bucket.clone(), key.clone(), upload_id.clone());
        self.txn(&pk, |tx, u| abort_upload_tx(tx, u).boxed()).await
    }
}
