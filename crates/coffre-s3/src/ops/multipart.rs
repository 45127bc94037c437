//! Multipart uploads: create, upload a part (or copy one), complete, abort,
//! and list an upload's parts.

use coffre_core::service::{BodyClaims, CompletedPart, NewUpload, PartUpload};
use coffre_core::types::UploadId;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use super::sse;
use super::tagging::tags_from_header;
use crate::error::{s3_err, s3_err_naming};
use crate::request::{
    self, checksums_of, content_headers_of, content_length, content_md5, copy_source, copy_source_key_of,
    customer_key_of, expected_checksum, lock_of, page_size, part_number, sse_choice_of, write_condition,
};
use crate::response::{self, fill_checksums, fill_sse, owner};

impl CoffreS3 {
    pub(super) async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = request::bucket(&input.bucket)?;
        let key = request::key(&input.key)?;
        let algorithm = request::checksum_algorithm(input.checksum_algorithm.as_ref())?;
        let checksum_type = request::checksum_type(input.checksum_type.as_ref())?;
        let headers = content_headers_of!(input);
        let user_meta = request::user_meta(input.metadata);
        request::check_user_meta(&user_meta)?;
        let tags = tags_from_header(input.tagging.as_deref())?;
        let lock = lock_of!(input)?;
        let sse = sse_choice_of!(self, input)?;
        let new = NewUpload {
            bucket,
            key,
            headers,
            user_meta,
            checksum_algorithm: algorithm,
            checksum_type,
            tags,
            lock,
            sse,
        };
        let upload = self.service.create_upload(&who, new).await.map_err(s3_err)?;
        let mut out = CreateMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key),
            upload_id: Some(upload.upload_id.as_str().to_owned()),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: response::upload_checksum_type(&upload),
            ..Default::default()
        };
        fill_sse!(out, &upload.sse, input.bucket);
        Ok(S3Response::new(out))
    }

    pub(super) async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let who = self.who(&req)?;
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let input = req.input;
        let part = PartUpload {
            bucket: request::bucket(&input.bucket)?,
            key: request::key(&input.key)?,
            upload_id: UploadId::parse(&input.upload_id).map_err(s3_err)?,
            part_number: part_number(Some(input.part_number))?,
            customer_key: customer_key_of!(self, input)?,
        };
        let given = checksums_of!(input);
        let claims = BodyClaims {
            content_length: content_length(input.content_length)?,
            content_md5: content_md5(input.content_md5.as_deref())?,
            checksum: expected_checksum(&headers, trailers, input.checksum_algorithm.as_ref(), given)?,
        };
        let done = self.service.upload_part(&who, part, claims, request::body(input.body)).await.map_err(s3_err)?;
        let mut out = UploadPartOutput { e_tag: Some(response::etag(&done.etag)), ..Default::default() };
        fill_checksums!(out, &done.checksums);
        fill_sse!(out, &done.sse, input.bucket);
        Ok(S3Response::new(out))
    }

    pub(super) async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let conditions = request::read_conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let source = copy_source(&input.copy_source, conditions, copy_source_key_of!(self, input)?)?;
        let source_version = source.version.clone();
        let range = input.copy_source_range.as_deref().map(request::copy_source_range).transpose()?;
        let part = PartUpload {
            bucket: request::bucket(&input.bucket)?,
            key: request::key(&input.key)?,
            upload_id: UploadId::parse(&input.upload_id).map_err(s3_err)?,
            part_number: part_number(Some(input.part_number))?,
            customer_key: customer_key_of!(self, input)?,
        };
        let done = self.service.upload_part_copy(&who, part, source, range).await.map_err(s3_err)?;
        let mut result = CopyPartResult {
            e_tag: Some(response::etag(&done.etag)),
            last_modified: Some(response::timestamp(done.last_modified)),
            ..Default::default()
        };
        fill_checksums!(result, &done.checksums);
        let mut out = UploadPartCopyOutput {
            copy_part_result: Some(result),
            copy_source_version_id: source_version.map(|v| v.as_str().to_owned()),
            ..Default::default()
        };
        fill_sse!(out, &done.sse, input.bucket);
        Ok(S3Response::new(out))
    }

    pub(super) async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = request::bucket(&input.bucket)?;
        let key = request::key(&input.key)?;
        let upload_id = UploadId::parse(&input.upload_id).map_err(s3_err)?;
        let condition = write_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?;
        let parts = input.multipart_upload.and_then(|m| m.parts).ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        })?;
        let mut requested = Vec::with_capacity(parts.len());
        for p in parts {
            let number = p.part_number.ok_or_else(|| s3_error!(MalformedXML, "every Part needs a PartNumber"))?;
            let etag = p.e_tag.ok_or_else(|| s3_error!(MalformedXML, "every Part needs an ETag"))?;
            requested.push(CompletedPart {
                number: part_number(Some(number))?,
                etag: etag.value().to_owned(),
                checksums: checksums_of!(p),
            });
        }
        let customer = customer_key_of!(self, input)?;
        let claimed = checksums_of!(input);
        let named = s3_err_naming(request::condition_header(&condition));
        let done = self
            .service
            .complete_upload(&who, &bucket, &key, &upload_id, requested, condition, customer.as_ref(), &claimed)
            .await
            .map_err(named)?;
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(response::etag(&done.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: done.version_id.as_ref().map(|v| v.as_str().to_owned()),
            checksum_type: response::checksum_type(done.checksum_composite, &done.checksums),
            ..Default::default()
        };
        fill_checksums!(out, &done.checksums);
        let r = sse::reported(&done.sse, || format!("coffre:bucket/{}", input.bucket));
        out.server_side_encryption = r.server_side_encryption;
        out.ssekms_key_id = r.ssekms_key_id;
        Ok(S3Response::new(out))
    }

    pub(super) async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let upload_id = UploadId::parse(&input.upload_id).map_err(s3_err)?;
        self.service
            .abort_upload(&who, &request::bucket(&input.bucket)?, &request::key(&input.key)?, &upload_id)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let upload_id = UploadId::parse(&input.upload_id).map_err(s3_err)?;
        let max = page_size(input.max_parts)?;
        let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
        let customer = customer_key_of!(self, input)?;
        let (bucket, key) = (request::bucket(&input.bucket)?, request::key(&input.key)?);
        let (upload, parts, truncated) = self
            .service
            .list_parts(&who, &bucket, &key, &upload_id, marker, max, customer.as_ref())
            .await
            .map_err(s3_err)?;
        let next = parts.last().map(|p| p.number as i32);
        let parts = parts
            .into_iter()
            .map(|p| {
                let mut part = Part {
                    part_number: Some(p.number as i32),
                    e_tag: Some(response::etag(&coffre_core::checksum::hex(&p.md5))),
                    size: Some(p.size as i64),
                    last_modified: Some(response::timestamp(p.last_modified)),
                    ..Default::default()
                };
                fill_checksums!(part, &p.checksums);
                part
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            parts: Some(parts),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            owner: Some(owner(upload.owner.as_str())),
            initiator: Some(Initiator {
                id: Some(upload.owner.to_string()),
                display_name: Some(upload.owner.to_string()),
            }),
            checksum_algorithm: upload.checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
            checksum_type: response::upload_checksum_type(&upload),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }
}
