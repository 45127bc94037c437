//! `coffre bench`: load any S3 endpoint with PUT, GET, mixed and LIST phases
//! and report throughput and latency percentiles; optionally measure the raw
//! disk with the same object size and concurrency, so results read as ratios.
//!
//! Requests are presigned with `rusty-s3` (a signing-only crate, light enough
//! for the server binary) and sent with hyper: no SDK in the server build.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// S3 endpoint to load, e.g. http://127.0.0.1:9000; or several, comma-separated
    /// (gateways sharing one metadata database): requests go to them in turn and
    /// the figures are the total.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:9000")]
    endpoint: Vec<String>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket to use (created if missing; another key's bucket if its policy lets this key in).
    #[arg(long, default_value = "coffre-bench")]
    bucket: String,
    /// Object size: bytes, or with a KiB/MiB/GiB suffix.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    size: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Phases to run, in order: put, get, mixed, list.
    #[arg(long, value_delimiter = ',', default_value = "put,get,mixed,list")]
    phases: Vec<Phase>,
    /// Before the list phase, make sure at least this many objects exist (0-byte).
    #[arg(long, default_value_t = 0)]
    list_keys: usize,
    /// Also write and read the same sizes straight to files in this directory
    /// (with fsync, like the server), as the baseline for ratios.
    #[arg(long)]
    baseline_dir: Option<PathBuf>,
    /// Drop the OS page cache before each read phase (needs root), so GETs
    /// and the raw-disk reads both come from the disk rather than memory.
    #[arg(long)]
    drop_caches: bool,
    /// Also seal and open payload-sized buffers with AES-256-GCM in 64 KiB
    /// segments (aws-lc-rs, the server's AEAD), as the crypto baseline.
    #[arg(long)]
    crypto_baseline: bool,
    /// Print results as JSON.
    #[arg(long)]
    json: bool,
}

fn drop_caches() -> anyhow::Result<()> {
    let synced = std::process::Command::new("sync").status().context("running sync")?;
    if !synced.success() {
        bail!("sync failed");
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .context("--drop-caches needs root: writing /proc/sys/vm/drop_caches")
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Put,
    Get,
    Mixed,
    List,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)]
        .iter()
        .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    num.trim().parse::<u64>().map(|n| n * mult).map_err(|e| format!("invalid size {s:?}: {e}"))
}

#[derive(Serialize, Debug)]
struct PhaseResult {
    phase: String,
    operations: u64,
    errors: u64,
    seconds: f64,
    ops_per_sec: f64,
    mib_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// For list: objects listed per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    keys_per_sec: Option<f64>,
}

struct Target {
    http: Client<HttpConnector, Full<Bytes>>,
    /// The bucket on each endpoint; request i goes to endpoint i % n.
    buckets: Vec<Bucket>,
    next: AtomicU64,
    creds: Credentials,
}

const SIGN_FOR: Duration = Duration::from_secs(3600);

impl Target {
    /// The bucket on the endpoint whose turn it is.
    fn bucket(&self) -> &Bucket {
        match self.buckets.as_slice() {
            [one] => one,
            all => &all[(self.next.fetch_add(1, Ordering::Relaxed) % all.len() as u64) as usize],
        }
    }

    /// Sends a request; keeps the response body only when asked or on error.
    async fn send(
        &self,
        method: http::Method,
        url: url::Url,
        body: Bytes,
        keep_body: bool,
    ) -> anyhow::Result<(http::StatusCode, u64, Bytes)> {
        let req = http::Request::builder().method(method).uri(url.as_str()).body(Full::new(body))?;
        let resp = self.http.request(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut len = 0u64;
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                len += data.len() as u64;
                if keep_body || !status.is_success() {
                    kept.extend_from_slice(&data);
                }
            }
        }
        Ok((status, len, Bytes::from(kept)))
    }

    async fn put(&self, key: &str, body: Bytes) -> anyhow::Result<()> {
        let url = self.bucket().put_object(Some(&self.creds), key).sign(SIGN_FOR);
        let (status, _, text) = self.send(http::Method::PUT, url, body, false).await?;
        if !status.is_success() {
            bail!("PUT {key}: {status} {}", String::from_utf8_lossy(&text));
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<u64> {
        let url = self.bucket().get_object(Some(&self.creds), key).sign(SIGN_FOR);
        let (status, len, text) = self.send(http::Method::GET, url, Bytes::new(), false).await?;
        if !status.is_success() {
            bail!("GET {key}: {status} {}", String::from_utf8_lossy(&text));
        }
        Ok(len)
    }

    /// Lists every key under `prefix`, all pages from one endpoint; returns how many.
    async fn list_all(&self, prefix: &str) -> anyhow::Result<(u64, u64)> {
        let (mut keys, mut pages) = (0u64, 0u64);
        let mut token: Option<String> = None;
        let bucket = self.bucket();
        loop {
            let mut action = bucket.list_objects_v2(Some(&self.creds));
            action.with_prefix(prefix);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGN_FOR);
            let (status, _, text) = self.send(http::Method::GET, url, Bytes::new(), true).await?;
            if !status.is_success() {
                bail!("LIST: {status} {}", String::from_utf8_lossy(&text));
            }
            let page = rusty_s3::actions::ListObjectsV2::parse_response(std::str::from_utf8(&text)?)
                .map_err(|e| anyhow::anyhow!("LIST: unreadable XML: {e}"))?;
            keys += page.contents.len() as u64;
            pages += 1;
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok((keys, pages)),
            }
        }
    }

    /// Creates the bucket through every endpoint (after the first, gateways
    /// sharing a database answer that it exists already).
    async fn ensure_bucket(&self) -> anyhow::Result<()> {
        for bucket in &self.buckets {
            let url = bucket.create_bucket(&self.creds).sign(SIGN_FOR);
            let (status, _, text) = self.send(http::Method::PUT, url, Bytes::new(), true).await?;
            let text = String::from_utf8_lossy(&text);
            // Someone else's bucket is fine too: its policy may let this key in.
            let exists = text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists");
            if !status.is_success() && !exists {
                let at = if self.buckets.len() > 1 { format!(" at {}", bucket.base_url()) } else { String::new() };
                bail!("creating bucket {}{at}: {status} {text}", bucket.name());
            }
        }
        Ok(())
    }
}

/// How many objects each writer stored, so readers only ask for existing ones.
struct Written(Vec<AtomicU64>);

impl Written {
    fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self((0..workers).map(|_| AtomicU64::new(0)).collect()))
    }

    fn record(&self, worker: usize, n: u64) {
        if let Some(c) = self.0.get(worker) {
            c.fetch_max(n + 1, Ordering::Relaxed);
        }
    }

    /// The (writer, index) of an object that exists, spread over all writers.
    fn pick(&self, worker: usize, n: u64) -> anyhow::Result<(usize, u64)> {
        let nonempty: Vec<(usize, u64)> =
            self.0.iter().enumerate().map(|(w, c)| (w, c.load(Ordering::Relaxed))).filter(|(_, c)| *c > 0).collect();
        let Some(&(w, count)) = nonempty.get(worker % nonempty.len().max(1)) else {
            bail!("nothing was written to read back: run a put phase first");
        };
        Ok((w, n % count))
    }
}

/// Latencies and counts shared by a phase's workers.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    latencies_us: std::sync::Mutex<Vec<u32>>,
}

impl Tally {
    fn record(&self, started: Instant, bytes: u64) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        if let Ok(mut l) = self.latencies_us.lock() {
            l.push(us);
        }
    }

    fn result(&self, phase: &str, elapsed: Duration) -> PhaseResult {
        let mut lat = self.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
        lat.sort_unstable();
        let pct =
            |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).map_or(0.0, |&us| f64::from(us) / 1000.0);
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ops = self.ops.load(Ordering::Relaxed);
        PhaseResult {
            phase: phase.to_owned(),
            operations: ops,
            errors: self.errors.load(Ordering::Relaxed),
            seconds: secs,
            ops_per_sec: ops as f64 / secs,
            mib_per_sec: self.bytes.load(Ordering::Relaxed) as f64 / secs / (1024.0 * 1024.0),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            keys_per_sec: None,
        }
    }
}

/// Prints a progress line to stderr every second until `done`.
fn progress(phase: &'static str, tally: Arc<Tally>, done: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        while !done.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let secs = start.elapsed().as_secs_f64();
            let mib = tally.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
            eprint!("\r[{phase}] {secs:5.1}s  {} ops  {:8.1} MiB/s   ", tally.ops.load(Ordering::Relaxed), mib / secs);
        }
        eprintln!();
    })
}

/// Runs `op(worker, n)` on `concurrency` workers until the deadline.
async fn drive<F, Fut>(phase: &'static str, concurrency: usize, duration: Duration, op: F) -> PhaseResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send,
{
    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));
    let ticker = progress(phase, tally.clone(), done.clone());
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (op, tally) = (op.clone(), tally.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match op(w, n).await {
                        Ok(bytes) => tally.record(t, bytes),
                        Err(e) => {
                            if tally.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("\n[{phase}] error: {e:#}");
                            }
                        }
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    tally.result(phase, elapsed)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let buckets = args
        .endpoint
        .iter()
        .map(|e| {
            let endpoint: url::Url = e.trim().parse().with_context(|| format!("--endpoint {e:?}"))?;
            Bucket::new(endpoint, UrlStyle::Path, args.bucket.clone(), args.region.clone()).context("--bucket")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if buckets.is_empty() {
        bail!("--endpoint: at least one endpoint is needed");
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // Idle connections are kept per host: each endpoint may have every worker's.
    let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.concurrency * 2).build(connector);
    let creds = Credentials::new(args.access_key.clone(), args.secret_key.clone());
    let target = Arc::new(Target { http, buckets, next: AtomicU64::new(0), creds });
    target.ensure_bucket().await?;

    let payload = Bytes::from(random_bytes(args.size as usize));
    let duration = Duration::from_secs(args.duration);
    let written = Written::new(args.concurrency);
    let prefix = format!("bench-{}/", args.size);
    let key = {
        let prefix = prefix.clone();
        move |w: usize, n: u64| format!("{prefix}{w:03}/{n:010}")
    };
    let mut results = Vec::new();
    for phase in &args.phases {
        if args.drop_caches && matches!(phase, Phase::Get | Phase::Mixed) {
            drop_caches()?;
        }
        let r = match phase {
            Phase::Put => {
                let (t, body, key, written) = (target.clone(), payload.clone(), key.clone(), written.clone());
                drive("put", args.concurrency, duration, move |w, n| {
                    let (t, body, k, written) = (t.clone(), body.clone(), key(w, n), written.clone());
                    async move {
                        let len = body.len() as u64;
                        t.put(&k, body).await?;
                        written.record(w, n);
                        Ok(len)
                    }
                })
                .await
            }
            Phase::Get => {
                let (t, key, written) = (target.clone(), key.clone(), written.clone());
                drive("get", args.concurrency, duration, move |w, n| {
                    let (t, picked) = (t.clone(), written.pick(w, n).map(|(pw, pn)| key(pw, pn)));
                    async move { t.get(&picked?).await }
                })
                .await
            }
            Phase::Mixed => {
                let (t, body, key, written) = (target.clone(), payload.clone(), key.clone(), written.clone());
                // 70% GET of existing objects, 30% PUT overwriting them.
                drive("mixed", args.concurrency, duration, move |w, n| {
                    let (t, body, picked) = (t.clone(), body.clone(), written.pick(w, n).map(|(pw, pn)| key(pw, pn)));
                    async move {
                        let k = picked?;
                        if n % 10 < 3 {
                            let len = body.len() as u64;
                            t.put(&k, body).await.map(|()| len)
                        } else {
                            t.get(&k).await
                        }
                    }
                })
                .await
            }
            Phase::List => list_phase(&target, &args, duration).await?,
        };
        results.push(r);
    }
    if let Some(dir) = &args.baseline_dir {
        results.extend(baseline(dir, &payload, args.concurrency, duration, args.drop_caches).await?);
    }
    if args.crypto_baseline {
        results.extend(crypto_baseline(&payload, args.concurrency, duration).await);
    }
    report(&results, args.json)
}

async fn list_phase(target: &Arc<Target>, args: &BenchArgs, duration: Duration) -> anyhow::Result<PhaseResult> {
    let prefix = "bench-list/";
    if args.list_keys > 0 {
        let (existing, _) = target.list_all(prefix).await?;
        let missing = args.list_keys.saturating_sub(existing as usize);
        if missing > 0 {
            eprintln!("[list] creating {missing} objects under {prefix}");
            let next = Arc::new(AtomicU64::new(existing));
            let workers: Vec<_> = (0..args.concurrency.max(16))
                .map(|_| {
                    let (t, next) = (target.clone(), next.clone());
                    let total = args.list_keys as u64;
                    tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= total {
                                return Ok::<_, anyhow::Error>(());
                            }
                            t.put(&format!("{prefix}{i:08}"), Bytes::new()).await?;
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await??;
            }
        }
    }
    let listed = Arc::new(AtomicU64::new(0));
    let (t, counter) = (target.clone(), listed.clone());
    let mut r = drive("list", 1, duration, move |_, _| {
        let (t, counter) = (t.clone(), counter.clone());
        async move {
            let (keys, _pages) = t.list_all(prefix).await?;
            counter.fetch_add(keys, Ordering::Relaxed);
            Ok(0)
        }
    })
    .await;
    r.keys_per_sec = Some(listed.load(Ordering::Relaxed) as f64 / r.seconds);
    Ok(r)
}

/// Writes (with fsync) and reads back files of the payload size, as the raw-disk baseline.
async fn baseline(
    dir: &std::path::Path,
    payload: &Bytes,
    concurrency: usize,
    duration: Duration,
    cold: bool,
) -> anyhow::Result<Vec<PhaseResult>> {
    let dir = dir.join(format!("coffre-bench-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let written = Written::new(concurrency);
    let (d, body, w_count) = (dir.clone(), payload.clone(), written.clone());
    let write = drive("disk-write", concurrency, duration, move |w, n| {
        let (path, body, w_count) = (d.join(format!("{w:03}-{n:010}")), body.clone(), w_count.clone());
        async move {
            tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
                use std::io::Write as _;
                let mut f = std::fs::File::create(&path)?;
                f.write_all(&body)?;
                coffre_disk::sync_file(&f)?;
                coffre_disk::sync_dir(coffre_disk::parent_dir(&path))?;
                Ok(body.len() as u64)
            })
            .await?
            .inspect(|_| w_count.record(w, n))
        }
    })
    .await;
    if cold {
        drop_caches()?;
    }
    let d = dir.clone();
    let read = drive("disk-read", concurrency, duration, move |w, n| {
        let path = written.pick(w, n).map(|(pw, pn)| d.join(format!("{pw:03}-{pn:010}")));
        async move {
            let path = path?;
            tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
                use std::io::Read as _;
                let mut f = std::fs::File::open(&path)?;
                let mut buf = vec![0u8; 1 << 20];
                let mut total = 0u64;
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        return Ok(total);
                    }
                    total += n as u64;
                }
            })
            .await?
        }
    })
    .await;
    std::fs::remove_dir_all(&dir).ok();
    Ok(vec![write, read])
}

/// AES-256-GCM over the payload in the server's segment size, on
/// `concurrency` threads: what encryption alone costs on this CPU.
async fn crypto_baseline(payload: &Bytes, concurrency: usize, duration: Duration) -> Vec<PhaseResult> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    const SEGMENT: usize = coffre_crypto::segment::SEGMENT_SIZE;
    let key = || LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap_or_else(|_| unreachable!()));
    let nonce = |i: usize| {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&(i as u64).to_be_bytes());
        Nonce::assume_unique_for_key(n)
    };
    let body = payload.clone();
    let seal = drive("aes-seal", concurrency, duration, move |_, _| {
        let body = body.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                // One segment buffer, reused: a copy in and a seal in place,
                // as the server's sealer does.
                let aead = key();
                let mut buf = Vec::with_capacity(SEGMENT);
                for (i, seg) in body.chunks(SEGMENT).enumerate() {
                    buf.clear();
                    buf.extend_from_slice(seg);
                    let tag = aead
                        .seal_in_place_separate_tag(nonce(i), Aad::from(b"bench"), &mut buf)
                        .map_err(|_| anyhow::anyhow!("seal failed"))?;
                    let _ = std::hint::black_box(tag);
                }
                Ok(body.len() as u64)
            })
            .await?
        }
    })
    .await;
    // Seal once, then open the same segments over and over.
    let aead = key();
    let mut sealed: Vec<Vec<u8>> = Vec::new();
    for (i, seg) in payload.chunks(SEGMENT).enumerate() {
        let mut s = seg.to_vec();
        if aead.seal_in_place_append_tag(nonce(i), Aad::from(b"bench"), &mut s).is_ok() {
            sealed.push(s);
        }
    }
    let sealed = Arc::new(sealed);
    let open = drive("aes-open", concurrency, duration, move |_, _| {
        let sealed = sealed.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let aead = key();
                let mut total = 0u64;
                let mut s = Vec::with_capacity(SEGMENT + 16);
                for (i, seg) in sealed.iter().enumerate() {
                    s.clear();
                    s.extend_from_slice(seg);
                    let plain = aead
                        .open_in_place(nonce(i), Aad::from(b"bench"), &mut s)
                        .map_err(|_| anyhow::anyhow!("open failed"))?;
                    total += plain.len() as u64;
                }
                Ok(total)
            })
            .await?
        }
    })
    .await;
    vec![seal, open]
}

fn random_bytes(len: usize) -> Vec<u8> {
    // xorshift: incompressible enough for storage, and cheap to make.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn report(results: &[PhaseResult], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(results)?);
        return Ok(());
    }
    println!(
        "{:<11} {:>9} {:>7} {:>11} {:>10} {:>9} {:>9} {:>12}",
        "phase", "ops", "errors", "ops/s", "MiB/s", "p50 ms", "p99 ms", "keys/s"
    );
    for r in results {
        let keys = r.keys_per_sec.map_or(String::from("-"), |k| format!("{k:.0}"));
        println!(
            "{:<11} {:>9} {:>7} {:>11.1} {:>10.1} {:>9.2} {:>9.2} {:>12}",
            r.phase, r.operations, r.errors, r.ops_per_sec, r.mib_per_sec, r.p50_ms, r.p99_ms, keys
        );
    }
    let find = |name: &str| results.iter().find(|r| r.phase == name);
    for (s3, raw) in [("put", "disk-write"), ("get", "disk-read"), ("put", "aes-seal"), ("get", "aes-open")] {
        if let (Some(a), Some(b)) = (find(s3), find(raw))
            && b.mib_per_sec > 0.0
        {
            println!("{s3} / {raw}: {:.0}%", 100.0 * a.mib_per_sec / b.mib_per_sec);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        use clap::Parser as _;
        let base = ["coffre-bench", "--access-key", "a", "--secret-key", "s"];
        Cli::parse_from(base.iter().chain(extra)).bench
    }

    #[test]
    fn endpoints_are_comma_separated_and_taken_in_turn() {
        assert_eq!(args(&[]).endpoint, ["http://127.0.0.1:9000"]);
        let a = args(&["--endpoint", "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3"]);
        assert_eq!(a.endpoint.len(), 3);
        let buckets = a
            .endpoint
            .iter()
            .map(|e| Bucket::new(e.parse().unwrap(), UrlStyle::Path, "b".to_owned(), "r".to_owned()).unwrap())
            .collect();
        let http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let t = Target { http, buckets, next: AtomicU64::new(0), creds: Credentials::new("a", "s") };
        let ports: Vec<_> = (0..7).map(|_| t.bucket().base_url().port()).collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3, 1].map(Some));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("17"), Ok(17));
        assert!(parse_size("lots").is_err());
    }
}
