//! Object Lock (WORM) and tags: the rules, as pure functions the engines call
//! inside their transactions, so a check and the change it guards are atomic.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::UnixNanos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionMode {
    /// Only a principal allowed to bypass governance may shorten or lift it.
    Governance,
    /// Nobody, root included, may shorten it or delete the version before it ends.
    Compliance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: RetentionMode,
    pub until: UnixNanos,
}

/// The WORM state of one object version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    pub retention: Option<Retention>,
    pub legal_hold: bool,
}

/// How long a default retention lasts, as the bucket's owner wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    Days(u32),
    /// Calendar years: 29 February moves to 28 February in a common year.
    Years(u32),
}

/// A bucket's default retention, applied to new versions that name none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    pub period: Period,
}

/// Present on buckets created with Object Lock enabled (it cannot be added later).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockConfig {
    pub default_retention: Option<DefaultRetention>,
}

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
/// AWS's ceiling for a default retention: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl DefaultRetention {
    pub fn new(mode: RetentionMode, period: Period) -> Result<Self> {
        let ok = match period {
            Period::Days(d) => (1..=MAX_RETENTION_DAYS).contains(&d),
            Period::Years(y) => (1..=MAX_RETENTION_DAYS / 365).contains(&y),
        };
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "default retention must be 1 to {MAX_RETENTION_DAYS} days or 1 to 100 years (got {period:?})"
            )));
        }
        Ok(Self { mode, period })
    }

    /// The retention a version written at `now` gets.
    pub fn from(self, now: UnixNanos) -> Retention {
        let until = match self.period {
            Period::Days(d) => UnixNanos(now.0.saturating_add(i64::from(d) * NANOS_PER_DAY)),
            Period::Years(y) => add_years(now, y),
        };
        Retention { mode: self.mode, until }
    }
}

fn add_years(now: UnixNanos, years: u32) -> UnixNanos {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now.0)) else { return now };
    let year = t.year().saturating_add(i32::try_from(years).unwrap_or(i32::MAX));
    let date = t.date().replace_year(year).or_else(|_| t.date().replace_day(28).and_then(|d| d.replace_year(year)));
    let later = date.map(|d| t.replace_date(d)).unwrap_or(t);
    UnixNanos(i64::try_from(later.unix_timestamp_nanos()).unwrap_or(i64::MAX))
}

impl LockState {
    /// Whether the version may be deleted now; governance yields to `bypass`.
    pub fn check_delete(&self, now: UnixNanos, bypass_governance: bool) -> Result<()> {
        if self.legal_hold {
            return Err(Error::Locked("the object version is under a legal hold".into()));
        }
        match self.retention {
            Some(r) if r.until > now && (r.mode == RetentionMode::Compliance || !bypass_governance) => {
                Err(Error::Locked(format!("the object version is retained in {:?} mode until its date", r.mode)))
            }
            _ => Ok(()),
        }
    }

    /// Whether the retention may change to `new`: extending is always
    /// allowed; shortening or removing only an expired or bypassed governance one.
    pub fn check_retention_change(
        &self,
        new: Option<Retention>,
        now: UnixNanos,
        bypass_governance: bool,
    ) -> Result<()> {
        let Some(old) = self.retention.filter(|r| r.until > now) else { return Ok(()) };
        let extends =
            new.is_some_and(|n| n.until >= old.until && (n.mode == old.mode || n.mode == RetentionMode::Compliance));
        match old.mode {
            _ if extends => Ok(()),
            RetentionMode::Governance if bypass_governance => Ok(()),
            RetentionMode::Governance => {
                Err(Error::Locked("shortening a GOVERNANCE retention needs x-amz-bypass-governance-retention".into()))
            }
            RetentionMode::Compliance => {
                Err(Error::Locked("a COMPLIANCE retention can be extended, never shortened".into()))
            }
        }
    }
}

/// The versions of a bucket that forbid its erasure: those under a
/// COMPLIANCE retention that has not ended. Engines note every version inside
/// the erasing transaction, so no version can slip in between check and erase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ComplianceLocks {
    pub versions: u64,
    /// The latest retain-until date among them.
    pub latest: Option<UnixNanos>,
}

impl ComplianceLocks {
    pub fn note(&mut self, lock: &LockState, now: UnixNanos) {
        if let Some(r) = lock.retention.filter(|r| r.mode == RetentionMode::Compliance && r.until > now) {
            self.versions += 1;
            self.latest = self.latest.max(Some(r.until));
        }
    }

    /// `ErasureLocked`, naming how many versions and until when, if any was noted.
    pub fn check_erase(self) -> Result<()> {
        match self.latest {
            None => Ok(()),
            Some(until) => Err(Error::ErasureLocked { versions: self.versions, until: rfc3339(until) }),
        }
    }
}

fn rfc3339(t: UnixNanos) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.as_secs())
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{} seconds after the epoch", t.as_secs()))
}

/// At most this many tags on an object (S3's limit); buckets take 50.
pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_BUCKET_TAGS: usize = 50;

/// Validates a tag set as S3 does: unique keys of 1–128 characters, values of at most 256.
pub fn check_tags(tags: &[(String, String)], max: usize) -> Result<()> {
    if tags.len() > max {
        return Err(Error::TooManyTags { max });
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(Error::InvalidTag(format!("tag keys must be 1 to 128 characters ({k:?})")));
        }
        if k.starts_with("aws:") {
            return Err(Error::InvalidTag(format!("tag keys cannot be prefixed with aws: ({k:?})")));
        }
        if v.chars().count() > 256 {
            return Err(Error::InvalidTag(format!("tag values must be at most 256 characters (key {k:?})")));
        }
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(Error::InvalidTag(format!("tag keys must be unique ({k:?} repeats)")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = NANOS_PER_DAY;

    fn state(mode: RetentionMode, until_days: i64) -> LockState {
        LockState { retention: Some(Retention { mode, until: UnixNanos(until_days * DAY) }), legal_hold: false }
    }

    #[test]
    fn only_unexpired_compliance_blocks_an_erasure() {
        let now = UnixNanos(DAY);
        let mut locks = ComplianceLocks::default();
        locks.note(&state(RetentionMode::Governance, 30), now);
        locks.note(&state(RetentionMode::Compliance, 1), now);
        locks.note(&LockState { retention: None, legal_hold: true }, now);
        assert!(locks.check_erase().is_ok(), "governance, expired compliance and holds do not block");
        locks.note(&state(RetentionMode::Compliance, 10), now);
        locks.note(&state(RetentionMode::Compliance, 40), now);
        match locks.check_erase() {
            Err(Error::ErasureLocked { versions, until }) => {
                assert_eq!(versions, 2);
                assert_eq!(until, "1970-02-10T00:00:00Z");
            }
            other => panic!("expected ErasureLocked, got {other:?}"),
        }
    }

    #[test]
    fn compliance_cannot_be_deleted_or_shortened_by_anyone() {
        let s = state(RetentionMode::Compliance, 10);
        let now = UnixNanos(DAY);
        assert!(s.check_delete(now, true).is_err());
        assert!(s.check_delete(UnixNanos(11 * DAY), false).is_ok(), "after the date it goes");
        let shorter = Some(Retention { mode: RetentionMode::Compliance, until: UnixNanos(5 * DAY) });
        assert!(s.check_retention_change(shorter, now, true).is_err());
        assert!(s.check_retention_change(None, now, true).is_err());
        let longer = Some(Retention { mode: RetentionMode::Compliance, until: UnixNanos(20 * DAY) });
        assert!(s.check_retention_change(longer, now, false).is_ok());
        let weaker = Some(Retention { mode: RetentionMode::Governance, until: UnixNanos(20 * DAY) });
        assert!(s.check_retention_change(weaker, now, true).is_err(), "compliance cannot become governance");
    }

    #[test]
    fn governance_yields_to_bypass_and_legal_hold_to_nothing() {
        let s = state(RetentionMode::Governance, 10);
        let now = UnixNanos(DAY);
        assert!(s.check_delete(now, false).is_err());
        assert!(s.check_delete(now, true).is_ok());
        assert!(s.check_retention_change(None, now, false).is_err());
        assert!(s.check_retention_change(None, now, true).is_ok());
        let held = LockState { retention: None, legal_hold: true };
        assert!(held.check_delete(now, true).is_err());
    }

    #[test]
    fn years_are_calendar_years() {
        // 2028-02-29T00:00:00Z plus one year is 2029-02-28, plus four is 2032-02-29.
        let leap_day = UnixNanos(1_835_395_200 * 1_000_000_000);
        let one = DefaultRetention::new(RetentionMode::Governance, Period::Years(1)).expect("valid").from(leap_day);
        assert_eq!(one.until.as_secs(), 1_866_931_200);
        let four = DefaultRetention::new(RetentionMode::Governance, Period::Years(4)).expect("valid").from(leap_day);
        assert_eq!(four.until.as_secs(), 1_961_625_600);
        assert!(DefaultRetention::new(RetentionMode::Compliance, Period::Days(0)).is_err());
        assert!(DefaultRetention::new(RetentionMode::Compliance, Period::Years(101)).is_err());
    }

    #[test]
    fn tag_limits() {
        let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert!(check_tags(&[tag("a", "1"), tag("b", "")], MAX_OBJECT_TAGS).is_ok());
        assert!(check_tags(&[tag("a", "1"), tag("a", "2")], MAX_OBJECT_TAGS).is_err());
        assert!(check_tags(&[tag("", "1")], MAX_OBJECT_TAGS).is_err());
        assert!(check_tags(&[tag(&"k".repeat(129), "1")], MAX_OBJECT_TAGS).is_err());
        let many: Vec<_> = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(matches!(check_tags(&many, MAX_OBJECT_TAGS), Err(Error::TooManyTags { max: 10 })));
        assert!(check_tags(&[tag("aws:created", "1")], MAX_OBJECT_TAGS).is_err());
    }
}
