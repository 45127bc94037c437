//! Server-side encryption: `x-amz-server-side-encryption*` request headers
//! into an [`SseChoice`], stored choices back into response fields, and the
//! bucket default encryption configuration (Put/Get/DeleteBucketEncryption).

use coffre_core::meta::{BucketChange, BucketEncryption, Sse};
use coffre_core::service::{CustomerKey, SseChoice};
use md5::Digest as _;
use s3s::dto::{
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, *,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::request;

impl CoffreS3 {
    pub(super) async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let config = bucket_default(input.server_side_encryption_configuration)?;
        let change = BucketChange::Encryption(Some(config));
        self.service.change_bucket(&who, &request::bucket(&input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(super) async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let who = self.who(&req)?;
        let record = self.service.bucket(&who, &request::bucket(&req.input.bucket)?).await.map_err(s3_err)?;
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(bucket_config(record.encryption.as_ref())),
        }))
    }

    /// Back to the default (SSE-S3): the data stays encrypted either way.
    pub(super) async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let who = self.who(&req)?;
        let change = BucketChange::Encryption(None);
        self.service.change_bucket(&who, &request::bucket(&req.input.bucket)?, change).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }
}

/// The customer key headers, validated: algorithm AES256, a base64 256-bit
/// key, and the base64 MD5 of that key. All three or none.
pub fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    let (algorithm, key, key_md5) = match (algorithm, key, key_md5) {
        (None, None, None) => return Ok(None),
        (Some(a), Some(k), Some(m)) => (a, k, m),
        (None, _, _) => {
            return Err(s3_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with Customer provided keys must provide a valid \
                 encryption algorithm."
            ));
        }
        (Some(_), None, _) => {
            return Err(s3_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate \
                 secret key."
            ));
        }
        (Some(_), Some(_), None) => {
            return Err(s3_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with Customer provided keys must provide the client \
                 calculated MD5 of the secret key."
            ));
        }
    };
    if algorithm != "AES256" {
        return Err(s3_error!(
            InvalidEncryptionAlgorithmError,
            "The encryption request you specified is not valid. Supported value: AES256."
        ));
    }
    let bytes = base64_simd::STANDARD.decode_to_vec(key.as_bytes()).ok();
    let Some(raw) = bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
        return Err(s3_error!(InvalidArgument, "The secret key was invalid for the specified algorithm."));
    };
    let md5 = base64_simd::STANDARD.encode_to_string(md5::Md5::digest(raw));
    if !bool::from(subtle::ConstantTimeEq::ct_eq(md5.as_bytes(), key_md5.as_bytes())) {
        return Err(s3_error!(
            InvalidArgument,
            "The calculated MD5 hash of the key did not match the hash that was provided."
        ));
    }
    Ok(Some(CustomerKey::new(raw, md5)))
}

/// What a write asks for: SSE-C, or `x-amz-server-side-encryption`, or nothing
/// (the bucket default then applies).
pub fn choice(
    sse: Option<&ServerSideEncryption>,
    kms_key_id: Option<&str>,
    customer: Option<CustomerKey>,
) -> S3Result<Option<SseChoice>> {
    match (sse.map(ServerSideEncryption::as_str), customer) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        )),
        (None, Some(key)) => Ok(Some(SseChoice::Customer(key))),
        (Some(_), None)
            if kms_key_id.is_some() && sse.map(ServerSideEncryption::as_str) != Some(ServerSideEncryption::AWS_KMS) =>
        {
            Err(s3_error!(InvalidArgument, "x-amz-server-side-encryption-aws-kms-key-id requires aws:kms"))
        }
        (Some(ServerSideEncryption::AES256), None) => Ok(Some(SseChoice::S3)),
        (Some(ServerSideEncryption::AWS_KMS), None) => {
            Ok(Some(SseChoice::Kms { key_id: kms_key_id.map(str::to_owned) }))
        }
        (Some(other), None) => Err(s3_error!(InvalidArgument, "Unsupported server side encryption {other:?}")),
        (None, None) if kms_key_id.is_some() => {
            Err(s3_error!(InvalidArgument, "x-amz-server-side-encryption-aws-kms-key-id requires aws:kms"))
        }
        (None, None) => Ok(None),
    }
}

/// The response fields a stored choice fills.
pub struct Reported {
    pub server_side_encryption: Option<ServerSideEncryption>,
    pub ssekms_key_id: Option<String>,
    pub sse_customer_algorithm: Option<String>,
    pub sse_customer_key_md5: Option<String>,
}

pub fn reported(sse: &Sse, bucket_kms_key: impl FnOnce() -> String) -> Reported {
    match sse {
        Sse::S3 => Reported {
            server_side_encryption: Some(ServerSideEncryption::from_static(ServerSideEncryption::AES256)),
            ssekms_key_id: None,
            sse_customer_algorithm: None,
            sse_customer_key_md5: None,
        },
        Sse::Kms { key_id } => Reported {
            server_side_encryption: Some(ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS)),
            ssekms_key_id: Some(key_id.clone().unwrap_or_else(bucket_kms_key)),
            sse_customer_algorithm: None,
            sse_customer_key_md5: None,
        },
        Sse::Customer(check) | Sse::CustomerSealed { check, .. } => Reported {
            server_side_encryption: None,
            ssekms_key_id: None,
            sse_customer_algorithm: Some("AES256".into()),
            sse_customer_key_md5: Some(check.key_md5.clone()),
        },
    }
}

/// PutBucketEncryption's body into the stored default.
pub fn bucket_default(config: ServerSideEncryptionConfiguration) -> S3Result<BucketEncryption> {
    let [rule] = <[ServerSideEncryptionRule; 1]>::try_from(config.rules)
        .map_err(|_| s3_error!(MalformedXML, "exactly one server-side encryption rule is supported"))?;
    let by_default = rule
        .apply_server_side_encryption_by_default
        .ok_or_else(|| s3_error!(MalformedXML, "ApplyServerSideEncryptionByDefault is required"))?;
    let sse = match by_default.sse_algorithm.as_str() {
        ServerSideEncryption::AES256 if by_default.kms_master_key_id.is_some() => {
            return Err(s3_error!(InvalidArgument, "a KMS key id requires aws:kms"));
        }
        ServerSideEncryption::AES256 => Sse::S3,
        ServerSideEncryption::AWS_KMS => Sse::Kms { key_id: by_default.kms_master_key_id },
        other => return Err(s3_error!(InvalidArgument, "Unsupported server side encryption {other:?}")),
    };
    Ok(BucketEncryption { sse, bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false) })
}

/// The stored default as GetBucketEncryption returns it; S3-managed keys
/// when none was set, since every bucket is encrypted.
pub fn bucket_config(config: Option<&BucketEncryption>) -> ServerSideEncryptionConfiguration {
    let (algorithm, key_id, bucket_key) = match config {
        Some(BucketEncryption { sse: Sse::Kms { key_id }, bucket_key_enabled }) => {
            (ServerSideEncryption::AWS_KMS, key_id.clone(), *bucket_key_enabled)
        }
        Some(c) => (ServerSideEncryption::AES256, None, c.bucket_key_enabled),
        None => (ServerSideEncryption::AES256, None, false),
    };
    ServerSideEncryptionConfiguration {
        rules: vec![ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: key_id,
                sse_algorithm: ServerSideEncryption::from_static(algorithm),
            }),
            bucket_key_enabled: Some(bucket_key),
        }],
    }
}
