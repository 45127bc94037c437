//! Attacks on where data lands and on what one client may hold, each against
//! a real `coffre serve`:
//!
//! - bucket identity: a write that began in a bucket never commits into
//!   another bucket created later under the same name;
//!
//! Slow bodies go over raw sockets, signed by hand (`coffre_e2e::signed`),
//! so that the test, not an SDK, decides when each byte is sent.

use std::time::Duration;

use aws_sdk_s3::Client;
use coffre_e2e::objects::{pattern, upload_part};
use coffre_e2e::signed::{RawConn, Signer};
use coffre_e2e::{Server, error_code};

/// Long enough for the server to have looked the bucket up and be waiting
/// for the rest of a body it has begun to read.
const SETTLE: Duration = Duration::from_millis(500);

/// Two tenants of one server: (alice's signer, alice, bob).
fn two_tenants(server: &Server) -> (Signer, Client, Client) {
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    (Signer::new(server.s3, &a_id, &a_secret), server.client_as(&a_id, &a_secret), server.client_as(&b_id, &b_secret))
}

/// The bucket holds nothing at all: no object, no version, no upload (a
/// bucket that held any could not be deleted).
async fn assert_empty(owner: &Client, bucket: &str) {
    let listed = owner.list_object_versions().bucket(bucket).send().await.expect("list versions");
    assert!(listed.versions().is_empty() && listed.delete_markers().is_empty(), "{listed:?}");
    let uploads = owner.list_multipart_uploads().bucket(bucket).send().await.expect("list uploads");
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
    owner.delete_bucket().bucket(bucket).send().await.expect("an empty bucket can be deleted");
}

// --- Bucket identity ------------------------------------------------------

#[tokio::test]
async fn a_slow_put_does_not_land_in_a_bucket_recreated_under_its_name() {
    let server = Server::start();
    let (alice_signs, alice, bob) = two_tenants(&server);
    // Small enough to live in the metadata record, and large enough for a blob.
    for (key, size) in [("inline", 1_000), ("blob", 256 * 1024)] {
        alice.create_bucket().bucket("reused").send().await.expect("alice creates");
        let body = pattern(size, 7);
        let path = format!("/reused/{key}");
        let head = alice_signs.head("PUT", &path, "", &[("Content-Length", size.to_string())]);
        let mut put = RawConn::open(server.s3).await.expect("connect");
        put.send(head.as_bytes()).await.expect("head");
        put.send(&body[..100]).await.expect("first bytes");
        tokio::time::sleep(SETTLE).await;

        alice.delete_bucket().bucket("reused").send().await.expect("alice deletes her bucket, still empty");
        bob.create_bucket().bucket("reused").send().await.expect("bob takes the name");
        put.send(&body[100..]).await.expect("the rest");
        let answer = put.answer(Duration::from_secs(10)).await.expect("an answer");
        assert_eq!((answer.status, answer.code()), (404, "NoSuchBucket"), "{key}: {}", answer.body);
        assert_empty(&bob, "reused").await;
    }
}

#[tokio::test]
async fn multipart_uploads_do_not_cross_a_bucket_recreated_under_its_name() {
    let server = Server::start();
    let (alice_signs, alice, bob) = two_tenants(&server);
    alice.create_bucket().bucket("reused").send().await.expect("alice creates");
    let upload = alice.create_multipart_upload().bucket("reused").key("big").send().await.expect("upload");
    let id = upload.upload_id().expect("upload id").to_owned();
    let first = upload_part(&alice, "reused", "big", &id, 1, pattern(5 << 20, 1)).await;

    // A second part streams slowly while the bucket is erased and the name taken.
    let second = pattern(64 * 1024, 2);
    let query = format!("partNumber=2&uploadId={id}");
    let head = alice_signs.head("PUT", "/reused/big", &query, &[("Content-Length", second.len().to_string())]);
    let mut part = RawConn::open(server.s3).await.expect("connect");
    part.send(head.as_bytes()).await.expect("head");
    part.send(&second[..100]).await.expect("first bytes");
    tokio::time::sleep(SETTLE).await;
    server.cli_ok(&["bucket", "erase", "reused", "--confirm"]);
    bob.create_bucket().bucket("reused").send().await.expect("bob takes the name");
    part.send(&second[100..]).await.expect("the rest");
    let answer = part.answer(Duration::from_secs(10)).await.expect("an answer");
    assert_eq!((answer.status, answer.code()), (404, "NoSuchUpload"), "{}", answer.body);

    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder().parts(first).build();
    let completed = alice
        .complete_multipart_upload()
        .bucket("reused")
        .key("big")
        .upload_id(&id)
        .multipart_upload(parts)
        .send()
        .await;
    // The name is bob's now: alice is refused before her upload is even looked for.
    assert_eq!(error_code(completed), ("AccessDenied".to_owned(), 403));
    assert_empty(&bob, "reused").await;
}
