//! Moving bytes: a request body, sealed as it streams, into an inline value or
//! a fresh durable blob (hashing the plaintext on the way), and a version's
//! sealed bytes back out as a stream of authenticated plaintext.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use coffre_crypto::segment::{self, DataKey, Opener, ReadPlan, Sealer};
use coffre_crypto::{CryptoError, SegmentContext};
use futures::{StreamExt as _, TryStreamExt as _, stream};

use crate::blob::{BlobStore, BlobWriter, ByteStream, Placement};
use crate::checksum::{BodyDigest, BodyHasher, ChecksumAlgorithm};
use crate::error::{Error, Result};
use crate::meta::{BucketKek, DataLocation, SealedKey};
use crate::types::{BlobId, BucketName, ObjectKey};

use super::keys::{CustomerKey, Keyring, segment_context};
use super::{MAX_OBJECT_SIZE, ObjectService};

struct BlobSink {
    id: BlobId,
    writer: Box<dyn BlobWriter>,
    sealer: Sealer,
}

impl BlobSink {
    /// Seals plaintext and writes whatever whole segments are ready.
    async fn write(&mut self, plain: &[u8]) -> Result<()> {
        for sealed in self.sealer.push(plain).map_err(integrity)? {
            self.writer.write(sealed).await?;
        }
        Ok(())
    }
}

/// The data key a body is sealed under, and where the segments belong.
pub(crate) struct Sealing {
    pub key: DataKey,
    pub sealed: SealedKey,
    pub context: SegmentContext,
    pub placement: Placement,
}

/// What reading a version's bytes needs besides the location.
#[derive(Clone)]
pub(crate) struct ReadKeys {
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub keks: Vec<BucketKek>,
    pub customer: Option<CustomerKey>,
}

fn integrity(e: CryptoError) -> Error {
    Error::Integrity(e.to_string())
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

    /// Streams a body into storage, sealed: inline when it turns out small
    /// enough, otherwise into a fresh durable blob. Hashes the plaintext.
    pub(crate) async fn store_body(
        &self,
        mut body: ByteStream,
        algorithms: &[ChecksumAlgorithm],
        declared_len: Option<u64>,
        allow_inline: bool,
        sealing: Sealing,
    ) -> Result<(DataLocation, BodyDigest)> {
        if declared_len.is_some_and(|n| n > MAX_OBJECT_SIZE) {
            return Err(Error::EntityTooLarge { max: MAX_OBJECT_SIZE });
        }
        // A threshold of 0 means no object is inline, not even an empty one:
        // with storage targets, the metadata store holds no object's data.
        let allow_inline = allow_inline && self.config.inline_threshold > 0;
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
                    Some(s) => s.write(&chunk).await?,
                    None if head.len() + chunk.len() <= inline_limit => head.extend_from_slice(&chunk),
                    None => {
                        let mut s = self.open_sink(&sealing).await?;
                        s.write(&head.split()).await?;
                        s.write(&chunk).await?;
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
            None if allow_inline => DataLocation::Inline {
                sealed: segment::seal_all(&sealing.key, sealing.context, &head).map_err(integrity)?,
                key: sealing.sealed,
            },
            None => {
                // Parts always get a blob, even an empty one.
                let mut s = self.open_sink(&sealing).await?;
                s.write(&head).await?;
                self.finish_sink(s, sealing.sealed).await?
            }
            Some(s) => self.finish_sink(s, sealing.sealed).await?,
        };
        Ok((data, digest))
    }

    async fn open_sink(&self, sealing: &Sealing) -> Result<BlobSink> {
        let sealer = Sealer::new(&sealing.key, sealing.context.clone()).map_err(integrity)?;
        let id = BlobId::generate();
        self.meta.register_pending(&[id]).await?;
        match self.blobs.create(id, &sealing.placement).await {
            Ok(writer) => Ok(BlobSink { id, writer, sealer }),
            Err(e) => self.release_on_error(Err(e), &[id]).await,
        }
    }

    async fn finish_sink(&self, mut sink: BlobSink, key: SealedKey) -> Result<DataLocation> {
        let id = sink.id;
        let finished = async {
            for tail in sink.sealer.finish().map_err(integrity)? {
                sink.writer.write(tail).await?;
            }
            sink.writer.finish().await.map(|_| DataLocation::Blob { id, key })
        }
        .await;
        self.release_on_error(finished, &[id]).await
    }

    /// Streams plaintext `range` of a version's data, unwrapping each data key
    /// and opening each blob only when reached.
    pub(crate) fn read_data(&self, data: DataLocation, size: u64, range: Range<u64>, keys: ReadKeys) -> ByteStream {
        let ring = self.keyring.clone();
        match data {
            DataLocation::None => Box::pin(stream::empty()),
            DataLocation::Inline { sealed, key } => open_piece(ring, keys, key, size, range, read_inline(sealed)),
            DataLocation::Blob { id, key } => open_blob(ring, keys, key, size, range, self.blobs.clone(), id),
            DataLocation::Parts(parts, _) => {
                let mut pieces = Vec::new();
                let mut offset = 0u64;
                for p in parts {
                    let (start, end) = (offset, offset + p.size);
                    offset = end;
                    let (lo, hi) = (range.start.max(start), range.end.min(end));
                    if lo < hi {
                        pieces.push((p, (lo - start)..(hi - start)));
                    }
                }
                let blobs = self.blobs.clone();
                Box::pin(
                    stream::iter(pieces)
                        .map(move |(p, r)| {
                            open_blob(ring.clone(), keys.clone(), p.key, p.size, r, blobs.clone(), p.blob)
                        })
                        .flatten(),
                )
            }
        }
    }
}

/// Segments per read of a blob: 15 sealed segments (plus the header) stay
/// under the blob store's 1 MiB I/O size, so each read is one buffer of whole
/// segments, opened in place.
const SEGMENTS_PER_READ: u64 = 15;
/// Reads of one blob kept in flight ahead of the one being opened.
const READ_AHEAD: usize = 2;

type Fetch = Box<dyn FnOnce(ReadPlan) -> ByteStream + Send>;

fn read_inline(sealed: Vec<u8>) -> Fetch {
    Box::new(move |plan| {
        let all = Bytes::from(sealed);
        // A value shorter than the plan says is cut short here and reported
        // by the opener as truncated.
        let end = (plan.stored.end as usize).min(all.len());
        let piece = all.slice((plan.stored.start as usize).min(end)..end);
        Box::pin(stream::once(async move { Ok(piece) }))
    })
}

/// One blob's sealed bytes, opened read by read: each read (at most
/// [`SEGMENTS_PER_READ`] segments) is authenticated on its own, so one that
/// fails its check is read again from the store's next copy, and the store is
/// told to look at its copies; only when no copy opens does the reader fail.
fn open_blob(
    ring: Keyring,
    keys: ReadKeys,
    sealed: SealedKey,
    size: u64,
    range: Range<u64>,
    blobs: std::sync::Arc<dyn BlobStore>,
    id: BlobId,
) -> ByteStream {
    let opened = async move {
        let key = ring.open_data_key(&keys.bucket, &keys.keks, &sealed, keys.customer.as_ref()).await?;
        let key = std::sync::Arc::new(key);
        let context = segment_context(&keys.bucket, &keys.key, &sealed);
        let reads = stream::iter(plain_reads(range))
            .map(move |plain| {
                let (blobs, key, context) = (blobs.clone(), key.clone(), context.clone());
                async move { open_read(blobs.as_ref(), id, &key, context, size, plain).await }
            })
            .buffered(READ_AHEAD)
            .map_ok(|pieces| stream::iter(pieces.into_iter().map(Ok::<_, Error>)))
            .try_flatten();
        Ok::<_, Error>(reads)
    };
    Box::pin(stream::once(opened).try_flatten())
}

/// The plaintext range cut where reads of [`SEGMENTS_PER_READ`] segments end
/// (an empty range stays one read: it still authenticates the final segment).
fn plain_reads(range: Range<u64>) -> Vec<Range<u64>> {
    if range.start >= range.end {
        return vec![range];
    }
    let step = SEGMENTS_PER_READ * segment::SEGMENT_SIZE as u64;
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let end = ((start / step + 1) * step).min(range.end);
        out.push(start..end);
        start = end;
    }
    out
}

/// Reads and opens plaintext `plain` of blob `id`, trying the store's other
/// copies while the bytes read fail authentication.
async fn open_read(
    blobs: &dyn BlobStore,
    id: BlobId,
    key: &DataKey,
    context: SegmentContext,
    size: u64,
    plain: Range<u64>,
) -> Result<Vec<Bytes>> {
    let plan = ReadPlan::new(size, plain);
    let mut stored = blobs.read(id, plan.stored.clone()).await?;
    let mut attempt = 0;
    loop {
        let why = match open_all(stored, key, context.clone(), plan.clone()).await {
            Err(Error::Integrity(why)) => why,
            other => return other,
        };
        if attempt == 0 {
            blobs.suspect(id);
        }
        attempt += 1;
        match blobs.read_again(id, plan.stored.clone(), attempt).await? {
            Some(again) => {
                tracing::warn!(blob = %id, range = ?plan.stored, error = %why, attempt, "stored bytes failed authentication; reading another copy");
                stored = again;
            }
            None => return Err(Error::Integrity(why)),
        }
    }
}

async fn open_all(
    mut stored: ByteStream,
    key: &DataKey,
    context: SegmentContext,
    plan: ReadPlan,
) -> Result<Vec<Bytes>> {
    let mut opener = Opener::new(key, context, plan).map_err(integrity)?;
    let mut out = Vec::new();
    while let Some(chunk) = stored.next().await {
        if let Some(plain) = opener.push(chunk?).map_err(integrity)? {
            out.push(plain);
        }
    }
    opener.finish().map_err(integrity)?;
    Ok(out)
}

/// One sealed piece (inline value, blob or part): unwrap its key, fetch the
/// stored bytes the range needs, and open them segment by segment.
fn open_piece(
    ring: Keyring,
    keys: ReadKeys,
    sealed: SealedKey,
    size: u64,
    range: Range<u64>,
    fetch: Fetch,
) -> ByteStream {
    let opened = async move {
        let key = ring.open_data_key(&keys.bucket, &keys.keks, &sealed, keys.customer.as_ref()).await?;
        let plan = ReadPlan::new(size, range);
        let opener =
            Opener::new(&key, segment_context(&keys.bucket, &keys.key, &sealed), plan.clone()).map_err(integrity)?;
        Ok::<_, Error>(open_stream(fetch(plan), opener))
    };
    Box::pin(stream::once(opened).try_flatten())
}

fn open_stream(stored: ByteStream, opener: Opener) -> ByteStream {
    let opened = stream::try_unfold((stored, Some(opener)), |(mut stored, mut opener)| async move {
        loop {
            let Some(open) = opener.as_mut() else { return Ok::<_, Error>(None) };
            match stored.next().await {
                Some(chunk) => {
                    if let Some(plain) = open.push(chunk?).map_err(integrity)? {
                        return Ok(Some((plain, (stored, opener))));
                    }
                }
                None => {
                    opener.take().map(Opener::finish).transpose().map_err(integrity)?;
                    return Ok(None);
                }
            }
        }
    });
    Box::pin(opened)
}
