//! Object Lock (WORM): the bucket's lock configuration, each version's
//! retention and legal hold, and their S3 wire forms (headers and XML).

use coffre_core::lock::{DefaultRetention, LockState, Period, Retention, RetentionMode};
use coffre_core::meta::{BucketChange, VersionChange};
use coffre_core::types::{Principal, UnixNanos};
use s3s::dto::{self, *};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::request;
use crate::response;

impl CoffreS3 {
    /// The version whose lock state is asked for, in a bucket with Object Lock.
    async fn locked_version(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> S3Result<coffre_core::meta::ObjectVersion> {
        let (bucket, key, version) = (request::bucket(bucket)?, request::key(key)?, request::version(version)?);
        let record = self.service.bucket(who, &bucket).await.map_err(s3_err)?;
        if record.object_lock.is_none() {
            return Err(s3_err(coffre_core::Error::NoLockConfiguration));
        }
        self.service.object_version(who, &bucket, &key, version.as_ref()).await.map_err(s3_err)
    }

    pub(super) async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = request::bucket(&input.bucket)?;
        let record = self.service.bucket(&who, &bucket).await.map_err(s3_err)?;
        if record.object_lock.is_none() {
            return Err(s3_error!(
                InvalidBucketState,
                "Object Lock configuration cannot be enabled on existing buckets: create the bucket with Object Lock"
            ));
        }
        let default = default_retention_from_dto(input.object_lock_configuration)?;
        self.service.change_bucket(&who, &bucket, BucketChange::DefaultRetention(default)).await.map_err(s3_err)?;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(super) async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let Some(config) = bucket.object_lock else {
            return Err(s3_error!(
                ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket"
            ));
        };
        let rule = config.default_retention.map(|d| ObjectLockRule {
            default_retention: Some(dto::DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from_static(mode_name(d.mode))),
                days: match d.period {
                    Period::Days(n) => Some(n as i32),
                    Period::Years(_) => None,
                },
                years: match d.period {
                    Period::Years(n) => Some(n as i32),
                    Period::Days(_) => None,
                },
            }),
        });
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
                rule,
            }),
        }))
    }

    pub(super) async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let change = VersionChange::Retention(retention_from_dto(input.retention)?);
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        self.change_version(&who, &input.bucket, &input.key, input.version_id.as_deref(), change, bypass).await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let object = self.locked_version(&who, &input.bucket, &input.key, input.version_id.as_deref()).await?;
        let Some(r) = object.meta.lock.retention else {
            return Err(s3_error!(
                NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration"
            ));
        };
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from_static(mode_name(r.mode))),
                retain_until_date: Some(response::timestamp(r.until)),
            }),
        }))
    }

    pub(super) async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let on = match input.legal_hold.and_then(|h| h.status).as_ref().map(ObjectLockLegalHoldStatus::as_str) {
            Some(ObjectLockLegalHoldStatus::ON) => true,
            Some(ObjectLockLegalHoldStatus::OFF) => false,
            _ => return Err(s3_error!(MalformedXML, "LegalHold Status must be ON or OFF")),
        };
        let change = VersionChange::LegalHold(on);
        self.change_version(&who, &input.bucket, &input.key, input.version_id.as_deref(), change, false).await?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let object = self.locked_version(&who, &input.bucket, &input.key, input.version_id.as_deref()).await?;
        let status =
            if object.meta.lock.legal_hold { ObjectLockLegalHoldStatus::ON } else { ObjectLockLegalHoldStatus::OFF };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) }),
        }))
    }
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
    DefaultRetention::new(mode, period).map(Some).map_err(s3_err)
}
