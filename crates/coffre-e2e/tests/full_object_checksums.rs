//! Multipart uploads with whole-object checksums (`ChecksumType=FULL_OBJECT`,
//! the newer SDKs' default) against a running `coffre serve`: the object's
//! CRC is computed here over all its bytes and must be what Coffre reports.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
};
use coffre_e2e::{Server, error_code, pattern};

const MIB: usize = 1024 * 1024;

/// The CRC of `data` as S3 carries it (big-endian, base64), computed in one
/// pass over all the bytes, independently of how the server combines parts.
fn crc_b64(alg: &ChecksumAlgorithm, data: &[u8]) -> String {
    use crc_fast::CrcAlgorithm as C;
    let (crc, width) = match alg {
        ChecksumAlgorithm::Crc32 => (C::Crc32IsoHdlc, 4),
        ChecksumAlgorithm::Crc32C => (C::Crc32Iscsi, 4),
        ChecksumAlgorithm::Crc64Nvme => (C::Crc64Nvme, 8),
        other => panic!("{other:?} is no CRC"),
    };
    let value = crc_fast::checksum(crc, data).to_be_bytes();
    aws_smithy_types::base64::encode(&value[8 - width..])
}

/// The part's checksum of `alg`, as UploadPart answered it.
fn part_checksum(part: &CompletedPart, alg: &ChecksumAlgorithm) -> Option<String> {
    match alg {
        ChecksumAlgorithm::Crc32 => part.checksum_crc32(),
        ChecksumAlgorithm::Crc32C => part.checksum_crc32_c(),
        ChecksumAlgorithm::Crc64Nvme => part.checksum_crc64_nvme(),
        _ => None,
    }
    .map(str::to_owned)
}

/// An upload of `parts` with a FULL_OBJECT checksum of `alg`; the parts as
/// Complete names them, with their checksums.
async fn upload_parts(
    c: &Client,
    key: &str,
    alg: &ChecksumAlgorithm,
    parts: &[Vec<u8>],
) -> (String, Vec<CompletedPart>) {
    let up = c
        .create_multipart_upload()
        .bucket("bkt")
        .key(key)
        .checksum_algorithm(alg.clone())
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .expect("create a FULL_OBJECT upload");
    assert_eq!(up.checksum_type(), Some(&ChecksumType::FullObject));
    let id = up.upload_id().expect("upload id").to_owned();
    let mut done = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let r = c
            .upload_part()
            .bucket("bkt")
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(alg.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part");
        let part = CompletedPart::builder().part_number(n).set_e_tag(r.e_tag().map(str::to_owned));
        let part = match alg {
            ChecksumAlgorithm::Crc32 => part.set_checksum_crc32(r.checksum_crc32().map(str::to_owned)),
            ChecksumAlgorithm::Crc32C => part.set_checksum_crc32_c(r.checksum_crc32_c().map(str::to_owned)),
            _ => part.set_checksum_crc64_nvme(r.checksum_crc64_nvme().map(str::to_owned)),
        };
        let part = part.build();
        assert_eq!(part_checksum(&part, alg), Some(crc_b64(alg, body)), "part {n}'s own CRC");
        done.push(part);
    }
    (id, done)
}

fn completion(
    c: &Client,
    key: &str,
    id: &str,
    parts: &[CompletedPart],
) -> aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder {
    c.complete_multipart_upload()
        .bucket("bkt")
        .key(key)
        .upload_id(id)
        .checksum_type(ChecksumType::FullObject)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.to_vec())).build())
}

/// Sets the whole-object value of `alg` on a Complete request.
fn claim(
    b: aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder,
    alg: &ChecksumAlgorithm,
    value: &str,
) -> aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder {
    match alg {
        ChecksumAlgorithm::Crc32 => b.checksum_crc32(value),
        ChecksumAlgorithm::Crc32C => b.checksum_crc32_c(value),
        _ => b.checksum_crc64_nvme(value),
    }
}

/// The object's checksum of `alg` as HEAD answers it with checksum mode, and its type.
async fn head_checksum(c: &Client, key: &str, alg: &ChecksumAlgorithm) -> (Option<String>, Option<ChecksumType>) {
    let h = c.head_object().bucket("bkt").key(key).checksum_mode(ChecksumMode::Enabled).send().await.expect("head");
    let value = match alg {
        ChecksumAlgorithm::Crc32 => h.checksum_crc32(),
        ChecksumAlgorithm::Crc32C => h.checksum_crc32_c(),
        _ => h.checksum_crc64_nvme(),
    };
    (value.map(str::to_owned), h.checksum_type().cloned())
}

/// CRC64NVME and CRC32C full-object uploads: Complete, HEAD, GET and
/// GetObjectAttributes all report the CRC of the whole object, with no `-N`.
#[tokio::test]
async fn full_object_crcs_are_the_crc_of_the_whole_object() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let parts = vec![pattern(5 * MIB, 1), pattern(5 * MIB + 3, 2), pattern(1234, 3)];
    let whole = parts.concat();
    for (alg, key) in [(ChecksumAlgorithm::Crc64Nvme, "nvme"), (ChecksumAlgorithm::Crc32C, "crc32c")] {
        let want = crc_b64(&alg, &whole);
        let (id, done) = upload_parts(&c, key, &alg, &parts).await;
        let r = claim(completion(&c, key, &id, &done), &alg, &want).send().await.expect("complete");
        assert_eq!(r.checksum_type(), Some(&ChecksumType::FullObject), "{alg:?}");
        let answered = match alg {
            ChecksumAlgorithm::Crc32C => r.checksum_crc32_c(),
            _ => r.checksum_crc64_nvme(),
        };
        assert_eq!(answered, Some(want.as_str()), "Complete's {alg:?}");
        assert_eq!(head_checksum(&c, key, &alg).await, (Some(want.clone()), Some(ChecksumType::FullObject)));

        let got = c.get_object().bucket("bkt").key(key).checksum_mode(ChecksumMode::Enabled).send().await.expect("get");
        assert_eq!(got.checksum_type(), Some(&ChecksumType::FullObject));
        let body = got.body.collect().await.expect("body").into_bytes();
        assert!(body == whole, "{alg:?} object reads back whole");

        let a = c
            .get_object_attributes()
            .bucket("bkt")
            .key(key)
            .object_attributes(ObjectAttributes::Checksum)
            .send()
            .await
            .expect("attributes");
        let sums = a.checksum().expect("checksum attribute");
        assert_eq!(sums.checksum_type(), Some(&ChecksumType::FullObject));
        let attr = match alg {
            ChecksumAlgorithm::Crc32C => sums.checksum_crc32_c(),
            _ => sums.checksum_crc64_nvme(),
        };
        assert_eq!(attr, Some(want.as_str()), "GetObjectAttributes' {alg:?}, no -N suffix");
    }

    // Without a value on Complete, Coffre still combines and reports it.
    let (id, done) = upload_parts(&c, "unclaimed", &ChecksumAlgorithm::Crc32, &parts).await;
    let r = completion(&c, "unclaimed", &id, &done).send().await.expect("complete without a claim");
    assert_eq!(r.checksum_crc32(), Some(crc_b64(&ChecksumAlgorithm::Crc32, &whole).as_str()));
}

/// A wrong whole-object checksum on Complete commits nothing and keeps the
/// upload, which then completes with the right one.
#[tokio::test]
async fn a_wrong_full_object_checksum_commits_nothing() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let alg = ChecksumAlgorithm::Crc64Nvme;
    let parts = vec![pattern(5 * MIB, 7), pattern(100, 8)];
    let whole = parts.concat();
    let (id, done) = upload_parts(&c, "k", &alg, &parts).await;
    // The CRC of the parts in the other order: right length, wrong bytes.
    let swapped = crc_b64(&alg, &[parts[1].clone(), parts[0].clone()].concat());
    let r = claim(completion(&c, "k", &id, &done), &alg, &swapped).send().await;
    assert_eq!(error_code(r), ("BadDigest".into(), 400));
    let r = c.head_object().bucket("bkt").key("k").send().await;
    assert_eq!(error_code(r).1, 404, "nothing committed");
    let listed = c.list_parts().bucket("bkt").key("k").upload_id(&id).send().await.expect("the upload is kept");
    assert_eq!(listed.parts().len(), 2);
    assert_eq!(listed.checksum_type(), Some(&ChecksumType::FullObject));

    let want = crc_b64(&alg, &whole);
    claim(completion(&c, "k", &id, &done), &alg, &want).send().await.expect("completed with the right checksum");
    assert_eq!(head_checksum(&c, "k", &alg).await.0, Some(want));
}

/// FULL_OBJECT needs a CRC: SHA uploads are refused as S3 refuses them, as is
/// a COMPOSITE CRC64NVME; CRC64NVME with no type is FULL_OBJECT.
#[tokio::test]
async fn full_object_is_refused_for_the_shas() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    for (alg, t) in [
        (ChecksumAlgorithm::Sha256, ChecksumType::FullObject),
        (ChecksumAlgorithm::Sha1, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::Composite),
    ] {
        let r = c
            .create_multipart_upload()
            .bucket("bkt")
            .key("k")
            .checksum_algorithm(alg.clone())
            .checksum_type(t.clone())
            .send()
            .await;
        assert_eq!(error_code(r), ("InvalidRequest".into(), 400), "{alg:?} {t:?}");
    }
    let uploads = c.list_multipart_uploads().bucket("bkt").send().await.expect("list uploads");
    assert!(uploads.uploads().is_empty(), "no refused upload was created");
    let up = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .send()
        .await
        .expect("CRC64NVME with no type");
    assert_eq!(up.checksum_type(), Some(&ChecksumType::FullObject));
}

/// A COMPOSITE upload's Complete may claim the `-N` checksum too: a wrong
/// one is refused, the right one accepted.
#[tokio::test]
async fn a_wrong_composite_checksum_claim_is_refused() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let up = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create");
    assert_eq!(up.checksum_type(), Some(&ChecksumType::Composite));
    let id = up.upload_id().expect("upload id");
    let r = c
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(pattern(1024, 9)))
        .send()
        .await
        .expect("part");
    let part = CompletedPart::builder()
        .part_number(1)
        .set_e_tag(r.e_tag().map(str::to_owned))
        .set_checksum_sha256(r.checksum_sha256().map(str::to_owned))
        .build();
    let complete = || {
        c.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().parts(part.clone()).build())
    };
    let wrong = aws_smithy_types::base64::encode([7u8; 32]) + "-1";
    assert_eq!(error_code(complete().checksum_sha256(wrong).send().await), ("BadDigest".into(), 400));
    let done = complete().send().await.expect("completed without a claim");
    let composite = done.checksum_sha256().expect("composite checksum").to_owned();
    assert!(composite.ends_with("-1"));
    let again = complete().checksum_sha256(&composite).send().await.expect("a retry claiming the right value");
    assert_eq!(again.checksum_sha256(), Some(composite.as_str()));
}
