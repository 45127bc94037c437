//! Many gateways on one database: membership kept by heartbeats on the
//! database's clock, and leases with fencing epochs for one-writer tasks.
//!
//! A gateway that misses heartbeats for [`DEAD_AFTER`] is presumed dead: its
//! row goes, and the blobs it was writing (`pending_blobs`) are queued for
//! collection. Should it come back and try to commit one of them, the commit
//! finds its pending row gone and fails (see `blobs::clear_pending`), so a
//! collected blob is never referenced.

use std::time::Duration;

use coffre_core::error::{Error, Result};
use deadpool_postgres::Pool;

use super::blobs::enqueue_gc;
use super::{PgMeta, Tx, TxResult, db_err, get};

const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// Fifteen missed heartbeats: far longer than a pause of a live process.
pub(crate) const DEAD_AFTER: Duration = Duration::from_secs(30);

/// Stops the heartbeat task when the engine is dropped.
pub(crate) struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Adds this gateway to the membership table (again, after a restart with
/// the same identity) and starts its heartbeat.
pub(crate) async fn join(pool: &Pool, gateway: [u8; 16], name: &str) -> Result<Heartbeat> {
    let client = get(pool).await?;
    client
        .execute(
            "INSERT INTO gateways (gateway, name) VALUES ($1, $2)
             ON CONFLICT (gateway) DO UPDATE SET name = excluded.name, started_at = now(), heartbeat_at = now()",
            &[&gateway.as_slice(), &name],
        )
        .await
        .map_err(db_err)?;
    let (pool, name) = (pool.clone(), name.to_owned());
    Ok(Heartbeat(tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = beat(&pool, gateway, &name).await {
                tracing::warn!(error = %e, "gateway heartbeat failed");
            }
        }
    })))
}

async fn beat(pool: &Pool, gateway: [u8; 16], name: &str) -> Result<()> {
    let client = get(pool).await?;
    let id = gateway.as_slice();
    let updated =
        client.execute("UPDATE gateways SET heartbeat_at = now() WHERE gateway = $1", &[&id]).await.map_err(db_err)?;
    if updated == 0 {
        // Presumed dead by the others (a long pause, a partition): our
        // in-flight writes were let go and will fail at commit. Join again.
        tracing::warn!("this gateway was presumed dead by the cluster; rejoining");
        client.execute("INSERT INTO gateways (gateway, name) VALUES ($1, $2)", &[&id, &name]).await.map_err(db_err)?;
    }
    Ok(())
}

/// Removes gateways that stopped heartbeating and queues the blobs they were
/// writing; returns how many blobs. Any gateway may run it at any time. With
/// `restarted`, the blobs that gateway was writing go too: it has just
/// started, so none of its writes can still be in flight.
pub(crate) async fn sweep_dead(tx: &Tx<'_>, restarted: &Option<[u8; 16]>) -> TxResult<usize> {
    let dead_after = DEAD_AFTER.as_secs_f64();
    let stmt =
        tx.prepare_cached("DELETE FROM gateways WHERE heartbeat_at < now() - $1::FLOAT8 * INTERVAL '1 second'").await?;
    tx.execute(&stmt, &[&dead_after]).await?;
    let stmt = tx
        .prepare_cached(
            "DELETE FROM pending_blobs p
             WHERE p.gateway = $1 OR NOT EXISTS (SELECT 1 FROM gateways g WHERE g.gateway = p.gateway)
             RETURNING blob",
        )
        .await?;
    // No gateway has the empty id: without `restarted` only the dead count.
    let own: &[u8] = restarted.as_ref().map_or(&[], |id| id.as_slice());
    let orphans: Vec<Vec<u8>> = tx.query(&stmt, &[&own]).await?.iter().map(|r| r.get(0)).collect();
    enqueue_gc(tx, &orphans).await?;
    Ok(orphans.len())
}

/// A lease held on a one-writer task. `epoch` grows each time the lease
/// changes hands: whatever the holder writes under it can carry the epoch,
/// and a write bearing an older one is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub epoch: i64,
}

impl PgMeta {
    /// Takes or renews the lease `name` for `ttl`; `None` while another live
    /// gateway holds it. Expiry is judged on the database's clock.
    pub async fn acquire_lease(&self, name: &str, ttl: Duration) -> Result<Option<Lease>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO leases (name, holder, epoch, expires_at)
                 VALUES ($1, $2, 1, now() + $3::FLOAT8 * INTERVAL '1 second')
                 ON CONFLICT (name) DO UPDATE
                    SET epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END,
                        holder = excluded.holder,
                        expires_at = excluded.expires_at
                  WHERE leases.holder = excluded.holder OR leases.expires_at < now()
                 RETURNING epoch",
                &[&name, &self.gateway.as_slice(), &ttl.as_secs_f64()],
            )
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| Lease { name: name.to_owned(), epoch: r.get(0) }))
    }

    /// True while `lease` is still ours and unexpired: the fencing check a
    /// holder makes before an act that must not happen twice.
    pub async fn holds(&self, lease: &Lease) -> Result<bool> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()",
                &[&lease.name, &self.gateway.as_slice(), &lease.epoch],
            )
            .await
            .map_err(db_err)?;
        Ok(row.is_some())
    }

    /// Lets the lease go at once, if it is still ours.
    pub async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE leases SET expires_at = now() WHERE name = $1 AND holder = $2 AND epoch = $3",
                &[&lease.name, &self.gateway.as_slice(), &lease.epoch],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Leaves at a clean stop: the heartbeat ends, the membership row and
    /// this gateway's leases go, so the others need not wait [`DEAD_AFTER`]
    /// to take its place. Whatever it was still writing is collected.
    pub async fn leave(&self) -> Result<()> {
        self.heartbeat.0.abort();
        let client = self.client().await?;
        let id = self.gateway.as_slice();
        client.execute("DELETE FROM leases WHERE holder = $1", &[&id]).await.map_err(db_err)?;
        client.execute("DELETE FROM gateways WHERE gateway = $1", &[&id]).await.map_err(db_err)?;
        Ok(())
    }

    /// Gateways that heartbeat now: name and seconds since their last beat.
    pub async fn members(&self) -> Result<Vec<(String, f64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, EXTRACT(EPOCH FROM now() - heartbeat_at)::FLOAT8 FROM gateways ORDER BY started_at",
                &[],
            )
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

pub(crate) fn not_ours() -> Error {
    Error::MetaUnavailable(
        "this write outlived its gateway's membership; its blobs were let go, retry the request".into(),
    )
}
