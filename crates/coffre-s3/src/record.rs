//! Request recording: what each request was (operation, bucket, key,
//! principal, status, bytes, duration), handed to the observer (audit trail,
//! metrics) before the response is sent, and one log line once it is done.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coffre_core::meta::BucketRecord;
use http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use s3s::access::{S3Access, S3AccessContext};
use s3s::host::S3Host as _;
use s3s::{S3Result, s3_error};

use crate::authorize::Authorizer;
use crate::claim::AuthMethod;
use crate::vhost::Domains;

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
    /// The access key id whose signature s3s verified; `None` for an
    /// anonymous request and for one whose signature was not verified.
    pub principal: Option<String>,
    /// The access key id a request named but that was not verified (a bad
    /// signature, an unknown key, a request refused before verification).
    /// Never set together with `principal`.
    pub claimed: Option<String>,
    /// How the request said it was authenticated; `None` when it was
    /// refused before that was read (header size, form uploads) or could not
    /// be read unambiguously.
    pub auth: Option<AuthMethod>,
    pub source: SocketAddr,
    /// PUT, POST and DELETE: the request may change what is stored.
    pub mutating: bool,
    pub status: u16,
    /// The S3 error code of a failed request.
    pub error: Option<String>,
    /// Why authorization refused the request (the deciding statements, or
    /// that none allowed it); `None` when it was not refused there.
    pub denied_because: Option<String>,
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
pub(crate) struct ErrorCode(pub(crate) String);

/// What s3s learned about a request (operation, bucket, key, and the access
/// key whose signature it verified), passed back out through the request's
/// extensions.
#[derive(Default)]
pub(crate) struct RouteInfo {
    operation: Option<String>,
    bucket: Option<String>,
    key: Option<String>,
    principal: Option<String>,
    denied_because: Option<String>,
    /// The bucket's record as the decision read it: the answer's CORS
    /// headers come from it rather than from another read.
    bucket_record: Option<Arc<BucketRecord>>,
}

/// Bound on the refusals one event lists (a DeleteObjects names 1,000 keys).
const MAX_DENIALS_NOTED: usize = 4096;

#[derive(Clone, Default)]
pub(crate) struct RouteSlot(Arc<Mutex<RouteInfo>>);

impl RouteSlot {
    /// Adds a refusal made inside an operation (a key of DeleteObjects); an
    /// event keeps the first few, up to [`MAX_DENIALS_NOTED`] bytes.
    pub(crate) fn note_denial(&self, why: &str) {
        if let Ok(mut info) = self.0.lock() {
            let all = match info.denied_because.take() {
                Some(before) if before.len() >= MAX_DENIALS_NOTED => before,
                Some(before) => format!("{before}; {why}"),
                None => why.to_owned(),
            };
            info.denied_because = Some(all);
        }
    }

    /// Names a request the front answers itself, without s3s (a CORS preflight).
    pub(crate) fn route(&self, operation: &str, bucket: Option<String>, key: Option<String>) {
        if let Ok(mut info) = self.0.lock() {
            *info = RouteInfo { operation: Some(operation.to_owned()), bucket, key, ..RouteInfo::default() };
        }
    }

    /// Names a request s3s verified and hands to a route of ours (STS).
    pub(crate) fn verified(&self, operation: &str, principal: &str) {
        if let Ok(mut info) = self.0.lock() {
            *info = RouteInfo {
                operation: Some(operation.to_owned()),
                principal: Some(principal.to_owned()),
                ..RouteInfo::default()
            };
        }
    }

    /// The record of the request's bucket, if its decision read it.
    pub(crate) fn bucket_record(&self) -> Option<Arc<BucketRecord>> {
        self.0.lock().ok().and_then(|info| info.bucket_record.clone())
    }

    /// What s3s learned, once it is done with the request.
    pub(crate) fn take(&self) -> RouteInfo {
        self.0.lock().map(|mut i| std::mem::take(&mut *i)).unwrap_or_default()
    }
}

/// Records the route and the verified principal, authorizes the request
/// ([`Authorizer`]: anonymous requests only where a bucket policy allows
/// them), refuses ACLs other than the owner's, and bounds the body of every
/// operation that s3s reads whole. s3s calls it once the signature is
/// verified (`cx.credentials()` is what the verifier accepted) and the
/// operation resolved, before any body is read.
pub(crate) struct Access {
    /// The largest body s3s may read whole (XML and JSON documents).
    pub(crate) max_document_bytes: u64,
    pub(crate) authorizer: Authorizer,
}

/// Operations whose body is streamed to storage rather than read whole.
const STREAMED: [&str; 2] = ["PutObject", "UploadPart"];

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            s3s::path::S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        let operation = cx.s3_op().name().to_owned();
        let principal = cx.credentials().map(|c| c.access_key.clone());
        if let Some(slot) = cx.extensions_mut().get::<RouteSlot>()
            && let Ok(mut info) = slot.0.lock()
        {
            *info = RouteInfo { operation: Some(operation.clone()), bucket, key, principal, ..RouteInfo::default() };
        }
        let grant = match self.authorizer.authorize(cx).await {
            Ok(grant) => grant,
            Err(denied) => {
                if let Some(slot) = cx.extensions_mut().get::<RouteSlot>()
                    && let Ok(mut info) = slot.0.lock()
                {
                    info.denied_because = Some(denied.why);
                }
                return Err(denied.error);
            }
        };
        let block_public_acls = grant.block_public_acls;
        if let Some(slot) = cx.extensions_mut().get::<RouteSlot>()
            && let Ok(mut info) = slot.0.lock()
        {
            info.bucket_record = grant.buckets.first().cloned();
        }
        cx.extensions_mut().insert(grant);
        // After the decision, as AWS: a denied request is a 403 whatever its ACL.
        crate::ops::acl::refuse_acl_headers(&operation, cx.headers(), block_public_acls)?;
        if !STREAMED.contains(&cx.s3_op().name()) {
            self.bound_document(cx)?;
        }
        Ok(())
    }
}

impl Access {
    /// s3s 0.14 answers a document over its limit with a 500 when the body
    /// streams in (its `Limited` error is not the one it checks for): refuse
    /// a declared length over the bound before reading, and have the guards
    /// stop an undeclared one ([`BodyLimit`]).
    fn bound_document(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let declared =
            cx.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_document_bytes) {
            return Err(s3_error!(
                MaxMessageLengthExceeded,
                "Your request was too big: this operation's body is at most {} bytes",
                self.max_document_bytes
            ));
        }
        if let Some(limit) = cx.extensions_mut().get::<BodyLimit>() {
            limit.0.store(self.max_document_bytes, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The most bytes the guards let through a request's body, set by
/// [`Access`] once the operation is known (unbounded until then).
#[derive(Clone)]
pub(crate) struct BodyLimit(pub(crate) Arc<AtomicU64>);

impl Default for BodyLimit {
    fn default() -> Self {
        Self(Arc::new(AtomicU64::new(u64::MAX)))
    }
}

/// What a request asks for, read before s3s takes it: enough to name one
/// that s3s refuses before routing. Who it claims to be is set by the front
/// from the guards' one reading of its authentication ([`Asked::claims`]).
pub(crate) struct Asked {
    method: http::Method,
    path: String,
    query: String,
    copy: bool,
    host_bucket: Option<String>,
    claimed: Option<String>,
    auth: Option<AuthMethod>,
    version: Option<String>,
}

impl Asked {
    pub(crate) fn of(req: &Request<Incoming>, domains: &Domains) -> Self {
        let query = req.uri().query().unwrap_or("").to_owned();
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| urlencoding::decode(v).map(|c| c.into_owned()).unwrap_or_else(|_| v.to_owned()))
        };
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let host_bucket = domains.parse_host_header(host).ok().and_then(|v| v.bucket().map(str::to_owned));
        Self {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            copy: req.headers().contains_key("x-amz-copy-source"),
            host_bucket,
            claimed: None,
            auth: None,
            version: param("versionId"),
            query,
        }
    }

    /// Notes how the request says it is authenticated and the access key it
    /// names (unverified), as the guards read them.
    pub(crate) fn claims(&mut self, auth: Option<AuthMethod>, claimed: Option<String>) {
        self.auth = auth;
        self.claimed = claimed;
    }

    /// The bucket and key the request's path (or virtual host) names.
    pub(crate) fn target(&self) -> (Option<String>, Option<String>) {
        let (_, bucket, key) =
            crate::inferred::infer(&self.method, &self.path, &self.query, self.copy, self.host_bucket.as_deref());
        (bucket, key)
    }

    pub(crate) fn record(
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
            claimed: if info.principal.is_some() { None } else { self.claimed },
            principal: info.principal,
            auth: self.auth,
            source,
            mutating,
            status: parts.status.as_u16(),
            error: parts.extensions.get::<ErrorCode>().map(|c| c.0.clone()),
            denied_because: info.denied_because,
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::ZERO,
        }
    }
}

pub(crate) fn request_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string().to_ascii_uppercase();
    id[..16].to_owned()
}

/// The response body, counted as it goes out; logs the request when done.
pub struct LoggedBody {
    inner: s3s::Body,
    record: Option<RequestRecord>,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
    observer: Arc<dyn RequestObserver>,
}

impl LoggedBody {
    pub(crate) fn new(
        inner: s3s::Body,
        record: RequestRecord,
        started: Instant,
        bytes_in: Arc<AtomicU64>,
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
        record.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        tracing::info!(
            target: "coffre::request",
            request_id = %record.request_id,
            op = %record.operation,
            bucket = record.bucket.as_deref().unwrap_or("-"),
            key = record.key.as_deref().unwrap_or("-"),
            auth = record.auth.map_or("-", AuthMethod::as_str),
            principal = record.principal.as_deref().unwrap_or("-"),
            claimed = record.claimed.as_deref().unwrap_or("-"),
            status = record.status,
            error = record.error.as_deref().unwrap_or("-"),
            bytes_in = record.bytes_in,
            bytes_out = record.bytes_out,
            duration_ms = record.duration.as_secs_f64() * 1000.0,
        );
        self.observer.observe(&record);
    }
}
