//! CORS at the edge: preflight `OPTIONS` answered from the bucket's rules
//! without authentication, and the `Access-Control-*` headers of actual requests.
//!
//! Both read the one bucket record and ask the one matcher
//! ([`CorsConfig::grant`]); an Origin that no rule allows is never sent back.

use std::sync::Arc;

use coffre_core::cors::{CorsConfig, CorsGrant};
use coffre_core::meta::BucketRecord;
use coffre_core::service::ObjectService;
use coffre_core::types::BucketName;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::error::error_response;

/// The operation a preflight is recorded as.
pub const PREFLIGHT: &str = "CorsPreflight";

const VARY_PREFLIGHT: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// What a request asks of CORS, read before s3s takes it.
pub(crate) struct CorsAsk {
    origin: Option<String>,
    /// `Access-Control-Request-Method`: required on a preflight, and on an
    /// actual request it wins over the request's own method (the suite S3
    /// tools are judged by expects that; browsers send it on preflights only).
    asked_method: Option<String>,
    method: Method,
    request_headers: Vec<String>,
}

impl CorsAsk {
    pub(crate) fn of(method: &Method, headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request_headers = text("access-control-request-headers")
            .map(|h| h.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Self {
            origin: text("origin"),
            asked_method: text("access-control-request-method"),
            method: method.clone(),
            request_headers,
        }
    }

    pub(crate) fn is_preflight(&self) -> bool {
        self.method == Method::OPTIONS
    }
}

/// The bucket's CORS rules, if the bucket exists and has some.
async fn rules(service: &ObjectService, bucket: Option<&str>) -> Result<Option<CorsConfig>, coffre_core::Error> {
    let Some(name) = bucket.and_then(|b| BucketName::parse(b).ok()) else { return Ok(None) };
    Ok(service.meta().bucket(&name).await?.and_then(|b| b.cors))
}

/// The answer to a preflight request. Unauthenticated by design (browsers
/// never sign one): it reads the bucket record and nothing else, and says no
/// more than whether the request is allowed.
pub(crate) async fn preflight(service: &ObjectService, bucket: Option<&str>, ask: &CorsAsk) -> Response<s3s::Body> {
    let Some(origin) = ask.origin.as_deref() else {
        return bad_request("Insufficient information. Origin request header needed.");
    };
    let Some(method) = ask.asked_method.as_deref() else {
        return bad_request("Invalid Access-Control-Request-Method: null");
    };
    let config = match rules(service, bucket).await {
        Ok(Some(config)) => config,
        // A bucket that does not exist reads as one without rules: a preflight
        // does not say which buckets exist.
        Ok(None) => return forbidden("CORSResponse: CORS is not enabled for this bucket."),
        Err(e) => {
            tracing::error!(error = %e, "preflight could not read the bucket record");
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Please try again.");
        }
    };
    let requested: Vec<&str> = ask.request_headers.iter().map(String::as_str).collect();
    let Some(grant) = config.grant(origin, method, &requested) else {
        return forbidden(
            "CORSResponse: This CORS request is not allowed: no CORS rule of this bucket allows its Origin, \
             Access-Control-Request-Method and Access-Control-Request-Headers.",
        );
    };
    let mut resp = Response::new(s3s::Body::empty());
    let headers = resp.headers_mut();
    grant_headers(headers, &grant);
    set(headers, header::ACCESS_CONTROL_ALLOW_HEADERS, &ask.request_headers.join(", "));
    if let Some(age) = grant.rule.max_age_seconds {
        set(headers, header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
    }
    set(headers, header::VARY, VARY_PREFLIGHT);
    resp
}

/// Adds the `Access-Control-*` headers to the answer of an actual request
/// that carries an Origin a rule allows with its method; adds nothing
/// otherwise. The rules are those of `read`, the bucket's record as the
/// request's decision read it, when there is one (no second read).
pub(crate) async fn actual(
    service: &ObjectService,
    bucket: Option<&str>,
    read: Option<Arc<BucketRecord>>,
    ask: &CorsAsk,
    headers: &mut HeaderMap,
) {
    let Some(origin) = ask.origin.as_deref() else { return };
    let config = match read.filter(|r| Some(r.name.as_str()) == bucket) {
        Some(record) => record.cors.clone(),
        None => rules(service, bucket).await.ok().flatten(),
    };
    let Some(config) = config else { return };
    let method = ask.asked_method.as_deref().unwrap_or(ask.method.as_str());
    if let Some(grant) = config.grant(origin, method, &[]) {
        grant_headers(headers, &grant);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// The headers every allowed request gets, preflight or actual.
fn grant_headers(headers: &mut HeaderMap, grant: &CorsGrant<'_>) {
    let rule = grant.rule;
    set(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, grant.allow_origin);
    let methods: Vec<&str> = rule.methods.iter().map(|m| m.as_str()).collect();
    set(headers, header::ACCESS_CONTROL_ALLOW_METHODS, &methods.join(", "));
    set(headers, header::ACCESS_CONTROL_EXPOSE_HEADERS, &rule.expose_headers.join(", "));
}

/// Sets a header unless the value is empty. Values are the request's own
/// headers or stored rules validated as visible ASCII, so none is refused.
fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let (false, Ok(v)) = (value.is_empty(), HeaderValue::from_str(value)) {
        headers.insert(name, v);
    }
}

fn bad_request(message: &str) -> Response<s3s::Body> {
    error_response(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn forbidden(message: &str) -> Response<s3s::Body> {
    error_response(StatusCode::FORBIDDEN, "AccessForbidden", message)
}
