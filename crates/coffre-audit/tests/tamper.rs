//! The log against its attackers: every edit of a copy of the log is found by
//! the offline verifier, which names the place; proofs hold across restarts
//! and retention; a crash's torn tail is repaired without losing an
//! acknowledged event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffre_audit::proof::Proof;
use coffre_audit::store::LogDir;
use coffre_audit::verify::verify;
use coffre_audit::{AuditConfig, AuditLog, Durability, Event, PublicKey, Signer};

struct Fixture {
    _tmp: tempfile::TempDir,
    config: AuditConfig,
    key: PublicKey,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = AuditConfig::new(tmp.path().join("audit"), tmp.path().join("keys/audit.pk8"));
        config.segment_bytes = 2048;
        let key = Signer::load_or_create(&config.key_path).unwrap().public_key();
        Self { _tmp: tmp, config, key }
    }

    fn dir(&self) -> LogDir {
        LogDir::new(&self.config.dir)
    }

    /// `n` events, a signed head every 10, and a last head.
    async fn fill(&self, n: u64) -> AuditLog {
        let log = AuditLog::open(self.config.clone()).unwrap();
        for i in 0..n {
            let mut event = Event::now("node-a", if i % 3 == 0 { "PutObject" } else { "GetObject" });
            event.principal = Some("AKIAEXAMPLE".into());
            event.bucket = Some("photos".into());
            event.key = Some(format!("2026/img-{i:04}.jpg"));
            event.status = 200;
            log.append(event, Durability::Sync).await.unwrap();
            if i % 10 == 9 {
                log.sign_head().await.unwrap();
            }
        }
        log.sign_head().await.unwrap();
        log
    }

    /// A copy of the log, as an auditor would receive it.
    fn copy(&self) -> (tempfile::TempDir, LogDir) {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&self.config.dir, tmp.path());
        let dir = LogDir::new(tmp.path());
        (tmp, dir)
    }

    fn failure(&self, dir: &LogDir) -> String {
        match verify(dir, &self.key) {
            Ok(report) => panic!("the altered log verified: {report:?}"),
            Err(e) => e.to_string(),
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The segment file holding event `seq`, and the event's line index in it.
fn locate(dir: &LogDir, seq: u64) -> (PathBuf, usize) {
    let segments = dir.segments().unwrap();
    let segment = segments.iter().rev().find(|s| s.first <= seq).unwrap();
    (segment.path.clone(), (seq - segment.first) as usize)
}

fn edit_lines(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(path, out).unwrap();
}

#[tokio::test]
async fn untouched_log_verifies_and_each_edit_is_named() {
    let fx = Fixture::new();
    let log = fx.fill(45).await;
    drop(log);
    let report = verify(&fx.dir(), &fx.key).unwrap();
    assert_eq!((report.events, report.heads, report.unsigned), (45, 5, 0), "{report:?}");
    assert!(fx.dir().segments().unwrap().len() > 3, "small segments rotate");

    // One byte flipped inside a value: still canonical JSON, so only the
    // signed head that covers it can tell.
    let (_t, dir) = fx.copy();
    let (path, line) = locate(&dir, 17);
    edit_lines(&path, |l| l[line] = l[line].replacen("img-0017", "img-0O17", 1));
    let why = fx.failure(&dir);
    assert!(why.contains("head #1 (size 20)") && why.contains("events 10..19"), "{why}");

    // A byte that breaks the canonical form names the event itself.
    let (_t, dir) = fx.copy();
    let (path, line) = locate(&dir, 17);
    edit_lines(&path, |l| l[line] = l[line].replacen("\"status\":200", "\"status\": 200", 1));
    let why = fx.failure(&dir);
    assert!(why.contains("event 17 was altered"), "{why}");

    // A removed event.
    let (_t, dir) = fx.copy();
    let (path, line) = locate(&dir, 23);
    edit_lines(&path, |l| {
        l.remove(line);
    });
    let why = fx.failure(&dir);
    assert!(why.contains("event 23 is missing"), "{why}");

    // Two events swapped.
    let (_t, dir) = fx.copy();
    let (path, line) = locate(&dir, 30);
    let (path2, _) = locate(&dir, 31);
    assert_eq!(path, path2, "events 30 and 31 share a segment in this layout");
    edit_lines(&path, |l| l.swap(line, line + 1));
    let why = fx.failure(&dir);
    assert!(why.contains("event 30 is missing or out of order (found event 31"), "{why}");

    // The tail truncated at a line boundary: the last head covers more.
    let (_t, dir) = fx.copy();
    let last = dir.segments().unwrap().pop().unwrap();
    edit_lines(&last.path, |l| {
        l.pop();
    });
    let why = fx.failure(&dir);
    assert!(why.contains("tail was truncated") && why.contains("events 44..44"), "{why}");

    // The tail cut mid-line.
    let (_t, dir) = fx.copy();
    let last = dir.segments().unwrap().pop().unwrap();
    let bytes = std::fs::read(&last.path).unwrap();
    std::fs::write(&last.path, &bytes[..bytes.len() - 5]).unwrap();
    let why = fx.failure(&dir);
    assert!(why.contains("cut short"), "{why}");

    // A head whose root was replaced (by someone without the key).
    let (_t, dir) = fx.copy();
    edit_lines(&dir.heads_path(), |l| {
        let mut head: serde_json::Value = serde_json::from_str(&l[3]).unwrap();
        head["root"] = serde_json::json!("00".repeat(32));
        l[3] = head.to_string();
    });
    let why = fx.failure(&dir);
    assert!(why.contains("line 4") && why.contains("head #3") && why.contains("does not verify"), "{why}");

    // A head signed with another key.
    let (t, dir) = fx.copy();
    let forger = Signer::load_or_create(&t.path().join("forger.pk8")).unwrap();
    let forged = forger.sign(5, 45, 0, &[0; 32]).to_line();
    edit_lines(&dir.heads_path(), |l| l.push(forged));
    let why = fx.failure(&dir);
    assert!(why.contains("does not verify") && why.contains("forged"), "{why}");

    // A head removed from the middle.
    let (_t, dir) = fx.copy();
    edit_lines(&dir.heads_path(), |l| {
        l.remove(1);
    });
    let why = fx.failure(&dir);
    assert!(why.contains("head #2 where head #1 belongs"), "{why}");

    // A whole segment removed.
    let (_t, dir) = fx.copy();
    let second = dir.segments().unwrap()[1].path.clone();
    std::fs::remove_file(second).unwrap();
    let why = fx.failure(&dir);
    assert!(why.contains("are missing"), "{why}");

    // And the real log is still fine.
    verify(&fx.dir(), &fx.key).unwrap();
}

#[tokio::test]
async fn proofs_verify_offline_across_restart_and_retention() {
    let mut fx = Fixture::new();
    let log = fx.fill(40).await;
    drop(log);
    let heads = fx.dir().read_heads().unwrap().len() as u64;
    assert_eq!(heads, 4);

    let check = |fx: &Fixture, seq: u64| {
        let proof = Proof::inclusion(&fx.dir(), seq, None).unwrap();
        proof.verify(&fx.key).unwrap();
        let mut json = serde_json::to_value(&proof).unwrap();
        json["seq"] = serde_json::json!(seq ^ 1);
        let moved: Proof = serde_json::from_value(json).unwrap();
        assert!(moved.verify(&fx.key).is_err(), "a proof for another position fails");
        proof
    };
    for seq in [0, 7, 20, 39] {
        check(&fx, seq);
    }
    for (old, new) in [(0, 3), (1, 2), (2, 3), (3, 3)] {
        Proof::consistency(&fx.dir(), old, new).unwrap().verify(&fx.key).unwrap();
    }
    // An altered event inside an otherwise valid proof is caught.
    let proof = Proof::inclusion(&fx.dir(), 12, None).unwrap();
    let mut json = serde_json::to_value(&proof).unwrap();
    json["event"]["key"] = serde_json::json!("2026/other.jpg");
    let altered: Proof = serde_json::from_value(json).unwrap();
    assert!(altered.verify(&fx.key).unwrap_err().contains("altered"));
    // A proof checked against another deployment's key fails.
    let other = Signer::load_or_create(&fx.config.dir.with_file_name("other.pk8")).unwrap().public_key();
    assert!(proof.verify(&other).is_err());

    // Restart with retention 0: closed segments covered by a head keep only
    // their hashes once the next head is signed.
    fx.config.retention = Duration::ZERO;
    let log = AuditLog::open(fx.config.clone()).unwrap();
    log.append(Event::now("node-a", "server:Start"), Durability::Sync).await.unwrap();
    log.sign_head().await.unwrap();
    drop(log);
    let report = verify(&fx.dir(), &fx.key).unwrap();
    assert!(report.pruned > 20, "{report:?}");
    assert_eq!(report.events, 41);
    let last = check(&fx, 40);
    let Proof::Inclusion { event, .. } = &last else { panic!() };
    assert!(event.is_some(), "the newest event is still stored");
    let pruned = Proof::inclusion(&fx.dir(), 3, None).unwrap();
    pruned.verify(&fx.key).unwrap();
    let Proof::Inclusion { event, .. } = &pruned else { panic!() };
    assert!(event.is_none(), "a pruned event is proven by its hash alone");
    for (old, new) in [(0, 4), (1, 4), (3, 4)] {
        Proof::consistency(&fx.dir(), old, new).unwrap().verify(&fx.key).unwrap();
    }
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_nothing_acknowledged_is_lost() {
    let fx = Fixture::new();
    let log = fx.fill(12).await;
    let acknowledged = log.size();
    drop(log);
    // The process died while writing the next event.
    let last = fx.dir().segments().unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&last.path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":13,\"time\":\"2026-11-");
    std::fs::write(&last.path, &bytes).unwrap();
    assert!(verify(&fx.dir(), &fx.key).is_err(), "the copy taken before repair shows the torn line");

    let log = AuditLog::open(fx.config.clone()).unwrap();
    assert_eq!(log.size(), acknowledged);
    let seq = log.append(Event::now("node-a", "server:Start"), Durability::Sync).await.unwrap();
    assert_eq!(seq, acknowledged);
    log.sign_head().await.unwrap();
    drop(log);
    assert_eq!(verify(&fx.dir(), &fx.key).unwrap().events, acknowledged + 1);

    // A log whose middle was damaged is refused at start, with directions.
    let first = fx.dir().segments().unwrap()[0].path.clone();
    edit_lines(&first, |l| {
        l.remove(2);
    });
    let refused = AuditLog::open(fx.config.clone()).err().expect("a damaged log must not be appended to").to_string();
    assert!(refused.contains("coffre audit verify"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_synchronous_appends_share_fsyncs_and_stay_ordered() {
    let fx = Fixture::new();
    let log = Arc::new(AuditLog::open(fx.config.clone()).unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut event = Event::now("node-a", "PutObject");
                event.key = Some(format!("k{i}"));
                let durability = if i % 2 == 0 { Durability::Sync } else { Durability::Batched };
                log.append(event, durability).await.unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    let head = log.close().await.unwrap().expect("a head over 200 events");
    assert_eq!(head.size, 200);
    assert!(log.append(Event::now("node-a", "late"), Durability::Sync).await.is_err(), "closed");
    verify(&fx.dir(), &fx.key).unwrap();
}
