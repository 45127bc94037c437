//! Attacks on where data lands and on what one client may hold, each against
//! a real `coffre serve`:
//!
//! - bucket identity: a write that began in a bucket never commits into
//!   another bucket created later under the same name;
//! - residency: the operator's `[residency]` bounds every bucket's policy; a
//!   tenant's header (or the admin API) may narrow it, never widen it, and
//!   nothing lands outside it;
//! - connections: each listener serves at most `max_connections` at once
//!   (more wait in the kernel's backlog), and a client that stops reading an
//!   answer loses its connection after `write_timeout_secs`;
//! - listing: a delimiter listing, of keys or of versions, reads a bounded
//!   number of rows per request (`list_max_rows`) and ends its page early,
//!   truncated with where to resume, as S3 may;
//!
//! Slow bodies go over raw sockets, signed by hand (`coffre_e2e::signed`),
//! so that the test, not an SDK, decides when each byte is sent.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use coffre_e2e::deployment::node_target;
use coffre_e2e::node::ClusterCa;
use coffre_e2e::objects::{pattern, put, put_many, upload_part, version_pages_with};
use coffre_e2e::signed::{RawConn, Signer};
use coffre_e2e::{Node, ROOT_ACCESS, ROOT_SECRET, Server, error_code, free_addr};

/// Long enough for the server to have looked the bucket up and be waiting
/// for the rest of a body it has begun to read.
const SETTLE: Duration = Duration::from_millis(500);

/// Two tenants of one server: (alice's signer, alice, bob).
fn two_tenants(server: &Server) -> (Signer, Client, Client) {
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    (Signer::new(server.s3, &a_id, &a_secret), server.client_as(&a_id, &a_secret), server.client_as(&b_id, &b_secret))
}

/// The bucket holds nothing at all: no object, no version, no upload (a
/// bucket that held any could not be deleted).
async fn assert_empty(owner: &Client, bucket: &str) {
    let listed = owner.list_object_versions().bucket(bucket).send().await.expect("list versions");
    assert!(listed.versions().is_empty() && listed.delete_markers().is_empty(), "{listed:?}");
    let uploads = owner.list_multipart_uploads().bucket(bucket).send().await.expect("list uploads");
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
    owner.delete_bucket().bucket(bucket).send().await.expect("an empty bucket can be deleted");
}

// --- Bucket identity ------------------------------------------------------

#[tokio::test]
async fn a_slow_put_does_not_land_in_a_bucket_recreated_under_its_name() {
    let server = Server::start();
    let (alice_signs, alice, bob) = two_tenants(&server);
    // Small enough to live in the metadata record, and large enough for a blob.
    for (key, size) in [("inline", 1_000), ("blob", 256 * 1024)] {
        alice.create_bucket().bucket("reused").send().await.expect("alice creates");
        let body = pattern(size, 7);
        let path = format!("/reused/{key}");
        let head = alice_signs.head("PUT", &path, "", &[("Content-Length", size.to_string())]);
        let mut put = RawConn::open(server.s3).await.expect("connect");
        put.send(head.as_bytes()).await.expect("head");
        put.send(&body[..100]).await.expect("first bytes");
        tokio::time::sleep(SETTLE).await;

        alice.delete_bucket().bucket("reused").send().await.expect("alice deletes her bucket, still empty");
        bob.create_bucket().bucket("reused").send().await.expect("bob takes the name");
        put.send(&body[100..]).await.expect("the rest");
        let answer = put.answer(Duration::from_secs(10)).await.expect("an answer");
        assert_eq!((answer.status, answer.code()), (404, "NoSuchBucket"), "{key}: {}", answer.body);
        assert_empty(&bob, "reused").await;
    }
}

#[tokio::test]
async fn multipart_uploads_do_not_cross_a_bucket_recreated_under_its_name() {
    let server = Server::start();
    let (alice_signs, alice, bob) = two_tenants(&server);
    alice.create_bucket().bucket("reused").send().await.expect("alice creates");
    let upload = alice.create_multipart_upload().bucket("reused").key("big").send().await.expect("upload");
    let id = upload.upload_id().expect("upload id").to_owned();
    let first = upload_part(&alice, "reused", "big", &id, 1, pattern(5 << 20, 1)).await;

    // A second part streams slowly while the bucket is erased and the name taken.
    let second = pattern(64 * 1024, 2);
    let query = format!("partNumber=2&uploadId={id}");
    let head = alice_signs.head("PUT", "/reused/big", &query, &[("Content-Length", second.len().to_string())]);
    let mut part = RawConn::open(server.s3).await.expect("connect");
    part.send(head.as_bytes()).await.expect("head");
    part.send(&second[..100]).await.expect("first bytes");
    tokio::time::sleep(SETTLE).await;
    server.cli_ok(&["bucket", "erase", "reused", "--confirm"]);
    bob.create_bucket().bucket("reused").send().await.expect("bob takes the name");
    part.send(&second[100..]).await.expect("the rest");
    let answer = part.answer(Duration::from_secs(10)).await.expect("an answer");
    assert_eq!((answer.status, answer.code()), (404, "NoSuchUpload"), "{}", answer.body);

    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder().parts(first).build();
    let completed = alice
        .complete_multipart_upload()
        .bucket("reused")
        .key("big")
        .upload_id(&id)
        .multipart_upload(parts)
        .send()
        .await;
    // The name is bob's now: alice is refused before her upload is even looked for.
    assert_eq!(error_code(completed), ("AccessDenied".to_owned(), 403));
    assert_empty(&bob, "reused").await;
}

// --- Residency ------------------------------------------------------------

/// (id, country, site, operator): two French sites, one American.
const NODES: [(&str, &str, &str, &str); 3] =
    [("par-1", "FR", "par-a", "op-fr"), ("par-2", "FR", "par-b", "op-fr"), ("nyc-1", "US", "nyc-a", "op-us")];

/// A gateway over the three nodes whose operator allows two replicas on two
/// sites in France, and nothing less.
fn bounded_cluster(dir: &std::path::Path) -> (Vec<Node>, Server) {
    let addrs: Vec<_> = NODES.iter().map(|_| free_addr()).collect();
    let ca = ClusterCa::new(dir);
    let mut toml = format!(
        "{}\n[residency]\nallow = [\"FR\"]\nreplicas = 2\ndistinct_sites = 2\n\n\
         [[operators]]\nid = \"op-fr\"\nname = \"Exemple Cloud SAS\"\ncountry = \"FR\"\nownership = {{ FR = 100.0 }}\n\n\
         [[operators]]\nid = \"op-us\"\nname = \"Example Inc\"\ncountry = \"US\"\nownership = {{ US = 100.0 }}\n",
        ca.config_section()
    );
    for ((id, country, site, operator), addr) in NODES.iter().zip(&addrs) {
        toml.push_str(&node_target(id, *addr, (*country, "r", *site), operator));
    }
    let config = dir.join("coffre.toml");
    std::fs::write(&config, toml).expect("config");
    let nodes = NODES.iter().zip(&addrs).map(|((id, ..), a)| Node::start(id, &ca, &config, dir.join(id), *a)).collect();
    (nodes, Server::start_with_config(&dir.join("gateway"), &config, &["--role", "gateway"]))
}

/// CreateBucket with `x-coffre-residency-policy: policy`.
async fn create_with_policy(c: &Client, bucket: &str, policy: &'static str) -> Result<(), (String, u16, String)> {
    let sent = c
        .create_bucket()
        .bucket(bucket)
        .customize()
        .mutate_request(move |r| {
            r.headers_mut().insert("x-coffre-residency-policy", policy);
        })
        .send()
        .await;
    sent.map(drop).map_err(|e| {
        let status = e.raw_response().map_or(0, |r| r.status().as_u16());
        (e.code().unwrap_or_default().to_owned(), status, e.message().unwrap_or_default().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_widen_the_operators_residency() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, gateway) = bounded_cluster(tmp.path());
    let (id, secret) = gateway.create_key("tenant");
    let tenant = gateway.client_as(&id, &secret);

    let widenings = [
        ("allow=US", "allow: US reaches beyond the operator's FR (US)"),
        ("allow=FR,US; replicas=2; distinct-sites=2", "allow: US reaches beyond the operator's FR (US)"),
        ("allow=", "allow: anywhere reaches beyond the operator's FR"),
        ("replicas=1; distinct-sites=1", "replicas: 1 is fewer than the operator's 2"),
        ("replicas=3; distinct-sites=1", "distinct_sites: 1 is fewer than the operator's 2"),
    ];
    for (policy, why) in widenings {
        let refused = create_with_policy(&tenant, "wide", policy).await.expect_err(policy);
        assert_eq!((refused.0.as_str(), refused.1), ("ResidencyPolicyNotAllowed", 403), "{policy}: {refused:?}");
        assert!(refused.2.contains(why), "{policy}: {refused:?}");
        let head = tenant.head_bucket().bucket("wide").send().await;
        assert_eq!(error_code(head).1, 404, "{policy}: no bucket was created");
    }

    // Narrowing is the tenant's right; what is not named comes from the operator.
    create_with_policy(&tenant, "narrow", "operator=op-fr; replicas=2").await.expect("a narrower policy");
    tenant.create_bucket().bucket("plain").send().await.expect("the operator's policy");
    let shown = gateway.cli_json(&["bucket", "residency", "narrow"]);
    assert_eq!(shown["effective"]["allow"], serde_json::json!(["FR"]), "{shown}");
    assert_eq!(shown["effective"]["distinct_sites"], 2, "{shown}");

    // The admin API is bounded too.
    let out =
        gateway.cli(&["bucket", "residency", "plain", "--allow", "US", "--replicas", "2", "--distinct-sites", "2"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("allow: US reaches beyond the operator's FR"), "{said}");

    for bucket in ["narrow", "plain"] {
        for i in 0..4 {
            put(&tenant, bucket, &format!("k{i}"), pattern(10_000, i)).await;
        }
    }
    let held: Vec<usize> = nodes.iter().map(|n| n.blobs().len()).collect();
    assert_eq!(held, [8, 8, 0], "every object on both French nodes, nothing in the US (par-1, par-2, nyc-1)");
}

// --- Listing --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_many_keys_under_one_prefix_stops_early_and_completes_when_followed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("coffre.toml");
    std::fs::write(&config, "list_max_rows = 200\n").expect("config");
    let server = Server::start_with_config(&tmp.path().join("data"), &config, &[]);
    let c = server.client();
    c.create_bucket().bucket("deep").send().await.expect("bucket");
    let keys = (0..1500).map(|i| format!("logs/{i:05}")).chain(["a".to_owned(), "z".to_owned()]);
    put_many(std::slice::from_ref(&c), "deep", keys, 32).await;

    // ListObjectsV2: the first page ends once 200 rows were read, under `logs/`.
    let (mut objects, mut prefixes, mut pages, mut token) = (Vec::new(), Vec::new(), Vec::new(), None);
    loop {
        let page = c
            .list_objects_v2()
            .bucket("deep")
            .delimiter("/")
            .set_continuation_token(token.take())
            .send()
            .await
            .expect("list");
        objects.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        prefixes.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        pages.push(page.is_truncated() == Some(true));
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => break,
        }
        assert!(pages.len() < 10, "the pages never end");
    }
    assert_eq!(pages.first(), Some(&true), "the first page is cut short by the row bound: {pages:?}");
    assert_eq!((objects, prefixes), (vec!["a".to_owned(), "z".to_owned()], vec!["logs/".to_owned()]));

    // ListObjects (V1) resumes from NextMarker the same way.
    let first = c.list_objects().bucket("deep").delimiter("/").send().await.expect("list v1");
    assert_eq!(first.is_truncated(), Some(true));
    let marker = first.next_marker().expect("NextMarker on a truncated page").to_owned();
    let rest = c.list_objects().bucket("deep").delimiter("/").marker(marker).send().await.expect("list v1");
    assert_eq!(rest.is_truncated(), Some(false));
    let keys: Vec<&str> = first.contents().iter().chain(rest.contents()).filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a", "z"]);
}

/// Writes `versions` versions of `key` (every third one a delete marker);
/// returns their ids, newest first, as a version listing gives them.
async fn history(c: &Client, bucket: &str, key: &str, versions: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..versions {
        let id = if i % 3 == 2 {
            let out = c.delete_object().bucket(bucket).key(key).send().await.expect("delete marker");
            assert_eq!(out.delete_marker(), Some(true));
            out.version_id().map(str::to_owned)
        } else {
            put(c, bucket, key, pattern(100, i as u64)).await.version_id().map(str::to_owned)
        };
        ids.push(id.expect("a version id"));
    }
    ids.reverse();
    ids
}

/// One page of a version listing: its versions and its delete markers (two
/// lists, each in listing order), and its common prefixes.
struct VersionsPage {
    versions: Vec<(String, String)>,
    markers: Vec<(String, String)>,
    prefixes: Vec<String>,
}

/// A version listing followed to its end from NextKeyMarker and NextVersionIdMarker.
async fn versions_followed(c: &Client, bucket: &str, delimiter: Option<&str>) -> Vec<VersionsPage> {
    let entry = |k: Option<&str>, v: Option<&str>| (k.unwrap_or_default().to_owned(), v.unwrap_or_default().to_owned());
    let pages = version_pages_with(c, bucket, None, delimiter).await;
    pages
        .iter()
        .map(|page| VersionsPage {
            versions: page.versions().iter().map(|v| entry(v.key(), v.version_id())).collect(),
            markers: page.delete_markers().iter().map(|m| entry(m.key(), m.version_id())).collect(),
            prefixes: page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)).collect(),
        })
        .collect()
}

/// The pages list every entry of `want` exactly once and in its order (the
/// SDK splits a page into versions and delete markers: each list is in
/// order, and every page comes after the one before), each page holding at
/// most `bound` entries.
fn assert_listed_once_in_order(pages: &[VersionsPage], want: &[(String, String)], bound: usize) {
    let sizes: Vec<usize> = pages.iter().map(|p| p.versions.len() + p.markers.len() + p.prefixes.len()).collect();
    assert!(
        sizes.iter().all(|&n| n <= bound),
        "a page holds more entries than the {bound} rows it may read: {sizes:?}"
    );
    let place = |e: &(String, String)| want.iter().position(|w| w == e).unwrap_or_else(|| panic!("{e:?} not written"));
    let mut listed = Vec::new();
    let mut last_page_end = None;
    for page in pages {
        let (versions, markers): (Vec<usize>, Vec<usize>) =
            (page.versions.iter().map(place).collect(), page.markers.iter().map(place).collect());
        for list in [&versions, &markers] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "out of order within a page: {list:?}");
        }
        let first = versions.iter().chain(&markers).min();
        assert!(
            first.is_none() || first > last_page_end.as_ref(),
            "a page goes back: {first:?} after {last_page_end:?}"
        );
        last_page_end = versions.iter().chain(&markers).max().copied().or(last_page_end);
        listed.extend(versions.into_iter().chain(markers));
    }
    listed.sort_unstable();
    assert_eq!(listed, (0..want.len()).collect::<Vec<_>>(), "not every version exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_listing_reads_a_bounded_number_of_rows_and_gives_every_version_once_when_followed() {
    const BOUND: usize = 10;
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = server_with(tmp.path(), &format!("list_max_rows = {BOUND}\n"));
    let c = server.client();
    c.create_bucket().bucket("hist").send().await.expect("bucket");
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    c.put_bucket_versioning().bucket("hist").versioning_configuration(enabled).send().await.expect("versioning");
    // Keys in order; `logs/` rolls up under the delimiter `/`.
    let mut want: Vec<(String, String)> = Vec::new();
    let mut nested = Vec::new();
    for (key, versions) in [("a", 4), ("logs/0", 5), ("logs/1", 7), ("m", 26), ("z", 2)] {
        let ids = history(&c, "hist", key, versions).await;
        let listed = ids.into_iter().map(|id| (key.to_owned(), id));
        if key.starts_with("logs/") { nested.extend(listed) } else { want.extend(listed) }
    }

    // Under the delimiter: every version of a, m and z once, in order, and
    // logs/ once, on pages that each read at most BOUND rows.
    let pages = versions_followed(&c, "hist", Some("/")).await;
    assert_listed_once_in_order(&pages, &want, BOUND);
    let prefixes: Vec<&String> = pages.iter().flat_map(|p| &p.prefixes).collect();
    assert_eq!(prefixes, ["logs/"]);

    // Without it, the same for every version of every key.
    let pages = versions_followed(&c, "hist", None).await;
    let mut all = want.clone();
    all.extend(nested);
    all.sort_by(|x, y| x.0.cmp(&y.0));
    assert_listed_once_in_order(&pages, &all, BOUND);
}

// --- Connections ----------------------------------------------------------

/// A server started with `toml` as its config file (kept in `dir`).
fn server_with(dir: &std::path::Path, toml: &str) -> Server {
    let config = dir.join("coffre.toml");
    std::fs::write(&config, toml).expect("config");
    Server::start_with_config(&dir.join("data"), &config, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_above_the_cap_wait_until_one_ends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = server_with(tmp.path(), "max_connections = 4\n");
    let request = format!("GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.s3);

    // Four clients take every slot and say nothing.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(RawConn::open(server.s3).await.expect("connect"));
    }
    tokio::time::sleep(SETTLE).await;
    let mut fifth = RawConn::open(server.s3).await.expect("the kernel's backlog takes the fifth");
    fifth.send(request.as_bytes()).await.expect("send");
    assert!(fifth.answer(Duration::from_secs(2)).await.is_none(), "a fifth connection was served above the cap of 4");

    // One ends: the fifth is accepted and answered (anonymous: refused, but served).
    drop(held.pop());
    let answer = fifth.answer(Duration::from_secs(10)).await.expect("served once a slot is free");
    assert!((400..500).contains(&answer.status), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_connection() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = server_with(tmp.path(), "write_timeout_secs = 2\n");
    let c = server.client();
    c.create_bucket().bucket("big").send().await.expect("bucket");
    let size = 32 << 20;
    put(&c, "big", "object", pattern(size, 3)).await;

    let root = Signer::new(server.s3, ROOT_ACCESS, ROOT_SECRET);
    let mut reader = RawConn::open_with_receive_buffer(server.s3, 4096).await.expect("connect");
    reader.send(root.head("GET", "/big/object", "", &[]).as_bytes()).await.expect("send");
    // The answer starts, fills the buffers, and nothing more is read for a while.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (received, ended) = reader.drain(Duration::from_secs(20)).await;
    assert!(ended && received < size, "the server kept the stalled answer going: {received} of {size} bytes");
    // The server is fine for everyone else.
    assert_eq!(coffre_e2e::objects::get(&c, "big", "object").await.len(), size);
}
