//! The blob store's contract: write a stream of bytes under a fresh id, durably,
//! and read any range of it back as a stream.

use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::error::Result;
use crate::types::BlobId;

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
    async fn create(&self, id: BlobId) -> Result<Box<dyn BlobWriter>>;
    /// Streams `range` of the blob (byte offsets, end exclusive).
    async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream>;
    /// Removing a blob that does not exist is not an error.
    async fn delete(&self, id: BlobId) -> Result<()>;
}
