//! The checksums of one part of a multipart object, against a running
//! `coffre serve` with the AWS SDK: GET and HEAD with `partNumber` and
//! checksum mode answer the part's own checksum (the SDK then checks the
//! part's bytes against it), GetObjectAttributes lists each part's, and a
//! part number past the last answers 416 `InvalidPartNumber`, as on AWS.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
};
use coffre_e2e::{Server, error_code, pattern};
use sha2::Digest as _;

const MIB: usize = 1024 * 1024;

fn sha256_b64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(sha2::Sha256::digest(data))
}

fn crc64nvme_b64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data).to_be_bytes())
}

/// The value of `alg` in a checksum-bearing answer.
macro_rules! checksum_of {
    ($out:expr, $alg:expr) => {
        match $alg {
            ChecksumAlgorithm::Sha256 => $out.checksum_sha256(),
            _ => $out.checksum_crc64_nvme(),
        }
        .map(str::to_owned)
    };
}

/// Uploads `parts` as `key` with checksums of `alg` (of `kind`), each part
/// sending its own value, and completes it.
async fn upload(c: &Client, key: &str, alg: ChecksumAlgorithm, kind: ChecksumType, parts: &[Vec<u8>]) {
    let up = c
        .create_multipart_upload()
        .bucket("bkt")
        .key(key)
        .checksum_algorithm(alg.clone())
        .checksum_type(kind.clone())
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id");
    let mut done = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let req = c.upload_part().bucket("bkt").key(key).upload_id(id).part_number(n).checksum_algorithm(alg.clone());
        let req = match alg {
            ChecksumAlgorithm::Sha256 => req.checksum_sha256(sha256_b64(body)),
            _ => req.checksum_crc64_nvme(crc64nvme_b64(body)),
        };
        let r = req.body(ByteStream::from(body.clone())).send().await.expect("upload part");
        let part = CompletedPart::builder().part_number(n).set_e_tag(r.e_tag().map(str::to_owned));
        let part = match alg {
            ChecksumAlgorithm::Sha256 => part.set_checksum_sha256(r.checksum_sha256().map(str::to_owned)),
            _ => part.set_checksum_crc64_nvme(r.checksum_crc64_nvme().map(str::to_owned)),
        };
        done.push(part.build());
    }
    c.complete_multipart_upload()
        .bucket("bkt")
        .key(key)
        .upload_id(id)
        .checksum_type(kind)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .expect("complete");
}

/// Each part of a COMPOSITE SHA-256 and a FULL_OBJECT CRC64NVME object: GET
/// and HEAD with `partNumber` answer the part's checksum and the object's
/// checksum type, GetObjectAttributes lists every part's checksum; a range
/// answers none, the whole object its own.
#[tokio::test]
async fn a_part_is_answered_with_its_own_checksum() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    let parts = [pattern(5 * MIB, 1), pattern(5 * MIB, 2), pattern(1000, 3)];
    for (key, alg, kind, digest) in [
        ("sha", ChecksumAlgorithm::Sha256, ChecksumType::Composite, sha256_b64 as fn(&[u8]) -> String),
        ("nvme", ChecksumAlgorithm::Crc64Nvme, ChecksumType::FullObject, crc64nvme_b64),
    ] {
        upload(&c, key, alg.clone(), kind.clone(), &parts).await;
        for (i, body) in parts.iter().enumerate() {
            let n = i as i32 + 1;
            let got = c.get_object().bucket("bkt").key(key).part_number(n).checksum_mode(ChecksumMode::Enabled);
            let got = got.send().await.unwrap_or_else(|e| panic!("{key}: GET part {n}: {e:?}"));
            assert_eq!(checksum_of!(got, &alg), Some(digest(body)), "{key}: GET part {n}");
            assert_eq!((got.checksum_type(), got.parts_count()), (Some(&kind), Some(3)), "{key}: GET part {n}");
            let bytes = got.body.collect().await.expect("the part's bytes, checked by the SDK").into_bytes();
            assert_eq!(bytes.as_ref(), body.as_slice(), "{key}: part {n}'s bytes");
            let head = c.head_object().bucket("bkt").key(key).part_number(n).checksum_mode(ChecksumMode::Enabled);
            let head = head.send().await.expect("head part");
            assert_eq!(checksum_of!(head, &alg), Some(digest(body)), "{key}: HEAD part {n}");
            assert_eq!(head.checksum_type(), Some(&kind), "{key}: HEAD part {n}");
        }
        let attrs = c
            .get_object_attributes()
            .bucket("bkt")
            .key(key)
            .object_attributes(ObjectAttributes::ObjectParts)
            .send()
            .await
            .expect("attributes");
        let listed: Vec<_> =
            attrs.object_parts().expect("parts").parts().iter().map(|p| checksum_of!(p, &alg)).collect();
        let want: Vec<_> = parts.iter().map(|b| Some(digest(b))).collect();
        assert_eq!(listed, want, "{key}: GetObjectAttributes lists each part's checksum");

        let range = c.get_object().bucket("bkt").key(key).range("bytes=0-99").checksum_mode(ChecksumMode::Enabled);
        let range = range.send().await.expect("range");
        assert_eq!(checksum_of!(range, &alg), None, "{key}: a range has no checksum of its own");
        let whole = c.head_object().bucket("bkt").key(key).checksum_mode(ChecksumMode::Enabled).send().await;
        let whole = whole.expect("head");
        let whole = checksum_of!(whole, &alg).expect("the object's checksum");
        assert!(parts.iter().all(|b| whole != digest(b)), "{key}: the whole object's is none of the parts'");
    }
}

/// A part number past the last answers 416 `InvalidPartNumber` (AWS's answer;
/// ceph/s3-tests expects Ceph's 400 `InvalidPart`), for a multipart object
/// and for one PUT whole, whose part 1 is all of it with its own checksum.
#[tokio::test]
async fn a_part_past_the_last_is_not_satisfiable() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("bkt").send().await.expect("create");
    upload(&c, "multi", ChecksumAlgorithm::Sha256, ChecksumType::Composite, &[pattern(5 * MIB, 1), pattern(10, 2)])
        .await;
    let body = pattern(3000, 4);
    let put = c.put_object().bucket("bkt").key("single").checksum_algorithm(ChecksumAlgorithm::Sha256);
    put.body(ByteStream::from(body.clone())).send().await.expect("put");
    for (key, past) in [("multi", 3), ("single", 2)] {
        let r = c.get_object().bucket("bkt").key(key).part_number(past).send().await;
        assert_eq!(error_code(r), ("InvalidPartNumber".into(), 416), "{key}: GET part {past}");
    }
    let one = c.get_object().bucket("bkt").key("single").part_number(1).checksum_mode(ChecksumMode::Enabled);
    let one = one.send().await.expect("part 1 of a single PUT");
    assert_eq!(one.checksum_sha256(), Some(sha256_b64(&body).as_str()));
    assert_eq!(one.body.collect().await.expect("body").into_bytes().as_ref(), body.as_slice());
}
