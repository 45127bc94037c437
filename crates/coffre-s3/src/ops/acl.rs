//! Object ownership and ACLs. Coffre enforces bucket-owner ownership, as AWS
//! does for new buckets: the bucket owner owns every object, access is
//! governed by policies, and ACLs other than `private` are refused with
//! AWS's error. Get*Acl answer the one grant that holds: the owner's.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::{request, response};

/// Canned ACLs that grant nothing beyond the owner, so enforced ownership accepts them.
const OWNER_ONLY: [&str; 2] = ["private", "bucket-owner-full-control"];

/// Refuses a request that sets an ACL other than the owner's (`x-amz-acl`,
/// `x-amz-grant-*`), before anything is read or stored: `403 AccessDenied`
/// where the bucket's BlockPublicAcls is on, as AWS answers then.
pub(crate) fn refuse_acl_headers(operation: &str, headers: &http::HeaderMap, block_public_acls: bool) -> S3Result<()> {
    let canned = headers.get("x-amz-acl").map(|v| v.to_str().unwrap_or("?"));
    if canned_owner_only(canned) && !has_grants(headers) {
        return Ok(());
    }
    Err(acl_error(operation, block_public_acls))
}

/// Why an ACL beyond the owner's is refused, in AWS's words.
fn acl_error(operation: &str, block_public_acls: bool) -> s3s::S3Error {
    if block_public_acls {
        return s3_error!(AccessDenied, "Access Denied: the bucket's Block Public Access settings block public ACLs");
    }
    if operation == "CreateBucket" {
        return s3_error!(
            InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
        );
    }
    s3_error!(AccessControlListNotSupported, "The bucket does not allow ACLs")
}

fn owner_grants(owner: &str) -> (Option<Grants>, Option<Owner>) {
    let grantee = Grantee {
        display_name: Some(owner.to_owned()),
        id: Some(owner.to_owned()),
        type_: Type::from_static(Type::CANONICAL_USER),
        email_address: None,
        uri: None,
    };
    let grant = Grant { grantee: Some(grantee), permission: Some(Permission::from_static(Permission::FULL_CONTROL)) };
    (Some(vec![grant]), Some(response::owner(owner)))
}

/// An ACL document that grants the owner only: what `private` means.
fn owner_only(policy: &AccessControlPolicy, owner: &str) -> bool {
    policy.grants.iter().flatten().all(|g| {
        g.grantee.as_ref().is_some_and(|e| e.id.as_deref() == Some(owner))
            && g.permission.as_ref().is_some_and(|p| p.as_str() == Permission::FULL_CONTROL)
    })
}

impl CoffreS3 {
    pub(super) async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let (grants, owner) = owner_grants(bucket.owner.as_str());
        Ok(S3Response::new(GetBucketAclOutput { grants, owner }))
    }

    pub(super) async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let canned = req.input.acl.as_ref().map(|a| a.as_str());
        check_acl(&bucket, canned, req.input.access_control_policy.as_ref(), &req.headers)?;
        Ok(S3Response::new(PutBucketAclOutput {}))
    }

    pub(super) async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = self.service.bucket(&who, &request::bucket(&input.bucket)?).await.map_err(s3_err)?;
        let (key, version) = (request::key(&input.key)?, request::version(input.version_id.as_deref())?);
        self.service.object_version(&who, &bucket.name, &key, version.as_ref()).await.map_err(s3_err)?;
        let (grants, owner) = owner_grants(bucket.owner.as_str());
        Ok(S3Response::new(GetObjectAclOutput { grants, owner, request_charged: None }))
    }

    pub(super) async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let who = self.who(&req)?;
        let bucket = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let canned = req.input.acl.as_ref().map(|a| a.as_str());
        check_acl(&bucket, canned, req.input.access_control_policy.as_ref(), &req.headers)?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(super) async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let who = self.who(&req)?;
        self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let rule = OwnershipControlsRule {
            object_ownership: ObjectOwnership::from_static(ObjectOwnership::BUCKET_OWNER_ENFORCED),
        };
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
        }))
    }

    pub(super) async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let who = self.who(&req)?;
        self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        let enforced =
            |r: &OwnershipControlsRule| r.object_ownership.as_str() == ObjectOwnership::BUCKET_OWNER_ENFORCED;
        if !req.input.ownership_controls.rules.iter().all(enforced) {
            return Err(s3_error!(
                InvalidArgument,
                "Coffre enforces bucket-owner ownership: ObjectOwnership must be BucketOwnerEnforced"
            ));
        }
        Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
    }
}

/// PutBucketAcl and PutObjectAcl: only an ACL that grants the owner alone
/// (canned, as a document, and no `x-amz-grant-*`) is accepted.
fn check_acl(
    bucket: &coffre_core::meta::BucketRecord,
    canned: Option<&str>,
    document: Option<&AccessControlPolicy>,
    headers: &http::HeaderMap,
) -> S3Result<()> {
    let canned_ok = canned_owner_only(canned);
    let document_ok = document.is_none_or(|p| owner_only(p, bucket.owner.as_str()));
    if canned_ok && document_ok && !has_grants(headers) {
        return Ok(());
    }
    Err(acl_error("PutAcl", bucket.public_access.is_some_and(|b| b.block_public_acls)))
}

/// No canned ACL, or one that grants nothing beyond the owner.
fn canned_owner_only(canned: Option<&str>) -> bool {
    canned.is_none_or(|c| OWNER_ONLY.contains(&c))
}

fn has_grants(headers: &http::HeaderMap) -> bool {
    headers.keys().any(|k| k.as_str().starts_with("x-amz-grant-"))
}
