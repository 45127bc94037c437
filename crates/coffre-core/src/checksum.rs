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
}
