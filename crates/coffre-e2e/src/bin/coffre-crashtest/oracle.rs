//! What must hold after power comes back: every key in a state its history
//! allows (acknowledged, or one of the unanswered requests after it), and
//! every object LIST shows readable in full at the size it lists.

use aws_sdk_s3::Client;

use crate::workload::{BUCKET, Content, Model, md5};

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
    if let Err(e) = client.head_bucket().bucket(BUCKET).send().await {
        lost.push(format!(
            "bucket {BUCKET}, acknowledged at setup, is gone: {}",
            e.raw_response().map_or(0, |r| r.status().as_u16())
        ));
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
    (lost, broken)
}
