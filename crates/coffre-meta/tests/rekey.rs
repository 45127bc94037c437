//! Walking a bucket's data keys for rotation: every key found exactly once
//! across current versions, noncurrent versions and parts, batch by batch.

use std::collections::HashSet;

use coffre_core::meta::{
    BucketRecord, ContentHeaders, KeySlot, PartRecord, PutObject, UploadRecord, Versioning, WriteCondition,
};
use coffre_core::types::{AccessKeyId, BlobId, BucketName, ObjectKey, UnixNanos, UploadId, VersionId};

mod common;

#[tokio::test]
async fn a_cursor_walk_finds_every_old_key_once() {
    let (meta, _held) = common::engine().await;
    let owner = AccessKeyId::parse("owner").expect("id");
    let bucket = BucketName::parse("rekey").expect("name");
    let record = BucketRecord {
        versioning: Versioning::Enabled,
        id: common::BUCKET_ID,
        keks: vec![common::kek(1)],
        ..BucketRecord::new(bucket.clone(), owner.clone())
    };
    meta.create_bucket(record).await.expect("bucket");
    let mut n = 0u32;
    // 600 keys, the first 300 written twice: 600 current, 300 noncurrent versions.
    for round in 0..2 {
        for k in 0..600 {
            if round == 1 && k >= 300 {
                break;
            }
            n += 1;
            let put = PutObject {
                bucket: bucket.clone(),
                bucket_id: common::BUCKET_ID,
                key: ObjectKey::parse(&format!("k{k:04}")).expect("key"),
                version: common::version(&owner, VersionId::generate(), 1, common::blob(BlobId(u128::from(n)))),
                condition: WriteCondition::None,
                pending: vec![],
            };
            meta.put_object(put).await.expect("put");
        }
    }
    let upload = UploadRecord {
        upload_id: UploadId::generate(),
        bucket: bucket.clone(),
        bucket_id: common::BUCKET_ID,
        key: ObjectKey::parse("big").expect("key"),
        initiated: UnixNanos::now(),
        owner: owner.clone(),
        headers: ContentHeaders::default(),
        user_meta: vec![],
        checksum_algorithm: None,
        checksum_type: Default::default(),
        tags: vec![],
        lock: Default::default(),
        sse: Default::default(),
    };
    meta.create_upload(upload.clone()).await.expect("upload");
    for number in 1..=3 {
        n += 1;
        let part = PartRecord {
            number,
            blob: BlobId(u128::from(n)),
            size: 1,
            md5: [0; 16],
            last_modified: UnixNanos::now(),
            checksums: Default::default(),
            key: common::sealed_key(n),
            sealed_checksums: Vec::new(),
        };
        // As the object service does: the blob is pending until its part commits.
        meta.register_pending(&[part.blob]).await.expect("pending");
        meta.put_part(&upload, part).await.expect("part");
    }

    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut batches = 0;
    loop {
        let (batch, next) = meta.sealed_keys(&bucket, 2, cursor, 256).await.expect("scan");
        batches += 1;
        for slot in &batch {
            assert!(seen.insert(slot.key.key_id), "key {:?} found twice", slot.key.key_id);
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 903, "600 current + 300 noncurrent + 3 parts");
    assert!(batches >= 4, "the walk went in batches ({batches})");

    // Rewrapped keys are no longer old: a fresh walk finds none.
    meta.update_bucket(&bucket, coffre_core::meta::BucketChange::AddKek(common::kek(2))).await.expect("add");
    let mut cursor = None;
    loop {
        let (batch, next) = meta.sealed_keys(&bucket, 2, cursor, 500).await.expect("scan");
        let renewed: Vec<KeySlot> = batch
            .into_iter()
            .map(|mut s| {
                s.key.kek_generation = 2;
                s
            })
            .collect();
        let count = renewed.len();
        assert_eq!(meta.replace_sealed_keys(&bucket, renewed).await.expect("replace"), count);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let (left, next) = meta.sealed_keys(&bucket, 2, None, 10_000).await.expect("scan");
    assert!(left.is_empty() && next.is_none(), "{} old keys left", left.len());
}
