//! S3's version rules as pure planners: given the rows of one key that an
//! engine read under its locks and the request, what to write, remove and answer.
//!
//! Both metadata engines run the same sequence: read the bucket and the key's
//! current row under lock, ask [`Reads`] which other rows the request needs,
//! read those, call a planner, and apply the [`KeyWrites`] it returns in the
//! same transaction. The rules (which old version is kept under each
//! versioning state, the single `null` version, delete markers, promoting the
//! next version, Object Lock and conditions) live here and nowhere else.
//!
//! A key's versions are ordered by `seq`, a per-key write counter: the current
//! version has the highest, and a noncurrent row is named by its `seq`.

use crate::error::{Error, Result};
use crate::meta::{
    BucketRecord, DataLocation, DeleteGuard, DeleteOutcome, ObjectVersion, VersionChange, VersionMeta, Versioning,
    WriteCondition,
};
use crate::types::{BlobId, BucketId, UnixNanos, VersionId};

#[cfg(test)]
mod model_tests;

/// A version as a row holds it: the key's write counter at its write, and the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub seq: u64,
    pub version: ObjectVersion,
}

/// Which noncurrent rows of the key a request needs besides its current row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// The noncurrent version with this id.
    pub named: Option<VersionId>,
    /// The noncurrent `null` version (a new `null` version replaces it).
    pub null: bool,
    /// The newest noncurrent version (it becomes current when the current one goes).
    pub newest: bool,
}

/// The rows of one key an engine read under lock, as [`Reads`] asked.
#[derive(Debug, Clone, Default)]
pub struct KeyRows {
    pub current: Option<StoredVersion>,
    pub named: Option<StoredVersion>,
    pub null: Option<StoredVersion>,
    pub newest: Option<StoredVersion>,
}

/// What becomes of the key's current row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[expect(clippy::large_enum_variant, reason = "one per request, built and consumed at once")]
pub enum CurrentRow {
    #[default]
    Unchanged,
    /// Written (created, replaced or rewritten) with this version.
    Set(StoredVersion),
    Remove,
}

/// Every change one request makes to one key's rows, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyWrites {
    pub current: CurrentRow,
    /// Noncurrent rows to remove, by `seq`; removed before anything is written.
    pub remove_noncurrent: Vec<u64>,
    /// The old current version, kept as a new noncurrent row.
    pub demote: Option<StoredVersion>,
    /// An existing noncurrent row rewritten in place (same `seq`).
    pub rewrite: Option<StoredVersion>,
    /// Blobs no version references any more, for the collector.
    pub garbage: Vec<BlobId>,
}

/// A delete as the object service asks it.
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    /// The bucket the request was authorised in ([`BucketRecord::check_write`]).
    pub began_in: BucketId,
    /// A named version to remove; `None` deletes the key as its versioning says.
    pub version: Option<VersionId>,
    pub guard: DeleteGuard,
    pub now: UnixNanos,
    /// The id a delete marker gets in a versioning-enabled bucket.
    pub marker_id: VersionId,
}

/// A change to one version's metadata as the object service asks it.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    /// The bucket the request was authorised in ([`BucketRecord::check_write`]).
    pub began_in: BucketId,
    pub version: Option<VersionId>,
    pub change: VersionChange,
    pub bypass_governance: bool,
    pub now: UnixNanos,
}

impl DeleteRequest {
    /// A delete made now; the marker id is fresh in case one is written.
    pub fn now(began_in: BucketId, version: Option<&VersionId>, guard: &DeleteGuard) -> Self {
        let (now, marker_id) = (UnixNanos::now(), VersionId::generate());
        Self { began_in, version: version.cloned(), guard: guard.clone(), now, marker_id }
    }
}

impl UpdateRequest {
    /// A metadata change made now.
    pub fn now(
        began_in: BucketId,
        version: Option<&VersionId>,
        change: VersionChange,
        bypass_governance: bool,
    ) -> Self {
        Self { began_in, version: version.cloned(), change, bypass_governance, now: UnixNanos::now() }
    }
}

impl Reads {
    /// A put of `version` needs the noncurrent `null` row when it is itself
    /// `null` in a bucket that ever had versioning on.
    pub fn for_put(bucket: &BucketRecord, version: &ObjectVersion) -> Self {
        let null = version.meta.version_id == VersionId::Null && bucket.versioning != Versioning::Unversioned;
        Self { null, ..Self::default() }
    }

    /// A delete needs the named row, or the next version when it removes the
    /// current one, or the `null` row when it writes a `null` delete marker.
    pub fn for_delete(bucket: &BucketRecord, current: Option<&StoredVersion>, version: Option<&VersionId>) -> Self {
        match version {
            Some(id) if current.is_some_and(|c| &c.version.meta.version_id == id) => {
                Self { newest: true, ..Self::default() }
            }
            Some(id) => Self { named: Some(id.clone()), ..Self::default() },
            None => Self { null: bucket.versioning == Versioning::Suspended, ..Self::default() },
        }
    }

    /// A metadata change needs the named row unless it names the current one.
    pub fn for_update(current: Option<&StoredVersion>, version: Option<&VersionId>) -> Self {
        match version {
            Some(id) if !current.is_some_and(|c| &c.version.meta.version_id == id) => {
                Self { named: Some(id.clone()), ..Self::default() }
            }
            _ => Self::default(),
        }
    }

    /// Whether the noncurrent version `v` is one of the rows asked for.
    pub fn wants(&self, v: &VersionMeta) -> bool {
        self.named.as_ref() == Some(&v.version_id) || (self.null && v.version_id == VersionId::Null)
    }
}

/// Whether a write may apply given the key's current version: a condition
/// that needs a version and finds none is `NoSuchKey`, as on S3.
pub fn check_condition(cond: &WriteCondition, current: Option<&ObjectVersion>) -> Result<()> {
    let live = current.filter(|v| !v.meta.delete_marker).map(|v| v.meta.etag.as_str());
    let holds = match (cond, live) {
        (WriteCondition::None, _) => true,
        (WriteCondition::KeyPresent | WriteCondition::EtagMatches(_), None) => return Err(Error::NoSuchKey),
        (WriteCondition::KeyPresent, Some(_)) => true,
        (WriteCondition::EtagMatches(etag), Some(live)) => live == etag,
        (WriteCondition::KeyAbsent, live) => live.is_none(),
        (WriteCondition::EtagDiffers(etag), live) => live != Some(etag.as_str()),
    };
    if holds { Ok(()) } else { Err(Error::PreconditionFailed) }
}

/// Makes `version` the key's current version, keeping or dropping the old
/// current one as the bucket's versioning says. Every check comes first,
/// the first that `bucket` is the one the write began in (`began_in`).
pub fn plan_put(
    bucket: &BucketRecord,
    began_in: BucketId,
    rows: &KeyRows,
    version: ObjectVersion,
    cond: &WriteCondition,
) -> Result<KeyWrites> {
    bucket.check_write(began_in, &version.data.keys())?;
    check_condition(cond, rows.current.as_ref().map(|c| &c.version))?;
    let mut writes = KeyWrites::default();
    if let Some(old) = &rows.current {
        let keep_old = match bucket.versioning {
            Versioning::Unversioned => false,
            Versioning::Enabled => true,
            Versioning::Suspended => old.version.meta.version_id != VersionId::Null,
        };
        if keep_old {
            writes.demote = Some(old.clone());
        } else {
            writes.garbage.extend(old.version.data.blobs());
        }
    }
    if version.meta.version_id == VersionId::Null
        && bucket.versioning != Versioning::Unversioned
        && let Some(null) = &rows.null
    {
        // Only one null version may exist: a new one replaces a noncurrent one.
        writes.remove_noncurrent.push(null.seq);
        writes.garbage.extend(null.version.data.blobs());
    }
    let seq = rows.current.as_ref().map_or(1, |c| c.seq + 1);
    writes.current = CurrentRow::Set(StoredVersion { seq, version });
    Ok(writes)
}

/// Deletes a key (a delete marker when versioning was ever on) or one named version.
/// Refused, changing nothing, in a bucket other than the one it began in.
pub fn plan_delete(bucket: &BucketRecord, rows: &KeyRows, req: &DeleteRequest) -> Result<(KeyWrites, DeleteOutcome)> {
    bucket.check_write(req.began_in, &[])?;
    let target = match &req.version {
        None => rows.current.as_ref(),
        Some(id) => [&rows.current, &rows.named].into_iter().flatten().find(|s| &s.version.meta.version_id == id),
    };
    match target {
        Some(t) if !req.guard.if_match.holds(&t.version.meta) => return Err(Error::PreconditionFailed),
        // A conditional delete of a key that has no version does nothing:
        // no delete marker either.
        None if req.version.is_none() && req.guard.if_match.is_set() => {
            return Ok((KeyWrites::default(), DeleteOutcome { version_id: None, delete_marker: false }));
        }
        _ => {}
    }
    match (&req.version, bucket.versioning) {
        (None, Versioning::Unversioned) => {
            let mut writes = KeyWrites::default();
            if let Some(old) = &rows.current {
                writes.current = CurrentRow::Remove;
                writes.garbage = old.version.data.blobs();
            }
            Ok((writes, DeleteOutcome { version_id: None, delete_marker: false }))
        }
        (None, versioning) => {
            let id = if versioning == Versioning::Enabled { req.marker_id.clone() } else { VersionId::Null };
            let marker = delete_marker(bucket, id.clone(), req.now);
            let writes = plan_put(bucket, req.began_in, rows, marker, &WriteCondition::None)?;
            Ok((writes, DeleteOutcome { version_id: Some(id), delete_marker: true }))
        }
        (Some(wanted), _) => plan_delete_version(rows, wanted, req),
    }
}

/// Removes one named version; if it was current, the newest noncurrent one
/// takes its place. A version that is not there is deleted with success, as S3 does.
fn plan_delete_version(rows: &KeyRows, wanted: &VersionId, req: &DeleteRequest) -> Result<(KeyWrites, DeleteOutcome)> {
    let is_wanted = |s: &&StoredVersion| &s.version.meta.version_id == wanted;
    let mut writes = KeyWrites::default();
    let mut outcome = DeleteOutcome { version_id: Some(wanted.clone()), delete_marker: false };
    let removed = if let Some(current) = rows.current.as_ref().filter(is_wanted) {
        current.version.meta.lock.check_delete(req.now, req.guard.bypass_governance)?;
        writes.current = match &rows.newest {
            Some(next) => {
                writes.remove_noncurrent.push(next.seq);
                CurrentRow::Set(next.clone())
            }
            None => CurrentRow::Remove,
        };
        current
    } else if let Some(named) = rows.named.as_ref().filter(is_wanted) {
        named.version.meta.lock.check_delete(req.now, req.guard.bypass_governance)?;
        writes.remove_noncurrent.push(named.seq);
        named
    } else {
        return Ok((writes, outcome));
    };
    writes.garbage = removed.version.data.blobs();
    outcome.delete_marker = removed.version.meta.delete_marker;
    Ok((writes, outcome))
}

/// Changes one version's tags, retention or legal hold; its bytes never change.
/// Refused, changing nothing, in a bucket other than the one it began in.
pub fn plan_update(bucket: &BucketRecord, rows: &KeyRows, req: &UpdateRequest) -> Result<(KeyWrites, VersionId)> {
    bucket.check_write(req.began_in, &[])?;
    let (is_current, found) = match (&rows.current, &req.version) {
        (Some(c), None) => (true, c),
        (Some(c), Some(id)) if &c.version.meta.version_id == id => (true, c),
        (_, Some(id)) => {
            let named = rows.named.as_ref().filter(|n| &n.version.meta.version_id == id);
            (false, named.ok_or(Error::NoSuchVersion)?)
        }
        (None, None) => return Err(Error::NoSuchKey),
    };
    let mut target = found.clone();
    let meta = &mut target.version.meta;
    if meta.delete_marker {
        return Err(Error::DeleteMarker { version_id: meta.version_id.clone(), named: req.version.is_some() });
    }
    let lock_change = matches!(req.change, VersionChange::Retention(_) | VersionChange::LegalHold(_));
    if lock_change && bucket.object_lock.is_none() {
        return Err(Error::NoLockConfiguration);
    }
    match &req.change {
        VersionChange::Tags(tags) => meta.tags = tags.clone(),
        VersionChange::Retention(r) => {
            meta.lock.check_retention_change(*r, req.now, req.bypass_governance)?;
            meta.lock.retention = *r;
        }
        VersionChange::LegalHold(on) => meta.lock.legal_hold = *on,
    }
    let id = meta.version_id.clone();
    let mut writes = KeyWrites::default();
    if is_current {
        writes.current = CurrentRow::Set(target);
    } else {
        writes.rewrite = Some(target);
    }
    Ok((writes, id))
}

/// A delete marker: a version with no data, owned by the bucket's owner.
fn delete_marker(bucket: &BucketRecord, version_id: VersionId, now: UnixNanos) -> ObjectVersion {
    ObjectVersion {
        meta: VersionMeta {
            version_id,
            delete_marker: true,
            size: 0,
            etag: String::new(),
            last_modified: now,
            owner: bucket.owner.clone(),
            headers: Default::default(),
            user_meta: Vec::new(),
            checksums: Default::default(),
            checksum_composite: false,
            tags: Vec::new(),
            lock: Default::default(),
            sse: Default::default(),
        },
        data: DataLocation::None,
    }
}
