//! How this binary reaches a PostgreSQL metadata database: the connection
//! options `[metadata]` gives, TLS included, for the server and the commands.

use std::sync::Arc;

use anyhow::Context as _;
use coffre_meta::PgOptions;

use crate::config::{Config, Metadata};

/// The options to reach the database of `[metadata]`, `None` with the
/// embedded engine. `name` is how this process shows in the membership.
pub fn pg_options(config: &Config, name: &str) -> anyhow::Result<Option<PgOptions>> {
    let Metadata::Postgres { url, pool_size, ca_cert } = &config.metadata else { return Ok(None) };
    let transport = coffre_meta::postgres::transport(url.expose())?;
    let tls = if ca_cert.is_some() || transport.tls_required {
        let policy = crate::tls::client_config(ca_cert.as_deref()).context("metadata: TLS to the database")?;
        Some(Arc::new(policy))
    } else {
        if transport.over_network {
            tracing::warn!(
                "the metadata database is reached over the network WITHOUT TLS: object keys, credentials' \
                 records and the audit log cross it in clear (set [metadata] ca_cert, or sslmode=require)"
            );
        }
        None
    };
    Ok(Some(PgOptions {
        url: url.expose().to_owned(),
        pool_size: *pool_size,
        gateway_name: name.to_owned(),
        gateway_id: None,
        tls,
    }))
}
