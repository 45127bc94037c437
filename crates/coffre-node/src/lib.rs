//! Storage nodes and replication: a node keeps sealed blobs on its own disk
//! behind an HTTP API on mutual TLS; a gateway's [`ReplicatedBlobStore`] writes each
//! blob to the targets its bucket's residency policy allows and reads it back
//! from any healthy one.
//!
//! Blobs reach nodes already sealed (AES-256-GCM segments, `coffre-crypto`):
//! a node never sees a plaintext byte or a key, and tampering with a stored or
//! transiting blob fails the gateway's read, which then reads another
//! replica and has the bad one repaired. Mutual TLS ([`identity`]) covers who
//! may talk to a node, and which node answers.

pub mod backend;
pub mod client;
pub mod identity;
mod index;
pub mod repair;
pub mod replicated;
pub mod scrub;
pub mod server;

pub use client::{LinkLimits, NodeClient};
pub use identity::{ClusterTls, Identity};
pub use index::FilePlacement;
pub use repair::{SHARDS, Shard, ShardReport};
pub use replicated::{ReplicatedBlobStore, TargetHealth};
pub use server::NodeServer;
