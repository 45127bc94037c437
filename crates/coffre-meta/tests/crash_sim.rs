//! Crash simulation of the embedded engine: redb on a simulated disk that
//! loses power, random puts and deletes in group commits, thousands of crash points.
//!
//! The engine runs on a redb backend over a `SimFs` file. Crash images are
//! taken just before and just after every sync and at random disk ops; each is
//! reopened and checked: every write whose future returned Ok is there, every
//! acknowledged delete stays done, and a group commit is all there or not at
//! all. A run goes through several generations: it carries on from one of its
//! crash images, as a restarted server would. `COFFRE_SIM_SEED=n` replays one
//! run with its trace; `COFFRE_SIM_RUNS=n` sets how many runs a test makes.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coffre_blob::fs::BlobFs as _;
use coffre_blob::sim::{Capture, Crash, CrashMode, SimFile, SimFs, SimRng};
use coffre_core::error::Result;
use coffre_core::meta::{BucketMeta, ObjectMeta};
use coffre_core::meta::{BucketRecord, DataLocation, DeleteGuard, ObjectVersion, PutObject, WriteCondition};
use coffre_core::types::{AccessKeyId, BlobId, BucketName, ObjectKey, VersionId};
use coffre_meta::EmbeddedMeta;
use futures::FutureExt as _;
use futures::future::{BoxFuture, join_all};
use redb::StorageBackend;

const DB: &str = "/meta.redb";
const KEYS: u64 = 16;
const GENERATIONS: usize = 3;
const BATCHES: usize = 8;
/// How long the writer may take to reach a sync before the test gives up.
const PATIENCE: Duration = Duration::from_secs(5);

// ----- the redb backend over a simulated file -----

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Hold {
    #[default]
    Open,
    /// The next sync waits for the test.
    Armed,
    Holding,
}

#[derive(Debug, Default)]
struct GateState {
    hold: Hold,
    /// Syncs to let through before one fails.
    fail_in: Option<u32>,
}

/// Lets a test stop the writer thread inside a sync, so that the jobs it
/// queues meanwhile all go into the next group commit: batches come out the
/// same on every run, whatever the thread timing.
#[derive(Debug)]
struct Gate {
    state: Mutex<GateState>,
    turn: Condvar,
    fs: SimFs,
}

impl Gate {
    fn new(fs: SimFs) -> Arc<Self> {
        Arc::new(Self { state: Mutex::default(), turn: Condvar::new(), fs })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// In the backend, before each sync.
    fn pass(&self) {
        let mut state = self.lock();
        if state.hold == Hold::Armed {
            state.hold = Hold::Holding;
            self.turn.notify_all();
            while state.hold == Hold::Holding {
                state = self.turn.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
        }
        match state.fail_in {
            Some(0) => {
                state.fail_in = None;
                self.fs.fail_next_syncs(1);
            }
            Some(n) => state.fail_in = Some(n - 1),
            None => {}
        }
    }

    fn arm(&self) {
        self.lock().hold = Hold::Armed;
    }

    /// Waits until the writer is held in a sync.
    fn wait_held(&self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let mut state = self.lock();
        while state.hold != Hold::Holding {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.turn.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    fn release(&self) {
        self.lock().hold = Hold::Open;
        self.turn.notify_all();
    }

    fn fail_in(&self, syncs: Option<u32>) {
        self.lock().fail_in = syncs;
    }
}

#[derive(Debug)]
struct SimBackend {
    file: SimFile,
    gate: Arc<Gate>,
}

impl StorageBackend for SimBackend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.gate.pass();
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_at(offset, data)
    }
}

fn open_meta(fs: &SimFs, synced: bool) -> std::result::Result<(EmbeddedMeta, Arc<Gate>), String> {
    let gate = Gate::new(fs.clone());
    let file = fs.open_file(Path::new(DB)).map_err(|e| format!("no database file: {e}"))?;
    let backend = SimBackend { file, gate: gate.clone() };
    let meta = if synced { EmbeddedMeta::open_backend(backend) } else { EmbeddedMeta::open_backend_unsynced(backend) };
    meta.map(|m| (m, gate)).map_err(|e| format!("reopening failed: {e}"))
}

// ----- the workload and what it was promised -----

/// Each key's object, by the tag its put carried (in its etag); absent if missing.
type State = BTreeMap<u64, u64>;

fn bucket() -> BucketName {
    BucketName::parse("crash").expect("name")
}

fn owner() -> AccessKeyId {
    AccessKeyId::parse("owner").expect("id")
}

fn object_key(key: u64) -> ObjectKey {
    ObjectKey::parse(&format!("k/{key:02}")).expect("key")
}

/// A version whose record is `size` bytes of inline data or a blob reference, tagged.
fn version(tag: u64, size: u64) -> ObjectVersion {
    let data = if size > 0 {
        DataLocation::Inline { sealed: vec![(tag % 251) as u8; size as usize], key: common::sealed_key(1) }
    } else {
        common::blob(BlobId(u128::from(tag)))
    };
    let mut v = common::version(&owner(), VersionId::Null, size, data);
    v.meta.etag = format!("t{tag}");
    v
}

#[derive(Debug, Clone)]
struct Op {
    key: u64,
    /// The tag put, or `None` for a delete.
    put: Option<u64>,
    size: u64,
    /// Ops of the disk done when the call was made, and when it returned Ok.
    issued: u64,
    acked: Option<u64>,
    /// Ops sharing a commit share this.
    group: u64,
}

async fn apply(meta: &EmbeddedMeta, key: u64, put: Option<u64>, size: u64) -> Result<()> {
    match put {
        Some(tag) => {
            let put = PutObject {
                bucket: bucket(),
                bucket_id: common::BUCKET_ID,
                key: object_key(key),
                version: version(tag, size),
                condition: WriteCondition::None,
                pending: vec![],
            };
            meta.put_object(put).await
        }
        None => meta
            .delete_object(&bucket(), common::BUCKET_ID, &object_key(key), None, &DeleteGuard::default())
            .await
            .map(drop),
    }
}

#[derive(Debug, Default)]
struct Tally {
    runs: usize,
    crash_points: usize,
    acked: usize,
    /// Key states looked at, summed over crash points.
    checked: usize,
    /// Keys found in a state no acknowledged history allows.
    lost: usize,
    /// Group commits found partly applied.
    torn_groups: usize,
    failed_syncs: u64,
    failed_ops: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.runs += o.runs;
        self.crash_points += o.crash_points;
        self.acked += o.acked;
        self.checked += o.checked;
        self.lost += o.lost;
        self.torn_groups += o.torn_groups;
        self.failed_syncs += o.failed_syncs;
        self.failed_ops += o.failed_ops;
    }
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    synced: bool,
    eio: bool,
}

/// One generation: the state it started from and the calls made since.
struct History {
    base: State,
    /// Ops of the disk done when the bucket's creation returned Ok.
    bucket_acked: Option<u64>,
    ops: Vec<Op>,
}

impl History {
    /// The states `key` may be in after a crash at `at_op`: what the last
    /// call acknowledged by then left, or what any later call made.
    fn allowed(&self, key: u64, at_op: u64) -> Vec<Option<u64>> {
        let mut allowed = vec![self.base.get(&key).copied()];
        for op in self.ops.iter().filter(|o| o.key == key) {
            if op.acked.is_some_and(|t| t <= at_op) {
                allowed = vec![op.put];
            } else if op.issued < at_op {
                allowed.push(op.put);
            }
        }
        allowed
    }

    /// Groups in flight at `at_op` whose calls were partly applied.
    fn torn_groups(&self, at_op: u64, seen: &State) -> Vec<u64> {
        let mut groups: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
        for op in self.ops.iter().filter(|o| o.issued < at_op && o.acked.is_none_or(|t| t > at_op)) {
            let before = self.allowed(op.key, op.issued);
            let [before] = before.as_slice() else { continue };
            if *before == op.put {
                continue; // no change to see
            }
            let now = seen.get(&op.key).copied();
            let counts = groups.entry(op.group).or_default();
            if now == op.put {
                counts.0 += 1;
            } else if now == *before {
                counts.1 += 1;
            }
        }
        groups.into_iter().filter(|(_, (applied, not))| *applied > 0 && *not > 0).map(|(g, _)| g).collect()
    }
}

/// A crash image reopened, and what it holds.
struct Reopened {
    meta: EmbeddedMeta,
    gate: Arc<Gate>,
    seen: State,
    has_bucket: bool,
}

struct Run {
    seed: u64,
    setup: Setup,
    rng: SimRng,
    fs: SimFs,
    meta: EmbeddedMeta,
    gate: Arc<Gate>,
    history: History,
    next_tag: u64,
    next_group: u64,
    generation: usize,
    /// What the run did: generation, ops done at the time, what.
    trace: Vec<(usize, u64, String)>,
    tally: Tally,
}

impl Run {
    fn new(seed: u64, setup: Setup) -> std::result::Result<Self, String> {
        let fs = SimFs::new(seed);
        // The server creates the file and makes its name durable before redb opens it.
        fs.create_file(Path::new(DB)).map_err(|e| e.to_string())?;
        fs.sync_dir(Path::new("/")).map_err(|e| e.to_string())?;
        // Crashes start once the database exists: EmbeddedMeta::open builds
        // it under another name, as redb refuses a file cut short while it
        // is being created (see the last test).
        let (meta, gate) = open_meta(&fs, setup.synced)?;
        fs.capture(Capture { seed: seed ^ 0xc0ffee, around_syncs: true, per_mille: per_mille(setup) });
        Ok(Self {
            seed,
            setup,
            rng: SimRng::new(seed),
            fs,
            meta,
            gate,
            history: History { base: State::new(), bucket_acked: None, ops: Vec::new() },
            next_tag: 1,
            next_group: 0,
            generation: 0,
            trace: Vec::new(),
            tally: Tally { runs: 1, ..Tally::default() },
        })
    }

    fn note(&mut self, what: String) {
        self.trace.push((self.generation, self.fs.ops(), what));
    }

    /// A failure report: the seed, how to replay it, and the trace up to
    /// `until` ops of the current generation.
    fn fail_at(&self, why: &str, until: u64) -> String {
        let upto = self.trace.partition_point(|(g, op, _)| *g < self.generation || *op <= until);
        let lines: Vec<String> = self.trace[upto.saturating_sub(80)..upto]
            .iter()
            .map(|(g, op, what)| format!("gen {g} op {op:>5}: {what}"))
            .collect();
        format!(
            "seed {} ({:?}): {why}\nreplay: COFFRE_SIM_SEED={} cargo test -p coffre-meta --test crash_sim\ntrace:\n{}",
            self.seed,
            self.setup,
            self.seed,
            lines.join("\n")
        )
    }

    fn fail(&self, why: &str) -> String {
        self.fail_at(why, u64::MAX)
    }

    async fn create_bucket(&mut self) -> std::result::Result<(), String> {
        let record =
            BucketRecord { id: common::BUCKET_ID, keks: vec![common::kek(1)], ..BucketRecord::new(bucket(), owner()) };
        self.meta.create_bucket(record).await.map_err(|e| self.fail(&format!("create bucket: {e}")))?;
        self.history.bucket_acked = Some(self.fs.ops());
        self.note("bucket created".into());
        Ok(())
    }

    /// A put (most of the time) or a delete of a key no other call in the batch touches.
    fn new_op(&mut self, taken: &mut Vec<u64>) -> Op {
        let mut key = self.rng.below(KEYS);
        while taken.contains(&key) {
            key = (key + 1) % KEYS;
        }
        taken.push(key);
        let put = if self.rng.chance(7, 10) {
            self.next_tag += 1;
            Some(self.next_tag)
        } else {
            None
        };
        let size = match self.rng.below(10) {
            0..3 => 0,
            3..9 => self.rng.below(300),
            _ => self.rng.below(9000),
        };
        Op { key, put, size, issued: 0, acked: None, group: 0 }
    }

    /// Runs one batch; returns whether any call failed.
    async fn batch(&mut self) -> std::result::Result<bool, String> {
        let mut taken = Vec::new();
        let lead = self.new_op(&mut taken);
        let group_len = self.rng.below(7);
        let group: Vec<Op> = (0..group_len).map(|_| self.new_op(&mut taken)).collect();
        let inject = self.setup.eio && self.rng.chance(1, 3);
        let fail_at = inject.then(|| u32::try_from(self.rng.below(2)).unwrap_or(0));
        let before = self.fs.failed_syncs();
        let results = if self.setup.synced {
            self.gated(lead, group, fail_at).await?
        } else {
            self.one_by_one(lead, group).await
        };
        self.gate.fail_in(None);
        self.fs.fail_next_syncs(0);
        let sync_failed = self.fs.failed_syncs() > before;
        let mut any_failed = false;
        for (op, result) in results {
            let what = match op.put {
                Some(tag) => format!("put k{} t{tag} ({} bytes) in group {}", op.key, op.size, op.group),
                None => format!("delete k{} in group {}", op.key, op.group),
            };
            let outcome = match (&result, op.acked) {
                (Ok(()), Some(at)) => format!("Ok at op {at}"),
                (Ok(()), None) => "Ok".to_owned(),
                (Err(e), _) => format!("Err ({e})"),
            };
            // Logged at the op it was asked at, so a report shows what was in flight.
            self.trace.push((self.generation, op.issued, format!("{what} -> {outcome}")));
            if result.is_err() {
                any_failed = true;
                self.tally.failed_ops += 1;
                if !sync_failed {
                    return Err(self.fail(&format!("{what} failed with no injected error")));
                }
            } else {
                self.tally.acked += 1;
            }
            self.history.ops.push(op);
        }
        // The failing sync was the lead commit's (0) or the group's (1; or
        // the lead's second, and then the group cannot commit either).
        let batch = &self.history.ops[self.history.ops.len() - 1 - group_len as usize..];
        let must_fail = match fail_at {
            Some(0) => batch,
            _ => &batch[1..],
        };
        if sync_failed && must_fail.iter().any(|o| o.acked.is_some()) {
            return Err(self.fail("a call returned Ok although its commit failed to sync"));
        }
        Ok(any_failed)
    }

    /// The lead call's commit is held in its sync while the group is queued,
    /// so the group shares the next commit.
    async fn gated(
        &mut self,
        mut lead: Op,
        mut group: Vec<Op>,
        fail_at: Option<u32>,
    ) -> std::result::Result<Vec<(Op, Result<()>)>, String> {
        self.gate.fail_in(fail_at);
        self.gate.arm();
        lead.issued = self.fs.ops();
        lead.group = self.next_group;
        self.next_group += 1;
        let meta = &self.meta;
        let mut first: BoxFuture<'_, Result<()>> = Box::pin(apply(meta, lead.key, lead.put, lead.size));
        let early = (&mut first).now_or_never();
        if early.is_none() && !self.gate.wait_held() {
            self.gate.release();
            return Err(self.fail("the writer never reached a sync: does the database refuse writes after an error?"));
        }
        let group_id = self.next_group;
        self.next_group += 1;
        let issued = self.fs.ops();
        let mut pending: Vec<BoxFuture<'_, Result<()>>> = Vec::new();
        for op in &mut group {
            op.issued = issued;
            op.group = group_id;
            let mut call: BoxFuture<'_, Result<()>> = Box::pin(apply(meta, op.key, op.put, op.size));
            // The first poll queues the job; the writer is held, so it waits.
            let queued = (&mut call).now_or_never();
            pending.push(match queued {
                Some(done) => Box::pin(async move { done }),
                None => call,
            });
        }
        self.gate.release();
        let lead_result = match early {
            Some(done) => done,
            None => first.await,
        };
        let results = join_all(pending).await;
        // Acks count from here: the writer is idle, so this is the same on every run.
        let done = self.fs.ops();
        let mark = |mut op: Op, r: &Result<()>| {
            op.acked = r.is_ok().then_some(done);
            op
        };
        let mut out = vec![(mark(lead, &lead_result), lead_result)];
        for (op, r) in group.into_iter().zip(results) {
            out.push((mark(op, &r), r));
        }
        Ok(out)
    }

    /// Without syncs there is nothing to hold: calls go one at a time.
    async fn one_by_one(&mut self, lead: Op, group: Vec<Op>) -> Vec<(Op, Result<()>)> {
        let mut out = Vec::new();
        for mut op in std::iter::once(lead).chain(group) {
            op.issued = self.fs.ops();
            op.group = self.next_group;
            self.next_group += 1;
            let r = apply(&self.meta, op.key, op.put, op.size).await;
            op.acked = r.is_ok().then_some(self.fs.ops());
            out.push((op, r));
        }
        out
    }

    /// Reopens a crash image and checks it; returns the engine and what it
    /// holds. With `capture`, crash images of the image are taken from the
    /// start, the reopening (and its recovery) included.
    async fn check(&mut self, crash: &Crash, capture: Option<Capture>) -> std::result::Result<Reopened, String> {
        self.tally.crash_points += 1;
        let at = crash.at_op;
        if let Some(capture) = capture {
            crash.fs.capture(capture);
        }
        let (meta, gate) = open_meta(&crash.fs, self.setup.synced)
            .map_err(|e| self.fail_at(&format!("crash at op {at} ({:?}): {e}", crash.mode), at))?;
        let mut problems = Vec::new();
        let has_bucket = meta.bucket(&bucket()).await.map_err(|e| self.fail(&e.to_string()))?.is_some();
        if !has_bucket && self.history.bucket_acked.is_some_and(|t| t <= at) {
            problems.push("the bucket is gone".to_owned());
            self.tally.lost += 1;
        }
        let seen = read_state(&meta).await.map_err(|e| self.fail(&format!("reading after the crash: {e}")))?;
        for key in 0..KEYS {
            self.tally.checked += 1;
            let now = seen.get(&key).copied();
            let allowed = self.history.allowed(key, at);
            if !allowed.contains(&now) {
                self.tally.lost += 1;
                problems.push(format!("k{key} is {now:?}; acknowledged history allows {allowed:?}"));
            }
        }
        for group in self.history.torn_groups(at, &seen) {
            self.tally.torn_groups += 1;
            problems.push(format!("group {group} is partly applied"));
        }
        if !problems.is_empty() && self.setup.synced {
            let why = format!("crash at op {at} ({:?}):\n  {}", crash.mode, problems.join("\n  "));
            return Err(self.fail_at(&why, at));
        }
        Ok(Reopened { meta, gate, seen, has_bucket })
    }

    /// Checks every crash image of this generation, then carries on from one
    /// of them (or from a crash now), as a restarted server would.
    async fn crash_and_restart(&mut self) -> std::result::Result<(), String> {
        let mut crashes = self.fs.take_crashes();
        let mode = if self.rng.chance(1, 2) { CrashMode::KeepRandom } else { CrashMode::DropUnsynced };
        crashes.push(Crash { at_op: self.fs.ops(), mode, fs: self.fs.crash(self.rng.next_u64(), mode) });
        let pick = usize::try_from(self.rng.below(crashes.len() as u64)).unwrap_or(0);
        self.tally.failed_syncs += self.fs.failed_syncs();
        let capture = Capture { seed: self.rng.next_u64(), around_syncs: true, per_mille: per_mille(self.setup) };
        let mut next = None;
        for (i, crash) in crashes.iter().enumerate() {
            let chosen = i == pick;
            let checked = self.check(crash, chosen.then(|| capture.clone())).await?;
            if chosen {
                next = Some((crash.fs.clone(), crash.at_op, checked));
            }
        }
        let Some((fs, at_op, reopened)) = next else { return Err(self.fail("no crash image")) };
        self.note(format!("power cut; restarting from the image at op {at_op}"));
        self.generation += 1;
        self.fs = fs;
        self.meta = reopened.meta;
        self.gate = reopened.gate;
        let bucket_acked = reopened.has_bucket.then_some(0);
        self.history = History { base: reopened.seen, bucket_acked, ops: Vec::new() };
        Ok(())
    }

    async fn run(mut self) -> std::result::Result<Tally, String> {
        for _ in 0..GENERATIONS {
            if self.history.bucket_acked.is_none() {
                self.create_bucket().await?;
            }
            for _ in 0..BATCHES {
                if self.batch().await? {
                    break; // redb refuses writes after an I/O error until reopened
                }
            }
            self.crash_and_restart().await?;
        }
        if std::env::var_os("COFFRE_SIM_SEED").is_some() {
            for (g, op, what) in &self.trace {
                eprintln!("gen {g} op {op:>5}: {what}");
            }
        }
        Ok(self.tally)
    }
}

fn per_mille(setup: Setup) -> u64 {
    if setup.synced { 40 } else { 150 }
}

async fn read_state(meta: &EmbeddedMeta) -> Result<State> {
    let listed = meta.list_objects(&bucket(), b"", Bound::Unbounded, 1000).await?;
    let mut state = State::new();
    for o in listed {
        let key = o.key.as_str().trim_start_matches("k/").parse().unwrap_or(u64::MAX);
        let tag = o.meta.etag.trim_start_matches('t').parse().unwrap_or(u64::MAX);
        state.insert(key, tag);
    }
    Ok(state)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn campaign(first: u64, runs: u64, setup: Setup) -> Tally {
    let seeds: Vec<u64> = match env_u64("COFFRE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (first..first + env_u64("COFFRE_SIM_RUNS").unwrap_or(runs)).collect(),
    };
    let started = Instant::now();
    let mut total = Tally::default();
    for seed in seeds {
        let outcome = match Run::new(seed, setup) {
            Ok(run) => run.run().await,
            Err(e) => Err(format!("seed {seed}: setup failed: {e}")),
        };
        match outcome {
            Ok(tally) => total.add(&tally),
            Err(report) => panic!("{report}"),
        }
    }
    eprintln!("metadata engine {setup:?}: {total:?} in {:.2?}", started.elapsed());
    total
}

#[tokio::test]
async fn acknowledged_commits_survive_every_crash_point() {
    let tally = campaign(0, 30, Setup { synced: true, eio: false }).await;
    assert_eq!((tally.lost, tally.torn_groups), (0, 0));
    assert!(tally.acked > 0);
}

#[tokio::test]
async fn failed_syncs_fail_the_commit_and_lose_nothing_acknowledged() {
    let tally = campaign(1_000_000, 20, Setup { synced: true, eio: true }).await;
    assert_eq!((tally.lost, tally.torn_groups), (0, 0));
    assert!(env_u64("COFFRE_SIM_SEED").is_some() || tally.failed_ops > 0);
}

/// Proves the oracle can fail: without synced commits, acknowledged writes vanish.
#[tokio::test]
async fn negative_control_unsynced_commits_are_lost() {
    let tally = campaign(2_000_000, 6, Setup { synced: false, eio: false }).await;
    assert!(env_u64("COFFRE_SIM_SEED").is_some() || tally.lost > 0, "the simulator lost nothing: {tally:?}");
}

/// What redb does after a failed sync: the commit fails, and so does every
/// later write until the database is reopened; reopened, it has every
/// acknowledged write and takes new ones.
#[tokio::test]
async fn after_a_failed_sync_redb_refuses_writes_until_reopened() {
    let fs = SimFs::new(9);
    fs.create_file(Path::new(DB)).expect("create");
    fs.sync_dir(Path::new("/")).expect("sync");
    let (meta, _gate) = open_meta(&fs, true).expect("open");
    let record =
        BucketRecord { id: common::BUCKET_ID, keks: vec![common::kek(1)], ..BucketRecord::new(bucket(), owner()) };
    meta.create_bucket(record).await.expect("bucket");
    apply(&meta, 1, Some(1), 10).await.expect("first put");
    fs.fail_next_syncs(1);
    let failed = apply(&meta, 2, Some(2), 10).await.expect_err("the commit whose sync failed");
    // redb's begin_write answers PreviousIo; the writer logs it and drops the job.
    let refused = apply(&meta, 3, Some(3), 10).await.expect_err("the next commit");
    eprintln!("failed commit: {failed}\nnext commit: {refused}");
    assert_eq!(fs.failed_syncs(), 1, "the refused commit did not even reach a sync");

    let crashed = fs.crash(4, CrashMode::KeepRandom);
    drop(meta);
    let (meta, _gate) = open_meta(&crashed, true).expect("reopen");
    let state = read_state(&meta).await.expect("read");
    assert_eq!(state.get(&1), Some(&1));
    assert_eq!(state.get(&3), None);
    apply(&meta, 4, Some(4), 10).await.expect("a put after reopening");
}

/// Why `EmbeddedMeta::open` builds a new database under another name: redb
/// writes its magic number last, and a file cut short before that (longer
/// than zero, no magic) is refused for good ("Not a redb database").
#[tokio::test]
async fn a_power_cut_while_redb_creates_its_file_leaves_one_it_refuses() {
    let fs = SimFs::new(5);
    fs.create_file(Path::new(DB)).expect("create");
    fs.sync_dir(Path::new("/")).expect("sync");
    fs.capture(Capture { seed: 5, around_syncs: true, per_mille: 1000 });
    let (meta, _gate) = open_meta(&fs, true).expect("open");
    drop(meta);
    let mut refused = 0;
    for crash in fs.take_crashes() {
        if let Err(e) = open_meta(&crash.fs, true) {
            assert!(e.contains("magic number"), "{e}");
            refused += 1;
        }
    }
    assert!(refused > 0, "redb now survives a cut while it creates its file: EmbeddedMeta::open could go simpler");
}
