//! Block Public Access: Put/Get/DeletePublicAccessBlock. On (all four
//! settings) for every new bucket; the front reads it with the bucket policy.

use coffre_core::meta::{BucketChange, PublicAccessBlock};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::CoffreS3;
use crate::error::{custom_error, s3_err};
use crate::request;

impl CoffreS3 {
    pub(super) async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let who = self.who(&req)?;
        let name = request::bucket(&req.input.bucket)?;
        let c = req.input.public_access_block_configuration;
        let block = PublicAccessBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        self.service.change_bucket(&who, &name, BucketChange::PublicAccess(Some(block))).await.map_err(s3_err)?;
        Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
    }

    pub(super) async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let Some(b) = bucket.public_access else {
            return Err(custom_error(
                "NoSuchPublicAccessBlockConfiguration",
                http::StatusCode::NOT_FOUND,
                "The public access block configuration was not found",
            ));
        };
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(b.block_public_acls),
                ignore_public_acls: Some(b.ignore_public_acls),
                block_public_policy: Some(b.block_public_policy),
                restrict_public_buckets: Some(b.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let who = self.who(&req)?;
        let name = request::bucket(&req.input.bucket)?;
        self.service.change_bucket(&who, &name, BucketChange::PublicAccess(None)).await.map_err(s3_err)?;
        let mut response = S3Response::new(DeletePublicAccessBlockOutput {});
        response.status = Some(http::StatusCode::NO_CONTENT);
        Ok(response)
    }
}
