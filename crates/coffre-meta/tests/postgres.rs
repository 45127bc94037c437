//! What only the PostgreSQL engine has: schema migrations that refuse an
//! edited or newer schema, leases whose epoch fences a deposed holder, the
//! collection queue shared by several collectors, the job queue (claims by
//! many gateways at once, jobs queued again while claimed, lapsed claims,
//! retries), TLS to the database (verified, required, refused with the wrong
//! CA or against sslmode=disable), gateways presumed dead and
//! the writes they can no longer commit, and byte order under an ICU
//! collation. Needs `COFFRE_TEST_PG`; skipped without.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use coffre_core::jobs::{JobClaim, JobQueue as _};
use coffre_core::meta::{BlobLedger, BucketMeta, ObjectMeta};
use coffre_core::meta::{BucketRecord, PutObject, WriteCondition};
use coffre_core::types::{AccessKeyId, BlobId, BucketName, ObjectKey, UnixNanos, VersionId};
use coffre_meta::{PgMeta, PgOptions};

mod common;

async fn database() -> Option<String> {
    let url = common::pg_database().await;
    if url.is_none() {
        eprintln!("skipped: COFFRE_TEST_PG is unset (scripts/test.sh starts a PostgreSQL cluster)");
    }
    url
}

async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// The one value a one-row, one-column query returns.
async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(url: &str, sql: &str) -> T {
    raw(url).await.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

async fn gateway(url: &str) -> Arc<PgMeta> {
    PgMeta::connect(&PgOptions::new(url)).await.expect("connect")
}

async fn bucket(meta: &PgMeta, name: &str) -> BucketName {
    let name = BucketName::parse(name).expect("name");
    let owner = AccessKeyId::parse("owner").expect("owner");
    let record =
        BucketRecord { id: common::BUCKET_ID, keks: vec![common::kek(1)], ..BucketRecord::new(name.clone(), owner) };
    meta.create_bucket(record).await.expect("bucket");
    name
}

fn put(bucket: &BucketName, key: &str, blob: BlobId) -> PutObject {
    let owner = AccessKeyId::parse("owner").expect("owner");
    PutObject {
        bucket: bucket.clone(),
        bucket_id: common::BUCKET_ID,
        key: ObjectKey::parse(key).expect("key"),
        version: common::version(&owner, VersionId::Null, 1, common::blob(blob)),
        condition: WriteCondition::None,
        pending: vec![blob],
    }
}

#[tokio::test]
async fn migrations_apply_once_and_refuse_an_edited_or_newer_schema() {
    let Some(url) = database().await else { return };
    assert_eq!(coffre_meta::postgres::migrate(&PgOptions::new(url.as_str())).await.expect("first"), [1, 2, 3, 4]);
    assert!(
        coffre_meta::postgres::migrate(&PgOptions::new(url.as_str())).await.expect("again").is_empty(),
        "nothing twice"
    );
    let db = raw(&url).await;

    db.batch_execute("UPDATE coffre_schema SET checksum = '\\x00' WHERE version = 1").await.expect("tamper");
    let err = coffre_meta::postgres::migrate(&PgOptions::new(url.as_str())).await.expect_err("an edited migration");
    assert!(err.to_string().contains("differs from the one applied"), "{err}");
    assert!(PgMeta::connect(&PgOptions::new(url.as_str())).await.is_err(), "no gateway starts on it either");

    let good = raw(&url).await;
    good.batch_execute("DELETE FROM coffre_schema").await.expect("reset");
    // Re-recording version 1 as the build has it, then a version from the future.
    assert!(
        coffre_meta::postgres::migrate(&PgOptions::new(url.as_str())).await.is_err(),
        "the tables exist: applying again fails"
    );
    let checksum = {
        use sha2::Digest as _;
        sha2::Sha256::digest(include_str!("../src/postgres/sql/0001_initial.sql").as_bytes()).to_vec()
    };
    good.execute("INSERT INTO coffre_schema (version, name, checksum) VALUES (1, 'initial', $1)", &[&checksum])
        .await
        .expect("version 1");
    good.batch_execute("INSERT INTO coffre_schema (version, name, checksum) VALUES (99, 'future', '\\x00')")
        .await
        .expect("version 99");
    let err = coffre_meta::postgres::migrate(&PgOptions::new(url.as_str())).await.expect_err("a newer schema");
    assert!(err.to_string().contains("newer than this coffre"), "{err}");
}

#[tokio::test]
async fn a_lease_changes_hands_only_once_expired_and_fences_the_old_holder() {
    let Some(url) = database().await else { return };
    let (a, b) = (gateway(&url).await, gateway(&url).await);
    let ttl = Duration::from_millis(800);
    let first = a.acquire_lease("task", ttl).await.expect("a").expect("free lease");
    assert!(b.acquire_lease("task", ttl).await.expect("b").is_none(), "held by a");
    let renewed = a.acquire_lease("task", ttl).await.expect("renew").expect("a renews");
    assert_eq!(renewed.epoch, first.epoch, "a renewal keeps the epoch");
    assert!(a.holds(&first).await.expect("holds"));

    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let taken = b.acquire_lease("task", ttl).await.expect("b").expect("expired: b takes it");
    assert_eq!(taken.epoch, first.epoch + 1, "a new holder, a new epoch");
    assert!(!a.holds(&first).await.expect("holds"), "the deposed holder is fenced");
    assert!(a.acquire_lease("task", ttl).await.expect("a").is_none(), "and cannot take it back while b holds it");
    b.release_lease(&taken).await.expect("release");
    assert!(a.acquire_lease("task", ttl).await.expect("a").is_some(), "released: free at once");
}

#[tokio::test]
async fn collectors_claim_disjoint_blobs_and_a_claim_lapses() {
    let Some(url) = database().await else { return };
    let (a, b) = (gateway(&url).await, gateway(&url).await);
    let blobs: Vec<BlobId> = (1..=40).map(BlobId).collect();
    a.register_pending(&blobs).await.expect("pending");
    a.release_pending(&blobs).await.expect("queued");
    let (x, y) = tokio::join!(a.collectable(UnixNanos(i64::MAX), 25), b.collectable(UnixNanos(i64::MAX), 25));
    let (x, y): (BTreeSet<_>, BTreeSet<_>) = (x.expect("a").into_iter().collect(), y.expect("b").into_iter().collect());
    assert!(x.len() <= 25 && y.len() <= 25, "at most the limit each: {} and {}", x.len(), y.len());
    let hidden: i64 = scalar(&url, "SELECT count(*) FROM gc_queue WHERE run_after > now()").await;
    assert_eq!(hidden as usize, x.len() + y.len(), "a claim hides what it returns, nothing more");
    assert!(x.is_disjoint(&y), "no blob handed to two collectors");
    assert_eq!(x.len() + y.len(), 40, "between them, every queued blob");
    assert!(a.collectable(UnixNanos(i64::MAX), 100).await.expect("again").is_empty(), "all claimed");

    // A collector that dies before forgetting: its claims come back after the timeout.
    a.forget_collected(&x.iter().copied().collect::<Vec<_>>()).await.expect("forget");
    raw(&url).await.batch_execute("UPDATE gc_queue SET run_after = now()").await.expect("time passes");
    let back: BTreeSet<_> = b.collectable(UnixNanos(i64::MAX), 100).await.expect("b").into_iter().collect();
    assert_eq!(back, y, "the unforgotten claims, and nothing forgotten");
}

#[tokio::test]
async fn gateways_claim_each_job_once_and_a_job_queued_again_runs_again() {
    let Some(url) = database().await else { return };
    let gateways = [gateway(&url).await, gateway(&url).await, gateway(&url).await];
    let queues: Vec<_> = gateways.iter().map(|g| g.jobs()).collect();
    let keys: Vec<Vec<u8>> = (0u16..64).map(|n| n.to_be_bytes().to_vec()).collect();
    queues[0].enqueue("repair", &keys).await.expect("enqueue");
    queues[1].enqueue("other", &keys[..1]).await.expect("enqueue another kind");
    let hold = Duration::from_secs(60);
    let claimed = async || -> i64 { scalar(&url, "SELECT count(*) FROM jobs WHERE claimed_by IS NOT NULL").await };
    let first = queues[0].claim("repair", hold).await.expect("claim").expect("due");
    assert_eq!(claimed().await, 1, "one claim takes one job");
    queues[0].retry("repair", &first, Duration::ZERO, "put back").await.expect("put back");
    assert_eq!(claimed().await, 0);

    // Three gateways claim at once, eight claimers each: every job once.
    let claimers = queues.iter().flat_map(|q| (0..8).map(move |_| q.clone())).map(|q| async move {
        let mut mine = Vec::new();
        while let Some(claim) = q.claim("repair", hold).await.expect("claim") {
            mine.push(claim);
        }
        mine
    });
    let claims: Vec<JobClaim> = futures::future::join_all(claimers).await.into_iter().flatten().collect();
    let mut claimed: Vec<Vec<u8>> = claims.iter().map(|c| c.key.clone()).collect();
    claimed.sort();
    assert_eq!(claimed, keys, "each job claimed once, none of another kind");
    assert_eq!(queues[2].queued("repair").await.expect("queued"), 64, "claimed, not done");

    // Queued again while claimed: not handed out twice, due again once finished.
    queues[2].enqueue("repair", &keys[..1]).await.expect("again");
    assert!(queues[2].claim("repair", hold).await.expect("claim").is_none(), "still claimed");
    for claim in &claims {
        queues[0].finish("repair", claim).await.expect("finish");
    }
    let again = queues[1].claim("repair", hold).await.expect("claim").expect("queued again: runs again");
    assert_eq!(again.key, keys[0]);
    queues[1].finish("repair", &again).await.expect("finish");
    assert_eq!(queues[0].queued("repair").await.expect("queued"), 0, "every job done");
    assert_eq!(queues[0].queued("other").await.expect("queued"), 1, "the other kind untouched");

    // A claim lapses after its hold; a retry waits its delay unless queued again.
    queues[0].enqueue("repair", &keys[..1]).await.expect("enqueue");
    let lapsing = queues[0].claim("repair", Duration::from_millis(200)).await.expect("claim").expect("due");
    assert!(queues[1].claim("repair", hold).await.expect("claim").is_none(), "held");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = queues[1].claim("repair", hold).await.expect("claim").expect("the claim lapsed");
    assert_eq!(taken.key, lapsing.key);
    queues[1].retry("repair", &taken, hold, "target down").await.expect("retry");
    assert!(queues[2].claim("repair", hold).await.expect("claim").is_none(), "not before its delay");
    let error: Option<String> = scalar(&url, "SELECT last_error FROM jobs WHERE kind = 'repair'").await;
    assert_eq!(error.as_deref(), Some("target down"));
    queues[0].enqueue("repair", &keys[..1]).await.expect("asked again");
    assert!(queues[2].claim("repair", hold).await.expect("claim").is_some(), "asked again: due at once");
}

#[tokio::test]
async fn a_gateway_presumed_dead_loses_its_pending_blobs_and_cannot_commit_them() {
    let Some(url) = database().await else { return };
    let (slow, other) = (gateway(&url).await, gateway(&url).await);
    let bucket = bucket(&slow, "fenced").await;
    slow.register_pending(&[BlobId(7)]).await.expect("pending");
    assert!(other.collectable(UnixNanos(i64::MAX), 10).await.expect("gc").is_empty(), "a live writer's blob stays");

    // The slow gateway misses its heartbeats (a long pause, a partition).
    let db = raw(&url).await;
    let stale = "UPDATE gateways SET heartbeat_at = now() - INTERVAL '1 hour' WHERE gateway IN \
                 (SELECT gateway FROM pending_blobs)";
    db.batch_execute(stale).await.expect("only the writer is stale");
    assert_eq!(other.collectable(UnixNanos(i64::MAX), 10).await.expect("gc"), [BlobId(7)], "collected");

    let late = slow.put_object(put(&bucket, "k", BlobId(7))).await.expect_err("its commit must fail");
    assert!(matches!(late, coffre_core::Error::MetaUnavailable(_)), "{late:?}");
    assert!(other.object(&bucket, &ObjectKey::parse("k").expect("k"), None).await.expect("read").is_none());
}

#[tokio::test]
async fn keys_list_in_byte_order_under_an_icu_collation() {
    let Some(url) = database().await else { return };
    let meta = gateway(&url).await;
    let collation: String =
        scalar(&url, "SELECT datlocprovider::text FROM pg_database WHERE datname = current_database()").await;
    assert_eq!(collation, "i", "the test database must use ICU, or this test proves nothing");
    let bucket = bucket(&meta, "order").await;
    let keys = ["a-b", "ab", "a_b", "A", "Z", "a b", "é", "e", "f", "😀", "a/b", "a.b", "~"];
    for (i, key) in keys.iter().enumerate() {
        let blob = BlobId(100 + i as u128);
        meta.register_pending(&[blob]).await.expect("pending");
        meta.put_object(put(&bucket, key, blob)).await.expect("put");
    }
    let listed = meta.list_objects(&bucket, b"", Bound::Unbounded, 100).await.expect("list");
    let listed: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let mut expected = keys.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed, expected);
    let page = meta.list_objects(&bucket, b"a", Bound::Excluded(b"a-b".as_slice()), 100).await.expect("list");
    let page: Vec<&str> = page.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(page, ["a.b", "a/b", "a_b", "ab"], "a prefix and a start key, in byte order");
}

/// The test cluster over TCP, where it takes TLS only, with the CA its
/// certificate chains to and an unrelated one (scripts/pg-server.sh).
struct OverTls {
    tcp: String,
    ca: String,
    other_ca: String,
}

fn over_tls() -> Option<OverTls> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(OverTls {
        tcp: var("COFFRE_TEST_PG_TCP")?,
        ca: var("COFFRE_TEST_PG_CA")?,
        other_ca: var("COFFRE_TEST_PG_OTHER_CA")?,
    })
}

fn trusting(ca: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test]
async fn tls_to_the_database_is_verified_and_required() {
    let Some(url) = database().await else { return };
    let Some(tls) = over_tls() else {
        eprintln!("skipped: COFFRE_TEST_PG_TCP/_CA/_OTHER_CA are unset (scripts/pg-server.sh sets them)");
        return;
    };
    let dbname = url.split_whitespace().find_map(|p| p.strip_prefix("dbname=")).expect("dbname").to_owned();
    let tcp = format!("{} dbname={dbname}", tls.tcp);
    let over = |url: &str, tls: Option<Arc<rustls::ClientConfig>>| PgOptions { tls, ..PgOptions::new(url) };

    let transport = coffre_meta::postgres::transport(&tcp).expect("transport");
    assert!(transport.over_network && !transport.tls_required);
    assert!(!coffre_meta::postgres::transport(&url).expect("transport").over_network, "a unix socket");

    // Verified against the right CA: the engine works, and every one of its connections is TLS.
    let meta = PgMeta::connect(&over(&tcp, Some(trusting(&tls.ca)))).await.expect("TLS with the right CA");
    let name = bucket(&meta, "over-tls").await;
    assert!(meta.bucket(&name).await.expect("read back").is_some());
    let row = raw(&url)
        .await
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = 'coffre' AND a.datname = $1",
            &[&dbname],
        )
        .await
        .expect("pg_stat_ssl");
    let (connections, all_tls): (i64, Option<bool>) = (row.get(0), row.get(1));
    assert!(connections > 0 && all_tls == Some(true), "{connections} connections, TLS on all: {all_tls:?}");

    // A certificate from another CA is refused, and so is plain text.
    let err = PgMeta::connect(&over(&tcp, Some(trusting(&tls.other_ca)))).await.err().expect("the wrong CA");
    assert!(err.to_string().contains("certificate"), "{err}");
    let err = PgMeta::connect(&over(&tcp, None)).await.err().expect("plain text over TCP");
    assert!(err.to_string().contains("no encryption"), "{err}");

    // A URL that contradicts the TLS asked for is a configuration error, not a fallback.
    let err = PgMeta::connect(&over(&format!("{tcp} sslmode=disable"), Some(trusting(&tls.ca)))).await.err();
    assert!(err.expect("disable and a CA").to_string().contains("sslmode=disable"));
    let err = PgMeta::connect(&over(&format!("{tcp} sslmode=require"), None)).await.err();
    assert!(err.expect("require without TLS").to_string().contains("sslmode=require"));
}
