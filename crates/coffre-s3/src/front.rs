//! The HTTP edge of the S3 API: the listener's configuration, the
//! connection loop, and each request's way through guards, s3s and recording.
//!
//! Guards are in [`guards`](crate::guards), recording in
//! [`record`](crate::record), virtual hosts in [`vhost`](crate::vhost), and
//! patches over s3s's output in [`s3s_fixes`](crate::s3s_fixes).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coffre_core::service::ObjectService;
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

use crate::auth::KeyStore;
use crate::authorize::{Authorizer, Caller};
use crate::conn::{self, ConnLimits, Handshake};
use crate::cors::{self, CorsAsk};
use crate::error::error_response;
use crate::guards::{BodyVerdict, GuardedBody, check_header_size, precheck};
use crate::ops::CoffreS3;
use crate::record::{Access, Asked, BodyLimit, LoggedBody, RouteSlot, request_id};
pub use crate::record::{RequestObserver, RequestRecord, Settled};
use crate::s3s_fixes::{with_error_message, with_versions_in_order};
use crate::vhost::Domains;

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
    /// Connections served at once (see [`ConnLimits`]).
    pub max_connections: usize,
    /// Longest a write to a client may stay blocked.
    pub write_timeout: Duration,
    /// Largest aws-chunked chunk accepted.
    pub max_chunk_bytes: u64,
    /// Largest XML request body (DeleteObjects, CompleteMultipartUpload...).
    pub max_xml_bytes: usize,
    /// SSE-C keys are taken only where they cannot be read on the wire: on a
    /// TLS listener, or where the operator says a proxy terminates TLS.
    pub customer_keys_allowed: bool,
    /// Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed
    /// (`aws:SourceIp`, `aws:SecureTransport` in policies).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            domains: vec!["localhost".into()],
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            write_timeout: Duration::from_secs(60),
            max_chunk_bytes: 16 * 1024 * 1024,
            max_xml_bytes: 8 * 1024 * 1024,
            customer_keys_allowed: false,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct Front {
    s3: S3Service,
    /// Whether this listener speaks TLS (`aws:SecureTransport`), set by [`Front::serve`].
    secure: bool,
    config: Arc<FrontConfig>,
    observer: Arc<dyn RequestObserver>,
    domains: Domains,
    /// Read by the CORS answers, which come before s3s.
    service: Arc<ObjectService>,
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
            service: service.clone(),
            keys: keys.clone(),
            region: config.region.clone(),
            customer_keys_allowed: config.customer_keys_allowed,
        });
        let authorizer = Authorizer::new(service.clone(), keys.root_key().clone());
        builder.set_auth(keys);
        builder.set_access(Access { max_document_bytes: config.max_xml_bytes as u64, authorizer });
        builder.set_route(crate::sts::Sts);
        builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3_config))));
        let domains = Domains::new(&config.domains)?;
        builder.set_host(domains.clone());
        Ok(Self { s3: builder.build(), secure: false, config: Arc::new(config), observer, domains, service })
    }

    /// Accepts connections until `shutdown` resolves, then lets in-flight
    /// requests finish (up to `drain`). With a `handshake` (TLS), each
    /// connection goes through it first, under the header read timeout.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        handshake: Option<Arc<dyn Handshake>>,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) -> io::Result<()> {
        self.secure = handshake.is_some();
        let limits = ConnLimits {
            header_read_timeout: self.config.header_read_timeout,
            max_header_bytes: self.config.max_header_bytes,
            max_connections: self.config.max_connections,
            write_timeout: self.config.write_timeout,
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
        let counter = Arc::new(AtomicU64::new(0));
        let polled = Arc::new(AtomicBool::new(false));
        let expects_continue =
            req.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let empty_body = req.headers().get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
        let mut asked = Asked::of(&req, &self.domains);
        let cors = CorsAsk::of(req.method(), req.headers());
        let sts_call = crate::sts::is_sts_call(req.method(), req.uri(), req.headers());

        // A preflight is answered before s3s, as a refusal by the guards is.
        let checked = match cors.is_preflight() {
            true => Err(self.preflight(&req, &asked, &cors, &slot).await.into()),
            false => precheck(&self.config, &req),
        };
        let response = match checked {
            Err(rejected) => {
                asked.claims(None, rejected.claimed);
                rejected.response
            }
            Ok(claim) => {
                asked.claims(Some(claim.method), claim.access_key().map(str::to_owned));
                let (mut parts, body) = req.into_parts();
                let limit = BodyLimit::default();
                let body = GuardedBody::new(body, &parts.headers, &self.config, &verdict, &counter, &polled, &limit);
                parts.extensions.insert(slot.clone());
                parts.extensions.insert(limit);
                let caller = Caller::of(peer.ip(), self.secure, &parts.headers, &self.config.trusted_proxies);
                parts.extensions.insert(caller);
                let mut s3 = self.s3.clone();
                // The changes the request makes carry its id into the audit log.
                let call = tower::Service::call(&mut s3, Request::from_parts(parts, body));
                match coffre_core::witness::in_request(request_id.clone(), call).await {
                    Ok(resp) => match verdict.get() {
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
        let response = with_versions_in_order(with_error_message(response, &request_id).await).await;
        let response = if sts_call { crate::sts::in_query_form(response).await } else { response };
        let (mut parts, body) = response.into_parts();
        if !cors.is_preflight() {
            let read = slot.bucket_record();
            cors::actual(&self.service, asked.target().0.as_deref(), read, &cors, &mut parts.headers).await;
        }
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
        let info = slot.take();
        let mut record = asked.record(request_id, info, peer, &parts);
        record.bytes_in = counter.load(Ordering::Relaxed);
        record.bytes_out = body.size_hint().exact().unwrap_or(0);
        if let Err(why) = self.observer.before_response(&record).await {
            if !parts.status.is_server_error() {
                return self.unrecorded(record, why, &parts, started, counter);
            }
            // A 5xx acknowledges nothing and names what is down: it stands.
            tracing::error!(request_id = %record.request_id, error = %why, "the audit trail cannot record this refusal");
        }
        record.bytes_out = 0;
        Response::from_parts(parts, LoggedBody::new(body, record, started, counter, self.observer.clone()))
    }

    /// A CORS preflight: answered here from the bucket's rules, since browsers
    /// never sign one; only the header size guard applies (it has no body).
    async fn preflight(
        &self,
        req: &Request<Incoming>,
        asked: &Asked,
        cors: &CorsAsk,
        slot: &RouteSlot,
    ) -> Response<s3s::Body> {
        if let Err(rejected) = check_header_size(&self.config, req) {
            return rejected.response;
        }
        let (bucket, key) = asked.target();
        let response = cors::preflight(&self.service, bucket.as_deref(), cors).await;
        slot.route(cors::PREFLIGHT, bucket, key);
        response
    }

    /// The answer to a request the audit trail could not record: a 503, so
    /// that nothing is acknowledged without its event (a 5xx, which
    /// acknowledges nothing, is answered as it was instead).
    fn unrecorded(
        &self,
        mut record: RequestRecord,
        why: String,
        answered: &http::response::Parts,
        started: Instant,
        bytes_in: Arc<AtomicU64>,
    ) -> Response<LoggedBody> {
        tracing::error!(request_id = %record.request_id, error = %why, "the audit trail cannot record this request");
        let message = if answered.status.is_client_error() {
            "The audit log is unavailable: the answer to this request is withheld until it can be recorded; retry later."
        } else {
            "The request was processed but could not be recorded in the audit log; retry later."
        };
        let refused = error_response(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message);
        let (mut parts, body) = refused.into_parts();
        if let Some(id) = answered.headers.get("x-amz-request-id") {
            parts.headers.insert("x-amz-request-id", id.clone());
        }
        record.status = 503;
        record.error = Some("ServiceUnavailable".into());
        record.bytes_out = 0;
        Response::from_parts(parts, LoggedBody::new(body, record, started, bytes_in, self.observer.clone()))
    }
}
