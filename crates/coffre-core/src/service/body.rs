//! Moving bytes: a request body into an inline value or a fresh durable
//! blob (hashing on the way), and a version's data back out as a stream.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt as _, TryStreamExt as _, stream};

use crate::blob::{BlobWriter, ByteStream};
use crate::checksum::{BodyDigest, BodyHasher, ChecksumAlgorithm};
use crate::error::{Error, Result};
use crate::meta::DataLocation;
use crate::types::BlobId;

use super::{MAX_OBJECT_SIZE, ObjectService};

struct BlobSink {
    id: BlobId,
    writer: Box<dyn BlobWriter>,
}

impl ObjectService {
    /// Hands the blobs of a failed write to the collector, keeping the write's error.
    pub(crate) async fn release_on_error<T>(&self, outcome: Result<T>, pending: &[BlobId]) -> Result<T> {
        if outcome.is_err()
            && !pending.is_empty()
            && let Err(e) = self.meta.release_pending(pending).await
        {
            tracing::warn!(error = %e, "could not release the blobs of a failed write; the next start collects them");
        }
        outcome
    }

    /// Streams a body into storage: inline when it turns out small enough,
    /// otherwise into a fresh durable blob. Hashes as it goes.
    pub(crate) async fn store_body(
        &self,
        mut body: ByteStream,
        algorithms: &[ChecksumAlgorithm],
        declared_len: Option<u64>,
        allow_inline: bool,
    ) -> Result<(DataLocation, BodyDigest)> {
        if declared_len.is_some_and(|n| n > MAX_OBJECT_SIZE) {
            return Err(Error::EntityTooLarge { max: MAX_OBJECT_SIZE });
        }
        let inline_limit = if allow_inline && declared_len.is_none_or(|n| n <= self.config.inline_threshold as u64) {
            self.config.inline_threshold
        } else {
            0
        };
        let mut hasher = BodyHasher::new(algorithms.iter().copied());
        let mut head = BytesMut::new();
        let mut sink: Option<BlobSink> = None;
        let result: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                if hasher.len() > MAX_OBJECT_SIZE {
                    return Err(Error::EntityTooLarge { max: MAX_OBJECT_SIZE });
                }
                match &mut sink {
                    Some(s) => s.writer.write(chunk).await?,
                    None if head.len() + chunk.len() <= inline_limit => head.extend_from_slice(&chunk),
                    None => {
                        let mut s = self.open_sink().await?;
                        if !head.is_empty() {
                            s.writer.write(head.split().freeze()).await?;
                        }
                        s.writer.write(chunk).await?;
                        sink = Some(s);
                    }
                }
            }
            Ok(())
        }
        .await;
        let digest = hasher.finish();
        let result = match (result, declared_len) {
            (Ok(()), Some(expected)) if digest.len < expected => {
                Err(Error::IncompleteBody { received: digest.len, expected })
            }
            (other, _) => other,
        };
        if let Err(e) = result {
            if let Some(s) = sink {
                let id = s.id;
                s.writer.abort().await;
                return self.release_on_error(Err(e), &[id]).await;
            }
            return Err(e);
        }
        let data = match sink {
            None if allow_inline => DataLocation::Inline(head.to_vec()),
            None => {
                // Parts always get a blob, even an empty one.
                let mut s = self.open_sink().await?;
                s.writer.write(head.freeze()).await?;
                self.finish_sink(s).await?
            }
            Some(s) => self.finish_sink(s).await?,
        };
        Ok((data, digest))
    }

    async fn open_sink(&self) -> Result<BlobSink> {
        let id = BlobId::generate();
        self.meta.register_pending(&[id]).await?;
        match self.blobs.create(id).await {
            Ok(writer) => Ok(BlobSink { id, writer }),
            Err(e) => self.release_on_error(Err(e), &[id]).await,
        }
    }

    async fn finish_sink(&self, sink: BlobSink) -> Result<DataLocation> {
        let id = sink.id;
        let finished = sink.writer.finish().await.map(|_| DataLocation::Blob(id));
        self.release_on_error(finished, &[id]).await
    }

    /// Streams `range` of a version's data, opening each blob only when reached.
    pub(crate) fn read_data(&self, data: DataLocation, range: Range<u64>) -> ByteStream {
        match data {
            DataLocation::Inline(bytes) => {
                let slice = Bytes::from(bytes).slice(range.start as usize..range.end as usize);
                Box::pin(stream::once(async move { Ok(slice) }))
            }
            DataLocation::None => Box::pin(stream::empty()),
            DataLocation::Blob(id) => {
                let blobs = self.blobs.clone();
                Box::pin(stream::once(async move { blobs.read(id, range).await }).try_flatten())
            }
            DataLocation::Parts(parts) => {
                let mut pieces = Vec::new();
                let mut offset = 0u64;
                for p in parts {
                    let (start, end) = (offset, offset + p.size);
                    offset = end;
                    let (lo, hi) = (range.start.max(start), range.end.min(end));
                    if lo < hi {
                        pieces.push((p.blob, (lo - start)..(hi - start)));
                    }
                }
                let blobs = self.blobs.clone();
                Box::pin(
                    stream::iter(pieces)
                        .then(move |(id, r)| {
                            let blobs = blobs.clone();
                            async move { blobs.read(id, r).await }
                        })
                        .try_flatten(),
                )
            }
        }
    }
}
