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
    use coffre_core::cors::{CorsConfig, RuleInput};
    use coffre_core::meta::BucketRecord;
    use coffre_core::types::{AccessKeyId, BucketId, BucketName};

    use super::*;

    /// A bucket record written before buckets had an identity is the same
    /// bytes without the trailing fields (a zero identity is one varint byte,
    /// no policy one byte, Block Public Access all on five, no CORS one).
    #[test]
    fn records_from_before_the_bucket_identity_read_as_legacy() {
        let name = BucketName::parse("old-bucket").expect("name");
        let mut record = BucketRecord::new(name, AccessKeyId::parse("owner").expect("key"));
        record.id = BucketId::LEGACY;
        let full = encode(&record).expect("encode");
        assert_eq!(&full[full.len() - 8..], [0, 0, 1, 1, 1, 1, 1, 0], "identity, policy, block public access, CORS");
        for trailing in [8, 7, 6, 1] {
            let before: BucketRecord = decode(&full[..full.len() - trailing]).expect("an older record decodes");
            assert_eq!(before, record, "written before the last {trailing} bytes' fields existed");
        }

        record.id = BucketId::generate();
        record.policy = Some("{}".into());
        record.public_access = None;
        let read: BucketRecord = decode(&encode(&record).expect("encode")).expect("decode");
        assert_eq!(read, record, "a new record keeps its identity, policy and block");
    }

    /// A bucket record written before CORS is the same bytes without the
    /// last field (`None` is one zero byte): it reads with no CORS rules, and
    /// a record with rules keeps them.
    #[test]
    fn records_from_before_cors_read_without_rules() {
        let name = BucketName::parse("old-bucket").expect("name");
        let mut record = BucketRecord::new(name, AccessKeyId::parse("owner").expect("key"));
        let mut legacy = encode(&record).expect("encode");
        assert_eq!(legacy.pop(), Some(0), "no CORS configuration is the last byte");
        let read: BucketRecord = decode(&legacy).expect("a record from before CORS decodes");
        assert_eq!(read, record);

        let rule = RuleInput {
            methods: vec!["PUT".into()],
            origins: vec!["https://app.example.fr".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(600),
            ..Default::default()
        };
        record.cors = Some(CorsConfig::new(vec![rule]).expect("config"));
        let read: BucketRecord = decode(&encode(&record).expect("encode")).expect("decode");
        assert_eq!(read.cors, record.cors, "a record keeps its CORS rules");
    }

    /// An access key stored before keys had a status and an expiry is the
    /// same bytes without the last two fields (`Active` and `None` are a zero
    /// byte each): it reads as active and never expiring, and it still signs.
    #[test]
    fn access_keys_from_before_status_read_as_active_without_expiry() {
        use coffre_core::meta::{AccessKeyRecord, KeyRefusal, KeyStatus, SealedSecret};
        use coffre_core::types::UnixNanos;
        let mut record = AccessKeyRecord {
            id: AccessKeyId::parse("CFOLDKEY000000000000").expect("key"),
            secret: SealedSecret { kek: "kek".into(), wrapped: vec![1, 2, 3] },
            name: "old".into(),
            created: UnixNanos(1),
            status: KeyStatus::Active,
            expires: None,
        };
        let full = encode(&record).expect("encode");
        let legacy: AccessKeyRecord = decode(&full[..full.len() - 2]).expect("an older record decodes");
        assert_eq!(legacy, record);
        assert_eq!(AccessKeyRecord::check(legacy.status, legacy.expires, UnixNanos::now()), Ok(()));

        record.status = KeyStatus::Inactive;
        record.expires = Some(UnixNanos(10));
        let read: AccessKeyRecord = decode(&encode(&record).expect("encode")).expect("decode");
        assert_eq!(read, record, "a new record keeps its status and expiry");
        let at = |status, now| AccessKeyRecord::check(status, read.expires, UnixNanos(now));
        assert_eq!(at(KeyStatus::Inactive, 5), Err(KeyRefusal::Inactive), "inactive before anything else");
        assert_eq!(at(KeyStatus::Active, 9), Ok(()), "usable until its expiry");
        assert_eq!(at(KeyStatus::Active, 10), Err(KeyRefusal::Expired), "refused from its expiry on");
    }

    /// An upload created before checksum types is the same bytes without
    /// the last field (`Composite` is one zero byte): it reads as
    /// `Composite`, all there was then, and a `FullObject` upload keeps it.
    #[test]
    fn uploads_from_before_checksum_types_read_as_composite() {
        use coffre_core::checksum::{ChecksumAlgorithm, ChecksumType};
        use coffre_core::meta::{ContentHeaders, UploadRecord};
        use coffre_core::types::{ObjectKey, UnixNanos, UploadId};

        let mut upload = UploadRecord {
            upload_id: UploadId::generate(),
            bucket: BucketName::parse("old-bucket").expect("name"),
            key: ObjectKey::parse("k").expect("key"),
            initiated: UnixNanos::now(),
            owner: AccessKeyId::parse("owner").expect("key"),
            headers: ContentHeaders::default(),
            user_meta: vec![],
            checksum_algorithm: Some(ChecksumAlgorithm::Crc32),
            tags: vec![],
            lock: Default::default(),
            sse: Default::default(),
            bucket_id: BucketId::generate(),
            checksum_type: ChecksumType::Composite,
        };
        let mut legacy = encode(&upload).expect("encode");
        assert_eq!(legacy.pop(), Some(0), "COMPOSITE is the last byte");
        let read: UploadRecord = decode(&legacy).expect("an upload from before checksum types decodes");
        assert_eq!(read, upload);

        upload.checksum_type = ChecksumType::FullObject;
        let read: UploadRecord = decode(&encode(&upload).expect("encode")).expect("decode");
        assert_eq!(read.checksum_type, ChecksumType::FullObject, "a new upload keeps its type");
    }

    /// A multipart version completed before part checksums were kept is the
    /// same bytes without the trailing list (empty: one zero byte), in the
    /// embedded engine's row (`(seq, version)`, data last) and in
    /// PostgreSQL's data column: it reads with none, and a new one keeps them.
    #[test]
    fn multipart_versions_from_before_part_checksums_read_without_them() {
        use coffre_core::checksum::Checksums;
        use coffre_core::meta::{DataLocation, ObjectVersion, PartRef, SealedKey, VersionMeta};
        use coffre_core::types::{BlobId, UnixNanos, VersionId};

        let key = SealedKey { key_id: [7; 16], kek_generation: 1, wrapped: vec![1, 2], origin: "up".into(), part: 1 };
        let part = PartRef { number: 1, blob: BlobId(9), size: 5, key };
        let mut version = ObjectVersion {
            meta: VersionMeta {
                version_id: VersionId::Null,
                delete_marker: false,
                size: 5,
                etag: "abc-1".into(),
                last_modified: UnixNanos(1),
                owner: AccessKeyId::parse("owner").expect("key"),
                headers: Default::default(),
                user_meta: Vec::new(),
                checksums: Default::default(),
                checksum_composite: false,
                tags: Vec::new(),
                lock: Default::default(),
                sse: Default::default(),
            },
            data: DataLocation::Parts(vec![part.clone()], Vec::new()),
        };
        let mut row = encode(&(3u64, &version)).expect("encode");
        assert_eq!(row.pop(), Some(0), "no part checksums is the last byte");
        let read: (u64, ObjectVersion) = decode(&row).expect("an older row decodes");
        assert_eq!(read, (3, version.clone()));
        let mut column = encode(&version.data).expect("encode");
        assert_eq!(column.pop(), Some(0));
        assert_eq!(decode::<DataLocation>(&column).expect("an older column decodes"), version.data);

        let sums = Checksums { sha256: Some("c2hh".into()), ..Default::default() };
        version.data = DataLocation::Parts(vec![part], vec![sums]);
        let read: (u64, ObjectVersion) = decode(&encode(&(3u64, &version)).expect("encode")).expect("decode");
        assert_eq!(read.1, version, "a new version keeps its parts' checksums");
    }
}
