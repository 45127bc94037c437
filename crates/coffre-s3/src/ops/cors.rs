//! Bucket CORS configuration: Put/Get/DeleteBucketCors and their S3 XML form.
//! The rules are answered in the front ([`crate::cors`]), before s3s.

use coffre_core::cors::{CorsConfig, CorsError, CorsRule, RuleInput};
use coffre_core::meta::BucketChange;
use s3s::dto::{self, *};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::request;

impl CoffreS3 {
    pub(super) async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let config = config_from_dto(input.cors_configuration)?;
        let change = BucketChange::Cors(Some(config));
        self.service.change_bucket(&who, &request::bucket(&input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(super) async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let Some(config) = bucket.cors else {
            return Err(s3_error!(NoSuchCORSConfiguration, "The CORS configuration does not exist"));
        };
        Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(config.rules().iter().map(rule_to_dto).collect()) }))
    }

    pub(super) async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let who = self.who(&req)?;
        let bucket = request::bucket(&req.input.bucket)?;
        self.service.change_bucket(&who, &bucket, BucketChange::Cors(None)).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    }
}

fn config_from_dto(config: dto::CORSConfiguration) -> S3Result<CorsConfig> {
    let rules = config
        .cors_rules
        .into_iter()
        .map(|r| RuleInput {
            id: r.id,
            methods: r.allowed_methods,
            origins: r.allowed_origins,
            allowed_headers: r.allowed_headers.unwrap_or_default(),
            expose_headers: r.expose_headers.unwrap_or_default(),
            max_age_seconds: r.max_age_seconds,
        })
        .collect();
    CorsConfig::new(rules).map_err(|e| match e {
        CorsError::Malformed(why) => S3Error::with_message(
            S3ErrorCode::MalformedXML,
            format!("The XML you provided was not well-formed or did not validate against our published schema: {why}"),
        ),
        CorsError::Invalid(why) => S3Error::with_message(S3ErrorCode::InvalidRequest, why),
    })
}

fn rule_to_dto(r: &CorsRule) -> dto::CORSRule {
    let listed = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    dto::CORSRule {
        id: r.id.clone(),
        allowed_methods: r.methods.iter().map(|m| m.as_str().to_owned()).collect(),
        allowed_origins: r.origins.clone(),
        allowed_headers: listed(&r.allowed_headers),
        expose_headers: listed(&r.expose_headers),
        max_age_seconds: r.max_age_seconds.and_then(|s| i32::try_from(s).ok()),
    }
}
