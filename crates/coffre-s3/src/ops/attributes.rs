//! GetObjectAttributes: what HEAD tells of a version, as XML, with only the
//! attributes asked for, and its parts listed a page at a time.

use coffre_core::service::{ObjectPart, ObjectRead};
use s3s::dto::{self, *};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::request;
use crate::response;
use crate::s3s_fixes::UnquotedEtag;

/// At most this many parts in one answer, as on S3.
const MAX_PARTS: usize = 1000;

impl CoffreS3 {
    pub(super) async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let (bucket, key) = (request::bucket(&input.bucket)?, request::key(&input.key)?);
        let version = request::version(input.version_id.as_deref())?;
        let read = ObjectRead {
            version: version.clone(),
            customer: request::customer_key_of!(self, input)?,
            ..ObjectRead::default()
        };
        let (head, parts) = self.service.object_attributes(&who, &bucket, &key, read).await.map_err(s3_err)?;
        let m = &head.meta;
        // s3s 0.14 keeps `x-amz-object-attributes: ETag,ObjectSize` as one item.
        let wants = |a: &str| input.object_attributes.iter().flat_map(|w| w.as_str().split(',')).any(|w| w.trim() == a);
        let mut out = GetObjectAttributesOutput {
            last_modified: Some(response::timestamp(m.last_modified)),
            version_id: response::reported_version(version.as_ref(), &head),
            ..Default::default()
        };
        if wants(ObjectAttributes::ETAG) {
            out.e_tag = Some(ETag::Strong(m.etag.clone()));
        }
        if wants(ObjectAttributes::CHECKSUM) && !m.checksums.is_empty() {
            let mut c = Checksum::default();
            response::fill_checksums!(c, &m.checksums);
            c.checksum_type = response::checksum_type(m.checksum_composite, &m.checksums);
            out.checksum = Some(c);
        }
        if wants(ObjectAttributes::OBJECT_PARTS) && !parts.is_empty() {
            out.object_parts = Some(parts_page(&parts, input.part_number_marker, input.max_parts)?);
        }
        if wants(ObjectAttributes::STORAGE_CLASS) {
            out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wants(ObjectAttributes::OBJECT_SIZE) {
            out.object_size = Some(m.size as i64);
        }
        let mut resp = S3Response::new(out);
        resp.extensions.insert(UnquotedEtag);
        Ok(resp)
    }
}

/// The parts after `marker`, at most `max` of them (1000 when not given),
/// each with its checksums when they were kept.
fn parts_page(parts: &[ObjectPart], marker: Option<i32>, max: Option<i32>) -> S3Result<GetObjectAttributesParts> {
    let after = u32::try_from(marker.unwrap_or(0))
        .map_err(|_| s3_error!(InvalidArgument, "part-number-marker must not be negative"))?;
    let max_parts = match max {
        None => MAX_PARTS,
        Some(n) => {
            usize::try_from(n).map_err(|_| s3_error!(InvalidArgument, "max-parts must not be negative"))?.min(MAX_PARTS)
        }
    };
    let rest: Vec<_> = parts.iter().filter(|p| p.number > after).collect();
    let page = &rest[..rest.len().min(max_parts)];
    let truncated = rest.len() > page.len();
    Ok(GetObjectAttributesParts {
        is_truncated: Some(truncated),
        max_parts: Some(max_parts as i32),
        next_part_number_marker: page.last().map(|p| p.number as i32),
        part_number_marker: Some(after as i32),
        parts: Some(page.iter().map(|p| part_out(p)).collect()),
        total_parts_count: Some(parts.len() as i32),
    })
}

fn part_out(part: &ObjectPart) -> dto::ObjectPart {
    let mut out =
        dto::ObjectPart { part_number: Some(part.number as i32), size: Some(part.size as i64), ..Default::default() };
    if let Some(checksums) = &part.checksums {
        response::fill_checksums!(out, checksums);
    }
    out
}
