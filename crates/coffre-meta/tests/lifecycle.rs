//! Lifecycle rules through the object service, a metadata engine (embedded,
//! or PostgreSQL under `COFFRE_TEST_PG`) and the disk blob store, with the
//! clock injected: exactly the objects due go, each recorded before it goes,
//! and none when it cannot be recorded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use coffre_blob::DiskBlobStore;
use coffre_core::lifecycle::{Expiration, Filter, LifecycleConfig, Rule};
use coffre_core::lock::{LockState, Retention, RetentionMode};
use coffre_core::meta::{BucketChange, ContentHeaders, Versioning, WriteCondition};
use coffre_core::service::{BodyClaims, NewUpload, ObjectService, PutRequest, ServiceConfig};
use coffre_core::types::{AccessKeyId, BucketName, ObjectKey, Principal, UnixNanos, VersionId};
use coffre_core::witness::{Actor, Change, ChangeWitness};

mod common;

const DAY: i64 = 86_400 * 1_000_000_000;

/// The changes the service announced, in order; refuses them when told to
/// (as the audit log does when its disk cannot be written).
#[derive(Default)]
struct Changes {
    seen: Mutex<Vec<Change>>,
    refuse: AtomicBool,
}

#[async_trait::async_trait]
impl ChangeWitness for Changes {
    async fn witness(&self, change: Change) -> coffre_core::Result<()> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(coffre_core::Error::AuditUnavailable("the test refuses".into()));
        }
        self.seen.lock().expect("lock").push(change);
        Ok(())
    }
}

impl Changes {
    /// The keys of the changes named `operation`, with the actor each had.
    fn of(&self, operation: &str) -> Vec<(String, Actor)> {
        let seen = self.seen.lock().expect("lock");
        seen.iter()
            .filter(|c| c.operation == operation)
            .map(|c| (c.key.clone().unwrap_or_default(), c.actor.clone()))
            .collect()
    }
}

struct World {
    service: ObjectService,
    changes: Arc<Changes>,
    root: Principal,
    _dir: tempfile::TempDir,
    _held: common::Held,
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tmp");
    let (meta, held) = common::engine().await;
    let blobs = Arc::new(DiskBlobStore::open(dir.path().join("blobs")).expect("blobs"));
    let kms = coffre_kms::embedded::EmbeddedKms::open(&dir.path().join("kms"), None).expect("kms");
    let changes = Arc::new(Changes::default());
    let service = ObjectService::new(meta, blobs, kms, ServiceConfig::default(), changes.clone());
    let root = Principal::key(AccessKeyId::parse("root").expect("id"), true);
    World { service, changes, root, _dir: dir, _held: held }
}

impl World {
    async fn put(&self, bucket: &BucketName, key: &str, tags: &[(&str, &str)], lock: Option<LockState>) {
        let req = PutRequest {
            bucket: bucket.clone(),
            key: ObjectKey::parse(key).expect("key"),
            headers: ContentHeaders::default(),
            user_meta: vec![],
            condition: WriteCondition::None,
            claims: BodyClaims::default(),
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            lock,
            sse: None,
        };
        let body = Box::pin(futures::stream::once(async { Ok(Bytes::from_static(b"data")) }));
        self.service.put_object(&self.root, req, body).await.expect("put");
    }

    async fn keys(&self, bucket: &BucketName) -> Vec<String> {
        let q = coffre_core::list::ListQuery { max_keys: 1000, ..Default::default() };
        let page = self.service.list_objects(&self.root, bucket, &q).await.expect("list");
        page.objects.iter().map(|o| o.key.to_string()).collect()
    }

    async fn versions(&self, bucket: &BucketName) -> usize {
        let q = coffre_core::list::VersionQuery { max_keys: 1000, ..Default::default() };
        self.service.list_versions(&self.root, bucket, &q).await.expect("versions").versions.len()
    }
}

fn rule(id: &str, prefix: &str) -> Rule {
    Rule {
        id: id.into(),
        enabled: true,
        filter: Filter { prefix: prefix.into(), tags: vec![] },
        expiration: None,
        expired_object_delete_marker: false,
        noncurrent_days: None,
        abort_incomplete_days: None,
    }
}

#[tokio::test]
async fn expiration_by_days_prefix_and_tags() {
    let w = world().await;
    let b = BucketName::parse("life").expect("name");
    w.service.create_bucket(&w.root, b.clone(), false).await.expect("bucket");
    w.put(&b, "logs/a", &[], None).await;
    w.put(&b, "logs/b", &[("keep", "yes")], None).await;
    w.put(&b, "docs/c", &[], None).await;
    w.put(&b, "tmp/d", &[("class", "scratch")], None).await;
    w.put(&b, "tmp/e", &[], None).await;
    let mut logs = rule("logs", "logs/");
    logs.expiration = Some(Expiration::Days(1));
    let mut scratch = rule("scratch", "tmp/");
    scratch.filter.tags = vec![("class".into(), "scratch".into())];
    scratch.expiration = Some(Expiration::Days(1));
    let mut disabled = rule("off", "docs/");
    disabled.enabled = false;
    disabled.expiration = Some(Expiration::Days(1));
    let config = LifecycleConfig { rules: vec![logs, scratch, disabled] };
    w.service.change_bucket(&w.root, &b, BucketChange::Lifecycle(Some(config))).await.expect("lifecycle");

    let now = UnixNanos::now();
    let report = w.service.apply_lifecycle(now).await.expect("pass");
    assert_eq!(report.expired, 0, "nothing is a day old yet");
    let report = w.service.apply_lifecycle(UnixNanos(now.0 + 2 * DAY)).await.expect("pass");
    assert_eq!(report.expired, 3);
    assert_eq!(
        w.keys(&b).await,
        ["docs/c", "tmp/e"],
        "logs/* and the tagged tmp/d expired; tags filter, disabled rules idle"
    );
    let job = |rule: &str| Actor::Job { name: "lifecycle", on: format!("rule={rule}") };
    let expired = w.changes.of("lifecycle:Expire");
    assert_eq!(
        expired,
        [("logs/a".into(), job("logs")), ("logs/b".into(), job("logs")), ("tmp/d".into(), job("scratch"))]
    );
}

#[tokio::test]
async fn a_removal_that_cannot_be_recorded_is_not_made() {
    let w = world().await;
    let b = BucketName::parse("life-jammed").expect("name");
    w.service.create_bucket(&w.root, b.clone(), false).await.expect("bucket");
    w.put(&b, "logs/a", &[], None).await;
    let mut logs = rule("logs", "logs/");
    logs.expiration = Some(Expiration::Days(1));
    let config = LifecycleConfig { rules: vec![logs] };
    w.service.change_bucket(&w.root, &b, BucketChange::Lifecycle(Some(config))).await.expect("lifecycle");

    w.changes.refuse.store(true, Ordering::SeqCst);
    let later = UnixNanos(UnixNanos::now().0 + 2 * DAY);
    let refused = w.service.apply_lifecycle(later).await;
    assert!(matches!(refused, Err(coffre_core::Error::AuditUnavailable(_))), "{refused:?}");
    assert_eq!(w.keys(&b).await, ["logs/a"], "nothing removed unrecorded");
    let key = ObjectKey::parse("logs/a").expect("key");
    let deleted = w.service.delete_object(&w.root, &b, &key, None, &Default::default()).await;
    assert!(matches!(deleted, Err(coffre_core::Error::AuditUnavailable(_))), "{deleted:?}");
    assert_eq!(w.keys(&b).await, ["logs/a"], "nor deleted by a client");

    w.changes.refuse.store(false, Ordering::SeqCst);
    assert_eq!(w.service.apply_lifecycle(later).await.expect("pass").expired, 1);
    assert!(w.keys(&b).await.is_empty());
}

#[tokio::test]
async fn versions_markers_uploads_and_locks() {
    let w = world().await;
    let b = BucketName::parse("life-versioned").expect("name");
    w.service.create_bucket(&w.root, b.clone(), true).await.expect("bucket with object lock");
    assert_eq!(w.service.bucket(&w.root, &b).await.expect("bucket").versioning, Versioning::Enabled);
    w.put(&b, "k", &[], None).await;
    w.put(&b, "k", &[], None).await;
    let locked = LockState {
        retention: Some(Retention { mode: RetentionMode::Compliance, until: UnixNanos(UnixNanos::now().0 + 30 * DAY) }),
        legal_hold: false,
    };
    w.put(&b, "vault", &[], Some(locked)).await;
    w.put(&b, "vault", &[], None).await;
    let upload = NewUpload {
        bucket: b.clone(),
        key: ObjectKey::parse("big").expect("key"),
        headers: ContentHeaders::default(),
        user_meta: vec![],
        checksum_algorithm: None,
        checksum_type: None,
        tags: vec![],
        lock: None,
        sse: None,
    };
    w.service.create_upload(&w.root, upload).await.expect("upload");

    let mut all = rule("all", "");
    all.expiration = Some(Expiration::Days(10));
    all.noncurrent_days = Some(1);
    all.expired_object_delete_marker = true;
    all.abort_incomplete_days = Some(3);
    w.service
        .change_bucket(&w.root, &b, BucketChange::Lifecycle(Some(LifecycleConfig { rules: vec![all] })))
        .await
        .expect("rules");
    assert_eq!(w.versions(&b).await, 4);

    let now = UnixNanos::now().0;
    // Day 2: noncurrent versions go, except the one Object Lock keeps.
    let r = w.service.apply_lifecycle(UnixNanos(now + 2 * DAY)).await.expect("pass");
    assert_eq!((r.noncurrent_removed, r.kept_by_lock, r.uploads_aborted), (1, 1, 0));
    // The locked version was skipped before any event was written for it.
    let removed: Vec<String> = w.changes.of("lifecycle:ExpireNoncurrent").into_iter().map(|(k, _)| k).collect();
    assert_eq!(removed, ["k"]);
    // Day 4: the incomplete upload is aborted.
    let r = w.service.apply_lifecycle(UnixNanos(now + 4 * DAY)).await.expect("pass");
    assert_eq!(r.uploads_aborted, 1);
    assert_eq!(w.changes.of("lifecycle:AbortUpload").len(), 1);
    // Day 11: current versions expire behind delete markers; the locked one stays readable by id.
    let r = w.service.apply_lifecycle(UnixNanos(now + 11 * DAY)).await.expect("pass");
    assert_eq!(r.expired, 2);
    assert!(w.keys(&b).await.is_empty());
    // Day 13: the versions now behind markers are noncurrent and go, but the locked one.
    let r = w.service.apply_lifecycle(UnixNanos(now + 13 * DAY)).await.expect("pass");
    assert_eq!((r.noncurrent_removed, r.kept_by_lock), (2, 1));
    // Day 14: the marker of "k" stands alone and goes; the one of "vault" still hides the locked version.
    let r = w.service.apply_lifecycle(UnixNanos(now + 14 * DAY)).await.expect("pass");
    assert_eq!(r.markers_removed, 1);
    assert_eq!(w.changes.of("lifecycle:RemoveDeleteMarker").len(), 1);
    assert_eq!(w.versions(&b).await, 2, "vault's marker and its locked version");
    let key = ObjectKey::parse("vault").expect("key");
    let versions = w
        .service
        .list_versions(&w.root, &b, &coffre_core::list::VersionQuery { max_keys: 100, ..Default::default() })
        .await
        .expect("v");
    let vault_data: Vec<&VersionId> = versions
        .versions
        .iter()
        .filter(|v| v.key == key && !v.meta.delete_marker)
        .map(|v| &v.meta.version_id)
        .collect();
    assert_eq!(vault_data.len(), 1, "the COMPLIANCE version survived every pass");
}
