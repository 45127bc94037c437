//! Object versions in PostgreSQL: the rows the version planners
//! (`coffre_core::versions`) ask for, read under row locks, their decisions
//! written, and listings from one snapshot.

use std::ops::Bound;

use async_trait::async_trait;
use coffre_core::error::{Error, Result};
use coffre_core::list::{self, prefix_successor};
use coffre_core::meta::{
    DeleteGuard, DeleteOutcome, ListedObject, ListedVersion, ObjectMeta, ObjectVersion, PutObject, VersionChange,
    VersionCursor, VersionMeta, WriteCondition,
};
use coffre_core::types::{BucketId, BucketName, ObjectKey, VersionId};
use coffre_core::versions::{self, CurrentRow, DeleteRequest, KeyRows, KeyWrites, Reads, StoredVersion, UpdateRequest};
use futures::FutureExt as _;

use super::blobs::{clear_pending, enqueue_blobs};
use super::store::{
    Params, Sql, bucket_shared, execute, limit_param, object_key, query, query_opt, rev_of, seq_param, stored,
};
use super::{PgMeta, Tx, TxError, TxResult};
use crate::codec::{decode, encode};

/// The key's current version, its row locked until commit.
pub(super) async fn current(tx: &Tx<'_>, b: &str, k: &[u8]) -> TxResult<Option<StoredVersion>> {
    let sql = "SELECT seq, meta, data FROM objects WHERE bucket = $1 AND key = $2 FOR UPDATE";
    query_opt(tx, sql, &[&b, &k]).await?.map(|row| stored(&row, 0)).transpose()
}

pub(super) async fn insert_noncurrent(tx: &Tx<'_>, b: &str, k: &[u8], old: &StoredVersion) -> TxResult<()> {
    let sql = "INSERT INTO object_versions (bucket, key, rev, seq, version_id, delete_marker, size, meta, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let meta = &old.version.meta;
    let size = i64::try_from(meta.size).map_err(|e| Error::Meta(e.to_string()))?;
    let params: &Params = &[
        &b,
        &k,
        &rev_of(old.seq)?,
        &seq_param(old.seq)?,
        &meta.version_id.as_str(),
        &meta.delete_marker,
        &size,
        &encode(meta)?,
        &encode(&old.version.data)?,
    ];
    execute(tx, sql, params).await.map(drop)
}

/// Writes the key's current row; `exists` says whether it had one (locked).
pub(super) async fn write_current(tx: &Tx<'_>, b: &str, k: &[u8], row: &StoredVersion, exists: bool) -> TxResult<()> {
    let meta = &row.version.meta;
    let size = i64::try_from(meta.size).map_err(|e| Error::Meta(e.to_string()))?;
    let (meta_bytes, data_bytes) = (encode(meta)?, encode(&row.version.data)?);
    let seq = seq_param(row.seq)?;
    let params: &Params =
        &[&b, &k, &seq, &meta.version_id.as_str(), &meta.delete_marker, &size, &meta_bytes, &data_bytes];
    if exists {
        let sql = "UPDATE objects SET seq = $3, version_id = $4, delete_marker = $5, size = $6, meta = $7, data = $8
                   WHERE bucket = $1 AND key = $2";
        return execute(tx, sql, params).await.map(drop);
    }
    let sql = "INSERT INTO objects (bucket, key, seq, version_id, delete_marker, size, meta, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (bucket, key) DO NOTHING";
    // Another writer created the key since we looked: run again, locking its row.
    match execute(tx, sql, params).await? {
        0 => Err(TxError::Retry),
        _ => Ok(()),
    }
}

/// A noncurrent version by id, its row locked.
pub(super) async fn noncurrent(tx: &Tx<'_>, b: &str, k: &[u8], id: &VersionId) -> TxResult<Option<StoredVersion>> {
    let sql = "SELECT seq, meta, data FROM object_versions
               WHERE bucket = $1 AND key = $2 AND version_id = $3 FOR UPDATE";
    query_opt(tx, sql, &[&b, &k, &id.as_str()]).await?.map(|row| stored(&row, 0)).transpose()
}

/// The key's newest noncurrent version, its row locked.
pub(super) async fn newest_noncurrent(tx: &Tx<'_>, b: &str, k: &[u8]) -> TxResult<Option<StoredVersion>> {
    let sql = "SELECT seq, meta, data FROM object_versions WHERE bucket = $1 AND key = $2
               ORDER BY rev LIMIT 1 FOR UPDATE";
    query_opt(tx, sql, &[&b, &k]).await?.map(|row| stored(&row, 0)).transpose()
}

/// The noncurrent rows a planner asked for, locked until commit.
pub(super) async fn key_rows(
    tx: &Tx<'_>,
    b: &str,
    k: &[u8],
    current: Option<StoredVersion>,
    reads: &Reads,
) -> TxResult<KeyRows> {
    let mut rows = KeyRows { current, ..KeyRows::default() };
    if let Some(id) = &reads.named {
        rows.named = noncurrent(tx, b, k, id).await?;
    }
    if reads.null {
        rows.null = noncurrent(tx, b, k, &VersionId::Null).await?;
    }
    if reads.newest {
        rows.newest = newest_noncurrent(tx, b, k).await?;
    }
    Ok(rows)
}

/// Applies what a planner decided for one key; `existed`: it had a current row.
pub(super) async fn write_key(tx: &Tx<'_>, b: &str, k: &[u8], existed: bool, writes: KeyWrites) -> TxResult<()> {
    if !writes.remove_noncurrent.is_empty() {
        let revs = writes.remove_noncurrent.iter().map(|&seq| rev_of(seq)).collect::<Result<Vec<i64>>>()?;
        let sql = "DELETE FROM object_versions WHERE bucket = $1 AND key = $2 AND rev = ANY($3)";
        execute(tx, sql, &[&b, &k, &revs]).await?;
    }
    if let Some(old) = &writes.demote {
        insert_noncurrent(tx, b, k, old).await?;
    }
    if let Some(row) = &writes.rewrite {
        let sql = "UPDATE object_versions SET meta = $4, data = $5 WHERE bucket = $1 AND key = $2 AND rev = $3";
        let (meta, data) = (encode(&row.version.meta)?, encode(&row.version.data)?);
        execute(tx, sql, &[&b, &k, &rev_of(row.seq)?, &meta, &data]).await?;
    }
    match &writes.current {
        CurrentRow::Unchanged => {}
        CurrentRow::Set(row) => write_current(tx, b, k, row, existed).await?,
        CurrentRow::Remove => {
            execute(tx, "DELETE FROM objects WHERE bucket = $1 AND key = $2", &[&b, &k]).await?;
        }
    }
    enqueue_blobs(tx, &writes.garbage).await
}

/// Plans a put of `version` as the key's current version; nothing is written
/// yet. Returns the plan and whether the key had a current row.
pub(super) async fn plan_put(
    tx: &Tx<'_>,
    bucket: &BucketName,
    began_in: BucketId,
    key: &ObjectKey,
    version: &ObjectVersion,
    cond: &WriteCondition,
) -> TxResult<(KeyWrites, bool)> {
    let record = bucket_shared(tx, bucket).await?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let cur = current(tx, b, k).await?;
    let existed = cur.is_some();
    let rows = key_rows(tx, b, k, cur, &Reads::for_put(&record, version)).await?;
    Ok((versions::plan_put(&record, began_in, &rows, version.clone(), cond)?, existed))
}

pub(super) async fn put_object_tx(tx: &Tx<'_>, put: &PutObject) -> TxResult<()> {
    let (writes, existed) = plan_put(tx, &put.bucket, put.bucket_id, &put.key, &put.version, &put.condition).await?;
    write_key(tx, put.bucket.as_str(), put.key.as_bytes(), existed, writes).await?;
    clear_pending(tx, &put.pending).await
}

pub(super) async fn delete_tx(tx: &Tx<'_>, input: &(BucketName, ObjectKey, DeleteRequest)) -> TxResult<DeleteOutcome> {
    let (bucket, key, req) = input;
    let record = bucket_shared(tx, bucket).await?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let cur = current(tx, b, k).await?;
    let existed = cur.is_some();
    let reads = Reads::for_delete(&record, cur.as_ref(), req.version.as_ref());
    let rows = key_rows(tx, b, k, cur, &reads).await?;
    let (writes, outcome) = versions::plan_delete(&record, &rows, req)?;
    write_key(tx, b, k, existed, writes).await?;
    Ok(outcome)
}

pub(super) async fn update_version_tx(
    tx: &Tx<'_>,
    input: &(BucketName, ObjectKey, UpdateRequest),
) -> TxResult<VersionId> {
    let (bucket, key, req) = input;
    let record = bucket_shared(tx, bucket).await?;
    let (b, k) = (bucket.as_str(), key.as_bytes());
    let cur = current(tx, b, k).await?;
    let existed = cur.is_some();
    let reads = Reads::for_update(cur.as_ref(), req.version.as_ref());
    let rows = key_rows(tx, b, k, cur, &reads).await?;
    let (writes, id) = versions::plan_update(&record, &rows, req)?;
    write_key(tx, b, k, existed, writes).await?;
    Ok(id)
}

pub(super) type ListInput = (BucketName, Vec<u8>, Bound<VersionCursor>, usize);

pub(super) async fn list_versions_tx(tx: &Tx<'_>, input: &ListInput) -> TxResult<Vec<ListedVersion>> {
    let (bucket, prefix, from, limit) = input;
    let b = bucket.as_str();
    let mut out = Vec::new();
    // The cursor's own key first when the listing resumes inside it.
    let lower: Bound<Vec<u8>> = match from {
        Bound::Unbounded => Bound::Included(prefix.clone()),
        Bound::Included(c) => Bound::Included(c.key.clone().max(prefix.clone())),
        Bound::Excluded(c) if c.key < *prefix => Bound::Included(prefix.clone()),
        Bound::Excluded(VersionCursor { key, after_version: Some(v) }) => {
            if key.starts_with(prefix) {
                versions_after(tx, b, key, v, *limit, &mut out).await?;
            }
            Bound::Excluded(key.clone())
        }
        Bound::Excluded(c) => Bound::Excluded(c.key.clone()),
    };
    if out.len() >= *limit {
        return Ok(out);
    }
    let n = limit_param(limit - out.len());
    let lower = lower.as_ref().map(Vec::as_slice);
    let end = prefix_successor(prefix);
    let mut sql = Sql::new();
    let text = format!(
        "SELECT key, meta FROM objects WHERE bucket = {} AND {} ORDER BY key LIMIT {}",
        sql.arg(&b),
        sql.key_range(&lower, &end),
        sql.arg(&n)
    );
    let heads = query(tx, &text, &sql.params).await?;
    let (Some(lo), Some(hi)) = (heads.first(), heads.last()) else { return Ok(out) };
    // Noncurrent versions of the same keys, in one range read.
    let (lo, hi): (&[u8], &[u8]) = (lo.get(0), hi.get(0));
    let sql = "SELECT key, meta FROM object_versions WHERE bucket = $1 AND key >= $2 AND key <= $3
               ORDER BY key, rev LIMIT $4";
    let olds = query(tx, sql, &[&b, &lo, &hi, &n]).await?;
    let mut olds = olds.iter().peekable();
    for head in &heads {
        let k: &[u8] = head.get(0);
        let key = object_key(k)?;
        let mut entries = vec![(decode::<VersionMeta>(head.get(1))?, true)];
        while let Some(old) = olds.next_if(|old| old.get::<_, &[u8]>(0) <= k) {
            if old.get::<_, &[u8]>(0) == k {
                entries.push((decode(old.get(1))?, false));
            }
        }
        for (meta, is_latest) in entries {
            if out.len() == *limit {
                return Ok(out);
            }
            out.push(ListedVersion { key: key.clone(), meta, is_latest });
        }
    }
    Ok(out)
}

/// The versions of `key` after version `after`, newest first, at most
/// `limit` (none at all if `after` is not among them, as the embedded engine
/// does). Only the rows returned leave the database.
pub(super) async fn versions_after(
    tx: &Tx<'_>,
    b: &str,
    k: &[u8],
    after: &VersionId,
    limit: usize,
    out: &mut Vec<ListedVersion>,
) -> TxResult<()> {
    // The current row counts as rev 0: every noncurrent row comes after it.
    let sql = "WITH after AS (
                   SELECT 0::INT8 AS rev FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3
                   UNION ALL
                   SELECT rev FROM object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3)
               SELECT meta FROM object_versions
               WHERE bucket = $1 AND key = $2 AND rev > (SELECT min(rev) FROM after)
               ORDER BY rev LIMIT $4";
    let n = limit_param(limit.saturating_sub(out.len()));
    let rows = query(tx, sql, &[&b, &k, &after.as_str(), &n]).await?;
    let key = object_key(k)?;
    for row in &rows {
        out.push(ListedVersion { key: key.clone(), meta: decode(row.get(0))?, is_latest: false });
    }
    Ok(())
}

#[async_trait]
impl ObjectMeta for PgMeta {
    async fn object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
    ) -> Result<Option<ObjectVersion>> {
        let (b, k) = (bucket.as_str(), key.as_bytes());
        let row = match version {
            None => {
                self.read_row("SELECT seq, meta, data FROM objects WHERE bucket = $1 AND key = $2", &[&b, &k]).await?
            }
            // One statement, one snapshot: a version promoted or demoted
            // meanwhile is found on one side or the other.
            Some(id) => {
                let sql = "SELECT seq, meta, data FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3
                           UNION ALL
                           SELECT seq, meta, data FROM object_versions
                           WHERE bucket = $1 AND key = $2 AND version_id = $3";
                self.read_row(sql, &[&b, &k, &id.as_str()]).await?
            }
        };
        row.map(|r| stored(&r, 0).map(|s| s.version).map_err(super::tx_err)).transpose()
    }

    async fn put_object(&self, put: PutObject) -> Result<()> {
        self.txn(&put, |tx, p| put_object_tx(tx, p).boxed()).await
    }

    async fn delete_object(
        &self,
        bucket: &BucketName,
        began_in: BucketId,
        key: &ObjectKey,
        version: Option<&VersionId>,
        guard: &DeleteGuard,
    ) -> Result<DeleteOutcome> {
        let req = DeleteRequest::now(began_in, version, guard);
        let input = (bucket.clone(), key.clone(), req);
        self.txn(&input, |tx, i| delete_tx(tx, i).boxed()).await
    }

    async fn update_version(
        &self,
        bucket: &BucketName,
        began_in: BucketId,
        key: &ObjectKey,
        version: Option<&VersionId>,
        change: VersionChange,
        bypass_governance: bool,
    ) -> Result<VersionId> {
        let req = UpdateRequest::now(began_in, version, change, bypass_governance);
        let input = (bucket.clone(), key.clone(), req);
        self.txn(&input, |tx, i| update_version_tx(tx, i).boxed()).await
    }

    async fn list_objects(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        start: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ListedObject>> {
        let lower = list::prefix_start(prefix, start);
        let end = prefix_successor(prefix);
        let (b, n) = (bucket.as_str(), limit_param(limit));
        let mut sql = Sql::new();
        let text = format!(
            "SELECT key, meta FROM objects WHERE bucket = {} AND {} AND NOT delete_marker ORDER BY key LIMIT {}",
            sql.arg(&b),
            sql.key_range(&lower, &end),
            sql.arg(&n)
        );
        let rows = self.read_rows(&text, &sql.params).await?;
        rows.iter().map(|r| Ok(ListedObject { key: object_key(r.get(0))?, meta: decode(r.get(1))? })).collect()
    }

    async fn list_versions(
        &self,
        bucket: &BucketName,
        prefix: &[u8],
        from: Bound<VersionCursor>,
        limit: usize,
    ) -> Result<Vec<ListedVersion>> {
        let input = (bucket.clone(), prefix.to_vec(), from, limit);
        self.snapshot(&input, |tx, i| list_versions_tx(tx, i).boxed()).await
    }
}
