//! `coffre-crashtest`: power cuts against the real `coffre` binary.
//!
//! Each trial makes a fresh ext4 or XFS image behind `coffre-crashdisk` (a
//! disk whose unflushed writes are lost on a cut), runs `coffre serve` on it,
//! drives it with AWS SDK writers (plain and versioned buckets), cuts the
//! power at a random moment or right after a random acknowledgement, then
//! kills the server, mounts what the disk kept, restarts `coffre` on it and
//! checks: every acknowledged write reads back byte-identical, every
//! acknowledged delete stays deleted, every listed object reads in full, and
//! the audit log verifies and holds an event for every acknowledged request.
//! Needs root, /dev/fuse and loop devices.
//!
//!     coffre-crashtest [--fs ext4|xfs] [--cuts N] [--seed S] [--writers W]
//!                      [--no-fsync] [--eio] [--keep-random] [--work DIR]
//!
//! `--eio` makes 1 to 3 of the disk's flushes fail with EIO (their pages
//! dropped, as Linux does after a failed writeback) at a random moment
//! before the cut: a write whose fsync failed must not be acknowledged.
//! `--keep-random` makes the cut keep a seeded random half of the pending
//! pages (a disk may have written any of them before it died).
//!
//! `--no-fsync` runs the server with `fsync = false`: the negative control,
//! which must lose acknowledged writes (exit status 0 only if it does).

mod disk;
mod oracle;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_e2e::Server;
use disk::{Fs, Image, PoweredDisk, Remounted};
use workload::{BUCKET, Model, Rng, VERSIONED};

struct Args {
    fs: Fs,
    cuts: u64,
    seed: u64,
    writers: usize,
    no_fsync: bool,
    eio: bool,
    keep_random: bool,
    work: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        fs: Fs::Ext4,
        cuts: 10,
        seed: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64),
        writers: 8,
        no_fsync: false,
        eio: false,
        keep_random: false,
        work: std::env::temp_dir().join("coffre-crashtest"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--fs" => args.fs = Fs::parse(&value()?)?,
            "--cuts" => args.cuts = value()?.parse().map_err(|e| format!("--cuts: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--writers" => args.writers = value()?.parse().map_err(|e| format!("--writers: {e}"))?,
            "--work" => args.work = value()?.into(),
            "--no-fsync" => args.no_fsync = true,
            "--eio" => args.eio = true,
            "--keep-random" => args.keep_random = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// `coffre-crashdisk`, built next to the `coffre` binary under test.
fn crashdisk_bin() -> PathBuf {
    std::env::var_os("COFFRE_CRASHDISK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| coffre_e2e::coffre_bin().with_file_name("coffre-crashdisk"))
}

#[derive(Default)]
struct Tally {
    trials: u64,
    acked: u64,
    indeterminate: u64,
    lost: u64,
    broken: u64,
    recovery_max: Duration,
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("coffre-crashtest: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = disk::check_prerequisites(args.fs) {
        eprintln!("coffre-crashtest: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coffre-crashtest: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "power cuts: {} on {:?}, {} writers{}, fsync {}, seed {} (replay one trial with --cuts 1 --seed <its seed>)",
        args.cuts,
        args.fs,
        args.writers,
        if args.eio { ", failing flushes before each cut" } else { "" },
        if args.no_fsync { "OFF (negative control)" } else { "on" },
        args.seed
    );
    let mut tally = Tally::default();
    let mut seeds = Rng::new(args.seed);
    for i in 0..args.cuts {
        let seed = if i == 0 { args.seed } else { seeds.next() };
        match runtime.block_on(trial(&args, seed)) {
            Ok(t) => {
                println!(
                    "cut {:>4}  seed {seed:>20}  {:>6}  acked {:>4}  indeterminate {:>2}  lost {}  broken {}  recovery {} ms  [{}]",
                    i + 1,
                    t.cut,
                    t.acked,
                    t.indeterminate,
                    t.lost.len(),
                    t.broken.len(),
                    t.recovery.as_millis(),
                    t.counters
                );
                for problem in t.lost.iter().chain(&t.broken).take(5) {
                    println!("           {problem}");
                }
                tally.trials += 1;
                tally.acked += t.acked;
                tally.indeterminate += t.indeterminate;
                tally.lost += t.lost.len() as u64;
                tally.broken += t.broken.len() as u64;
                tally.recovery_max = tally.recovery_max.max(t.recovery);
            }
            Err(e) => {
                eprintln!("coffre-crashtest: cut {} (seed {seed}) could not run: {e}", i + 1);
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    println!(
        "TALLY {:?} fsync={}: {} cuts, {} acknowledged writes, {} indeterminate, {} lost, {} listed-but-broken, slowest recovery {} ms",
        args.fs,
        !args.no_fsync,
        tally.trials,
        tally.acked,
        tally.indeterminate,
        tally.lost,
        tally.broken,
        tally.recovery_max.as_millis()
    );
    let failed = tally.lost + tally.broken > 0;
    match (args.no_fsync, failed) {
        (false, false) => std::process::ExitCode::SUCCESS,
        (false, true) => {
            eprintln!("coffre-crashtest: acknowledged writes were lost or broken by a power cut");
            std::process::ExitCode::FAILURE
        }
        (true, true) => {
            println!("negative control: with fsync off the power cuts lost data, as they must: the test can fail");
            std::process::ExitCode::SUCCESS
        }
        (true, false) => {
            eprintln!(
                "coffre-crashtest: the negative control lost nothing: this harness cannot tell fsync from no fsync"
            );
            std::process::ExitCode::FAILURE
        }
    }
}

struct TrialResult {
    cut: &'static str,
    acked: u64,
    indeterminate: u64,
    lost: Vec<String>,
    broken: Vec<String>,
    recovery: Duration,
    counters: String,
}

async fn trial(args: &Args, seed: u64) -> Result<TrialResult, String> {
    let image = Image::create(&args.work, args.fs)?;
    let data_dir = image.mnt.join("data");
    // With fsync off the audit log's signed heads can outlive its events, and
    // the server then rightly refuses to start; the negative control is
    // about lost object writes, so it runs without the audit log.
    let env: Vec<(&str, &str)> =
        if args.no_fsync { vec![("COFFRE_FSYNC", "false"), ("COFFRE_AUDIT", "false")] } else { Vec::new() };
    let mut rng = Rng::new(seed);
    let model = Arc::new(Mutex::new(Model::default()));
    let (cut_mode, counters) = {
        let disk = PoweredDisk::start(&image, &crashdisk_bin())?;
        let mut server = Server::try_start_with(&data_dir, &env)?;
        let client = server.client();
        client.create_bucket().bucket(BUCKET).send().await.map_err(|e| format!("CreateBucket: {e:?}"))?;
        client.create_bucket().bucket(VERSIONED).send().await.map_err(|e| format!("CreateBucket: {e:?}"))?;
        let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
            .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
            .build();
        let versioning = client.put_bucket_versioning().bucket(VERSIONED).versioning_configuration(enabled);
        versioning.send().await.map_err(|e| format!("PutBucketVersioning: {e:?}"))?;
        let acks = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..args.writers)
            .map(|w| {
                let task = workload::writer(client.clone(), w, seed, model.clone(), acks.clone(), cut.clone());
                tokio::spawn(task)
            })
            .collect();
        let mode = if args.eio {
            // Flushes fail while the writers run; the cut comes a little later.
            tokio::time::sleep(Duration::from_millis(100 + rng.below(900))).await;
            disk.fail_flushes(1 + rng.below(3))?;
            tokio::time::sleep(Duration::from_millis(200 + rng.below(600))).await;
            "eio"
        } else if rng.below(2) == 0 {
            // Half the cuts at a random moment, half right after a random acknowledgement.
            tokio::time::sleep(Duration::from_millis(200 + rng.below(2300))).await;
            "mid"
        } else {
            let target = 1 + rng.below(60);
            let deadline = Instant::now() + Duration::from_secs(20);
            while acks.load(Ordering::SeqCst) < target && Instant::now() < deadline {
                tokio::task::yield_now().await;
            }
            "ack"
        };
        cut.store(true, Ordering::SeqCst);
        if args.keep_random {
            disk.cut_keeping_random(seed)?
        } else {
            disk.cut()?
        };
        server.kill();
        for writer in writers {
            let _ = writer.await;
        }
        (mode, disk.counters())
        // The disk is torn down here: unmount, detach, stop the daemon.
    };
    let remounted = Remounted::mount(&image)?;
    let started = Instant::now();
    let mut server = Server::try_start_with(&data_dir, &env)
        .map_err(|e| format!("after the power cut the server does not start without repair: {e}"))?;
    let recovery = started.elapsed();
    let model = std::mem::take(&mut *model.lock().map_err(|_| "model lock poisoned")?);
    let (mut lost, broken) = oracle::check(&server.client(), &model).await;
    server.stop();
    if !args.no_fsync {
        // The audit log is off in the negative control (see above).
        lost.extend(oracle::check_audit(&coffre_e2e::coffre_bin(), &data_dir, &model));
    }
    drop(remounted);
    Ok(TrialResult {
        cut: cut_mode,
        acked: model.acked,
        indeterminate: model.indeterminate,
        lost,
        broken,
        recovery,
        counters,
    })
}
