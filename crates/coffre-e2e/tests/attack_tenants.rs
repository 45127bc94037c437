//! Every S3 operation the router serves, tried by one tenant's key against
//! another tenant's bucket, object and multipart upload, against a real
//! `coffre serve`. The list of operations is read from the router itself
//! (`impl S3 for CoffreS3` in `coffre-s3/src/ops/mod.rs`), so an operation
//! added there without an attack here fails this test.
//!
//! Each attempt must be refused with S3's `AccessDenied`, an object's
//! attempt the same whether the object exists or not (object names are not
//! told), and when all are done the victim's bucket is as it was. A bucket
//! name's existence is told, as S3 tells it: names are global, CreateBucket
//! of a taken name answers `BucketAlreadyExists` (and changes nothing).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::Client;
use coffre_e2e::Server;
use coffre_e2e::objects::put;
use coffre_e2e::signed::{RawConn, Signer, sha256_hex};

const VICTIM: &str = "victim-bucket";
const ATTACKER: &str = "attacker-bucket";

/// The router's operations, by their snake-case method names.
fn routed_operations() -> Vec<String> {
    let router = include_str!("../../coffre-s3/src/ops/mod.rs");
    let table = router.split("\nimpl S3 for CoffreS3 {").nth(1).expect("the router's dispatch table");
    let table = table.split("\n}\n").next().unwrap_or(table);
    table.split("async fn ").skip(1).filter_map(|rest| rest.split(['(', '<']).next()).map(str::to_owned).collect()
}

/// One attempt: method, path under the bucket (`{b}` is the bucket), query,
/// body and extra headers.
struct Attempt {
    method: &'static str,
    path: String,
    query: String,
    body: String,
    headers: Vec<(&'static str, String)>,
}

fn attempt(method: &'static str, path: &str, query: &str, body: &str) -> Attempt {
    Attempt { method, path: path.to_owned(), query: query.to_owned(), body: body.to_owned(), headers: Vec::new() }
}

fn with(mut a: Attempt, name: &'static str, value: &str) -> Attempt {
    a.headers.push((name, value.to_owned()));
    a
}

const TAGS: &str = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>";

/// The attack for each routed operation, on bucket `{b}`, its object `{o}`,
/// and its upload `{u}` of key `in-progress`. `None` for the operations
/// that name no other tenant's bucket (ListBuckets, checked apart).
fn attack(operation: &str) -> Option<Attempt> {
    let o = "/{b}/{o}";
    let up = "/{b}/in-progress";
    Some(match operation {
        "list_buckets" => return None,
        "create_bucket" => attempt("PUT", "/{b}", "", ""),
        "head_bucket" => attempt("HEAD", "/{b}", "", ""),
        "get_bucket_location" => attempt("GET", "/{b}", "location=", ""),
        "delete_bucket" => attempt("DELETE", "/{b}", "", ""),
        "get_bucket_versioning" => attempt("GET", "/{b}", "versioning=", ""),
        "put_bucket_versioning" => attempt(
            "PUT",
            "/{b}",
            "versioning=",
            "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>",
        ),
        "put_object" => attempt("PUT", o, "", "overwritten by the attacker"),
        "get_object" => attempt("GET", o, "", ""),
        "head_object" => attempt("HEAD", o, "", ""),
        "get_object_attributes" => with(attempt("GET", o, "attributes=", ""), "x-amz-object-attributes", "ETag"),
        "delete_object" => attempt("DELETE", o, "", ""),
        "delete_objects" => attempt("POST", "/{b}", "delete=", "<Delete><Object><Key>{o}</Key></Object></Delete>"),
        // Copies read the victim's object into the attacker's own bucket.
        "copy_object" => with(attempt("PUT", &format!("/{ATTACKER}/stolen"), "", ""), "x-amz-copy-source", "/{b}/{o}"),
        "upload_part_copy" => with(
            attempt("PUT", &format!("/{ATTACKER}/mine"), "partNumber=1&uploadId={own}", ""),
            "x-amz-copy-source",
            "/{b}/{o}",
        ),
        "list_objects" => attempt("GET", "/{b}", "", ""),
        "list_objects_v2" => attempt("GET", "/{b}", "list-type=2", ""),
        "list_object_versions" => attempt("GET", "/{b}", "versions=", ""),
        "list_multipart_uploads" => attempt("GET", "/{b}", "uploads=", ""),
        "create_multipart_upload" => attempt("POST", "/{b}/new", "uploads=", ""),
        "upload_part" => attempt("PUT", up, "partNumber=1&uploadId={u}", "a part of the attacker's"),
        "complete_multipart_upload" => attempt(
            "POST",
            up,
            "uploadId={u}",
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag></Part></CompleteMultipartUpload>",
        ),
        "abort_multipart_upload" => attempt("DELETE", up, "uploadId={u}", ""),
        "list_parts" => attempt("GET", up, "uploadId={u}", ""),
        "put_bucket_policy" => attempt(
            "PUT",
            "/{b}",
            "policy=",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::{b}/*"}]}"#,
        ),
        "get_bucket_policy" => attempt("GET", "/{b}", "policy=", ""),
        "delete_bucket_policy" => attempt("DELETE", "/{b}", "policy=", ""),
        "get_bucket_policy_status" => attempt("GET", "/{b}", "policyStatus=", ""),
        "put_public_access_block" => attempt(
            "PUT",
            "/{b}",
            "publicAccessBlock=",
            "<PublicAccessBlockConfiguration><BlockPublicAcls>false</BlockPublicAcls><IgnorePublicAcls>false</IgnorePublicAcls>\
             <BlockPublicPolicy>false</BlockPublicPolicy><RestrictPublicBuckets>false</RestrictPublicBuckets></PublicAccessBlockConfiguration>",
        ),
        "get_public_access_block" => attempt("GET", "/{b}", "publicAccessBlock=", ""),
        "delete_public_access_block" => attempt("DELETE", "/{b}", "publicAccessBlock=", ""),
        "get_bucket_acl" => attempt("GET", "/{b}", "acl=", ""),
        "put_bucket_acl" => with(attempt("PUT", "/{b}", "acl=", ""), "x-amz-acl", "private"),
        "get_object_acl" => attempt("GET", o, "acl=", ""),
        "put_object_acl" => with(attempt("PUT", o, "acl=", ""), "x-amz-acl", "private"),
        "get_bucket_ownership_controls" => attempt("GET", "/{b}", "ownershipControls=", ""),
        "put_bucket_ownership_controls" => attempt(
            "PUT",
            "/{b}",
            "ownershipControls=",
            "<OwnershipControls><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule></OwnershipControls>",
        ),
        "put_object_tagging" => attempt("PUT", o, "tagging=", TAGS),
        "get_object_tagging" => attempt("GET", o, "tagging=", ""),
        "delete_object_tagging" => attempt("DELETE", o, "tagging=", ""),
        "put_bucket_tagging" => attempt("PUT", "/{b}", "tagging=", TAGS),
        "get_bucket_tagging" => attempt("GET", "/{b}", "tagging=", ""),
        "delete_bucket_tagging" => attempt("DELETE", "/{b}", "tagging=", ""),
        "put_object_lock_configuration" => attempt(
            "PUT",
            "/{b}",
            "object-lock=",
            "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
             <Mode>COMPLIANCE</Mode><Days>3650</Days></DefaultRetention></Rule></ObjectLockConfiguration>",
        ),
        "get_object_lock_configuration" => attempt("GET", "/{b}", "object-lock=", ""),
        "put_object_retention" => attempt(
            "PUT",
            o,
            "retention=",
            "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2036-01-01T00:00:00Z</RetainUntilDate></Retention>",
        ),
        "get_object_retention" => attempt("GET", o, "retention=", ""),
        "put_object_legal_hold" => attempt("PUT", o, "legal-hold=", "<LegalHold><Status>ON</Status></LegalHold>"),
        "get_object_legal_hold" => attempt("GET", o, "legal-hold=", ""),
        "put_bucket_lifecycle_configuration" => attempt(
            "PUT",
            "/{b}",
            "lifecycle=",
            "<LifecycleConfiguration><Rule><ID>wipe</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>\
             <Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
        ),
        "get_bucket_lifecycle_configuration" => attempt("GET", "/{b}", "lifecycle=", ""),
        "delete_bucket_lifecycle" => attempt("DELETE", "/{b}", "lifecycle=", ""),
        "put_bucket_cors" => attempt(
            "PUT",
            "/{b}",
            "cors=",
            "<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>",
        ),
        "get_bucket_cors" => attempt("GET", "/{b}", "cors=", ""),
        "delete_bucket_cors" => attempt("DELETE", "/{b}", "cors=", ""),
        "put_bucket_encryption" => attempt(
            "PUT",
            "/{b}",
            "encryption=",
            "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>\
             </ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>",
        ),
        "get_bucket_encryption" => attempt("GET", "/{b}", "encryption=", ""),
        "delete_bucket_encryption" => attempt("DELETE", "/{b}", "encryption=", ""),
        _ => return None,
    })
}

/// Ids the attempts name: the victim's upload, the attacker's own.
struct Ids {
    victim_upload: String,
    own_upload: String,
}

/// Sends `a` on the victim's bucket and `object`, signed by `signer`; the
/// status and error code.
async fn send(server: &Server, signer: &Signer, a: &Attempt, object: &str, ids: &Ids) -> (u16, String) {
    let fill = |s: &str| {
        let s = s.replace("{b}", VICTIM).replace("{o}", object);
        s.replace("{u}", &ids.victim_upload).replace("{own}", &ids.own_upload)
    };
    let (path, query, body) = (fill(&a.path), fill(&a.query), fill(&a.body));
    let mut headers: Vec<(&str, String)> = a.headers.iter().map(|(n, v)| (*n, fill(v))).collect();
    headers.push(("Content-Length", body.len().to_string()));
    let digest = <md5::Md5 as md5::Digest>::digest(body.as_bytes());
    headers.push(("Content-MD5", aws_smithy_types::base64::encode(digest)));
    headers.push(("Connection", "close".to_owned()));
    let head = signer.head_for_payload(a.method, &path, &query, &sha256_hex(body.as_bytes()), &headers).head;
    let mut conn = RawConn::open(server.s3).await.expect("connect");
    conn.send(&[head.as_bytes(), body.as_bytes()].concat()).await.expect("send");
    let answer = conn.answer(Duration::from_secs(30)).await.unwrap_or_else(|| panic!("no answer to {path}?{query}"));
    (answer.status, answer.code().to_owned())
}

/// A HEAD answer has no body (so no code): its status, through the SDK; a
/// 403 is the refusal.
async fn head_status(client: &Client, operation: &str, object: &str) -> (u16, String) {
    let failed = match operation {
        "head_bucket" => client.head_bucket().bucket(VICTIM).send().await.err().map(|e| e.raw_response().map(status)),
        _ => client.head_object().bucket(VICTIM).key(object).send().await.err().map(|e| e.raw_response().map(status)),
    };
    let status = failed.flatten().unwrap_or(200);
    (status, if status == 403 { "AccessDenied".to_owned() } else { String::new() })
}

fn status(r: &aws_sdk_s3::config::http::HttpResponse) -> u16 {
    r.status().as_u16()
}

/// What the victim can see of its bucket: anything an attack could change.
async fn state_of(c: &Client) -> Vec<String> {
    let b = VICTIM;
    let object = c.get_object().bucket(b).key("o").send().await.expect("the object is still there");
    let body = object.body.collect().await.expect("body").into_bytes();
    let versions = c.list_object_versions().bucket(b).send().await.expect("versions");
    let uploads = c.list_multipart_uploads().bucket(b).send().await.expect("uploads");
    let tags = c.get_object_tagging().bucket(b).key("o").send().await.expect("tags");
    let hold = c.get_object_legal_hold().bucket(b).key("o").send().await.map(|h| format!("{:?}", h.legal_hold()));
    let retention = c.get_object_retention().bucket(b).key("o").send().await.map(|r| format!("{:?}", r.retention()));
    vec![
        String::from_utf8_lossy(&body).into_owned(),
        format!("{:?}", versions.versions().iter().map(|v| v.version_id()).collect::<Vec<_>>()),
        format!("{:?}", versions.delete_markers().len()),
        format!("{:?}", uploads.uploads().iter().map(|u| u.upload_id()).collect::<Vec<_>>()),
        format!("{:?}", tags.tag_set()),
        format!("{:?}", c.get_bucket_versioning().bucket(b).send().await.map(|v| v.status().cloned()).ok()),
        format!("{:?}", c.get_bucket_policy().bucket(b).send().await.map(|p| p.policy().map(str::to_owned)).ok()),
        format!("{:?}", c.get_bucket_tagging().bucket(b).send().await.map(|t| t.tag_set().len()).ok()),
        format!("{:?}", c.get_bucket_cors().bucket(b).send().await.map(|t| t.cors_rules().len()).ok()),
        format!("{:?}", c.get_bucket_lifecycle_configuration().bucket(b).send().await.map(|t| t.rules().len()).ok()),
        format!(
            "{:?}",
            c.get_object_lock_configuration()
                .bucket(b)
                .send()
                .await
                .ok()
                .and_then(|l| l.object_lock_configuration().map(|l| format!("{:?}", l.rule())))
        ),
        format!(
            "{:?}",
            c.get_public_access_block()
                .bucket(b)
                .send()
                .await
                .ok()
                .map(|p| format!("{:?}", p.public_access_block_configuration()))
        ),
        format!("{hold:?} {retention:?}", hold = hold.ok(), retention = retention.ok()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn no_routed_operation_reaches_or_reveals_another_tenants_bucket() {
    let server = Server::start();
    let (victim_id, victim_secret) = server.create_key("victim");
    let (attacker_id, attacker_secret) = server.create_key("attacker");
    let victim = server.client_as(&victim_id, &victim_secret);
    let attacker = server.client_as(&attacker_id, &attacker_secret);
    victim
        .create_bucket()
        .bucket(VICTIM)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("the victim's bucket");
    put(&victim, VICTIM, "o", b"the victim's data".to_vec()).await;
    victim
        .put_object_tagging()
        .bucket(VICTIM)
        .key("o")
        .tagging(aws_sdk_s3::types::Tagging::builder().set_tag_set(Some(Vec::new())).build().expect("tagging"))
        .send()
        .await
        .expect("tags");
    let upload = victim.create_multipart_upload().bucket(VICTIM).key("in-progress").send().await.expect("upload");
    attacker.create_bucket().bucket(ATTACKER).send().await.expect("the attacker's own bucket");
    let own = attacker.create_multipart_upload().bucket(ATTACKER).key("mine").send().await.expect("own upload");
    let ids = Ids {
        victim_upload: upload.upload_id().expect("id").to_owned(),
        own_upload: own.upload_id().expect("id").to_owned(),
    };
    let before = state_of(&victim).await;

    let signer = Signer::new(server.s3, &attacker_id, &attacker_secret);
    let operations = routed_operations();
    assert!(operations.len() >= 58, "the router's table was read: {operations:?}");
    let mut answers = BTreeMap::new();
    for operation in operations.iter().filter(|o| *o != "list_buckets") {
        let a = attack(operation).unwrap_or_else(|| panic!("no attack written for the routed operation {operation}"));
        // The same attempt on an object that does not exist must answer the same.
        let (on_object, on_absent) = match a.method {
            "HEAD" => (head_status(&attacker, operation, "o").await, head_status(&attacker, operation, "absent").await),
            _ => (send(&server, &signer, &a, "o", &ids).await, send(&server, &signer, &a, "absent", &ids).await),
        };
        answers.insert(operation.clone(), (on_object, on_absent));
    }
    let listed = attacker.list_buckets().send().await.expect("list");
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, [ATTACKER], "ListBuckets shows only the caller's buckets");

    let mut wrong = Vec::new();
    for (operation, (on_object, on_absent)) in &answers {
        let expected = match operation.as_str() {
            "create_bucket" => (409, "BucketAlreadyExists"),
            _ => (403, "AccessDenied"),
        };
        if (on_object.0, on_object.1.as_str()) != expected || on_object != on_absent {
            wrong
                .push(format!("{operation}: {on_object:?} (on a missing object {on_absent:?}), expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "another tenant's bucket was reached or told of:\n{}", wrong.join("\n"));
    assert_eq!(state_of(&victim).await, before, "the victim's bucket changed");
    let copied = attacker.head_object().bucket(ATTACKER).key("stolen").send().await;
    assert!(copied.is_err(), "nothing was copied out of the victim's bucket");
}
