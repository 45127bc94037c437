//! The gateway's side of the node API: one mutual-TLS link per storage node
//! (this gateway's certificate, and only that node's accepted in return),
//! streaming requests with bounded waits and bounded answers, so a dead,
//! stuck or hostile node is noticed, not waited on or buffered.

use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coffre_core::blob::ByteStream;
use coffre_core::error::error_chain;
use coffre_core::types::BlobId;
use futures::{Stream, StreamExt as _};
use http::{Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Limited, StreamBody};
use hyper::body::Frame;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;

use crate::identity::{ClusterTls, Identity, tls_refusal};
use crate::server::{NodeStatus, Stored};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Unsync: a streaming upload's body is fed by a channel, which is not `Sync`.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;
/// Pooled HTTP/1.1 over TCP or TLS (rustls on aws-lc-rs).
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// The largest answer other than blob bytes (status, errors, a put's
/// receipt) read from a target: anything longer is refused, not buffered.
pub(crate) const MAX_SMALL_ANSWER: usize = 64 * 1024;
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a gateway waits on a storage target, at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkLimits {
    /// To open the TCP connection.
    pub connect: Duration,
    /// For a response's head once the request is sent (for a put, once its
    /// whole body is sent: the node answers after its fsync).
    pub response: Duration,
    /// Between two pieces of a body, either way: a node that stops sending
    /// a blob, or stops reading one, is given up after this.
    pub body_idle: Duration,
}

impl Default for LinkLimits {
    fn default() -> Self {
        Self { connect: Duration::from_secs(2), response: Duration::from_secs(30), body_idle: Duration::from_secs(30) }
    }
}

fn tcp(limits: &LinkLimits) -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(limits.connect));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp
}

/// The HTTP client for S3 services as targets: https with the system's
/// roots, or plain http.
pub(crate) fn http_client() -> HttpClient {
    let tcp = tcp(&LinkLimits::default());
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

/// What went wrong talking to a storage target (a node or an S3 service).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {endpoint} is unreachable: {why}")]
    Unreachable { endpoint: String, why: String },
    /// The TLS identities do not match: not a node being down.
    #[error("target {endpoint} failed the cluster identity check: {why}")]
    Untrusted { endpoint: String, why: String },
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

/// What a gateway needs to open links to storage nodes: its identity and limits.
#[derive(Clone, Debug)]
pub struct NodeClient {
    tls: Arc<ClusterTls>,
    limits: LinkLimits,
}

impl NodeClient {
    /// Refuses an identity that is not a gateway's: a node's certificate
    /// cannot open node links.
    pub fn new(tls: Arc<ClusterTls>, limits: LinkLimits) -> Result<Self, String> {
        match tls.identity() {
            Identity::Gateway(_) => Ok(Self { tls, limits }),
            other => Err(format!(
                "the cluster certificate names {other}: a gateway needs a gateway certificate \
                 (`coffre cluster issue --gateway NAME`)"
            )),
        }
    }

    pub fn limits(&self) -> LinkLimits {
        self.limits
    }

    /// The link to the node serving `target` at `endpoint` (`https://`).
    pub fn link(&self, target: &str, endpoint: &str) -> Result<NodeLink, String> {
        if !endpoint.starts_with("https://") {
            return Err(format!(
                "target {target}: endpoint {endpoint} is not https: node links are mutual TLS \
                 (`coffre cluster issue --node {target}` for its certificate)"
            ));
        }
        let config = self.tls.client_config(target).map_err(|e| format!("target {target}: {e}"))?;
        let name = ServerName::try_from(Identity::node(target)?.dns_name()).map_err(|e| e.to_string())?;
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .with_server_name_resolver(FixedServerNameResolver::new(name))
            .enable_http1()
            .wrap_connector(tcp(&self.limits));
        Ok(NodeLink {
            http: Client::builder(TokioExecutor::new()).build(connector),
            target: target.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            limits: self.limits,
        })
    }
}

/// One storage node, reached over mutual TLS.
#[derive(Clone)]
pub struct NodeLink {
    http: HttpClient,
    target: String,
    endpoint: String,
    limits: LinkLimits,
}

impl NodeLink {
    fn request(&self, method: Method, path_and_query: &str, body: Body) -> Result<Request<Body>, TargetError> {
        Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.endpoint))
            .body(body)
            .map_err(|e| self.protocol(e.to_string()))
    }

    fn protocol(&self, why: String) -> TargetError {
        TargetError::Protocol { endpoint: self.target.clone(), why }
    }

    /// The error of a request that got no answer: an identity refused, or
    /// the node unreachable.
    fn failed(&self, e: &(dyn std::error::Error + 'static)) -> TargetError {
        match tls_refusal(e) {
            Some(why) => TargetError::Untrusted { endpoint: self.target.clone(), why },
            None => TargetError::Unreachable { endpoint: self.target.clone(), why: error_chain(e) },
        }
    }

    async fn send(
        &self,
        request: Request<Body>,
        wait: Duration,
    ) -> Result<http::Response<hyper::body::Incoming>, TargetError> {
        match tokio::time::timeout(wait, self.http.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.failed(&e)),
            Err(_) => Err(TargetError::Unreachable {
                endpoint: self.target.clone(),
                why: format!("no answer within {wait:?}"),
            }),
        }
    }

    pub async fn status(&self) -> Result<NodeStatus, TargetError> {
        let request = self.request(Method::GET, "/v1/status", empty())?;
        let response = self.send(request, STATUS_TIMEOUT.min(self.limits.response)).await?;
        let body = expect(response, &self.target, StatusCode::OK, None, self.limits.body_idle).await?;
        let status: NodeStatus = serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))?;
        if status.node_id != self.target {
            return Err(TargetError::Untrusted {
                endpoint: self.target.clone(),
                why: format!("it says it is node {}", status.node_id),
            });
        }
        Ok(status)
    }

    /// Streams `body` into a new blob on the node; returns once the node has
    /// made it durable. The node must keep reading the body (no pause longer
    /// than `body_idle`) and answer within `response` of its end.
    pub async fn put(&self, id: BlobId, body: impl Stream<Item = Bytes> + Send + 'static) -> Result<u64, TargetError> {
        let watch = Arc::new(Mutex::new(Upload::Reading));
        let watched = Watched { inner: Box::pin(body), watch: watch.clone() };
        let frames = StreamBody::new(watched.map(|chunk| Ok::<_, BoxError>(Frame::data(chunk))));
        let request = self.request(Method::PUT, &blob_path(id), frames.boxed_unsync())?;
        let response = self.http.request(request);
        let mut response = std::pin::pin!(response);
        let tick = self.limits.body_idle.min(self.limits.response) / 4;
        let answered = loop {
            tokio::select! {
                outcome = &mut response => break outcome,
                () = tokio::time::sleep(tick.max(Duration::from_millis(50))) => {}
            }
            let state = *watch.lock().unwrap_or_else(PoisonError::into_inner);
            let stalled = match state {
                Upload::Reading => None,
                Upload::Handed(at) if at.elapsed() > self.limits.body_idle => {
                    Some(format!("it stopped reading the upload for {:?}", self.limits.body_idle))
                }
                Upload::Sent(at) if at.elapsed() > self.limits.response => {
                    Some(format!("no answer within {:?} of the end of the upload", self.limits.response))
                }
                Upload::Handed(_) | Upload::Sent(_) => None,
            };
            if let Some(why) = stalled {
                return Err(TargetError::Unreachable { endpoint: self.target.clone(), why });
            }
        };
        let response = answered.map_err(|e| self.failed(&e))?;
        let body = expect(response, &self.target, StatusCode::CREATED, Some(id), self.limits.body_idle).await?;
        let stored: Stored = serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))?;
        Ok(stored.size)
    }

    /// Streams `range` of a blob: exactly `range`'s length, each piece within
    /// `body_idle` of the last. Errors before the first byte are returned
    /// here; after it, they end the stream.
    pub async fn read(&self, id: BlobId, range: Range<u64>) -> Result<ByteStream, TargetError> {
        let path = format!("{}?start={}&end={}", blob_path(id), range.start, range.end);
        let request = self.request(Method::GET, &path, empty())?;
        let response = self.send(request, self.limits.response).await?;
        if response.status() != StatusCode::OK {
            let e = expect(response, &self.target, StatusCode::OK, Some(id), self.limits.body_idle).await.err();
            return Err(e.unwrap_or_else(|| self.protocol("unexpected answer".into())));
        }
        let expected = range.end - range.start;
        check_length(&response, expected).map_err(|why| self.protocol(why))?;
        let body = response.into_body().into_data_stream();
        Ok(exact_body(body, expected, self.limits.body_idle, self.target.clone()))
    }

    pub async fn delete(&self, id: BlobId) -> Result<(), TargetError> {
        let request = self.request(Method::DELETE, &blob_path(id), empty())?;
        let response = self.send(request, self.limits.response).await?;
        expect(response, &self.target, StatusCode::NO_CONTENT, Some(id), self.limits.body_idle).await.map(drop)
    }
}

/// Where an upload's body stands, for the watchdog of [`NodeLink::put`].
#[derive(Debug, Clone, Copy)]
enum Upload {
    /// HTTP is asking for the next piece: the node is keeping up.
    Reading,
    /// A piece was handed over at this instant and HTTP has not asked again.
    Handed(Instant),
    /// The body ended at this instant: the answer is due.
    Sent(Instant),
}

struct Watched<S> {
    inner: Pin<Box<S>>,
    watch: Arc<Mutex<Upload>>,
}

impl<S: Stream<Item = Bytes> + Send> Stream for Watched<S> {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let polled = self.inner.as_mut().poll_next(cx);
        let state = match &polled {
            Poll::Pending => Upload::Reading,
            Poll::Ready(Some(_)) => Upload::Handed(Instant::now()),
            Poll::Ready(None) => Upload::Sent(Instant::now()),
        };
        *self.watch.lock().unwrap_or_else(PoisonError::into_inner) = state;
        polled
    }
}

/// `body` as a blob read: `expected` bytes, each piece within `idle` of the
/// last. One piece is held back until the next arrives or the body ends, so
/// a node that sends more than asked is refused before its excess, or the
/// piece that overflows, is passed on; memory stays one piece.
pub(crate) fn exact_body<S, E>(body: S, expected: u64, idle: Duration, target: String) -> ByteStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    struct State<S> {
        body: Pin<Box<S>>,
        held: Option<Bytes>,
        received: u64,
        done: bool,
    }
    let state = State { body: Box::pin(body), held: None, received: 0, done: false };
    let fail = move |why: String| coffre_core::Error::Io(std::io::Error::other(format!("target {target}: {why}")));
    Box::pin(futures::stream::unfold(state, move |mut s| {
        let fail = fail.clone();
        async move {
            if s.done {
                return None;
            }
            loop {
                let next = match tokio::time::timeout(idle, s.body.next()).await {
                    Err(_) => Some(Err(format!("sent nothing for {idle:?} while reading a blob"))),
                    Ok(Some(Err(e))) => Some(Err(format!("reading a blob failed: {e}"))),
                    Ok(Some(Ok(chunk))) => Some(Ok(chunk)),
                    Ok(None) => None,
                };
                match next {
                    Some(Err(why)) => {
                        s.done = true;
                        return Some((Err(fail(why)), s));
                    }
                    Some(Ok(chunk)) if chunk.is_empty() => {}
                    Some(Ok(chunk)) => {
                        s.received += chunk.len() as u64;
                        if s.received > expected {
                            s.done = true;
                            let why = format!("sent more than the {expected} bytes asked: refused");
                            return Some((Err(fail(why)), s));
                        }
                        if let Some(previous) = s.held.replace(chunk) {
                            return Some((Ok(previous), s));
                        }
                    }
                    None => {
                        s.done = true;
                        return s.held.take().map(|last| (Ok(last), s));
                    }
                }
            }
        }
    }))
}

/// A blob read whose head announces another length than the range asked
/// is refused before its body is read.
pub(crate) fn check_length<B>(response: &http::Response<B>, expected: u64) -> Result<(), String> {
    let Some(announced) = response.headers().get(http::header::CONTENT_LENGTH) else { return Ok(()) };
    let text = announced.to_str().unwrap_or("?");
    match text.parse::<u64>() {
        Ok(n) if n == expected => Ok(()),
        _ => Err(format!("announced {text} bytes for a read of {expected}: refused")),
    }
}

pub(crate) fn blob_path(id: BlobId) -> String {
    format!("/v1/blobs/{id}")
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The response's body (at most [`MAX_SMALL_ANSWER`] bytes, each piece
/// within `idle`) if its status is `want`, else the target's error.
pub(crate) async fn expect(
    response: http::Response<hyper::body::Incoming>,
    endpoint: &str,
    want: StatusCode,
    id: Option<BlobId>,
    idle: Duration,
) -> Result<Bytes, TargetError> {
    let status = response.status();
    let limited = Limited::new(response.into_body(), MAX_SMALL_ANSWER);
    let collected = tokio::time::timeout(idle, limited.collect()).await;
    let body = match collected {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(TargetError::Protocol {
                endpoint: endpoint.to_owned(),
                why: format!("its answer ({status}) is longer than {MAX_SMALL_ANSWER} bytes: refused"),
            });
        }
        Ok(Err(e)) => return Err(TargetError::Unreachable { endpoint: endpoint.to_owned(), why: e.to_string() }),
        Err(_) => {
            return Err(TargetError::Unreachable {
                endpoint: endpoint.to_owned(),
                why: format!("its answer ({status}) did not complete within {idle:?}"),
            });
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(pieces: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static {
        futures::stream::iter(pieces.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    async fn drain(stream: ByteStream) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn a_blob_read_passes_exactly_what_was_asked() {
        let idle = Duration::from_secs(1);
        let (bytes, err) = drain(exact_body(chunks(&[b"abc", b"def"]), 6, idle, "t".into())).await;
        assert_eq!((bytes.as_slice(), err), (&b"abcdef"[..], None));
        // More than asked: refused, and the piece that overflowed never passed.
        let (bytes, err) = drain(exact_body(chunks(&[b"abc", b"def", b"g"]), 6, idle, "t".into())).await;
        assert_eq!(bytes, b"abc");
        assert!(err.expect("refused").contains("more than the 6 bytes"));
    }

    #[tokio::test]
    async fn a_silent_node_is_given_up_after_the_idle_limit() {
        let stalled = chunks(&[b"abc"]).chain(futures::stream::pending());
        let started = Instant::now();
        let (_, err) = drain(exact_body(stalled, 6, Duration::from_millis(200), "par-1".into())).await;
        let err = err.expect("timed out");
        assert!(err.contains("par-1") && err.contains("sent nothing"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
