//! The server's edges: region checks, health and metrics endpoints, a body
//! that stalls mid-upload, and configuration from a TOML file.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use coffre_e2e::{ROOT_ACCESS, ROOT_SECRET, Server, http_get};

#[tokio::test]
async fn a_signature_for_another_region_is_refused() {
    let server = Server::start();
    let client = server.client_in("eu-west-3", ROOT_ACCESS, ROOT_SECRET);
    let err = client.list_buckets().send().await.expect_err("wrong region");
    assert_eq!(err.code(), Some("AuthorizationHeaderMalformed"));
    assert!(err.message().is_some_and(|m| m.contains("'eu-west-3' is wrong; expecting 'us-east-1'")), "{err:?}");
}

#[tokio::test]
async fn health_and_metrics() {
    let server = Server::start();
    assert_eq!(http_get(server.admin, "/health/live").map(|r| r.0), Some(200));
    assert_eq!(http_get(server.admin, "/health/ready").map(|r| r.0), Some(200));
    let c = server.client();
    c.create_bucket().bucket("metrics").send().await.expect("create");
    c.put_object().bucket("metrics").key("k").body(ByteStream::from(vec![7u8; 1000])).send().await.expect("put");
    let _ = c.get_object().bucket("metrics").key("missing").send().await;
    // Metrics are recorded when a response body is finished: give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, text) = http_get(server.admin, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    for needle in [
        "coffre_s3_requests_total{operation=\"PutObject\",status=\"200\"} 1",
        "coffre_s3_requests_total{operation=\"GetObject\",status=\"404\"} 1",
        "coffre_s3_received_bytes_total{operation=\"PutObject\"}",
        "coffre_s3_request_duration_seconds_bucket{le=",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // The admin API is not open to anyone.
    let (status, _) = http_get(server.admin, "/admin/v1/keys").expect("keys");
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_stalled_body_times_out_and_stores_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("coffre.toml");
    std::fs::write(&config, "body_idle_timeout_secs = 1\n").expect("config");
    let server = Server::start_with_config(&tmp.path().join("data"), &config, &[]);
    let c = server.client();
    c.create_bucket().bucket("stall").send().await.expect("create");
    let presigned = c
        .put_object()
        .bucket("stall")
        .key("slow")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("presign"))
        .await
        .expect("presigned");
    let uri: http::Uri = presigned.uri().parse().expect("uri");
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");

    let mut stream = TcpStream::connect(server.s3).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100000\r\n\r\n", server.s3);
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&[1u8; 1000]).expect("some body");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered after {:?}", started.elapsed());
    let err = c.head_object().bucket("stall").key("slow").send().await.expect_err("nothing stored");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = Server::start();
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&server.data_dir), 0o700);
    let meta = server.data_dir.join("meta.redb");
    if coffre_e2e::metadata_engine() == "embedded" {
        assert_eq!(mode(&meta), 0o600, "the metadata file holds access-key secrets");
    } else {
        assert!(!meta.exists(), "with PostgreSQL no metadata is kept on the gateway's disk");
    }
}

/// An answer given before the body is read (here, AccessDenied to an
/// anonymous PUT) must reach a client that sends its whole body before
/// reading: the server reads and discards a bounded rest of the body
/// (1 MiB) instead of closing the connection under the client, which would
/// then see a reset socket and no answer at all.
#[test]
fn an_answer_given_before_the_body_is_read_reaches_a_client_still_sending() {
    const BODY: usize = 512 * 1024;
    let server = Server::start();
    for attempt in 0..3 {
        let mut stream = TcpStream::connect(server.s3).expect("connect");
        let head = format!("PUT /anybucket/k HTTP/1.1\r\nHost: {}\r\nContent-Length: {BODY}\r\n\r\n", server.s3);
        stream.write_all(head.as_bytes()).expect("head");
        // The body comes as over a slow link; the server answers at once.
        let piece = vec![0x42u8; BODY / 8];
        let sent: std::io::Result<()> = (0..8).try_for_each(|_| {
            std::thread::sleep(Duration::from_millis(50));
            stream.write_all(&piece)
        });
        assert!(sent.is_ok(), "attempt {attempt}: the server closed the connection under the body: {sent:?}");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 403") && text.contains("<Code>AccessDenied</Code>"),
            "attempt {attempt}: {read:?} {text}"
        );
    }
}
