//! What a request's authentication claims, read once, the way s3s's verifier
//! will read it, before s3s sees the request.
//!
//! s3s 0.14 decides how a request is authenticated from text a guard could
//! read differently: it decodes query parameter *names* as well as values
//! (`X-Amz-Expire%73` is `X-Amz-Expires` to it), checks SigV2 before SigV4,
//! prefers a presigned query over an `Authorization` header, and never looks
//! at the header's algorithm token. So the guards do not read the request
//! text themselves: [`read`] decodes the query exactly as s3s does
//! (`serde_urlencoded` into name/value pairs), refuses whatever two readers
//! could take differently, and hands the guards one [`Claim`]:
//!
//! - authentication parameter names (`X-Amz-*` of SigV4, `AWSAccessKeyId`
//!   and `Signature` of SigV2) percent-encoded, in another case, or repeated;
//! - an `Authorization` header together with SigV4 query parameters, or two
//!   `Authorization` headers;
//! - an algorithm other than exactly `AWS4-HMAC-SHA256` (in the header or
//!   the query), and SigV2 in any form;
//! - a presigned URL missing one of its six parameters, or living longer than
//!   7 days;
//! - a credential scope for another region, or another service than `s3`,
//!   except `sts` in the header of an STS call (`POST /` with a form body:
//!   [`sts`](crate::sts), whose body s3s reads, up to 8 KiB, to hash it
//!   before checking its signature).
//!
//! The claim says who the request *says* it is. Who it *is* comes only from
//! s3s's verified credentials (see [`record`](crate::record)).

use http::{HeaderMap, Method, StatusCode, Uri};

/// The longest presigned URL lifetime S3 allows.
pub(crate) const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

/// The only signing algorithm accepted, written exactly so.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// SigV4 query authentication: all six, each once, for a presigned URL.
const PRESIGN_PARAMS: [&str; 6] =
    ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"];

/// Query parameter names that carry authentication: they must be written
/// plainly (no percent-encoding, in this case) and at most once.
const AUTH_PARAMS: [&str; 9] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
];

/// Signature Version 2 query parameters, refused in any case or encoding.
const SIGV2_PARAMS: [&str; 2] = ["AWSAccessKeyId", "Signature"];

/// How a request says it is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No `Authorization` header and no SigV4 query parameters.
    Anonymous,
    /// `Authorization: AWS4-HMAC-SHA256 Credential=...`.
    Header,
    /// A presigned URL (`X-Amz-Signature` and its five companions).
    Presigned,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Header => "header",
            Self::Presigned => "presigned",
        }
    }
}

/// A SigV4 credential scope: `AKID/YYYYMMDD/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

/// What a request claims, read as s3s's verifier reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub method: AuthMethod,
    /// The credential scope of a header or presigned signature.
    pub scope: Option<Scope>,
    /// `X-Amz-Expires` of a presigned URL, at most [`MAX_PRESIGN_SECS`].
    pub expires: Option<u64>,
}

impl Claim {
    const ANONYMOUS: Claim = Claim { method: AuthMethod::Anonymous, scope: None, expires: None };

    /// The access key the request names (not verified).
    pub fn access_key(&self) -> Option<&str> {
        self.scope.as_ref().map(|s| s.access_key.as_str())
    }
}

/// Why a request is refused before anything verifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The access key the refused request named, when it named one clearly.
    pub claimed: Option<String>,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status: StatusCode::BAD_REQUEST, code, message: message.into(), claimed: None }
}

const SIGV2: &str =
    "Signature Version 2 is not supported; sign requests with AWS Signature Version 4 (AWS4-HMAC-SHA256).";
const ONE_MECHANISM: &str = "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature \
                             query string parameter or the Authorization header should be specified";
const PRESIGN_INCOMPLETE: &str = "Query-string authentication version 4 requires the X-Amz-Algorithm, \
                                  X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
                                  X-Amz-Expires parameters.";

/// One query parameter: its name as sent, and name and value as s3s decodes them.
struct Param<'a> {
    raw_name: &'a str,
    name: String,
    value: String,
}

/// The query decoded the way s3s decodes it (`OrderedQs::parse` is
/// `serde_urlencoded::from_str::<Vec<(String, String)>>`), each pair with its
/// name as sent. `form_urlencoded`, under both, skips empty segments and
/// splits each at its first `=`.
fn params(query: &str) -> Result<Vec<Param<'_>>, Refusal> {
    let bad = || refuse("InvalidURI", "Couldn't parse the specified URI.");
    let decoded: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| bad())?;
    let raw: Vec<&str> =
        query.split('&').filter(|s| !s.is_empty()).map(|s| s.split_once('=').map_or(s, |(n, _)| n)).collect();
    if raw.len() != decoded.len() {
        return Err(bad());
    }
    Ok(raw.into_iter().zip(decoded).map(|(raw_name, (name, value))| Param { raw_name, name, value }).collect())
}

/// Reads what `uri` and `headers` claim, refusing what s3s could read
/// otherwise than the guards; `region` is the only credential region
/// accepted, and `service` the only service (`s3`, or `sts` for an STS call).
pub(crate) fn read(uri: &Uri, headers: &HeaderMap, region: &str, service: &str) -> Result<Claim, Refusal> {
    let params = params(uri.query().unwrap_or(""))?;
    let mut seen = [0u8; AUTH_PARAMS.len()];
    for p in &params {
        let Some(i) = AUTH_PARAMS.iter().position(|a| a.eq_ignore_ascii_case(&p.name)) else { continue };
        if SIGV2_PARAMS.iter().any(|v2| v2.eq_ignore_ascii_case(&p.name)) {
            return Err(refuse("InvalidRequest", SIGV2));
        }
        if p.raw_name != AUTH_PARAMS[i] {
            return Err(refuse(
                "AuthorizationQueryParametersError",
                format!(
                    "The query parameter {:?} must be written {:?}: authentication parameters are neither \
                     percent-encoded nor in another case",
                    p.raw_name, AUTH_PARAMS[i]
                ),
            ));
        }
        seen[i] += 1;
        if seen[i] > 1 {
            return Err(refuse(
                "AuthorizationQueryParametersError",
                format!("The query parameter {} appears more than once", AUTH_PARAMS[i]),
            ));
        }
    }
    let query_param = |name: &str| params.iter().find(|p| p.name == name).map(|p| p.value.as_str());
    let in_query = PRESIGN_PARAMS.iter().any(|n| query_param(n).is_some());

    let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
    let header = authorization.next();
    if authorization.next().is_some() {
        return Err(refuse("InvalidArgument", "A request carries at most one Authorization header."));
    }
    match (header, in_query) {
        (Some(_), true) => Err(refuse("InvalidArgument", ONE_MECHANISM)),
        (Some(value), false) => {
            let text = std::str::from_utf8(value.as_bytes())
                .map_err(|_| refuse("AuthorizationHeaderMalformed", "The authorization header is not UTF-8."))?;
            let scope = header_scope(text)?;
            check_scope(&scope, region, service, false)?;
            Ok(Claim { method: AuthMethod::Header, scope: Some(scope), expires: None })
        }
        (None, true) => {
            if PRESIGN_PARAMS.iter().any(|n| query_param(n).is_none()) {
                return Err(refuse("AuthorizationQueryParametersError", PRESIGN_INCOMPLETE));
            }
            let param = |n| query_param(n).unwrap_or_default();
            if param("X-Amz-Algorithm") != ALGORITHM {
                return Err(refuse(
                    "AuthorizationQueryParametersError",
                    format!("X-Amz-Algorithm only supports \"{ALGORITHM}\""),
                ));
            }
            let scope = parse_scope(param("X-Amz-Credential")).ok_or_else(|| {
                refuse("AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter")
            })?;
            let Some(secs) = param("X-Amz-Expires").parse::<u64>().ok().filter(|s| *s <= MAX_PRESIGN_SECS) else {
                let mut refusal = refuse(
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800",
                );
                refusal.claimed = Some(scope.access_key);
                return Err(refusal);
            };
            check_scope(&scope, region, "s3", true)?;
            Ok(Claim { method: AuthMethod::Presigned, scope: Some(scope), expires: Some(secs) })
        }
        (None, false) => Ok(Claim::ANONYMOUS),
    }
}

/// The scope of an `Authorization` header, parsed as s3s 0.14's
/// `AuthorizationV4::parse` does (`ALGORITHM Credential=SCOPE,
/// SignedHeaders=...,Signature=...`), but with the algorithm checked: s3s
/// ignores it.
fn header_scope(text: &str) -> Result<Scope, Refusal> {
    if text.starts_with("AWS ") {
        return Err(refuse("InvalidRequest", SIGV2));
    }
    let unsupported = || refuse("InvalidArgument", "Unsupported Authorization Type");
    let malformed = || {
        refuse(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed; it must be \"AWS4-HMAC-SHA256 Credential=..., \
             SignedHeaders=..., Signature=...\".",
        )
    };
    let rest = text.strip_prefix(ALGORITHM).ok_or_else(unsupported)?;
    // nom's multispace1, then Credential=
    let spaced = rest.trim_start_matches(is_nom_space);
    if spaced.len() == rest.len() {
        return Err(unsupported());
    }
    let rest = spaced.strip_prefix("Credential=").ok_or_else(malformed)?;
    let mut pieces = rest.splitn(5, '/');
    let (Some(ak), Some(date), Some(region), Some(service), Some(tail)) =
        (pieces.next(), pieces.next(), pieces.next(), pieces.next(), pieces.next())
    else {
        return Err(malformed());
    };
    let rest = tail.strip_prefix("aws4_request,").ok_or_else(malformed)?;
    let scope = scope_of(ak, date, region, service).ok_or_else(malformed)?;
    let rest = rest.trim_start_matches(is_nom_space).strip_prefix("SignedHeaders=").ok_or_else(malformed)?;
    let (_signed, rest) = rest.split_once(',').ok_or_else(malformed)?;
    let rest = rest.trim_start_matches(is_nom_space).strip_prefix("Signature=").ok_or_else(malformed)?;
    let end = rest.find(|c: char| c.is_ascii_whitespace()).unwrap_or(rest.len());
    if !rest[end..].trim_start_matches(is_nom_space).is_empty() {
        return Err(malformed());
    }
    Ok(scope)
}

/// nom's `multispace` characters.
fn is_nom_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// `AKID/YYYYMMDD/region/service/aws4_request`, as s3s's `CredentialV4::parse`.
pub(crate) fn parse_scope(credential: &str) -> Option<Scope> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [ak, date, region, service, "aws4_request"] = parts.as_slice() else { return None };
    scope_of(ak, date, region, service)
}

fn scope_of(ak: &str, date: &str, region: &str, service: &str) -> Option<Scope> {
    let valid_date = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) && {
        let (y, m, d) = (date[..4].parse::<i32>().ok()?, date[4..6].parse::<u8>().ok()?, date[6..].parse::<u8>().ok()?);
        time::Month::try_from(m).ok().and_then(|m| time::Date::from_calendar_date(y, m, d).ok()).is_some()
    };
    (valid_date && !service.is_empty()).then(|| Scope {
        access_key: ak.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

/// The scope names this server's region and the request's service
/// (presigned URLs are for `s3` only).
fn check_scope(scope: &Scope, region: &str, service: &str, in_query: bool) -> Result<(), Refusal> {
    let (code, what) = if in_query {
        ("AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter")
    } else {
        ("AuthorizationHeaderMalformed", "The authorization header is malformed")
    };
    let wrong = |message: String| Refusal {
        status: StatusCode::BAD_REQUEST,
        code,
        message,
        claimed: Some(scope.access_key.clone()),
    };
    if scope.region != region {
        return Err(wrong(format!("{what}; the region '{}' is wrong; expecting '{region}'", scope.region)));
    }
    if scope.service != service {
        return Err(wrong(format!("{what}; the service '{}' is wrong; expecting '{service}'", scope.service)));
    }
    Ok(())
}

/// A `multipart/form-data` POST (an HTML form upload, "POST Object"): s3s
/// 0.14 reads its form fields and then its whole file part into memory
/// before any access check, so it is refused before its body is read. Any
/// `Content-Type` header counts, in any case and spacing (s3s reads only a
/// unique one, which this covers).
pub(crate) fn is_form_upload(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::POST
        && headers.get_all(http::header::CONTENT_TYPE).iter().any(|v| {
            let squeezed: String = String::from_utf8_lossy(v.as_bytes())
                .chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_lowercase)
                .collect();
            squeezed.starts_with("multipart/form-data")
        })
}

#[cfg(test)]
mod tests;
