//! What every role of the PostgreSQL engine shares: statements run in a
//! transaction, row decoding, the bucket row lock, and numbered placeholders.
//!
//! Each role trait of [`coffre_core::meta::MetaStore`] is implemented in its
//! own file beside this one; each method is one transaction (or one statement
//! for reads). The version rules are the core's planners (`coffre_core::versions`).

use std::ops::Bound;

use coffre_core::error::{Error, Result};
use coffre_core::meta::{BucketRecord, DataLocation, ObjectVersion, VersionMeta};
use coffre_core::types::{BlobId, BucketName, ObjectKey};
use coffre_core::versions::StoredVersion;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgMeta, Tx, TxResult, db_err};
use crate::codec::decode;

pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Rows read per step when a scan has no natural limit.
pub(super) const SCAN_BATCH: i64 = 256;

pub(super) async fn query(tx: &Tx<'_>, sql: &str, params: &Params<'_>) -> TxResult<Vec<Row>> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.query(&stmt, params).await?)
}

pub(super) async fn query_opt(tx: &Tx<'_>, sql: &str, params: &Params<'_>) -> TxResult<Option<Row>> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.query_opt(&stmt, params).await?)
}

pub(super) async fn execute(tx: &Tx<'_>, sql: &str, params: &Params<'_>) -> TxResult<u64> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&stmt, params).await?)
}

pub(super) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn object_key(bytes: &[u8]) -> Result<ObjectKey> {
    ObjectKey::parse(std::str::from_utf8(bytes).map_err(|e| Error::Meta(format!("a stored key: {e}")))?)
}

/// A version from the columns `seq, meta, data`, starting at `at`.
pub(super) fn stored(row: &Row, at: usize) -> TxResult<StoredVersion> {
    let meta: VersionMeta = decode(row.get(at + 1))?;
    let data: DataLocation = decode(row.get(at + 2))?;
    Ok(StoredVersion { seq: seq_of(row.get(at))?, version: ObjectVersion { meta, data } })
}

pub(super) fn seq_of(column: i64) -> Result<u64> {
    u64::try_from(column).map_err(|e| Error::Meta(format!("a stored seq: {e}")))
}

pub(super) fn seq_param(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|e| Error::Meta(format!("a seq: {e}")))
}

/// A noncurrent row's position in its key's versions: newest first.
pub(super) fn rev_of(seq: u64) -> Result<i64> {
    Ok(i64::MAX - seq_param(seq)?)
}

pub(super) fn data_blobs(bytes: &[u8]) -> TxResult<Vec<BlobId>> {
    Ok(decode::<DataLocation>(bytes)?.blobs())
}

// ----- pieces every write transaction shares -----

pub(super) async fn bucket_row(tx: &Tx<'_>, name: &BucketName, sql: &str) -> TxResult<BucketRecord> {
    let row = query_opt(tx, sql, &[&name.as_str()]).await?.ok_or(Error::NoSuchBucket)?;
    Ok(decode(row.get(0))?)
}

/// The bucket, locked against configuration changes until commit.
pub(super) async fn bucket_shared(tx: &Tx<'_>, name: &BucketName) -> TxResult<BucketRecord> {
    bucket_row(tx, name, "SELECT record FROM buckets WHERE name = $1 FOR SHARE").await
}

// ----- listings (one snapshot each) -----

/// A statement whose placeholders are numbered as its parameters are added.
pub(super) struct Sql<'a> {
    pub(super) params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Sql<'a> {
    pub(super) fn new() -> Self {
        Self { params: Vec::new() }
    }

    /// The placeholder of a new parameter.
    pub(super) fn arg(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// `key >= LOWER` (or `>`), and `key < END` when the prefix has an end.
    pub(super) fn key_range(&mut self, lower: &'a Bound<&'a [u8]>, end: &'a Option<Vec<u8>>) -> String {
        let mut text = match lower {
            Bound::Included(k) => format!("key >= {}", self.arg(k)),
            Bound::Excluded(k) => format!("key > {}", self.arg(k)),
            Bound::Unbounded => "TRUE".to_owned(),
        };
        if let Some(end) = end {
            text += &format!(" AND key < {}", self.arg(end));
        }
        text
    }
}

impl PgMeta {
    pub(crate) async fn read_rows(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.query(&stmt, params).await.map_err(db_err)
    }

    pub(crate) async fn read_row(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        Ok(self.read_rows(sql, params).await?.into_iter().next())
    }
}
