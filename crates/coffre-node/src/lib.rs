//! Storage nodes and replication: a node keeps sealed blobs on its own disk
//! behind a signed HTTP API; a gateway's [`ReplicatedBlobStore`] writes each
//! blob to the targets its bucket's residency policy allows and reads it back
//! from any healthy one.
//!
//! Blobs reach nodes already sealed (AES-256-GCM segments, `coffre-crypto`):
//! a node never sees a plaintext byte or a key, and tampering with a stored or
//! transiting blob fails the gateway's read. Request signing therefore covers
//! who may talk to a node, not the body's integrity.

pub mod auth;
pub mod backend;
pub mod client;
mod index;
pub mod repair;
pub mod replicated;
pub mod server;

pub use auth::ClusterKey;
pub use client::NodeClient;
pub use index::FilePlacement;
pub use repair::{SHARDS, Shard, ShardReport};
pub use replicated::{ReplicatedBlobStore, TargetHealth};
pub use server::NodeServer;
