//! The audit trail end to end: real S3 requests (accepted and refused) and
//! admin acts, then the offline tools on the log the server left: every
//! request is found with its principal, operation and result, the log
//! verifies, proofs verify, no secret is written, and kill -9 loses no
//! acknowledged mutation's event. Every change has its own event written
//! before it commits (every key of a batch delete, a copy's source), a log
//! that cannot record refuses the change, and strangers' refused requests
//! are tallied, not written one by one.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use coffre_e2e::audit::{self, events};
use coffre_e2e::deployment::node_target;
use coffre_e2e::files::files_under;
use coffre_e2e::node::ClusterCa;
use coffre_e2e::pg::skip_unless_embedded;
use coffre_e2e::{Node, ROOT_ACCESS, ROOT_SECRET, Server, coffre_bin, error_code, free_addr, http_get};
use serde_json::Value;

/// The one event matching all of `fields`.
fn find<'a>(all: &'a [Value], fields: &[(&str, Value)]) -> &'a Value {
    let found: Vec<&Value> = all.iter().filter(|e| fields.iter().all(|(k, v)| &e[*k] == v)).collect();
    assert_eq!(found.len(), 1, "one event with {fields:?}, found {found:#?}");
    found[0]
}

#[tokio::test]
async fn every_request_and_admin_act_is_in_the_verified_log() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let root = server.client();
    let (alice_id, alice_secret) = server.create_key("alice");
    let alice = server.client_as(&alice_id, &alice_secret);

    root.create_bucket().bucket("ledger").send().await.expect("create");
    root.put_object()
        .bucket("ledger")
        .key("q1/report.pdf")
        .body(ByteStream::from_static(b"quarterly"))
        .send()
        .await
        .expect("put");
    let got = root.get_object().bucket("ledger").key("q1/report.pdf").send().await.expect("get");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"quarterly");
    root.list_objects_v2().bucket("ledger").send().await.expect("list");
    let denied = alice.get_object().bucket("ledger").key("q1/report.pdf").send().await;
    assert_eq!(error_code(denied), ("AccessDenied".into(), 403));
    let forged = server.client_as(&alice_id, "not-alice-secret-at-all");
    let bad_sig =
        forged.put_object().bucket("ledger").key("q1/forged").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(error_code(bad_sig), ("SignatureDoesNotMatch".into(), 403));
    root.delete_object().bucket("ledger").key("q1/report.pdf").send().await.expect("delete");
    let rotate = server.cli(&["bucket", "rotate-key", "ledger"]);
    assert!(rotate.status.success(), "rotate: {}", String::from_utf8_lossy(&rotate.stderr));

    // The admin API shows the recent events and the head (none signed yet).
    let (status, body) = server.admin_get("/admin/v1/audit/events?limit=5").expect("admin");
    assert_eq!(status, 200, "{body}");
    let recent: Vec<Value> = serde_json::from_str(&body).expect("events JSON");
    assert_eq!(recent.len(), 5);
    assert!(recent.iter().any(|e| e["operation"] == "kms:RotateKey"), "{recent:#?}");
    let (status, body) = server.admin_get("/admin/v1/audit/head").expect("admin");
    assert_eq!(status, 200, "{body}");
    let head: Value = serde_json::from_str(&body).expect("head JSON");
    assert!(head["public_key"].as_str().is_some_and(|k| k.starts_with("ed25519:")), "{head}");
    let (status, _) = http_get(server.admin, "/admin/v1/audit/events").expect("admin");
    assert_eq!(status, 401, "the audit API needs the admin token");

    assert!(server.stop().is_some_and(|s| s.success()), "graceful stop; log:\n{}", server.log());

    // Offline, on the log the server left (a head is signed at shutdown).
    let (ok, public_key, err) = audit::run(&dir, &["public-key"]);
    assert!(ok, "{err}");
    let key_file = tmp.path().join("audit.pub");
    std::fs::write(&key_file, &public_key).expect("write key");
    let key_arg = key_file.to_str().expect("utf-8 path");
    let (ok, out, err) = audit::run(&dir, &["verify", "--public-key", key_arg]);
    assert!(ok, "verify: {out}{err}");
    assert!(out.contains("verified") && !out.contains("not yet signed"), "{out}");

    let all = events(&dir, &[]);
    let s = |v: &str| Value::from(v);
    let root_put = find(&all, &[("operation", s("PutObject")), ("key", s("q1/report.pdf"))]);
    assert_eq!((root_put["principal"].clone(), root_put["status"].clone()), (s(ROOT_ACCESS), Value::from(200)));
    assert_eq!(root_put["bytes_in"], Value::from(9), "{root_put}");
    assert!(root_put["source"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{root_put}");
    let get = find(&all, &[("operation", s("GetObject")), ("principal", s(ROOT_ACCESS))]);
    assert_eq!(get["bytes_out"], Value::from(9), "{get}");
    let refused = find(&all, &[("operation", s("GetObject")), ("principal", s(&alice_id))]);
    assert_eq!((refused["status"].clone(), refused["error"].clone()), (Value::from(403), s("AccessDenied")));
    // A forged signature names alice's key but is not alice: claimed, not
    // principal; unauthenticated, it is tallied (one refusal of its kind).
    let forged = find(&all, &[("error", s("SignatureDoesNotMatch"))]);
    assert_eq!(
        (forged["operation"].clone(), forged["principal"].clone(), forged["claimed"].clone(), forged["bucket"].clone()),
        (s("PutObject"), Value::Null, s(&alice_id), s("ledger"))
    );
    assert!(forged["detail"].as_str().is_some_and(|d| d.starts_with("refused unauthenticated count=1 ")), "{forged}");
    find(&all, &[("operation", s("DeleteObject")), ("status", Value::from(204))]);
    find(&all, &[("operation", s("ListObjectsV2")), ("bucket", s("ledger"))]);
    let created = find(&all, &[("operation", s("admin:CreateKey")), ("status", Value::from(201))]);
    assert_eq!(created["detail"], s(&format!("access_key={alice_id}")), "{created}");
    let intent = find(&all, &[("operation", s("intent:CreateKey"))]);
    assert_eq!(
        (intent["request_id"].clone(), intent["status"].clone()),
        (created["request_id"].clone(), Value::from(0))
    );
    assert!(intent["seq"].as_u64() < created["seq"].as_u64(), "recorded before it was made");
    find(&all, &[("operation", s("admin:RotateBucketKey")), ("bucket", s("ledger"))]);
    let rotated = find(&all, &[("operation", s("kms:RotateKey"))]);
    assert!(rotated["detail"].as_str().is_some_and(|d| d.contains("new_kek=")), "{rotated}");
    find(&all, &[("operation", s("admin:AuditEvents")), ("status", Value::from(401))]);
    assert_eq!(all.first().map(|e| e["operation"].clone()), Some(s("server:Start")));
    assert_eq!(all.last().map(|e| e["operation"].clone()), Some(s("server:Stop")));

    // Filters.
    let errors = events(&dir, &["--result", "error", "--bucket", "ledger"]);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(events(&dir, &["--principal", &alice_id, "--prefix", "q1/"]).len(), 1, "the forgery is not alice's");
    assert_eq!(events(&dir, &["--operation", "putobject", "--result", "ok"]).len(), 1);
    let (ok, table, _) = audit::run(&dir, &["query", "--result", "SignatureDoesNotMatch"]);
    assert!(ok && table.contains("SignatureDoesNotMatch") && table.lines().count() == 2, "{table}");

    // Proofs, verified offline against the public key.
    let seq = root_put["seq"].as_u64().expect("seq").to_string();
    let (ok, proof, err) = audit::run(&dir, &["proof", &seq]);
    assert!(ok, "{err}");
    let proof_file = tmp.path().join("proof.json");
    std::fs::write(&proof_file, &proof).expect("write proof");
    let (ok, out, err) =
        audit::run(&dir, &["verify-proof", proof_file.to_str().expect("path"), "--public-key", key_arg]);
    assert!(ok && out.contains(&format!("event {seq} is included")), "{out}{err}");
    let tampered = proof.replacen("q1/report.pdf", "q1/other.pdf", 1);
    std::fs::write(&proof_file, tampered).expect("write proof");
    let (ok, _, err) = audit::run(&dir, &["verify-proof", proof_file.to_str().expect("path"), "--public-key", key_arg]);
    assert!(!ok && err.contains("altered"), "{err}");

    // Nothing secret was written: no secret key, no signature.
    let log = coffre_e2e::audit_log_dir(&dir);
    for entry in files_under(&log) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        for secret in [ROOT_SECRET, alice_secret.as_str(), "not-alice-secret-at-all", "Signature="] {
            assert!(!text.contains(secret), "{} holds {secret:?}", entry.display());
        }
    }

    // An edited copy fails verification, naming the place.
    let copy = tmp.path().join("copy");
    copy_dir(&log, &copy);
    let segment = files_under(&copy.join("segments")).into_iter().next().expect("a segment");
    let text = std::fs::read_to_string(&segment).expect("segment");
    std::fs::write(&segment, text.replacen("\"status\":403", "\"status\":200", 1)).expect("edit");
    let (ok, _, err) = Command::new(coffre_bin())
        .args(["audit", "verify", "--from"])
        .arg(&copy)
        .args(["--public-key", key_arg])
        .output()
        .map(|o| (o.status.success(), (), String::from_utf8_lossy(&o.stderr).into_owned()))
        .expect("verify copy");
    assert!(!ok && err.contains("FAILED") && err.contains("does not match the events"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_keeps_the_event_of_every_acknowledged_write() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    server.client().create_bucket().bucket("burst").send().await.expect("create");
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = server.client();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (client, acked) = (client.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 0u32.. {
                    let key = format!("w{w:02}/{n:05}");
                    let put = client.put_object().bucket("burst").key(&key).body(ByteStream::from(vec![7u8; 3000]));
                    match put.send().await {
                        Ok(_) => acked.lock().expect("lock").insert(key),
                        Err(_) => return,
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for writer in writers {
        let _ = writer.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 50, "the burst wrote only {} objects", acked.len());

    // Restart (the torn tail is repaired), stop gracefully (a head is signed).
    let mut server = Server::start_in(&dir);
    let stored = stored_keys(&server.client(), "burst").await;
    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());
    let (ok, out, err) = audit::run(&dir, &["verify"]);
    assert!(ok, "verify after kill -9: {out}{err}");
    let logged: HashSet<String> = events(&dir, &["--operation", "PutObject", "--result", "ok", "--bucket", "burst"])
        .iter()
        .filter_map(|e| e["key"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = acked.difference(&logged).collect();
    assert!(missing.is_empty(), "{} acknowledged PUTs have no audit event: {missing:?}", missing.len());
    // Stored but never acknowledged (the kill came between commit and
    // answer) is a change too: its event was written before the commit.
    let changed: HashSet<String> = events(&dir, &["--operation", "change:PutObject", "--bucket", "burst"])
        .iter()
        .filter_map(|e| e["key"].as_str().map(str::to_owned))
        .collect();
    let unrecorded: Vec<&String> = stored.difference(&changed).collect();
    assert!(unrecorded.is_empty(), "{} stored objects have no change event: {unrecorded:?}", unrecorded.len());
}

/// Every key a DeleteObjects names, and the source of a copy, are in the
/// log as changes of the request that made them, before its own event.
#[tokio::test]
async fn batch_deletes_and_copies_name_every_key_and_the_source() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let c = server.client();
    c.create_bucket().bucket("shelf").send().await.expect("create");
    for key in ["a", "b", "c"] {
        c.put_object().bucket("shelf").key(key).body(ByteStream::from_static(b"x")).send().await.expect("put");
    }
    let ids = ["a", "b", "never-was"].map(|k| ObjectIdentifier::builder().key(k).build().expect("id"));
    let delete = Delete::builder().set_objects(Some(ids.to_vec())).build().expect("delete");
    let out = c.delete_objects().bucket("shelf").delete(delete).send().await.expect("batch delete");
    assert_eq!(out.deleted().len(), 3);
    c.copy_object().bucket("shelf").key("d").copy_source("shelf/c").send().await.expect("copy");
    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());

    let all = events(&dir, &[]);
    let s = |v: &str| Value::from(v);
    let batch = find(&all, &[("operation", s("DeleteObjects")), ("status", Value::from(200))]);
    let deleted: Vec<&Value> = all.iter().filter(|e| e["operation"] == "change:DeleteObject").collect();
    let mut keys: Vec<&str> = deleted.iter().filter_map(|e| e["key"].as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a", "b", "never-was"], "{deleted:#?}");
    for e in &deleted {
        assert_eq!((&e["request_id"], &e["principal"]), (&batch["request_id"], &s(ROOT_ACCESS)), "{e}");
        assert!(e["seq"].as_u64() < batch["seq"].as_u64(), "the change is written before the answer: {e}");
    }
    let copy = find(&all, &[("operation", s("CopyObject"))]);
    let copied = find(&all, &[("operation", s("change:PutObject")), ("key", s("d"))]);
    assert_eq!(copied["detail"], s("copy_source=shelf/c"), "{copied}");
    assert_eq!(copied["request_id"], copy["request_id"], "{copied}");
    find(&all, &[("operation", s("change:CreateBucket")), ("bucket", s("shelf"))]);
}

/// Ten thousand unsigned requests from a stranger, over three thousand
/// bucket names: the log grows by at most one tally per kind (1024 kinds
/// and one overflow per window), and the tallies count every request.
#[tokio::test]
async fn a_strangers_flood_is_tallied_not_written_request_by_request() {
    const REQUESTS: usize = 10_000;
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("coffre.toml");
    // One window for the whole flood, so the bound is exactly one window's.
    std::fs::write(&config, "[audit]\nrefusal_window_secs = 3600\n").expect("config");
    let dir = tmp.path().join("data");
    let mut server = Server::start_with_config(&dir, &config, &[]);
    let addr = server.s3;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut answered = 0;
                for i in (t..REQUESTS).step_by(8) {
                    let bucket = format!("flood-{}", i % 3000);
                    let request = if i % 2 == 0 {
                        format!("PUT /{bucket}/k HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
                    } else {
                        format!("GET /{bucket}/k HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    };
                    if let Some((status, _)) = coffre_e2e::raw_request(addr, request.as_bytes()) {
                        assert_eq!(status, 403);
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    let answered: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    assert_eq!(answered, REQUESTS, "every request is answered");
    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());

    let (ok, out, err) = audit::run(&dir, &["verify"]);
    assert!(ok, "{out}{err}");
    let all = events(&dir, &[]);
    let anonymous: Vec<&Value> = all.iter().filter(|e| e["principal"].is_null() && e["status"] == 403).collect();
    assert!(anonymous.len() <= 1025, "{} events for the flood", anonymous.len());
    let counted: u64 = anonymous
        .iter()
        .map(|e| {
            let detail = e["detail"].as_str().unwrap_or_default();
            assert!(detail.starts_with("refused unauthenticated count="), "not a tally: {e}");
            detail.split(' ').find_map(|w| w.strip_prefix("count=")).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum();
    let overflow: u64 = all
        .iter()
        .filter(|e| e["operation"] == "refused:Overflow")
        .filter_map(|e| e["detail"].as_str()?.split(' ').find_map(|w| w.strip_prefix("count="))?.parse::<u64>().ok())
        .sum();
    assert!(overflow > 0, "three thousand buckets overflow the 1024 kinds");
    assert_eq!(counted + overflow, REQUESTS as u64, "the tallies count every request");
    assert!(all.len() < 1100, "the whole log holds {} events", all.len());
}

/// A log the server cannot write (its segment made immutable: the same
/// refusal as a full disk) refuses changes with 503 and makes none: no
/// object stored, no bucket erased (its keys kept); it keeps the events it
/// took in order and writes them once it can.
#[tokio::test]
async fn an_unwritable_log_refuses_changes_then_catches_up() {
    // The shared log's store is the database: its outage is pg_outage.rs.
    if skip_unless_embedded("the log is not a file of this server") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let client = server.client();
    client.create_bucket().bucket("jammed").send().await.expect("create");
    client
        .put_object()
        .bucket("jammed")
        .key("before")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .expect("put");
    let segment = files_under(&dir.join("audit/segments")).pop().expect("a segment");
    let chattr = |flag: &str| Command::new("chattr").arg(flag).arg(&segment).status().is_ok_and(|s| s.success());
    if !chattr("+i") {
        println!("skipped: chattr +i is not permitted here (needs root on ext4 or XFS)");
        return;
    }
    let put =
        |key: &'static str| client.put_object().bucket("jammed").key(key).body(ByteStream::from_static(b"x")).send();
    let refused = put("during").await;
    let message = refused.as_ref().err().and_then(|e| e.as_service_error()).and_then(|e| e.message());
    let message = message.unwrap_or_default().to_owned();
    let erase = server.cli(&["bucket", "erase", "jammed", "--confirm"]);
    let unfrozen = chattr("-i");
    assert_eq!(error_code(refused), ("ServiceUnavailable".into(), 503));
    assert!(message.contains("audit log") && message.contains("nothing was changed"), "{message}");
    assert!(!erase.status.success(), "an erasure the log cannot record is not made");
    assert!(unfrozen, "chattr -i");
    let missing = client.head_object().bucket("jammed").key("during").send().await;
    assert_eq!(error_code(missing).1, 404, "the refused PUT stored nothing");
    let kept = client.get_object().bucket("jammed").key("before").send().await.expect("the keys are still there");
    assert_eq!(kept.body.collect().await.expect("body").into_bytes().as_ref(), b"kept");
    put("after").await.expect("the log writes again");
    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());

    let (ok, out, err) = audit::run(&dir, &["verify"]);
    assert!(ok, "{out}{err}");
    let puts = events(&dir, &["--operation", "PutObject", "--bucket", "jammed"]);
    let answers: Vec<(&str, u64)> =
        puts.iter().filter_map(|e| Some((e["key"].as_str()?, e["status"].as_u64()?))).collect();
    // The SDK retried the refused PUT; every attempt was answered 503.
    assert_eq!(answers.first(), Some(&("before", 200)), "{answers:?}");
    assert_eq!(answers.last(), Some(&("after", 200)), "events stay in order: {answers:?}");
    let during: Vec<u64> = answers.iter().filter(|(k, _)| *k == "during").map(|(_, s)| *s).collect();
    assert!(!during.is_empty() && during.iter().all(|s| *s == 503), "{answers:?}");
}

async fn stored_keys(client: &aws_sdk_s3::Client, bucket: &str) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut token = None;
    loop {
        let page = client.list_objects_v2().bucket(bucket).set_continuation_token(token).send().await.expect("list");
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return keys;
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for path in files_under(from) {
        let target = to.join(path.strip_prefix(from).expect("under from"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&path, target).expect("copy");
    }
}

/// A gateway of one storage node, `par-1`, on an embedded database.
fn gateway_of_one_node(tmp: &Path) -> (Node, Server) {
    let addr = free_addr();
    let config = tmp.join("coffre.toml");
    let ca = ClusterCa::new(tmp);
    let text = format!(
        "{}\n[residency]\nallow = [\"FR\"]\nreplicas = 1\ndistinct_sites = 1\n\n\
         [[operators]]\nid = \"op-fr\"\nname = \"Exemple Cloud SAS\"\ncountry = \"FR\"\nownership = {{ FR = 100.0 }}\n{}",
        ca.config_section(),
        node_target("par-1", addr, ("FR", "paris", "par-a"), "op-fr")
    );
    std::fs::write(&config, text).expect("config");
    let node = Node::start("par-1", &ca, &config, tmp.join("par-1"), addr);
    let gateway = Server::start_with_config(&tmp.join("gateway"), &config, &["--role", "gateway"]);
    (node, gateway)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_act_the_log_cannot_record_is_not_made() {
    if skip_unless_embedded("the log is not a file of this server") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (_node, mut gateway) = gateway_of_one_node(tmp.path());
    gateway.client().create_bucket().bucket("placed").send().await.expect("create");
    let residency = "/admin/v1/buckets/placed/residency";
    let target_lost = || -> bool {
        let (status, body) = gateway.admin_get("/admin/v1/targets").expect("targets");
        assert_eq!(status, 200, "{body}");
        let targets: Vec<Value> = serde_json::from_str(&body).expect("targets JSON");
        targets.iter().find(|t| t["id"] == "par-1").expect("par-1")["lost"] == true
    };
    let segment = files_under(&gateway.data_dir.join("audit/segments")).pop().expect("a segment");
    let chattr = |flag: &str| Command::new("chattr").arg(flag).arg(&segment).status().is_ok_and(|s| s.success());
    if !chattr("+i") {
        println!("skipped: chattr +i is not permitted here (needs root on ext4 or XFS)");
        return;
    }
    let lost = gateway.admin_request("POST", "/admin/v1/targets/par-1/lost", "");
    let narrowed = gateway.admin_request(
        "PUT",
        residency,
        r#"{"allow":["FR"],"replicas":1,"distinct_sites":1,"operators":["op-fr"]}"#,
    );
    let unfrozen = chattr("-i");
    assert!(unfrozen, "chattr -i");
    assert!(!target_lost(), "a loss the log could not record was declared");
    let (_, body) = gateway.admin_get(residency).expect("residency");
    let policy: Value = serde_json::from_str(&body).expect("residency JSON");
    assert_eq!(policy["policy"], Value::Null, "a policy the log could not record was set: {policy}");
    for answer in [lost, narrowed] {
        let (status, body) = answer.expect("an answer");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("AuditUnavailable") && body.contains("nothing was changed"), "{body}");
    }

    // With the log writable, the act's intent is written before it is made.
    let (status, body) = gateway.admin_request("POST", "/admin/v1/targets/par-1/lost", "").expect("lost");
    assert_eq!(status, 200, "{body}");
    assert!(target_lost());
    assert!(gateway.stop().is_some_and(|s| s.success()), "log:\n{}", gateway.log());
    // The refused act's intent and outcome (503) are written once the log
    // can write; the act made has its intent before its outcome.
    let acts = events(&gateway.data_dir, &["--operation", "admin:DeclareTargetLost"]);
    let intents = events(&gateway.data_dir, &["--operation", "intent:DeclareTargetLost"]);
    let answers: Vec<Option<u64>> = acts.iter().map(|e| e["status"].as_u64()).collect();
    assert_eq!(answers, [Some(503), Some(200)], "{acts:#?}");
    assert_eq!(acts[0]["error"], "AuditUnavailable", "{acts:#?}");
    assert_eq!(intents.len(), 2, "{intents:#?}");
    for (intent, act) in intents.iter().zip(&acts) {
        assert_eq!(intent["request_id"], act["request_id"], "{intent} {act}");
        assert_eq!((&intent["principal"], &intent["detail"]), (&act["principal"], &act["detail"]));
        assert_eq!(intent["status"].as_u64(), Some(0), "{intent}");
        assert!(intent["seq"].as_u64() < act["seq"].as_u64(), "the intent comes first: {intent} {act}");
    }
    let residency = events(&gateway.data_dir, &["--operation", "admin:PutBucketResidency"]);
    assert_eq!(residency.len(), 1, "{residency:#?}");
    assert_eq!((residency[0]["status"].as_u64(), &residency[0]["bucket"]), (Some(503), &Value::from("placed")));
}

/// Refusal tallies the log cannot take while it cannot write (its segment is
/// full and the next cannot be started) are kept and written once it can:
/// their counts still add up to every refused request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_tallies_the_log_cannot_take_are_kept_for_the_next_window() {
    const KINDS: usize = 12;
    const EACH: usize = 4;
    if skip_unless_embedded("the log is not a file of this server") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("coffre.toml");
    // Tallies of 63-byte bucket names: twelve of them overflow one 4 KiB
    // segment, so that writing them needs a new segment.
    std::fs::write(&config, "[audit]\nrefusal_window_secs = 1\nsegment_bytes = 4096\n").expect("config");
    let dir = tmp.path().join("data");
    let mut server = Server::start_with_config(&dir, &config, &[]);
    let segment = files_under(&dir.join("audit/segments")).pop().expect("a segment");
    let chattr = |flag: &str| Command::new("chattr").arg(flag).arg(&segment).status().is_ok_and(|s| s.success());
    if !chattr("+i") {
        println!("skipped: chattr +i is not permitted here (needs root on ext4 or XFS)");
        return;
    }
    let addr = server.s3;
    for kind in 0..KINDS {
        let bucket = format!("{kind:02}{}", "b".repeat(61));
        for _ in 0..EACH {
            let request = format!("GET /{bucket}/k HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let answer = coffre_e2e::raw_request(addr, request.as_bytes()).map(|a| a.0);
            assert_eq!(answer, Some(403));
        }
    }
    // Two windows pass while the log cannot write.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let unfrozen = chattr("-i");
    assert!(unfrozen, "chattr -i");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());
    assert!(server.log().contains("refusal tallies could not be recorded"), "the log took every tally at once");

    let (ok, out, err) = audit::run(&dir, &["verify"]);
    assert!(ok, "{out}{err}");
    let tallies = events(&dir, &["--operation", "GetObject", "--result", "403"]);
    let counted: u64 = tallies
        .iter()
        .filter_map(|e| e["detail"].as_str()?.split(' ').find_map(|w| w.strip_prefix("count="))?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, (KINDS * EACH) as u64, "refusals were lost with their tallies: {tallies:#?}");
}
