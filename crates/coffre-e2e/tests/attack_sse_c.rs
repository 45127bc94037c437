//! SSE-C objects attacked for digests of their plaintext: a reader without
//! the customer's key (a client, an operator reading the metadata files or
//! database rows) learns neither the plaintext's MD5 nor its checksums. The
//! ETag is random (multipart keeps its `-N` form); checksums, a single PUT's,
//! each part's and a multipart object's, are sealed and come back only to a
//! request bringing the key (ListParts leaves them out without it).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart};
use coffre_e2e::files::files_under;
use coffre_e2e::pg::pg_dump_for;
use coffre_e2e::{Server, error_code, md5_hex, pattern};
use md5::Digest as _;

struct CustomerKey {
    key: String,
    md5: String,
}

fn customer_key(seed: u8) -> CustomerKey {
    let key = [seed; 32];
    let md5 = md5::Md5::digest(key);
    CustomerKey { key: aws_smithy_types::base64::encode(key), md5: aws_smithy_types::base64::encode(md5) }
}

/// What must not be found in clear anywhere: the digests of one plaintext.
struct Digests {
    what: String,
    md5: [u8; 16],
    sha256: [u8; 32],
}

impl Digests {
    fn of(what: &str, plain: &[u8]) -> Self {
        Self { what: what.into(), md5: md5::Md5::digest(plain).into(), sha256: sha2::Sha256::digest(plain).into() }
    }

    fn sha256_b64(&self) -> String {
        aws_smithy_types::base64::encode(self.sha256)
    }

    /// Every form the digests could be stored in: raw, hex, base64, and each
    /// of those again in hex (how `pg_dump` writes a bytea column).
    fn needles(&self) -> Vec<(String, Vec<u8>)> {
        let hex = |b: &[u8]| hex_simd::encode_to_string(b, hex_simd::AsciiCase::Lower).into_bytes();
        let forms = [
            ("raw MD5", self.md5.to_vec()),
            ("hex MD5", hex(&self.md5)),
            ("raw SHA-256", self.sha256.to_vec()),
            ("hex SHA-256", hex(&self.sha256)),
            ("base64 SHA-256", self.sha256_b64().into_bytes()),
        ];
        forms
            .into_iter()
            .flat_map(|(form, bytes)| {
                let in_bytea = hex(&bytes);
                [(format!("{}: {form}", self.what), bytes), (format!("{}: {form} in a bytea", self.what), in_bytea)]
            })
            .collect()
    }
}

async fn put_sse_c(
    c: &Client,
    k: &CustomerKey,
    key: &str,
    body: Vec<u8>,
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    c.put_object()
        .bucket("sealed")
        .key(key)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("SSE-C put")
}

/// A two-part SSE-C upload; the plaintext digests of its parts and the
/// ETag a plaintext-MD5 server would give, then the ETag it got.
async fn multipart_sse_c(c: &Client, k: &CustomerKey, parts: &[Vec<u8>]) -> (String, String) {
    let up = c
        .create_multipart_upload()
        .bucket("sealed")
        .key("multi")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id");
    let mut done = Vec::new();
    let mut md5s = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let part = c
            .upload_part()
            .bucket("sealed")
            .key("multi")
            .upload_id(id)
            .part_number(number)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part");
        let etag = part.e_tag().expect("part etag").to_owned();
        assert_ne!(etag.trim_matches('"'), md5_hex(body), "part {number}'s ETag is its plaintext MD5");
        md5s.extend_from_slice(&md5::Md5::digest(body));
        let sha = part.checksum_sha256().map(str::to_owned);
        done.push(CompletedPart::builder().part_number(number).e_tag(etag).set_checksum_sha256(sha).build());
    }
    let completed = c
        .complete_multipart_upload()
        .bucket("sealed")
        .key("multi")
        .upload_id(id)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .expect("complete");
    let plain_etag = format!("{}-{}", md5_hex(&md5s), parts.len());
    (plain_etag, completed.e_tag().expect("etag").trim_matches('"').to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_objects_keep_no_plaintext_digest_in_clear() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_with(&dir, &[("COFFRE_SSE_C_OVER_HTTP", "true")]);
    let c = server.client();
    let k = customer_key(42);
    c.create_bucket().bucket("sealed").send().await.expect("bucket");
    // One inline (in the metadata record), one in a blob.
    let objects = [("small", pattern(300, 1)), ("large", pattern(200_000, 2))];
    let mut digests = Vec::new();
    for (key, plain) in &objects {
        let d = Digests::of(key, plain);
        let put = put_sse_c(&c, &k, key, plain.clone()).await;
        let etag = put.e_tag().expect("etag").trim_matches('"').to_owned();
        assert_ne!(etag, md5_hex(plain), "{key}: the ETag is the plaintext MD5");
        assert_eq!(etag.len(), 32, "{key}: an ETag of the usual shape: {etag}");
        assert_eq!(put.checksum_sha256(), Some(d.sha256_b64().as_str()), "{key}: the writer is told its checksum");

        // Without the key: HEAD and GET refused, the listings say nothing of the plaintext.
        assert_eq!(error_code(c.head_object().bucket("sealed").key(*key).send().await).1, 400, "{key}: HEAD");
        assert_eq!(error_code(c.get_object().bucket("sealed").key(*key).send().await).1, 400, "{key}: GET");
        let attrs = c.get_object_attributes().bucket("sealed").key(*key).send().await;
        assert!(attrs.is_err() || attrs.as_ref().is_ok_and(|a| a.checksum().is_none()), "{key}: attributes");
        // With the key: the sealed checksum opens.
        let head = c
            .head_object()
            .bucket("sealed")
            .key(*key)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("HEAD with the key");
        assert_eq!(head.checksum_sha256(), Some(d.sha256_b64().as_str()), "{key}: the checksum for the key holder");
        assert_eq!(head.e_tag().map(|e| e.trim_matches('"')), Some(etag.as_str()));
        let got = c
            .get_object()
            .bucket("sealed")
            .key(*key)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("GET with the key");
        assert_eq!(got.checksum_sha256(), Some(d.sha256_b64().as_str()));
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), plain.as_slice());
        let other = customer_key(43);
        let wrong = c
            .head_object()
            .bucket("sealed")
            .key(*key)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&other.key)
            .sse_customer_key_md5(&other.md5)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        assert_eq!(error_code(wrong).1, 403, "{key}: another key opens nothing");
        digests.push(d);
    }

    let parts = [pattern(5 * 1024 * 1024, 3), pattern(1000, 4)];
    let (plain_etag, etag) = multipart_sse_c(&c, &k, &parts).await;
    assert!(etag.ends_with("-2"), "a multipart ETag keeps its -N form: {etag}");
    assert_ne!(etag, plain_etag, "the multipart ETag is made of the parts' plaintext MD5s");
    digests.extend(parts.iter().enumerate().map(|(i, p)| Digests::of(&format!("part {}", i + 1), p)));

    let listed = c.list_objects_v2().bucket("sealed").send().await.expect("list");
    let versions = c.list_object_versions().bucket("sealed").send().await.expect("versions");
    let etags: Vec<&str> = listed
        .contents()
        .iter()
        .filter_map(|o| o.e_tag())
        .chain(versions.versions().iter().filter_map(|v| v.e_tag()))
        .collect();
    assert_eq!(etags.len(), 6, "three objects in each listing");
    for (key, plain) in &objects {
        assert!(!etags.iter().any(|e| e.trim_matches('"') == md5_hex(plain)), "{key}'s plaintext MD5 in a listing");
    }
    for o in listed.contents() {
        assert!(o.checksum_algorithm().is_empty(), "a listing names no checksum of an SSE-C object: {o:?}");
    }

    // What an operator reads: every file of the data directory, and the database's rows.
    server.stop();
    let mut stored: Vec<(String, Vec<u8>)> =
        files_under(&dir).into_iter().map(|f| (f.display().to_string(), std::fs::read(&f).expect("read"))).collect();
    if let Some(dump) = pg_dump_for(&dir) {
        stored.push(("the PostgreSQL database".into(), dump));
    }
    for (name, bytes) in &stored {
        for d in &digests {
            for (what, needle) in d.needles() {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_slice()), "{what} found in {name}");
            }
        }
    }
}

/// ListParts with or without the customer's key: the SHA-256 of each part, as listed.
async fn listed_part_checksums(c: &Client, id: &str, k: Option<&CustomerKey>) -> Vec<Option<String>> {
    let listed = c
        .list_parts()
        .bucket("sealed")
        .key("sums")
        .upload_id(id)
        .set_sse_customer_algorithm(k.map(|_| "AES256".to_owned()))
        .set_sse_customer_key(k.map(|k| k.key.clone()))
        .set_sse_customer_key_md5(k.map(|k| k.md5.clone()))
        .send()
        .await
        .expect("list parts");
    listed.parts().iter().map(|p| p.checksum_sha256().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_multipart_checksums_are_sealed_and_open_only_with_the_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_with(&dir, &[("COFFRE_SSE_C_OVER_HTTP", "true")]);
    let c = server.client();
    let (k, other) = (customer_key(42), customer_key(43));
    c.create_bucket().bucket("sealed").send().await.expect("bucket");
    let up = c
        .create_multipart_upload()
        .bucket("sealed")
        .key("sums")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id").to_owned();
    let parts = [pattern(5 * 1024 * 1024, 5), pattern(1000, 6)];
    let digests: Vec<Digests> =
        parts.iter().enumerate().map(|(i, p)| Digests::of(&format!("part {}", i + 1), p)).collect();
    let mut done = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let part = c
            .upload_part()
            .bucket("sealed")
            .key("sums")
            .upload_id(&id)
            .part_number(number)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part");
        assert_eq!(
            part.checksum_sha256(),
            Some(digests[i].sha256_b64().as_str()),
            "the writer is told part {number}'s"
        );
        let etag = part.e_tag().expect("etag").to_owned();
        done.push(
            CompletedPart::builder().part_number(number).e_tag(etag).checksum_sha256(digests[i].sha256_b64()).build(),
        );
    }

    // ListParts: the checksums for the key holder only; another key is refused.
    let want: Vec<Option<String>> = digests.iter().map(|d| Some(d.sha256_b64())).collect();
    assert_eq!(listed_part_checksums(&c, &id, Some(&k)).await, want, "the parts' checksums, opened with the key");
    assert_eq!(listed_part_checksums(&c, &id, None).await, [None, None], "no checksum without the key");
    let wrong = c
        .list_parts()
        .bucket("sealed")
        .key("sums")
        .upload_id(&id)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&other.key)
        .sse_customer_key_md5(&other.md5)
        .send()
        .await;
    assert_eq!(error_code(wrong).1, 403, "another key opens nothing");

    // CompleteMultipartUpload needs the key to combine the parts' checksums, as on S3.
    let complete = |key: Option<&CustomerKey>, parts: Vec<CompletedPart>| {
        c.complete_multipart_upload()
            .bucket("sealed")
            .key("sums")
            .upload_id(&id)
            .set_sse_customer_algorithm(key.map(|_| "AES256".to_owned()))
            .set_sse_customer_key(key.map(|k| k.key.clone()))
            .set_sse_customer_key_md5(key.map(|k| k.md5.clone()))
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
    };
    assert_eq!(error_code(complete(None, done.clone()).await).1, 400, "completed without the key");
    let mut forged = done.clone();
    forged[1] = CompletedPart::builder()
        .part_number(2)
        .e_tag(done[1].e_tag().unwrap_or_default())
        .checksum_sha256(digests[0].sha256_b64())
        .build();
    let refused = complete(Some(&k), forged).await;
    assert_eq!(error_code(refused).0, "InvalidPart", "a part's checksum that is not its own");
    let completed = complete(Some(&k), done).await.expect("complete with the key");
    let raw: Vec<u8> = digests.iter().flat_map(|d| d.sha256).collect();
    let composite = Digests::of("the composite checksum's input", &raw);
    let want = format!("{}-2", composite.sha256_b64());
    assert_eq!(completed.checksum_sha256(), Some(want.as_str()), "the completer is told the object's checksum");

    // HEAD and GET with the key and ChecksumMode: the composite checksum.
    let head = c
        .head_object()
        .bucket("sealed")
        .key("sums")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("HEAD with the key");
    assert_eq!(head.checksum_sha256(), Some(want.as_str()));
    let got = c
        .get_object()
        .bucket("sealed")
        .key("sums")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("GET with the key");
    assert_eq!(got.checksum_sha256(), Some(want.as_str()));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().len(), parts.iter().map(Vec::len).sum::<usize>());

    // Nothing of it in clear where an operator reads.
    server.stop();
    let mut stored: Vec<(String, Vec<u8>)> =
        files_under(&dir).into_iter().map(|f| (f.display().to_string(), std::fs::read(&f).expect("read"))).collect();
    if let Some(dump) = pg_dump_for(&dir) {
        stored.push(("the PostgreSQL database".into(), dump));
    }
    for (name, bytes) in &stored {
        for d in digests.iter().chain([&composite]) {
            for (what, needle) in d.needles() {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_slice()), "{what} found in {name}");
            }
        }
    }
}

/// A FULL_OBJECT CRC64NVME SSE-C upload: the whole object's CRC, combined
/// from the sealed parts' with the key, reaches the key holder only and is
/// found in clear nowhere on disk (nor are the parts').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_full_object_checksums_are_sealed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_with(&dir, &[("COFFRE_SSE_C_OVER_HTTP", "true")]);
    let c = server.client();
    let (k, other) = (customer_key(44), customer_key(45));
    c.create_bucket().bucket("sealed").send().await.expect("bucket");
    let crc64 = |data: &[u8]| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data).to_be_bytes();
    let up = c
        .create_multipart_upload()
        .bucket("sealed")
        .key("whole")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id").to_owned();
    let parts = [pattern(5 * 1024 * 1024, 11), pattern(777, 12)];
    let mut done = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let part = c
            .upload_part()
            .bucket("sealed")
            .key("whole")
            .upload_id(&id)
            .part_number(number)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part");
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().expect("etag"))
                .set_checksum_crc64_nvme(part.checksum_crc64_nvme().map(str::to_owned))
                .build(),
        );
    }
    let whole = crc64(&parts.concat());
    let want = aws_smithy_types::base64::encode(whole);
    let completed = c
        .complete_multipart_upload()
        .bucket("sealed")
        .key("whole")
        .upload_id(&id)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .checksum_crc64_nvme(&want)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .expect("complete with the key");
    assert_eq!(completed.checksum_crc64_nvme(), Some(want.as_str()));

    let head = |key: &CustomerKey| {
        c.head_object()
            .bucket("sealed")
            .key("whole")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&key.key)
            .sse_customer_key_md5(&key.md5)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
    };
    let h = head(&k).await.expect("HEAD with the key");
    assert_eq!((h.checksum_crc64_nvme(), h.checksum_type()), (Some(want.as_str()), Some(&ChecksumType::FullObject)));
    assert_eq!(error_code(head(&other).await).1, 403, "another key opens nothing");

    server.stop();
    let hex = |b: &[u8]| hex_simd::encode_to_string(b, hex_simd::AsciiCase::Lower).into_bytes();
    let mut needles = Vec::new();
    for (what, raw) in [("whole", whole), ("part 1", crc64(&parts[0])), ("part 2", crc64(&parts[1]))] {
        let b64 = aws_smithy_types::base64::encode(raw).into_bytes();
        for (form, bytes) in [("raw", raw.to_vec()), ("base64", b64)] {
            needles.push((format!("{what}: {form} CRC64NVME in a bytea"), hex(&bytes)));
            needles.push((format!("{what}: {form} CRC64NVME"), bytes));
        }
    }
    let mut stored: Vec<(String, Vec<u8>)> =
        files_under(&dir).into_iter().map(|f| (f.display().to_string(), std::fs::read(&f).expect("read"))).collect();
    if let Some(dump) = pg_dump_for(&dir) {
        stored.push(("the PostgreSQL database".into(), dump));
    }
    for (name, bytes) in &stored {
        for (what, needle) in &needles {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_slice()), "{what} found in {name}");
        }
    }
}
