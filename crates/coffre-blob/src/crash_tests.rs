//! Crash simulation of the blob store: random creates, writes, finishes,
//! aborts and deletes on a `SimFs`, checked at thousands of crash points.
//!
//! Crash images are taken just before and just after every sync and at random
//! ops. On each image the store, reopened, must return every blob whose
//! `finish` had returned Ok, byte for byte, and none whose delete had returned
//! Ok. Blobs never acknowledged may be absent, partial or orphaned.
//! `COFFRE_SIM_SEED=n` replays one run with its trace; `COFFRE_SIM_RUNS=n`
//! sets how many runs each test makes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use coffre_core::blob::{BlobStore as _, BlobWriter, Placement};
use coffre_core::types::BlobId;
use futures::TryStreamExt as _;

use crate::DiskBlobStore;
use crate::fs::BlobFs as _;
use crate::sim::{Capture, Crash, CrashMode, PAGE, SimFs, SimRng};

const DATA_DIR: &str = "/data";
const ROOT: &str = "/data/blobs";
/// Workload steps per run.
const STEPS: usize = 60;

#[derive(Debug, Clone, Copy)]
struct Setup {
    synced: bool,
    eio: bool,
}

/// What the store acknowledged about one blob, in ops of the disk.
#[derive(Default)]
struct Promise {
    data: Vec<u8>,
    /// Ops done when `finish` returned Ok.
    finished: Option<u64>,
    /// Ops done when a delete was asked, and when it returned Ok.
    delete_asked: Option<u64>,
    deleted: Option<u64>,
}

#[derive(Debug, Default)]
struct Tally {
    runs: usize,
    crash_points: usize,
    acked: usize,
    /// Acknowledged blobs looked at, summed over crash points.
    checked: usize,
    /// Acknowledged blobs missing, short or different at a crash point.
    lost: usize,
    /// Blobs whose delete was acknowledged, back after a crash.
    resurrected: usize,
    failed_syncs: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.runs += other.runs;
        self.crash_points += other.crash_points;
        self.acked += other.acked;
        self.checked += other.checked;
        self.lost += other.lost;
        self.resurrected += other.resurrected;
        self.failed_syncs += other.failed_syncs;
    }
}

struct Run {
    seed: u64,
    setup: Setup,
    fs: SimFs,
    store: DiskBlobStore,
    rng: SimRng,
    promises: BTreeMap<u128, Promise>,
    open: Vec<(BlobId, Box<dyn BlobWriter>)>,
    closed: Vec<BlobId>,
    /// What the run did, with the ops done at the time.
    trace: Vec<(u64, String)>,
    tally: Tally,
}

fn blob_path(id: BlobId) -> PathBuf {
    let name = id.to_string();
    Path::new(ROOT).join(&name[..2]).join(name)
}

impl Run {
    fn new(seed: u64, setup: Setup) -> Self {
        let fs = SimFs::new(seed);
        // The data directory exists durably before Coffre starts.
        fs.create_dir_all(Path::new(DATA_DIR)).expect("mkdir");
        fs.sync_dir(Path::new("/")).expect("sync /");
        let per_mille = if setup.synced { 60 } else { 250 };
        fs.capture(Capture { seed: seed ^ 0x5eed, around_syncs: true, per_mille });
        let store = DiskBlobStore::open_on(Arc::new(fs.clone()), ROOT).expect("open");
        let store = if setup.synced { store } else { store.unsynced() };
        Self {
            seed,
            setup,
            fs,
            store,
            rng: SimRng::new(seed),
            promises: BTreeMap::new(),
            open: Vec::new(),
            closed: Vec::new(),
            trace: Vec::new(),
            tally: Tally { runs: 1, ..Tally::default() },
        }
    }

    fn note(&mut self, what: String) {
        self.trace.push((self.fs.ops(), what));
    }

    /// A failure report: the seed, how to replay it, and the trace up to `until` ops.
    fn fail_at(&self, why: &str, until: u64) -> String {
        let upto = self.trace.partition_point(|(op, _)| *op <= until);
        let lines: Vec<String> =
            self.trace[upto.saturating_sub(60)..upto].iter().map(|(op, what)| format!("op {op:>4}: {what}")).collect();
        format!(
            "seed {} ({:?}): {why}\nreplay: COFFRE_SIM_SEED={} cargo test -p coffre-blob crash_tests\ntrace:\n{}",
            self.seed,
            self.setup,
            self.seed,
            lines.join("\n")
        )
    }

    fn fail(&self, why: &str) -> String {
        self.fail_at(why, u64::MAX)
    }

    /// Mostly a few pages, sometimes tens of KiB, rarely more than a write chunk.
    fn chunk(&mut self) -> Vec<u8> {
        let len = match self.rng.below(100) {
            0..70 => self.rng.below(3 * PAGE as u64),
            70..97 => self.rng.below(64 * 1024),
            _ => 1024 * 1024 + self.rng.below(600 * 1024),
        };
        let mut data = vec![0; usize::try_from(len).unwrap_or(0)];
        self.rng.fill(&mut data);
        data
    }

    async fn step(&mut self) -> Result<(), String> {
        let pick = self.rng.below(100);
        let has_open = !self.open.is_empty();
        match pick {
            0..25 if self.open.len() < 4 => self.create().await,
            25..55 if has_open => self.write().await,
            55..85 if has_open => self.finish().await,
            85..90 if has_open => self.abort().await,
            90..100 if !self.closed.is_empty() => self.delete().await,
            _ if has_open => self.finish().await,
            _ => self.create().await,
        }
    }

    async fn create(&mut self) -> Result<(), String> {
        // Four fan-out folders only, so blobs share directories (and their syncs).
        let id = BlobId(u128::from(self.rng.below(4)) << 120 | u128::from(self.rng.next_u64()));
        if self.promises.contains_key(&id.0) {
            return Ok(());
        }
        self.note(format!("create {id}"));
        let writer = self
            .store
            .create(id, &Placement::default())
            .await
            .map_err(|e| self.fail(&format!("create failed: {e}")))?;
        self.promises.insert(id.0, Promise::default());
        self.open.push((id, writer));
        Ok(())
    }

    fn pick_open(&mut self) -> usize {
        usize::try_from(self.rng.below(self.open.len() as u64)).unwrap_or(0)
    }

    async fn write(&mut self) -> Result<(), String> {
        let i = self.pick_open();
        let data = self.chunk();
        let id = self.open[i].0;
        self.note(format!("write {} bytes to {id}", data.len()));
        self.open[i].1.write(Bytes::from(data.clone())).await.map_err(|e| self.fail(&format!("write: {e}")))?;
        if let Some(p) = self.promises.get_mut(&id.0) {
            p.data.extend_from_slice(&data);
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), String> {
        let i = self.pick_open();
        let (id, writer) = self.open.swap_remove(i);
        let inject = self.setup.eio && self.rng.chance(1, 4);
        if inject {
            self.fs.fail_next_syncs(1);
        }
        let before = self.fs.failed_syncs();
        self.note(format!("finish {id}{}", if inject { " (its next sync fails)" } else { "" }));
        let result = writer.finish().await;
        self.fs.fail_next_syncs(0);
        let sync_failed = self.fs.failed_syncs() > before;
        self.closed.push(id);
        let want = self.promises.get(&id.0).map_or(0, |p| p.data.len() as u64);
        match result {
            Ok(_) if sync_failed => Err(self.fail(&format!("finish of {id} returned Ok after a failed sync"))),
            Ok(len) if len != want => Err(self.fail(&format!("finish of {id} said {len} bytes, wrote {want}"))),
            Ok(_) => {
                self.note(format!("finish {id} -> Ok ({want} bytes)"));
                let now = self.fs.ops();
                if let Some(p) = self.promises.get_mut(&id.0) {
                    p.finished = Some(now);
                }
                self.tally.acked += 1;
                Ok(())
            }
            Err(e) if sync_failed => {
                self.note(format!("finish {id} -> Err ({e})"));
                Ok(())
            }
            Err(e) => Err(self.fail(&format!("finish of {id} failed with no injected error: {e}"))),
        }
    }

    async fn abort(&mut self) -> Result<(), String> {
        let i = self.pick_open();
        let (id, writer) = self.open.swap_remove(i);
        self.note(format!("abort {id}"));
        writer.abort().await;
        self.closed.push(id);
        Ok(())
    }

    async fn delete(&mut self) -> Result<(), String> {
        let i = usize::try_from(self.rng.below(self.closed.len() as u64)).unwrap_or(0);
        let id = self.closed[i];
        let inject = self.setup.eio && self.rng.chance(1, 4);
        if inject {
            self.fs.fail_next_syncs(1);
        }
        let before = self.fs.failed_syncs();
        let asked = self.fs.ops();
        self.note(format!("delete {id}"));
        let result = self.store.delete(id).await;
        self.fs.fail_next_syncs(0);
        let sync_failed = self.fs.failed_syncs() > before;
        match result {
            Ok(()) if sync_failed => Err(self.fail(&format!("delete of {id} returned Ok after a failed sync"))),
            Ok(()) => {
                self.note(format!("delete {id} -> Ok"));
                let now = self.fs.ops();
                if let Some(p) = self.promises.get_mut(&id.0) {
                    p.delete_asked.get_or_insert(asked);
                    p.deleted = Some(now);
                }
                Ok(())
            }
            Err(e) => {
                self.note(format!("delete {id} -> Err ({e})"));
                if let Some(p) = self.promises.get_mut(&id.0) {
                    p.delete_asked.get_or_insert(asked);
                }
                Ok(())
            }
        }
    }

    /// Checks one crash image against what had been acknowledged by then.
    async fn check(&mut self, crash: &Crash) -> Result<(), String> {
        let root_survived = crash.fs.exists(Path::new(ROOT)).unwrap_or(false);
        let store = DiskBlobStore::open_on(Arc::new(crash.fs.clone()), ROOT)
            .map_err(|e| self.fail(&format!("reopening at op {} failed: {e}", crash.at_op)))?;
        let mut problems = Vec::new();
        for (&raw, p) in &self.promises {
            if p.finished.is_none_or(|t| t > crash.at_op) {
                continue;
            }
            self.tally.checked += 1;
            if let Some(problem) = broken(&store, crash, BlobId(raw), p).await {
                if problem.contains("is back") {
                    self.tally.resurrected += 1;
                } else {
                    self.tally.lost += 1;
                }
                problems.push(problem);
            }
        }
        if problems.is_empty() || !self.setup.synced {
            return Ok(());
        }
        if !root_survived {
            problems.push(format!("{ROOT} itself did not survive"));
        }
        let why =
            format!("crash at op {} ({:?}) broke promises:\n  {}", crash.at_op, crash.mode, problems.join("\n  "));
        Err(self.fail_at(&why, crash.at_op))
    }

    async fn run(mut self) -> Result<Tally, String> {
        for _ in 0..STEPS {
            self.step().await?;
        }
        let mut crashes = self.fs.take_crashes();
        let mode = if self.rng.chance(1, 2) { CrashMode::KeepRandom } else { CrashMode::DropUnsynced };
        crashes.push(Crash { at_op: self.fs.ops(), mode, fs: self.fs.crash(self.rng.next_u64(), mode) });
        self.tally.failed_syncs = self.fs.failed_syncs();
        for crash in &crashes {
            self.tally.crash_points += 1;
            self.check(crash).await?;
        }
        if std::env::var_os("COFFRE_SIM_SEED").is_some() {
            for (op, what) in &self.trace {
                eprintln!("op {op:>4}: {what}");
            }
        }
        Ok(self.tally)
    }
}

/// How an acknowledged blob breaks its promise on a crash image, if it does.
async fn broken(store: &DiskBlobStore, crash: &Crash, id: BlobId, p: &Promise) -> Option<String> {
    let present = crash.fs.exists(&blob_path(id)).unwrap_or(false);
    let must_exist = p.delete_asked.is_none_or(|t| crash.at_op <= t);
    let must_be_gone = p.deleted.is_some_and(|t| t <= crash.at_op);
    if must_be_gone && present {
        return Some(format!("{id}: its delete was acknowledged, yet it is back"));
    }
    if must_exist && !present {
        return Some(format!("{id}: acknowledged ({} bytes), missing", p.data.len()));
    }
    if present && let Err(why) = read_back(store, &crash.fs, id, &p.data).await {
        return Some(format!("{id}: acknowledged ({} bytes), {why}", p.data.len()));
    }
    None
}

/// The blob must read back whole and exact, and be no longer.
async fn read_back(store: &DiskBlobStore, fs: &SimFs, id: BlobId, want: &[u8]) -> Result<(), String> {
    let size = fs.open_file(&blob_path(id)).and_then(|f| f.len()).map_err(|e| e.to_string())?;
    if size != want.len() as u64 {
        return Err(format!("{size} bytes on disk"));
    }
    let stream = store.read(id, 0..want.len() as u64).await.map_err(|e| e.to_string())?;
    let got: Vec<Bytes> = stream.try_collect().await.map_err(|e| e.to_string())?;
    if got.concat() != want { Err("bytes differ".into()) } else { Ok(()) }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs `runs` seeds from `first` (or the one in `COFFRE_SIM_SEED`) and sums them up.
async fn campaign(first: u64, runs: u64, setup: Setup) -> Tally {
    let seeds: Vec<u64> = match env_u64("COFFRE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (first..first + env_u64("COFFRE_SIM_RUNS").unwrap_or(runs)).collect(),
    };
    let started = Instant::now();
    let mut total = Tally::default();
    for seed in seeds {
        match Run::new(seed, setup).run().await {
            Ok(tally) => total.add(&tally),
            Err(report) => panic!("{report}"),
        }
    }
    eprintln!("blob store {setup:?}: {total:?} in {:.2?}", started.elapsed());
    total
}

#[tokio::test]
async fn acknowledged_blobs_survive_every_crash_point() {
    let tally = campaign(0, 60, Setup { synced: true, eio: false }).await;
    assert_eq!((tally.lost, tally.resurrected), (0, 0));
    assert!(tally.acked > 0 && tally.checked > tally.acked);
}

#[tokio::test]
async fn failed_syncs_fail_the_write_and_lose_nothing_acknowledged() {
    let tally = campaign(1_000_000, 30, Setup { synced: true, eio: true }).await;
    assert_eq!((tally.lost, tally.resurrected), (0, 0));
    assert!(env_u64("COFFRE_SIM_SEED").is_some() || tally.failed_syncs > 0);
}

/// Proves the oracle can fail: with syncs skipped, acknowledged blobs vanish.
#[tokio::test]
async fn negative_control_unsynced_store_loses_acknowledged_blobs() {
    let tally = campaign(2_000_000, 10, Setup { synced: false, eio: false }).await;
    assert!(env_u64("COFFRE_SIM_SEED").is_some() || tally.lost > 0, "the simulator lost nothing: {tally:?}");
}
