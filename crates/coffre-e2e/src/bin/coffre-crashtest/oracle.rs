//! What must hold after power comes back: every key in a state its history
//! allows (acknowledged, or one of the unanswered requests after it), and
//! every object LIST shows readable in full at the size it lists.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use aws_sdk_s3::Client;

use crate::workload::{BUCKET, Content, Model, VERSIONED, md5};

/// A key's bytes, or `None` if it does not exist; an error for anything else.
async fn read(client: &Client, key: &str) -> Result<Content, String> {
    match client.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => {
            let declared = out.content_length().unwrap_or(-1);
            let body = out.body.collect().await.map_err(|e| format!("{key}: body cut short: {e}"))?.into_bytes();
            if declared != body.len() as i64 {
                return Err(format!("{key}: {} bytes read, {declared} declared", body.len()));
            }
            Ok(Some(md5(&body)))
        }
        Err(e) => {
            // A lost bucket loses its objects: absent, judged by the model.
            let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
            if missing { Ok(None) } else { Err(format!("{key}: {e:?}")) }
        }
    }
}

fn show(content: &Content) -> String {
    match content {
        None => "absent".into(),
        Some(d) => d.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>() + "…",
    }
}

/// Returns (lost: acknowledged state not found, broken: unreadable or torn).
pub async fn check(client: &Client, model: &Model) -> (Vec<String>, Vec<String>) {
    let mut lost = Vec::new();
    let mut broken = Vec::new();
    for bucket in [BUCKET, VERSIONED] {
        if let Err(e) = client.head_bucket().bucket(bucket).send().await {
            let status = e.raw_response().map_or(0, |r| r.status().as_u16());
            lost.push(format!("bucket {bucket}, acknowledged at setup, is gone: {status}"));
        }
    }
    for (key, state) in &model.keys {
        match read(client, key).await {
            Ok(content) if state.allows(&content) => {}
            Ok(content) => lost.push(format!(
                "{key}: found {}, acknowledged {} (then {} unanswered)",
                show(&content),
                show(&state.acked),
                state.maybe.len()
            )),
            Err(e) => broken.push(e),
        }
    }
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        match client.list_objects_v2().bucket(BUCKET).set_continuation_token(token.clone()).send().await {
            Ok(page) => {
                listed.extend(
                    page.contents().iter().map(|o| (o.key().unwrap_or_default().to_owned(), o.size().unwrap_or(-1))),
                );
                token = page.next_continuation_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => break,
            Err(e) => {
                broken.push(format!("LIST failed: {e:?}"));
                break;
            }
        }
    }
    for (key, size) in listed {
        match client.get_object().bucket(BUCKET).key(&key).send().await {
            Ok(out) => match out.body.collect().await.map(|b| b.into_bytes().len() as i64) {
                Ok(read) if read == size => {}
                Ok(read) => broken.push(format!("{key}: listed at {size} bytes, reads {read}")),
                Err(e) => broken.push(format!("{key}: listed, body fails: {e}")),
            },
            Err(e) => broken.push(format!("{key}: listed, GET fails: {e:?}")),
        }
        if !model.keys.contains_key(&key) {
            broken.push(format!("{key}: listed but never written"));
        }
    }
    check_versions(client, model, &mut lost, &mut broken).await;
    (lost, broken)
}

/// Every acknowledged version reads back by its id, and every version the
/// bucket lists reads in full.
async fn check_versions(client: &Client, model: &Model, lost: &mut Vec<String>, broken: &mut Vec<String>) {
    for (key, version, content) in &model.versions {
        match client.get_object().bucket(VERSIONED).key(key).version_id(version).send().await {
            Ok(out) => match out.body.collect().await.map(|b| md5(&b.into_bytes())) {
                Ok(read) if read == *content => {}
                Ok(_) => lost.push(format!("{key} version {version}: other bytes than acknowledged")),
                Err(e) => broken.push(format!("{key} version {version}: body cut short: {e}")),
            },
            Err(e) => lost.push(format!(
                "{key} version {version}, acknowledged, is gone: {}",
                e.raw_response().map_or(0, |r| r.status().as_u16())
            )),
        }
    }
    for (key, version, size) in list_versions(client, broken).await {
        let got = client.get_object().bucket(VERSIONED).key(&key).version_id(&version).send().await;
        match got {
            Ok(out) => match out.body.collect().await.map(|b| b.into_bytes().len() as i64) {
                Ok(read) if read == size => {}
                Ok(read) => broken.push(format!("{key} version {version}: listed at {size} bytes, reads {read}")),
                Err(e) => broken.push(format!("{key} version {version}: listed, body fails: {e}")),
            },
            Err(e) => broken.push(format!("{key} version {version}: listed, GET fails: {e:?}")),
        }
    }
}

/// (key, version id, size) of every version ListObjectVersions shows.
async fn list_versions(client: &Client, broken: &mut Vec<String>) -> Vec<(String, String, i64)> {
    let mut listed = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = client
            .list_object_versions()
            .bucket(VERSIONED)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await;
        match page {
            Ok(page) => {
                listed.extend(page.versions().iter().map(|v| {
                    let key = v.key().unwrap_or_default().to_owned();
                    (key, v.version_id().unwrap_or_default().to_owned(), v.size().unwrap_or(-1))
                }));
                if !page.is_truncated().unwrap_or(false) {
                    return listed;
                }
                key_marker = page.next_key_marker().map(str::to_owned);
                version_marker = page.next_version_id_marker().map(str::to_owned);
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => return listed,
            Err(e) => {
                broken.push(format!("ListObjectVersions failed: {e:?}"));
                return listed;
            }
        }
    }
}

/// With the server stopped: the audit log verifies after the cut, and every
/// acknowledged request has its event (as many events as acknowledgements
/// for each operation, bucket and key).
pub fn check_audit(coffre: &Path, data_dir: &Path, model: &Model) -> Vec<String> {
    let run = |args: &[&str]| Command::new(coffre).arg("audit").args(args).arg("--data-dir").arg(data_dir).output();
    let mut problems = Vec::new();
    match run(&["verify"]) {
        Ok(out) if out.status.success() => {}
        Ok(out) => problems.push(format!("audit log does not verify: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => problems.push(format!("coffre audit verify: {e}")),
    }
    let out = match run(&["query", "--result", "ok", "--format", "jsonl"]) {
        Ok(out) if out.status.success() => out.stdout,
        Ok(out) => {
            problems.push(format!("audit query fails: {}", String::from_utf8_lossy(&out.stderr).trim()));
            return problems;
        }
        Err(e) => {
            problems.push(format!("coffre audit query: {e}"));
            return problems;
        }
    };
    let mut logged: HashMap<(String, String, String), usize> = HashMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
        *logged.entry((field("operation"), field("bucket"), field("key"))).or_default() += 1;
    }
    let mut acked: HashMap<(String, String, String), usize> = HashMap::new();
    for (operation, bucket, key) in &model.audited {
        *acked.entry(((*operation).to_owned(), (*bucket).to_owned(), key.clone())).or_default() += 1;
    }
    for (request, count) in acked {
        let found = logged.get(&request).copied().unwrap_or(0);
        if found < count {
            problems.push(format!(
                "{} {}/{}: {count} acknowledged, {found} in the audit log",
                request.0, request.1, request.2
            ));
        }
    }
    problems
}
