//! The blob store's contract: write a stream of bytes under a fresh id, durably,
//! and read any range of it back as a stream.

use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use coffre_topology::{PolicyRequest, ResidencyPolicy};

use crate::error::Result;
use crate::types::BlobId;

/// Where a new blob may be stored: its bucket and the bucket's residency
/// policy. A single-disk store ignores it; a replicating store places by it.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub bucket: Option<String>,
    /// The object the blob belongs to, so a placement record can name it.
    pub key: Option<String>,
    /// `None`: the deployment's default policy.
    pub residency: Option<ResidencyPolicy>,
}

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// An open blob being written. Nothing is readable until `finish` returns.
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<()>;
    /// Makes the blob durable (file and directory synced) and returns its size.
    async fn finish(self: Box<Self>) -> Result<u64>;
    /// Throws away what was written.
    async fn abort(self: Box<Self>);
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn create(&self, id: BlobId, placement: &Placement) -> Result<Box<dyn BlobWriter>>;
    /// Streams `range` of the blob (byte offsets, end exclusive).
    async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream>;
    /// Removing a blob that does not exist is not an error.
    async fn delete(&self, id: BlobId) -> Result<()>;
    /// Streams `range` again for a reader whose bytes failed their integrity
    /// check (AEAD), starting from another copy (`attempt` 1, 2, ...);
    /// `None` once there is no other copy to try. A single disk has none.
    async fn read_again(&self, _id: BlobId, _range: Range<u64>, _attempt: usize) -> Result<Option<ByteStream>> {
        Ok(None)
    }
    /// Told that bytes read from `id` failed their integrity check: a store
    /// holding copies checks each one and repairs the bad, in the background.
    fn suspect(&self, _id: BlobId) {}
    /// Where the blob's replicas are, as `country/region/site`: empty for a
    /// store with no declared topology.
    async fn locations(&self, _id: BlobId) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// The policy a bucket gets for what was asked: completed from the
    /// operator's `[residency]`, valid for the topology and no wider than
    /// `[residency]` (`ResidencyNotAllowed`). A store without a topology has
    /// nowhere to apply one.
    fn bucket_policy(&self, _asked: &PolicyRequest) -> Result<ResidencyPolicy> {
        Err(crate::Error::InvalidRequest(
            "this deployment declares no storage targets: a residency policy needs [[targets]] in its config".into(),
        ))
    }
}
