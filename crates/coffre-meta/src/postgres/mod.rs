//! The PostgreSQL metadata engine: the same [`MetaStore`] as the embedded
//! one, shared by any number of stateless gateways through one database.
//!
//! Every S3 operation is one short READ COMMITTED transaction that takes row
//! locks in one order (bucket row shared, then the key's `objects` row, then
//! its versions, uploads, queues), so writers of one key queue on its row and
//! different keys never wait on each other. A transaction that meets a
//! serialization failure or a deadlock (SQLSTATE 40001, 40P01) runs again; one
//! whose COMMIT got no answer is never rerun blindly: its outcome is unknown,
//! and the caller gets a 503 to retry at the S3 level, where PUTs and DELETEs
//! are idempotent. A database that cannot be reached is a 503 too.
//!
//! Besides S3 metadata the database holds what many gateways must share:
//! membership with heartbeats (`cluster`), leases with fencing epochs, the
//! collection queue and the job queue (`jobs`: repair) claimed with
//! `FOR UPDATE SKIP LOCKED`, and the placement of every blob on the storage
//! targets (`placement`).

mod access_keys;
mod audit;
mod blobs;
mod buckets;
mod cluster;
mod jobs;
mod keks;
mod migrate;
mod objects;
mod placement;
mod rekey;
mod settings;
mod store;
mod uploads;

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use coffre_core::error::{Error, Result, error_chain};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use rustls::ClientConfig;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use audit::PgAudit;
pub use cluster::Lease;
pub use jobs::PgJobs;
pub use migrate::latest_version;
pub use placement::PgPlacement;

pub(crate) type Client = deadpool_postgres::Client;
pub(crate) type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// How a transaction body fails: the database, a rule of S3, or a row that
/// another transaction inserted meanwhile (run the body again).
pub(crate) enum TxError {
    Db(tokio_postgres::Error),
    App(Error),
    Retry,
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        Self::App(e)
    }
}

pub(crate) type TxResult<T> = std::result::Result<T, TxError>;

/// A transaction body: a plain function of the transaction and its input,
/// so it can run again on a fresh transaction.
pub(crate) type Body<C, T> = for<'a> fn(&'a Tx<'a>, &'a C) -> BoxFuture<'a, TxResult<T>>;

/// Attempts of one transaction before the caller is told the database is busy.
const MAX_ATTEMPTS: u32 = 12;

/// How the engine reaches the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Anything `tokio_postgres::Config` parses: `postgresql://user@host:port/db`
    /// or `host=/run/postgresql user=coffre dbname=coffre`.
    pub url: String,
    /// Connections this gateway keeps at most.
    pub pool_size: usize,
    /// This gateway's name in the membership table.
    pub gateway_name: String,
    /// This gateway's identity, kept across its restarts (the binary keeps it
    /// in the data directory): a restarted gateway lets go of its own
    /// unfinished writes at once instead of waiting to be presumed dead.
    /// `None`: a new identity for this process.
    pub gateway_id: Option<[u8; 16]>,
    /// TLS to the database, whose certificate this configuration verifies
    /// (roots and host name). `Some` makes TLS required whatever the URL's
    /// `sslmode` says, bar `disable`, which contradicts it and is refused.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), pool_size: 16, gateway_name: "gateway".into(), gateway_id: None, tls: None }
    }
}

/// How a connection string reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// At least one host is a network address, not a unix socket.
    pub over_network: bool,
    /// `sslmode=require` (TLS or nothing).
    pub tls_required: bool,
}

/// Reads what `url` asks of the transport, without connecting.
pub fn transport(url: &str) -> Result<Transport> {
    let config = parse_url(url)?;
    let over_network = config.get_hosts().iter().any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)));
    Ok(Transport { over_network, tls_required: config.get_ssl_mode() == SslMode::Require })
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config> {
    // The parser's message names the bad part; the URL may hold a password, so never echo it.
    tokio_postgres::Config::from_str(url).map_err(|e| Error::InvalidArgument(format!("metadata.url: {e}")))
}

pub struct PgMeta {
    pool: Pool,
    /// This process's random identity in `gateways`, `pending_blobs` and `leases`.
    gateway: [u8; 16],
    heartbeat: cluster::Heartbeat,
}

impl PgMeta {
    /// Connects, brings the schema up to date, and joins the membership table.
    pub async fn connect(options: &PgOptions) -> Result<Arc<Self>> {
        let pool = pool(options)?;
        let mut client = get(&pool).await?;
        migrate::migrate(&mut client).await?;
        drop(client);
        let gateway = options.gateway_id.unwrap_or_else(rand::random);
        let heartbeat = cluster::join(&pool, gateway, &options.gateway_name).await?;
        Ok(Arc::new(Self { pool, gateway, heartbeat }))
    }

    /// The placement records of the storage targets, in this database.
    pub fn placement(&self) -> PgPlacement {
        PgPlacement::new(self.pool.clone())
    }

    /// Runs `body` in a transaction, again on serialization failures and
    /// deadlocks, never again after a COMMIT whose outcome is unknown.
    pub(crate) async fn txn<C: Sync + ?Sized, T>(&self, input: &C, body: Body<C, T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = get(&self.pool).await?;
            let tx = client.transaction().await.map_err(db_err)?;
            let failure = match body(&tx, input).await {
                Ok(value) => match tx.commit().await {
                    Ok(()) => return Ok(value),
                    // Refused at commit: nothing was written, running again is safe.
                    Err(e) if retryable(&e) => TxError::Db(e),
                    Err(e) => return Err(ambiguous(e)),
                },
                Err(failure) => {
                    let _ = tx.rollback().await;
                    failure
                }
            };
            match failure {
                TxError::App(e) => return Err(e),
                TxError::Db(e) if !retryable(&e) => return Err(db_err(e)),
                _ if attempt >= MAX_ATTEMPTS => {
                    return Err(Error::MetaUnavailable(format!("metadata transaction conflicted {attempt} times")));
                }
                _ => tokio::time::sleep(backoff(attempt)).await,
            }
        }
    }

    /// Runs a read of several statements on one snapshot (REPEATABLE READ,
    /// READ ONLY): a listing never sees a version both current and not.
    pub(crate) async fn snapshot<C: Sync + ?Sized, T>(&self, input: &C, body: Body<C, T>) -> Result<T> {
        let mut client = get(&self.pool).await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_err)?;
        let value = body(&tx, input).await.map_err(tx_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(value)
    }

    /// A pooled connection for a single-statement read.
    pub(crate) async fn client(&self) -> Result<Client> {
        get(&self.pool).await
    }
}

/// Applies the schema migrations this build knows and returns the versions
/// applied now: what `coffre meta migrate` runs.
pub async fn migrate(options: &PgOptions) -> Result<Vec<i32>> {
    let pool = pool(&PgOptions { pool_size: 1, ..options.clone() })?;
    let mut client = get(&pool).await?;
    migrate::migrate(&mut client).await
}

fn pool(options: &PgOptions) -> Result<Pool> {
    let mut config = parse_url(&options.url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.application_name("coffre");
    let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = match (&options.tls, config.get_ssl_mode()) {
        (Some(_), SslMode::Disable) => {
            return Err(Error::InvalidArgument(
                "metadata: a CA certificate is set for TLS but the URL says sslmode=disable".into(),
            ));
        }
        (Some(tls), _) => {
            // Verified TLS or no connection: never `prefer`'s silent fallback.
            config.ssl_mode(SslMode::Require);
            Manager::from_config(config, MakeRustlsConnect::new(ClientConfig::clone(tls)), recycling)
        }
        (None, SslMode::Require) => {
            return Err(Error::InvalidArgument(
                "metadata: the URL says sslmode=require but no TLS configuration was given".into(),
            ));
        }
        (None, _) => {
            // `prefer` (the default) with no TLS offered is plain text.
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, NoTls, recycling)
        }
    };
    Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        // A database that does not answer is a prompt 503, not a hung request.
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| Error::Meta(format!("metadata pool: {e}")))
}

async fn get(pool: &Pool) -> Result<Client> {
    pool.get().await.map_err(|e| Error::MetaUnavailable(format!("metadata database unreachable: {}", error_chain(&e))))
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Jittered exponential backoff: 2, 4, 8 .. 256 ms, at most.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 2u64 << attempt.min(7);
    Duration::from_millis(rand::random_range(ceiling / 2..=ceiling))
}

/// A COMMIT that got no answer may or may not have applied.
fn ambiguous(e: tokio_postgres::Error) -> Error {
    tracing::warn!(error = %e, "metadata commit outcome unknown");
    Error::MetaUnavailable(format!("the metadata commit's outcome is unknown ({e}); retry the request"))
}

/// A database error: unavailable (503) when the connection or server is the
/// cause, an internal error otherwise, with the server's own message.
pub(crate) fn db_err(e: tokio_postgres::Error) -> Error {
    let lost = match e.code() {
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            // 08: connection exception; 57: operator intervention (shutdown,
            // restart); 40003: the statement's outcome is unknown (CockroachDB's
            // ambiguous commit), never run again blindly.
            class == "08"
                || class == "57"
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN
        }
    };
    match e.as_db_error() {
        Some(db) if !lost => Error::Meta(format!("database: {} ({})", db.message(), db.code().code())),
        Some(db) => Error::MetaUnavailable(format!("metadata database: {}", db.message())),
        // No server error at all: the connection itself failed.
        None => Error::MetaUnavailable(format!("metadata database: {}", error_chain(&e))),
    }
}

pub(crate) fn tx_err(e: TxError) -> Error {
    match e {
        TxError::Db(e) => db_err(e),
        TxError::App(e) => e,
        TxError::Retry => Error::MetaUnavailable("metadata row changed meanwhile".into()),
    }
}
