//! Bucket versioning with the AWS SDK: version ids, delete markers, the null
//! version, suspension, ListObjectVersions pagination, batch deletes by version.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::types::{BucketVersioningStatus, CompletedMultipartUpload, Delete, ObjectIdentifier};
use coffre_e2e::Server;
use coffre_e2e::objects::{pattern, put, set_versioning, upload_part, version_pages};

async fn get(c: &Client, key: &str, version: Option<&str>) -> Result<String, (u16, Option<String>, Option<String>)> {
    match c.get_object().bucket("vers").key(key).set_version_id(version.map(str::to_owned)).send().await {
        Ok(out) => Ok(String::from_utf8(out.body.collect().await.expect("body").into_bytes().to_vec()).expect("utf-8")),
        Err(e) => {
            let raw = e.raw_response();
            let status = raw.map_or(0, |r| r.status().as_u16());
            let marker = raw.and_then(|r| r.headers().get("x-amz-delete-marker")).map(str::to_owned);
            Err((status, marker, e.code().map(str::to_owned)))
        }
    }
}

/// All (key, version id, is delete marker, is latest) of the bucket, walked in pages of `page`.
async fn all_versions(c: &Client, page: i32) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    for resp in version_pages(c, "vers", page).await {
        let mut entries: Vec<(String, String, bool, bool, aws_sdk_s3::primitives::DateTime)> = Vec::new();
        for v in resp.versions() {
            entries.push((
                v.key().expect("key").into(),
                v.version_id().expect("id").into(),
                false,
                v.is_latest() == Some(true),
                *v.last_modified().expect("time"),
            ));
        }
        for m in resp.delete_markers() {
            entries.push((
                m.key().expect("key").into(),
                m.version_id().expect("id").into(),
                true,
                m.is_latest() == Some(true),
                *m.last_modified().expect("time"),
            ));
        }
        assert!(entries.len() <= page as usize);
        // Versions and markers come in two lists; S3's order is key, then newest first.
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.3.cmp(&a.3)).then(b.4.cmp(&a.4)));
        out.extend(entries.into_iter().map(|(k, v, m, l, _)| (k, v, m, l)));
    }
    out
}

#[tokio::test]
async fn versions_markers_and_the_null_version() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("vers").send().await.expect("create");
    let status = c.get_bucket_versioning().bucket("vers").send().await.expect("get versioning");
    assert!(status.status().is_none(), "never versioned: empty configuration");
    assert_eq!(put(&c, "vers", "k", "v0").await.version_id, None, "no version id before versioning");

    set_versioning(&c, "vers", BucketVersioningStatus::Enabled).await;
    let status = c.get_bucket_versioning().bucket("vers").send().await.expect("get versioning");
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Enabled));
    let v1 = put(&c, "vers", "k", "v1").await.version_id.expect("version id");
    let v2 = put(&c, "vers", "k", "v2").await.version_id.expect("version id");
    assert_ne!(v1, v2);
    assert_eq!(get(&c, "k", None).await, Ok("v2".into()));
    assert_eq!(get(&c, "k", Some(&v1)).await, Ok("v1".into()));
    assert_eq!(get(&c, "k", Some("null")).await, Ok("v0".into()), "the pre-versioning object is the null version");
    let head = c.head_object().bucket("vers").key("k").version_id(&v1).send().await.expect("head v1");
    assert_eq!(head.version_id(), Some(v1.as_str()));

    // DELETE without a version id: a delete marker hides the key.
    let del = c.delete_object().bucket("vers").key("k").send().await.expect("delete");
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().expect("marker id").to_owned();
    assert_eq!(get(&c, "k", None).await, Err((404, Some("true".into()), Some("NoSuchKey".into()))));
    assert_eq!(get(&c, "k", Some(&marker)).await.map_err(|e| (e.0, e.1)), Err((405, Some("true".into()))));
    assert_eq!(get(&c, "k", Some(&v2)).await, Ok("v2".into()), "older versions stay readable");
    let listed = c.list_objects_v2().bucket("vers").send().await.expect("list");
    assert!(listed.contents().is_empty(), "a deleted key is not listed");
    let versions = all_versions(&c, 1000).await;
    let expected: Vec<(String, String, bool, bool)> = vec![
        ("k".into(), marker.clone(), true, true),
        ("k".into(), v2.clone(), false, false),
        ("k".into(), v1.clone(), false, false),
        ("k".into(), "null".into(), false, false),
    ];
    assert_eq!(versions, expected);
    let err = c.delete_bucket().bucket("vers").send().await.expect_err("versions remain");
    assert_eq!(err.code(), Some("BucketNotEmpty"));

    // Removing the marker brings v2 back; removing v1 frees it.
    c.delete_object().bucket("vers").key("k").version_id(&marker).send().await.expect("remove marker");
    assert_eq!(get(&c, "k", None).await, Ok("v2".into()));
    c.delete_object().bucket("vers").key("k").version_id(&v1).send().await.expect("remove v1");
    assert_eq!(get(&c, "k", Some(&v1)).await.map_err(|e| e.0), Err(404));

    // Suspended: new writes are the null version, replacing the old one.
    set_versioning(&c, "vers", BucketVersioningStatus::Suspended).await;
    assert_eq!(put(&c, "vers", "k", "v3").await.version_id, None, "a null write names no version");
    let versions = all_versions(&c, 1000).await;
    assert_eq!(
        versions,
        vec![("k".into(), "null".into(), false, true), ("k".into(), v2.clone(), false, false)],
        "the old null version (v0) was replaced"
    );
    assert_eq!(get(&c, "k", Some("null")).await, Ok("v3".into()));

    // Batch delete by version empties the bucket.
    let ids = ["null", v2.as_str()]
        .iter()
        .map(|v| ObjectIdentifier::builder().key("k").version_id(*v).build().expect("id"))
        .collect::<Vec<_>>();
    let out = c
        .delete_objects()
        .bucket("vers")
        .delete(Delete::builder().set_objects(Some(ids)).build().expect("delete"))
        .send()
        .await
        .expect("delete versions");
    assert_eq!(out.deleted().len(), 2);
    assert!(all_versions(&c, 1000).await.is_empty());
    c.delete_bucket().bucket("vers").send().await.expect("empty bucket deletes");
}

#[tokio::test]
async fn version_listing_paginates_across_keys_and_versions() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("vers").send().await.expect("create");
    set_versioning(&c, "vers", BucketVersioningStatus::Enabled).await;
    for i in 0..25 {
        put(&c, "vers", "many", format!("{i}")).await;
    }
    for k in 0..10 {
        put(&c, "vers", &format!("key{k:02}"), "a").await;
        put(&c, "vers", &format!("key{k:02}"), "b").await;
    }
    c.delete_object().bucket("vers").key("key03").send().await.expect("marker");
    let whole = all_versions(&c, 1000).await;
    assert_eq!(whole.len(), 25 + 20 + 1);
    for page in [1, 2, 7, 25] {
        assert_eq!(all_versions(&c, page).await, whole, "pages of {page}");
    }
    let latest: Vec<_> = whole.iter().filter(|v| v.3).map(|v| v.0.as_str()).collect();
    assert_eq!(latest.len(), 11, "one latest entry per key");
    // With a delimiter, versions under a common prefix roll up.
    let out = c.list_object_versions().bucket("vers").prefix("key").delimiter("0").send().await.expect("delimiter");
    let prefixes: Vec<_> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["key0"]);
}

/// What a GET or HEAD that fails says of a delete marker: status, and its
/// `x-amz-delete-marker`, `x-amz-version-id` and `Allow` headers.
async fn refused_read(c: &Client, head: bool, key: &str, version: Option<&str>) -> (u16, [Option<String>; 3]) {
    let raw = if head {
        let r = c.head_object().bucket("vers").key(key).set_version_id(version.map(str::to_owned)).send().await;
        r.expect_err("a delete marker is not read").raw_response().map(|r| (r.status().as_u16(), r.headers().clone()))
    } else {
        let r = c.get_object().bucket("vers").key(key).set_version_id(version.map(str::to_owned)).send().await;
        r.expect_err("a delete marker is not read").raw_response().map(|r| (r.status().as_u16(), r.headers().clone()))
    };
    let (status, headers) = raw.expect("an HTTP answer");
    let named = |h: &str| headers.get(h).map(str::to_owned);
    (status, [named("x-amz-delete-marker"), named("x-amz-version-id"), named("allow")])
}

/// GET and HEAD of a key whose current version is a delete marker answer 404
/// NoSuchKey, and of the marker named by its version id 405; both carry
/// `x-amz-delete-marker: true` and the marker's version id, as AWS does (a
/// client tells a deleted key from one never written by them), in an
/// enabled bucket and in a suspended one (where the marker is `null`).
#[tokio::test]
async fn reads_of_a_delete_marker_say_so() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("vers").send().await.expect("create");
    put(&c, "vers", "never-versioned", "x").await;
    c.delete_object().bucket("vers").key("never-versioned").send().await.expect("delete");
    set_versioning(&c, "vers", BucketVersioningStatus::Enabled).await;
    put(&c, "vers", "k", "v1").await;
    let marker = c.delete_object().bucket("vers").key("k").send().await.expect("delete");
    let marker = marker.version_id().expect("the marker's version id").to_owned();
    set_versioning(&c, "vers", BucketVersioningStatus::Suspended).await;
    put(&c, "vers", "s", "v1").await;
    let suspended = c.delete_object().bucket("vers").key("s").send().await.expect("delete");
    assert_eq!((suspended.delete_marker(), suspended.version_id()), (Some(true), Some("null")));

    for head in [false, true] {
        let t = Some("true".to_owned());
        let current = refused_read(&c, head, "k", None).await;
        assert_eq!(current, (404, [t.clone(), Some(marker.clone()), None]), "head={head}: current is a marker");
        let named = refused_read(&c, head, "k", Some(&marker)).await;
        assert_eq!(named, (405, [t.clone(), Some(marker.clone()), Some("DELETE".into())]), "head={head}: named");
        let current = refused_read(&c, head, "s", None).await;
        assert_eq!(current, (404, [t.clone(), Some("null".into()), None]), "head={head}: suspended marker");
        let named = refused_read(&c, head, "s", Some("null")).await;
        assert_eq!(named, (405, [t, Some("null".into()), Some("DELETE".into())]), "head={head}: null marker named");
        // Deleted before versioning: gone, no marker to speak of.
        let gone = refused_read(&c, head, "never-versioned", None).await;
        assert_eq!(gone, (404, [None, None, None]), "head={head}: no marker");
    }
}

/// The version id a GET and a HEAD without `versionId` name.
async fn read_versions(c: &Client, bucket: &str, key: &str) -> [Option<String>; 2] {
    let got = c.get_object().bucket(bucket).key(key).send().await.expect("get");
    let head = c.head_object().bucket(bucket).key(key).send().await.expect("head");
    [got.version_id().map(str::to_owned), head.version_id().map(str::to_owned)]
}

/// In a suspended bucket every write (PUT, copy, multipart completion) is the
/// `null` version, replacing the one before, and its answer names no version
/// (AWS's PutObject: no `x-amz-version-id` when suspended); reads of it name
/// `null`, where a bucket that never had versioning names none; a delete
/// leaves a `null` marker and says so.
#[tokio::test]
async fn suspended_writes_replace_the_null_version_and_name_none() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("plain").send().await.expect("create");
    assert_eq!(put(&c, "plain", "k", "p").await.version_id, None);
    assert_eq!(read_versions(&c, "plain", "k").await, [None, None], "never versioned: no version named");

    c.create_bucket().bucket("vers").send().await.expect("create");
    set_versioning(&c, "vers", BucketVersioningStatus::Enabled).await;
    let kept = put(&c, "vers", "k", "enabled").await.version_id.expect("an enabled write's version");
    set_versioning(&c, "vers", BucketVersioningStatus::Suspended).await;
    let null = Some("null".to_owned());
    for body in ["s1", "s2"] {
        assert_eq!(put(&c, "vers", "k", body).await.version_id, None, "PUT {body}");
        assert_eq!(read_versions(&c, "vers", "k").await, [null.clone(), null.clone()], "reads name null");
    }
    let copied = c.copy_object().bucket("vers").key("k").copy_source("plain/k").send().await.expect("copy");
    assert_eq!(copied.version_id(), None, "a copy into a suspended bucket names no version");
    let id = c.create_multipart_upload().bucket("vers").key("k").send().await.expect("create upload");
    let id = id.upload_id().expect("upload id");
    let part = upload_part(&c, "vers", "k", id, 1, pattern(100, 1)).await;
    let done = c
        .complete_multipart_upload()
        .bucket("vers")
        .key("k")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
        .send()
        .await
        .expect("complete");
    assert_eq!(done.version_id(), None, "a completion in a suspended bucket names no version");
    let versions: Vec<_> = all_versions(&c, 1000).await.into_iter().map(|v| (v.1, v.2, v.3)).collect();
    assert_eq!(versions, [("null".into(), false, true), (kept.clone(), false, false)], "one null version");
    let body = c.get_object().bucket("vers").key("k").version_id("null").send().await.expect("get null");
    assert_eq!(body.body.collect().await.expect("body").into_bytes().to_vec(), pattern(100, 1), "the last write");

    let marker = c.delete_object().bucket("vers").key("k").send().await.expect("delete");
    assert_eq!((marker.delete_marker(), marker.version_id()), (Some(true), Some("null")));
    let versions: Vec<_> = all_versions(&c, 1000).await.into_iter().map(|v| (v.1, v.2, v.3)).collect();
    assert_eq!(versions, [("null".into(), true, true), (kept, false, false)], "the marker replaced the null version");
}
