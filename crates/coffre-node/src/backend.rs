//! One storage target as the gateway sees it: a Coffre storage node, or a
//! bucket of an existing S3 service. Both hold sealed blobs only.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use coffre_core::blob::ByteStream;
use coffre_core::error::error_chain;
use coffre_core::types::BlobId;
use coffre_topology::{Target, TargetKind};
use futures::{Stream, StreamExt as _};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};

use crate::client::{
    Body, HttpClient, LinkLimits, NodeClient, NodeLink, TargetError, check_length, exact_body, expect, http_client,
};

/// A blob's bytes on their way to a target, already sealed.
pub type BodyStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

#[async_trait]
pub trait Backend: Send + Sync {
    /// Whether the target answers now.
    async fn probe(&self) -> Result<(), TargetError>;
    /// Streams `body` into a new blob; returns the size the target made durable.
    async fn put(&self, id: BlobId, body: BodyStream) -> Result<u64, TargetError>;
    /// Streams `range` of a blob; a failure mid-stream ends it with an error.
    async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream, TargetError>;
    /// Removing a blob that is not there is not an error.
    async fn delete(&self, id: BlobId) -> Result<(), TargetError>;
}

/// The backend that reaches `target`.
/// `nodes` is `None` in a process without a cluster identity, which can
/// reach S3 services only.
pub fn for_target(target: &Target, nodes: Option<&NodeClient>) -> Result<Arc<dyn Backend>, String> {
    Ok(match &target.kind {
        TargetKind::Node => {
            let nodes = nodes.ok_or("a storage node, and this process has no [cluster] identity to reach it with")?;
            Arc::new(nodes.link(&target.id.0, &target.endpoint)?)
        }
        TargetKind::S3 { bucket, access_key, secret_key, region } => {
            let limits = nodes.map(NodeClient::limits).unwrap_or_default();
            Arc::new(S3Backend::new(&target.endpoint, bucket, access_key, secret_key, region, limits)?)
        }
    })
}

#[async_trait]
impl Backend for NodeLink {
    async fn probe(&self) -> Result<(), TargetError> {
        self.status().await.map(drop)
    }

    async fn put(&self, id: BlobId, body: BodyStream) -> Result<u64, TargetError> {
        NodeLink::put(self, id, body).await
    }

    async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream, TargetError> {
        NodeLink::read(self, id, range).await
    }

    async fn delete(&self, id: BlobId) -> Result<(), TargetError> {
        NodeLink::delete(self, id).await
    }
}

/// Blobs up to this size go up in one PUT; bigger ones as a multipart upload
/// of parts this size, so memory stays bounded whatever the blob.
const PART_BYTES: usize = 8 << 20;
/// How long a presigned request stays valid: it is sent at once.
const PRESIGN_FOR: Duration = Duration::from_secs(300);
/// Remote keys: `coffre-blobs/<blob id>`, nothing derived from object names.
const KEY_PREFIX: &str = "coffre-blobs/";

/// A bucket of an S3-compatible service, reached with presigned requests
/// (rusty-s3 signs, hyper sends: no second HTTP stack).
struct S3Backend {
    http: HttpClient,
    bucket: Bucket,
    credentials: Credentials,
    endpoint: String,
    limits: LinkLimits,
}

impl S3Backend {
    fn new(
        endpoint: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        limits: LinkLimits,
    ) -> Result<Self, String> {
        let url = endpoint.parse().map_err(|e| format!("endpoint {endpoint:?}: {e}"))?;
        let bucket = Bucket::new(url, UrlStyle::Path, bucket.to_owned(), region.to_owned())
            .map_err(|e| format!("bucket {bucket:?} at {endpoint}: {e}"))?;
        Ok(Self {
            http: http_client(),
            bucket,
            credentials: Credentials::new(access_key, secret_key),
            endpoint: endpoint.to_owned(),
            limits,
        })
    }

    fn key(id: BlobId) -> String {
        format!("{KEY_PREFIX}{id}")
    }

    async fn send(
        &self,
        method: Method,
        url: url::Url,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<http::Response<hyper::body::Incoming>, TargetError> {
        let mut builder = Request::builder().method(method).uri(url.as_str());
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let request = builder.body(full(body)).map_err(|e| self.protocol(e.to_string()))?;
        // Bodies sent here are whole parts in memory: the answer is due
        // within the response limit plus the part's time on the wire.
        let wait = self.limits.response + self.limits.body_idle;
        match tokio::time::timeout(wait, self.http.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(TargetError::Unreachable { endpoint: self.endpoint.clone(), why: error_chain(&e) }),
            Err(_) => Err(TargetError::Unreachable {
                endpoint: self.endpoint.clone(),
                why: format!("no answer within {wait:?}"),
            }),
        }
    }

    fn protocol(&self, why: String) -> TargetError {
        TargetError::Protocol { endpoint: self.endpoint.clone(), why }
    }

    async fn put_whole(&self, key: &str, body: Bytes) -> Result<(), TargetError> {
        let url = self.bucket.put_object(Some(&self.credentials), key).sign(PRESIGN_FOR);
        let response = self.send(Method::PUT, url, &[], body).await?;
        expect(response, &self.endpoint, StatusCode::OK, None, self.limits.body_idle).await.map(drop)
    }

    async fn put_multipart(&self, key: &str, first: Bytes, mut rest: BodyStream) -> Result<u64, TargetError> {
        let url = self.bucket.create_multipart_upload(Some(&self.credentials), key).sign(PRESIGN_FOR);
        let response = self.send(Method::POST, url, &[], Bytes::new()).await?;
        let xml = expect(response, &self.endpoint, StatusCode::OK, None, self.limits.body_idle).await?;
        let created = rusty_s3::actions::CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&xml))
            .map_err(|e| self.protocol(format!("CreateMultipartUpload answer: {e}")))?;
        let upload_id = created.upload_id().to_owned();
        let uploaded = async {
            let mut etags = Vec::new();
            let mut size = 0u64;
            let mut part = Some(first);
            while let Some(bytes) = part.take() {
                size += bytes.len() as u64;
                etags.push(self.upload_part(key, &upload_id, etags.len() as u16 + 1, bytes).await?);
                part = fill(&mut rest, PART_BYTES).await.filter(|b| !b.is_empty());
            }
            let complete = self.bucket.complete_multipart_upload(
                Some(&self.credentials),
                key,
                &upload_id,
                etags.iter().map(String::as_str),
            );
            let url = complete.sign(PRESIGN_FOR);
            let body = complete.body();
            let response = self.send(Method::POST, url, &[], Bytes::from(body)).await?;
            expect(response, &self.endpoint, StatusCode::OK, None, self.limits.body_idle).await?;
            Ok(size)
        }
        .await;
        if uploaded.is_err() {
            let url = self.bucket.abort_multipart_upload(Some(&self.credentials), key, &upload_id).sign(PRESIGN_FOR);
            let _ = self.send(Method::DELETE, url, &[], Bytes::new()).await;
        }
        uploaded
    }

    async fn upload_part(&self, key: &str, upload_id: &str, number: u16, bytes: Bytes) -> Result<String, TargetError> {
        let url = self.bucket.upload_part(Some(&self.credentials), key, number, upload_id).sign(PRESIGN_FOR);
        let response = self.send(Method::PUT, url, &[], bytes).await?;
        let etag = response.headers().get(http::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        expect(response, &self.endpoint, StatusCode::OK, None, self.limits.body_idle).await?;
        etag.ok_or_else(|| self.protocol(format!("part {number} was stored without an ETag")))
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| -> crate::client::BoxError { match never {} }).boxed_unsync()
}

/// Reads up to `limit` bytes from `body`; `None` once it is exhausted.
async fn fill(body: &mut BodyStream, limit: usize) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    while buf.len() < limit {
        match body.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk),
            None if buf.is_empty() => return None,
            None => break,
        }
    }
    Some(buf.freeze())
}

#[async_trait]
impl Backend for S3Backend {
    async fn probe(&self) -> Result<(), TargetError> {
        let url = self.bucket.head_bucket(Some(&self.credentials)).sign(PRESIGN_FOR);
        let response = self.send(Method::HEAD, url, &[], Bytes::new()).await?;
        expect(response, &self.endpoint, StatusCode::OK, None, self.limits.body_idle).await.map(drop)
    }

    async fn put(&self, id: BlobId, body: BodyStream) -> Result<u64, TargetError> {
        let key = Self::key(id);
        // Fused: the part loop asks again after the last, short, part.
        let mut body: BodyStream = Box::pin(body.fuse());
        let first = fill(&mut body, PART_BYTES).await.unwrap_or_default();
        if first.len() < PART_BYTES {
            let size = first.len() as u64;
            self.put_whole(&key, first).await?;
            return Ok(size);
        }
        self.put_multipart(&key, first, body).await
    }

    async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream, TargetError> {
        if range.is_empty() {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let key = Self::key(id);
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(PRESIGN_FOR);
        let header = [("range", format!("bytes={}-{}", range.start, range.end - 1))];
        let response = self.send(Method::GET, url, &header, Bytes::new()).await?;
        match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
            StatusCode::NOT_FOUND => return Err(TargetError::NotFound { endpoint: self.endpoint.clone(), id }),
            other => {
                return Err(expect(
                    response,
                    &self.endpoint,
                    StatusCode::PARTIAL_CONTENT,
                    Some(id),
                    self.limits.body_idle,
                )
                .await
                .err()
                .unwrap_or_else(|| self.protocol(format!("unexpected status {other}"))));
            }
        }
        let expected = range.end - range.start;
        check_length(&response, expected).map_err(|why| self.protocol(why))?;
        let body = response.into_body().into_data_stream();
        Ok(exact_body(body, expected, self.limits.body_idle, self.endpoint.clone()))
    }

    async fn delete(&self, id: BlobId) -> Result<(), TargetError> {
        let key = Self::key(id);
        let url = self.bucket.delete_object(Some(&self.credentials), &key).sign(PRESIGN_FOR);
        let response = self.send(Method::DELETE, url, &[], Bytes::new()).await?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => expect(response, &self.endpoint, StatusCode::NO_CONTENT, Some(id), self.limits.body_idle)
                .await
                .map(drop),
        }
    }
}
