//! Lifecycle configuration through the SDK, and the server's worker applying
//! a rule for real (an expiration date already past), seen in the admin API
//! and the metrics; each removal is in the audit log, by its rule.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use coffre_e2e::Server;

#[tokio::test]
async fn the_worker_expires_what_the_rules_say() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("coffre.toml");
    std::fs::write(&config, "lifecycle_interval_secs = 1\n").expect("config");
    let dir = tmp.path().join("data");
    let mut server = Server::start_with_config(&dir, &config, &[]);
    let c = server.client();
    c.create_bucket().bucket("life").send().await.expect("create");
    let err = c.get_bucket_lifecycle_configuration().bucket("life").send().await.expect_err("none yet");
    assert_eq!(err.code(), Some("NoSuchLifecycleConfiguration"));
    for key in ["tmp/a", "tmp/b", "keep/c"] {
        c.put_object().bucket("life").key(key).body(ByteStream::from_static(b"x")).send().await.expect("put");
    }
    let rule = LifecycleRule::builder()
        .id("purge-tmp")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
        .expiration(LifecycleExpiration::builder().date(DateTime::from_secs(1_577_836_800)).build())
        .build()
        .expect("rule");
    let lifecycle = BucketLifecycleConfiguration::builder().rules(rule).build().expect("config");
    c.put_bucket_lifecycle_configuration()
        .bucket("life")
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .expect("put rules");
    let got = c.get_bucket_lifecycle_configuration().bucket("life").send().await.expect("get rules");
    assert_eq!(got.rules().first().and_then(|r| r.id()), Some("purge-tmp"));

    let deadline = Instant::now() + Duration::from_secs(20);
    let remaining = loop {
        let listed = c.list_objects_v2().bucket("life").send().await.expect("list");
        let keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        if keys.len() == 1 || Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(remaining, ["keep/c"]);

    // The pass that removed them adds its counts to the totals as it ends: wait for it.
    let totals = loop {
        let (status, body) = server.admin_get("/admin/v1/lifecycle").expect("admin");
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
        if json["totals"]["expired"] == 2 || Instant::now() > deadline {
            break json["totals"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(totals["expired"], 2, "{totals}");
    let (_, metrics) = coffre_e2e::http_get(server.admin, "/metrics").expect("metrics");
    assert!(metrics.contains("coffre_s3_lifecycle_actions_total{action=\"expired\"} 2"), "{metrics}");

    c.delete_bucket_lifecycle().bucket("life").send().await.expect("delete rules");
    let err = c.get_bucket_lifecycle_configuration().bucket("life").send().await.expect_err("gone");
    assert_eq!(err.code(), Some("NoSuchLifecycleConfiguration"));

    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());
    let expired = coffre_e2e::audit::events(&dir, &["--operation", "lifecycle:Expire", "--bucket", "life"]);
    let mut keys: Vec<&str> = expired.iter().filter_map(|e| e["key"].as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["tmp/a", "tmp/b"], "{expired:#?}");
    for e in &expired {
        assert_eq!(e["detail"], "job=lifecycle rule=purge-tmp", "{e}");
        assert!(e["principal"].is_null(), "a job, not a client: {e}");
    }
    let rules = coffre_e2e::audit::events(&dir, &["--operation", "change:PutBucketConfig", "--bucket", "life"]);
    let kinds: Vec<&str> = rules.iter().filter_map(|e| e["detail"].as_str()).collect();
    assert_eq!(kinds, ["kind=lifecycle", "kind=lifecycle"], "set, then deleted");
}
