//! Validated domain values: each is checked once where it enters, and trusted after.
//!
//! Object keys stay opaque bytes here: nothing below the S3 front ever turns
//! a key into a path, so hostile keys such as `../../etc/passwd` are just data.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A bucket name that follows AWS's rules for new buckets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BucketName(String);

impl BucketName {
    /// Validates `name` as AWS does: 3–63 characters of `a-z 0-9 . -`, starting and
    /// ending with a letter or digit, no `..`, not an IPv4 address, none of the
    /// reserved prefixes and suffixes.
    pub fn parse(name: &str) -> Result<Self> {
        let invalid = |why: &str| Err(Error::InvalidBucketName(format!("{name:?}: {why}")));
        if !(3..=63).contains(&name.len()) {
            return invalid("must be 3 to 63 characters long");
        }
        let bytes = name.as_bytes();
        let allowed = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-';
        if !bytes.iter().all(|&c| allowed(c)) {
            return invalid("only lowercase letters, digits, '.' and '-' are allowed");
        }
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return invalid("must start and end with a letter or digit");
        }
        if name.contains("..") || name.contains(".-") || name.contains("-.") {
            return invalid("must not contain '..', '.-' or '-.'");
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return invalid("must not be formatted as an IP address");
        }
        const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
        const RESERVED_SUFFIXES: [&str; 4] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3"];
        if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) || RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
        {
            return invalid("uses a reserved prefix or suffix");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

/// An object key: 1 to 1024 bytes of UTF-8 without NUL, kept byte-exact
/// (no Unicode normalisation, no path interpretation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(key: &str) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("object key must not be empty".into()));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLong);
        }
        if key.contains('\0') {
            return Err(Error::InvalidArgument("object key must not contain NUL".into()));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version of an object: the `null` version of unversioned writes, or a
/// generated identifier once versioning is enabled on the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VersionId {
    Null,
    Id(String),
}

impl VersionId {
    pub fn parse(s: &str) -> Result<Self> {
        if s == "null" {
            return Ok(Self::Null);
        }
        let ok =
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !ok {
            return Err(Error::InvalidArgument(format!("invalid version id {s:?}")));
        }
        Ok(Self::Id(s.to_owned()))
    }

    /// A fresh, random, URL-safe identifier for a versioned write.
    pub fn generate() -> Self {
        Self::Id(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Null => "null",
            Self::Id(s) => s,
        }
    }
}

/// A multipart upload's identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UploadId(String);

impl UploadId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Upload ids are ours: anything not shaped like one cannot name an upload.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() == 32 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::NoSuchUpload)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One bucket among all those that ever bore its name: drawn at random when
/// the bucket is created, so a bucket deleted and created again (by anyone)
/// is another bucket, and a write begun in the first never lands in the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BucketId(pub u128);

impl BucketId {
    /// The identity of every bucket recorded before buckets had one; a
    /// bucket created since has a random one, so the two never meet.
    pub const LEGACY: Self = Self(0);

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// Reads a bucket identity stored as the *last* field of a record, or
    /// [`Self::LEGACY`] for a record written before the field existed:
    /// postcard then runs out of bytes where it would be (a u128 has no
    /// invalid encoding, so running out is the only way to fail).
    pub fn read_or_legacy<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Self::deserialize(d).unwrap_or(Self::LEGACY))
    }
}

/// Empty bytes for a record written before a trailing byte field existed
/// (postcard runs out of bytes where it would be).
pub fn read_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
    Ok(<Vec<u8> as serde::Deserialize>::deserialize(d).unwrap_or_default())
}

/// For `#[serde(default = ...)]`, beside [`BucketId::read_or_legacy`].
pub fn legacy_bucket_id() -> BucketId {
    BucketId::LEGACY
}

impl fmt::Display for BucketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Where an object's bytes live in a blob store: a random identifier that
/// never derives from a key, so no key can steer a write on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlobId(pub u128);

impl BlobId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// An access key id: the public half of a credential.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccessKeyId(String);

impl AccessKeyId {
    pub fn parse(s: &str) -> Result<Self> {
        let ok = (3..=128).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        if ok { Ok(Self(s.to_owned())) } else { Err(Error::InvalidArgument(format!("invalid access key id {s:?}"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Who an unsigned request is: a name no key can have (`parse` refuses
    /// parentheses), so nothing stored can ever be owned by it by mistake.
    pub fn anonymous() -> Self {
        Self("(anonymous)".to_owned())
    }
}

impl fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who is asking: an access key (or [`AccessKeyId::anonymous`]), whether it
/// is root, and the buckets the S3 front let this request use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub access_key: AccessKeyId,
    pub is_root: bool,
    /// Set by the S3 front once it allowed this request: each bucket as the
    /// front read it to decide, which the operation then uses as it is, so
    /// that a request reads a bucket's record once (see [`crate::service::ObjectService::bucket`]).
    pub granted: Vec<std::sync::Arc<crate::meta::BucketRecord>>,
}

impl Principal {
    pub fn key(access_key: AccessKeyId, is_root: bool) -> Self {
        Self { access_key, is_root, granted: Vec::new() }
    }

    /// Root sees everything; any other key what it owns, and what a
    /// bucket policy granted this request.
    pub fn may_access(&self, bucket: &BucketName, owner: &AccessKeyId) -> bool {
        self.is_root || &self.access_key == owner || self.granted.iter().any(|g| &g.name == bucket)
    }

    /// Whether `who` owns buckets of `owner` (ListBuckets shows only those).
    pub fn owns(&self, owner: &AccessKeyId) -> bool {
        self.is_root || &self.access_key == owner
    }
}

/// Wall-clock time as nanoseconds since the Unix epoch (valid until 2262).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UnixNanos(pub i64);

impl UnixNanos {
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_aws_rules() {
        for ok in ["abc", "my-bucket.01", "a1b", &"a".repeat(63)] {
            assert!(BucketName::parse(ok).is_ok(), "{ok}");
        }
        for bad in
            ["ab", "Abc", "-abc", "abc-", "a..b", "192.168.1.1", "xn--abc", "abc-s3alias", "a_b", &"a".repeat(64)]
        {
            assert!(BucketName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_opaque_but_bounded() {
        assert!(ObjectKey::parse("../../etc/passwd").is_ok());
        assert!(ObjectKey::parse("\u{1}\u{7f}tab\there").is_ok());
        assert!(ObjectKey::parse(&"é".repeat(512)).is_ok());
        assert!(matches!(ObjectKey::parse(&"é".repeat(513)), Err(Error::KeyTooLong)));
        assert!(ObjectKey::parse("").is_err());
        assert!(ObjectKey::parse("a\0b").is_err());
    }

    #[test]
    fn version_ids_round_trip() {
        assert_eq!(VersionId::parse("null").ok(), Some(VersionId::Null));
        let v = VersionId::generate();
        assert_eq!(VersionId::parse(v.as_str()).ok(), Some(v));
        assert!(VersionId::parse("../x").is_err());
    }
}
