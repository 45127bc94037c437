//! Conditional writes against a running `coffre serve`: `If-None-Match` and
//! `If-Match` on PutObject and CompleteMultipartUpload, `If-Match` (ETag,
//! size, time) on deletes, and races that only an atomic check survives.
//! Run on PostgreSQL too with `COFFRE_TEST_PG` (scripts/pg-server.sh).

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{BucketVersioningStatus, CompletedMultipartUpload, Delete, ObjectIdentifier};
use coffre_e2e::objects::{get, put, set_versioning, upload_part};
use coffre_e2e::{Server, pattern};

type Refusal = (String, u16);

fn precondition_failed() -> Refusal {
    ("PreconditionFailed".into(), 412)
}

fn no_such_key() -> Refusal {
    ("NoSuchKey".into(), 404)
}

fn refusal<E: ProvideErrorMetadata>(
    e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Refusal {
    let status = e.raw_response().map_or(0, |r| r.status().as_u16());
    (e.code().unwrap_or("<none>").to_owned(), status)
}

/// The condition headers of one write.
#[derive(Clone, Copy)]
enum Cond<'a> {
    None,
    IfMatch(&'a str),
    IfNoneMatch(&'a str),
}

impl Cond<'_> {
    fn headers(self) -> (Option<String>, Option<String>) {
        match self {
            Cond::None => (None, None),
            Cond::IfMatch(v) => (Some(v.to_owned()), None),
            Cond::IfNoneMatch(v) => (None, Some(v.to_owned())),
        }
    }
}

/// The two writes that take conditions.
#[derive(Clone, Copy, Debug)]
enum Write {
    Put,
    Complete,
}

impl Write {
    /// Writes `body` at `bucket/key` under `cond`: its ETag, or the refusal.
    /// A refused completion must leave its upload whole: it is completed
    /// nowhere else, so it is aborted here, which fails if it is gone.
    async fn run(self, c: &Client, bucket: &str, key: &str, body: &[u8], cond: Cond<'_>) -> Result<String, Refusal> {
        let (if_match, if_none_match) = cond.headers();
        match self {
            Write::Put => c
                .put_object()
                .bucket(bucket)
                .key(key)
                .set_if_match(if_match)
                .set_if_none_match(if_none_match)
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .map(|o| o.e_tag.expect("an ETag"))
                .map_err(refusal),
            Write::Complete => {
                let up = c.create_multipart_upload().bucket(bucket).key(key).send().await.expect("create upload");
                let id = up.upload_id().expect("upload id").to_owned();
                let part = upload_part(c, bucket, key, &id, 1, body.to_vec()).await;
                let done = c
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&id)
                    .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
                    .set_if_match(if_match)
                    .set_if_none_match(if_none_match)
                    .send()
                    .await;
                match done {
                    Ok(o) => Ok(o.e_tag.expect("an ETag")),
                    Err(e) => {
                        let why = refusal(e);
                        let abort = c.abort_multipart_upload().bucket(bucket).key(key).upload_id(&id).send().await;
                        abort.expect("a refused completion keeps its upload");
                        Err(why)
                    }
                }
            }
        }
    }
}

/// Versions and delete markers of `key`.
async fn history(c: &Client, bucket: &str, key: &str) -> usize {
    let out = c.list_object_versions().bucket(bucket).prefix(key).send().await.expect("list versions");
    out.versions().len() + out.delete_markers().len()
}

/// Every condition true and false, on an absent key, a current version and
/// (after a delete) a key whose current version is gone or a delete marker.
async fn conditions_follow_s3(c: &Client, bucket: &str, write: Write, versioned: bool) {
    let k = &format!("{write:?}-key");
    let w = |body: &'static [u8], cond| write.run(c, bucket, k, body, cond);
    assert_eq!(w(b"x", Cond::IfMatch("*")).await, Err(no_such_key()), "{write:?}: If-Match: * on no key");
    assert_eq!(w(b"x", Cond::IfMatch("\"0123\"")).await, Err(no_such_key()), "{write:?}: If-Match on no key");
    assert_eq!(history(c, bucket, k).await, 0, "{write:?}: a refused write stores nothing");

    let one = w(b"one", Cond::IfNoneMatch("*")).await.expect("create-only on no key");
    for (cond, why) in [
        (Cond::IfNoneMatch("*"), "If-None-Match: * on a key"),
        (Cond::IfNoneMatch(&one), "If-None-Match: the current ETag"),
        (Cond::IfMatch("\"0123\"") /* another ETag */, "If-Match: another ETag"),
    ] {
        assert_eq!(w(b"x", cond).await, Err(precondition_failed()), "{write:?}: {why}");
    }
    assert_eq!(get(c, bucket, k).await, b"one", "{write:?}: refused writes leave the object");
    assert_eq!(history(c, bucket, k).await, 1, "{write:?}: refused writes add no version");

    let two = w(b"two", Cond::IfMatch(&one)).await.expect("If-Match: the current ETag");
    assert_eq!(w(b"x", Cond::IfMatch(&one)).await, Err(precondition_failed()), "{write:?}: a stale ETag");
    let (if_match, if_none_match) = (Cond::IfMatch(&one).headers(), Cond::IfNoneMatch("*").headers());
    for ((m, n), header) in [(if_match, "If-Match"), (if_none_match, "If-None-Match")] {
        let r = c.put_object().bucket(bucket).key(k).set_if_match(m).set_if_none_match(n).send().await;
        let message = r.expect_err("refused").into_service_error().message().map(str::to_owned);
        assert!(message.is_some_and(|m| m.ends_with(header)), "the 412 names {header}");
    }
    w(b"three", Cond::IfMatch("*")).await.expect("If-Match: * on a key");
    w(b"four", Cond::IfNoneMatch(&two)).await.expect("If-None-Match: an ETag no longer current");
    assert_eq!(get(c, bucket, k).await, b"four");
    assert_eq!(history(c, bucket, k).await, if versioned { 4 } else { 1 });

    // A delete marker is no current version.
    c.delete_object().bucket(bucket).key(k).send().await.expect("delete");
    assert_eq!(w(b"x", Cond::IfMatch("*")).await, Err(no_such_key()), "{write:?}: If-Match: * after a delete");
    w(b"five", Cond::IfNoneMatch("*")).await.expect("create-only after a delete");
    assert_eq!(get(c, bucket, k).await, b"five");
}

async fn bucket(c: &Client, name: &str, versioned: bool) {
    c.create_bucket().bucket(name).send().await.expect("create bucket");
    if versioned {
        set_versioning(c, name, BucketVersioningStatus::Enabled).await;
    }
}

#[tokio::test]
async fn put_and_complete_conditions_follow_s3() {
    let server = Server::start();
    let c = server.client();
    for (name, versioned) in [("plain", false), ("versioned", true)] {
        bucket(&c, name, versioned).await;
        for write in [Write::Put, Write::Complete] {
            conditions_follow_s3(&c, name, write, versioned).await;
        }
    }
}

#[tokio::test]
async fn both_write_conditions_at_once_are_refused_plainly() {
    let server = Server::start();
    let c = server.client();
    bucket(&c, "bkt", false).await;
    let r = c.put_object().bucket("bkt").key("k").if_match("*").if_none_match("*").send().await;
    assert_eq!(r.map_err(refusal).err().map(|e| e.1), Some(501));
    assert_eq!(history(&c, "bkt", "k").await, 0);
}

#[tokio::test]
async fn conditional_deletes_check_the_version_they_delete() {
    let server = Server::start();
    let c = server.client();
    for (b, versioned) in [("plain", false), ("versioned", true)] {
        bucket(&c, b, versioned).await;
        // Nothing to delete: success, and no delete marker made.
        c.delete_object().bucket(b).key("k").if_match("*").send().await.expect("If-Match: * on no key");
        c.delete_object().bucket(b).key("k").if_match("\"0123\"").send().await.expect("If-Match on no key");
        assert_eq!(history(&c, b, "k").await, 0, "a conditional delete of nothing makes nothing");

        let etag = put(&c, b, "k", b"data".to_vec()).await.e_tag.expect("etag");
        let mtime = c.head_object().bucket(b).key("k").send().await.expect("head").last_modified.expect("mtime");
        let del = || c.delete_object().bucket(b).key("k");
        let old = DateTime::from_secs(1_420_070_400);
        assert_eq!(del().if_match("\"0123\"").send().await.map_err(refusal).err(), Some(precondition_failed()));
        assert_eq!(del().if_match_size(9).send().await.map_err(refusal).err(), Some(precondition_failed()));
        let r = del().if_match_last_modified_time(old).send().await;
        assert_eq!(r.map_err(refusal).err(), Some(precondition_failed()));
        assert_eq!(get(&c, b, "k").await, b"data", "refused deletes leave the object");

        let done = del().if_match(&etag).if_match_size(4).if_match_last_modified_time(mtime).send().await;
        assert_eq!(done.expect("every condition holds").delete_marker, versioned.then_some(true));
        if versioned {
            // The delete marker is now the version a condition is checked against.
            let r = del().if_match(&etag).send().await;
            assert_eq!(r.map_err(refusal).err(), Some(precondition_failed()), "a marker has another ETag");
            del().if_match("*").send().await.expect("If-Match: * on a marker");
            assert_eq!(history(&c, b, "k").await, 3);
        } else {
            assert_eq!(history(&c, b, "k").await, 0);
        }
    }

    // A named version.
    let v = put(&c, "versioned", "n", b"named".to_vec()).await;
    let (id, etag) = (v.version_id.expect("version id"), v.e_tag.expect("etag"));
    put(&c, "versioned", "n", b"newer".to_vec()).await;
    let del = || c.delete_object().bucket("versioned").key("n").version_id(&id);
    assert_eq!(del().if_match("\"0123\"").send().await.map_err(refusal).err(), Some(precondition_failed()));
    assert_eq!(history(&c, "versioned", "n").await, 2);
    del().if_match(&etag).if_match_size(5).send().await.expect("the named version matches");
    assert_eq!(history(&c, "versioned", "n").await, 1);
}

#[tokio::test]
async fn delete_objects_checks_each_key() {
    let server = Server::start();
    let c = server.client();
    bucket(&c, "bkt", false).await;
    let mut etags = Vec::new();
    for k in ["a", "b", "c", "d"] {
        etags.push(put(&c, "bkt", k, b"four".to_vec()).await.e_tag.expect("etag"));
    }
    let id = |k: &str| ObjectIdentifier::builder().key(k);
    let objects = vec![
        id("a").e_tag("\"0123\"").build().expect("id"),
        id("b").e_tag(&etags[1]).size(4).build().expect("id"),
        id("c").size(5).build().expect("id"),
        id("d").last_modified_time(DateTime::from_secs(1_420_070_400)).build().expect("id"),
    ];
    let out = c
        .delete_objects()
        .bucket("bkt")
        .delete(Delete::builder().set_objects(Some(objects)).build().expect("delete"))
        .send()
        .await
        .expect("delete objects");
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["b"]);
    let refused: Vec<_> = out.errors().iter().map(|e| (e.key().unwrap_or(""), e.code().unwrap_or(""))).collect();
    assert_eq!(refused, [("a", "PreconditionFailed"), ("c", "PreconditionFailed"), ("d", "PreconditionFailed")]);
    for k in ["a", "c", "d"] {
        assert_eq!(get(&c, "bkt", k).await, b"four");
    }
}

/// `n` writes of `key` at once, each its own bytes (never seen before `round`),
/// under `cond`: the bytes of those that succeeded; every other must be
/// refused with 412.
async fn race(c: &Client, bucket: &str, key: &str, write: Write, cond: Cond<'_>, round: u64) -> Vec<Vec<u8>> {
    let n = 16;
    let (if_match, if_none_match) = cond.headers();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (c, bucket, key) = (c.clone(), bucket.to_owned(), key.to_owned());
            let (if_match, if_none_match) = (if_match.clone(), if_none_match.clone());
            tokio::spawn(async move {
                let data = pattern(40_000 + i as usize, round * 1_000 + i);
                let cond = match (&if_match, &if_none_match) {
                    (Some(m), _) => Cond::IfMatch(m),
                    (_, Some(m)) => Cond::IfNoneMatch(m),
                    _ => Cond::None,
                };
                (write.run(&c, &bucket, &key, &data, cond).await, data)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (Ok(_), data) => winners.push(data),
            (Err(why), _) => assert_eq!(why, precondition_failed(), "a losing {write:?} gets 412"),
        }
    }
    winners
}

#[tokio::test]
async fn racing_conditional_writes_have_exactly_one_winner() {
    let server = Server::start();
    let c = server.client();
    for (b, versioned) in [("plain", false), ("versioned", true)] {
        bucket(&c, b, versioned).await;
        for write in [Write::Put, Write::Complete] {
            let key = format!("{write:?}");
            let winners = race(&c, b, &key, write, Cond::IfNoneMatch("*"), 1).await;
            assert_eq!(winners.len(), 1, "{b}: exactly one create-only {write:?} wins");
            assert_eq!(get(&c, b, &key).await, winners[0], "{b}: the object is the winner's bytes");

            // Compare-and-swap: all read the same ETag, one may replace it.
            let etag = c.head_object().bucket(b).key(&key).send().await.expect("head").e_tag.expect("etag");
            let winners = race(&c, b, &key, write, Cond::IfMatch(&etag), 2).await;
            assert_eq!(winners.len(), 1, "{b}: exactly one If-Match {write:?} wins");
            assert_eq!(get(&c, b, &key).await, winners[0], "{b}: the object is the winner's bytes");
            assert_eq!(history(&c, b, &key).await, if versioned { 2 } else { 1 }, "{b}: losers left no version");
        }
    }
}
