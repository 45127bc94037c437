//! The HTTP edge of the S3 API: connection limits, request guards that s3s
//! does not provide, request ids, and one log line and metric per request.
//!
//! Guards, in request order: header size and header read timeout (hyper);
//! presigned `X-Amz-Expires` at most 7 days and the credential scope's region
//! (before s3s sees the request); body size by `Content-Length`; then, while
//! the body streams, an idle timeout and a cap on each aws-chunked chunk (s3s
//! 0.14 buffers a whole chunk of whatever size the client declares).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coffre_core::service::{MAX_OBJECT_SIZE, ObjectService};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use s3s::access::{S3Access, S3AccessContext};
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Result, s3_error};
use tokio::net::TcpListener;

use crate::auth::KeyStore;
use crate::conn::{self, ConnLimits, Handshake};
use crate::ops::CoffreS3;

/// The longest presigned URL lifetime S3 allows.
const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct FrontConfig {
    pub region: String,
    /// Domains for virtual-host-style requests (`bucket.DOMAIN`).
    pub domains: Vec<String>,
    /// Largest request head hyper will buffer.
    pub max_header_bytes: usize,
    /// Time allowed to receive a request head.
    pub header_read_timeout: Duration,
    /// Longest pause allowed between two pieces of a request body.
    pub body_idle_timeout: Duration,
    /// Largest aws-chunked chunk accepted.
    pub max_chunk_bytes: u64,
    /// Largest XML request body (DeleteObjects, CompleteMultipartUpload...).
    pub max_xml_bytes: usize,
    /// SSE-C keys are taken only where they cannot be read on the wire: on a
    /// TLS listener, or where the operator says a proxy terminates TLS.
    pub customer_keys_allowed: bool,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            domains: vec!["localhost".into()],
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_chunk_bytes: 16 * 1024 * 1024,
            max_xml_bytes: 8 * 1024 * 1024,
            customer_keys_allowed: false,
        }
    }
}

/// One request, as logs, metrics and the audit trail see it. Never holds a
/// secret: the principal is the access key id, not the signature.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub request_id: String,
    pub operation: String,
    /// The operation was read from the request by [`inferred`](crate::inferred)
    /// because s3s refused it before routing.
    pub inferred: bool,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub version: Option<String>,
    /// The access key id the request was signed with, or claims to be.
    pub principal: Option<String>,
    pub source: SocketAddr,
    /// PUT, POST and DELETE: the request may change what is stored.
    pub mutating: bool,
    pub status: u16,
    /// The S3 error code of a failed request.
    pub error: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
}

pub type Settled<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait RequestObserver: Send + Sync + 'static {
    /// Called once the response is decided and before it is sent (bytes out
    /// are the declared length). An error replaces the response with a 503:
    /// the audit trail records a mutating request before it is acknowledged.
    fn before_response<'a>(&'a self, _record: &'a RequestRecord) -> Settled<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Called once the response body is sent or dropped.
    fn observe(&self, record: &RequestRecord);
}

/// The S3 error code of an error response, found while its body is read.
#[derive(Clone)]
struct ErrorCode(String);

/// What s3s learned about a request (operation, bucket, key), passed back
/// out through the request's extensions.
#[derive(Default)]
struct RouteInfo {
    operation: Option<String>,
    bucket: Option<String>,
    key: Option<String>,
}

#[derive(Clone, Default)]
struct RouteSlot(Arc<Mutex<RouteInfo>>);

/// Records the route and refuses anonymous requests: no policy grants
/// anonymous access yet, so every request must be signed.
struct Access;

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            s3s::path::S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        let operation = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<RouteSlot>()
            && let Ok(mut info) = slot.0.lock()
        {
            *info = RouteInfo { operation: Some(operation), bucket, key };
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(AccessDenied, "Anonymous access is not allowed: sign the request")),
        }
    }
}

/// Virtual-host routing: `BUCKET.DOMAIN[:port]` names a bucket; any other
/// host (the bare domain, an IP address, an unknown name) is path-style.
/// s3s's own parsers compare the Host header with its port and treat unknown
/// hosts as bucket names, which breaks `http://localhost:9000` endpoints.
#[derive(Clone)]
struct Domains(Vec<String>);

impl Domains {
    fn new(domains: &[String]) -> Result<Self, String> {
        for d in domains {
            let ok = !d.is_empty()
                && d.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if !ok {
                return Err(format!("invalid S3 domain {d:?}"));
            }
        }
        Ok(Self(domains.iter().map(|d| d.to_ascii_lowercase()).collect()))
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        for domain in &self.0 {
            if let Some(bucket) = name.strip_suffix(domain.as_str()).and_then(|b| b.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

/// A guard's verdict on a body, reported instead of whatever s3s makes of the broken stream.
#[derive(Clone, Default)]
struct BodyVerdict(Arc<OnceLock<(StatusCode, &'static str, String)>>);

#[derive(Clone)]
pub struct Front {
    s3: S3Service,
    config: Arc<FrontConfig>,
    observer: Arc<dyn RequestObserver>,
    domains: Domains,
}

impl Front {
    pub fn new(
        service: Arc<ObjectService>,
        keys: KeyStore,
        config: FrontConfig,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Self, String> {
        let mut s3_config = S3Config::default();
        s3_config.xml_max_body_size = config.max_xml_bytes;
        let mut builder = S3ServiceBuilder::new(CoffreS3 {
            service,
            keys: keys.clone(),
            region: config.region.clone(),
            customer_keys_allowed: config.customer_keys_allowed,
        });
        builder.set_auth(keys);
        builder.set_access(Access);
        builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3_config))));
        let domains = Domains::new(&config.domains)?;
        builder.set_host(domains.clone());
        Ok(Self { s3: builder.build(), config: Arc::new(config), observer, domains })
    }

    /// Accepts connections until `shutdown` resolves, then lets in-flight
    /// requests finish (up to `drain`). With a `handshake` (TLS), each
    /// connection goes through it first, under the header read timeout.
    pub async fn serve(
        self,
        listener: TcpListener,
        handshake: Option<Arc<dyn Handshake>>,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) -> io::Result<()> {
        let limits = ConnLimits {
            header_read_timeout: self.config.header_read_timeout,
            max_header_bytes: self.config.max_header_bytes,
        };
        conn::serve(listener, handshake, limits, |peer| self.connection_service(peer), shutdown, drain, "s3").await
    }

    fn connection_service(
        &self,
        peer: SocketAddr,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<LoggedBody>,
        Error = Infallible,
        Future: Send,
    > + use<> {
        let front = self.clone();
        hyper::service::service_fn(move |req| {
            let front = front.clone();
            async move { Ok::<_, Infallible>(front.handle(req, peer).await) }
        })
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<LoggedBody> {
        let started = Instant::now();
        let request_id = request_id();
        let slot = RouteSlot::default();
        let verdict = BodyVerdict::default();
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let polled = Arc::new(AtomicBool::new(false));
        let expects_continue =
            req.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let empty_body = req.headers().get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
        let asked = Asked::of(&req, &self.domains);

        let response = match self.precheck(&req) {
            Err(rejection) => rejection,
            Ok(()) => {
                let (mut parts, body) = req.into_parts();
                let chunked = is_aws_chunked(&parts.headers).then(|| ChunkScanner::new(self.config.max_chunk_bytes));
                let body = GuardedBody {
                    inner: body,
                    chunked,
                    idle: self.config.body_idle_timeout,
                    sleep: Box::pin(tokio::time::sleep(self.config.body_idle_timeout)),
                    verdict: verdict.clone(),
                    bytes: counter.clone(),
                    polled: polled.clone(),
                };
                parts.extensions.insert(slot.clone());
                let mut s3 = self.s3.clone();
                match tower::Service::call(&mut s3, Request::from_parts(parts, body)).await {
                    Ok(resp) => match verdict.0.get() {
                        // The body broke a guard: say so, whatever s3s made of it.
                        Some((status, code, message)) if !resp.status().is_success() => {
                            error_response(*status, code, message)
                        }
                        _ => resp,
                    },
                    Err(e) => {
                        tracing::error!(error = ?e, "S3 service failed");
                        error_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            "We encountered an internal error. Please try again.",
                        )
                    }
                }
            }
        };
        let response = with_versions_in_order(with_error_message(response).await).await;
        let (mut parts, body) = response.into_parts();
        if let Ok(v) = http::HeaderValue::from_str(&request_id) {
            parts.headers.insert("x-amz-request-id", v);
        }
        // hyper sends `100 Continue` only when a non-empty body is read. botocore
        // keeps the final status of an unanswered `Expect` on its pooled
        // connection and misreads the next response on it, so such a
        // connection is closed rather than reused.
        if expects_continue && (empty_body || !polled.load(Ordering::Relaxed)) {
            parts.headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        let info = slot.0.lock().map(|mut i| std::mem::take(&mut *i)).unwrap_or_default();
        let mut record = asked.record(request_id, info, peer, &parts);
        record.bytes_in = counter.load(Ordering::Relaxed);
        record.bytes_out = body.size_hint().exact().unwrap_or(0);
        if let Err(why) = self.observer.before_response(&record).await {
            return self.unrecorded(record, why, &parts, started, counter);
        }
        record.bytes_out = 0;
        Response::from_parts(parts, LoggedBody::new(body, record, started, counter, self.observer.clone()))
    }

    /// The answer to a request the audit trail could not record: a 503, so
    /// that nothing is acknowledged without its event.
    fn unrecorded(
        &self,
        mut record: RequestRecord,
        why: String,
        answered: &http::response::Parts,
        started: Instant,
        bytes_in: Arc<std::sync::atomic::AtomicU64>,
    ) -> Response<LoggedBody> {
        tracing::error!(request_id = %record.request_id, error = %why, "the audit trail cannot record this request");
        let refused = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The request was processed but could not be recorded in the audit log; retry later.",
        );
        let (mut parts, body) = refused.into_parts();
        if let Some(id) = answered.headers.get("x-amz-request-id") {
            parts.headers.insert("x-amz-request-id", id.clone());
        }
        record.status = 503;
        record.error = Some("ServiceUnavailable".into());
        record.bytes_out = 0;
        Response::from_parts(parts, LoggedBody::new(body, record, started, bytes_in, self.observer.clone()))
    }

    /// Checks what s3s would let through: presign lifetime, region, body size.
    #[allow(clippy::result_large_err)]
    fn precheck(&self, req: &Request<Incoming>) -> Result<(), Response<s3s::Body>> {
        let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes + req.uri().to_string().len() > self.config.max_header_bytes {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "RequestHeaderSectionTooLarge",
                &format!(
                    "Your request header section exceeds the maximum allowed size of {} bytes",
                    self.config.max_header_bytes
                ),
            ));
        }
        let query = req.uri().query().unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| urlencoding::decode(v).map(|c| c.into_owned()).unwrap_or_default())
        };
        if let Some(expires) = param("X-Amz-Expires") {
            match expires.parse::<u64>() {
                Ok(secs) if secs <= MAX_PRESIGN_SECS => {}
                _ => {
                    return Err(error_response(
                        StatusCode::BAD_REQUEST,
                        "AuthorizationQueryParametersError",
                        "X-Amz-Expires must be less than a week (in seconds) that is 604800",
                    ));
                }
            }
        }
        // Signature V2 (HMAC-SHA1, deprecated by AWS) is refused outright rather
        // than left to a code path nothing here tests.
        let v2_header =
            req.headers().get(http::header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(b"AWS "));
        if v2_header || (param("AWSAccessKeyId").is_some() && param("Signature").is_some()) {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Signature Version 2 is not supported; sign requests with AWS Signature Version 4 (AWS4-HMAC-SHA256).",
            ));
        }
        if let Some(auth) = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
            && let Some(fields) = auth.strip_prefix("AWS4-HMAC-SHA256")
        {
            let has = |name: &str| fields.split(',').any(|f| f.trim().starts_with(name));
            if !(has("Credential=") && has("SignedHeaders=") && has("Signature=")) {
                return Err(error_response(
                    StatusCode::BAD_REQUEST,
                    "AuthorizationHeaderMalformed",
                    "The authorization header is malformed; it must contain Credential, SignedHeaders and Signature.",
                ));
            }
        }
        let (scope, in_query) = match param("X-Amz-Credential") {
            Some(c) => (Some(c), true),
            None => (authorization_credential(req.headers()), false),
        };
        if let Some(region) = scope.as_deref().and_then(scope_region)
            && region != self.config.region
        {
            let (code, what) = if in_query {
                ("AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter")
            } else {
                ("AuthorizationHeaderMalformed", "The authorization header is malformed")
            };
            let message = format!("{what}; the region '{region}' is wrong; expecting '{}'", self.config.region);
            return Err(error_response(StatusCode::BAD_REQUEST, code, &message));
        }
        let header_u64 =
            |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let decoded = header_u64("x-amz-decoded-content-length");
        // aws-chunked framing adds well under 2% to the payload.
        let raw_limit = MAX_OBJECT_SIZE + MAX_OBJECT_SIZE / 50;
        if decoded.is_some_and(|n| n > MAX_OBJECT_SIZE) || header_u64("content-length").is_some_and(|n| n > raw_limit) {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed object size of 5 GiB; use a multipart upload.",
            ));
        }
        Ok(())
    }
}

/// What a request asks for, read before s3s takes it: enough to name one
/// that s3s refuses before routing, and who signed it.
struct Asked {
    method: http::Method,
    path: String,
    query: String,
    copy: bool,
    host_bucket: Option<String>,
    principal: Option<String>,
    version: Option<String>,
}

impl Asked {
    fn of(req: &Request<Incoming>, domains: &Domains) -> Self {
        let query = req.uri().query().unwrap_or("").to_owned();
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| urlencoding::decode(v).map(|c| c.into_owned()).unwrap_or_else(|_| v.to_owned()))
        };
        let credential = param("X-Amz-Credential").or_else(|| authorization_credential(req.headers()));
        let principal = credential.and_then(|c| c.split('/').next().map(str::to_owned)).filter(|p| !p.is_empty());
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let host_bucket = domains.parse_host_header(host).ok().and_then(|v| v.bucket().map(str::to_owned));
        Self {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            copy: req.headers().contains_key("x-amz-copy-source"),
            host_bucket,
            principal,
            version: param("versionId"),
            query,
        }
    }

    fn record(
        self,
        request_id: String,
        info: RouteInfo,
        source: SocketAddr,
        parts: &http::response::Parts,
    ) -> RequestRecord {
        let mutating = !matches!(self.method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS);
        let (operation, bucket, key, inferred) = match info.operation {
            Some(op) => (op, info.bucket, info.key, false),
            None => {
                let (op, bucket, key) = crate::inferred::infer(
                    &self.method,
                    &self.path,
                    &self.query,
                    self.copy,
                    self.host_bucket.as_deref(),
                );
                (op, bucket, key, true)
            }
        };
        let version = parts.headers.get("x-amz-version-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        RequestRecord {
            request_id,
            operation,
            inferred,
            bucket,
            key,
            version: version.or(self.version),
            principal: self.principal,
            source,
            mutating,
            status: parts.status.as_u16(),
            error: parts.extensions.get::<ErrorCode>().map(|c| c.0.clone()),
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::ZERO,
        }
    }
}

fn request_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string().to_ascii_uppercase();
    id[..16].to_owned()
}

/// The order of versions and delete markers in a ListObjectVersions page
/// (`true` for a marker), handed from the operation to the front.
#[derive(Clone, Debug)]
pub(crate) struct VersionOrder(pub Vec<bool>);

/// s3s serialises a version listing as all `<Version>`s, then all
/// `<DeleteMarker>`s; S3 interleaves them per key, newest first, and clients
/// that read the document in order rely on it. Puts them back in order.
fn interleave_versions(xml: &str, order: &[bool]) -> Option<String> {
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut rest = String::with_capacity(xml.len());
    let mut insert_at = None;
    let mut i = 0;
    while i < xml.len() {
        let next = [("<Version>", "</Version>", false), ("<DeleteMarker>", "</DeleteMarker>", true)]
            .into_iter()
            .filter_map(|(open, close, marker)| xml[i..].find(open).map(|at| (i + at, open, close, marker)))
            .min_by_key(|(at, ..)| *at);
        let Some((at, _open, close, marker)) = next else {
            rest.push_str(&xml[i..]);
            break;
        };
        let end = at + xml[at..].find(close)? + close.len();
        rest.push_str(&xml[i..at]);
        insert_at.get_or_insert(rest.len());
        if marker {
            markers.push(&xml[at..end])
        } else {
            versions.push(&xml[at..end])
        }
        i = end;
    }
    if versions.len() + markers.len() != order.len() {
        return None;
    }
    let (mut v, mut m) = (versions.into_iter(), markers.into_iter());
    let entries: String = order
        .iter()
        .map(|&is_marker| if is_marker { m.next() } else { v.next() })
        .collect::<Option<Vec<_>>>()?
        .concat();
    let at = insert_at.unwrap_or(rest.len());
    rest.insert_str(at, &entries);
    Some(rest)
}

async fn with_versions_in_order(resp: Response<s3s::Body>) -> Response<s3s::Body> {
    let Some(VersionOrder(order)) = resp.extensions().get::<VersionOrder>().cloned() else { return resp };
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = http_body_util::BodyExt::collect(body).await else {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "listing body lost");
    };
    let bytes = collected.to_bytes();
    let fixed = std::str::from_utf8(&bytes).ok().and_then(|xml| interleave_versions(xml, &order));
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, s3s::Body::from(fixed.map_or(bytes, Bytes::from)))
}

/// Some errors s3s raises itself (a bad bucket name in the path, a malformed
/// Authorization header) carry no `<Message>`; clients and people expect one.
async fn with_error_message(resp: Response<s3s::Body>) -> Response<s3s::Body> {
    const SMALL: u64 = 64 * 1024;
    let is_error = resp.status().is_client_error() || resp.status().is_server_error();
    if !is_error || resp.body().size_hint().upper().is_none_or(|n| n > SMALL) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(collected) = http_body_util::BodyExt::collect(body).await else {
        return Response::from_parts(parts, s3s::Body::empty());
    };
    let bytes = collected.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let code = text.find("</Code>").map(|end| text[..end].rsplit("<Code>").next().unwrap_or("").to_owned());
    let patched = match (&code, text.contains("<Message>")) {
        (Some(code), false) => {
            let end = text.find("</Code>").unwrap_or(0);
            let message = xml_escape(default_message(code));
            Some(format!("{}<Message>{message}</Message>{}", &text[..end + 7], &text[end + 7..]))
        }
        _ => None,
    };
    let mut resp = Response::from_parts(parts, s3s::Body::from(patched.map_or(bytes, Bytes::from)));
    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
    if let Some(code) = code.filter(|c| !c.is_empty()) {
        resp.extensions_mut().insert(ErrorCode(code));
    }
    resp
}

fn default_message(code: &str) -> &'static str {
    match code {
        "InvalidBucketName" => "The specified bucket is not valid.",
        "AccessDenied" => "Access Denied",
        "AuthorizationHeaderMalformed" => "The authorization header is malformed.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "RequestTimeTooSkewed" => "The difference between the request time and the current time is too large.",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "NotImplemented" => "A header or query you provided implies functionality that is not implemented.",
        "InvalidRequest" => "The request is not valid.",
        "InvalidArgument" => "Invalid Argument",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchBucket" => "The specified bucket does not exist.",
        _ => "The request could not be processed.",
    }
}

fn is_aws_chunked(headers: &HeaderMap) -> bool {
    headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("STREAMING-"))
}

/// The `Credential=` value of a SigV4 Authorization header.
fn authorization_credential(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?;
    let cred = rest.split(',').map(str::trim).find_map(|p| p.strip_prefix("Credential="))?;
    Some(cred.to_owned())
}

/// `AKID/date/region/service/aws4_request` → region.
fn scope_region(credential: &str) -> Option<&str> {
    let parts: Vec<&str> = credential.rsplitn(4, '/').collect();
    (parts.len() == 4 && parts[0] == "aws4_request").then(|| parts[2])
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
        xml_escape(code),
        xml_escape(message)
    );
    let mut resp = Response::new(s3s::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    resp
}

/// Follows aws-chunked framing (`hex-size;chunk-signature=...\r\n<data>\r\n`)
/// without buffering, to refuse oversized chunks before s3s buffers them.
struct ChunkScanner {
    max: u64,
    state: ChunkState,
}

enum ChunkState {
    Header(Vec<u8>),
    Data(u64),
    Done,
}

const MAX_CHUNK_HEADER: usize = 4096;

impl ChunkScanner {
    fn new(max: u64) -> Self {
        Self { max, state: ChunkState::Header(Vec::new()) }
    }

    fn scan(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            match &mut self.state {
                ChunkState::Done => return Ok(()),
                ChunkState::Data(remaining) => {
                    let n = (*remaining).min(data.len() as u64);
                    *remaining -= n;
                    data = &data[n as usize..];
                    if *remaining == 0 {
                        self.state = ChunkState::Header(Vec::new());
                    }
                }
                ChunkState::Header(line) => match data.iter().position(|&b| b == b'\n') {
                    None => {
                        line.extend_from_slice(data);
                        if line.len() > MAX_CHUNK_HEADER {
                            return Err("aws-chunked chunk header is too long".into());
                        }
                        return Ok(());
                    }
                    Some(i) => {
                        line.extend_from_slice(&data[..i]);
                        data = &data[i + 1..];
                        let text = String::from_utf8_lossy(line);
                        let size_hex = text.trim_end_matches('\r').split(';').next().unwrap_or("").trim();
                        // Malformed framing is s3s's to reject; we only police sizes.
                        let Ok(size) = u64::from_str_radix(size_hex, 16) else {
                            self.state = ChunkState::Done;
                            return Ok(());
                        };
                        if size > self.max {
                            return Err(format!(
                                "aws-chunked chunk of {size} bytes exceeds the limit of {} bytes",
                                self.max
                            ));
                        }
                        self.state = if size == 0 { ChunkState::Done } else { ChunkState::Data(size + 2) };
                    }
                },
            }
        }
        Ok(())
    }
}

struct GuardedBody {
    inner: Incoming,
    /// Set once the service asks for the body (hyper then sends `100 Continue`).
    polled: Arc<AtomicBool>,
    chunked: Option<ChunkScanner>,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    verdict: BodyVerdict,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl GuardedBody {
    fn refuse(&self, status: StatusCode, code: &'static str, message: String) -> io::Error {
        let err = io::Error::new(io::ErrorKind::InvalidData, message.clone());
        let _ = self.verdict.0.set((status, code, message));
        err
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        this.polled.store(true, Ordering::Relaxed);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                if let Some(data) = frame.data_ref() {
                    this.bytes.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    if let Some(scanner) = &mut this.chunked
                        && let Err(why) = scanner.scan(data)
                    {
                        return Poll::Ready(Some(Err(this.refuse(StatusCode::BAD_REQUEST, "InvalidRequest", why))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(io::Error::other(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let why = "Your socket connection to the server was not read from or written to within the timeout period.";
                    Poll::Ready(Some(Err(this.refuse(StatusCode::BAD_REQUEST, "RequestTimeout", why.into()))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body, counted as it goes out; logs the request when done.
pub struct LoggedBody {
    inner: s3s::Body,
    record: Option<RequestRecord>,
    started: Instant,
    bytes_in: Arc<std::sync::atomic::AtomicU64>,
    observer: Arc<dyn RequestObserver>,
}

impl LoggedBody {
    fn new(
        inner: s3s::Body,
        record: RequestRecord,
        started: Instant,
        bytes_in: Arc<std::sync::atomic::AtomicU64>,
        observer: Arc<dyn RequestObserver>,
    ) -> Self {
        Self { inner, record: Some(record), started, bytes_in, observer }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let (Some(data), Some(record)) = (frame.data_ref(), this.record.as_mut())
        {
            record.bytes_out += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else { return };
        record.duration = self.started.elapsed();
        record.bytes_in = self.bytes_in.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            target: "coffre::request",
            request_id = %record.request_id,
            op = %record.operation,
            bucket = record.bucket.as_deref().unwrap_or("-"),
            key = record.key.as_deref().unwrap_or("-"),
            status = record.status,
            bytes_in = record.bytes_in,
            bytes_out = record.bytes_out,
            duration_ms = record.duration.as_secs_f64() * 1000.0,
        );
        self.observer.observe(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_route_buckets_only_under_known_domains() {
        let d = Domains::new(&["localhost".into(), "s3.example.fr".into()]).expect("domains");
        let bucket = |h: &'static str| d.parse_host_header(h).ok().and_then(|v| v.bucket().map(str::to_owned));
        assert_eq!(bucket("bkt.localhost:9000"), Some("bkt".into()));
        assert_eq!(bucket("my.dotted.bkt.s3.example.fr"), Some("my.dotted.bkt".into()));
        assert_eq!(bucket("localhost:9000"), None);
        assert_eq!(bucket("127.0.0.1:9000"), None);
        assert_eq!(bucket("other.example.com"), None);
        assert!(Domains::new(&["bad domain".into()]).is_err());
    }

    #[test]
    fn versions_and_markers_are_interleaved_in_listing_order() {
        let xml = "<R><Name>b</Name><Version><Key>a</Key><VersionId>2</VersionId></Version>\
                   <Version><Key>b</Key></Version><DeleteMarker><Key>a</Key></DeleteMarker><MaxKeys>9</MaxKeys></R>";
        let fixed = interleave_versions(xml, &[true, false, false]).expect("same count");
        assert_eq!(
            fixed,
            "<R><Name>b</Name><DeleteMarker><Key>a</Key></DeleteMarker><Version><Key>a</Key><VersionId>2</VersionId>\
             </Version><Version><Key>b</Key></Version><MaxKeys>9</MaxKeys></R>"
                .replace("\n", "")
        );
        assert!(interleave_versions(xml, &[true]).is_none(), "a count mismatch leaves the body alone");
    }

    #[test]
    fn scope_region_is_the_third_field_from_the_end() {
        assert_eq!(scope_region("AKID/20250101/eu-west-3/s3/aws4_request"), Some("eu-west-3"));
        assert_eq!(scope_region("AK/ID/20250101/us-east-1/s3/aws4_request"), Some("us-east-1"));
        assert_eq!(scope_region("garbage"), None);
    }

    #[test]
    fn chunk_scanner_follows_framing_across_splits() {
        let mut body = Vec::new();
        for size in [5usize, 3] {
            body.extend_from_slice(format!("{size:x};chunk-signature=abc\r\n").as_bytes());
            body.extend(std::iter::repeat_n(b'x', size));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0;chunk-signature=def\r\n\r\n");
        for split in 1..body.len() {
            let mut s = ChunkScanner::new(8);
            assert!(s.scan(&body[..split]).is_ok());
            assert!(s.scan(&body[split..]).is_ok());
            assert!(matches!(s.state, ChunkState::Done));
        }
        let mut s = ChunkScanner::new(4);
        assert!(s.scan(&body).is_err(), "a 5-byte chunk is over a 4-byte cap");
        let mut s = ChunkScanner::new(1 << 20);
        assert!(s.scan(b"ffffffffff;chunk-signature=x\r\n").is_err());
    }
}
