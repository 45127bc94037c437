//! Encryption at rest against the real binary: nothing readable on disk,
//! tampering answered with errors, SSE-C, key rotation and crypto-erasure.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ServerSideEncryption};
use coffre_e2e::files::{blob_files, files_under};
use coffre_e2e::objects::{complete, multipart, set_versioning, try_get, upload_part};
use coffre_e2e::pg::skip_unless_embedded;
use coffre_e2e::{Server, custody, error_code, md5_hex, pattern};

const MARKER: &[u8] = b"COFFRE-PLAINTEXT-MARKER-7f3a";

/// `len` bytes made of the marker, over and over.
fn marked(len: usize) -> Vec<u8> {
    MARKER.iter().copied().cycle().take(len).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_reaches_the_disk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let client = server.client();
    client.create_bucket().bucket("marks").send().await.expect("bucket");
    // Inline, one segment, many segments, a multipart object, a copy.
    for (key, len) in [("inline", 300), ("small", 20_000), ("large", 3_000_000)] {
        let data = marked(len);
        client.put_object().bucket("marks").key(key).body(ByteStream::from(data)).send().await.expect("put");
    }
    let parts = [marked(5 * 1024 * 1024), marked(1000)];
    multipart(&client, "marks", "multi", &parts).await;
    client.copy_object().bucket("marks").key("copied").copy_source("marks/large").send().await.expect("copy");
    // An access key's secret is wrapped too, and the key works.
    let (access, secret) = server.create_key("marker-tenant");
    server.client_as(&access, &secret).list_buckets().send().await.expect("the new key signs");
    assert_eq!(try_get(&client, "marks", "large").await.expect("get"), marked(3_000_000));
    assert_eq!(try_get(&client, "marks", "copied").await.expect("get"), marked(3_000_000));
    let ranged = client.get_object().bucket("marks").key("multi").range("bytes=5242000-5242999").send().await;
    let ranged = ranged.expect("range").body.collect().await.expect("body").into_bytes();
    assert_eq!(ranged.as_ref(), &parts.concat()[5_242_000..5_243_000], "a range across two parts");
    server.stop();

    let files = files_under(&dir);
    assert!(files.len() > 5, "expected blobs, metadata and keys under {}", dir.display());
    for file in files {
        let bytes = std::fs::read(&file).expect("read");
        assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER), "plaintext found in {}", file.display());
        let secret = secret.as_bytes();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret), "a key's secret found in {}", file.display());
    }
}

/// The only blob of a one-object bucket, and its original bytes.
async fn one_blob(server: &Server, len: usize) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let client = server.client();
    client.create_bucket().bucket("tamper").send().await.expect("bucket");
    let data = pattern(len, 42);
    client.put_object().bucket("tamper").key("obj").body(ByteStream::from(data.clone())).send().await.expect("put");
    let blobs = blob_files(&server.data_dir);
    assert_eq!(blobs.len(), 1, "one object, one blob");
    let original = std::fs::read(&blobs[0]).expect("read blob");
    (blobs[0].clone(), original, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_an_error_never_wrong_bytes() {
    const SEGMENT: usize = 64 * 1024 + 16;
    const HEADER: usize = 32;
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start_in(&tmp.path().join("data"));
    let client = server.client();
    let (path, original, data) = one_blob(&server, 4 * 64 * 1024 + 100).await;

    let mut flipped_first = original.clone();
    flipped_first[HEADER + 10] ^= 0x01;
    let mut flipped_late = original.clone();
    flipped_late[HEADER + 3 * SEGMENT + 5] ^= 0x80;
    let mut swapped = original.clone();
    swapped[HEADER..HEADER + SEGMENT].copy_from_slice(&original[HEADER + SEGMENT..HEADER + 2 * SEGMENT]);
    swapped[HEADER + SEGMENT..HEADER + 2 * SEGMENT].copy_from_slice(&original[HEADER..HEADER + SEGMENT]);
    let truncated = original[..original.len() - 50].to_vec();
    let cut_at_segment = original[..HEADER + 3 * SEGMENT].to_vec();
    let mut header = original.clone();
    header[9] ^= 0xff;

    for (what, bytes) in [
        ("a flipped bit in the first segment", flipped_first),
        ("a flipped bit in a later segment", flipped_late),
        ("two swapped segments", swapped),
        ("a truncated file", truncated),
        ("a file cut at a segment boundary", cut_at_segment),
        ("a changed header", header),
    ] {
        std::fs::write(&path, &bytes).expect("tamper");
        match try_get(&client, "tamper", "obj").await {
            Ok(got) => {
                panic!("{what}: the GET returned {} bytes (equal: {}) instead of failing", got.len(), got == data)
            }
            Err(e) => eprintln!("{what}: refused as it should be: {}", e.chars().take(160).collect::<String>()),
        }
    }
    // A range inside the changed segment fails with a clean error response.
    let mut flipped = original.clone();
    flipped[HEADER + 2 * SEGMENT + 7] ^= 0x04;
    std::fs::write(&path, &flipped).expect("tamper");
    let err = client.get_object().bucket("tamper").key("obj").range("bytes=140000-140099").send().await;
    assert_eq!(error_code(err), ("InternalError".to_owned(), 500));
    // A range that avoids it still reads: the damage is confined to its segment.
    let ok = client.get_object().bucket("tamper").key("obj").range("bytes=0-999").send().await.expect("range");
    assert_eq!(ok.body.collect().await.expect("body").into_bytes().as_ref(), &data[..1000]);

    std::fs::write(&path, &original).expect("restore");
    assert_eq!(try_get(&client, "tamper", "obj").await.expect("restored"), data);
}

fn customer_key(seed: u8) -> (String, String) {
    let key = [seed; 32];
    let b64 = base64_encode(&key);
    let md5 = base64_encode(&<md5::Md5 as md5::Digest>::digest(key));
    (b64, md5)
}

fn base64_encode(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_round_trip_and_errors() {
    let (key, key_md5) = customer_key(7);
    let (other, other_md5) = customer_key(8);
    // By default a plain-HTTP listener refuses SSE-C keys, as S3 does.
    let plain = Server::start();
    plain.client().create_bucket().bucket("ssec").send().await.expect("bucket");
    let refused = plain
        .client()
        .put_object()
        .bucket("ssec")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(error_code(refused), ("InvalidRequest".to_owned(), 400));
    drop(plain);

    // The rest runs where the operator said TLS ends before Coffre.
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start_with(&tmp.path().join("data"), &[("COFFRE_SSE_C_OVER_HTTP", "true")]);
    let client = server.client();
    client.create_bucket().bucket("ssec").send().await.expect("bucket");
    let data = pattern(300_000, 9);
    let put = client
        .put_object()
        .bucket("ssec")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    assert_eq!(put.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(put.sse_customer_key_md5(), Some(key_md5.as_str()));
    assert_ne!(put.e_tag(), Some(format!("\"{}\"", md5_hex(&data)).as_str()), "no plaintext MD5 for SSE-C");

    let got = client
        .get_object()
        .bucket("ssec")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .range("bytes=100000-100009")
        .send()
        .await
        .expect("get with key");
    assert_eq!(got.sse_customer_key_md5(), Some(key_md5.as_str()));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &data[100_000..100_010]);

    let missing = client.get_object().bucket("ssec").key("secret").send().await;
    assert_eq!(error_code(missing), ("InvalidRequest".to_owned(), 400));
    let wrong = client
        .get_object()
        .bucket("ssec")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&other)
        .sse_customer_key_md5(&other_md5)
        .send()
        .await;
    assert_eq!(error_code(wrong), ("AccessDenied".to_owned(), 403));
    let head = client.head_object().bucket("ssec").key("secret").send().await;
    assert!(head.is_err(), "HEAD without the key must fail");
    let bad_md5 = client
        .get_object()
        .bucket("ssec")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&other_md5)
        .send()
        .await;
    assert_eq!(error_code(bad_md5), ("InvalidArgument".to_owned(), 400));

    client.put_object().bucket("ssec").key("plain").body(ByteStream::from_static(b"x")).send().await.expect("put");
    let not_applicable = client
        .get_object()
        .bucket("ssec")
        .key("plain")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(error_code(not_applicable), ("InvalidRequest".to_owned(), 400));

    // Copy to a new key under another customer key: the source key opens, the new key seals.
    client
        .copy_object()
        .bucket("ssec")
        .key("recopied")
        .copy_source("ssec/secret")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&key)
        .copy_source_sse_customer_key_md5(&key_md5)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&other)
        .sse_customer_key_md5(&other_md5)
        .send()
        .await
        .expect("copy");
    let copied = client
        .get_object()
        .bucket("ssec")
        .key("recopied")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&other)
        .sse_customer_key_md5(&other_md5)
        .send()
        .await
        .expect("get copy");
    assert_eq!(copied.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice());
    let copy_without = client.copy_object().bucket("ssec").key("x").copy_source("ssec/secret").send().await;
    assert_eq!(error_code(copy_without), ("InvalidRequest".to_owned(), 400));

    // Tags are metadata: reachable without the key, as in S3.
    client.get_object_tagging().bucket("ssec").key("secret").send().await.expect("tagging without key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_headers_and_bucket_default() {
    let server = Server::start();
    let client = server.client();
    client.create_bucket().bucket("enc").send().await.expect("bucket");
    let plain = client.put_object().bucket("enc").key("a").body(ByteStream::from_static(b"a")).send().await;
    assert_eq!(plain.expect("put").server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    let kms = client
        .put_object()
        .bucket("enc")
        .key("b")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("tenant-key-1")
        .body(ByteStream::from_static(b"b"))
        .send()
        .await
        .expect("put kms");
    assert_eq!(kms.server_side_encryption(), Some(&ServerSideEncryption::AwsKms));
    assert_eq!(kms.ssekms_key_id(), Some("tenant-key-1"));
    let head = client.head_object().bucket("enc").key("b").send().await.expect("head");
    assert_eq!(head.ssekms_key_id(), Some("tenant-key-1"));

    let default = client.get_bucket_encryption().bucket("enc").send().await.expect("get encryption");
    let rule = &default.server_side_encryption_configuration().expect("config").rules()[0];
    let by_default = rule.apply_server_side_encryption_by_default().expect("default");
    assert_eq!(by_default.sse_algorithm(), &ServerSideEncryption::Aes256);

    let config = aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
        .rules(
            aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::AwsKms)
                        .kms_master_key_id("bucket-default-key")
                        .build()
                        .expect("by default"),
                )
                .build(),
        )
        .build()
        .expect("config");
    client
        .put_bucket_encryption()
        .bucket("enc")
        .server_side_encryption_configuration(config)
        .send()
        .await
        .expect("put encryption");
    let put = client.put_object().bucket("enc").key("c").body(ByteStream::from_static(b"c")).send().await;
    assert_eq!(put.expect("put").ssekms_key_id(), Some("bucket-default-key"));
    client.delete_bucket_encryption().bucket("enc").send().await.expect("delete encryption");
    let put = client.put_object().bucket("enc").key("d").body(ByteStream::from_static(b"d")).send().await;
    assert_eq!(put.expect("put").server_side_encryption(), Some(&ServerSideEncryption::Aes256));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_rewraps_without_rewriting_data() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let server = Server::start_in(&dir);
    let client = server.client();
    client.create_bucket().bucket("rot").send().await.expect("bucket");
    set_versioning(&client, "rot", BucketVersioningStatus::Enabled).await;
    let small = pattern(100, 1);
    let big = pattern(200_000, 2);
    client.put_object().bucket("rot").key("small").body(ByteStream::from(small.clone())).send().await.expect("put");
    client.put_object().bucket("rot").key("big").body(ByteStream::from(pattern(10, 3))).send().await.expect("put");
    client.put_object().bucket("rot").key("big").body(ByteStream::from(big.clone())).send().await.expect("put");
    let parts = [pattern(5 * 1024 * 1024, 4), pattern(10, 5)];
    multipart(&client, "rot", "multi", &parts).await;
    // An upload in progress keeps its parts' keys across the rotation too.
    let open = client.create_multipart_upload().bucket("rot").key("open").send().await.expect("upload");
    let open_id = open.upload_id().expect("id").to_owned();
    let part = upload_part(&client, "rot", "open", &open_id, 1, pattern(1000, 6)).await;
    let blobs_before: Vec<(PathBuf, Vec<u8>)> =
        blob_files(&dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("read"))).collect();
    let before = server.cli_json(&["bucket", "info", "rot", "--json"]);
    let old_kek = before["keks"][0]["id"].as_str().expect("kek id").to_owned();

    let rotated = server.cli_json(&["bucket", "rotate-key", "rot", "--json"]);
    // small, big (2 versions), multi (2 parts), open upload (1 part).
    assert_eq!(rotated["rewrapped"], 6, "{rotated}");
    assert_eq!(rotated["new_generation"], 2);
    assert_eq!(rotated["keks_destroyed"][0], old_kek.as_str());
    if custody() == "embedded" {
        assert!(!dir.join("kms/keks").join(format!("{old_kek}.kek")).exists(), "old KEK file must be gone");
    }
    for (path, bytes) in blobs_before {
        assert_eq!(std::fs::read(&path).expect("blob kept"), bytes, "rotation must not rewrite {}", path.display());
    }

    assert_eq!(try_get(&client, "rot", "small").await.expect("small"), small);
    assert_eq!(try_get(&client, "rot", "big").await.expect("big"), big);
    assert_eq!(try_get(&client, "rot", "multi").await.expect("multi"), parts.concat());
    let versions = client.list_object_versions().bucket("rot").prefix("big").send().await.expect("versions");
    let old = versions.versions().iter().find(|v| v.is_latest() == Some(false)).expect("old version");
    let old_body = client.get_object().bucket("rot").key("big").version_id(old.version_id().unwrap_or_default()).send();
    assert_eq!(old_body.await.expect("old").body.collect().await.expect("body").into_bytes().as_ref(), pattern(10, 3));
    complete(&client, "rot", "open", &open_id, vec![part]).await;
    assert_eq!(try_get(&client, "rot", "open").await.expect("open"), pattern(1000, 6));
}

/// `coffre inspect read` of one object, server stopped, with `meta` as the metadata.
fn offline_read(dir: &Path, meta: &Path, bucket: &str, key: &str) -> std::process::Output {
    let mut cmd = std::process::Command::new(coffre_e2e::coffre_bin());
    cmd.args(["inspect", "read", "--data-dir"]).arg(dir).arg("--meta").arg(meta).args([bucket, key]);
    if let Some(config) = coffre_e2e::kms_config() {
        cmd.arg("--config").arg(config);
    }
    cmd.output().expect("run inspect")
}

/// The offline read failed because the custodian no longer has the key, and gave no byte.
fn assert_key_destroyed(read: &std::process::Output) {
    assert!(!read.status.success(), "the read must fail, got {} bytes", read.stdout.len());
    let why = String::from_utf8_lossy(&read.stderr);
    assert!(why.contains("not in the key custodian"), "{why}");
    assert!(read.stdout.is_empty(), "no byte of the object may come out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_makes_data_unreadable_even_with_old_metadata() {
    // The attacker's copy here is the embedded engine's file; the same
    // erasure under PostgreSQL is the KEK's destruction, checked above.
    if skip_unless_embedded("the offline reader opens a copy of meta.redb") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let client = server.client();
    client.create_bucket().bucket("doomed").send().await.expect("bucket");
    client.create_bucket().bucket("kept").send().await.expect("bucket");
    let data = pattern(300_000, 11);
    for bucket in ["doomed", "kept"] {
        client.put_object().bucket(bucket).key("obj").body(ByteStream::from(data.clone())).send().await.expect("put");
    }
    let kek =
        server.cli_json(&["bucket", "info", "doomed", "--json"])["keks"][0]["id"].as_str().expect("kek").to_owned();
    // The attacker's copy: the metadata as it was before the erasure.
    server.stop();
    let old_meta = tmp.path().join("meta-backup.redb");
    std::fs::copy(dir.join("meta.redb"), &old_meta).expect("backup");
    let read = |meta: &Path, bucket: &str| offline_read(&dir, meta, bucket, "obj");
    let before = read(&old_meta, "doomed");
    assert!(before.status.success(), "offline read before erase: {}", String::from_utf8_lossy(&before.stderr));
    assert_eq!(before.stdout, data, "the offline reader works");

    let server = Server::start_in(&dir);
    let refused = server.cli(&["bucket", "erase", "doomed"]);
    assert!(!refused.status.success(), "erase without --confirm must be refused");
    let erased = server.cli_json(&["bucket", "erase", "doomed", "--confirm", "--json"]);
    assert_eq!(erased["keks_destroyed"][0], kek.as_str(), "{erased}");
    assert_eq!(erased["versions"], 1);
    if custody() == "embedded" {
        assert!(!dir.join("kms/keks").join(format!("{kek}.kek")).exists(), "the KEK file is gone");
    }
    let gone = server.client().get_object().bucket("doomed").key("obj").send().await;
    assert_eq!(error_code(gone), ("NoSuchBucket".to_owned(), 404));
    assert_eq!(try_get(&server.client(), "kept", "obj").await.expect("other bucket"), data);
    drop(server);

    let after = read(&old_meta, "doomed");
    assert!(!after.status.success(), "read after erase must fail, got {} bytes", after.stdout.len());
    assert_key_destroyed(&after);
    let other = read(&old_meta, "kept");
    assert!(other.status.success() && other.stdout == data, "other buckets stay readable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_bucket_destroys_its_key() {
    // The attacker's copy here is the embedded engine's file; the same
    // erasure under PostgreSQL is the KEK's destruction, checked above.
    if skip_unless_embedded("the offline reader opens a copy of meta.redb") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let data = pattern(100_000, 21);
    let mut server = Server::start_in(&dir);
    let client = server.client();
    client.create_bucket().bucket("brief").send().await.expect("bucket");
    client.put_object().bucket("brief").key("obj").body(ByteStream::from(data.clone())).send().await.expect("put");
    server.stop();
    // A copy of the metadata that still names the object and the bucket's KEK.
    let old_meta = tmp.path().join("meta-backup.redb");
    std::fs::copy(dir.join("meta.redb"), &old_meta).expect("backup");
    let before = offline_read(&dir, &old_meta, "brief", "obj");
    assert_eq!(before.stdout, data, "readable while the bucket exists: {}", String::from_utf8_lossy(&before.stderr));

    let server = Server::start_in(&dir);
    let client = server.client();
    client.delete_object().bucket("brief").key("obj").send().await.expect("delete object");
    client.delete_bucket().bucket("brief").send().await.expect("delete bucket");
    drop(server);
    // The blob is still on disk (its collection waits out a grace period):
    // only the destroyed KEK stands between it and the reader.
    assert_key_destroyed(&offline_read(&dir, &old_meta, "brief", "obj"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenants_key_erases_its_buckets() {
    let server = Server::start();
    let (access, secret) = server.create_key("tenant");
    let tenant = server.client_as(&access, &secret);
    tenant.create_bucket().bucket("tenant-data").send().await.expect("bucket");
    tenant.put_object().bucket("tenant-data").key("k").body(ByteStream::from_static(b"v")).send().await.expect("put");
    let refused = server.cli(&["key", "delete", &access]);
    assert!(!refused.status.success(), "a key owning buckets is not deleted silently");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("owns buckets"));
    let done = server.cli_json(&["key", "delete", &access, "--erase-buckets", "--json"]);
    assert_eq!(done["erased"][0]["bucket"], "tenant-data", "{done}");
    let gone = server.client().head_bucket().bucket("tenant-data").send().await;
    assert!(gone.is_err(), "the bucket is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_status_reports_the_custodian() {
    let server = Server::start();
    let status = server.cli_json(&["kms", "status", "--json"]);
    assert_eq!(status["custody"], custody().as_str(), "{status}");
    if custody() == "embedded" {
        assert!(status["detail"].as_str().unwrap_or_default().contains("master key"), "{status}");
    }
}
