//! Content hashing in one pass: the MD5 behind ETags and Content-MD5, and the
//! flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) SDKs send.

use std::fmt;

use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [Self; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "CRC32" => Ok(Self::Crc32),
            "CRC32C" => Ok(Self::Crc32c),
            "CRC64NVME" => Ok(Self::Crc64Nvme),
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            _ => Err(Error::InvalidArgument(format!("unsupported checksum algorithm {s:?}"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }
}

/// How a multipart object's checksum derives from its parts': S3's
/// `x-amz-checksum-type`. A single PUT's checksum is always `FullObject`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    /// The checksum of the parts' checksums, suffixed `-N`.
    #[default]
    Composite,
    /// The checksum of the whole object's bytes, combined from the parts' CRCs.
    FullObject,
}

impl ChecksumType {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "COMPOSITE" => Ok(Self::Composite),
            "FULL_OBJECT" => Ok(Self::FullObject),
            _ => Err(Error::InvalidRequest(format!("unsupported checksum type {s:?}"))),
        }
    }

    /// The type of an upload asking for `alg` and maybe a type, as S3 rules
    /// it: `FULL_OBJECT` only for the CRCs (whose values combine), CRC64NVME
    /// only as `FULL_OBJECT` (its default), a type only with an algorithm.
    pub fn of_upload(alg: Option<ChecksumAlgorithm>, asked: Option<Self>) -> Result<Self> {
        use ChecksumAlgorithm as A;
        let refuse = |t: &str, a: ChecksumAlgorithm| {
            Err(Error::InvalidRequest(format!(
                "The {t} checksum type cannot be used with the {} checksum algorithm.",
                a.as_str().to_ascii_lowercase()
            )))
        };
        match (alg, asked) {
            (None, None) => Ok(Self::Composite),
            (None, Some(_)) => Err(Error::InvalidRequest(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.".into(),
            )),
            (Some(A::Crc64Nvme), None | Some(Self::FullObject)) => Ok(Self::FullObject),
            (Some(a @ A::Crc64Nvme), Some(Self::Composite)) => refuse("COMPOSITE", a),
            (Some(a @ (A::Sha1 | A::Sha256)), Some(Self::FullObject)) => refuse("FULL_OBJECT", a),
            (Some(_), t) => Ok(t.unwrap_or(Self::Composite)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Composite => "COMPOSITE",
            Self::FullObject => "FULL_OBJECT",
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Base64 checksum values, as S3 carries them in headers and XML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Checksums {
    pub fn get(&self, alg: ChecksumAlgorithm) -> Option<&str> {
        match alg {
            ChecksumAlgorithm::Crc32 => self.crc32.as_deref(),
            ChecksumAlgorithm::Crc32c => self.crc32c.as_deref(),
            ChecksumAlgorithm::Crc64Nvme => self.crc64nvme.as_deref(),
            ChecksumAlgorithm::Sha1 => self.sha1.as_deref(),
            ChecksumAlgorithm::Sha256 => self.sha256.as_deref(),
        }
    }

    pub fn set(&mut self, alg: ChecksumAlgorithm, value: String) {
        let slot = match alg {
            ChecksumAlgorithm::Crc32 => &mut self.crc32,
            ChecksumAlgorithm::Crc32c => &mut self.crc32c,
            ChecksumAlgorithm::Crc64Nvme => &mut self.crc64nvme,
            ChecksumAlgorithm::Sha1 => &mut self.sha1,
            ChecksumAlgorithm::Sha256 => &mut self.sha256,
        };
        *slot = Some(value);
    }

    /// The algorithms that carry a value.
    pub fn algorithms(&self) -> impl Iterator<Item = ChecksumAlgorithm> + '_ {
        ChecksumAlgorithm::ALL.into_iter().filter(|a| self.get(*a).is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.algorithms().next().is_none()
    }
}

enum Running {
    Crc32(crc_fast::Digest),
    Crc32c(crc_fast::Digest),
    Crc64Nvme(crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Running {
    fn new(alg: ChecksumAlgorithm) -> Self {
        use crc_fast::CrcAlgorithm as C;
        match alg {
            ChecksumAlgorithm::Crc32 => Self::Crc32(crc_fast::Digest::new(C::Crc32IsoHdlc)),
            ChecksumAlgorithm::Crc32c => Self::Crc32c(crc_fast::Digest::new(C::Crc32Iscsi)),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc64Nvme(crc_fast::Digest::new(C::Crc64Nvme)),
            ChecksumAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(d) | Self::Crc32c(d) | Self::Crc64Nvme(d) => d.update(data),
            Self::Sha1(d) => d.update(data),
            Self::Sha256(d) => d.update(data),
        }
    }

    fn finish(self) -> (ChecksumAlgorithm, String) {
        let b64 = |bytes: &[u8]| base64_simd::STANDARD.encode_to_string(bytes);
        match self {
            Self::Crc32(d) => (ChecksumAlgorithm::Crc32, b64(&(d.finalize() as u32).to_be_bytes())),
            Self::Crc32c(d) => (ChecksumAlgorithm::Crc32c, b64(&(d.finalize() as u32).to_be_bytes())),
            Self::Crc64Nvme(d) => (ChecksumAlgorithm::Crc64Nvme, b64(&d.finalize().to_be_bytes())),
            Self::Sha1(d) => (ChecksumAlgorithm::Sha1, b64(&d.finalize())),
            Self::Sha256(d) => (ChecksumAlgorithm::Sha256, b64(&d.finalize())),
        }
    }
}

/// Hashes a body as it streams past: always MD5, plus the requested checksums.
pub struct BodyHasher {
    md5: Md5,
    others: Vec<Running>,
    len: u64,
}

/// What a [`BodyHasher`] saw.
pub struct BodyDigest {
    pub md5: [u8; 16],
    pub checksums: Checksums,
    pub len: u64,
}

impl BodyHasher {
    pub fn new(algorithms: impl IntoIterator<Item = ChecksumAlgorithm>) -> Self {
        let mut others: Vec<Running> = Vec::new();
        let mut seen = Vec::new();
        for alg in algorithms {
            if !seen.contains(&alg) {
                seen.push(alg);
                others.push(Running::new(alg));
            }
        }
        Self { md5: Md5::new(), others, len: 0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        for h in &mut self.others {
            h.update(data);
        }
        self.len += data.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> BodyDigest {
        let mut checksums = Checksums::default();
        for h in self.others {
            let (alg, value) = h.finish();
            checksums.set(alg, value);
        }
        BodyDigest { md5: self.md5.finalize().into(), checksums, len: self.len }
    }
}

/// The CRC of bytes made of pieces, from each piece's CRC (base64, as S3
/// carries it) and length, without reading the bytes again. `None` for an
/// algorithm whose values do not combine (the SHAs) or a malformed value.
pub fn combine_crcs<'a>(alg: ChecksumAlgorithm, pieces: impl IntoIterator<Item = (&'a str, u64)>) -> Option<String> {
    use crc_fast::CrcAlgorithm as C;
    let (crc, width) = match alg {
        ChecksumAlgorithm::Crc32 => (C::Crc32IsoHdlc, 4),
        ChecksumAlgorithm::Crc32c => (C::Crc32Iscsi, 4),
        ChecksumAlgorithm::Crc64Nvme => (C::Crc64Nvme, 8),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => return None,
    };
    // The CRC of no bytes is 0 for all three: the fold's neutral start.
    let mut whole = 0u64;
    for (b64, len) in pieces {
        let raw = base64_simd::STANDARD.decode_to_vec(b64).ok().filter(|r| r.len() == width)?;
        let value = raw.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
        whole = crc_fast::checksum_combine(crc, whole, value, len);
    }
    let bytes = whole.to_be_bytes();
    Some(base64_simd::STANDARD.encode_to_string(&bytes[8 - width..]))
}

/// MD5 of the concatenated part MD5s: the `-N` ETag of a multipart object.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    let digest: [u8; 16] = h.finalize().into();
    format!("{}-{}", hex(&digest), part_md5s.len())
}

pub fn hex(bytes: &[u8]) -> String {
    hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut h = BodyHasher::new(ChecksumAlgorithm::ALL);
        h.update(b"hello ");
        h.update(b"world");
        let d = h.finish();
        assert_eq!(hex(&d.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(d.checksums.crc32.as_deref(), Some("DUoRhQ=="));
        assert_eq!(d.checksums.crc32c.as_deref(), Some("yZRlqg=="));
        assert_eq!(d.checksums.sha1.as_deref(), Some("Kq5sNclPz7QV2+lfQIuc6R7oRu0="));
        assert_eq!(d.checksums.sha256.as_deref(), Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="));
        assert_eq!(d.len, 11);
    }

    /// Combining the CRCs of pieces gives the CRC of their concatenation,
    /// for every split, an empty piece included.
    #[test]
    fn crcs_combine_into_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for alg in [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64Nvme] {
            let of = |bytes: &[u8]| {
                let mut h = BodyHasher::new([alg]);
                h.update(bytes);
                h.finish().checksums.get(alg).map(str::to_owned).expect("a checksum")
            };
            for cuts in [vec![0, 10_000], vec![0, 1, 5_000, 5_000, 10_000], vec![0, 4_096, 8_192, 10_000]] {
                let pieces: Vec<(String, u64)> =
                    cuts.windows(2).map(|w| (of(&data[w[0]..w[1]]), (w[1] - w[0]) as u64)).collect();
                let combined = combine_crcs(alg, pieces.iter().map(|(v, n)| (v.as_str(), *n)));
                assert_eq!(combined, Some(of(&data)), "{alg} over {cuts:?}");
            }
        }
        assert_eq!(combine_crcs(ChecksumAlgorithm::Sha256, [("AAAA", 3)]), None);
        assert_eq!(combine_crcs(ChecksumAlgorithm::Crc32, [("AAAAAAAAAAA=", 3)]), None, "a CRC64 is no CRC32");
    }

    #[test]
    fn full_object_only_for_the_crcs_and_crc64nvme_only_full_object() {
        use ChecksumAlgorithm as A;
        let t = ChecksumType::of_upload;
        assert_eq!(t(Some(A::Crc32c), Some(ChecksumType::FullObject)).ok(), Some(ChecksumType::FullObject));
        assert_eq!(t(Some(A::Crc32), None).ok(), Some(ChecksumType::Composite));
        assert_eq!(t(Some(A::Crc64Nvme), None).ok(), Some(ChecksumType::FullObject));
        assert_eq!(t(None, None).ok(), Some(ChecksumType::Composite));
        assert!(t(Some(A::Sha256), Some(ChecksumType::FullObject)).is_err());
        assert!(t(Some(A::Sha1), Some(ChecksumType::FullObject)).is_err());
        assert!(t(Some(A::Crc64Nvme), Some(ChecksumType::Composite)).is_err());
        assert!(t(None, Some(ChecksumType::FullObject)).is_err());
    }
}
