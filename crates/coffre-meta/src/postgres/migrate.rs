//! Versioned schema migrations: numbered SQL files compiled into the binary,
//! applied in order at start-up (or by `coffre meta migrate`), each recorded
//! with a checksum so that an edited migration is refused, never reapplied.
//!
//! Several gateways may start at once. Each migration runs in one transaction
//! that first inserts its row in `coffre_schema`: a second migrator blocks on
//! that primary key until the first commits, then fails on it and moves on.
//! No advisory lock is needed (CockroachDB and YugabyteDB lack them).

use coffre_core::error::{Error, Result};
use sha2::{Digest as _, Sha256};
use tokio_postgres::error::SqlState;

use super::{Client, db_err};

/// Every migration, oldest first. Never edit one that has shipped: add the next.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("sql/0001_initial.sql") },
    Migration { version: 2, name: "audit", sql: include_str!("sql/0002_audit.sql") },
    Migration { version: 3, name: "jobs", sql: include_str!("sql/0003_jobs.sql") },
    Migration { version: 4, name: "kek_destroys", sql: include_str!("sql/0004_kek_destroys.sql") },
];

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

impl Migration {
    fn checksum(&self) -> Vec<u8> {
        Sha256::digest(self.sql.as_bytes()).to_vec()
    }
}

/// The newest schema this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the database to the latest schema; returns the versions this call
/// applied (empty when another process did, or nothing was due).
pub(crate) async fn migrate(client: &mut Client) -> Result<Vec<i32>> {
    create_ledger(client).await?;
    let applied = applied(client).await?;
    if let Some((version, _)) = applied.iter().find(|(v, _)| *v > latest_version()) {
        return Err(Error::Meta(format!(
            "the database's schema is at version {version}, newer than this coffre knows ({}): upgrade coffre",
            latest_version()
        )));
    }
    let mut done = Vec::new();
    for migration in MIGRATIONS {
        match applied.iter().find(|(v, _)| *v == migration.version) {
            Some((_, checksum)) => verify(migration, checksum)?,
            None => {
                if apply(client, migration).await? {
                    done.push(migration.version);
                }
            }
        }
    }
    Ok(done)
}

async fn create_ledger(client: &Client) -> Result<()> {
    const LEDGER: &str = "CREATE TABLE IF NOT EXISTS coffre_schema (
        version    INT4        PRIMARY KEY,
        name       TEXT        NOT NULL,
        checksum   BYTEA       NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";
    // Two first starts racing on CREATE TABLE IF NOT EXISTS: the loser fails
    // on the catalogue's unique index; by then the table exists.
    match client.batch_execute(LEDGER).await {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => client.batch_execute(LEDGER).await,
        other => other,
    }
    .map_err(db_err)
}

async fn applied(client: &Client) -> Result<Vec<(i32, Vec<u8>)>> {
    let rows = client.query("SELECT version, checksum FROM coffre_schema", &[]).await.map_err(db_err)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn verify(migration: &Migration, checksum: &[u8]) -> Result<()> {
    if checksum == migration.checksum().as_slice() {
        return Ok(());
    }
    Err(Error::Meta(format!(
        "schema migration {} ({}) differs from the one applied to this database: refusing to start",
        migration.version, migration.name
    )))
}

/// Applies one migration in its own transaction; false if another process
/// applied it first (its checksum is then checked).
async fn apply(client: &mut Client, migration: &Migration) -> Result<bool> {
    let tx = client.transaction().await.map_err(db_err)?;
    let claimed = tx
        .execute(
            "INSERT INTO coffre_schema (version, name, checksum) VALUES ($1, $2, $3)",
            &[&migration.version, &migration.name, &migration.checksum()],
        )
        .await;
    match claimed {
        Ok(_) => {}
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            drop(tx);
            let applied = applied(client).await?;
            let (_, checksum) = applied
                .iter()
                .find(|(v, _)| *v == migration.version)
                .ok_or_else(|| Error::Meta(format!("schema migration {} vanished", migration.version)))?;
            return verify(migration, checksum).map(|()| false);
        }
        Err(e) => return Err(db_err(e)),
    }
    tx.batch_execute(migration.sql).await.map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    tracing::info!(version = migration.version, name = migration.name, "applied a schema migration");
    Ok(true)
}
