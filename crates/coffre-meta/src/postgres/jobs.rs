//! The job queue of every gateway, in the shared database: a job is a row of
//! `jobs`, claimed with `FOR UPDATE SKIP LOCKED` for a visibility timeout.

use std::time::Duration;

use async_trait::async_trait;
use coffre_core::error::Result;
use coffre_core::jobs::{JobClaim, JobQueue};
use deadpool_postgres::Pool;

use super::{PgMeta, db_err, get};

/// [`JobQueue`] over the `jobs` table; claims name this gateway.
#[derive(Clone)]
pub struct PgJobs {
    pool: Pool,
    gateway: [u8; 16],
}

impl PgMeta {
    /// The job queue every gateway on this database shares.
    pub fn jobs(&self) -> PgJobs {
        PgJobs { pool: self.pool.clone(), gateway: self.gateway }
    }
}

#[async_trait]
impl JobQueue for PgJobs {
    async fn enqueue(&self, kind: &str, keys: &[Vec<u8>]) -> Result<()> {
        let client = get(&self.pool).await?;
        // A claimed job keeps its claim: the new generation makes `finish`
        // put it back as due instead of removing it.
        let stmt = client
            .prepare_cached(
                "INSERT INTO jobs (kind, key) SELECT $1, k FROM unnest($2::BYTEA[]) AS k
                 ON CONFLICT (kind, key) DO UPDATE
                    SET generation = jobs.generation + 1,
                        run_after = CASE WHEN jobs.claimed_by IS NULL THEN now() ELSE jobs.run_after END",
            )
            .await
            .map_err(db_err)?;
        client.execute(&stmt, &[&kind, &keys]).await.map_err(db_err).map(drop)
    }

    /// Two statements in one transaction, not one `UPDATE … WHERE key IN
    /// (SELECT … LIMIT 1 FOR UPDATE SKIP LOCKED)`: PostgreSQL plans that
    /// subquery as the inner side of a nested loop, runs it again for every
    /// row, and one claim takes every job (seen here, and caught by the tests).
    async fn claim(&self, kind: &str, hold: Duration) -> Result<Option<JobClaim>> {
        let mut client = get(&self.pool).await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let pick = tx
            .prepare_cached(
                "SELECT key, generation FROM jobs WHERE kind = $1 AND run_after <= now()
                  ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .await
            .map_err(db_err)?;
        let Some(row) = tx.query_opt(&pick, &[&kind]).await.map_err(db_err)? else { return Ok(None) };
        let claim = JobClaim { key: row.get(0), generation: row.get(1) };
        let hide = tx
            .prepare_cached(
                "UPDATE jobs SET run_after = now() + $3::FLOAT8 * INTERVAL '1 second',
                                 claimed_by = $4, attempts = attempts + 1
                  WHERE kind = $1 AND key = $2",
            )
            .await
            .map_err(db_err)?;
        tx.execute(&hide, &[&kind, &claim.key, &hold.as_secs_f64(), &self.gateway.as_slice()]).await.map_err(db_err)?;
        // A commit without an answer: the claim may stand; it lapses after `hold`.
        tx.commit().await.map_err(db_err)?;
        Ok(Some(claim))
    }

    async fn finish(&self, kind: &str, claim: &JobClaim) -> Result<()> {
        let client = get(&self.pool).await?;
        let done = client
            .prepare_cached("DELETE FROM jobs WHERE kind = $1 AND key = $2 AND generation = $3")
            .await
            .map_err(db_err)?;
        if client.execute(&done, &[&kind, &claim.key, &claim.generation]).await.map_err(db_err)? == 1 {
            return Ok(());
        }
        // Queued again while we held it: due again now, for whoever comes.
        let again = client
            .prepare_cached(
                "UPDATE jobs SET run_after = now(), claimed_by = NULL, attempts = 0, last_error = NULL
                  WHERE kind = $1 AND key = $2",
            )
            .await
            .map_err(db_err)?;
        client.execute(&again, &[&kind, &claim.key]).await.map_err(db_err).map(drop)
    }

    async fn retry(&self, kind: &str, claim: &JobClaim, delay: Duration, error: &str) -> Result<()> {
        let client = get(&self.pool).await?;
        let stmt = client
            .prepare_cached(
                "UPDATE jobs SET run_after = now() + $3::FLOAT8 * INTERVAL '1 second',
                                 claimed_by = NULL, last_error = $4
                  WHERE kind = $1 AND key = $2",
            )
            .await
            .map_err(db_err)?;
        client.execute(&stmt, &[&kind, &claim.key, &delay.as_secs_f64(), &error]).await.map_err(db_err).map(drop)
    }

    async fn queued(&self, kind: &str) -> Result<u64> {
        let client = get(&self.pool).await?;
        let stmt = client.prepare_cached("SELECT count(*) FROM jobs WHERE kind = $1").await.map_err(db_err)?;
        let count: i64 = client.query_one(&stmt, &[&kind]).await.map_err(db_err)?.get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
