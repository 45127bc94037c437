//! Three stateless gateways on one PostgreSQL database, with three storage
//! nodes: what one gateway writes the others serve at once, a create-only PUT
//! raced across them has one winner, a listing paged across them sees every
//! key once, a gateway killed mid-write loses nothing acknowledged, and a node
//! declared lost through one gateway is repaired from the shared job queue.
//! Needs a PostgreSQL cluster (`COFFRE_TEST_PG`, set by scripts/test.sh).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;
use coffre_e2e::deployment::Deployment;
use coffre_e2e::objects::{complete, get, list_pages, put, put_many, set_versioning, upload_part};
use coffre_e2e::{coffre_bin, error_code, md5_hex, pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_gateway_writes_the_others_serve_at_once() {
    let Some(d) = Deployment::start(3) else { return };
    let c = d.clients();
    c[0].create_bucket().bucket("shared").send().await.expect("bucket");
    for other in &c[1..] {
        other.head_bucket().bucket("shared").send().await.expect("the bucket is seen by every gateway");
    }

    // Each object written through one gateway, read back at once through the two others.
    for (i, size) in [0usize, 1, 4096, 100_000, 1 << 20].into_iter().enumerate() {
        let key = format!("obj-{size}");
        let body = pattern(size, i as u64);
        put(&c[i % 3], "shared", &key, body.clone()).await;
        for j in 1..3 {
            assert_eq!(get(&c[(i + j) % 3], "shared", &key).await, body, "{key} through gateway {}", (i + j) % 3);
        }
    }

    // One multipart upload, begun on a gateway, fed by the two others, completed on the first.
    let up = c[0].create_multipart_upload().bucket("shared").key("mp").send().await.expect("create");
    let id = up.upload_id().expect("id");
    let parts = [pattern(5 << 20, 7), pattern(1 << 20, 8)];
    let mut done = Vec::new();
    for (n, part) in parts.iter().enumerate() {
        done.push(upload_part(&c[n + 1], "shared", "mp", id, n as i32 + 1, part.clone()).await);
    }
    let listed = c[2].list_parts().bucket("shared").key("mp").upload_id(id).send().await.expect("parts");
    assert_eq!(listed.parts().len(), 2, "parts written through two gateways are listed by a third");
    complete(&c[0], "shared", "mp", id, done).await;
    assert_eq!(get(&c[1], "shared", "mp").await, [parts[0].as_slice(), parts[1].as_slice()].concat());

    // Versions written through two gateways, listed through a third.
    set_versioning(&c[1], "shared", BucketVersioningStatus::Enabled).await;
    put(&c[0], "shared", "v", b"first".to_vec()).await;
    put(&c[2], "shared", "v", b"second".to_vec()).await;
    let versions = c[1].list_object_versions().bucket("shared").prefix("v").send().await.expect("versions");
    assert_eq!(versions.versions().len(), 2);
    assert_eq!(get(&c[0], "shared", "v").await, b"second");

    // A delete through one gateway is a 404 through another.
    c[2].delete_object().bucket("shared").key("obj-1").send().await.expect("delete");
    let gone = c[0].get_object().bucket("shared").key("obj-1").send().await;
    assert_eq!(error_code(gone), ("NoSuchKey".to_owned(), 404));

    // An access key made through one gateway signs requests to another.
    let (access, secret) = d.gateways[0].create_key("tenant");
    let tenant = d.gateways[2].client_as(&access, &secret);
    tenant.create_bucket().bucket("tenant-bucket").send().await.expect("the new key works on another gateway");

    // Every gateway sees the three; one stopped cleanly leaves at once.
    assert_eq!(gateway_names(&d, 1), ["gw-0", "gw-1", "gw-2"]);
    let mut d = d;
    assert!(d.gateways[2].stop().is_some_and(|s| s.success()), "a clean stop");
    assert_eq!(gateway_names(&d, 0), ["gw-0", "gw-1"], "gone from the membership at its stop, not 30 s later");
    assert_eq!(get(&c[1], "shared", "v").await, b"second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_only_put_raced_across_gateways_has_one_winner() {
    let Some(d) = Deployment::start(3) else { return };
    let c = d.clients();
    c[0].create_bucket().bucket("race").send().await.expect("bucket");
    for round in 0..3 {
        let key = format!("contested-{round}");
        let mut tasks = Vec::new();
        for writer in 0..32 {
            let (client, key) = (c[writer % 3].clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let body = format!("writer {writer}").into_bytes();
                let out = client
                    .put_object()
                    .bucket("race")
                    .key(key)
                    .if_none_match("*")
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await;
                (body, out.map(drop).map_err(|e| error_code::<(), _>(Err(e))))
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (body, outcome) = task.await.expect("task");
            match outcome {
                Ok(()) => winners.push(body),
                Err((code, status)) => {
                    assert_eq!((code.as_str(), status), ("PreconditionFailed", 412), "round {round}")
                }
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one create-only PUT wins");
        for client in &c {
            assert_eq!(get(client, "race", &key).await, winners[0], "every gateway serves the winner's body");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_100k_keys_paged_across_gateways_sees_each_once_in_order() {
    // One replica: the listing is the database's work; two would only double
    // the writes to the nodes. The operator's `[residency]` says so, since a
    // bucket may not ask for fewer replicas than it.
    let Some(d) = Deployment::start_with_replicas(3, 1) else { return };
    let c = d.clients();
    c[0].create_bucket().bucket("many").send().await.expect("bucket");
    let keys = (0..100_000usize).map(|i| format!("k/{:03}/{i:06}", i % 997));
    put_many(&c, "many", keys, 48).await;
    // Each page from the next gateway: a continuation token is not tied to the gateway that made it.
    let pages = list_pages(&c, "many").await;
    let seen: Vec<String> =
        pages.iter().flat_map(|p| p.contents()).filter_map(|o| o.key().map(str::to_owned)).collect();
    let page = pages.len();
    assert_eq!(page, 100);
    assert_eq!(seen.len(), 100_000);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing, so every key once and in order");
    let out = c[1].list_objects_v2().bucket("many").prefix("k/").delimiter("/").send().await.expect("prefixes");
    assert_eq!(out.common_prefixes().len(), 997);
}

type Ledger = Arc<Mutex<BTreeMap<String, String>>>;

/// PUTs unique keys through one gateway until it fails or `stop` is set,
/// recording each body's MD5 before sending (`attempted`) and once answered (`acked`).
async fn write_until(client: Client, writer: usize, attempted: Ledger, acked: Ledger, stop: Arc<Mutex<bool>>) {
    let sizes = [1usize, 5000, 70_000, 300_000];
    for n in 0.. {
        if *stop.lock().expect("lock") {
            return;
        }
        let key = format!("w{writer}/{n:05}");
        let body = pattern(sizes[n % sizes.len()], (writer * 100_000 + n) as u64);
        attempted.lock().expect("lock").insert(key.clone(), md5_hex(&body));
        match client.put_object().bucket("kill").key(&key).body(ByteStream::from(body.clone())).send().await {
            Ok(_) => drop(acked.lock().expect("lock").insert(key, md5_hex(&body))),
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_write_loses_nothing_acknowledged() {
    let Some(mut d) = Deployment::start(3) else { return };
    let c = d.clients();
    c[0].create_bucket().bucket("kill").send().await.expect("bucket");
    // An upload begun on the victim and never completed: it must not become an object.
    let up = c[0].create_multipart_upload().bucket("kill").key("unfinished").send().await.expect("create");
    let upload_id = up.upload_id().expect("id").to_owned();
    upload_part(&c[0], "kill", "unfinished", &upload_id, 1, pattern(1 << 20, 1)).await;

    let (attempted, acked): (Ledger, Ledger) = Default::default();
    let stop = Arc::new(Mutex::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| tokio::spawn(write_until(c[w % 3].clone(), w, attempted.clone(), acked.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.gateways[0].kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    *stop.lock().expect("lock") = true;
    for w in writers {
        w.await.expect("writer");
    }
    let (attempted, acked) = (attempted.lock().expect("lock").clone(), acked.lock().expect("lock").clone());
    let victims_acked = acked.keys().filter(|k| k.starts_with("w0/") || k.starts_with("w3/")).count();
    assert!(victims_acked > 0, "the killed gateway had acknowledged writes");

    // Every acknowledged write reads back through the survivors.
    for (key, md5) in &acked {
        for client in &c[1..] {
            assert_eq!(&md5_hex(&get(client, "kill", key).await), md5, "{key}");
        }
    }
    // Whatever is listed is whole: a body that was sent for that key, never a part of one.
    let mut listed = 0;
    for page in list_pages(&c[2..], "kill").await {
        for o in page.contents() {
            let key = o.key().expect("key");
            let md5 = attempted.get(key).unwrap_or_else(|| panic!("{key} listed but never written"));
            assert_eq!(o.e_tag().map(|e| e.trim_matches('"')), Some(md5.as_str()), "{key} half written");
            listed += 1;
        }
    }
    assert!(listed >= acked.len());
    let unfinished = c[1].head_object().bucket("kill").key("unfinished").send().await;
    assert_eq!(error_code(unfinished).1, 404, "an upload that was never completed is no object");

    // The victim restarts with its identity: what its cut writes left is collected,
    // and the upload it began is still there for another gateway to abort.
    d.gateways[0] = d.start_gateway(0);
    let uploads = c[1].list_multipart_uploads().bucket("kill").send().await.expect("uploads");
    assert_eq!(uploads.uploads().len(), 1);
    c[1].abort_multipart_upload().bucket("kill").key("unfinished").upload_id(&upload_id).send().await.expect("abort");
    let expected = 2 * listed;
    let deadline = Instant::now() + Duration::from_secs(90);
    while d.blob_files() != expected {
        assert!(
            Instant::now() < deadline,
            "{} blob files on the nodes, {expected} expected (2 replicas of {listed} objects): orphans left",
            d.blob_files()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The gateways in the membership table, as gateway `g` lists them, sorted.
fn gateway_names(d: &Deployment, g: usize) -> Vec<String> {
    let members = d.gateways[g].cli_json(&["gateways"]);
    let mut names: Vec<String> =
        members.as_array().expect("gateways").iter().map(|m| m["name"].as_str().expect("name").to_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lost_on_one_gateway_is_known_to_all_and_repaired_from_the_shared_queue() {
    let Some(mut d) = Deployment::start(3) else { return };
    let c = d.clients();
    c[0].create_bucket().bucket("repair").send().await.expect("bucket");
    let objects: Vec<(String, Vec<u8>)> = (0..60).map(|i| (format!("k{i:02}"), pattern(10_000, i))).collect();
    for (i, (key, body)) in objects.iter().enumerate() {
        put(&c[i % 3], "repair", key, body.clone()).await;
    }
    let on_victim = d.nodes[2].blobs().len();
    assert!(on_victim > 0, "two replicas over three nodes: par-3 holds some");

    // par-3 dies and is declared lost through gateway 0 only.
    d.nodes[2].kill();
    d.gateways[0].cli_json(&["target", "lost", "par-3"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    for g in 1..3 {
        loop {
            let targets = d.gateways[g].cli_json(&["target", "list"]);
            let lost = targets.as_array().expect("targets").iter().any(|t| t["id"] == "par-3" && t["lost"] == true);
            if lost {
                break;
            }
            assert!(Instant::now() < deadline, "gateway {g} never learned that par-3 is lost: {targets}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // The pass queued by gateway 0 is worked off the shared queue: every shard
    // done, nothing failed on any gateway, every blob back to two replicas.
    let deadline = Instant::now() + Duration::from_secs(90);
    let statuses = loop {
        let statuses: Vec<serde_json::Value> = (0..3).map(|g| d.gateways[g].cli_json(&["target", "repair"])).collect();
        if statuses.iter().all(|s| s["queued"] == 0 && s["running"] == false) {
            break statuses;
        }
        if Instant::now() > deadline {
            let mut logs: Vec<String> = d.gateways.iter().map(|g| tail(&g.log(), 40)).collect();
            logs.extend(d.nodes.iter().map(|n| tail(&n.log(), 20)));
            panic!("repair did not finish: {statuses:?}\n{}", logs.join("\n----\n"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (g, status) in statuses.iter().enumerate() {
        assert_eq!(status["failed"], 0, "gateway {g}: {status}");
        assert_eq!(status["shards"], 64, "gateway {g}: {status}");
    }
    let scanned: u64 = statuses.iter().map(|s| s["scanned"].as_u64().expect("scanned")).sum();
    assert!(scanned >= objects.len() as u64, "the gateways looked at {scanned} blobs of {}", objects.len());
    for node in &d.nodes[..2] {
        assert_eq!(node.blobs().len(), objects.len(), "{} holds a replica of every object", node.id);
    }
    for (i, (key, body)) in objects.iter().enumerate() {
        assert_eq!(&get(&c[i % 3], "repair", key).await, body, "{key} after repair");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_append_to_one_audit_log_that_verifies() {
    let Some(mut d) = Deployment::start(3) else { return };
    let c = d.clients();
    c[1].create_bucket().bucket("audited").send().await.expect("bucket");
    for (i, client) in c.iter().enumerate() {
        for n in 0..5 {
            put(client, "audited", &format!("g{i}/{n}"), vec![i as u8; 100]).await;
        }
    }
    // Stopped gateways sign a last head over everything they appended.
    for gateway in &mut d.gateways {
        gateway.stop();
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let exported = tmp.path().join("log");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(coffre_bin()).args(args).output().expect("coffre");
        assert!(out.status.success(), "coffre {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "audit".as_ref(),
        "export".as_ref(),
        "--config".as_ref(),
        d.config().as_os_str(),
        "--to".as_ref(),
        exported.as_os_str(),
    ]);
    let key = run(&["audit".as_ref(), "public-key".as_ref(), "--signing-key".as_ref(), d.audit_key().as_os_str()]);
    let key_file = tmp.path().join("key.pub");
    std::fs::write(&key_file, key).expect("key");
    let verified = run(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--from".as_ref(),
        exported.as_os_str(),
        "--public-key".as_ref(),
        key_file.as_os_str(),
    ]);
    assert!(!verified.is_empty(), "verify says what it checked");
    let events = run(&[
        "audit".as_ref(),
        "query".as_ref(),
        "--from".as_ref(),
        exported.as_os_str(),
        "--format".as_ref(),
        "jsonl".as_ref(),
        "--operation".as_ref(),
        "PutObject".as_ref(),
    ]);
    for i in 0..3 {
        let from_gateway = events.lines().filter(|l| l.contains(&format!("\"node\":\"gw-{i}\""))).count();
        assert_eq!(from_gateway, 5, "the five PUTs through gateway {i}, in the one log:\n{events}");
    }
    let heads = std::fs::read_to_string(exported.join("heads.jsonl")).expect("heads");
    assert!(!heads.is_empty(), "the lease holder signed heads");

    // One changed byte in the exported events: verification fails.
    let segment = std::fs::read_dir(exported.join("segments")).expect("segments").next().expect("one").expect("entry");
    let mut bytes = std::fs::read(segment.path()).expect("read");
    let at = bytes.iter().position(|&b| b == b'g').expect("a key");
    bytes[at] = b'h';
    std::fs::write(segment.path(), bytes).expect("tamper");
    let out = std::process::Command::new(coffre_bin())
        .args(["audit", "verify", "--from"])
        .arg(&exported)
        .arg("--public-key")
        .arg(&key_file)
        .output()
        .expect("verify");
    assert!(!out.status.success(), "a tampered export must not verify");
}
