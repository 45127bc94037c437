//! Buckets: create (with Object Lock and a residency policy), head, list,
//! location, delete, and the versioning configuration.

use coffre_core::meta::{BucketChange, Versioning};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::request;
use crate::response::{self, owner};

impl CoffreS3 {
    pub(super) async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let who = self.who(&req)?;
        let name = request::bucket(&req.input.bucket)?;
        if let Some(loc) = req.input.create_bucket_configuration.as_ref().and_then(|c| c.location_constraint.as_ref())
            && loc.as_str() != self.region
        {
            return Err(s3_error!(
                InvalidLocationConstraint,
                "The specified location-constraint is not valid: this server's region is {}",
                self.region
            ));
        }
        let object_lock = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
        let residency = match req.headers.get(request::RESIDENCY_POLICY_HEADER) {
            Some(value) => Some(request::residency_policy(value)?),
            None => None,
        };
        self.service.create_bucket_with(&who, name.clone(), object_lock, residency).await.map_err(s3_err)?;
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }

    pub(super) async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        let who = self.who(&req)?;
        self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() }))
    }

    pub(super) async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let who = self.who(&req)?;
        self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        // us-east-1 is spelled as an empty constraint, as AWS does.
        let location = (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
    }

    pub(super) async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let who = self.who(&req)?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let buckets = self.service.list_buckets(&who).await.map_err(s3_err)?;
        let buckets = buckets
            .into_iter()
            .filter(|b| b.name.as_str().starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name.to_string()),
                creation_date: Some(response::timestamp(b.created)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(who.access_key.as_str())),
            prefix: req.input.prefix,
            continuation_token: None,
        }))
    }

    pub(super) async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let who = self.who(&req)?;
        self.service.delete_bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(super) async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        // A bucket that never had versioning answers an empty configuration.
        let status = match bucket.versioning {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
        };
        Ok(S3Response::new(GetBucketVersioningOutput { status, ..Default::default() }))
    }

    pub(super) async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        if input.versioning_configuration.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let versioning = match input.versioning_configuration.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => return Err(s3_error!(MalformedXML, "The versioning Status must be Enabled or Suspended")),
        };
        let bucket = request::bucket(&input.bucket)?;
        self.service.change_bucket(&who, &bucket, BucketChange::Versioning(versioning)).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }
}
