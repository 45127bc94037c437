//! Listings: ListObjects (v1, answered through v2), ListObjectsV2,
//! ListObjectVersions and ListMultipartUploads, and their continuation tokens.

use coffre_core::list::{ListQuery, VersionQuery};
use coffre_core::types::UploadId;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CoffreS3;
use crate::error::s3_err;
use crate::request::{self, page_size};
use crate::response::{self, owner};
use crate::s3s_fixes::VersionOrder;

impl CoffreS3 {
    pub(super) async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let v2 = req.map_input(|i| ListObjectsV2Input {
            bucket: i.bucket,
            delimiter: i.delimiter,
            encoding_type: i.encoding_type,
            max_keys: i.max_keys,
            prefix: i.prefix,
            start_after: i.marker,
            ..Default::default()
        });
        // S3 always names the marker, empty when none was given.
        let marker = Some(v2.input.start_after.clone().unwrap_or_default());
        let out = self.list_objects_v2(v2).await?.output;
        // V1 gives a NextMarker only when a delimiter is used; clients use the last key otherwise.
        let next_marker = match &out.next_continuation_token {
            Some(token) if out.delimiter.is_some() => Some(decode_token(token)?),
            _ => None,
        };
        Ok(S3Response::new(ListObjectsOutput {
            name: out.name,
            prefix: out.prefix,
            marker,
            max_keys: out.max_keys,
            is_truncated: out.is_truncated,
            contents: out.contents,
            common_prefixes: out.common_prefixes,
            delimiter: out.delimiter,
            next_marker: next_marker
                .map(|m| response::encode_key(&m, request::is_url_encoding(out.encoding_type.as_ref()))),
            encoding_type: out.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = request::bucket(&input.bucket)?;
        let after = match &input.continuation_token {
            Some(token) => Some(decode_token(token)?),
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            after,
            max_keys: page_size(input.max_keys)?,
            // The service's own bound applies.
            max_scan: 0,
        };
        let page = self.service.list_objects(&who, &bucket, &query).await.map_err(s3_err)?;
        let url = request::is_url_encoding(input.encoding_type.as_ref());
        let fetch_owner = input.fetch_owner.unwrap_or(false);
        let contents: Vec<Object> = page
            .objects
            .iter()
            .map(|o| Object {
                key: Some(response::encode_key(o.key.as_str(), url)),
                size: Some(o.meta.size as i64),
                e_tag: Some(response::etag(&o.meta.etag)),
                last_modified: Some(response::timestamp(o.meta.last_modified)),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                owner: fetch_owner.then(|| owner(o.meta.owner.as_str())),
                checksum_algorithm: o
                    .meta
                    .checksums
                    .algorithms()
                    .next()
                    .map(|a| vec![ChecksumAlgorithm::from(a.as_str().to_owned())]),
                ..Default::default()
            })
            .collect();
        let common_prefixes: Vec<CommonPrefix> =
            page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(response::encode_key(p, url)) }).collect();
        let key_count = (contents.len() + common_prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(bucket.to_string()),
            prefix: Some(response::encode_key(&query.prefix, url)),
            delimiter: response::echoed_delimiter(input.delimiter, url),
            max_keys: Some(query.max_keys as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.is_truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: page.is_truncated.then(|| page.last.as_deref().map(encode_token)).flatten(),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            start_after: input.start_after.map(|s| response::encode_key(&s, url)),
            ..Default::default()
        }))
    }

    pub(super) async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = request::bucket(&input.bucket)?;
        let query = VersionQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            key_marker: input.key_marker.clone().filter(|k| !k.is_empty()),
            version_marker: request::version(input.version_id_marker.as_deref().filter(|v| !v.is_empty()))?,
            max_keys: page_size(input.max_keys)?,
            // The service sets the bound from its configuration.
            max_scan: 0,
        };
        let page = self.service.list_versions(&who, &bucket, &query).await.map_err(s3_err)?;
        let url = request::is_url_encoding(input.encoding_type.as_ref());
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for v in &page.versions {
            let key = Some(response::encode_key(v.key.as_str(), url));
            let version_id = Some(v.meta.version_id.as_str().to_owned());
            let last_modified = Some(response::timestamp(v.meta.last_modified));
            let owner = Some(owner(v.meta.owner.as_str()));
            if v.meta.delete_marker {
                markers.push(DeleteMarkerEntry { key, version_id, last_modified, owner, is_latest: Some(v.is_latest) });
            } else {
                versions.push(ObjectVersion {
                    key,
                    version_id,
                    last_modified,
                    owner,
                    is_latest: Some(v.is_latest),
                    e_tag: Some(response::etag(&v.meta.etag)),
                    size: Some(v.meta.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    ..Default::default()
                });
            }
        }
        let order = VersionOrder(page.versions.iter().map(|v| v.meta.delete_marker).collect());
        let mut resp = S3Response::new(ListObjectVersionsOutput {
            name: Some(bucket.to_string()),
            prefix: Some(response::encode_key(&query.prefix, url)),
            delimiter: response::echoed_delimiter(input.delimiter, url),
            key_marker: input.key_marker,
            version_id_marker: input.version_id_marker,
            max_keys: Some(query.max_keys as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker: page.next_key_marker.map(|k| response::encode_key(&k, url)),
            next_version_id_marker: page.next_version_marker.map(|v| v.as_str().to_owned()),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                page.common_prefixes
                    .iter()
                    .map(|p| CommonPrefix { prefix: Some(response::encode_key(p, url)) })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        });
        resp.extensions.insert(order);
        Ok(resp)
    }

    pub(super) async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let bucket = request::bucket(&input.bucket)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = page_size(input.max_uploads)?;
        let upload_marker = input.upload_id_marker.as_deref().map(UploadId::parse).transpose().map_err(s3_err)?;
        let after = input.key_marker.as_deref().map(|k| (k, upload_marker.as_ref()));
        let listing = self
            .service
            .list_uploads(&who, &bucket, &prefix, input.delimiter.as_deref(), after, max)
            .await
            .map_err(s3_err)?;
        let url = request::is_url_encoding(input.encoding_type.as_ref());
        let last = listing.uploads.last().map(|u| (u.key.to_string(), u.upload_id.as_str().to_owned()));
        let uploads = listing
            .uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(response::encode_key(u.key.as_str(), url)),
                upload_id: Some(u.upload_id.as_str().to_owned()),
                initiated: Some(response::timestamp(u.initiated)),
                owner: Some(owner(u.owner.as_str())),
                initiator: Some(Initiator { id: Some(u.owner.to_string()), display_name: Some(u.owner.to_string()) }),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                checksum_algorithm: u.checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
                checksum_type: response::upload_checksum_type(&u),
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix.map(|p| response::encode_key(&p, url)),
            delimiter: response::echoed_delimiter(input.delimiter, url),
            key_marker: input.key_marker.map(|k| response::encode_key(&k, url)),
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(listing.is_truncated),
            next_key_marker: listing
                .is_truncated
                .then(|| last.as_ref().map(|l| response::encode_key(&l.0, url)))
                .flatten(),
            next_upload_id_marker: listing.is_truncated.then(|| last.map(|l| l.1)).flatten(),
            uploads: Some(uploads),
            common_prefixes: Some(
                listing
                    .common_prefixes
                    .iter()
                    .map(|p| CommonPrefix { prefix: Some(response::encode_key(p, url)) })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

/// Continuation tokens are opaque to clients: the resume key, base64url.
fn encode_token(last: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(last.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}
