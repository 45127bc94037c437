//! The planners against a model: random sequences of puts, deletes, deletes by
//! version, metadata and lock changes and versioning changes, applied both to
//! rows through the planners (as an engine would) and to a plain list of
//! versions written from S3's documentation; they must agree at every step.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::lock::{LockConfig, LockState, Retention, RetentionMode};
use crate::meta::{BucketChange, BucketKek, EtagTest, SealedKey, VersionMatch};
use crate::types::{AccessKeyId, BucketName};

const UNIT: i64 = 1_000;
/// The `If-Match` of a generated delete that stands for `*`.
const ANY_ETAG: u8 = 3;

#[derive(Debug, Clone)]
enum Cond {
    None,
    Absent,
    Differs(u8),
    Present,
    Match(u8),
}

#[derive(Debug, Clone)]
enum Change {
    Tag(u8),
    Retention(Option<(bool, i64)>),
    Hold(bool),
}

#[derive(Debug, Clone)]
enum Op {
    Put { etag: u8, cond: Cond, inline: bool, retention: Option<(bool, i64)>, stale_key: bool },
    Delete { pick: Option<usize>, if_match: Option<u8>, bypass: bool },
    Update { pick: Option<usize>, change: Change, bypass: bool },
    Versioning(bool),
    Wait(i64),
}

fn retention() -> impl Strategy<Value = Option<(bool, i64)>> {
    prop::option::weighted(0.3, (any::<bool>(), -3i64..12))
}

fn op() -> impl Strategy<Value = Op> {
    let cond = prop_oneof![
        6 => Just(Cond::None),
        1 => Just(Cond::Absent),
        1 => (0u8..3).prop_map(Cond::Differs),
        1 => Just(Cond::Present),
        2 => (0u8..3).prop_map(Cond::Match),
    ];
    let pick = prop::option::of(0usize..8);
    let change = prop_oneof![
        (0u8..3).prop_map(Change::Tag),
        retention().prop_map(Change::Retention),
        any::<bool>().prop_map(Change::Hold),
    ];
    prop_oneof![
        6 => (0u8..3, cond, any::<bool>(), retention(), prop::bool::weighted(0.05)).prop_map(
            |(etag, cond, inline, retention, stale_key)| Op::Put { etag, cond, inline, retention, stale_key }
        ),
        4 => (pick.clone(), prop::option::weighted(0.2, 0u8..=ANY_ETAG), any::<bool>())
            .prop_map(|(pick, if_match, bypass)| Op::Delete { pick, if_match, bypass }),
        2 => (pick, change, any::<bool>()).prop_map(|(pick, change, bypass)| Op::Update { pick, change, bypass }),
        1 => any::<bool>().prop_map(Op::Versioning),
        1 => (1i64..6).prop_map(Op::Wait),
    ]
}

/// One version as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    id: VersionId,
    marker: bool,
    etag: String,
    lock: LockState,
    tags: Vec<(String, String)>,
    blob: Option<BlobId>,
}

impl Seen {
    fn of(v: &ObjectVersion) -> Self {
        Self {
            id: v.meta.version_id.clone(),
            marker: v.meta.delete_marker,
            etag: v.meta.etag.clone(),
            lock: v.meta.lock.clone(),
            tags: v.meta.tags.clone(),
            blob: v.data.blobs().first().copied(),
        }
    }
}

/// The key's versions, newest first, with S3's rules stated on the list.
#[derive(Debug, Default)]
struct Model {
    versions: Vec<Seen>,
    collected: Vec<BlobId>,
}

impl Model {
    fn live(&self) -> Option<&Seen> {
        self.versions.first().filter(|v| !v.marker)
    }

    fn check(&self, cond: &Cond) -> Result<()> {
        match (cond, self.live()) {
            (Cond::None, _) | (Cond::Absent, None) | (Cond::Differs(_), None) => Ok(()),
            (Cond::Absent, Some(_)) => Err(Error::PreconditionFailed),
            (Cond::Differs(e), Some(v)) if v.etag == e.to_string() => Err(Error::PreconditionFailed),
            (Cond::Differs(_), Some(_)) => Ok(()),
            (Cond::Present | Cond::Match(_), None) => Err(Error::NoSuchKey),
            (Cond::Present, Some(_)) => Ok(()),
            (Cond::Match(e), Some(v)) if v.etag != e.to_string() => Err(Error::PreconditionFailed),
            (Cond::Match(_), Some(_)) => Ok(()),
        }
    }

    fn drop_where(&mut self, gone: impl Fn(&Seen) -> bool) {
        let (dropped, kept): (Vec<Seen>, Vec<Seen>) = self.versions.drain(..).partition(gone);
        self.collected.extend(dropped.iter().filter_map(|v| v.blob));
        self.versions = kept;
    }

    fn put(&mut self, versioning: Versioning, new: Seen) {
        match versioning {
            Versioning::Unversioned => self.drop_where(|_| true),
            _ if new.id == VersionId::Null => self.drop_where(|v| v.id == VersionId::Null),
            _ => {}
        }
        self.versions.insert(0, new);
    }

    fn delete_named(&mut self, id: &VersionId, now: UnixNanos, bypass: bool) -> Result<DeleteOutcome> {
        let Some(at) = self.versions.iter().position(|v| &v.id == id) else {
            return Ok(DeleteOutcome { version_id: Some(id.clone()), delete_marker: false });
        };
        self.versions[at].lock.check_delete(now, bypass)?;
        let gone = self.versions.remove(at);
        self.collected.extend(gone.blob);
        Ok(DeleteOutcome { version_id: Some(id.clone()), delete_marker: gone.marker })
    }
}

/// One key's rows as an engine holds them, changed only through the planners.
#[derive(Debug, Default)]
struct Rows {
    current: Option<StoredVersion>,
    noncurrent: BTreeMap<u64, StoredVersion>,
    collected: Vec<BlobId>,
}

impl Rows {
    fn read(&self, reads: &Reads) -> KeyRows {
        let find = |f: &dyn Fn(&StoredVersion) -> bool| self.noncurrent.values().find(|s| f(s)).cloned();
        KeyRows {
            current: self.current.clone(),
            named: reads.named.as_ref().and_then(|id| find(&|s| &s.version.meta.version_id == id)),
            null: if reads.null { find(&|s| s.version.meta.version_id == VersionId::Null) } else { None },
            newest: if reads.newest { self.noncurrent.values().next_back().cloned() } else { None },
        }
    }

    fn apply(&mut self, writes: KeyWrites) {
        for seq in writes.remove_noncurrent {
            assert!(self.noncurrent.remove(&seq).is_some(), "removes a row that exists");
        }
        if let Some(old) = writes.demote {
            assert!(self.noncurrent.insert(old.seq, old).is_none(), "a demoted row takes a free seq");
        }
        if let Some(row) = writes.rewrite {
            assert!(self.noncurrent.insert(row.seq, row).is_some(), "a rewrite replaces a row");
        }
        match writes.current {
            CurrentRow::Unchanged => {}
            CurrentRow::Set(s) => self.current = Some(s),
            CurrentRow::Remove => self.current = None,
        }
        self.collected.extend(writes.garbage);
    }

    /// Newest first, as the model lists them.
    fn seen(&self) -> Vec<Seen> {
        let current = self.current.iter().map(|s| Seen::of(&s.version));
        current.chain(self.noncurrent.values().rev().map(|s| Seen::of(&s.version))).collect()
    }
}

struct Run {
    bucket: BucketRecord,
    model: Model,
    rows: Rows,
    now: UnixNanos,
    next: u128,
    written: BTreeSet<BlobId>,
}

impl Run {
    fn new(locked: bool) -> Self {
        let name = BucketName::parse("model-bucket").expect("a valid name");
        let mut bucket = BucketRecord::new(name, AccessKeyId::parse("OWNER").expect("a valid key id"));
        bucket.keks.push(BucketKek { generation: 1, id: "kek-1".into(), created: UnixNanos(0) });
        if locked {
            bucket.object_lock = Some(LockConfig::default());
            bucket.versioning = Versioning::Enabled;
        }
        Self {
            bucket,
            model: Model::default(),
            rows: Rows::default(),
            now: UnixNanos(1_000_000),
            next: 0,
            written: BTreeSet::new(),
        }
    }

    fn fresh_id(&mut self) -> VersionId {
        self.next += 1;
        VersionId::Id(format!("v{}", self.next))
    }

    /// A version id to name: one the model holds, or one it never had.
    fn pick(&self, pick: Option<usize>) -> Option<VersionId> {
        let at = pick?;
        Some(self.model.versions.get(at).map_or(VersionId::Id("absent".into()), |v| v.id.clone()))
    }

    fn retention(&self, r: Option<(bool, i64)>) -> Option<Retention> {
        let (compliance, units) = r?;
        let mode = if compliance { RetentionMode::Compliance } else { RetentionMode::Governance };
        Some(Retention { mode, until: UnixNanos(self.now.0 + units * UNIT) })
    }

    fn step(&mut self, op: Op) -> (String, String) {
        match op {
            Op::Put { etag, cond, inline, retention, stale_key } => self.put(etag, cond, inline, retention, stale_key),
            Op::Delete { pick, if_match, bypass } => self.delete(pick, if_match, bypass),
            Op::Update { pick, change, bypass } => self.update(pick, change, bypass),
            Op::Versioning(enabled) => {
                let v = if enabled { Versioning::Enabled } else { Versioning::Suspended };
                let r = self.bucket.apply(BucketChange::Versioning(v));
                (format!("{r:?}"), format!("{r:?}"))
            }
            Op::Wait(units) => {
                self.now = UnixNanos(self.now.0 + units * UNIT);
                (String::new(), String::new())
            }
        }
    }

    fn put(
        &mut self,
        etag: u8,
        cond: Cond,
        inline: bool,
        retention: Option<(bool, i64)>,
        stale: bool,
    ) -> (String, String) {
        let id = if self.bucket.versioning == Versioning::Enabled { self.fresh_id() } else { VersionId::Null };
        self.next += 1;
        let key = SealedKey {
            key_id: [0; 16],
            kek_generation: u32::from(!stale),
            wrapped: Vec::new(),
            origin: String::new(),
            part: 0,
        };
        let data = if inline {
            DataLocation::Inline { sealed: Vec::new(), key }
        } else {
            DataLocation::Blob { id: BlobId(self.next), key }
        };
        let mut version = delete_marker(&self.bucket, id, self.now);
        version.meta.delete_marker = false;
        version.meta.etag = etag.to_string();
        version.meta.lock.retention = self.retention(retention);
        version.data = data;
        let new = Seen::of(&version);
        let condition = match cond {
            Cond::None => WriteCondition::None,
            Cond::Absent => WriteCondition::KeyAbsent,
            Cond::Differs(e) => WriteCondition::EtagDiffers(e.to_string()),
            Cond::Present => WriteCondition::KeyPresent,
            Cond::Match(e) => WriteCondition::EtagMatches(e.to_string()),
        };
        let planned = plan_put(
            &self.bucket,
            self.bucket.id,
            &self.rows.read(&Reads::for_put(&self.bucket, &version)),
            version,
            &condition,
        );
        let modelled = if stale { Err(Error::KeyRotated { generation: 0 }) } else { self.model.check(&cond) };
        if let (Ok(writes), Ok(())) = (&planned, &modelled) {
            self.written.extend(new.blob);
            self.rows.apply(writes.clone());
            self.model.put(self.bucket.versioning, new);
        }
        (format!("{:?}", planned.map(drop)), format!("{modelled:?}"))
    }

    fn delete(&mut self, pick: Option<usize>, if_match: Option<u8>, bypass: bool) -> (String, String) {
        let version = self.pick(pick);
        let marker_id = self.fresh_id();
        let etag = if_match.map(|e| if e == ANY_ETAG { EtagTest::Any } else { EtagTest::Etag(e.to_string()) });
        let guard =
            DeleteGuard { bypass_governance: bypass, if_match: VersionMatch { etag, ..VersionMatch::default() } };
        let req = DeleteRequest {
            began_in: self.bucket.id,
            version: version.clone(),
            guard,
            now: self.now,
            marker_id: marker_id.clone(),
        };
        let reads = Reads::for_delete(&self.bucket, self.rows.current.as_ref(), version.as_ref());
        let planned = plan_delete(&self.bucket, &self.rows.read(&reads), &req);
        let modelled = self.model_delete(version, if_match, bypass, marker_id);
        if let Ok((writes, _)) = &planned {
            self.rows.apply(writes.clone());
        }
        (format!("{:?}", planned.map(|(_, o)| o)), format!("{modelled:?}"))
    }

    fn model_delete(
        &mut self,
        version: Option<VersionId>,
        if_match: Option<u8>,
        bypass: bool,
        marker_id: VersionId,
    ) -> Result<DeleteOutcome> {
        if let Some(etag) = if_match {
            let target = match &version {
                None => self.model.versions.first(),
                Some(id) => self.model.versions.iter().find(|v| &v.id == id),
            };
            // A delete marker is a version to match; finding nothing, the delete goes on.
            match target {
                Some(v) if etag != ANY_ETAG && v.etag != etag.to_string() => return Err(Error::PreconditionFailed),
                None if version.is_none() => return Ok(DeleteOutcome { version_id: None, delete_marker: false }),
                _ => {}
            }
        }
        if let Some(id) = version {
            return self.model.delete_named(&id, self.now, bypass);
        }
        let versioning = self.bucket.versioning;
        if versioning == Versioning::Unversioned {
            self.model.drop_where(|_| true);
            return Ok(DeleteOutcome { version_id: None, delete_marker: false });
        }
        let id = if versioning == Versioning::Enabled { marker_id } else { VersionId::Null };
        let marker = Seen {
            id: id.clone(),
            marker: true,
            etag: String::new(),
            lock: LockState::default(),
            tags: Vec::new(),
            blob: None,
        };
        self.model.put(versioning, marker);
        Ok(DeleteOutcome { version_id: Some(id), delete_marker: true })
    }

    fn update(&mut self, pick: Option<usize>, change: Change, bypass: bool) -> (String, String) {
        let version = self.pick(pick);
        let change = match change {
            Change::Tag(t) => VersionChange::Tags(vec![("t".into(), t.to_string())]),
            Change::Retention(r) => VersionChange::Retention(self.retention(r)),
            Change::Hold(on) => VersionChange::LegalHold(on),
        };
        let req = UpdateRequest {
            began_in: self.bucket.id,
            version: version.clone(),
            change: change.clone(),
            bypass_governance: bypass,
            now: self.now,
        };
        let reads = Reads::for_update(self.rows.current.as_ref(), version.as_ref());
        let planned = plan_update(&self.bucket, &self.rows.read(&reads), &req);
        let modelled = self.model_update(version, change, bypass);
        if let Ok((writes, _)) = &planned {
            self.rows.apply(writes.clone());
        }
        (format!("{:?}", planned.map(|(_, id)| id)), format!("{modelled:?}"))
    }

    fn model_update(&mut self, version: Option<VersionId>, change: VersionChange, bypass: bool) -> Result<VersionId> {
        let target = match &version {
            None => self.model.versions.first_mut().ok_or(Error::NoSuchKey)?,
            Some(id) => self.model.versions.iter_mut().find(|v| &v.id == id).ok_or(Error::NoSuchVersion)?,
        };
        if target.marker {
            return Err(Error::DeleteMarker { version_id: target.id.clone(), named: version.is_some() });
        }
        if !matches!(change, VersionChange::Tags(_)) && self.bucket.object_lock.is_none() {
            return Err(Error::NoLockConfiguration);
        }
        match change {
            VersionChange::Tags(tags) => target.tags = tags,
            VersionChange::Retention(r) => {
                target.lock.check_retention_change(r, self.now, bypass)?;
                target.lock.retention = r;
            }
            VersionChange::LegalHold(on) => target.lock.legal_hold = on,
        }
        Ok(target.id.clone())
    }

    /// What must hold between any two steps.
    fn check_invariants(&self) {
        assert_eq!(self.rows.seen(), self.model.versions, "the rows list what the model holds");
        let nulls = self.model.versions.iter().filter(|v| v.id == VersionId::Null).count();
        assert!(nulls <= 1, "at most one null version");
        if let Some(current) = &self.rows.current {
            assert!(self.rows.noncurrent.keys().all(|&seq| seq < current.seq), "the current row is the newest");
        }
        let collected: BTreeSet<BlobId> = self.rows.collected.iter().copied().collect();
        assert_eq!(collected.len(), self.rows.collected.len(), "no blob is collected twice");
        let referenced: BTreeSet<BlobId> = self.model.versions.iter().filter_map(|v| v.blob).collect();
        assert!(collected.is_disjoint(&referenced), "no referenced blob is collected");
        let accounted: BTreeSet<BlobId> = collected.union(&referenced).copied().collect();
        assert_eq!(accounted, self.written, "every blob written is referenced or collected");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_planners_agree_with_the_model(locked in any::<bool>(), ops in prop::collection::vec(op(), 1..60)) {
        let mut run = Run::new(locked);
        for op in ops {
            let label = format!("{op:?}");
            let (planned, modelled) = run.step(op);
            prop_assert_eq!(planned, modelled, "outcome of {}", label);
            run.check_invariants();
        }
    }
}
