//! Which IAM actions an S3 operation needs, as AWS's authorization reference
//! lists them: the operation's own action, its `...Version` form when a
//! version is named, and the extra permissions some headers ask for.

use http::HeaderMap;

/// The action of an operation (by s3s's name for it).
fn base(operation: &str) -> &'static str {
    match operation {
        "PutObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "CopyObject"
        | "UploadPartCopy" => "s3:PutObject",
        "GetObject" | "HeadObject" => "s3:GetObject",
        "GetObjectAttributes" => "s3:GetObjectAttributes",
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        "ListParts" => "s3:ListMultipartUploadParts",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListBuckets" => "s3:ListAllMyBuckets",
        "CreateBucket" => "s3:CreateBucket",
        "DeleteBucket" => "s3:DeleteBucket",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "GetBucketVersioning" => "s3:GetBucketVersioning",
        "PutBucketVersioning" => "s3:PutBucketVersioning",
        "GetBucketTagging" => "s3:GetBucketTagging",
        "PutBucketTagging" | "DeleteBucketTagging" => "s3:PutBucketTagging",
        "GetObjectTagging" => "s3:GetObjectTagging",
        "PutObjectTagging" => "s3:PutObjectTagging",
        "DeleteObjectTagging" => "s3:DeleteObjectTagging",
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "s3:PutLifecycleConfiguration",
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "GetBucketPolicy" => "s3:GetBucketPolicy",
        "PutBucketPolicy" => "s3:PutBucketPolicy",
        "DeleteBucketPolicy" => "s3:DeleteBucketPolicy",
        "GetBucketPolicyStatus" => "s3:GetBucketPolicyStatus",
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "GetBucketOwnershipControls" => "s3:GetBucketOwnershipControls",
        "PutBucketOwnershipControls" | "DeleteBucketOwnershipControls" => "s3:PutBucketOwnershipControls",
        "GetBucketAcl" => "s3:GetBucketAcl",
        "PutBucketAcl" => "s3:PutBucketAcl",
        "GetObjectAcl" => "s3:GetObjectAcl",
        "PutObjectAcl" => "s3:PutObjectAcl",
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
        "GetObjectRetention" => "s3:GetObjectRetention",
        "PutObjectRetention" => "s3:PutObjectRetention",
        "GetObjectLegalHold" => "s3:GetObjectLegalHold",
        "PutObjectLegalHold" => "s3:PutObjectLegalHold",
        "GetBucketLogging" => "s3:GetBucketLogging",
        "PutBucketLogging" => "s3:PutBucketLogging",
        // An operation this table does not know needs a permission no
        // policy grants by name: only `s3:*` (or `*`) covers it.
        _ => "s3:UnlistedOperation",
    }
}

/// Actions whose `...Version` form applies when the request names a version.
const VERSIONED: [&str; 7] = [
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:GetObjectTagging",
    "s3:PutObjectTagging",
    "s3:DeleteObjectTagging",
    "s3:GetObjectAcl",
    "s3:GetObjectAttributes",
];

/// Every action the request needs; all must be allowed.
pub(crate) fn required(operation: &str, version_named: bool, headers: &HeaderMap) -> Vec<String> {
    let action = base(operation);
    let mut needed =
        vec![if version_named && VERSIONED.contains(&action) { format!("{action}Version") } else { action.to_owned() }];
    let header_true = |name: &str| headers.get(name).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let governed = matches!(operation, "DeleteObject" | "DeleteObjects" | "PutObjectRetention");
    if governed && header_true("x-amz-bypass-governance-retention") {
        needed.push("s3:BypassGovernanceRetention".to_owned());
    }
    let writes = matches!(operation, "PutObject" | "CopyObject" | "CreateMultipartUpload");
    if writes && headers.contains_key("x-amz-tagging") {
        needed.push("s3:PutObjectTagging".to_owned());
    }
    if writes
        && (headers.contains_key("x-amz-object-lock-mode")
            || headers.contains_key("x-amz-object-lock-retain-until-date"))
    {
        needed.push("s3:PutObjectRetention".to_owned());
    }
    if writes && headers.contains_key("x-amz-object-lock-legal-hold") {
        needed.push("s3:PutObjectLegalHold".to_owned());
    }
    needed
}

/// Actions only the bucket's own tenant may take, whatever its policy says
/// (AWS: the policy and its guards belong to the owner's account).
pub(crate) fn owner_only(action: &str) -> bool {
    matches!(
        action,
        "s3:GetBucketPolicy"
            | "s3:PutBucketPolicy"
            | "s3:DeleteBucketPolicy"
            | "s3:GetBucketPublicAccessBlock"
            | "s3:PutBucketPublicAccessBlock"
    )
}

/// Actions the owner's tenant can always take, even against an explicit
/// deny in its own bucket policy, so that no policy locks its owner out.
pub(crate) fn never_locked_out(action: &str) -> bool {
    matches!(action, "s3:GetBucketPolicy" | "s3:PutBucketPolicy" | "s3:DeleteBucketPolicy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_headers_add_their_actions() {
        let mut headers = HeaderMap::new();
        assert_eq!(required("GetObject", true, &headers), ["s3:GetObjectVersion"]);
        assert_eq!(required("HeadBucket", false, &headers), ["s3:ListBucket"]);
        headers.insert("x-amz-bypass-governance-retention", http::HeaderValue::from_static("true"));
        headers.insert("x-amz-tagging", http::HeaderValue::from_static("a=b"));
        assert_eq!(
            required("DeleteObject", true, &headers),
            ["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"]
        );
        assert_eq!(required("PutObject", false, &headers), ["s3:PutObject", "s3:PutObjectTagging"]);
        assert_eq!(required("SomethingNew", false, &headers), ["s3:UnlistedOperation"]);
        for op in [
            "GetBucketPolicy",
            "PutBucketPolicy",
            "DeleteBucketPolicy",
            "GetPublicAccessBlock",
            "PutPublicAccessBlock",
            "DeletePublicAccessBlock",
        ] {
            assert!(required(op, false, &headers).iter().all(|a| owner_only(a)), "{op} is the owner's");
        }
    }
}
