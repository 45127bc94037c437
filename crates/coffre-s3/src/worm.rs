//! Conversions for tags and Object Lock between S3's wire forms (headers,
//! XML DTOs) and the service's types.

use coffre_core::lock::{DefaultRetention, LockState, Period, Retention, RetentionMode};
use coffre_core::types::UnixNanos;
use s3s::dto::{self, Tag, Timestamp};
use s3s::{S3Result, s3_error};

/// Parses `x-amz-tagging` (`k1=v1&k2=v2`, URL-encoded).
pub fn tags_from_header(header: Option<&str>) -> S3Result<Vec<(String, String)>> {
    let Some(h) = header.filter(|h| !h.is_empty()) else { return Ok(Vec::new()) };
    let decode = |s: &str| {
        urlencoding::decode(&s.replace('+', " "))
            .map(|c| c.into_owned())
            .map_err(|_| s3_error!(InvalidArgument, "x-amz-tagging is not valid URL encoding"))
    };
    h.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

pub fn tags_from_dto(set: dto::TagSet) -> S3Result<Vec<(String, String)>> {
    set.into_iter()
        .map(|t| match (t.key, t.value) {
            (Some(k), v) => Ok((k, v.unwrap_or_default())),
            (None, _) => Err(s3_error!(MalformedXML, "every Tag needs a Key")),
        })
        .collect()
}

pub fn tags_to_dto(tags: &[(String, String)]) -> dto::TagSet {
    tags.iter().map(|(k, v)| Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect()
}

fn mode_from(s: &str) -> S3Result<RetentionMode> {
    match s {
        dto::ObjectLockRetentionMode::GOVERNANCE => Ok(RetentionMode::Governance),
        dto::ObjectLockRetentionMode::COMPLIANCE => Ok(RetentionMode::Compliance),
        other => Err(s3_error!(InvalidArgument, "Unknown wormMode directive {other:?}")),
    }
}

pub fn mode_name(m: RetentionMode) -> &'static str {
    match m {
        RetentionMode::Governance => dto::ObjectLockRetentionMode::GOVERNANCE,
        RetentionMode::Compliance => dto::ObjectLockRetentionMode::COMPLIANCE,
    }
}

fn nanos(t: &Timestamp) -> UnixNanos {
    let ns = time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos();
    UnixNanos(i64::try_from(ns).unwrap_or(i64::MAX))
}

/// A retention to set: the date must lie in the future.
fn retention(mode: &str, until: &Timestamp) -> S3Result<Retention> {
    let until = nanos(until);
    if until <= UnixNanos::now() {
        return Err(s3_error!(InvalidArgument, "The retain until date must be in the future!"));
    }
    Ok(Retention { mode: mode_from(mode)?, until })
}

/// The lock asked for by PUT, COPY or CreateMultipartUpload headers.
pub fn lock_from_headers(
    mode: Option<&dto::ObjectLockMode>,
    until: Option<&Timestamp>,
    legal_hold: Option<&dto::ObjectLockLegalHoldStatus>,
) -> S3Result<Option<LockState>> {
    let retention = match (mode, until) {
        (Some(m), Some(u)) => Some(retention(m.as_str(), u)?),
        (None, None) => None,
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    };
    let legal_hold = legal_hold.is_some_and(|h| h.as_str() == dto::ObjectLockLegalHoldStatus::ON);
    Ok((retention.is_some() || legal_hold).then_some(LockState { retention, legal_hold }))
}

pub fn retention_from_dto(r: Option<dto::ObjectLockRetention>) -> S3Result<Option<Retention>> {
    match r {
        Some(dto::ObjectLockRetention { mode: Some(m), retain_until_date: Some(u) }) => {
            Ok(Some(retention(m.as_str(), &u)?))
        }
        Some(dto::ObjectLockRetention { mode: None, retain_until_date: None }) | None => Ok(None),
        Some(_) => Err(s3_error!(MalformedXML, "Retention needs both Mode and RetainUntilDate")),
    }
}

pub fn default_retention_from_dto(config: Option<dto::ObjectLockConfiguration>) -> S3Result<Option<DefaultRetention>> {
    let Some(config) = config else { return Ok(None) };
    if config.object_lock_enabled.as_ref().is_some_and(|e| e.as_str() != dto::ObjectLockEnabled::ENABLED) {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    let Some(d) = config.rule.and_then(|r| r.default_retention) else { return Ok(None) };
    let mode = mode_from(d.mode.as_ref().map(|m| m.as_str()).unwrap_or_default())?;
    let period = match (d.days, d.years) {
        (Some(days), None) if days > 0 => Period::Days(days as u32),
        (None, Some(years)) if years > 0 => Period::Years(years as u32),
        _ => return Err(s3_error!(MalformedXML, "DefaultRetention needs either a positive Days or Years, not both")),
    };
    DefaultRetention::new(mode, period).map(Some).map_err(crate::convert::s3_err)
}
