//! Structured random requests at the S3 front's authentication and framing,
//! all of it (our guards and claim reading, and s3s's SigV4 and aws-chunked
//! code behind them), sent to a running `coffre`.
//!
//! Each case builds a valid signed upload, fresh (a `PUT` signed in the
//! `Authorization` header with its body's SHA-256, a presigned `PUT`, or an
//! aws-chunked `PUT` with its chain of chunk signatures), then mutates the
//! bytes on the wire: the generic mutations of `fuzz_xml.rs` plus edits at the
//! tokens authentication reads (algorithm, credential, signed headers,
//! signatures, expiry, chunk sizes, line ends). Two oracles:
//! - robustness: every answer is a success or a client error (in S3's XML
//!   form, or HTTP's bare 400 for a head HTTP cannot parse), never a 5xx
//!   (but 501), and the server answers or closes: no silence;
//! - integrity: what is stored is what the key's holder signed. After the
//!   run every object in the bucket is one a case named, holding the bytes
//!   that case signed (any bytes, for presigned URLs: their payload is
//!   unsigned). A mutation that stored other bytes, or under another
//!   name, with the seed's signature is a forgery.
//!
//! `COFFRE_FUZZ_CASES` (default 2000) and `COFFRE_FUZZ_SEED` (default: the
//! time) set the run, as for `fuzz_xml.rs`; failing cases are written to
//! `fuzz/failures/`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use coffre_e2e::signed::{Key, RawConn, Signer, presigned, sha256_hex};
use coffre_e2e::{ROOT_ACCESS, ROOT_SECRET, Server};
use futures::StreamExt as _;

const BUCKET: &str = "fuzz-auth";
/// AWS's smallest chunk but the last; s3s takes smaller ones too.
const CHUNK: usize = 8192;

#[derive(Clone, Copy, Debug)]
enum Seed {
    HeaderSigned,
    Presigned,
    Chunked,
}

/// One upload as a client would send it, and the body its signature allows
/// to be stored under `key` (`None`: a presigned URL signs no payload, so
/// whatever body the request carries, up to its `Content-Length`).
struct Upload {
    key: String,
    wire: Vec<u8>,
    head_len: usize,
    signed_body: Option<Vec<u8>>,
}

fn header_signed(host: SocketAddr, key: &str, body: &[u8]) -> Upload {
    let signer = Signer::new(host, ROOT_ACCESS, ROOT_SECRET);
    let headers = [("Content-Length", body.len().to_string()), ("Connection", "close".to_owned())];
    let head = signer.head_for_payload("PUT", &format!("/{BUCKET}/{key}"), "", &sha256_hex(body), &headers).head;
    upload(key, head, body, Some(body.to_vec()))
}

fn presigned_put(host: SocketAddr, key: &str, body: &[u8]) -> Upload {
    let (target, _) =
        presigned(Key::new(ROOT_ACCESS, ROOT_SECRET), "PUT", host, &format!("/{BUCKET}/{key}"), 600, &str::to_owned);
    let head =
        format!("PUT {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    upload(key, head, body, None)
}

fn chunked(host: SocketAddr, key: &str, body: &[u8]) -> Upload {
    let signer = Signer::new(host, ROOT_ACCESS, ROOT_SECRET);
    let (head, framed) = signer.aws_chunked_put(&format!("/{BUCKET}/{key}"), body, CHUNK);
    upload(key, head, &framed, Some(body.to_vec()))
}

fn upload(key: &str, head: String, body: &[u8], signed_body: Option<Vec<u8>>) -> Upload {
    let head_len = head.len();
    let mut wire = head.into_bytes();
    wire.extend_from_slice(body);
    Upload { key: key.to_owned(), wire, head_len, signed_body }
}

/// The tokens authentication and framing read, where the edits aim.
const TOKENS: &[&str] = &[
    "AWS4-HMAC-SHA256",
    "Credential=",
    "SignedHeaders=",
    "Signature=",
    "X-Amz-Signature=",
    "X-Amz-Expires=",
    "X-Amz-Credential=",
    "X-Amz-Date=",
    "x-amz-date:",
    "x-amz-content-sha256:",
    "x-amz-decoded-content-length:",
    "Content-Length:",
    ";chunk-signature=",
    "/aws4_request",
    "\r\n",
    "%2F",
];

/// Replacements at a token: what authentication must refuse or read alike.
const EDITS: &[&str] = &[
    "",
    "aws4-hmac-sha256",
    "AWS4-HMAC-SHA256, Credential=",
    "X-Amz-Expires%3D",
    "ffffffffffffffff",
    "-1",
    "0",
    "99999999999999999999",
    " ",
    "\r\n",
    "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n",
    "\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n",
    "\n",
    "%00",
    ";",
    ",,,,",
];

/// One mutation of `wire`, aimed at a token or anywhere.
fn mutate(rng: &mut fastrand::Rng, wire: &[u8]) -> Vec<u8> {
    let mut out = wire.to_vec();
    for _ in 0..rng.usize(1..3) {
        let at = rng.usize(0..=out.len());
        match rng.u8(0..8) {
            0..=2 => edit_at_token(rng, &mut out),
            3 if !out.is_empty() => {
                let i = rng.usize(0..out.len());
                out[i] ^= 1 << rng.u8(0..8);
            }
            4 => out.truncate(at),
            5 => {
                let other = rng.usize(0..=out.len());
                out.drain(at.min(other)..at.max(other));
            }
            6 => {
                let end = (at + rng.usize(1..64)).min(out.len());
                let piece = out[at..end].repeat(rng.usize(2..50));
                out.splice(at..at, piece);
            }
            _ => {
                let junk: Vec<u8> = (0..rng.usize(1..32)).map(|_| rng.u8(..)).collect();
                out.splice(at..at, junk);
            }
        }
    }
    out
}

/// Replaces what follows one occurrence of a token (up to the next
/// separator) with one of [`EDITS`], or repeats the token.
fn edit_at_token(rng: &mut fastrand::Rng, out: &mut Vec<u8>) {
    let token = TOKENS[rng.usize(0..TOKENS.len())].as_bytes();
    let found: Vec<usize> = out.windows(token.len()).enumerate().filter(|(_, w)| *w == token).map(|(i, _)| i).collect();
    let Some(&start) = found.get(rng.usize(0..found.len().max(1))) else { return };
    let from = start + token.len();
    let to =
        out[from..].iter().position(|b| matches!(b, b'\r' | b',' | b'&' | b' ' | b';')).map_or(out.len(), |p| from + p);
    let edit = EDITS[rng.usize(0..EDITS.len())].as_bytes();
    match rng.u8(0..3) {
        0 => drop(out.splice(from..to, edit.iter().copied())),
        1 => drop(out.splice(start..start, token.iter().chain(edit).copied().collect::<Vec<_>>())),
        _ => drop(out.splice(from..from, edit.iter().copied())),
    }
}

/// Sends `wire` on a fresh connection. A request cut short leaves the
/// server waiting for the rest: after a while the sending side ends, and the
/// server must then answer or close. Silence after that is a failure.
async fn send(addr: SocketAddr, wire: &[u8]) -> Result<Option<(u16, String)>, String> {
    let mut conn = RawConn::open(addr).await.map_err(|e| format!("connect: {e}"))?;
    // A refusal may close the connection under the rest: read the answer anyway.
    let sent = conn.send(wire).await;
    if let Some(answer) = conn.answer(Duration::from_secs(2)).await {
        return Ok(Some((answer.status, answer.body)));
    }
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut conn.stream).await;
    if let Some(answer) = conn.answer(Duration::from_secs(10)).await {
        return Ok(Some((answer.status, answer.body)));
    }
    if conn.closed_within(Duration::from_secs(2)).await {
        return Ok(None);
    }
    Err(format!("neither an answer nor a close once the request ended (send: {sent:?})"))
}

/// Case `n`: its key, the mutated request, and the body its signature covers.
fn case(rng: &mut fastrand::Rng, host: SocketAddr, n: usize, kind: Seed) -> (String, Vec<u8>, Option<Vec<u8>>) {
    let key = format!("{n}-{:016x}", rng.u64(..));
    let body: Vec<u8> = (0..rng.usize(0..3 * CHUNK)).map(|_| rng.u8(..)).collect();
    let original = match kind {
        Seed::HeaderSigned => header_signed(host, &key, &body),
        Seed::Presigned => presigned_put(host, &key, &body),
        Seed::Chunked => chunked(host, &key, &body),
    };
    let wire = match kind {
        // A presigned URL signs no payload: its body is left as sent.
        Seed::Presigned => {
            let mut head = mutate(rng, &original.wire[..original.head_len]);
            head.extend_from_slice(&original.wire[original.head_len..]);
            head
        }
        _ => mutate(rng, &original.wire),
    };
    (original.key, wire, original.signed_body)
}

/// Writes a failing case to `fuzz/failures/` (ignored by git), to replay.
fn keep_case(name: &str, wire: &[u8]) {
    let failures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/failures");
    std::fs::create_dir_all(&failures).expect("failures dir");
    std::fs::write(failures.join(format!("{name}.http")), wire).expect("keep the case");
}

/// The robustness oracle for one answer.
fn judge(answer: &Option<(u16, String)>) -> Result<(), String> {
    match answer {
        None => Ok(()),
        Some((status, _)) if *status >= 500 && *status != 501 => Err(format!("{answer:?}")),
        Some((status, body)) if *status >= 400 && !body.is_empty() && !body.contains("<Code>") => {
            Err(format!("an error not in S3's form: {answer:?}"))
        }
        Some(_) => Ok(()),
    }
}

/// The integrity oracle: every stored object is one a case named, with the
/// bytes it signed.
async fn forgeries(server: &Server, signed: &HashMap<String, Option<Vec<u8>>>) -> Vec<(String, &'static str)> {
    let c = server.client();
    let mut found = Vec::new();
    let mut pages = c.list_objects_v2().bucket(BUCKET).into_paginator().send();
    while let Some(page) = pages.next().await {
        for object in page.expect("list").contents() {
            let key = object.key().unwrap_or_default().to_owned();
            let got = c.get_object().bucket(BUCKET).key(&key).send().await.expect("get");
            let got = got.body.collect().await.expect("body").into_bytes();
            match signed.get(&key) {
                Some(None) => {}
                Some(Some(body)) if body.as_slice() == got.as_ref() => {}
                Some(_) => found.push((key, "stored bytes its signature does not cover")),
                None => found.push((key, "stored under a name no case signed")),
            }
        }
    }
    found
}

#[tokio::test]
async fn authentication_and_framing_never_break_the_server_nor_store_a_forgery() {
    let cases: usize = std::env::var("COFFRE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let seed: u64 = std::env::var("COFFRE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1));
    let server = Server::start();
    server.client().create_bucket().bucket(BUCKET).send().await.expect("bucket");
    let mut signed: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    // The seeds, unmutated, are uploads the server takes.
    for (n, build) in [header_signed, presigned_put, chunked].into_iter().enumerate() {
        let control = build(server.s3, &format!("control-{n}"), &vec![b'c'; 2 * CHUNK + 5]);
        let answer = send(server.s3, &control.wire).await.expect("an answer");
        assert_eq!(answer.as_ref().map(|(s, _)| *s), Some(200), "control {n}: {answer:?}");
        signed.insert(control.key, control.signed_body);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sent: HashMap<String, Vec<u8>> = HashMap::new();
    let mut cases_sent = Vec::new();
    for n in 0..cases {
        let kind = [Seed::HeaderSigned, Seed::Presigned, Seed::Chunked][rng.usize(0..3)];
        let (key, wire, signed_body) = case(&mut rng, server.s3, n, kind);
        signed.insert(key.clone(), signed_body);
        sent.insert(key, wire.clone());
        cases_sent.push((n, kind, wire));
    }
    // Sixteen at a time: a case cut short waits seconds for its answer.
    let answers: Vec<_> = futures::stream::iter(cases_sent)
        .map(|(n, kind, wire)| async move { (n, kind, send(server.s3, &wire).await, wire) })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for (n, kind, answer, wire) in answers {
        let verdict = answer.and_then(|answer| {
            let status = answer.as_ref().map_or("closed".to_owned(), |(s, _)| s.to_string());
            *statuses.entry(status).or_default() += 1;
            judge(&answer)
        });
        if let Err(why) = verdict {
            keep_case(&format!("auth-{seed}-{n}-{kind:?}"), &wire);
            failed.push(format!("case {n} ({kind:?}): {why}"));
        }
    }
    let forged = forgeries(&server, &signed).await;
    for key in &forged {
        keep_case(&format!("auth-{seed}-forgery-{}", key.0), &sent[&key.0]);
    }
    let forged: Vec<String> = forged.into_iter().map(|(key, why)| format!("{key}: {why}")).collect();
    println!("fuzz_auth: seed={seed} cases={cases} answers={statuses:?} failures={}", failed.len());
    assert!(failed.is_empty(), "seed {seed}: {} failing cases:\n{}", failed.len(), failed.join("\n"));
    assert!(forged.is_empty(), "seed {seed}: forgeries stored:\n{}", forged.join("\n"));
}
