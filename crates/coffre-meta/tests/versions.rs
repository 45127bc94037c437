//! The version rules of a metadata engine (embedded, or PostgreSQL under
//! `COFFRE_TEST_PG`): what each versioning state keeps,
//! delete markers, the single `null` version, and which blobs it lets go.

use std::sync::Arc;

use coffre_core::Error;
use coffre_core::meta::{
    BucketRecord, BucketRemoval, ContentHeaders, MetaStore, ObjectVersion, PutObject, UploadRecord, VersionChange,
    Versioning, WriteCondition,
};
use coffre_core::types::{AccessKeyId, BlobId, BucketName, ObjectKey, UnixNanos, UploadId, VersionId};

mod common;

struct Fixture {
    meta: Arc<dyn MetaStore>,
    bucket: BucketName,
    key: ObjectKey,
    owner: AccessKeyId,
    _held: common::Held,
    /// Blobs handed out by `collectable` and not forgotten yet.
    claimed: std::sync::Mutex<std::collections::BTreeSet<BlobId>>,
}

async fn fixture(versioning: Versioning) -> Fixture {
    let (meta, held) = common::engine().await;
    let owner = AccessKeyId::parse("owner").expect("id");
    let bucket = BucketName::parse("versions").expect("name");
    let record = BucketRecord {
        versioning,
        id: common::BUCKET_ID,
        keks: vec![common::kek(1)],
        ..BucketRecord::new(bucket.clone(), owner.clone())
    };
    meta.create_bucket(record).await.expect("bucket");
    Fixture { meta, bucket, key: ObjectKey::parse("k").expect("key"), owner, _held: held, claimed: Default::default() }
}

impl Fixture {
    /// A new unfinished upload of the fixture's key, in its first bucket.
    fn upload(&self) -> UploadRecord {
        UploadRecord {
            upload_id: UploadId::generate(),
            bucket: self.bucket.clone(),
            bucket_id: common::BUCKET_ID,
            key: self.key.clone(),
            initiated: UnixNanos::now(),
            owner: self.owner.clone(),
            headers: ContentHeaders::default(),
            user_meta: vec![],
            checksum_algorithm: None,
            checksum_type: Default::default(),
            tags: vec![],
            lock: Default::default(),
            sse: Default::default(),
        }
    }

    fn version(&self, id: VersionId, blob: BlobId) -> ObjectVersion {
        let mut version = common::version(&self.owner, id, 1, common::blob(blob));
        // Conditional writes below name versions by this ETag.
        version.meta.etag = format!("{blob}");
        version
    }

    async fn put(&self, id: VersionId, blob: BlobId, condition: WriteCondition) -> coffre_core::Result<()> {
        self.meta.register_pending(&[blob]).await?;
        let put = PutObject {
            bucket: self.bucket.clone(),
            bucket_id: common::BUCKET_ID,
            key: self.key.clone(),
            version: self.version(id, blob),
            condition,
            pending: vec![blob],
        };
        self.meta.put_object(put).await
    }

    async fn current(&self) -> Option<ObjectVersion> {
        self.meta.object(&self.bucket, &self.key, None).await.expect("read")
    }

    /// Everything queued for collection. A shared engine hides what it has
    /// handed out from the next call (a claim), so the claims add up here.
    async fn garbage(&self) -> Vec<BlobId> {
        let fresh = self.meta.collectable(UnixNanos(i64::MAX), 100).await.expect("gc");
        let mut claimed = self.claimed.lock().expect("lock");
        claimed.extend(fresh);
        claimed.iter().copied().collect()
    }

    async fn forget(&self, blobs: &[BlobId]) {
        self.meta.forget_collected(blobs).await.expect("forget");
        let mut claimed = self.claimed.lock().expect("lock");
        for blob in blobs {
            claimed.remove(blob);
        }
    }
}

#[tokio::test]
async fn unversioned_overwrite_lets_the_old_blob_go() {
    let f = fixture(Versioning::Unversioned).await;
    let (a, b) = (BlobId(1), BlobId(2));
    f.put(VersionId::Null, a, WriteCondition::None).await.expect("put a");
    f.put(VersionId::Null, b, WriteCondition::None).await.expect("put b");
    assert_eq!(f.current().await.map(|v| v.data), Some(common::blob(b)));
    assert_eq!(f.garbage().await, [a]);
    // Committed writes are no longer pending: a restart must not collect them.
    assert_eq!(f.meta.abandon_pending().await.expect("abandon"), 0);

    f.meta.delete_object(&f.bucket, common::BUCKET_ID, &f.key, None, &Default::default()).await.expect("delete");
    assert!(f.current().await.is_none());
    assert_eq!(f.garbage().await, [a, b]);
    f.forget(&[a, b]).await;
    assert!(f.garbage().await.is_empty());
}

#[tokio::test]
async fn conditions_are_checked_in_the_transaction() {
    let f = fixture(Versioning::Unversioned).await;
    f.put(VersionId::Null, BlobId(1), WriteCondition::KeyAbsent).await.expect("first create");
    let again = f.put(VersionId::Null, BlobId(2), WriteCondition::KeyAbsent).await;
    assert!(matches!(again, Err(Error::PreconditionFailed)), "{again:?}");
    let wrong = f.put(VersionId::Null, BlobId(3), WriteCondition::EtagMatches("nope".into())).await;
    assert!(matches!(wrong, Err(Error::PreconditionFailed)), "{wrong:?}");
    let etag = format!("{}", BlobId(1));
    f.put(VersionId::Null, BlobId(4), WriteCondition::EtagMatches(etag)).await.expect("matching etag");
    assert_eq!(f.current().await.map(|v| v.data), Some(common::blob(BlobId(4))));
    // A failed write stays pending until its writer releases it.
    f.meta.release_pending(&[BlobId(2), BlobId(3)]).await.expect("release");
    assert_eq!(f.garbage().await, [BlobId(1), BlobId(2), BlobId(3)]);
}

#[tokio::test]
async fn enabled_versioning_keeps_history_and_uses_delete_markers() {
    let f = fixture(Versioning::Enabled).await;
    let (v1, v2) = (VersionId::generate(), VersionId::generate());
    f.put(v1.clone(), BlobId(1), WriteCondition::None).await.expect("v1");
    f.put(v2.clone(), BlobId(2), WriteCondition::None).await.expect("v2");
    assert!(f.garbage().await.is_empty(), "versioned overwrites keep the old data");
    let old = f.meta.object(&f.bucket, &f.key, Some(&v1)).await.expect("read").expect("v1 kept");
    assert_eq!(old.data, common::blob(BlobId(1)));

    let marker =
        f.meta.delete_object(&f.bucket, common::BUCKET_ID, &f.key, None, &Default::default()).await.expect("delete");
    assert!(marker.delete_marker);
    assert!(f.current().await.is_some_and(|v| v.meta.delete_marker));
    let listed = f.meta.list_objects(&f.bucket, b"", std::ops::Bound::Unbounded, 10).await.expect("list");
    assert!(listed.is_empty(), "a delete marker hides the key from listings");
    assert!(matches!(f.meta.delete_bucket(&f.bucket, &Default::default()).await, Err(Error::BucketNotEmpty)));

    // Removing the marker brings v2 back as current.
    let marker_id = marker.version_id.expect("marker id");
    f.meta
        .delete_object(&f.bucket, common::BUCKET_ID, &f.key, Some(&marker_id), &Default::default())
        .await
        .expect("delete marker");
    assert_eq!(f.current().await.map(|v| v.meta.version_id), Some(v2.clone()));
    // Deleting a noncurrent version frees its data only.
    f.meta
        .delete_object(&f.bucket, common::BUCKET_ID, &f.key, Some(&v1), &Default::default())
        .await
        .expect("delete v1");
    assert_eq!(f.garbage().await, [BlobId(1)]);
    assert!(f.meta.object(&f.bucket, &f.key, Some(&v1)).await.expect("read").is_none());
}

#[tokio::test]
async fn suspended_versioning_keeps_one_null_version() {
    let f = fixture(Versioning::Suspended).await;
    f.put(VersionId::Null, BlobId(1), WriteCondition::None).await.expect("null 1");
    f.put(VersionId::Null, BlobId(2), WriteCondition::None).await.expect("null 2");
    assert_eq!(f.garbage().await, [BlobId(1)], "a null version replaces the previous null version");
    let marker =
        f.meta.delete_object(&f.bucket, common::BUCKET_ID, &f.key, None, &Default::default()).await.expect("delete");
    assert_eq!((marker.delete_marker, marker.version_id), (true, Some(VersionId::Null)));
    assert_eq!(f.garbage().await, [BlobId(1), BlobId(2)], "the null delete marker replaces the null version");
}

#[tokio::test]
async fn keys_under_a_retired_kek_are_refused_at_commit() {
    let f = fixture(Versioning::Enabled).await;
    f.put(VersionId::generate(), BlobId(1), WriteCondition::None).await.expect("generation 1 is current");
    // A rotation adds generation 2 and retires generation 1 while a write
    // sealed under generation 1 is still streaming its body.
    f.meta.update_bucket(&f.bucket, coffre_core::meta::BucketChange::AddKek(common::kek(2))).await.expect("add");
    f.meta.update_bucket(&f.bucket, coffre_core::meta::BucketChange::DropKeksBefore(2)).await.expect("drop");
    let late = f.put(VersionId::generate(), BlobId(2), WriteCondition::None).await;
    assert!(matches!(late, Err(Error::KeyRotated { generation: 1 })), "{late:?}");
    assert_eq!(
        f.current().await.map(|v| v.data),
        Some(common::blob(BlobId(1))),
        "nothing of the late write is visible"
    );
}

#[tokio::test]
async fn writes_begun_in_a_bucket_since_recreated_under_its_name_are_refused_at_commit() {
    let f = fixture(Versioning::Unversioned).await;
    let upload = f.upload();
    // Writes authorised in the first bucket; meanwhile the name gets another
    // bucket, with a KEK of the same generation.
    f.meta.erase_bucket(&f.bucket, Vec::new()).await.expect("erase");
    let other = AccessKeyId::parse("other").expect("id");
    let second = BucketRecord { keks: vec![common::kek(1)], ..BucketRecord::new(f.bucket.clone(), other) };
    assert_ne!(second.id, common::BUCKET_ID);
    f.meta.create_bucket(second.clone()).await.expect("the name taken again");

    let late = f.put(VersionId::Null, BlobId(1), WriteCondition::None).await;
    assert!(matches!(late, Err(Error::NoSuchBucket)), "{late:?}");
    let late = f.meta.create_upload(upload.clone()).await;
    assert!(matches!(late, Err(Error::NoSuchBucket)), "{late:?}");
    assert_eq!(f.current().await, None, "nothing of the late put is visible");
    assert!(f.meta.uploads(&f.bucket, b"", None, 10).await.expect("uploads").is_empty());
    // Writes that began in the second bucket commit.
    f.meta.create_upload(UploadRecord { bucket_id: second.id, ..upload }).await.expect("an upload of the new bucket");
}

#[tokio::test]
async fn deletes_and_version_changes_begun_in_a_bucket_since_recreated_are_refused_at_commit() {
    for versioning in [Versioning::Unversioned, Versioning::Enabled] {
        let f = fixture(Versioning::Unversioned).await;
        // The name gets another owner's bucket, holding one object.
        f.meta.erase_bucket(&f.bucket, Vec::new()).await.expect("erase");
        let other = AccessKeyId::parse("other").expect("id");
        let second =
            BucketRecord { versioning, keks: vec![common::kek(1)], ..BucketRecord::new(f.bucket.clone(), other) };
        f.meta.create_bucket(second.clone()).await.expect("the name taken again");
        let theirs = PutObject {
            bucket: f.bucket.clone(),
            bucket_id: second.id,
            key: f.key.clone(),
            version: f.version(VersionId::generate(), BlobId(9)),
            condition: WriteCondition::None,
            pending: vec![],
        };
        f.meta.put_object(theirs).await.expect("the new owner's object");
        let before = f.current().await;

        let late = f.meta.delete_object(&f.bucket, common::BUCKET_ID, &f.key, None, &Default::default()).await;
        assert!(matches!(late, Err(Error::NoSuchBucket)), "{versioning:?}: {late:?}");
        let tags = VersionChange::Tags(vec![("owned".into(), "by-a-stranger".into())]);
        let late = f.meta.update_version(&f.bucket, common::BUCKET_ID, &f.key, None, tags, false).await;
        assert!(matches!(late, Err(Error::NoSuchBucket)), "{versioning:?}: {late:?}");
        assert_eq!(f.current().await, before, "{versioning:?}: the new owner's object is untouched");
        // Requests that began in the second bucket apply.
        f.meta.delete_object(&f.bucket, second.id, &f.key, None, &Default::default()).await.expect("its own delete");
    }
}

#[tokio::test]
async fn deleting_a_bucket_aborts_the_uploads_recorded_and_only_those() {
    let f = fixture(Versioning::Unversioned).await;
    let first = f.upload();
    f.meta.create_upload(first.clone()).await.expect("upload");
    f.meta.register_pending(&[BlobId(7)]).await.expect("pending");
    f.meta.put_part(&first, part_record(1, BlobId(7))).await.expect("part");
    // An upload the caller did not record (created after it looked) keeps the bucket.
    let late = f.upload();
    f.meta.create_upload(late.clone()).await.expect("late upload");
    let recorded = BucketRemoval { uploads: vec![first.upload_id.clone()] };
    let refused = f.meta.delete_bucket(&f.bucket, &recorded).await;
    assert!(matches!(refused, Err(Error::BucketNotEmpty)), "{refused:?}");
    assert_eq!(f.meta.uploads(&f.bucket, b"", None, 10).await.expect("uploads").len(), 2, "nothing aborted");
    assert!(f.garbage().await.is_empty());

    let both = BucketRemoval { uploads: vec![first.upload_id.clone(), late.upload_id.clone()] };
    f.meta.delete_bucket(&f.bucket, &both).await.expect("only uploads: the bucket goes");
    assert!(f.meta.bucket(&f.bucket).await.expect("read").is_none());
    assert_eq!(f.garbage().await, [BlobId(7)], "the part's blob is collected");
    assert!(f.meta.parts(&first.upload_id, 0, 10).await.expect("parts").is_empty());
    let gone = f.meta.put_part(&first, part_record(2, BlobId(8))).await;
    assert!(matches!(gone, Err(Error::NoSuchUpload)), "{gone:?}");
}

fn part_record(number: u32, blob: BlobId) -> coffre_core::meta::PartRecord {
    coffre_core::meta::PartRecord {
        number,
        blob,
        size: 1,
        md5: [0; 16],
        last_modified: UnixNanos::now(),
        checksums: Default::default(),
        key: common::sealed_key(1),
        sealed_checksums: Vec::new(),
    }
}
