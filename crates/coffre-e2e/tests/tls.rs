//! The AWS SDK for Rust over TLS: object traffic, a multipart upload and the
//! admin CLI against a server with a test-CA certificate, and plain HTTP refused.

use aws_sdk_s3::primitives::ByteStream;
use coffre_e2e::objects::multipart;
use coffre_e2e::{Server, http_get, md5_hex, pattern};

#[tokio::test]
async fn sdk_traffic_over_tls() {
    let server = Server::start_tls();
    assert!(server.endpoint().starts_with("https://"));
    let c = server.client();
    c.create_bucket().bucket("tls").send().await.expect("create");

    // Over https the SDK sends an unsigned payload with a trailing checksum
    // (aws-chunked): a body path plain-HTTP tests never take.
    let body = pattern(6 * 1024 * 1024 + 3, 7);
    let put = c.put_object().bucket("tls").key("big").body(ByteStream::from(body.clone())).send().await.expect("put");
    assert_eq!(put.e_tag(), Some(format!("\"{}\"", md5_hex(&body)).as_str()));
    let got = c.get_object().bucket("tls").key("big").send().await.expect("get");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &body[..]);
    let range = c.get_object().bucket("tls").key("big").range("bytes=100-199").send().await.expect("range");
    assert_eq!(range.body.collect().await.expect("body").into_bytes().as_ref(), &body[100..200]);

    let parts = [pattern(5 * 1024 * 1024, 1), pattern(1234, 2)];
    multipart(&c, "tls", "mp", &parts).await;
    let listed = c.list_objects_v2().bucket("tls").send().await.expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["big", "mp"]);

    // The admin CLI reaches the https admin port, trusting the test CA.
    let out = server.cli(&["bucket", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"tls\""));
}

#[test]
fn plain_http_gets_no_answer_from_tls_listeners() {
    let server = Server::start_tls();
    assert_eq!(http_get(server.s3, "/"), None, "no HTTP status line from the S3 port");
    assert_eq!(http_get(server.admin, "/health/live"), None, "nor from the admin port");
}
