//! Lifecycle: the bucket's expiration rules, and their S3 XML form. The
//! rules themselves run in the object service.

use coffre_core::lifecycle::{Expiration, Filter, LifecycleConfig, Rule};
use coffre_core::meta::BucketChange;
use coffre_core::types::UnixNanos;
use s3s::dto::{self, ExpirationStatus, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter, *};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use super::tagging::{tags_from_dto, tags_to_dto};
use crate::error::s3_err;
use crate::{request, response};

impl CoffreS3 {
    pub(super) async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let config = config_from_dto(input.lifecycle_configuration)?;
        let change = BucketChange::Lifecycle(Some(config));
        self.service.change_bucket(&who, &request::bucket(&input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
    }

    pub(super) async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let Some(config) = bucket.lifecycle else {
            return Err(s3_error!(NoSuchLifecycleConfiguration, "The lifecycle configuration does not exist"));
        };
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(config_to_dto(&config)),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let who = self.who(&req)?;
        let bucket = request::bucket(&req.input.bucket)?;
        self.service.change_bucket(&who, &bucket, BucketChange::Lifecycle(None)).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }
}

fn days(n: Option<i32>, what: &str) -> S3Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(d) if d > 0 => Ok(Some(d as u32)),
        Some(_) => Err(s3_error!(InvalidArgument, "'{what}' must be a positive integer")),
    }
}

fn filter_from(rule: &LifecycleRule) -> S3Result<Filter> {
    let unsupported = || s3_error!(NotImplemented, "object size filters are not supported yet");
    match &rule.filter {
        None => Ok(Filter { prefix: rule.prefix.clone().unwrap_or_default(), tags: Vec::new() }),
        Some(f) if f.object_size_greater_than.is_some() || f.object_size_less_than.is_some() => Err(unsupported()),
        Some(LifecycleRuleFilter { and: Some(and), .. }) => {
            if and.object_size_greater_than.is_some() || and.object_size_less_than.is_some() {
                return Err(unsupported());
            }
            let tags = tags_from_dto(and.tags.clone().unwrap_or_default())?;
            Ok(Filter { prefix: and.prefix.clone().unwrap_or_default(), tags })
        }
        Some(f) => {
            let tags = f.tag.clone().map(|t| tags_from_dto(vec![t])).transpose()?.unwrap_or_default();
            Ok(Filter { prefix: f.prefix.clone().unwrap_or_default(), tags })
        }
    }
}

pub fn config_from_dto(config: Option<dto::BucketLifecycleConfiguration>) -> S3Result<LifecycleConfig> {
    let config = config.ok_or_else(|| s3_error!(MalformedXML, "a LifecycleConfiguration is required"))?;
    let mut rules = Vec::with_capacity(config.rules.len());
    for (i, r) in config.rules.iter().enumerate() {
        if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
            || r.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
        {
            return Err(s3_error!(NotImplemented, "storage-class transitions are not supported"));
        }
        let expiration = match &r.expiration {
            Some(e) => match (e.days, &e.date) {
                (Some(d), None) => days(Some(d), "Days")?.map(Expiration::Days),
                (None, Some(date)) => {
                    let t = time::OffsetDateTime::from(date.clone());
                    if t.unix_timestamp().rem_euclid(86_400) != 0 || t.nanosecond() != 0 {
                        return Err(s3_error!(InvalidArgument, "'Date' must be at midnight GMT"));
                    }
                    Some(Expiration::Date(UnixNanos(i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX))))
                }
                (None, None) => None,
                _ => return Err(s3_error!(MalformedXML, "Expiration takes Days or Date, not both")),
            },
            None => None,
        };
        let enabled = match r.status.as_str() {
            ExpirationStatus::ENABLED => true,
            ExpirationStatus::DISABLED => false,
            _ => return Err(s3_error!(MalformedXML, "a rule's Status must be Enabled or Disabled")),
        };
        if r.id.as_ref().is_some_and(|id| id.chars().count() > 255) {
            return Err(s3_error!(InvalidArgument, "ID length should not exceed allowed limit of 255"));
        }
        let filter = filter_from(r)?;
        if r.abort_incomplete_multipart_upload.is_some() && !filter.tags.is_empty() {
            return Err(s3_error!(
                InvalidRequest,
                "Tag-based filter cannot be used with AbortIncompleteMultipartUpload action"
            ));
        }
        rules.push(Rule {
            id: r.id.clone().unwrap_or_else(|| format!("rule-{}", i + 1)),
            enabled,
            filter,
            expiration,
            expired_object_delete_marker: r
                .expiration
                .as_ref()
                .and_then(|e| e.expired_object_delete_marker)
                .unwrap_or(false),
            noncurrent_days: days(
                r.noncurrent_version_expiration.as_ref().and_then(|n| n.noncurrent_days),
                "NoncurrentDays",
            )?,
            abort_incomplete_days: days(
                r.abort_incomplete_multipart_upload.as_ref().and_then(|a| a.days_after_initiation),
                "DaysAfterInitiation",
            )?,
        });
    }
    Ok(LifecycleConfig { rules })
}

pub fn config_to_dto(config: &LifecycleConfig) -> dto::LifecycleRules {
    config
        .rules
        .iter()
        .map(|r| {
            let filter = if r.filter.tags.is_empty() {
                LifecycleRuleFilter { prefix: Some(r.filter.prefix.clone()), ..Default::default() }
            } else {
                LifecycleRuleFilter {
                    and: Some(LifecycleRuleAndOperator {
                        prefix: Some(r.filter.prefix.clone()),
                        tags: Some(tags_to_dto(&r.filter.tags)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            };
            let expiration =
                (r.expiration.is_some() || r.expired_object_delete_marker).then(|| dto::LifecycleExpiration {
                    days: match r.expiration {
                        Some(Expiration::Days(d)) => Some(d as i32),
                        _ => None,
                    },
                    date: match r.expiration {
                        Some(Expiration::Date(t)) => Some(response::timestamp(t)),
                        _ => None,
                    },
                    expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
                });
            LifecycleRule {
                id: Some(r.id.clone()),
                status: ExpirationStatus::from_static(if r.enabled {
                    ExpirationStatus::ENABLED
                } else {
                    ExpirationStatus::DISABLED
                }),
                filter: Some(filter),
                expiration,
                noncurrent_version_expiration: r.noncurrent_days.map(|d| dto::NoncurrentVersionExpiration {
                    noncurrent_days: Some(d as i32),
                    newer_noncurrent_versions: None,
                }),
                abort_incomplete_multipart_upload: r
                    .abort_incomplete_days
                    .map(|d| dto::AbortIncompleteMultipartUpload { days_after_initiation: Some(d as i32) }),
                prefix: None,
                transitions: None,
                noncurrent_version_transitions: None,
            }
        })
        .collect()
}
