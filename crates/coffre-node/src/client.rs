//! The gateway's side of the node API: signed, streaming requests to one
//! storage node, with bounded waits so a dead node is noticed, not waited on.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use coffre_core::blob::ByteStream;
use coffre_core::error::error_chain;
use coffre_core::types::BlobId;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use http::{Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::Frame;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::auth::ClusterKey;
use crate::server::{NodeStatus, Stored};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Unsync: a streaming upload's body is fed by a channel, which is not `Sync`.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;
/// Pooled HTTP/1.1 over TCP or TLS (rustls on aws-lc-rs, the system's roots).
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// The one HTTP client setup for nodes and S3 targets alike.
pub(crate) fn http_client() -> HttpClient {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let connector = match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder.https_or_http().enable_http1().wrap_connector(tcp),
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates: https targets will fail to verify");
            let roots = rustls::RootCertStore::empty();
            let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1().wrap_connector(tcp)
        }
    };
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A node that answers slower than this to connect is treated as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait for a response's head (a put's head comes after its fsync).
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What went wrong talking to a storage target (a node or an S3 service).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {endpoint} is unreachable: {why}")]
    Unreachable { endpoint: String, why: String },
    #[error("target {endpoint} has no blob {id}")]
    NotFound { endpoint: String, id: BlobId },
    #[error("target {endpoint} refused the request ({status}): {message}")]
    Refused { endpoint: String, status: StatusCode, message: String },
    #[error("target {endpoint}: {why}")]
    Protocol { endpoint: String, why: String },
}

impl From<TargetError> for coffre_core::Error {
    fn from(e: TargetError) -> Self {
        coffre_core::Error::Io(std::io::Error::other(e.to_string()))
    }
}

#[derive(Clone)]
pub struct NodeClient {
    http: HttpClient,
    key: ClusterKey,
}

impl NodeClient {
    pub fn new(key: ClusterKey) -> Self {
        Self { http: http_client(), key }
    }

    fn request(&self, method: Method, endpoint: &str, path: &str, body: Body) -> Result<Request<Body>, TargetError> {
        let mut builder =
            Request::builder().method(method.clone()).uri(format!("{}{path}", endpoint.trim_end_matches('/')));
        for (name, value) in self.key.sign(method.as_str(), path) {
            builder = builder.header(name, value);
        }
        builder.body(body).map_err(|e| TargetError::Protocol { endpoint: endpoint.to_owned(), why: e.to_string() })
    }

    async fn send(
        &self,
        request: Request<Body>,
        endpoint: &str,
        wait: Duration,
    ) -> Result<http::Response<hyper::body::Incoming>, TargetError> {
        let unreachable = |why: String| TargetError::Unreachable { endpoint: endpoint.to_owned(), why };
        match tokio::time::timeout(wait, self.http.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(unreachable(error_chain(&e))),
            Err(_) => Err(unreachable(format!("no answer within {wait:?}"))),
        }
    }

    pub async fn status(&self, endpoint: &str) -> Result<NodeStatus, TargetError> {
        let request = self.request(Method::GET, endpoint, "/v1/status", empty())?;
        let response = self.send(request, endpoint, STATUS_TIMEOUT).await?;
        let body = expect(response, endpoint, StatusCode::OK, None).await?;
        serde_json::from_slice(&body)
            .map_err(|e| TargetError::Protocol { endpoint: endpoint.to_owned(), why: e.to_string() })
    }

    /// Streams `body` into a new blob on the node; returns once the node has
    /// made it durable.
    pub async fn put(
        &self,
        endpoint: &str,
        id: BlobId,
        body: impl Stream<Item = Bytes> + Send + 'static,
    ) -> Result<u64, TargetError> {
        let frames = StreamBody::new(body.map(|chunk| Ok::<_, BoxError>(Frame::data(chunk))));
        let request = self.request(Method::PUT, endpoint, &blob_path(id), frames.boxed_unsync())?;
        let response = self.send(request, endpoint, HEAD_TIMEOUT).await?;
        let body = expect(response, endpoint, StatusCode::CREATED, Some(id)).await?;
        let stored: Stored = serde_json::from_slice(&body)
            .map_err(|e| TargetError::Protocol { endpoint: endpoint.to_owned(), why: e.to_string() })?;
        Ok(stored.size)
    }

    /// Streams `range` of a blob. Errors before the first byte are returned
    /// here; a node that dies mid-stream ends the stream with an error.
    pub async fn read(&self, endpoint: &str, id: BlobId, range: Range<u64>) -> Result<ByteStream, TargetError> {
        let path = format!("{}?start={}&end={}", blob_path(id), range.start, range.end);
        // The signature covers the path without the query: the range is not a secret.
        let request = self.request_with_query(endpoint, &blob_path(id), &path)?;
        let response = self.send(request, endpoint, HEAD_TIMEOUT).await?;
        if response.status() != StatusCode::OK {
            return Err(expect(response, endpoint, StatusCode::OK, Some(id)).await.err().unwrap_or_else(|| {
                TargetError::Protocol { endpoint: endpoint.to_owned(), why: "unexpected answer".into() }
            }));
        }
        let endpoint = endpoint.to_owned();
        let stream = response.into_body().into_data_stream().map_err(move |e| {
            coffre_core::Error::Io(std::io::Error::other(format!("reading from node {endpoint} failed: {e}")))
        });
        Ok(Box::pin(stream))
    }

    fn request_with_query(
        &self,
        endpoint: &str,
        path: &str,
        path_and_query: &str,
    ) -> Result<Request<Body>, TargetError> {
        let mut builder =
            Request::builder().method(Method::GET).uri(format!("{}{path_and_query}", endpoint.trim_end_matches('/')));
        for (name, value) in self.key.sign("GET", path) {
            builder = builder.header(name, value);
        }
        builder.body(empty()).map_err(|e| TargetError::Protocol { endpoint: endpoint.to_owned(), why: e.to_string() })
    }

    pub async fn delete(&self, endpoint: &str, id: BlobId) -> Result<(), TargetError> {
        let request = self.request(Method::DELETE, endpoint, &blob_path(id), empty())?;
        let response = self.send(request, endpoint, HEAD_TIMEOUT).await?;
        expect(response, endpoint, StatusCode::NO_CONTENT, Some(id)).await.map(drop)
    }
}

pub(crate) fn blob_path(id: BlobId) -> String {
    format!("/v1/blobs/{id}")
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The response's body if its status is `want`, else the node's error.
pub(crate) async fn expect(
    response: http::Response<hyper::body::Incoming>,
    endpoint: &str,
    want: StatusCode,
    id: Option<BlobId>,
) -> Result<Bytes, TargetError> {
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| TargetError::Unreachable { endpoint: endpoint.to_owned(), why: e.to_string() })?
        .to_bytes();
    if status == want {
        return Ok(body);
    }
    if let (StatusCode::NOT_FOUND, Some(id)) = (status, id) {
        return Err(TargetError::NotFound { endpoint: endpoint.to_owned(), id });
    }
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Err(TargetError::Refused { endpoint: endpoint.to_owned(), status, message })
}
