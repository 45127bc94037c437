//! Object Lock (WORM), legal holds and tags with the AWS SDK: a COMPLIANCE
//! version survives every way to remove it; GOVERNANCE yields only to bypass.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, Tag, Tagging, VersioningConfiguration,
};
use coffre_e2e::{Server, error_code};

fn in_days(days: u64) -> DateTime {
    DateTime::from(SystemTime::now() + Duration::from_secs(days * 86_400))
}

async fn put_locked(c: &Client, key: &str, mode: ObjectLockMode, days: u64) -> String {
    let out = c
        .put_object()
        .bucket("vault")
        .key(key)
        .body(ByteStream::from_static(b"archive"))
        .object_lock_mode(mode)
        .object_lock_retain_until_date(in_days(days))
        .send()
        .await
        .expect("locked put");
    out.version_id.expect("version id")
}

#[tokio::test]
async fn compliance_versions_survive_every_removal() {
    let server = Server::start();
    // Root credentials: even root cannot remove a COMPLIANCE version early.
    let c = server.client();
    c.create_bucket().bucket("vault").object_lock_enabled_for_bucket(true).send().await.expect("create");
    let versioning = c.get_bucket_versioning().bucket("vault").send().await.expect("versioning");
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled), "Object Lock turns versioning on");
    let suspend = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    let r = c.put_bucket_versioning().bucket("vault").versioning_configuration(suspend).send().await;
    assert_eq!(error_code(r).0, "InvalidBucketState");

    let v = put_locked(&c, "record", ObjectLockMode::Compliance, 30).await;
    let head = c.head_object().bucket("vault").key("record").send().await.expect("head");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));

    let by_version = c.delete_object().bucket("vault").key("record").version_id(&v).send().await;
    assert_eq!(error_code(by_version).0, "AccessDenied");
    let bypass =
        c.delete_object().bucket("vault").key("record").version_id(&v).bypass_governance_retention(true).send().await;
    assert_eq!(error_code(bypass).0, "AccessDenied", "bypass does not apply to COMPLIANCE, root included");
    let batch = c
        .delete_objects()
        .bucket("vault")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("record").version_id(&v).build().expect("id"))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("batch answers per key");
    assert_eq!(batch.errors().first().and_then(|e| e.code()), Some("AccessDenied"));
    let shorter =
        ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Compliance).retain_until_date(in_days(1)).build();
    let r = c
        .put_object_retention()
        .bucket("vault")
        .key("record")
        .version_id(&v)
        .retention(shorter)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert_eq!(error_code(r).0, "AccessDenied", "COMPLIANCE cannot be shortened");
    let longer =
        ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Compliance).retain_until_date(in_days(60)).build();
    c.put_object_retention()
        .bucket("vault")
        .key("record")
        .version_id(&v)
        .retention(longer)
        .send()
        .await
        .expect("extend");
    assert_eq!(error_code(c.delete_bucket().bucket("vault").send().await).0, "BucketNotEmpty");

    // A DELETE without version only hides it behind a marker; the data stays.
    let marker = c.delete_object().bucket("vault").key("record").send().await.expect("marker");
    assert_eq!(marker.delete_marker(), Some(true));
    let got = c.get_object().bucket("vault").key("record").version_id(&v).send().await.expect("still there");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"archive");
    let retention =
        c.get_object_retention().bucket("vault").key("record").version_id(&v).send().await.expect("retention");
    assert_eq!(retention.retention().and_then(|r| r.mode()), Some(&ObjectLockRetentionMode::Compliance));
}

#[tokio::test]
async fn governance_default_retention_and_legal_hold() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("vault").object_lock_enabled_for_bucket(true).send().await.expect("create");
    let r = c.get_object_lock_configuration().bucket("vault").send().await.expect("config");
    assert!(r.object_lock_configuration().and_then(|c| c.rule()).is_none());
    let config = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(2).build(),
                )
                .build(),
        )
        .build();
    c.put_object_lock_configuration().bucket("vault").object_lock_configuration(config).send().await.expect("default");

    // A plain PUT inherits the default GOVERNANCE retention.
    let out = c.put_object().bucket("vault").key("doc").body(ByteStream::from_static(b"x")).send().await.expect("put");
    let v = out.version_id.expect("version");
    let ret = c.get_object_retention().bucket("vault").key("doc").version_id(&v).send().await.expect("retention");
    assert_eq!(ret.retention().and_then(|r| r.mode()), Some(&ObjectLockRetentionMode::Governance));
    assert_eq!(error_code(c.delete_object().bucket("vault").key("doc").version_id(&v).send().await).0, "AccessDenied");

    // A legal hold blocks even a governance bypass, until it is lifted.
    let on = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build();
    c.put_object_legal_hold().bucket("vault").key("doc").version_id(&v).legal_hold(on).send().await.expect("hold");
    let r = c.delete_object().bucket("vault").key("doc").version_id(&v).bypass_governance_retention(true).send().await;
    assert_eq!(error_code(r).0, "AccessDenied");
    let off = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::Off).build();
    c.put_object_legal_hold().bucket("vault").key("doc").version_id(&v).legal_hold(off).send().await.expect("lift");
    c.delete_object()
        .bucket("vault")
        .key("doc")
        .version_id(&v)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("bypass");

    // Object Lock needs a bucket created with it.
    c.create_bucket().bucket("plain").send().await.expect("create plain");
    assert_eq!(
        error_code(c.get_object_lock_configuration().bucket("plain").send().await).0,
        "ObjectLockConfigurationNotFoundError"
    );
    let r = c
        .put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_days(1))
        .send()
        .await;
    assert_eq!(error_code(r).0, "InvalidRequest");
    let r = c
        .put_object()
        .bucket("vault")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(1_000))
        .send()
        .await;
    assert_eq!(error_code(r).0, "InvalidArgument", "a retain-until date in the past");
}

#[tokio::test]
async fn object_and_bucket_tags() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("tags").send().await.expect("create");
    c.put_object()
        .bucket("tags")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .tagging("project=coffre&class=C2%20restricted")
        .send()
        .await
        .expect("put");
    let got = c.get_object_tagging().bucket("tags").key("k").send().await.expect("tags");
    let tags: Vec<_> = got.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, [("project", "coffre"), ("class", "C2 restricted")]);
    let head = c.get_object().bucket("tags").key("k").send().await.expect("get");
    assert_eq!(head.tag_count(), Some(2));

    let set = |pairs: &[(&str, &str)]| {
        Tagging::builder()
            .set_tag_set(Some(
                pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag")).collect(),
            ))
            .build()
            .expect("tagging")
    };
    c.put_object_tagging().bucket("tags").key("k").tagging(set(&[("a", "1")])).send().await.expect("replace");
    assert_eq!(c.get_object_tagging().bucket("tags").key("k").send().await.expect("tags").tag_set().len(), 1);
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let eleven: Vec<(&str, &str)> = eleven.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // AWS answers too many tags with the generic BadRequest, and a reserved prefix with InvalidTag.
    assert_eq!(
        error_code(c.put_object_tagging().bucket("tags").key("k").tagging(set(&eleven)).send().await).0,
        "BadRequest"
    );
    let reserved = set(&[("aws:created", "1")]);
    assert_eq!(
        error_code(c.put_object_tagging().bucket("tags").key("k").tagging(reserved).send().await).0,
        "InvalidTag"
    );
    c.delete_object_tagging().bucket("tags").key("k").send().await.expect("delete tags");
    assert!(c.get_object_tagging().bucket("tags").key("k").send().await.expect("tags").tag_set().is_empty());

    // Copy keeps the source's tags unless told to replace them.
    c.put_object_tagging().bucket("tags").key("k").tagging(set(&[("keep", "me")])).send().await.expect("tag");
    c.copy_object().bucket("tags").key("copy").copy_source("tags/k").send().await.expect("copy");
    let copied = c.get_object_tagging().bucket("tags").key("copy").send().await.expect("tags");
    assert_eq!(copied.tag_set().first().map(|t| t.key()), Some("keep"));

    assert_eq!(error_code(c.get_bucket_tagging().bucket("tags").send().await).0, "NoSuchTagSet");
    c.put_bucket_tagging().bucket("tags").tagging(set(&[("owner", "dinum")])).send().await.expect("bucket tags");
    let bt = c.get_bucket_tagging().bucket("tags").send().await.expect("bucket tags");
    assert_eq!(bt.tag_set().first().map(|t| (t.key(), t.value())), Some(("owner", "dinum")));
    c.delete_bucket_tagging().bucket("tags").send().await.expect("delete bucket tags");
    assert_eq!(error_code(c.get_bucket_tagging().bucket("tags").send().await).0, "NoSuchTagSet");
}
