//! The audit log: one event per S3 request and per administrative act,
//! appended to segment files, hashed into an RFC 6962 / RFC 9162 Merkle tree
//! whose heads are signed with the deployment's Ed25519 key.
//!
//! Layout of a log directory (what `coffre audit verify --from DIR` reads):
//!
//! ```text
//! DIR/segments/00000000000000000000.jsonl   events 0.., one canonical event per line
//! DIR/segments/00000000000000004096.hashes  a segment past retention: its leaf hashes only
//! DIR/heads.jsonl                            signed tree heads, one per line
//! ```
//!
//! Anyone holding the public key can check the whole log offline, an event's
//! inclusion in a head, and that a later head extends an earlier one. The
//! signing key lives outside the log directory so that handing the log to an
//! auditor never hands over the key.

pub mod event;
pub mod head;
pub mod log;
pub mod merkle;
pub mod proof;
pub mod query;
pub mod shared;
pub mod spool;
pub mod store;
mod syncer;
pub mod verify;

pub use event::Event;
pub use head::{PublicKey, SignedHead, Signer};
pub use log::{AuditConfig, AuditLog, Durability};
pub use shared::{LogStore, SharedLog};
pub use spool::Spool;

/// What stops a log's background work.
pub type Stop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// An audit log as the server uses it: this server's own files
/// ([`AuditLog`]), or one log that many gateways share ([`SharedLog`]).
#[async_trait::async_trait]
pub trait AuditTrail: Send + Sync + 'static {
    /// Appends `event` (numbered by the log), returning once it is as durable
    /// as `durability` asks.
    async fn append(&self, event: Event, durability: Durability) -> Result<()>;
    /// Appends `event` without waiting for it to be durable.
    fn append_batched(&self, event: Event) -> Result<()>;
    fn public_key(&self) -> PublicKey;
    /// Events in the log, as far as this server knows.
    fn size(&self) -> u64;
    /// This server's newest events, oldest first.
    fn recent(&self, limit: usize) -> Vec<Event>;
    async fn latest_head(&self) -> Option<SignedHead>;
    /// Background work (syncs, signed heads) until `stop`.
    async fn run(&self, stop: Stop);
    /// Signs a last head and takes no more events.
    async fn close(&self) -> Result<Option<SignedHead>>;
}

/// What can go wrong with a log on disk or its keys.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the audit log is closed")]
    Closed,
}

impl AuditError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}
