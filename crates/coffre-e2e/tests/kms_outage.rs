//! A key custodian that goes away: Coffre answers 503 ServiceUnavailable,
//! stores nothing half-done, and serves everything again once it is back.
//!
//! Runs against the KMIP server scripts/test.sh starts, through a relay this
//! test can cut, so the outage is abrupt and repeatable.

use aws_sdk_s3::primitives::ByteStream;
use coffre_e2e::objects;
use coffre_e2e::relay::Relay;
use coffre_e2e::{Server, error_code, pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_outage_is_a_503_and_loses_nothing() {
    let var = |name: &str| std::env::var(name).ok();
    let (Some(addr), Some(ca), Some(cert), Some(key)) = (
        var("COFFRE_TEST_KMIP_ADDR"),
        var("COFFRE_TEST_KMIP_CA"),
        var("COFFRE_TEST_KMIP_CERT"),
        var("COFFRE_TEST_KMIP_KEY"),
    ) else {
        eprintln!("skipped: COFFRE_TEST_KMIP_ADDR unset (scripts/test.sh starts a KMIP server and sets it)");
        return;
    };
    let relay = Relay::start(addr).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("kmip.toml");
    let toml = format!(
        "[kms]\ncustody = \"kmip\"\naddr = \"{}\"\nserver_name = \"localhost\"\nca_cert = \"{ca}\"\n\
         client_cert = \"{cert}\"\nclient_key = \"{key}\"\n",
        relay.addr
    );
    std::fs::write(&config, toml).expect("config");
    let server = Server::start_with_config(&tmp.path().join("data"), &config, &[]);
    let client = server.client();
    client.create_bucket().bucket("outage").send().await.expect("bucket");
    let (small, large) = (pattern(2_000, 1), pattern(1_500_000, 2));
    client.put_object().bucket("outage").key("small").body(ByteStream::from(small.clone())).send().await.expect("put");
    client.put_object().bucket("outage").key("large").body(ByteStream::from(large.clone())).send().await.expect("put");

    relay.cut();
    let put = client.put_object().bucket("outage").key("during").body(ByteStream::from(pattern(700_000, 3))).send();
    assert_eq!(error_code(put.await), ("ServiceUnavailable".to_owned(), 503));
    let get = client.get_object().bucket("outage").key("large").send().await;
    assert_eq!(error_code(get), ("ServiceUnavailable".to_owned(), 503));
    let bucket = client.create_bucket().bucket("outage-new").send().await;
    assert_eq!(error_code(bucket), ("ServiceUnavailable".to_owned(), 503));
    // Listing needs no key: it works, and shows nothing of the refused PUT.
    let listed = client.list_objects_v2().bucket("outage").send().await.expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["large", "small"]);
    let status = server.cli(&["kms", "status"]);
    assert!(!status.status.success(), "kms status must report the outage");
    assert!(String::from_utf8_lossy(&status.stderr).contains("503"), "{}", String::from_utf8_lossy(&status.stderr));

    relay.restore();
    // The custodian client backs off for a moment after a failed connect.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(objects::get(&client, "outage", "small").await, small);
    assert_eq!(objects::get(&client, "outage", "large").await, large);
    let after = pattern(700_000, 4);
    client.put_object().bucket("outage").key("after").body(ByteStream::from(after.clone())).send().await.expect("put");
    assert_eq!(objects::get(&client, "outage", "after").await, after);
    assert!(server.cli(&["kms", "status"]).status.success());
}
