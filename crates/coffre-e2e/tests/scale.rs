//! Listing at scale: 100,000 keys and 10,000 versions of one key, walked page
//! by page; every entry exactly once, in order.

use std::collections::HashSet;

use aws_sdk_s3::types::BucketVersioningStatus;
use coffre_e2e::Server;
use coffre_e2e::objects::{list_pages, put_many, set_versioning, version_pages};

/// PUTs in flight at once.
const AT_ONCE: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_100k_keys_and_10k_versions() {
    let server = Server::start();
    let c = server.client();
    let one = std::slice::from_ref(&c);

    c.create_bucket().bucket("scale-keys").send().await.expect("create");
    put_many(one, "scale-keys", (0..100_000).map(|i| format!("k/{:03}/{i:06}", i % 997)), AT_ONCE).await;
    let pages = list_pages(one, "scale-keys").await;
    let seen: Vec<String> =
        pages.iter().flat_map(|p| p.contents()).filter_map(|o| o.key().map(str::to_owned)).collect();
    assert_eq!(pages.len(), 100);
    assert_eq!(seen.len(), 100_000);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing, so no duplicates");
    let out = c.list_objects_v2().bucket("scale-keys").prefix("k/").delimiter("/").send().await.expect("prefixes");
    assert_eq!(out.common_prefixes().len(), 997);

    c.create_bucket().bucket("scale-versions").send().await.expect("create");
    set_versioning(&c, "scale-versions", BucketVersioningStatus::Enabled).await;
    put_many(one, "scale-versions", (0..10_000).map(|_| "one".to_owned()), AT_ONCE).await;
    let mut ids = HashSet::new();
    let mut latest = 0;
    for out in version_pages(&c, "scale-versions", 777).await {
        for v in out.versions() {
            assert!(ids.insert(v.version_id().expect("id").to_owned()), "a version listed twice");
            latest += usize::from(v.is_latest() == Some(true));
        }
    }
    assert_eq!(ids.len(), 10_000);
    assert_eq!(latest, 1);
}
