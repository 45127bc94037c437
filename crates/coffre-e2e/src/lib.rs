//! Test harness: starts a real `coffre serve` on free loopback ports with its
//! own data directory, hands out AWS SDK clients for it, and stops it (or
//! kills it with SIGKILL, for crash tests). `Server::start_tls` runs it with a
//! certificate from a throwaway CA ([`pki`]) that its SDK clients trust.
//!
//! With `COFFRE_TEST_PG` set (scripts/pg-server.sh prints it), every server
//! keeps its metadata in a database of its own on that PostgreSQL cluster; see
//! [`metadata_engine`].
//!
//! One module a job; the names the tests have always imported from the crate
//! root stay there, and the shared helpers are reached through their module.

pub mod audit;
mod client;
pub mod config;
pub mod deployment;
pub mod files;
pub mod http;
pub mod node;
pub mod objects;
pub mod pg;
pub mod pki;
pub mod relay;
pub mod server;
pub mod signed;

pub use audit::audit_log_dir;
pub use client::error_code;
pub use config::{config_as_served, custody, kms_config, toml_string};
pub use http::{http_get, raw_request};
pub use node::{Node, free_addr};
pub use objects::{md5_hex, pattern};
pub use pg::{
    PG_DB_FILE, PgOverTls, fresh_pg_database, fresh_pg_database_over_tls, metadata_engine, pg_start, pg_stop,
};
pub use server::{ADMIN_TOKEN, ROOT_ACCESS, ROOT_SECRET, Server, coffre_bin};
