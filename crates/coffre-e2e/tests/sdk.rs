//! The AWS SDK for Rust against a real `coffre serve`: every operation of the
//! foundation, and the errors S3 gives for each misuse.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete, EncodingType, MetadataDirective,
    ObjectIdentifier,
};
use coffre_e2e::objects::{get, put, put_many, upload_part};
use coffre_e2e::{Server, error_code, md5_hex, pattern};

#[tokio::test]
async fn bucket_lifecycle_and_errors() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("alpha").send().await.expect("create");
    c.head_bucket().bucket("alpha").send().await.expect("head");
    assert_eq!(error_code(c.create_bucket().bucket("alpha").send().await), ("BucketAlreadyOwnedByYou".into(), 409));
    assert_eq!(error_code(c.create_bucket().bucket("Not_Valid").send().await), ("InvalidBucketName".into(), 400));
    let loc = c.get_bucket_location().bucket("alpha").send().await.expect("location");
    assert!(loc.location_constraint.is_none_or(|l| l.as_str().is_empty()), "us-east-1 is an empty constraint");
    let names: Vec<_> =
        c.list_buckets().send().await.expect("list").buckets().iter().filter_map(|b| b.name.clone()).collect();
    assert_eq!(names, ["alpha"]);

    put(&c, "alpha", "k", b"v").await;
    assert_eq!(error_code(c.delete_bucket().bucket("alpha").send().await), ("BucketNotEmpty".into(), 409));
    c.delete_object().bucket("alpha").key("k").send().await.expect("delete object");
    c.delete_bucket().bucket("alpha").send().await.expect("delete bucket");
    let (_, status) = error_code(c.head_bucket().bucket("alpha").send().await);
    assert_eq!(status, 404);
    assert_eq!(error_code(c.get_object().bucket("alpha").key("k").send().await), ("NoSuchBucket".into(), 404));
}

/// As on AWS: unfinished uploads do not keep a bucket, versions and delete
/// markers do; each upload aborted is in the audit log as an abort.
#[tokio::test]
async fn delete_bucket_aborts_unfinished_uploads_but_keeps_versions() {
    let mut server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("pending").send().await.expect("create");
    let mut ids = Vec::new();
    for key in ["a", "b/c"] {
        let id = c.create_multipart_upload().bucket("pending").key(key).send().await.expect("start");
        ids.push(id.upload_id.expect("upload id"));
    }
    upload_part(&c, "pending", "a", &ids[0], 1, pattern(1000, 3)).await;
    c.delete_bucket().bucket("pending").send().await.expect("a bucket holding only uploads is deleted");
    assert_eq!(error_code(c.head_bucket().bucket("pending").send().await).1, 404);
    let late = c.upload_part().bucket("pending").key("a").upload_id(&ids[0]).part_number(2);
    assert_eq!(error_code(late.body(ByteStream::from_static(b"x")).send().await).0, "NoSuchBucket");
    // The name again: none of the old uploads is there.
    c.create_bucket().bucket("pending").send().await.expect("create again");
    let listed = c.list_multipart_uploads().bucket("pending").send().await.expect("list uploads");
    assert!(listed.uploads().is_empty(), "{listed:?}");
    let stale = c.list_parts().bucket("pending").key("a").upload_id(&ids[0]).send().await;
    assert_eq!(error_code(stale).0, "NoSuchUpload");

    // An upload beside an object, then beside a delete marker only: refused, nothing aborted.
    let id = c.create_multipart_upload().bucket("pending").key("u").send().await.expect("start");
    let id = id.upload_id.expect("upload id");
    put(&c, "pending", "k", b"v").await;
    assert_eq!(error_code(c.delete_bucket().bucket("pending").send().await), ("BucketNotEmpty".into(), 409));
    coffre_e2e::objects::set_versioning(&c, "pending", aws_sdk_s3::types::BucketVersioningStatus::Enabled).await;
    c.delete_object().bucket("pending").key("k").version_id("null").send().await.expect("delete the version");
    c.delete_object().bucket("pending").key("k").send().await.expect("a delete marker");
    assert_eq!(error_code(c.delete_bucket().bucket("pending").send().await), ("BucketNotEmpty".into(), 409));
    c.list_parts().bucket("pending").key("u").upload_id(&id).send().await.expect("the upload is kept");

    let dir = server.data_dir.clone();
    server.stop();
    let aborts = coffre_e2e::audit::events(&dir, &["--operation", "change:AbortMultipartUpload"]);
    for upload in &ids {
        let detail = format!("upload_id={upload} by=DeleteBucket");
        let found = aborts.iter().any(|e| e["detail"].as_str() == Some(detail.as_str()));
        assert!(found, "no abort event for {upload}: {aborts:#?}");
    }
    assert_eq!(aborts.len(), 2, "the refused deletes recorded no abort: {aborts:#?}");
}

#[tokio::test]
async fn objects_keep_metadata_and_checksums() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let data = pattern(100_000, 1);
    let stored = c
        .put_object()
        .bucket("bkt")
        .key("dir/file.bin")
        .body(ByteStream::from(data.clone()))
        .content_type("application/x-test")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"f.bin\"")
        .cache_control("max-age=60")
        .metadata("colour", "bleu")
        .metadata("owner", "ministère")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("put");
    assert_eq!(stored.e_tag(), Some(format!("\"{}\"", md5_hex(&data)).as_str()));
    assert!(stored.checksum_sha256().is_some());

    let got = c
        .get_object()
        .bucket("bkt")
        .key("dir/file.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("application/x-test"));
    assert_eq!(got.content_encoding(), Some("identity"));
    assert_eq!(got.content_disposition(), Some("attachment; filename=\"f.bin\""));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(got.metadata().and_then(|m| m.get("colour")).map(String::as_str), Some("bleu"));
    // Non-ASCII metadata comes back MIME-encoded (RFC 2047), as AWS returns it.
    assert_eq!(got.metadata().and_then(|m| m.get("owner")).map(String::as_str), Some("=?UTF-8?B?bWluaXN0w6hyZQ==?="));
    assert_eq!(got.checksum_sha256(), stored.checksum_sha256());
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &data[..]);

    // The SDK's default: CRC32 computed while streaming, sent as an aws-chunked trailer.
    for (alg, key) in
        [(ChecksumAlgorithm::Crc32, "crc32"), (ChecksumAlgorithm::Crc32C, "crc32c"), (ChecksumAlgorithm::Sha1, "sha1")]
    {
        let out = c
            .put_object()
            .bucket("bkt")
            .key(key)
            .body(ByteStream::from(data.clone()))
            .checksum_algorithm(alg)
            .send()
            .await
            .expect("put with checksum");
        let head =
            c.head_object().bucket("bkt").key(key).checksum_mode(ChecksumMode::Enabled).send().await.expect("head");
        assert_eq!(
            (head.checksum_crc32(), head.checksum_crc32_c(), head.checksum_sha1()),
            (out.checksum_crc32(), out.checksum_crc32_c(), out.checksum_sha1())
        );
        assert_eq!(head.content_length(), Some(data.len() as i64));
    }

    // A checksum that does not match the body: refused, nothing stored.
    let bad = c
        .put_object()
        .bucket("bkt")
        .key("bad")
        .body(ByteStream::from(data.clone()))
        .checksum_crc32("AAAAAA==")
        .send()
        .await;
    assert_eq!(error_code(bad), ("BadDigest".into(), 400));
    let bad_md5 = c
        .put_object()
        .bucket("bkt")
        .key("bad")
        .body(ByteStream::from_static(b"abc"))
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .send()
        .await;
    assert_eq!(error_code(bad_md5), ("BadDigest".into(), 400));
    assert_eq!(error_code(c.head_object().bucket("bkt").key("bad").send().await).1, 404);

    // Empty objects and small (inline) ones.
    put(&c, "bkt", "empty", b"").await;
    assert_eq!(get(&c, "bkt", "empty").await, b"");
    put(&c, "bkt", "small", b"tiny").await;
    assert_eq!(get(&c, "bkt", "small").await, b"tiny");
}

#[tokio::test]
async fn ranges_and_conditional_reads() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let data = pattern(10_000, 2);
    let etag = put(&c, "bkt", "obj", data.clone()).await.e_tag.expect("etag");
    let range = |r: &'static str| c.get_object().bucket("bkt").key("obj").range(r).send();
    for (spec, want) in [
        ("bytes=0-9", &data[0..10]),
        ("bytes=9990-", &data[9990..]),
        ("bytes=-5", &data[9995..]),
        ("bytes=100-99999", &data[100..]),
    ] {
        let out = range(spec).await.expect(spec);
        assert_eq!(out.content_length(), Some(want.len() as i64), "{spec}");
        assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), want, "{spec}");
    }
    assert_eq!(error_code(range("bytes=10000-").await), ("InvalidRange".into(), 416));

    let get = || c.get_object().bucket("bkt").key("obj");
    assert!(get().if_match(&etag).send().await.is_ok());
    assert_eq!(error_code(get().if_match("\"nope\"").send().await), ("PreconditionFailed".into(), 412));
    assert_eq!(error_code(get().if_none_match(&etag).send().await).1, 304);
    let past = aws_sdk_s3::primitives::DateTime::from_secs(1_000_000);
    let future = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    assert_eq!(error_code(get().if_unmodified_since(past).send().await).1, 412);
    assert_eq!(error_code(get().if_modified_since(future).send().await).1, 304);
    assert!(get().if_modified_since(past).send().await.is_ok());
    let over = get()
        .response_content_type("text/x-override")
        .response_cache_control("no-store")
        .send()
        .await
        .expect("override");
    assert_eq!(over.content_type(), Some("text/x-override"));
    assert_eq!(over.cache_control(), Some("no-store"));
    assert_eq!(error_code(c.get_object().bucket("bkt").key("missing").send().await), ("NoSuchKey".into(), 404));
}

#[tokio::test]
async fn create_only_put_is_atomic_under_concurrency() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let tasks: Vec<_> = (0..32u64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let data = pattern(20_000, i);
                let r = c
                    .put_object()
                    .bucket("bkt")
                    .key("once")
                    .if_none_match("*")
                    .body(ByteStream::from(data.clone()))
                    .send()
                    .await;
                (r.is_ok(), data, r.err().map(|e| e.raw_response().map(|r| r.status().as_u16())))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (ok, data, status) = t.await.expect("task");
        if ok {
            winners.push(data);
        } else {
            assert_eq!(status, Some(Some(412)), "losers get 412 PreconditionFailed");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create-only PUT wins");
    assert_eq!(get(&c, "bkt", "once").await, winners[0]);

    // CompleteMultipartUpload with If-None-Match: * refuses to replace, and keeps the upload.
    for (key, should_win) in [("once", false), ("fresh", true)] {
        let up = c.create_multipart_upload().bucket("bkt").key(key).send().await.expect("create upload");
        let id = up.upload_id().expect("id").to_owned();
        let part = upload_part(&c, "bkt", key, &id, 1, b"multipart".to_vec()).await;
        let done = CompletedMultipartUpload::builder().parts(part).build();
        let complete =
            || c.complete_multipart_upload().bucket("bkt").key(key).upload_id(&id).multipart_upload(done.clone());
        let r = complete().if_none_match("*").send().await;
        if should_win {
            r.expect("create-only complete on a new key");
            assert_eq!(get(&c, "bkt", key).await, b"multipart");
        } else {
            assert_eq!(error_code(r), ("PreconditionFailed".into(), 412));
            assert_eq!(get(&c, "bkt", key).await, winners[0], "the existing object is untouched");
            complete().send().await.expect("the upload survived the failed condition");
        }
    }
}

#[tokio::test]
async fn multipart_upload_round_trip_and_errors() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let mib = 1024 * 1024;
    let parts_data = [pattern(5 * mib, 10), pattern(5 * mib, 11), pattern(mib + 7, 12)];

    let up = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("big")
        .content_type("video/x-test")
        .metadata("m", "1")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id").to_owned();
    let mut completed = Vec::new();
    for (i, data) in parts_data.iter().enumerate() {
        let n = i as i32 + 1;
        let out = c
            .upload_part()
            .bucket("bkt")
            .key("big")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .expect("upload part");
        assert_eq!(out.e_tag(), Some(format!("\"{}\"", md5_hex(data)).as_str()));
        completed.push(
            CompletedPart::builder().part_number(n).set_e_tag(out.e_tag).set_checksum_crc32(out.checksum_crc32).build(),
        );
    }
    let listed = c.list_parts().bucket("bkt").key("big").upload_id(&id).send().await.expect("list parts");
    assert_eq!(listed.parts().len(), 3);
    assert_eq!(listed.parts()[2].size(), Some((mib + 7) as i64));
    let uploads = c.list_multipart_uploads().bucket("bkt").send().await.expect("list uploads");
    assert_eq!(uploads.uploads().iter().filter_map(|u| u.upload_id()).collect::<Vec<_>>(), [id.as_str()]);

    let wrong_order =
        CompletedMultipartUpload::builder().parts(completed[1].clone()).parts(completed[0].clone()).build();
    let r = c
        .complete_multipart_upload()
        .bucket("bkt")
        .key("big")
        .upload_id(&id)
        .multipart_upload(wrong_order)
        .send()
        .await;
    assert_eq!(error_code(r), ("InvalidPartOrder".into(), 400));
    let bad_etag = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag("\"0000\"").build())
        .build();
    let r =
        c.complete_multipart_upload().bucket("bkt").key("big").upload_id(&id).multipart_upload(bad_etag).send().await;
    assert_eq!(error_code(r), ("InvalidPart".into(), 400));
    let too_small = CompletedMultipartUpload::builder()
        .parts(completed[2].clone())
        .parts(CompletedPart::builder().part_number(4).e_tag("\"x\"").build())
        .build();
    let r =
        c.complete_multipart_upload().bucket("bkt").key("big").upload_id(&id).multipart_upload(too_small).send().await;
    assert_eq!(error_code(r).0, "InvalidPart", "a missing part is reported before any size check");

    let all = CompletedMultipartUpload::builder().set_parts(Some(completed)).build();
    let done = c
        .complete_multipart_upload()
        .bucket("bkt")
        .key("big")
        .upload_id(&id)
        .multipart_upload(all)
        .send()
        .await
        .expect("complete");
    let md5s: Vec<u8> = parts_data.iter().flat_map(|d| hex_simd::decode_to_vec(md5_hex(d)).expect("hex")).collect();
    assert_eq!(done.e_tag(), Some(format!("\"{}-3\"", md5_hex(&md5s)).as_str()));
    let whole: Vec<u8> = parts_data.concat();
    let got = c.get_object().bucket("bkt").key("big").send().await.expect("get");
    assert_eq!(got.content_type(), Some("video/x-test"));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &whole[..]);
    // A range that spans the boundary between parts 1 and 2.
    let span = c
        .get_object()
        .bucket("bkt")
        .key("big")
        .range(format!("bytes={}-{}", 5 * mib - 3, 5 * mib + 2))
        .send()
        .await
        .expect("range");
    assert_eq!(span.body.collect().await.expect("body").into_bytes().as_ref(), &whole[5 * mib - 3..5 * mib + 3]);

    // GET and HEAD by partNumber: one part's bytes, and how many parts there are.
    let part2 = c.get_object().bucket("bkt").key("big").part_number(2).send().await.expect("part 2");
    assert_eq!(part2.parts_count(), Some(3));
    assert_eq!(part2.content_range(), Some(format!("bytes {}-{}/{}", 5 * mib, 10 * mib - 1, whole.len()).as_str()));
    assert_eq!(part2.body.collect().await.expect("body").into_bytes().as_ref(), &whole[5 * mib..10 * mib]);
    let head3 = c.head_object().bucket("bkt").key("big").part_number(3).send().await.expect("head part 3");
    assert_eq!((head3.content_length(), head3.parts_count()), (Some((mib + 7) as i64), Some(3)));
    assert_eq!(
        error_code(c.get_object().bucket("bkt").key("big").part_number(4).send().await),
        ("InvalidPartNumber".into(), 416)
    );
    let both = c.get_object().bucket("bkt").key("big").part_number(1).range("bytes=0-1").send().await;
    assert_eq!(error_code(both).1, 400);

    // The upload is gone once completed.
    assert_eq!(
        error_code(c.list_parts().bucket("bkt").key("big").upload_id(&id).send().await),
        ("NoSuchUpload".into(), 404)
    );

    // UploadPartCopy with a range, then a too-small first part.
    let up2 = c.create_multipart_upload().bucket("bkt").key("copy").send().await.expect("create");
    let id2 = up2.upload_id().expect("id").to_owned();
    let p1 = c
        .upload_part_copy()
        .bucket("bkt")
        .key("copy")
        .upload_id(&id2)
        .part_number(1)
        .copy_source("bkt/big")
        .copy_source_range(format!("bytes=0-{}", 5 * mib - 1))
        .send()
        .await
        .expect("part copy");
    let p2 = c
        .upload_part_copy()
        .bucket("bkt")
        .key("copy")
        .upload_id(&id2)
        .part_number(2)
        .copy_source("bkt/big")
        .copy_source_range("bytes=10-19")
        .send()
        .await
        .expect("part copy");
    let e1 = p1.copy_part_result().and_then(|r| r.e_tag()).expect("etag").to_owned();
    let e2 = p2.copy_part_result().and_then(|r| r.e_tag()).expect("etag").to_owned();
    let wrong_small = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(2).e_tag(&e2).build())
        .parts(CompletedPart::builder().part_number(3).e_tag(&e2).build())
        .build();
    assert_eq!(
        error_code(
            c.complete_multipart_upload()
                .bucket("bkt")
                .key("copy")
                .upload_id(&id2)
                .multipart_upload(wrong_small)
                .send()
                .await
        )
        .0,
        "InvalidPart"
    );
    let ok = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(&e1).build())
        .parts(CompletedPart::builder().part_number(2).e_tag(&e2).build())
        .build();
    c.complete_multipart_upload()
        .bucket("bkt")
        .key("copy")
        .upload_id(&id2)
        .multipart_upload(ok)
        .send()
        .await
        .expect("complete copy");
    let mut want = whole[..5 * mib].to_vec();
    want.extend_from_slice(&whole[10..20]);
    assert_eq!(get(&c, "bkt", "copy").await, want);

    // Abort: parts disappear, the upload id no longer works.
    let up3 = c.create_multipart_upload().bucket("bkt").key("aborted").send().await.expect("create");
    let id3 = up3.upload_id().expect("id").to_owned();
    upload_part(&c, "bkt", "aborted", &id3, 1, b"x".to_vec()).await;
    c.abort_multipart_upload().bucket("bkt").key("aborted").upload_id(&id3).send().await.expect("abort");
    assert_eq!(
        error_code(c.abort_multipart_upload().bucket("bkt").key("aborted").upload_id(&id3).send().await),
        ("NoSuchUpload".into(), 404)
    );
    assert_eq!(
        error_code(
            c.upload_part()
                .bucket("bkt")
                .key("aborted")
                .upload_id(&id3)
                .part_number(1)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        )
        .0,
        "NoSuchUpload"
    );
    assert_eq!(error_code(c.head_object().bucket("bkt").key("aborted").send().await).1, 404);
}

#[tokio::test]
async fn listing_paginates_like_s3() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let mut keys = Vec::new();
    for d in 0..12 {
        for f in 0..25 {
            keys.push(format!("dir{d:02}/sub{}/f{f:03}", f % 3));
        }
        keys.push(format!("top{d:02}"));
    }
    keys.push("a b+c%d".into());
    put_many(std::slice::from_ref(&c), "bkt", keys.iter().cloned(), 32).await;
    keys.sort();

    // All keys, pages of 7.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let out =
            c.list_objects_v2().bucket("bkt").max_keys(7).set_continuation_token(token).send().await.expect("list");
        assert!(out.key_count().unwrap_or(0) <= 7);
        seen.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            assert_eq!(out.is_truncated(), Some(false));
            break;
        }
    }
    assert_eq!(seen, keys);

    // Delimiter at the top: 12 common prefixes + 13 top-level keys, in order, pages of 5.
    let mut entries = Vec::new();
    let mut token = None;
    loop {
        let out = c
            .list_objects_v2()
            .bucket("bkt")
            .delimiter("/")
            .max_keys(5)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        entries.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        entries.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    entries.sort();
    let mut want: Vec<String> =
        (0..12).map(|d| format!("dir{d:02}/")).chain((0..12).map(|d| format!("top{d:02}"))).collect();
    want.push("a b+c%d".into());
    want.sort();
    assert_eq!(entries, want);

    // Prefix + delimiter one level down; start-after.
    let out = c.list_objects_v2().bucket("bkt").prefix("dir03/").delimiter("/").send().await.expect("list");
    let prefixes: Vec<_> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["dir03/sub0/", "dir03/sub1/", "dir03/sub2/"]);
    let out = c
        .list_objects_v2()
        .bucket("bkt")
        .prefix("dir03/sub1/")
        .start_after("dir03/sub1/f010")
        .send()
        .await
        .expect("list");
    assert!(out.contents().iter().all(|o| o.key().is_some_and(|k| k > "dir03/sub1/f010")));
    assert_eq!(out.contents().len(), 4, "f013, f016, f019, f022");

    // V1 with a marker.
    let out = c.list_objects().bucket("bkt").marker("top05").send().await.expect("list v1");
    let v1: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(v1, ["top06", "top07", "top08", "top09", "top10", "top11"]);
}

#[tokio::test]
async fn copy_and_batch_delete() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("src").send().await.expect("create");
    c.create_bucket().bucket("dst").send().await.expect("create");
    let data = pattern(50_000, 3);
    c.put_object()
        .bucket("src")
        .key("o")
        .body(ByteStream::from(data.clone()))
        .content_type("a/b")
        .metadata("k", "v")
        .send()
        .await
        .expect("put");

    let copy = c.copy_object().bucket("dst").key("same-meta").copy_source("src/o").send().await.expect("copy");
    assert_eq!(copy.copy_object_result().and_then(|r| r.e_tag()), Some(format!("\"{}\"", md5_hex(&data)).as_str()));
    let head = c.head_object().bucket("dst").key("same-meta").send().await.expect("head");
    assert_eq!(
        (head.content_type(), head.metadata().and_then(|m| m.get("k")).map(String::as_str)),
        (Some("a/b"), Some("v"))
    );

    c.copy_object()
        .bucket("dst")
        .key("new-meta")
        .copy_source("src/o")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("c/d")
        .metadata("x", "y")
        .send()
        .await
        .expect("copy replace");
    let head = c.head_object().bucket("dst").key("new-meta").send().await.expect("head");
    assert_eq!(head.content_type(), Some("c/d"));
    assert!(head.metadata().is_some_and(|m| m.get("k").is_none() && m.get("x").map(String::as_str) == Some("y")));
    assert_eq!(get(&c, "dst", "new-meta").await, data);

    let r =
        c.copy_object().bucket("dst").key("cond").copy_source("src/o").copy_source_if_match("\"other\"").send().await;
    assert_eq!(error_code(r), ("PreconditionFailed".into(), 412));
    let r = c.copy_object().bucket("src").key("o").copy_source("src/o").send().await;
    assert_eq!(error_code(r), ("InvalidRequest".into(), 400), "copying onto itself without changes");
    let r = c.copy_object().bucket("dst").key("x").copy_source("src/missing").send().await;
    assert_eq!(error_code(r), ("NoSuchKey".into(), 404));

    for i in 0..5 {
        put(&c, "dst", &format!("d{i}"), b"x").await;
    }
    let ids = |keys: &[&str]| {
        keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().expect("id")).collect::<Vec<_>>()
    };
    let out = c
        .delete_objects()
        .bucket("dst")
        .delete(Delete::builder().set_objects(Some(ids(&["d0", "d1", "nothere"]))).build().expect("delete"))
        .send()
        .await
        .expect("delete objects");
    assert_eq!(out.deleted().len(), 3, "deleting a missing key counts as deleted");
    let out = c
        .delete_objects()
        .bucket("dst")
        .delete(Delete::builder().set_objects(Some(ids(&["d2", "d3"]))).quiet(true).build().expect("delete"))
        .send()
        .await
        .expect("quiet delete");
    assert!(out.deleted().is_empty() && out.errors().is_empty());
    let left: Vec<_> = c
        .list_objects_v2()
        .bucket("dst")
        .prefix("d")
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(left, ["d4"]);
}

#[tokio::test]
async fn keys_only_reach_their_own_buckets() {
    let server = Server::start();
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    let alice = server.client_as(&a_id, &a_secret);
    let bob = server.client_as(&b_id, &b_secret);
    alice.create_bucket().bucket("alice-data").send().await.expect("alice creates");
    bob.create_bucket().bucket("bob-data").send().await.expect("bob creates");
    put(&alice, "alice-data", "secret", b"for alice").await;

    let names = |c: Client| async move {
        c.list_buckets().send().await.expect("list").buckets().iter().filter_map(|b| b.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(alice.clone()).await, ["alice-data"]);
    assert_eq!(names(bob.clone()).await, ["bob-data"]);
    assert_eq!(names(server.client()).await, ["alice-data", "bob-data"], "root sees all");
    assert_eq!(
        error_code(bob.get_object().bucket("alice-data").key("secret").send().await),
        ("AccessDenied".into(), 403)
    );
    assert_eq!(
        error_code(bob.put_object().bucket("alice-data").key("x").body(ByteStream::from_static(b"x")).send().await).1,
        403
    );
    assert_eq!(error_code(bob.delete_bucket().bucket("alice-data").send().await).1, 403);
    assert_eq!(error_code(bob.create_bucket().bucket("alice-data").send().await), ("BucketAlreadyExists".into(), 409));

    let wrong = server.client_as(&a_id, "not-the-secret");
    assert_eq!(error_code(wrong.list_buckets().send().await), ("SignatureDoesNotMatch".into(), 403));
    let unknown = server.client_as("NOSUCHKEY123", "whatever");
    assert_eq!(error_code(unknown.list_buckets().send().await), ("InvalidAccessKeyId".into(), 403));

    // A key that owns buckets is not deleted behind its data's back.
    let out = server.cli(&["key", "delete", &a_id]);
    assert!(!out.status.success(), "deleting a key that owns buckets needs --erase-buckets");
    let info = server.cli_json(&["bucket", "info", "alice-data", "--json"]);
    assert_eq!(info["objects"], 1, "the refused delete changed nothing");
    assert_eq!(info["owner"], a_id.as_str());

    let out = server.cli(&["key", "delete", &a_id, "--erase-buckets"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(error_code(alice.list_buckets().send().await), ("InvalidAccessKeyId".into(), 403));
    assert!(!server.cli(&["bucket", "info", "alice-data"]).status.success(), "erased with its owner's key");
    assert_eq!(names(bob.clone()).await, ["bob-data"], "other tenants keep theirs");
}

#[tokio::test]
async fn hostile_keys_are_data_not_paths() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let long = "é".repeat(512);
    let keys =
        ["../../etc/passwd", "..", "./x", "a//b", "ctl\u{1}\u{7f}\t\r\n", "caf\u{e9}", "cafe\u{301}", long.as_str()];
    for (i, k) in keys.iter().enumerate() {
        put(&c, "bkt", k, format!("value {i}").as_bytes()).await;
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(get(&c, "bkt", k).await, format!("value {i}").as_bytes(), "{k:?}");
    }
    // Control characters cannot travel in XML 1.0: list with encoding-type=url, as boto3 does.
    let page = c.list_objects_v2().bucket("bkt").encoding_type(EncodingType::Url).send().await.expect("list");
    let listed: Vec<String> = page
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .map(|k| urlencoding::decode(k).expect("utf-8").into_owned())
        .collect();
    let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    want.sort();
    assert_eq!(listed, want, "byte order, and NFC/NFD stay two keys");
    let too_long = "é".repeat(513);
    assert_eq!(
        error_code(c.put_object().bucket("bkt").key(&too_long).body(ByteStream::from_static(b"x")).send().await).0,
        "KeyTooLongError"
    );
    // Nothing was written next to or above the data directory.
    let parent = server.data_dir.parent().expect("parent");
    let stray: Vec<_> =
        std::fs::read_dir(parent).expect("read").filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(stray, [std::ffi::OsString::from("data")]);
}

#[tokio::test]
async fn data_survives_a_graceful_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let data = pattern(300_000, 9);
    {
        let mut server = Server::start_in(&dir);
        let c = server.client();
        c.create_bucket().bucket("bkt").send().await.expect("create");
        put(&c, "bkt", "big", data.clone()).await;
        put(&c, "bkt", "small", b"inline").await;
        let status = server.stop().expect("exit status");
        assert!(status.success(), "graceful exit: {status:?}");
    }
    let server = Server::start_in(&dir);
    let c = server.client();
    assert_eq!(get(&c, "bkt", "big").await, data);
    assert_eq!(get(&c, "bkt", "small").await, b"inline");
}
