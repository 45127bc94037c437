//! Names the operation, bucket and key of a request that s3s refused before
//! routing it (a bad signature, an unknown access key), so that the logs and
//! the audit trail say what was attempted, not "Unknown".

use http::Method;

/// The S3 operation a request asks for, read from its method, path and query
/// the way S3 routes them. Coarse for sub-resources: it names the common
/// operations and falls back to `METHOD Bucket` / `METHOD Object`.
pub fn infer(
    method: &Method,
    path: &str,
    query: &str,
    copy: bool,
    host_bucket: Option<&str>,
) -> (String, Option<String>, Option<String>) {
    let decoded = urlencoding::decode(path).map(|p| p.into_owned()).unwrap_or_else(|_| path.to_owned());
    let trimmed = decoded.trim_start_matches('/');
    let (bucket, key) = match host_bucket {
        Some(b) => (Some(b.to_owned()), Some(trimmed.to_owned()).filter(|k| !k.is_empty())),
        None => match trimmed.split_once('/') {
            Some((b, k)) => (Some(b.to_owned()), Some(k.to_owned()).filter(|k| !k.is_empty())),
            None => (Some(trimmed.to_owned()).filter(|b| !b.is_empty()), None),
        },
    };
    let has = |name: &str| query.split('&').any(|kv| kv.split('=').next() == Some(name));
    let op = match (bucket.is_some(), key.is_some()) {
        (false, _) => match *method {
            Method::GET => "ListBuckets",
            _ => "Unknown",
        },
        (true, false) => bucket_op(method, &has),
        (true, true) => object_op(method, &has, copy),
    };
    (op.to_owned(), bucket, key)
}

fn bucket_op(method: &Method, has: &dyn Fn(&str) -> bool) -> &'static str {
    const SUBRESOURCES: [(&str, &str, &str, &str); 7] = [
        ("versioning", "GetBucketVersioning", "PutBucketVersioning", "-"),
        ("tagging", "GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"),
        ("lifecycle", "GetBucketLifecycleConfiguration", "PutBucketLifecycleConfiguration", "DeleteBucketLifecycle"),
        ("encryption", "GetBucketEncryption", "PutBucketEncryption", "DeleteBucketEncryption"),
        ("object-lock", "GetObjectLockConfiguration", "PutObjectLockConfiguration", "-"),
        ("policy", "GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
        ("location", "GetBucketLocation", "-", "-"),
    ];
    for (name, get, put, delete) in SUBRESOURCES {
        if has(name) {
            return match *method {
                Method::GET => get,
                Method::PUT => put,
                Method::DELETE => delete,
                _ => "Unknown",
            };
        }
    }
    match *method {
        Method::GET if has("versions") => "ListObjectVersions",
        Method::GET if has("uploads") => "ListMultipartUploads",
        Method::GET if has("list-type") => "ListObjectsV2",
        Method::GET => "ListObjects",
        Method::HEAD => "HeadBucket",
        Method::PUT => "CreateBucket",
        Method::DELETE => "DeleteBucket",
        Method::POST if has("delete") => "DeleteObjects",
        // An HTML form upload, refused before routing (guards).
        Method::POST => "PostObject",
        _ => "Unknown",
    }
}

fn object_op(method: &Method, has: &dyn Fn(&str) -> bool, copy: bool) -> &'static str {
    match *method {
        Method::GET if has("tagging") => "GetObjectTagging",
        Method::GET if has("retention") => "GetObjectRetention",
        Method::GET if has("legal-hold") => "GetObjectLegalHold",
        Method::GET if has("uploadId") => "ListParts",
        Method::GET => "GetObject",
        Method::HEAD => "HeadObject",
        Method::PUT if has("tagging") => "PutObjectTagging",
        Method::PUT if has("retention") => "PutObjectRetention",
        Method::PUT if has("legal-hold") => "PutObjectLegalHold",
        Method::PUT if has("uploadId") && copy => "UploadPartCopy",
        Method::PUT if has("uploadId") => "UploadPart",
        Method::PUT if copy => "CopyObject",
        Method::PUT => "PutObject",
        Method::DELETE if has("tagging") => "DeleteObjectTagging",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::DELETE => "DeleteObject",
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if has("uploadId") => "CompleteMultipartUpload",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, path: &str, query: &str) -> (String, Option<String>, Option<String>) {
        infer(&method, path, query, false, None)
    }

    #[test]
    fn common_operations_are_named() {
        assert_eq!(op(Method::GET, "/", "").0, "ListBuckets");
        assert_eq!(op(Method::PUT, "/b", ""), ("CreateBucket".into(), Some("b".into()), None));
        assert_eq!(op(Method::PUT, "/b/a%20b/c", ""), ("PutObject".into(), Some("b".into()), Some("a b/c".into())));
        assert_eq!(op(Method::GET, "/b", "list-type=2&prefix=x").0, "ListObjectsV2");
        assert_eq!(op(Method::POST, "/b", "delete").0, "DeleteObjects");
        assert_eq!(op(Method::POST, "/b", "").0, "PostObject");
        assert_eq!(op(Method::PUT, "/b/k", "partNumber=1&uploadId=u").0, "UploadPart");
        assert_eq!(op(Method::PUT, "/b", "versioning").0, "PutBucketVersioning");
        assert_eq!(infer(&Method::PUT, "/b/k", "", true, None).0, "CopyObject");
        assert_eq!(infer(&Method::GET, "/k", "", false, Some("vb")).1.as_deref(), Some("vb"));
    }
}
