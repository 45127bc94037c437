//! The clients: writers that PUT, overwrite, delete, copy and complete
//! multipart uploads, each in its own key space and one request at a time,
//! recording what the server acknowledged. What may be on disk after the cut
//! follows from that record: [`Model`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use md5::{Digest as _, Md5};

pub const BUCKET: &str = "powercut";
/// A bucket with versioning on: every acknowledged PUT there is a version
/// that must survive, read back by its id.
pub const VERSIONED: &str = "powercut-versions";

/// What a key holds: absent, or bytes with this MD5.
pub type Content = Option<[u8; 16]>;

/// A key's history as far as the cut lets us know it.
#[derive(Debug, Clone, Default)]
pub struct KeyState {
    /// The state the last acknowledged request left (absent if none was).
    pub acked: Content,
    /// Requests after it that got no answer: each may or may not have applied.
    pub maybe: Vec<Content>,
}

impl KeyState {
    pub fn allows(&self, found: &Content) -> bool {
        self.acked == *found || self.maybe.contains(found)
    }
}

#[derive(Default)]
pub struct Model {
    pub keys: HashMap<String, KeyState>,
    /// Acknowledged versions in [`VERSIONED`]: (key, version id, content).
    pub versions: Vec<(String, String, [u8; 16])>,
    /// Every acknowledged request as the audit log names it:
    /// (operation, bucket, key).
    pub audited: Vec<(&'static str, &'static str, String)>,
    pub acked: u64,
    pub indeterminate: u64,
}

impl Model {
    fn acknowledge(&mut self, key: &str, content: Content) {
        let state = self.keys.entry(key.to_owned()).or_default();
        *state = KeyState { acked: content, maybe: Vec::new() };
        self.acked += 1;
    }

    fn unanswered(&mut self, key: &str, content: Content) {
        self.keys.entry(key.to_owned()).or_default().maybe.push(content);
        self.indeterminate += 1;
    }
}

pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// A replayable stream of choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Random bytes of a random size: 70% from 1 byte to 64 KiB (inline in the
/// metadata up to its threshold), 30% from 256 KiB to 3.25 MiB (blob files).
fn sized_body(rng: &mut Rng) -> Vec<u8> {
    let len =
        if rng.below(10) < 7 { 1 + rng.below(64 * 1024) as usize } else { 256 * 1024 + rng.below(3 << 20) as usize };
    body(rng, len)
}

fn body(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        data.extend_from_slice(&rng.next().to_le_bytes());
    }
    data.truncate(len);
    data
}

enum Op {
    Put { key: String, data: Vec<u8> },
    VersionedPut { key: String, data: Vec<u8> },
    Delete { key: String },
    Copy { from: String, key: String, content: Content },
    Multipart { key: String, parts: Vec<Vec<u8>> },
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Self::Put { key, .. }
            | Self::VersionedPut { key, .. }
            | Self::Delete { key }
            | Self::Copy { key, .. }
            | Self::Multipart { key, .. } => key,
        }
    }

    /// The operation and bucket the audit log records for the request that
    /// completes this op.
    fn audit_name(&self) -> (&'static str, &'static str) {
        match self {
            Self::Put { .. } => ("PutObject", BUCKET),
            Self::VersionedPut { .. } => ("PutObject", VERSIONED),
            Self::Delete { .. } => ("DeleteObject", BUCKET),
            Self::Copy { .. } => ("CopyObject", BUCKET),
            Self::Multipart { .. } => ("CompleteMultipartUpload", BUCKET),
        }
    }

    fn outcome(&self) -> Content {
        match self {
            Self::Put { data, .. } | Self::VersionedPut { data, .. } => Some(md5(data)),
            Self::Delete { .. } => None,
            Self::Copy { content, .. } => *content,
            Self::Multipart { parts, .. } => Some(md5(&parts.concat())),
        }
    }
}

/// The next request of writer `w`: new keys, hot keys overwritten, deletes,
/// copies of a key whose state is known, and now and then a two-part upload.
fn choose(rng: &mut Rng, w: usize, n: u64, model: &Mutex<Model>) -> Op {
    let known: Vec<(String, [u8; 16])> = model
        .lock()
        .map(|m| {
            m.keys
                .iter()
                .filter(|(k, s)| k.starts_with(&format!("w{w:02}/")) && s.maybe.is_empty())
                .filter_map(|(k, s)| s.acked.map(|c| (k.clone(), c)))
                .collect()
        })
        .unwrap_or_default();
    match rng.below(100) {
        0..35 => Op::Put { key: format!("w{w:02}/k{n:05}"), data: sized_body(rng) },
        35..45 => Op::VersionedPut { key: format!("w{w:02}/v{}", rng.below(2)), data: sized_body(rng) },
        45..65 => Op::Put { key: format!("w{w:02}/hot{}", rng.below(3)), data: sized_body(rng) },
        65..80 if !known.is_empty() => Op::Delete { key: known[rng.below(known.len() as u64) as usize].0.clone() },
        80..96 if !known.is_empty() => {
            let (from, content) = known[rng.below(known.len() as u64) as usize].clone();
            Op::Copy { from, key: format!("w{w:02}/copy{n:05}"), content: Some(content) }
        }
        96..100 => {
            let last = 1 + rng.below(100 * 1024) as usize;
            Op::Multipart { key: format!("w{w:02}/mp{n:05}"), parts: vec![body(rng, 5 << 20), body(rng, last)] }
        }
        _ => Op::Put { key: format!("w{w:02}/k{n:05}"), data: sized_body(rng) },
    }
}

fn err<E: std::fmt::Debug, R: std::fmt::Debug>(e: aws_sdk_s3::error::SdkError<E, R>) -> String {
    format!("{e:?}")
}

/// Sends `op`; for a versioned PUT, returns the version id the server gave.
async fn send(client: &Client, op: &Op) -> Result<Option<String>, String> {
    match op {
        Op::VersionedPut { key, data } => {
            let put = client.put_object().bucket(VERSIONED).key(key).body(ByteStream::from(data.clone()));
            let out = put.send().await.map_err(err)?;
            return out.version_id().map(|v| Some(v.to_owned())).ok_or_else(|| format!("{key}: no version id"));
        }
        Op::Put { key, data } => {
            client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .map_err(err)?;
        }
        Op::Delete { key } => {
            client.delete_object().bucket(BUCKET).key(key).send().await.map_err(err)?;
        }
        Op::Copy { from, key, .. } => {
            client
                .copy_object()
                .bucket(BUCKET)
                .key(key)
                .copy_source(format!("{BUCKET}/{from}"))
                .send()
                .await
                .map_err(err)?;
        }
        Op::Multipart { key, parts } => {
            let upload = client.create_multipart_upload().bucket(BUCKET).key(key).send().await.map_err(err)?;
            let id = upload.upload_id().unwrap_or_default().to_owned();
            let mut done = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let number = i as i32 + 1;
                let sent = client
                    .upload_part()
                    .bucket(BUCKET)
                    .key(key)
                    .upload_id(&id)
                    .part_number(number)
                    .body(ByteStream::from(part.clone()))
                    .send()
                    .await
                    .map_err(err)?;
                done.push(
                    CompletedPart::builder().part_number(number).set_e_tag(sent.e_tag().map(str::to_owned)).build(),
                );
            }
            let parts = CompletedMultipartUpload::builder().set_parts(Some(done)).build();
            client
                .complete_multipart_upload()
                .bucket(BUCKET)
                .key(key)
                .upload_id(&id)
                .multipart_upload(parts)
                .send()
                .await
                .map_err(err)?;
        }
    }
    Ok(None)
}

/// Runs writer `w` until the power is cut (or a request fails), counting
/// acknowledgements in `acks` so that a cut can follow one closely.
pub async fn writer(
    client: Client,
    w: usize,
    seed: u64,
    model: Arc<Mutex<Model>>,
    acks: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
) {
    let mut rng = Rng::new(seed ^ (w as u64).wrapping_mul(0x51_7C_C1_B7));
    for n in 0u64.. {
        if cut.load(Ordering::SeqCst) {
            return;
        }
        let op = choose(&mut rng, w, n, &model);
        let result = send(&client, &op).await;
        let Ok(mut model) = model.lock() else { return };
        if result.is_ok() {
            let (operation, bucket) = op.audit_name();
            model.audited.push((operation, bucket, op.key().to_owned()));
        }
        match (result, &op) {
            (Ok(Some(version)), Op::VersionedPut { key, data }) => {
                model.versions.push((key.clone(), version, md5(data)));
                model.acked += 1;
                acks.fetch_add(1, Ordering::SeqCst);
            }
            (Ok(_), _) => {
                model.acknowledge(op.key(), op.outcome());
                acks.fetch_add(1, Ordering::SeqCst);
            }
            // An unanswered versioned PUT may or may not have made a version:
            // either is fine, so it leaves no mark.
            (Err(_), Op::VersionedPut { .. }) => {
                model.indeterminate += 1;
                return;
            }
            (Err(_), _) => {
                model.unanswered(op.key(), op.outcome());
                return;
            }
        }
    }
}
