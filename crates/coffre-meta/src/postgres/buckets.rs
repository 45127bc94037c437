//! Buckets in PostgreSQL: their records, usage, and removal.

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::lock::ComplianceLocks;
use coffre_core::meta::{
    BucketChange, BucketMeta, BucketRecord, BucketRemoval, BucketUsage, EraseReport, KekDestroy, PartRecord,
    VersionMeta,
};
use coffre_core::types::{BucketName, UnixNanos};
use futures::FutureExt as _;

use super::blobs::enqueue_blobs;
use super::store::{bucket_row, data_blobs, execute, query, query_opt};
use super::{PgMeta, Tx, TxError, TxResult};
use crate::codec::{decode, encode};

pub(super) async fn create_bucket_tx(tx: &Tx<'_>, bucket: &BucketRecord) -> TxResult<()> {
    let name = bucket.name.as_str();
    if let Some(row) = query_opt(tx, "SELECT record FROM buckets WHERE name = $1 FOR UPDATE", &[&name]).await? {
        let existing: BucketRecord = decode(row.get(0))?;
        let taken =
            if existing.owner == bucket.owner { Error::BucketAlreadyOwnedByYou } else { Error::BucketAlreadyExists };
        return Err(taken.into());
    }
    let sql = "INSERT INTO buckets (name, record) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    match execute(tx, sql, &[&name, &encode(bucket)?]).await? {
        0 => Err(TxError::Retry),
        _ => Ok(()),
    }
}

/// With the bucket row locked first, every writer that could add to the
/// bucket (a put, a new upload, a part: each takes the row `FOR SHARE`) has
/// committed and is seen by the statements after it (READ COMMITTED), or
/// waits and then finds the bucket or its upload gone.
pub(super) async fn delete_bucket_tx(tx: &Tx<'_>, input: &(BucketName, BucketRemoval)) -> TxResult<()> {
    let (name, aborting) = input;
    bucket_row(tx, name, "SELECT record FROM buckets WHERE name = $1 FOR UPDATE").await?;
    let b = name.as_str();
    let sql = "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = $1)
                   OR EXISTS (SELECT 1 FROM object_versions WHERE bucket = $1)";
    let has_versions: bool = query_opt(tx, sql, &[&b]).await?.is_some_and(|row| row.get(0));
    let sql = "SELECT upload_id FROM multipart_uploads WHERE bucket = $1 FOR UPDATE";
    let mut found = Vec::new();
    for row in query(tx, sql, &[&b]).await? {
        let id: Vec<u8> = row.get(0);
        found.push(id);
    }
    aborting.check(has_versions, found.iter().map(|id| std::str::from_utf8(id).unwrap_or("")))?;
    execute(tx, "DELETE FROM multipart_uploads WHERE bucket = $1", &[&b]).await?;
    let sql = "DELETE FROM multipart_parts WHERE upload_id = ANY($1) RETURNING record";
    let mut garbage = Vec::new();
    for row in query(tx, sql, &[&found]).await? {
        garbage.push(decode::<PartRecord>(row.get(0))?.blob);
    }
    enqueue_blobs(tx, &garbage).await?;
    execute(tx, "DELETE FROM buckets WHERE name = $1", &[&b]).await.map(drop)
}

pub(super) async fn update_bucket_tx(tx: &Tx<'_>, input: &(BucketName, BucketChange)) -> TxResult<()> {
    let (name, change) = input;
    let mut record = bucket_row(tx, name, "SELECT record FROM buckets WHERE name = $1 FOR UPDATE").await?;
    record.apply(change.clone())?;
    execute(tx, "UPDATE buckets SET record = $2 WHERE name = $1", &[&name.as_str(), &encode(&record)?]).await.map(drop)
}

/// Refuses the erasure of a bucket holding versions under an unexpired
/// COMPLIANCE retention; with the bucket row locked, no version is added meanwhile.
async fn check_no_compliance_lock(tx: &Tx<'_>, bucket: &str) -> TxResult<()> {
    let now = UnixNanos::now();
    let mut locks = ComplianceLocks::default();
    let sql = "SELECT meta FROM objects WHERE bucket = $1 UNION ALL SELECT meta FROM object_versions WHERE bucket = $1";
    for row in query(tx, sql, &[&bucket]).await? {
        locks.note(&decode::<VersionMeta>(row.get(0))?.lock, now);
    }
    Ok(locks.check_erase()?)
}

pub(super) async fn erase_bucket_tx(tx: &Tx<'_>, input: &(BucketName, Vec<KekDestroy>)) -> TxResult<EraseReport> {
    let (name, destroys) = input;
    bucket_row(tx, name, "SELECT record FROM buckets WHERE name = $1 FOR UPDATE").await?;
    let b = name.as_str();
    check_no_compliance_lock(tx, b).await?;
    execute(tx, "DELETE FROM buckets WHERE name = $1", &[&b]).await?;
    let mut report = EraseReport::default();
    let mut garbage = Vec::new();
    for sql in [
        "DELETE FROM objects WHERE bucket = $1 RETURNING data",
        "DELETE FROM object_versions WHERE bucket = $1 RETURNING data",
    ] {
        for row in query(tx, sql, &[&b]).await? {
            garbage.extend(data_blobs(row.get(0))?);
            report.versions += 1;
        }
    }
    let uploads: Vec<Vec<u8>> = query(tx, "DELETE FROM multipart_uploads WHERE bucket = $1 RETURNING upload_id", &[&b])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    report.uploads = uploads.len() as u64;
    let sql = "DELETE FROM multipart_parts WHERE upload_id = ANY($1) RETURNING record";
    for row in query(tx, sql, &[&uploads]).await? {
        garbage.push(decode::<PartRecord>(row.get(0))?.blob);
    }
    report.blobs = garbage.len() as u64;
    enqueue_blobs(tx, &garbage).await?;
    super::keks::queue_tx(tx, destroys).await?;
    Ok(report)
}

#[async_trait]
impl BucketMeta for PgMeta {
    async fn create_bucket(&self, bucket: BucketRecord) -> Result<()> {
        self.txn(&bucket, |tx, b| create_bucket_tx(tx, b).boxed()).await
    }

    async fn bucket(&self, name: &BucketName) -> Result<Option<BucketRecord>> {
        let row = self.read_row("SELECT record FROM buckets WHERE name = $1", &[&name.as_str()]).await?;
        row.map(|r| decode(r.get(0))).transpose()
    }

    async fn buckets(&self) -> Result<Vec<BucketRecord>> {
        let rows = self.read_rows("SELECT record FROM buckets", &[]).await?;
        let mut out: Vec<BucketRecord> = rows.iter().map(|r| decode(r.get(0))).collect::<Result<_>>()?;
        // Byte order, as the embedded engine lists them; never the database's collation.
        out.sort_by(|a, b| a.name.as_str().as_bytes().cmp(b.name.as_str().as_bytes()));
        Ok(out)
    }

    async fn delete_bucket(&self, name: &BucketName, aborting: &BucketRemoval) -> Result<()> {
        self.txn(&(name.clone(), aborting.clone()), |tx, i| delete_bucket_tx(tx, i).boxed()).await
    }

    async fn bucket_usage(&self, name: &BucketName) -> Result<BucketUsage> {
        let sql = "SELECT (SELECT count(*) FROM objects WHERE bucket = $1 AND NOT delete_marker),
                          (SELECT COALESCE(sum(size), 0)::INT8 FROM objects WHERE bucket = $1 AND NOT delete_marker),
                          (SELECT count(*) FROM multipart_uploads WHERE bucket = $1)";
        let row = self.read_row(sql, &[&name.as_str()]).await?.ok_or_else(|| Error::Meta("no usage row".into()))?;
        let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(BucketUsage { objects: count(0), bytes: count(1), uploads: count(2) })
    }

    async fn update_bucket(&self, name: &BucketName, change: BucketChange) -> Result<()> {
        self.txn(&(name.clone(), change), |tx, i| update_bucket_tx(tx, i).boxed()).await
    }

    async fn erase_bucket(&self, name: &BucketName, destroys: Vec<KekDestroy>) -> Result<EraseReport> {
        self.txn(&(name.clone(), destroys), |tx, i| erase_bucket_tx(tx, i).boxed()).await
    }
}
