//! Attacks on the access-key lifecycle, each against a real `coffre serve`:
//!
//! - a disabled key signs nothing, and signs again once enabled, with its
//!   data untouched;
//! - an expired key signs nothing from its expiry on, to the second;
//! - a refused key gets the answer an unknown key gets, so a caller without
//!   the secret learns nothing of the key's state;
//! - a key disabled through one gateway is refused by every gateway within
//!   `access_key_cache_secs` (PostgreSQL, two gateways).
//!
//! And the operator's view of the tenants those keys are: their usage.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use coffre_e2e::deployment::Deployment;
use coffre_e2e::objects::put;
use coffre_e2e::{Server, error_code};
use time::format_description::well_known::Rfc3339;

/// Whether `client` may list its buckets; the error code when not.
async fn signs(client: &Client) -> Result<(), (String, u16)> {
    let answer = client.list_buckets().send().await;
    if answer.is_ok() { Ok(()) } else { Err(error_code(answer)) }
}

fn refused() -> Result<(), (String, u16)> {
    Err(("InvalidAccessKeyId".to_owned(), 403))
}

fn update(server: &Server, id: &str, args: &[&str]) -> serde_json::Value {
    server.cli_json(&[&["key", "update", id, "--json"], args].concat())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_key_signs_nothing_until_enabled_and_keeps_its_data() {
    let server = Server::start();
    let (id, secret) = server.create_key("backup-tool");
    let key = server.client_as(&id, &secret);
    key.create_bucket().bucket("backups").send().await.expect("an active key works");
    put(&key, "backups", "night-1", b"full backup".to_vec()).await;

    let shown = update(&server, &id, &["--status", "inactive"]);
    assert_eq!(shown["status"], "inactive", "{shown}");
    assert_eq!(signs(&key).await, refused(), "a disabled key is refused at once on the gateway that disabled it");
    let get = key.get_object().bucket("backups").key("night-1").send().await;
    assert_eq!(error_code(get), ("InvalidAccessKeyId".to_owned(), 403), "reads too");
    let unknown = server.client_as("CFNOSUCHKEY000000000", &secret);
    assert_eq!(signs(&unknown).await, signs(&key).await, "the same answer as a key that does not exist");
    signs(&server.client()).await.expect("other keys are not affected");

    update(&server, &id, &["--status", "active"]);
    let body = key.get_object().bucket("backups").key("night-1").send().await.expect("enabled again");
    assert_eq!(body.body.collect().await.expect("body").into_bytes().as_ref(), b"full backup");

    let listed = server.cli_json(&["key", "list", "--json"]);
    let row = listed.as_array().and_then(|l| l.iter().find(|k| k["access_key_id"] == id.as_str())).expect("listed");
    assert_eq!(row["status"], "active");
    assert!(row.get("secret_access_key").is_none(), "a listing never shows a secret: {row}");
    assert!(!server.log().contains(&secret), "the secret never reaches the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_key_is_refused_from_its_expiry_on() {
    let server = Server::start();
    let soon = time::OffsetDateTime::now_utc() + Duration::from_secs(3);
    let soon = soon.format(&Rfc3339).expect("format");
    let made = server.cli_json(&["key", "create", "--name", "job", "--expires", &soon, "--json"]);
    let field = |f: &str| made[f].as_str().unwrap_or_else(|| panic!("{f} in {made}")).to_owned();
    let key = server.client_as(&field("access_key_id"), &field("secret_access_key"));
    signs(&key).await.expect("valid until its expiry");
    assert!(made["expires"].is_string(), "the expiry is shown: {made}");

    // Past the expiry by a second; the gateway's cache does not extend it.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(signs(&key).await, refused(), "expired");

    update(&server, &field("access_key_id"), &["--expires", "never"]);
    signs(&key).await.expect("an operator may lift the expiry");
}

#[tokio::test(flavor = "multi_thread")]
async fn expiries_in_the_past_or_malformed_and_unknown_statuses_are_refused() {
    let server = Server::start();
    for expires in ["2001-01-01T00:00:00Z", "tomorrow", "2027-13-45T00:00:00Z"] {
        let body = format!(r#"{{"name":"k","expires":"{expires}"}}"#);
        let (status, answer) = server.admin_request("POST", "/admin/v1/keys", &body).expect("admin answers");
        assert_eq!(status, 400, "{expires}: {answer}");
        assert!(answer.contains("InvalidExpiry"), "{expires}: {answer}");
    }
    let listed = server.cli_json(&["key", "list", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "no key was made by a refused request: {listed}");

    let (id, _) = server.create_key("k");
    let path = format!("/admin/v1/keys/{id}");
    let (status, answer) = server.admin_request("PATCH", &path, r#"{"status":"suspended"}"#).expect("answers");
    assert_eq!((status, answer.contains("InvalidStatus")), (400, true), "{answer}");
    let (status, _) = server
        .admin_request("PATCH", "/admin/v1/keys/CFNOSUCHKEY000000000", r#"{"status":"inactive"}"#)
        .expect("answers");
    assert_eq!(status, 404, "no such key");
}

/// The bound set in the deployment's configuration (`access_key_cache_secs`).
const CACHE_BOUND: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread")]
async fn a_key_disabled_through_one_gateway_is_refused_by_every_gateway_within_the_bound() {
    let Some(d) = Deployment::start(2) else { return };
    let (id, secret) = d.gateways[0].create_key("shared-key");
    let clients: Vec<Client> = d.gateways.iter().map(|g| g.client_as(&id, &secret)).collect();
    for client in &clients {
        signs(client).await.expect("the key works on every gateway (and each now caches it)");
    }

    let disabled_at = Instant::now();
    update(&d.gateways[0], &id, &["--status", "inactive"]);
    assert_eq!(signs(&clients[0]).await, refused(), "at once where it was disabled");
    // Slack for this shared machine: the promise is the bound, not the slack.
    let deadline = CACHE_BOUND + Duration::from_secs(2);
    while signs(&clients[1]).await != refused() {
        assert!(disabled_at.elapsed() < deadline, "the other gateway still signs after {deadline:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    update(&d.gateways[1], &id, &["--status", "active"]);
    std::thread::sleep(CACHE_BOUND);
    for client in &clients {
        signs(client).await.expect("enabled again on every gateway");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_reads_each_tenants_usage() {
    let server = Server::start();
    let (a_id, a_secret) = server.create_key("hospital");
    let (b_id, _) = server.create_key("lab");
    let a = server.client_as(&a_id, &a_secret);
    for bucket in ["records", "imaging"] {
        a.create_bucket().bucket(bucket).send().await.expect("bucket");
    }
    put(&a, "records", "r1", vec![1; 1000]).await;
    put(&a, "records", "r2", vec![2; 24]).await;
    put(&a, "imaging", "i1", vec![3; 4096]).await;
    a.create_multipart_upload().bucket("imaging").key("scan").send().await.expect("upload");
    a.delete_object().bucket("records").key("r2").send().await.expect("delete");

    let usage = server.cli_json(&["usage", "--json"]);
    let of = |id: &str| {
        let row = usage.as_array().and_then(|rows| rows.iter().find(|r| r["owner"] == id)).cloned();
        row.unwrap_or_else(|| panic!("{id} is not in {usage}"))
    };
    let hospital = of(&a_id);
    assert_eq!(
        [&hospital["buckets"], &hospital["objects"], &hospital["bytes"], &hospital["multipart_uploads"]],
        [2, 2, 1000 + 4096, 1].map(serde_json::Value::from).each_ref(),
        "{hospital}"
    );
    assert_eq!(of(&b_id)["buckets"], 0, "a tenant without buckets is listed too");
    assert_eq!(of(coffre_e2e::ROOT_ACCESS)["objects"], 0);
}
