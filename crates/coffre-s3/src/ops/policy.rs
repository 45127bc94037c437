//! Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus. A
//! policy is checked here, once, before it is stored; the front's
//! [`authorize`](crate::authorize) applies it to every request.

use coffre_core::meta::BucketChange;
use coffre_iam::{Policy, PolicyKind};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::request;

/// AWS's bound on a bucket policy's size.
const MAX_POLICY_BYTES: usize = 20 * 1024;

impl CoffreS3 {
    pub(super) async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let who = self.who(&req)?;
        let name = request::bucket(&req.input.bucket)?;
        let text = req.input.policy;
        let policy = checked_policy(&text, name.as_str())?;
        let bucket = self.service.bucket(&who, &name).await.map_err(s3_err)?;
        if bucket.public_access.is_some_and(|b| b.block_public_policy) && coffre_iam::is_public(&policy) {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied: this policy grants public access and the bucket's Block Public Access settings block public policies"
            ));
        }
        self.service.change_bucket(&who, &name, BucketChange::Policy(Some(text))).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketPolicyOutput::default()))
    }

    pub(super) async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let policy = bucket.policy.ok_or_else(no_policy)?;
        Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) }))
    }

    pub(super) async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let who = self.who(&req)?;
        let name = request::bucket(&req.input.bucket)?;
        self.service.change_bucket(&who, &name, BucketChange::Policy(None)).await.map_err(s3_err)?;
        let mut response = S3Response::new(DeleteBucketPolicyOutput {});
        response.status = Some(http::StatusCode::NO_CONTENT);
        Ok(response)
    }

    pub(super) async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        // No policy, or a stored one that no longer reads (it was checked when
        // put), grants nothing: not public.
        let public = bucket
            .policy
            .is_some_and(|text| Policy::parse(&text, PolicyKind::Resource).is_ok_and(|p| coffre_iam::is_public(&p)));
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus { is_public: Some(public) }),
        }))
    }
}

/// Whether a resource pattern can name this bucket or objects in it: the
/// bucket's ARN, an object ARN under it, or a wildcard pattern whose literal
/// start agrees with them (`arn:aws:s3:::*`, `arn:aws:s3:::bucket/logs/*`).
fn names_bucket(pattern: &str, bucket: &str) -> bool {
    let whole = format!("arn:aws:s3:::{bucket}");
    let inside = format!("{whole}/");
    match pattern.find(['*', '?']) {
        None => pattern == whole || pattern.starts_with(&inside),
        Some(at) => {
            let literal = &pattern[..at];
            inside.starts_with(literal) || literal.starts_with(&inside)
        }
    }
}

fn no_policy() -> s3s::S3Error {
    s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")
}

/// Reads a bucket policy and checks that it speaks of this bucket only and
/// of S3 actions only, as AWS does.
fn checked_policy(text: &str, bucket: &str) -> S3Result<Policy> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(s3_error!(MalformedPolicy, "Policies must be at most {MAX_POLICY_BYTES} bytes"));
    }
    let policy = Policy::parse(text, PolicyKind::Resource).map_err(|e| s3_error!(MalformedPolicy, "{}", e.0))?;
    for statement in &policy.statements {
        let resources = statement.resource.iter().flat_map(|r| &r.patterns);
        if let Some(bad) = resources.into_iter().find(|r| !names_bucket(r, bucket)) {
            return Err(s3_error!(MalformedPolicy, "Policy has invalid resource: {bad} is not this bucket"));
        }
        if let Some(bad) =
            statement.action.patterns.iter().find(|a| *a != "*" && !a.to_ascii_lowercase().starts_with("s3:"))
        {
            return Err(s3_error!(MalformedPolicy, "Policy has invalid action: {bad}"));
        }
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::checked_policy;

    #[test]
    fn a_policy_may_speak_of_its_own_bucket_only() {
        let make = |resource: &str, action: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":"*","Action":"{action}","Resource":"{resource}"}}}}"#
            )
        };
        assert!(checked_policy(&make("arn:aws:s3:::b/*", "s3:GetObject"), "b").is_ok());
        assert!(checked_policy(&make("arn:aws:s3:::b", "s3:ListBucket"), "b").is_ok());
        assert!(checked_policy(&make("arn:aws:s3:::bb/*", "s3:GetObject"), "b").is_err());
        assert!(checked_policy(&make("arn:aws:s3:::*", "s3:GetObject"), "b").is_ok());
        assert!(checked_policy(&make("arn:aws:s3:::b/logs/*", "s3:GetObject"), "b").is_ok());
        assert!(checked_policy(&make("arn:aws:s3:::c*", "s3:GetObject"), "b").is_err());
        assert!(checked_policy(&make("arn:aws:s3:::bb*", "s3:GetObject"), "b").is_err());
        assert!(checked_policy(&make("arn:aws:s3:::b/*", "iam:CreateUser"), "b").is_err());
        assert!(checked_policy(&"x".repeat(20 * 1024 + 1), "b").is_err());
    }
}
