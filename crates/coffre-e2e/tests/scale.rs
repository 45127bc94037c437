//! Listing at scale: 100,000 keys and 10,000 versions of one key, walked page
//! by page; every entry exactly once, in order.

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use coffre_e2e::Server;
use tokio::sync::Semaphore;

async fn put_many(c: &Client, bucket: &str, keys: impl Iterator<Item = String>) {
    let sem = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for key in keys {
        let (c, bucket, permit) = (c.clone(), bucket.to_owned(), sem.clone().acquire_owned().await.expect("permit"));
        tasks.push(tokio::spawn(async move {
            c.put_object().bucket(bucket).key(key).body(ByteStream::from_static(b"")).send().await.expect("put");
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_100k_keys_and_10k_versions() {
    let server = Server::start();
    let c = server.client();

    c.create_bucket().bucket("scale-keys").send().await.expect("create");
    put_many(&c, "scale-keys", (0..100_000).map(|i| format!("k/{:03}/{i:06}", i % 997))).await;
    let mut seen = Vec::with_capacity(100_000);
    let mut token = None;
    let mut pages = 0;
    loop {
        let out = c.list_objects_v2().bucket("scale-keys").set_continuation_token(token).send().await.expect("list");
        pages += 1;
        seen.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 100);
    assert_eq!(seen.len(), 100_000);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing, so no duplicates");
    let out = c.list_objects_v2().bucket("scale-keys").prefix("k/").delimiter("/").send().await.expect("prefixes");
    assert_eq!(out.common_prefixes().len(), 997);

    c.create_bucket().bucket("scale-versions").send().await.expect("create");
    let on = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    c.put_bucket_versioning().bucket("scale-versions").versioning_configuration(on).send().await.expect("versioning");
    put_many(&c, "scale-versions", (0..10_000).map(|_| "one".to_owned())).await;
    let mut ids = HashSet::new();
    let mut latest = 0;
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let out = c
            .list_object_versions()
            .bucket("scale-versions")
            .max_keys(777)
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .expect("versions");
        for v in out.versions() {
            assert!(ids.insert(v.version_id().expect("id").to_owned()), "a version listed twice");
            latest += usize::from(v.is_latest() == Some(true));
        }
        if out.is_truncated() != Some(true) {
            break;
        }
        key_marker = out.next_key_marker().map(str::to_owned);
        version_marker = out.next_version_id_marker().map(str::to_owned);
    }
    assert_eq!(ids.len(), 10_000);
    assert_eq!(latest, 1);
}
