//! The record format both engines store: postcard encodings of the core's
//! record types, and the one way their failures become a metadata error.

use coffre_core::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) fn meta_err(e: impl std::fmt::Display) -> Error {
    Error::Meta(e.to_string())
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(meta_err)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(meta_err)
}

#[cfg(test)]
mod tests {
    use coffre_core::meta::BucketRecord;
    use coffre_core::types::{AccessKeyId, BucketId, BucketName};

    use super::*;

    /// A bucket record written before buckets had an identity is the same
    /// bytes without the trailing fields (a zero identity is one varint byte,
    /// no policy one byte, Block Public Access all on five).
    #[test]
    fn records_from_before_the_bucket_identity_read_as_legacy() {
        let name = BucketName::parse("old-bucket").expect("name");
        let mut record = BucketRecord::new(name, AccessKeyId::parse("owner").expect("key"));
        record.id = BucketId::LEGACY;
        let full = encode(&record).expect("encode");
        assert_eq!(&full[full.len() - 7..], [0, 0, 1, 1, 1, 1, 1], "identity, policy, block public access");
        for trailing in [7, 6] {
            let before: BucketRecord = decode(&full[..full.len() - trailing]).expect("an older record decodes");
            assert_eq!(before, record, "written before the last {trailing} bytes' fields existed");
        }

        record.id = BucketId::generate();
        record.policy = Some("{}".into());
        record.public_access = None;
        let read: BucketRecord = decode(&encode(&record).expect("encode")).expect("decode");
        assert_eq!(read, record, "a new record keeps its identity, policy and block");
    }
}
