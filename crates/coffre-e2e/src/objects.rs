//! S3 objects as the tests write and read them through the SDK: their bytes,
//! PUTs and GETs that name the key when they fail, multipart uploads, walks.

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, VersioningConfiguration};
use tokio::sync::Semaphore;

/// The hex MD5 of `data`: the ETag of an object PUT in one piece.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    let d = md5::Md5::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// PUTs `body` at `bucket/key`, which must succeed and name the object's
/// ETag; the answer (the ETag, the version id).
pub async fn put(c: &Client, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> PutObjectOutput {
    let out = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {bucket}/{key}: {e:?}"));
    assert!(out.e_tag().is_some(), "PUT {bucket}/{key} answered no ETag");
    out
}

/// The bytes of `bucket/key`, or why there are none: for tests where a
/// refused read is the right answer.
pub async fn try_get(c: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = c.get_object().bucket(bucket).key(key).send().await.map_err(|e| format!("{e:?}"))?;
    let body = out.body.collect().await.map_err(|e| format!("body: {e:?}"))?;
    Ok(body.into_bytes().to_vec())
}

/// The bytes of `bucket/key`, which must be readable.
pub async fn get(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    try_get(c, bucket, key).await.unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e}"))
}

/// Sets the versioning of `bucket` to `status`.
pub async fn set_versioning(c: &Client, bucket: &str, status: BucketVersioningStatus) {
    let config = VersioningConfiguration::builder().status(status).build();
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(config)
        .send()
        .await
        .unwrap_or_else(|e| panic!("versioning of {bucket}: {e:?}"));
}

/// Uploads part `number` of upload `id`; the part as the completion names it.
pub async fn upload_part(c: &Client, bucket: &str, key: &str, id: &str, number: i32, body: Vec<u8>) -> CompletedPart {
    let out = c
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(number)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("part {number} of {bucket}/{key}: {e:?}"));
    CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build()
}

/// Completes upload `id` of `bucket/key` with `parts`, in their order.
pub async fn complete(c: &Client, bucket: &str, key: &str, id: &str, parts: Vec<CompletedPart>) {
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("completing {bucket}/{key}: {e:?}"));
}

/// `bucket/key` written as one multipart upload of `parts`, in their order.
pub async fn multipart(c: &Client, bucket: &str, key: &str, parts: &[Vec<u8>]) {
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating an upload of {bucket}/{key}: {e:?}"));
    let id = up.upload_id().expect("upload id");
    let mut done = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        done.push(upload_part(c, bucket, key, id, i as i32 + 1, part.clone()).await);
    }
    complete(c, bucket, key, id, done).await;
}

/// Empty objects at `keys` in `bucket`, `at_once` PUTs in flight, the n-th
/// through `clients[n % len]` (several gateways may share the load).
pub async fn put_many(clients: &[Client], bucket: &str, keys: impl IntoIterator<Item = String>, at_once: usize) {
    let sem = Arc::new(Semaphore::new(at_once));
    let mut tasks = Vec::new();
    for (n, key) in keys.into_iter().enumerate() {
        let permit = sem.clone().acquire_owned().await.expect("permit");
        let (c, bucket) = (clients[n % clients.len()].clone(), bucket.to_owned());
        tasks.push(tokio::spawn(async move {
            put(&c, &bucket, &key, Vec::new()).await;
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.expect("put task");
    }
}

/// Every page of a ListObjectsV2 walk of `bucket`, the n-th asked of
/// `clients[n % len]`: a continuation token must serve on any gateway.
pub async fn list_pages(clients: &[Client], bucket: &str) -> Vec<ListObjectsV2Output> {
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let c = &clients[pages.len() % clients.len()];
        let page = c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("listing {bucket}: {e:?}"));
        token = page.next_continuation_token().map(str::to_owned);
        pages.push(page);
        if token.is_none() {
            return pages;
        }
    }
}

/// Every page of a ListObjectVersions walk of `bucket`, `max_keys` a page.
pub async fn version_pages(c: &Client, bucket: &str, max_keys: i32) -> Vec<ListObjectVersionsOutput> {
    version_pages_with(c, bucket, Some(max_keys), None).await
}

/// Every page of a ListObjectVersions walk of `bucket`, resumed from each
/// page's NextKeyMarker and NextVersionIdMarker (a truncated page must name
/// its NextKeyMarker).
pub async fn version_pages_with(
    c: &Client,
    bucket: &str,
    max_keys: Option<i32>,
    delimiter: Option<&str>,
) -> Vec<ListObjectVersionsOutput> {
    let mut pages = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = c
            .list_object_versions()
            .bucket(bucket)
            .set_max_keys(max_keys)
            .set_delimiter(delimiter.map(str::to_owned))
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .unwrap_or_else(|e| panic!("listing the versions in {bucket}: {e:?}"));
        let truncated = page.is_truncated() == Some(true);
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        assert!(!truncated || key_marker.is_some(), "a truncated page of {bucket} names no NextKeyMarker");
        pages.push(page);
        if !truncated {
            return pages;
        }
        assert!(pages.len() < 100_000, "the pages of {bucket} never end");
    }
}
