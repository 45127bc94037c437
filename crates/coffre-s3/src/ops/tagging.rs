//! Tags: on object versions and on buckets, and their S3 wire forms (the
//! `x-amz-tagging` header and the XML tag set).

use coffre_core::meta::{BucketChange, VersionChange};
use s3s::dto::{self, Tag, *};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::request;

impl CoffreS3 {
    pub(super) async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let change = VersionChange::Tags(tags_from_dto(input.tagging.tag_set)?);
        let id =
            self.change_version(&who, &input.bucket, &input.key, input.version_id.as_deref(), change, false).await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id: Some(id) }))
    }

    pub(super) async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let version = request::version(input.version_id.as_deref())?;
        let (bucket, key) = (request::bucket(&input.bucket)?, request::key(&input.key)?);
        let object = self.service.object_version(&who, &bucket, &key, version.as_ref()).await.map_err(s3_err)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tags_to_dto(&object.meta.tags),
            version_id: Some(object.meta.version_id.as_str().to_owned()),
        }))
    }

    pub(super) async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let change = VersionChange::Tags(Vec::new());
        let id =
            self.change_version(&who, &input.bucket, &input.key, input.version_id.as_deref(), change, false).await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput { version_id: Some(id) }))
    }

    pub(super) async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let change = BucketChange::Tags(tags_from_dto(input.tagging.tag_set)?);
        self.service.change_bucket(&who, &request::bucket(&input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketTaggingOutput {}))
    }

    pub(super) async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        if bucket.tags.is_empty() {
            return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
        }
        Ok(S3Response::new(GetBucketTaggingOutput { tag_set: tags_to_dto(&bucket.tags) }))
    }

    pub(super) async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let who = self.who(&req)?;
        let bucket = request::bucket(&req.input.bucket)?;
        self.service.change_bucket(&who, &bucket, BucketChange::Tags(Vec::new())).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketTaggingOutput {}))
    }
}

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
