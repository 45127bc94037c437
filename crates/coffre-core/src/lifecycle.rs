//! Lifecycle: per-bucket expiration rules and the pass that applies them.
//!
//! The pass takes the time as an argument, so tests drive it with any clock;
//! the server's worker passes the wall clock. It deletes through the same
//! metadata calls as clients do, so Object Lock holds against it too: a
//! locked version is skipped and counted, never removed. Each removal is
//! recorded in the audit log before it is made, as `lifecycle:*` by its rule.

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::{DeleteGuard, MetaStore, VersionCursor};
use crate::types::{BucketId, BucketName, ObjectKey, UnixNanos, VersionId};
use crate::witness::{Actor, Change, ChangeWitness};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
pub const MAX_RULES: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub prefix: String,
    /// Every tag listed must be on the object.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// Current versions older than this many days.
    Days(u32),
    /// Current versions, once this moment has passed.
    Date(UnixNanos),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub filter: Filter,
    pub expiration: Option<Expiration>,
    /// Remove a delete marker once no version remains behind it.
    pub expired_object_delete_marker: bool,
    /// Noncurrent versions this many days after they stopped being current.
    pub noncurrent_days: Option<u32>,
    /// Incomplete multipart uploads this many days after they began.
    pub abort_incomplete_days: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    pub rules: Vec<Rule>,
}

impl LifecycleConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidArgument(why));
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return bad(format!("a lifecycle configuration holds 1 to {MAX_RULES} rules"));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if self.rules[..i].iter().any(|o| o.id == r.id) {
                return bad(format!("rule ID {:?} is used twice", r.id));
            }
            let any = r.expiration.is_some()
                || r.expired_object_delete_marker
                || r.noncurrent_days.is_some()
                || r.abort_incomplete_days.is_some();
            if !any {
                return bad(format!("rule {:?} has no action", r.id));
            }
            if matches!(r.expiration, Some(Expiration::Days(0))) || r.noncurrent_days == Some(0) {
                return bad(format!("rule {:?}: days must be positive", r.id));
            }
        }
        Ok(())
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub buckets: u64,
    pub expired: u64,
    pub noncurrent_removed: u64,
    pub markers_removed: u64,
    pub uploads_aborted: u64,
    /// Versions a rule matched but Object Lock kept.
    pub kept_by_lock: u64,
}

impl Report {
    /// Adds another pass's counts to these.
    pub fn add(&mut self, other: &Report) {
        self.buckets += other.buckets;
        self.expired += other.expired;
        self.noncurrent_removed += other.noncurrent_removed;
        self.markers_removed += other.markers_removed;
        self.uploads_aborted += other.uploads_aborted;
        self.kept_by_lock += other.kept_by_lock;
    }
}

fn older_than(t: UnixNanos, days: u32, now: UnixNanos) -> bool {
    now.0.saturating_sub(t.0) >= i64::from(days) * NANOS_PER_DAY
}

fn tags_match(filter: &Filter, tags: &[(String, String)]) -> bool {
    filter.tags.iter().all(|want| tags.contains(want))
}

/// Applies every enabled rule of every bucket as of `now`.
pub async fn run(meta: &dyn MetaStore, witness: &dyn ChangeWitness, now: UnixNanos) -> Result<Report> {
    let mut report = Report::default();
    for bucket in meta.buckets().await? {
        let Some(config) = bucket.lifecycle.clone() else { continue };
        report.buckets += 1;
        for rule in config.rules.iter().filter(|r| r.enabled) {
            let pass = Pass { meta, witness, bucket: &bucket.name, bucket_id: bucket.id, rule };
            apply_rule(&pass, now, &mut report).await?;
        }
    }
    Ok(report)
}

/// One rule applied to one bucket.
struct Pass<'a> {
    meta: &'a dyn MetaStore,
    witness: &'a dyn ChangeWitness,
    bucket: &'a BucketName,
    /// The bucket the rule was read from: a bucket recreated meanwhile is not touched.
    bucket_id: BucketId,
    rule: &'a Rule,
}

impl Pass<'_> {
    /// Records the removal of a version (the current one: `None`), then makes it.
    async fn remove(&self, operation: &str, key: &ObjectKey, version: Option<&VersionId>) -> Result<()> {
        let actor = Actor::Job { name: "lifecycle", on: format!("rule={}", self.rule.id) };
        self.witness.witness(Change::new(operation, actor, self.bucket).key(key).version(version)).await?;
        self.meta.delete_object(self.bucket, self.bucket_id, key, version, &DeleteGuard::default()).await.map(drop)
    }
}

async fn apply_rule(pass: &Pass<'_>, now: UnixNanos, report: &mut Report) -> Result<()> {
    let Pass { meta, bucket, rule, .. } = *pass;
    const PAGE: usize = 1000;
    let prefix = rule.filter.prefix.as_bytes();
    let mut from: Bound<VersionCursor> = Bound::Unbounded;
    // The newer neighbour of each version: when it was written, the older one became noncurrent.
    let mut newer: Option<(String, UnixNanos, usize)> = None;
    loop {
        let page = meta.list_versions(bucket, prefix, from.clone(), PAGE).await?;
        let Some(last) = page.last() else { break };
        from = Bound::Excluded(VersionCursor {
            key: last.key.as_bytes().to_vec(),
            after_version: Some(last.meta.version_id.clone()),
        });
        let full = page.len() == PAGE;
        for v in page {
            let key = v.key.as_str().to_owned();
            let (became_noncurrent, older_count) = match &newer {
                Some((k, t, n)) if *k == key => (Some(*t), n + 1),
                _ => (None, 0),
            };
            newer = Some((key, v.meta.last_modified, older_count));
            let m = &v.meta;
            let outcome = if v.is_latest && !m.delete_marker {
                let due = match rule.expiration {
                    Some(Expiration::Days(d)) => older_than(m.last_modified, d, now),
                    Some(Expiration::Date(at)) => now >= at,
                    None => false,
                };
                if !(due && tags_match(&rule.filter, &m.tags)) {
                    continue;
                }
                // Like a client DELETE: a marker in versioned buckets, removal otherwise.
                pass.remove("lifecycle:Expire", &v.key, None).await.map(|()| &mut report.expired)
            } else if v.is_latest && m.delete_marker {
                let alone = meta
                    .list_versions(
                        bucket,
                        v.key.as_bytes(),
                        Bound::Included(VersionCursor { key: v.key.as_bytes().to_vec(), after_version: None }),
                        2,
                    )
                    .await?;
                let only_marker = alone.iter().filter(|o| o.key == v.key).count() == 1;
                if !(rule.expired_object_delete_marker && only_marker) {
                    continue;
                }
                pass.remove("lifecycle:RemoveDeleteMarker", &v.key, Some(&m.version_id))
                    .await
                    .map(|()| &mut report.markers_removed)
            } else {
                let due = match (rule.noncurrent_days, became_noncurrent) {
                    (Some(d), Some(since)) => older_than(since, d, now),
                    _ => false,
                };
                if !(due && tags_match(&rule.filter, &m.tags)) {
                    continue;
                }
                // Checked before the event is written: a locked version would
                // otherwise leave an event for a removal refused at every pass.
                if m.lock.check_delete(now, false).is_err() {
                    report.kept_by_lock += 1;
                    continue;
                }
                pass.remove("lifecycle:ExpireNoncurrent", &v.key, Some(&m.version_id))
                    .await
                    .map(|()| &mut report.noncurrent_removed)
            };
            match outcome {
                Ok(counter) => *counter += 1,
                Err(Error::Locked(_)) => report.kept_by_lock += 1,
                Err(e) => return Err(e),
            }
        }
        if !full {
            break;
        }
    }
    if let Some(days) = rule.abort_incomplete_days {
        abort_stale_uploads(pass, prefix, days, now, report).await?;
    }
    Ok(())
}

async fn abort_stale_uploads(
    pass: &Pass<'_>,
    prefix: &[u8],
    days: u32,
    now: UnixNanos,
    report: &mut Report,
) -> Result<()> {
    let Pass { meta, witness, bucket, rule, .. } = *pass;
    let uploads = meta.uploads(bucket, prefix, None, usize::MAX).await?;
    for u in uploads.iter().filter(|u| older_than(u.initiated, days, now)) {
        let actor = Actor::Job { name: "lifecycle", on: format!("rule={}", rule.id) };
        let change = Change::new("lifecycle:AbortUpload", actor, bucket)
            .key(&u.key)
            .detail(format!("upload_id={}", u.upload_id.as_str()));
        witness.witness(change).await?;
        match meta.abort_upload(bucket, &u.key, &u.upload_id).await {
            Ok(()) => report.uploads_aborted += 1,
            Err(Error::NoSuchUpload) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
