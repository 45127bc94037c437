//! STS on the S3 listener: the AWS query protocol (a form-encoded `POST /`
//! signed for the `sts` service), as `aws sts` and boto3 send it.
//!
//! Only `GetCallerIdentity` is served: who the signature says the caller is.
//! Until tenants exist an access key is its own account, so the caller is
//! `arn:aws:iam::KEYID:root`, as bucket policies name it
//! (docs/access-policies.md). Other actions answer `InvalidAction`.

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

use crate::record::RouteSlot;

/// The query protocol's API version for STS.
const VERSION: &str = "2011-06-15";
/// The most of a form body s3s reads, to hash it, before the signature is
/// checked (its `MAX_STS_BODY_SIZE`); a form is read no further.
const MAX_FORM_BYTES: usize = 8192;

/// Whether a request has the shape of an STS call: `POST /` with no query
/// and a form body. The guards let the `sts` service sign only these, and
/// only these reach [`Sts`].
pub(crate) fn is_sts_call(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    let form = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    method == Method::POST && uri.path() == "/" && uri.query().is_none_or(str::is_empty) && form
}

/// The STS route s3s calls for [`is_sts_call`] requests, once their
/// signature is verified.
pub struct Sts;

#[async_trait::async_trait]
impl S3Route for Sts {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, _: &mut http::Extensions) -> bool {
        is_sts_call(method, uri, headers)
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let Some(caller) = req.credentials.as_ref().map(|c| c.access_key.clone()) else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let form = req.input.store_all_limited(MAX_FORM_BYTES).await;
        let fields: Vec<(String, String)> =
            form.ok().and_then(|f| serde_urlencoded::from_bytes(&f).ok()).unwrap_or_default();
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let action = field("Action").filter(|a| a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric()));
        if let Some(slot) = req.extensions.get::<RouteSlot>() {
            slot.verified(&format!("sts:{}", action.unwrap_or("Unknown")), &caller);
        }
        if req.service.as_deref() != Some("sts") {
            return Ok(error("IncompleteSignature", "An STS call is signed for the sts service."));
        }
        match (action, field("Version")) {
            (Some("GetCallerIdentity"), Some(VERSION)) => Ok(caller_identity(&caller)),
            (Some(_), Some(VERSION)) => {
                Ok(error("InvalidAction", &format!("Coffre serves only GetCallerIdentity of STS {VERSION}.")))
            }
            (Some(_), _) => Ok(error("InvalidParameterValue", &format!("The Version must be {VERSION}."))),
            (None, _) => Ok(error("MissingAction", "The form body names no valid Action.")),
        }
    }
}

/// `GetCallerIdentityResponse` for an access key (an id is letters and digits).
fn caller_identity(key: &str) -> S3Response<Body> {
    let body = format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/{VERSION}/\"><GetCallerIdentityResult>\
         <Arn>arn:aws:iam::{key}:root</Arn><UserId>{key}</UserId><Account>{key}</Account>\
         </GetCallerIdentityResult></GetCallerIdentityResponse>"
    );
    xml(StatusCode::OK, body)
}

/// A client's error (400) in the query protocol's shape (`ErrorResponse`),
/// which AWS's clients read for STS, rather than S3's bare `Error`. The
/// message is never the client's text.
fn error(code: &str, message: &str) -> S3Response<Body> {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/{VERSION}/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
    );
    xml(StatusCode::BAD_REQUEST, body)
}

fn xml(status: StatusCode, body: String) -> S3Response<Body> {
    let mut response = S3Response::with_status(Body::from(body), status);
    response.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

/// An error answered to an STS call before it reached [`Sts`] (a wrong
/// signature, an unknown or disabled key) is in S3's bare `<Error>` form,
/// which AWS's query-protocol clients cannot read: it is wrapped in
/// `ErrorResponse`, whose `Error` also says who erred (`Type`).
pub(crate) async fn in_query_form(resp: http::Response<Body>) -> http::Response<Body> {
    const SMALL: u64 = 64 * 1024;
    let status = resp.status();
    if status.is_success() || http_body::Body::size_hint(resp.body()).upper().is_none_or(|n| n > SMALL) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = http_body_util::BodyExt::collect(body).await else {
        return http::Response::from_parts(parts, Body::empty());
    };
    let bytes = collected.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let (Some(start), Some(end)) = (text.find("<Error>"), text.rfind("</Error>")) else {
        return http::Response::from_parts(parts, Body::from(bytes));
    };
    if text.contains("<ErrorResponse") {
        return http::Response::from_parts(parts, Body::from(bytes));
    }
    let kind = if status.is_server_error() { "Receiver" } else { "Sender" };
    let inner = &text[start + "<Error>".len()..end];
    let wrapped = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/{VERSION}/\"><Error><Type>{kind}</Type>{inner}</Error></ErrorResponse>"
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, Body::from(wrapped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(t) = content_type {
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_str(t).expect("header"));
        }
        headers
    }

    #[test]
    fn only_a_form_post_to_the_root_is_an_sts_call() {
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        let call = |method: Method, uri: &str, content_type| {
            is_sts_call(&method, &uri.parse().expect("uri"), &headers(content_type))
        };
        assert!(call(Method::POST, "/", form));
        assert!(call(Method::POST, "/", Some("Application/X-WWW-Form-Urlencoded")));
        assert!(!call(Method::GET, "/", form), "a GET is S3's ListBuckets");
        assert!(!call(Method::POST, "/bucket", form), "a bucket's POST is S3's");
        assert!(!call(Method::POST, "/?delete", form), "a query makes it S3's");
        assert!(!call(Method::POST, "/", None));
        assert!(!call(Method::POST, "/", Some("multipart/form-data; boundary=x")));
    }
}
