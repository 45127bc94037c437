//! The stored format of object bytes: a header, then fixed-size segments each
//! sealed with AES-256-GCM under the blob's own data key.
//!
//! # Format 1
//!
//! ```text
//! header (32 bytes)
//!   0..4    magic "CFRE"
//!   4       format version = 1
//!   5       algorithm = 1 (AES-256-GCM, 96-bit nonce, 128-bit tag)
//!   6       log2(segment size) = 16 (64 KiB of plaintext per segment)
//!   7       reserved, 0
//!   8..24   data key id: names the wrapped data key in the metadata record
//!   24..32  reserved, 0
//! segment i (i = 0..n)
//!   ciphertext of plaintext bytes [i·S, min((i+1)·S, len)), then its 16-byte tag
//! ```
//!
//! `n = max(1, ceil(len / S))`: an empty object is one empty final segment, so
//! even it cannot be truncated unnoticed. The nonce of segment `i` is `i` as a
//! big-endian u64 followed by four zero bytes: unique because a data key seals
//! exactly one blob, once. The associated data of segment `i` binds the format
//! version, bucket, object key, version (or multipart upload), part number,
//! `i`, and whether `i` is the final segment: a segment moved to another place,
//! object or blob, a reordering, a truncation or an extension fails to open.
//!
//! Why 64 KiB: the 16-byte tag costs 0.02 %, a range read decrypts at most
//! 128 KiB it does not return, and each segment is large enough that the
//! per-call cost of the AEAD vanishes next to the AES work itself.

use std::ops::Range;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, Tag, UnboundKey};
use bytes::{Bytes, BytesMut};
use zeroize::Zeroizing;

use crate::CryptoError;

pub const MAGIC: &[u8; 4] = b"CFRE";
pub const FORMAT_VERSION: u8 = 1;
pub const ALGORITHM_AES_256_GCM: u8 = 1;
pub const SEGMENT_SHIFT: u8 = 16;
/// Plaintext bytes per segment.
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
pub const TAG_LEN: usize = 16;
pub const HEADER_LEN: usize = 32;
/// Ciphertext bytes per full segment.
const SEALED_SEGMENT: usize = SEGMENT_SIZE + TAG_LEN;

/// A blob's 256-bit data key and the random id that names it.
pub struct DataKey {
    secret: Zeroizing<[u8; 32]>,
    pub id: [u8; 16],
}

impl DataKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(secret.as_mut()).map_err(|_| CryptoError::Random)?;
        aws_lc_rs::rand::fill(&mut id).map_err(|_| CryptoError::Random)?;
        Ok(Self { secret, id })
    }

    /// Rebuilds a key from unwrapped bytes; anything but 32 bytes is refused.
    pub fn from_parts(secret: &[u8], id: [u8; 16]) -> Result<Self, CryptoError> {
        let bytes: [u8; 32] = secret.try_into().map_err(|_| CryptoError::Integrity("data key length"))?;
        Ok(Self { secret: Zeroizing::new(bytes), id })
    }

    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// A key derived from this one and a customer's key (SSE-C): both are
    /// needed to read, and neither alone says anything of the other.
    pub fn with_customer_key(&self, customer_key: &[u8; 32]) -> Self {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, customer_key);
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
        ctx.update(b"coffre-sse-c-v1");
        ctx.update(self.secret.as_ref());
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(ctx.sign().as_ref());
        Self { secret, id: self.id }
    }

    fn aead(&self) -> Result<LessSafeKey, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, self.secret.as_ref()).map_err(|_| CryptoError::Internal("key"))?;
        Ok(LessSafeKey::new(unbound))
    }
}

/// Where a blob belongs; every segment's associated data starts with it.
#[derive(Debug, Clone)]
pub struct SegmentContext {
    prefix: Vec<u8>,
}

impl SegmentContext {
    /// `origin` is the version id for a single PUT, the upload id for a part.
    pub fn new(bucket: &str, key: &str, origin: &str, part: u32) -> Self {
        let mut prefix = Vec::with_capacity(32 + bucket.len() + key.len() + origin.len());
        prefix.extend_from_slice(b"coffre-segment");
        prefix.push(FORMAT_VERSION);
        for field in [bucket.as_bytes(), key.as_bytes(), origin.as_bytes()] {
            prefix.extend_from_slice(&(field.len() as u64).to_be_bytes());
            prefix.extend_from_slice(field);
        }
        prefix.extend_from_slice(&part.to_be_bytes());
        Self { prefix }
    }

    fn aad(&self, index: u64, last: bool) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.prefix.len() + 9);
        aad.extend_from_slice(&self.prefix);
        aad.extend_from_slice(&index.to_be_bytes());
        aad.push(u8::from(last));
        aad
    }
}

fn nonce(index: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

pub fn header(key_id: &[u8; 16]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = FORMAT_VERSION;
    h[5] = ALGORITHM_AES_256_GCM;
    h[6] = SEGMENT_SHIFT;
    h[8..24].copy_from_slice(key_id);
    h
}

/// How many segments hold `len` plaintext bytes.
pub fn segment_count(len: u64) -> u64 {
    len.div_ceil(SEGMENT_SIZE as u64).max(1)
}

/// The stored size of `len` plaintext bytes.
pub fn sealed_len(len: u64) -> u64 {
    HEADER_LEN as u64 + len + segment_count(len) * TAG_LEN as u64
}

/// Seals a plaintext stream as it arrives. Holds back up to one segment, since
/// whether a segment is the final one is known only when the stream ends.
/// Each segment is sealed in the buffer it was gathered in and handed out
/// as is: the plaintext is copied once, on the way in.
pub struct Sealer {
    key: LessSafeKey,
    context: SegmentContext,
    header: Option<Bytes>,
    pending: BytesMut,
    next_index: u64,
}

impl Sealer {
    pub fn new(key: &DataKey, context: SegmentContext) -> Result<Self, CryptoError> {
        let header = Some(Bytes::copy_from_slice(&header(&key.id)));
        Ok(Self { key: key.aead()?, context, header, pending: BytesMut::new(), next_index: 0 })
    }

    /// Takes plaintext; returns whatever ciphertext is ready (maybe nothing).
    pub fn push(&mut self, mut plain: &[u8]) -> Result<Vec<Bytes>, CryptoError> {
        let mut out: Vec<Bytes> = self.header.take().into_iter().collect();
        while !plain.is_empty() {
            let room = SEGMENT_SIZE - self.pending.len().min(SEGMENT_SIZE);
            if room == 0 {
                // A full segment with more bytes behind it: not the last one.
                out.push(self.seal_pending(false)?);
                continue;
            }
            if self.pending.capacity() == 0 {
                self.pending.reserve(SEALED_SEGMENT);
            }
            let take = room.min(plain.len());
            self.pending.extend_from_slice(&plain[..take]);
            plain = &plain[take..];
        }
        Ok(out)
    }

    /// Seals the final segment and returns the rest of the ciphertext.
    pub fn finish(mut self) -> Result<Vec<Bytes>, CryptoError> {
        let mut out: Vec<Bytes> = self.header.take().into_iter().collect();
        out.push(self.seal_pending(true)?);
        Ok(out)
    }

    fn seal_pending(&mut self, last: bool) -> Result<Bytes, CryptoError> {
        let index = self.next_index;
        let aad = self.context.aad(index, last);
        let tag: Tag = self
            .key
            .seal_in_place_separate_tag(nonce(index), Aad::from(&aad), &mut self.pending)
            .map_err(|_| CryptoError::Internal("seal"))?;
        self.pending.extend_from_slice(tag.as_ref());
        self.next_index += 1;
        Ok(self.pending.split().freeze())
    }
}

/// Seals a whole buffer at once (inline objects).
pub fn seal_all(key: &DataKey, context: SegmentContext, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut sealer = Sealer::new(key, context)?;
    let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
    for piece in sealer.push(plain)?.into_iter().chain(sealer.finish()?) {
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

/// Which stored bytes a plaintext range needs, and how to cut them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    /// Stored byte offsets to read (end exclusive).
    pub stored: Range<u64>,
    first_segment: u64,
    last_segment: u64,
    segments: u64,
    /// Plaintext bytes in the final segment of the blob.
    final_plain: usize,
    /// Plaintext bytes to drop from the first segment read.
    skip: usize,
    /// Plaintext bytes to return in all.
    take: u64,
    /// The read starts at the header, which is then checked too.
    with_header: bool,
}

impl ReadPlan {
    /// The plan for plaintext `range` of a blob holding `len` plaintext bytes.
    /// An empty range still reads (and authenticates) the final segment.
    pub fn new(len: u64, range: Range<u64>) -> Self {
        let segments = segment_count(len);
        let seg = SEGMENT_SIZE as u64;
        let (first, last) = if range.start >= range.end {
            (segments - 1, segments - 1)
        } else {
            (range.start / seg, (range.end - 1) / seg)
        };
        let final_plain = (len - (segments - 1) * seg) as usize;
        let with_header = first == 0;
        let start = if with_header { 0 } else { HEADER_LEN as u64 + first * SEALED_SEGMENT as u64 };
        let last_len = if last == segments - 1 { (final_plain + TAG_LEN) as u64 } else { SEALED_SEGMENT as u64 };
        let end = HEADER_LEN as u64 + last * SEALED_SEGMENT as u64 + last_len;
        Self {
            stored: start..end,
            first_segment: first,
            last_segment: last,
            segments,
            final_plain,
            skip: range.start.saturating_sub(first * seg) as usize,
            take: range.end.saturating_sub(range.start),
            with_header,
        }
    }

    /// The stored range cut at segment boundaries into reads of at most
    /// `segments_per_read` segments: each read then opens without a copy.
    pub fn reads(&self, segments_per_read: u64) -> Vec<Range<u64>> {
        let step = segments_per_read.max(1) * SEALED_SEGMENT as u64;
        let mut out = Vec::new();
        let mut start = self.stored.start;
        // Boundaries fall after the header, at whole segments.
        let mut next = HEADER_LEN as u64 + (self.first_segment * SEALED_SEGMENT as u64) + step;
        while start < self.stored.end {
            let end = next.min(self.stored.end);
            out.push(start..end);
            start = end;
            next += step;
        }
        out
    }

    fn sealed_len_of(&self, index: u64) -> usize {
        if index == self.segments - 1 { self.final_plain + TAG_LEN } else { SEALED_SEGMENT }
    }
}

/// Opens the stored bytes of a [`ReadPlan`] as they arrive, segment by
/// segment, and yields only the plaintext asked for.
pub struct Opener {
    key: LessSafeKey,
    key_id: [u8; 16],
    context: SegmentContext,
    plan: ReadPlan,
    buf: BytesMut,
    index: u64,
    header_checked: bool,
    returned: u64,
}

impl Opener {
    pub fn new(key: &DataKey, context: SegmentContext, plan: ReadPlan) -> Result<Self, CryptoError> {
        Ok(Self {
            key: key.aead()?,
            key_id: key.id,
            context,
            header_checked: !plan.with_header,
            index: plan.first_segment,
            plan,
            buf: BytesMut::new(),
            returned: 0,
        })
    }

    /// Takes stored bytes; returns the plaintext of every segment completed,
    /// as one buffer. A buffer that arrives alone and unshared is opened
    /// where it lies; the plaintext is then gathered in one copy, which costs
    /// less than handing the HTTP layer one small write per segment.
    pub fn push(&mut self, stored: Bytes) -> Result<Option<Bytes>, CryptoError> {
        let pieces = self.open_segments(stored)?;
        Ok(match pieces.len() {
            0 => None,
            1 => pieces.into_iter().next(),
            _ => {
                let mut out = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
                pieces.iter().for_each(|p| out.extend_from_slice(p));
                Some(out.freeze())
            }
        })
    }

    fn open_segments(&mut self, stored: Bytes) -> Result<Vec<Bytes>, CryptoError> {
        if self.buf.is_empty() {
            self.buf = stored.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        } else {
            self.buf.extend_from_slice(&stored);
        }
        if !self.header_checked {
            if self.buf.len() < HEADER_LEN {
                return Ok(Vec::new());
            }
            let h = self.buf.split_to(HEADER_LEN);
            if h[..] != header(&self.key_id)[..] {
                return Err(CryptoError::Integrity("blob header does not match its data key"));
            }
            self.header_checked = true;
        }
        let mut out = Vec::new();
        while self.index <= self.plan.last_segment {
            let want = self.plan.sealed_len_of(self.index);
            if self.buf.len() < want {
                break;
            }
            let mut segment = self.buf.split_to(want);
            let last = self.index == self.plan.segments - 1;
            let aad = self.context.aad(self.index, last);
            let plain_len = self
                .key
                .open_in_place(nonce(self.index), Aad::from(&aad), &mut segment)
                .map_err(|_| CryptoError::Integrity("segment failed authentication"))?
                .len();
            segment.truncate(plain_len);
            let from = if self.index == self.plan.first_segment { self.plan.skip.min(plain_len) } else { 0 };
            let left = (self.plan.take - self.returned) as usize;
            let piece = segment.freeze().slice(from..plain_len.min(from + left));
            self.returned += piece.len() as u64;
            if !piece.is_empty() {
                out.push(piece);
            }
            self.index += 1;
        }
        if self.index > self.plan.last_segment && !self.buf.is_empty() {
            return Err(CryptoError::Integrity("stored data runs past its last segment"));
        }
        Ok(out)
    }

    /// Call when the stored stream ends: a short stream is an error.
    pub fn finish(self) -> Result<(), CryptoError> {
        if !self.header_checked || self.index <= self.plan.last_segment || self.returned < self.plan.take {
            return Err(CryptoError::Integrity("stored data ends early"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> SegmentContext {
        SegmentContext::new("bucket", "key", "v1", 0)
    }

    fn plain(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn read(
        key: &DataKey,
        context: SegmentContext,
        stored: &[u8],
        len: u64,
        range: Range<u64>,
    ) -> Result<Vec<u8>, CryptoError> {
        let plan = ReadPlan::new(len, range);
        let part = &stored[plan.stored.start as usize..(plan.stored.end as usize).min(stored.len())];
        let mut opener = Opener::new(key, context, plan)?;
        let mut out = Vec::new();
        // Feed in uneven pieces, as a network or disk would.
        for piece in part.chunks(7_777) {
            if let Some(b) = opener.push(Bytes::copy_from_slice(piece))? {
                out.extend_from_slice(&b);
            }
        }
        opener.finish()?;
        Ok(out)
    }

    #[test]
    fn round_trips_every_size_and_range() {
        let key = DataKey::generate().expect("key");
        for len in [0usize, 1, 100, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE + 17] {
            let data = plain(len);
            let mut sealer = Sealer::new(&key, ctx()).expect("sealer");
            let mut stored = Vec::new();
            for piece in data.chunks(10_000) {
                for b in sealer.push(piece).expect("push") {
                    stored.extend_from_slice(&b);
                }
            }
            for b in sealer.finish().expect("finish") {
                stored.extend_from_slice(&b);
            }
            assert_eq!(stored.len() as u64, sealed_len(len as u64), "len {len}");
            assert_eq!(seal_all(&key, ctx(), &data).expect("seal").len(), stored.len());
            let n = len as u64;
            let ranges = [0..n, 0..n.min(1), n / 2..n, n.saturating_sub(1)..n, n / 3..(2 * n / 3)];
            for r in ranges {
                let got = read(&key, ctx(), &stored, n, r.clone()).expect("read");
                assert_eq!(got, data[r.start as usize..r.end as usize], "len {len} range {r:?}");
            }
        }
    }

    fn sealed(len: usize) -> (DataKey, Vec<u8>) {
        let key = DataKey::generate().expect("key");
        let stored = seal_all(&key, ctx(), &plain(len)).expect("seal");
        (key, stored)
    }

    #[test]
    fn aligned_reads_open_without_leftovers() {
        let len = 40 * SEGMENT_SIZE as u64 + 123;
        let key = DataKey::generate().expect("key");
        let data = plain(len as usize);
        let stored = seal_all(&key, ctx(), &data).expect("seal");
        for range in [0..len, 5 * SEGMENT_SIZE as u64 + 3..len - 10, len - 5..len] {
            let plan = ReadPlan::new(len, range.clone());
            let reads = plan.reads(15);
            assert_eq!(reads.first().map(|r| r.start), Some(plan.stored.start));
            assert_eq!(reads.last().map(|r| r.end), Some(plan.stored.end));
            let mut opener = Opener::new(&key, ctx(), plan).expect("opener");
            let mut out = Vec::new();
            for r in reads {
                if let Some(b) =
                    opener.push(Bytes::copy_from_slice(&stored[r.start as usize..r.end as usize])).expect("push")
                {
                    out.extend_from_slice(&b);
                }
                assert!(opener.buf.is_empty(), "a read must end on a segment boundary");
            }
            opener.finish().expect("finish");
            assert_eq!(out, data[range.start as usize..range.end as usize]);
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_an_error() {
        let len = 2 * SEGMENT_SIZE + 5;
        let (key, stored) = sealed(len);
        for at in [0, 5, HEADER_LEN + 3, HEADER_LEN + SEGMENT_SIZE + 2, stored.len() - 1] {
            let mut bad = stored.clone();
            bad[at] ^= 0x10;
            assert!(read(&key, ctx(), &bad, len as u64, 0..len as u64).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn swapped_truncated_or_extended_segments_are_errors() {
        let len = 3 * SEGMENT_SIZE;
        let (key, stored) = sealed(len);
        let n = len as u64;
        // Swap segments 0 and 1.
        let mut swapped = stored.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + SEALED_SEGMENT);
        let first: Vec<u8> = swapped[a..b].to_vec();
        swapped.copy_within(b..b + SEALED_SEGMENT, a);
        swapped[b..b + SEALED_SEGMENT].copy_from_slice(&first);
        assert!(read(&key, ctx(), &swapped, n, 0..n).is_err());
        // Truncated at a segment boundary: the metadata still says 3 segments.
        let truncated = &stored[..HEADER_LEN + 2 * SEALED_SEGMENT];
        assert!(read(&key, ctx(), truncated, n, 0..n).is_err());
        // Read as a shorter object: segment 1 is not sealed as final.
        assert!(read(&key, ctx(), &stored, 2 * SEGMENT_SIZE as u64, 0..2 * SEGMENT_SIZE as u64).is_err());
        // Read as a longer object: the old final segment is flagged final.
        let mut extended = stored.clone();
        extended.extend_from_slice(&stored[HEADER_LEN..HEADER_LEN + SEALED_SEGMENT]);
        assert!(read(&key, ctx(), &extended, n + SEGMENT_SIZE as u64, 0..n + SEGMENT_SIZE as u64).is_err());
    }

    #[test]
    fn another_place_or_key_does_not_open() {
        let len = 1000;
        let (key, stored) = sealed(len);
        let n = len as u64;
        let elsewhere = [
            SegmentContext::new("bucket2", "key", "v1", 0),
            SegmentContext::new("bucket", "key2", "v1", 0),
            SegmentContext::new("bucket", "key", "v2", 0),
            SegmentContext::new("bucket", "key", "v1", 1),
        ];
        for context in elsewhere {
            assert!(read(&key, context, &stored, n, 0..n).is_err());
        }
        let other = DataKey::generate().expect("key");
        let other = DataKey::from_parts(other.secret(), key.id).expect("key");
        assert!(read(&other, ctx(), &stored, n, 0..n).is_err());
        let customer = [7u8; 32];
        assert!(read(&key.with_customer_key(&customer), ctx(), &stored, n, 0..n).is_err());
    }
}
