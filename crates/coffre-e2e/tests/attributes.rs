//! GetObjectAttributes against a running `coffre serve` with the AWS SDK:
//! plain, multipart (parts a page at a time), versioned and SSE-C objects,
//! only the attributes asked for.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object_attributes::builders::GetObjectAttributesFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ChecksumAlgorithm, ObjectAttributes, StorageClass};
use coffre_e2e::objects::{multipart, put, set_versioning};
use coffre_e2e::{Server, error_code, md5_hex, pattern};
use md5::Digest as _;

const ALL: [ObjectAttributes; 5] = [
    ObjectAttributes::Etag,
    ObjectAttributes::Checksum,
    ObjectAttributes::ObjectParts,
    ObjectAttributes::StorageClass,
    ObjectAttributes::ObjectSize,
];

fn attributes(c: &Client, bucket: &str, key: &str, which: &[ObjectAttributes]) -> GetObjectAttributesFluentBuilder {
    which.iter().fold(c.get_object_attributes().bucket(bucket).key(key), |b, a| b.object_attributes(a.clone()))
}

#[tokio::test]
async fn attributes_of_plain_and_versioned_objects() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let body = pattern(3000, 1);
    let sha = aws_smithy_types::base64::encode(sha2::Sha256::digest(&body));
    c.put_object()
        .bucket("bkt")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");

    let a = attributes(&c, "bkt", "k", &ALL).send().await.expect("attributes");
    assert_eq!(a.e_tag(), Some(md5_hex(&body).as_str()), "the ETag, bare as S3 writes it");
    assert_eq!(a.object_size(), Some(3000));
    assert_eq!(a.storage_class(), Some(&StorageClass::Standard));
    assert_eq!(a.checksum().and_then(|c| c.checksum_sha256()), Some(sha.as_str()));
    assert!(a.object_parts().is_none(), "a single PUT has no parts");
    assert!(a.version_id().is_none() && a.delete_marker().is_none());
    assert!(a.last_modified().is_some());

    let only = attributes(&c, "bkt", "k", &[ObjectAttributes::ObjectSize]).send().await.expect("size only");
    assert_eq!(only.object_size(), Some(3000));
    assert!(only.e_tag().is_none() && only.checksum().is_none() && only.storage_class().is_none());
    let missing = attributes(&c, "bkt", "nope", &ALL).send().await;
    assert_eq!(error_code(missing), ("NoSuchKey".into(), 404));

    set_versioning(&c, "bkt", BucketVersioningStatus::Enabled).await;
    let first = put(&c, "bkt", "v", b"first".to_vec()).await.version_id.expect("version");
    put(&c, "bkt", "v", b"second!".to_vec()).await;
    let old = attributes(&c, "bkt", "v", &ALL).version_id(&first).send().await.expect("old version");
    assert_eq!((old.version_id(), old.object_size()), (Some(first.as_str()), Some(5)));
    c.delete_object().bucket("bkt").key("v").send().await.expect("delete");
    let r = attributes(&c, "bkt", "v", &ALL).send().await;
    assert_eq!(error_code(r), ("NoSuchKey".into(), 404), "a delete marker has no attributes");
}

#[tokio::test]
async fn multipart_parts_come_a_page_at_a_time() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let mib = 1024 * 1024;
    let parts: Vec<_> = (0..6).map(|i| pattern(if i < 5 { 5 * mib } else { 7 }, i)).collect();
    multipart(&c, "bkt", "mp", &parts).await;

    let all = attributes(&c, "bkt", "mp", &ALL).send().await.expect("attributes");
    assert_eq!(all.object_size(), Some(25 * mib as i64 + 7));
    assert!(all.e_tag().is_some_and(|e| e.ends_with("-6") && !e.contains('"')));
    let p = all.object_parts().expect("parts");
    assert_eq!((p.total_parts_count(), p.is_truncated()), (Some(6), Some(false)));
    let sizes: Vec<_> = p.parts().iter().map(|p| (p.part_number(), p.size())).collect();
    let want: Vec<_> = (1..=6).map(|n| (Some(n), Some(if n < 6 { 5 * mib as i64 } else { 7 }))).collect();
    assert_eq!(sizes, want);

    let page = attributes(&c, "bkt", "mp", &ALL).max_parts(2).part_number_marker("3").send().await.expect("page");
    let p = page.object_parts().expect("parts");
    let numbers: Vec<_> = p.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(numbers, [4, 5]);
    assert_eq!((p.is_truncated(), p.next_part_number_marker(), p.max_parts()), (Some(true), Some("5"), Some(2)));
    assert_eq!(p.part_number_marker(), Some("3"));
    let last = attributes(&c, "bkt", "mp", &ALL).part_number_marker("5").send().await.expect("last page");
    let p = last.object_parts().expect("parts");
    assert_eq!(p.parts().iter().filter_map(|p| p.part_number()).collect::<Vec<_>>(), [6]);
    assert_eq!(p.is_truncated(), Some(false));
}

#[tokio::test]
async fn sse_c_objects_need_their_key() {
    let server = Server::start_tls();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let key = [7u8; 32];
    let (k, k_md5) = (aws_smithy_types::base64::encode(key), aws_smithy_types::base64::encode(md5::Md5::digest(key)));
    c.put_object()
        .bucket("bkt")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k)
        .sse_customer_key_md5(&k_md5)
        .body(ByteStream::from(vec![b'A'; 1000]))
        .send()
        .await
        .expect("put");
    let r = attributes(&c, "bkt", "secret", &ALL).send().await;
    assert_eq!(error_code(r).1, 400, "no key, no attributes");
    let a = attributes(&c, "bkt", "secret", &ALL)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k)
        .sse_customer_key_md5(&k_md5)
        .send()
        .await
        .expect("with the key");
    assert_eq!(a.object_size(), Some(1000));
}
