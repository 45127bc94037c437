//! Structured random inputs for every S3 operation that parses an XML body,
//! sent correctly signed to a running `coffre` so they reach the parser.
//!
//! The seeds are valid bodies kept in `fuzz/xml/` (the corpus); each case
//! mutates one of them (bytes flipped, cut, spliced, repeated, nested deep,
//! entity bombs, numbers out of range, invalid UTF-8). Every answer must be a
//! success or a client error in S3's XML form: never a 5xx, a reset
//! connection or silence, and the object stored before the run must read
//! back unchanged after it. A failing case is written to `fuzz/failures/`
//! (ignored by git) to be replayed.
//!
//! `COFFRE_FUZZ_CASES` (default 3000) and `COFFRE_FUZZ_SEED` (default: the
//! time) set the run; the seed is printed so a failure can be replayed.
//! Coverage-guided fuzzing (cargo-fuzz) needs a nightly toolchain, which
//! this project cannot use: see docs/testing.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use coffre_e2e::signed::{RawConn, Signer};
use coffre_e2e::{ROOT_ACCESS, ROOT_SECRET, Server};
use md5::{Digest as _, Md5};

/// Where each seed is sent: method and path (`{upload}` and `{n}` filled per case).
fn target_of(seed: &str) -> Option<(&'static str, &'static str)> {
    Some(match seed {
        "delete-objects" => ("POST", "/fuzz?delete"),
        "complete-multipart" => ("POST", "/fuzz/mp?uploadId={upload}"),
        "versioning" => ("PUT", "/fuzz?versioning"),
        "bucket-tagging" => ("PUT", "/fuzz?tagging"),
        "object-tagging" => ("PUT", "/fuzz/obj?tagging"),
        "lifecycle" => ("PUT", "/fuzz?lifecycle"),
        "object-lock" => ("PUT", "/fuzz?object-lock"),
        "retention" => ("PUT", "/fuzz/obj?retention"),
        "legal-hold" => ("PUT", "/fuzz/obj?legal-hold"),
        "create-bucket" => ("PUT", "/fz{n}"),
        _ => return None,
    })
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/xml")
}

fn load_seeds() -> BTreeMap<String, Vec<u8>> {
    let mut seeds = BTreeMap::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz/xml") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        assert!(target_of(&name).is_some(), "seed {name} has no target: add it to target_of");
        seeds.insert(name, std::fs::read(&path).expect("seed"));
    }
    assert_eq!(seeds.len(), 10, "every target has its seed");
    seeds
}

/// One mutation of `body`; `other` is another seed to splice from.
fn mutate(rng: &mut fastrand::Rng, body: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    let at = |rng: &mut fastrand::Rng, v: &[u8]| rng.usize(0..=v.len());
    for _ in 0..rng.usize(1..4) {
        match rng.u8(0..11) {
            0 if !out.is_empty() => {
                let i = rng.usize(0..out.len());
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 => {
                let i = at(rng, &out);
                out.truncate(i);
            }
            2 => {
                let (i, j) = (at(rng, &out), at(rng, &out));
                out.drain(i.min(j)..i.max(j));
            }
            3 => {
                let (i, j) = (at(rng, other), at(rng, other));
                let piece = other[i.min(j)..i.max(j)].to_vec();
                let k = at(rng, &out);
                out.splice(k..k, piece);
            }
            4 => {
                let (i, j) = (at(rng, &out), at(rng, &out));
                let piece = out[i.min(j)..i.max(j)].repeat(rng.usize(2..200));
                let k = at(rng, &out);
                out.splice(k..k, piece);
            }
            5 => {
                let depth = rng.usize(100..20_000);
                let k = at(rng, &out);
                let nest = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
                out.splice(k..k, nest.into_bytes());
            }
            6 => {
                let bomb = "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY e SYSTEM \"file:///etc/passwd\">]>";
                let cut = out.iter().position(|&b| b == b'>').map_or(0, |p| p + 1);
                let rest = out.split_off(cut);
                out = bomb.as_bytes().to_vec();
                out.extend(rest.iter().copied());
                let k = at(rng, &out).max(bomb.len());
                out.splice(k..k, b"&c;&e;".to_vec());
            }
            7 => {
                let numbers: [&[u8]; 6] = [b"-1", b"0", b"99999999999999999999999", b"4294967296", b"1e400", b"NaN"];
                replace_digits(&mut out, numbers[rng.usize(0..numbers.len())]);
            }
            8 => {
                let k = at(rng, &out);
                out.splice(k..k, [0xff, 0xfe, 0x00, 0xc3, 0x28, b'<', b'&']);
            }
            9 => {
                let k = at(rng, &out);
                out.splice(k..k, "x".repeat(rng.usize(1_000..200_000)).into_bytes());
            }
            _ => {
                let k = at(rng, &out);
                let junk: Vec<u8> = (0..rng.usize(1..64)).map(|_| rng.u8(..)).collect();
                out.splice(k..k, junk);
            }
        }
    }
    out
}

/// Replaces the first run of ASCII digits with `with`.
fn replace_digits(body: &mut Vec<u8>, with: &[u8]) {
    if let Some(start) = body.iter().position(u8::is_ascii_digit) {
        let end = body[start..].iter().position(|b| !b.is_ascii_digit()).map_or(body.len(), |p| start + p);
        body.splice(start..end, with.iter().copied());
    }
}

/// `body` sent as `method path`, signed by root (the harness's signer), on a
/// fresh connection. Returns the status and the answer's body, or why there
/// was none.
async fn send_signed(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Result<(u16, String), String> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    // SigV4's canonical query gives a bare subresource (`?delete`) its `=`.
    let query = if query.is_empty() || query.contains('=') { query.to_owned() } else { format!("{query}=") };
    let headers = [
        ("Content-Length", body.len().to_string()),
        ("Content-MD5", base64(&Md5::digest(body))),
        ("Connection", "close".to_owned()),
    ];
    let head = Signer::new(addr, ROOT_ACCESS, ROOT_SECRET).head(method, path, &query, &headers);
    let mut conn = RawConn::open(addr).await.map_err(|e| format!("connect: {e}"))?;
    conn.send(head.as_bytes()).await.map_err(|e| format!("send head: {e}"))?;
    // An early answer may close the connection under the body: read it anyway.
    let sent = conn.send(body).await;
    match conn.answer(Duration::from_secs(20)).await {
        Some(answer) => Ok((answer.status, answer.body)),
        None => Err(format!("no answer (send: {sent:?})")),
    }
}

fn base64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

async fn prepare(server: &Server) -> (String, Vec<u8>) {
    let c = server.client();
    c.create_bucket().bucket("keep").send().await.expect("keep");
    let sentinel: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    c.put_object().bucket("keep").key("sentinel").body(ByteStream::from(sentinel.clone())).send().await.expect("put");
    c.create_bucket().bucket("fuzz").object_lock_enabled_for_bucket(true).send().await.expect("fuzz");
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    c.put_bucket_versioning().bucket("fuzz").versioning_configuration(enabled).send().await.expect("versioning");
    c.put_object().bucket("fuzz").key("obj").body(ByteStream::from_static(b"o")).send().await.expect("obj");
    let upload = c.create_multipart_upload().bucket("fuzz").key("mp").send().await.expect("mpu");
    let id = upload.upload_id().expect("upload id").to_owned();
    for n in 1..=2 {
        let part = ByteStream::from(vec![b'p'; 5 << 20]);
        c.upload_part().bucket("fuzz").key("mp").upload_id(&id).part_number(n).body(part).send().await.expect("part");
    }
    (id, sentinel)
}

#[tokio::test]
async fn xml_bodies_never_break_the_server() {
    let cases: usize = std::env::var("COFFRE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let seed: u64 = std::env::var("COFFRE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1));
    let seeds = load_seeds();
    let names: Vec<&String> = seeds.keys().collect();
    let server = Server::start();
    let (upload, sentinel) = prepare(&server).await;
    let failures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/failures");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for n in 0..cases {
        let name = names[rng.usize(0..names.len())];
        let other = &seeds[names[rng.usize(0..names.len())]];
        let body = mutate(&mut rng, &seeds[name.as_str()], other);
        let (method, path) = target_of(name).expect("target");
        let path = path.replace("{upload}", &upload).replace("{n}", &n.to_string());
        let verdict = match send_signed(server.s3, method, &path, &body).await {
            Ok((status, answer)) => {
                *statuses.entry(status).or_default() += 1;
                // 501 NotImplemented names a feature not built (an S3 answer);
                // any other 5xx is the server failing on its input.
                if (status >= 500 && status != 501) || (status >= 400 && !answer.contains("<Code>")) {
                    Err(format!("{status}: {answer}"))
                } else {
                    Ok(())
                }
            }
            Err(why) => Err(why),
        };
        if let Err(why) = verdict {
            std::fs::create_dir_all(&failures).expect("failures dir");
            std::fs::write(failures.join(format!("{seed}-{n}-{name}.xml")), &body).expect("keep the case");
            failed.push(format!("case {n} ({name}, {method} {path}): {why}"));
        }
    }
    // A document over the bound (8 MiB): a client error, read no further.
    let (status, answer) =
        send_signed(server.s3, "PUT", "/fuzz?versioning", &vec![b'<'; 9 << 20]).await.expect("answer");
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("<Code>MaxMessageLengthExceeded</Code>"), "{answer}");

    let c = server.client();
    let kept = c.get_object().bucket("keep").key("sentinel").send().await.expect("sentinel readable");
    let kept = kept.body.collect().await.expect("body").into_bytes();
    println!("fuzz_xml: seed={seed} cases={cases} statuses={statuses:?} failures={}", failed.len());
    assert!(failed.is_empty(), "seed {seed}: {} failing cases:\n{}", failed.len(), failed.join("\n"));
    assert!(kept.as_ref() == sentinel.as_slice(), "the object stored before the run changed");
}
