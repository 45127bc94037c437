//! Data keys for the object service: one made fresh for every blob, wrapped by
//! the bucket's current KEK in the custodian, unwrapped again to read.
//!
//! SSE-C mixes the customer's key into the data key ([`DataKey::with_customer_key`]):
//! reading needs both the custodian and the customer, and Coffre keeps only a
//! salted HMAC of the customer's key, to tell a wrong key from a right one.

use std::sync::Arc;

use coffre_crypto::{DataKey, KekId, Kms, KmsError, SegmentContext};
use zeroize::Zeroizing;

use crate::checksum::{ChecksumAlgorithm, Checksums};
use crate::error::{Error, Result};
use crate::meta::{BucketKek, CustomerKeyCheck, SealedKey, Sse};
use crate::types::{BucketName, ObjectKey};

/// A customer's key, checked at the edge (AES256, 32 bytes, MD5 matching).
#[derive(Clone)]
pub struct CustomerKey {
    key: Zeroizing<[u8; 32]>,
    /// Base64 MD5 of the key, as the client sent it.
    pub md5: String,
}

impl CustomerKey {
    pub fn new(key: [u8; 32], md5: String) -> Self {
        Self { key: Zeroizing::new(key), md5 }
    }

    fn fingerprint(&self, salt: &[u8; 16]) -> [u8; 32] {
        let mac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.key.as_ref());
        let tag = aws_lc_rs::hmac::sign(&mac, &[b"coffre-sse-c-check-v1".as_slice(), salt].concat());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// What is stored to recognise this key later.
    pub fn new_check(&self) -> Result<CustomerKeyCheck> {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| Error::Integrity("the random generator failed".into()))?;
        Ok(CustomerKeyCheck { salt, fingerprint: self.fingerprint(&salt), key_md5: self.md5.clone() })
    }

    fn matches(&self, check: &CustomerKeyCheck) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.fingerprint(&check.salt), &check.fingerprint).is_ok()
    }
}

/// How a new version is to be encrypted, as the request (or the bucket) asks.
#[derive(Clone)]
pub enum SseChoice {
    S3,
    Kms { key_id: Option<String> },
    Customer(CustomerKey),
}

impl SseChoice {
    /// What the version records, and the customer key to mix in, if any.
    pub(crate) fn resolve(self) -> Result<(Sse, Option<CustomerKey>)> {
        Ok(match self {
            Self::S3 => (Sse::S3, None),
            Self::Kms { key_id } => (Sse::Kms { key_id }, None),
            Self::Customer(key) => (Sse::Customer(key.new_check()?), Some(key)),
        })
    }
}

/// Checks the customer key a read brings against how the version was stored.
pub(crate) fn check_customer_key(sse: &Sse, given: Option<&CustomerKey>) -> Result<()> {
    match (sse.customer(), given) {
        (Some(check), Some(key)) if key.matches(check) => Ok(()),
        (Some(_), Some(_)) => Err(Error::CustomerKeyMismatch),
        (Some(_), None) => Err(Error::CustomerKeyRequired),
        (None, Some(_)) => Err(Error::CustomerKeyNotApplicable),
        (None, None) => Ok(()),
    }
}

/// The key that seals an SSE-C version's checksums: derived from its data
/// key (the customer's key mixed in), never the data key itself, whose
/// nonces belong to the segments.
pub(crate) struct ChecksumKey(Zeroizing<[u8; 32]>);

impl ChecksumKey {
    pub(crate) fn of(data_key: &DataKey) -> Self {
        let mac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, data_key.secret());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(aws_lc_rs::hmac::sign(&mac, b"coffre-sse-c-checksums-v1").as_ref());
        Self(key)
    }

    /// The checksums sealed, bound to the version they describe.
    pub(crate) fn seal(&self, checksums: &Checksums, context: &[u8]) -> Result<Vec<u8>> {
        let plain: String =
            checksums.algorithms().map(|a| format!("{a}:{}\n", checksums.get(a).unwrap_or(""))).collect();
        coffre_crypto::wrap::seal(&self.0, plain.as_bytes(), context).map_err(|e| Error::Integrity(e.to_string()))
    }

    pub(crate) fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Checksums> {
        let failed = || Error::Integrity("the sealed checksums failed authentication".into());
        let plain = coffre_crypto::wrap::open(&self.0, sealed, context).map_err(|_| failed())?;
        let mut out = Checksums::default();
        for line in std::str::from_utf8(&plain).map_err(|_| failed())?.lines() {
            let (alg, value) = line.split_once(':').ok_or_else(failed)?;
            out.set(ChecksumAlgorithm::parse(alg).map_err(|_| failed())?, value.to_owned());
        }
        Ok(out)
    }
}

/// What sealed checksums are bound to: the bucket, the object key and the version.
pub(crate) fn checksum_context(bucket: &BucketName, key: &ObjectKey, version: &str) -> Vec<u8> {
    let key = key.as_str().as_bytes();
    [
        b"coffre-checksums-v1:".as_slice(),
        bucket.as_str().as_bytes(),
        b":",
        &(key.len() as u64).to_be_bytes(),
        key,
        version.as_bytes(),
    ]
    .concat()
}

/// A random ETag for an SSE-C version or part: S3 gives no digest of the plaintext for them.
pub(crate) fn random_etag() -> Result<[u8; 16]> {
    let mut etag = [0u8; 16];
    aws_lc_rs::rand::fill(&mut etag).map_err(|_| Error::Integrity("the random generator failed".into()))?;
    Ok(etag)
}

/// The custodian, with what the object service needs of it.
#[derive(Clone)]
pub(crate) struct Keyring {
    kms: Arc<dyn Kms>,
}

/// Authenticated with every wrapped data key: the bucket it belongs to and
/// the key's own id, so a wrapped key moved to another record does not open.
fn wrap_context(bucket: &BucketName, key_id: &[u8; 16]) -> Vec<u8> {
    [b"coffre-dek-v1:".as_slice(), bucket.as_str().as_bytes(), b":", key_id].concat()
}

pub(crate) fn kms_error(e: KmsError) -> Error {
    match e {
        KmsError::Unavailable(why) => Error::KmsUnavailable(why),
        KmsError::NoSuchKey(id) => Error::KeyMissing(format!("key {id} is not in the key custodian")),
        KmsError::Integrity => Error::Integrity("a wrapped data key failed authentication".into()),
        KmsError::Other(why) => Error::KmsUnavailable(why),
    }
}

/// The segments' binding for a blob stored under `sealed`.
pub(crate) fn segment_context(bucket: &BucketName, key: &ObjectKey, sealed: &SealedKey) -> SegmentContext {
    SegmentContext::new(bucket.as_str(), key.as_str(), &sealed.origin, sealed.part)
}

impl Keyring {
    pub(crate) fn new(kms: Arc<dyn Kms>) -> Self {
        Self { kms }
    }

    pub(crate) fn kms(&self) -> &Arc<dyn Kms> {
        &self.kms
    }

    /// A fresh data key for one blob and its wrapped form, under `kek`.
    pub(crate) async fn new_data_key(
        &self,
        bucket: &BucketName,
        kek: &BucketKek,
        origin: &str,
        part: u32,
        customer: Option<&CustomerKey>,
    ) -> Result<(DataKey, SealedKey)> {
        let key = DataKey::generate().map_err(|e| Error::Integrity(e.to_string()))?;
        let wrapped = self
            .kms
            .wrap(&KekId(kek.id.clone()), key.secret(), &wrap_context(bucket, &key.id))
            .await
            .map_err(kms_error)?;
        let sealed =
            SealedKey { key_id: key.id, kek_generation: kek.generation, wrapped, origin: origin.to_owned(), part };
        Ok((mix(key, customer), sealed))
    }

    /// Unwraps a blob's data key with the bucket KEK that wrapped it.
    pub(crate) async fn open_data_key(
        &self,
        bucket: &BucketName,
        keks: &[BucketKek],
        sealed: &SealedKey,
        customer: Option<&CustomerKey>,
    ) -> Result<DataKey> {
        let secret = self.unwrap(bucket, keks, sealed).await?;
        let key = DataKey::from_parts(&secret, sealed.key_id).map_err(|e| Error::Integrity(e.to_string()))?;
        Ok(mix(key, customer))
    }

    async fn unwrap(&self, bucket: &BucketName, keks: &[BucketKek], sealed: &SealedKey) -> Result<Zeroizing<Vec<u8>>> {
        let kek = keks.iter().find(|k| k.generation == sealed.kek_generation).ok_or_else(|| {
            Error::KeyDestroyed(format!("the bucket has no key of generation {}", sealed.kek_generation))
        })?;
        self.kms
            .unwrap(&KekId(kek.id.clone()), &sealed.wrapped, &wrap_context(bucket, &sealed.key_id))
            .await
            .map_err(kms_error)
    }

    /// The same data key wrapped by `to` instead (key rotation): the data is not touched.
    pub(crate) async fn rewrap(
        &self,
        bucket: &BucketName,
        keks: &[BucketKek],
        sealed: &SealedKey,
        to: &BucketKek,
    ) -> Result<SealedKey> {
        let secret = self.unwrap(bucket, keks, sealed).await?;
        let wrapped = self
            .kms
            .wrap(&KekId(to.id.clone()), &secret, &wrap_context(bucket, &sealed.key_id))
            .await
            .map_err(kms_error)?;
        Ok(SealedKey { wrapped, kek_generation: to.generation, ..sealed.clone() })
    }
}

fn mix(key: DataKey, customer: Option<&CustomerKey>) -> DataKey {
    match customer {
        Some(c) => key.with_customer_key(&c.key),
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_checksums_open_only_under_their_key_and_version() {
        let data_key = DataKey::generate().expect("key").with_customer_key(&[5u8; 32]);
        let mut sums = Checksums::default();
        sums.set(ChecksumAlgorithm::Sha256, "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into());
        sums.set(ChecksumAlgorithm::Crc32, "AAAAAA==".into());
        let key = ChecksumKey::of(&data_key);
        let sealed = key.seal(&sums, b"v1").expect("seal");
        assert!(!sealed.windows(8).any(|w| w == b"n4bQgYhM"), "sealed, not copied");
        assert_eq!(key.open(&sealed, b"v1").expect("open"), sums);
        assert!(key.open(&sealed, b"v2").is_err(), "bound to its version");
        let other = ChecksumKey::of(&DataKey::generate().expect("key"));
        assert!(other.open(&sealed, b"v1").is_err(), "another object's key opens nothing");
    }

    #[test]
    fn customer_keys_are_recognised_without_being_stored() {
        let key = CustomerKey::new([3u8; 32], "md5".into());
        let check = key.new_check().expect("check");
        assert!(!check.fingerprint.windows(32).any(|w| w == [3u8; 32]));
        let sse = Sse::Customer(check);
        assert!(check_customer_key(&sse, Some(&key)).is_ok());
        let other = CustomerKey::new([4u8; 32], "md5".into());
        assert!(matches!(check_customer_key(&sse, Some(&other)), Err(Error::CustomerKeyMismatch)));
        assert!(matches!(check_customer_key(&sse, None), Err(Error::CustomerKeyRequired)));
        assert!(matches!(check_customer_key(&Sse::S3, Some(&key)), Err(Error::CustomerKeyNotApplicable)));
        assert!(check_customer_key(&Sse::S3, None).is_ok());
    }
}
