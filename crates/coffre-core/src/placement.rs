//! Where the replicas of each blob are, as opaque records keyed by blob id.
//!
//! A replicated blob store writes a blob's record before the blob counts as
//! stored. One gateway keeps the records in a file of its own; many gateways
//! share them in the metadata database. This trait is the seam between the two.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::BlobId;

#[async_trait]
pub trait PlacementStore: Send + Sync + 'static {
    /// Writes the record; durable when it returns.
    async fn put(&self, id: BlobId, record: Vec<u8>) -> Result<()>;
    /// Replaces the record if it is still exactly `seen`; false if it changed
    /// or went meanwhile. Two repairs, or a repair and a retag, of one blob
    /// never overwrite each other's copies.
    async fn replace_if(&self, id: BlobId, seen: Vec<u8>, record: Vec<u8>) -> Result<bool>;
    /// Removes the record if it is still exactly `seen`; false if it changed
    /// meanwhile. A repair and a delete of one blob cannot both win.
    async fn remove_if(&self, id: BlobId, seen: Vec<u8>) -> Result<bool>;
    async fn get(&self, id: BlobId) -> Result<Option<Vec<u8>>>;
    /// Records of the blobs after `after` (exclusive) in id order, at most `limit`.
    async fn page(&self, after: Option<BlobId>, limit: usize) -> Result<Vec<(BlobId, Vec<u8>)>>;
    /// Targets declared lost are never read from, written to or counted again.
    async fn declare_lost(&self, target: &str) -> Result<()>;
    async fn lost(&self) -> Result<Vec<String>>;
}
