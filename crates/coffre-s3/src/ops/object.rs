//! Objects: PUT, GET and HEAD (one read path, GET adds the body), DELETE,
//! DeleteObjects and CopyObject.

use coffre_core::meta::DeleteGuard;
use coffre_core::service::{BodyClaims, CopyOptions, MetadataDirective, PutRequest};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use super::tagging::tags_from_header;
use crate::authorize::{Grant, KeyCheck};
use crate::error::{s3_err, s3_err_naming};
use crate::record::RouteSlot;
use crate::request::{
    self, checksums_of, content_headers_of, content_length, content_md5, copy_source, copy_source_key_of,
    etag_condition, expected_checksum, lock_of, object_read_of, sse_choice_of, write_condition,
};
use crate::response::{self, checksum_type, fill_checksums, fill_object_head, fill_sse, with_residency};

type MetadataDirective_ = s3s::dto::MetadataDirective;

impl CoffreS3 {
    pub(super) async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let who = self.who(&req)?;
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let input = req.input;
        let given = checksums_of!(input);
        let user_meta = request::user_meta(input.metadata);
        request::check_user_meta(&user_meta)?;
        let put = PutRequest {
            bucket: request::bucket(&input.bucket)?,
            key: request::key(&input.key)?,
            headers: content_headers_of!(input),
            user_meta,
            condition: write_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?,
            claims: BodyClaims {
                content_length: content_length(input.content_length)?,
                content_md5: content_md5(input.content_md5.as_deref())?,
                checksum: expected_checksum(&headers, trailers, input.checksum_algorithm.as_ref(), given)?,
            },
            tags: tags_from_header(input.tagging.as_deref())?,
            lock: lock_of!(input)?,
            sse: sse_choice_of!(self, input)?,
        };
        let named = s3_err_naming(request::condition_header(&put.condition));
        let done = self.service.put_object(&who, put, request::body(input.body)).await.map_err(named)?;
        let mut out = PutObjectOutput {
            e_tag: Some(response::etag(&done.etag)),
            version_id: done.version_id.as_ref().map(|v| v.as_str().to_owned()),
            ..Default::default()
        };
        fill_sse!(out, &done.sse, input.bucket);
        fill_checksums!(out, &done.checksums);
        if !done.checksums.is_empty() {
            out.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        }
        Ok(S3Response::new(out))
    }

    pub(super) async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let read = object_read_of!(self, input);
        let requested = read.version.clone();
        let (bucket, key) = (request::bucket(&input.bucket)?, request::key(&input.key)?);
        let got = self.service.get_object(&who, &bucket, &key, read).await.map_err(s3_err)?;
        let (head, m) = (&got.head, &got.head.meta);
        let mut out = GetObjectOutput::default();
        fill_object_head!(out, input, head, requested.as_ref());
        out.tag_count = (!m.tags.is_empty()).then_some(m.tags.len() as i32);
        if input.checksum_mode.is_some()
            && let Some(answered) = &head.checksums
        {
            fill_checksums!(out, answered);
            out.checksum_type = checksum_type(m.checksum_composite, &m.checksums);
        }
        let locations = got.head.locations;
        out.body = Some(response::blob(got.body));
        Ok(with_residency(S3Response::new(out), &locations))
    }

    /// GET's read without the body; answers every header GET would.
    pub(super) async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let read = object_read_of!(self, input);
        let requested = read.version.clone();
        let (bucket, key) = (request::bucket(&input.bucket)?, request::key(&input.key)?);
        let head = self.service.head_object(&who, &bucket, &key, read).await.map_err(s3_err)?;
        let m = &head.meta;
        let mut out = HeadObjectOutput::default();
        fill_object_head!(out, input, &head, requested.as_ref());
        if input.checksum_mode.is_some()
            && let Some(answered) = &head.checksums
        {
            fill_checksums!(out, answered);
            out.checksum_type = checksum_type(m.checksum_composite, &m.checksums);
        }
        let mut resp = S3Response::new(out);
        // s3s 0.14's HeadObject output has no TagCount field; S3 sends the header.
        if !m.tags.is_empty() {
            resp.headers.insert("x-amz-tagging-count", http::HeaderValue::from(m.tags.len()));
        }
        Ok(with_residency(resp, &head.locations))
    }

    pub(super) async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = request::bucket(&input.bucket)?;
        let key = request::key(&input.key)?;
        let version = request::version(input.version_id.as_deref())?;
        let guard = DeleteGuard {
            bypass_governance: input.bypass_governance_retention.unwrap_or(false),
            if_match: request::delete_match(
                input.if_match.as_ref(),
                input.if_match_size,
                input.if_match_last_modified_time.as_ref(),
            )?,
        };
        let named = s3_err_naming(request::delete_condition_headers(&guard.if_match));
        let done = self.service.delete_object(&who, &bucket, &key, version.as_ref(), &guard).await.map_err(named)?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: done.delete_marker.then_some(true),
            version_id: done.version_id.map(|v| v.as_str().to_owned()),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let who = self.who(&req)?;
        let per_key = req.extensions.get::<Grant>().and_then(|g| g.per_key.clone());
        let slot = req.extensions.get::<RouteSlot>().cloned();
        let input = req.input;
        let bucket = request::bucket(&input.bucket)?;
        self.service.bucket(&who, &bucket).await.map_err(s3_err)?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "DeleteObjects accepts at most 1000 keys"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let bypass_governance = input.bypass_governance_retention.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            let outcome = async {
                let key = request::key(&obj.key)?;
                let version = request::version(obj.version_id.as_deref())?;
                key_allowed(per_key.as_deref(), slot.as_ref(), key.as_str(), obj.version_id.as_deref()).await?;
                let if_match = request::delete_match(
                    obj.e_tag.clone().map(ETagCondition::ETag).as_ref(),
                    obj.size,
                    obj.last_modified_time.as_ref(),
                )?;
                let named = s3_err_naming(request::delete_condition_headers(&if_match));
                let guard = DeleteGuard { bypass_governance, if_match };
                self.service.delete_object(&who, &bucket, &key, version.as_ref(), &guard).await.map_err(named)
            }
            .await;
            match outcome {
                Ok(done) if !quiet => deleted.push(DeletedObject {
                    key: Some(obj.key),
                    version_id: obj.version_id,
                    delete_marker: done.delete_marker.then_some(true),
                    delete_marker_version_id: done
                        .delete_marker
                        .then(|| done.version_id.map(|v| v.as_str().to_owned()))
                        .flatten(),
                }),
                Ok(_) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    key: Some(obj.key),
                    version_id: obj.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
    }

    pub(super) async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let who = self.who(&req)?;
        // s3s 0.14's model predates conditional CopyObject: read the headers ourselves.
        let condition = write_condition(
            etag_condition(&req.headers, http::header::IF_NONE_MATCH)?.as_ref(),
            etag_condition(&req.headers, http::header::IF_MATCH)?.as_ref(),
        )?;
        let input = req.input;
        let conditions = request::read_conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let source = copy_source(&input.copy_source, conditions, copy_source_key_of!(self, input)?)?;
        let source_version = source.version.clone();
        let directive = match input.metadata_directive.as_ref().map(MetadataDirective_::as_str) {
            None | Some(MetadataDirective_::COPY) => MetadataDirective::Copy,
            Some(MetadataDirective_::REPLACE) => MetadataDirective::Replace {
                headers: content_headers_of!(input),
                user_meta: {
                    let m = request::user_meta(input.metadata);
                    request::check_user_meta(&m)?;
                    m
                },
            },
            Some(other) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive {other:?}")),
        };
        let tags = match input.tagging_directive.as_ref().map(TaggingDirective::as_str) {
            None | Some(TaggingDirective::COPY) => None,
            Some(TaggingDirective::REPLACE) => Some(tags_from_header(input.tagging.as_deref())?),
            Some(other) => return Err(s3_error!(InvalidArgument, "Unknown tagging directive {other:?}")),
        };
        let lock = lock_of!(input)?;
        let opts = CopyOptions { metadata: directive, tags, lock, condition, sse: sse_choice_of!(self, input)? };
        let bucket = request::bucket(&input.bucket)?;
        let key = request::key(&input.key)?;
        let done = self.service.copy_object(&who, source, &bucket, &key, opts).await.map_err(s3_err)?;
        let mut result = CopyObjectResult {
            e_tag: Some(response::etag(&done.etag)),
            last_modified: Some(response::timestamp(done.last_modified)),
            ..Default::default()
        };
        fill_checksums!(result, &done.checksums);
        let mut out = CopyObjectOutput {
            copy_object_result: Some(result),
            copy_source_version_id: source_version.map(|v| v.as_str().to_owned()),
            version_id: done.version_id.as_ref().map(|v| v.as_str().to_owned()),
            ..Default::default()
        };
        fill_sse!(out, &done.sse, input.bucket);
        Ok(S3Response::new(out))
    }
}

/// Refuses a DeleteObjects key its bucket's policy does not allow (see
/// [`KeyCheck`](crate::authorize::KeyCheck)), noted for the audit event.
async fn key_allowed(
    check: Option<&KeyCheck>,
    slot: Option<&RouteSlot>,
    key: &str,
    version: Option<&str>,
) -> S3Result<()> {
    let Some(check) = check else { return Ok(()) };
    let Err(denied) = check.allows(key, version).await else { return Ok(()) };
    if let Some(slot) = slot {
        slot.note_denial(&format!("{key}: {}", denied.why));
    }
    Err(denied.error)
}
