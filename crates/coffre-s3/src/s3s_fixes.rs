//! Patches over what s3s 0.14.1 writes, each for a gap in that version; drop
//! one when the s3s it was written for is upgraded and the gap is gone.
//!
//! - [`with_versions_in_order`]: ListObjectVersions lists all `<Version>`s,
//!   then all `<DeleteMarker>`s; S3 interleaves them in listing order. And
//!   GetObjectAttributes' `<ETag>` is quoted; S3 writes it bare.
//! - [`with_error_message`]: errors s3s raises itself carry no `<Message>`,
//!   and no error body carries the `<RequestId>` S3 puts in every one.
//! - [`may_log`]: s3s logs secrets at debug level and every client error at
//!   error level; its events are not logged at all.
//!
//! Gaps in s3s 0.14.1 worked around where they bite, not here: host parsing
//! (`vhost`), unbounded aws-chunked chunks (`guards`), payload errors told
//! apart by their message (`error::body_error`), no conditional CopyObject
//! fields (`ops::object::copy_object`), no HeadObject TagCount
//! (`ops::object::head_object`).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Body as _;

use crate::error::{error_response, xml_escape};
use crate::record::ErrorCode;

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

/// Marks a GetObjectAttributes answer, whose `<ETag>` S3 writes unquoted
/// and s3s quoted.
#[derive(Clone, Debug)]
pub(crate) struct UnquotedEtag;

fn unquote_etag(xml: &str) -> Option<String> {
    let start = xml.find("<ETag>\"")? + "<ETag>".len();
    let end = start + xml[start..].find("\"</ETag>")?;
    Some(format!("{}{}{}", &xml[..start], &xml[start + 1..end], &xml[end + 1..]))
}

/// The patches of successful XML answers: versions in listing order
/// ([`VersionOrder`]) and GetObjectAttributes' ETag ([`UnquotedEtag`]).
pub(crate) async fn with_versions_in_order(resp: Response<s3s::Body>) -> Response<s3s::Body> {
    let order = resp.extensions().get::<VersionOrder>().cloned();
    let unquote = resp.extensions().get::<UnquotedEtag>().is_some();
    if order.is_none() && !unquote {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = http_body_util::BodyExt::collect(body).await else {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "answer body lost");
    };
    let bytes = collected.to_bytes();
    let fixed = std::str::from_utf8(&bytes).ok().and_then(|xml| match &order {
        Some(VersionOrder(order)) => interleave_versions(xml, order),
        None => unquote_etag(xml),
    });
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, s3s::Body::from(fixed.map_or(bytes, Bytes::from)))
}

/// Some errors s3s raises itself (a bad bucket name in the path, a malformed
/// Authorization header) carry no `<Message>`; clients and people expect one.
/// Every error body gets the request's id, as in `x-amz-request-id`.
pub(crate) async fn with_error_message(resp: Response<s3s::Body>, request_id: &str) -> Response<s3s::Body> {
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
    let mut patched = match (&code, text.contains("<Message>")) {
        (Some(code), false) => {
            let end = text.find("</Code>").unwrap_or(0);
            let message = xml_escape(default_message(code));
            Some(format!("{}<Message>{message}</Message>{}", &text[..end + 7], &text[end + 7..]))
        }
        _ => None,
    };
    let current = patched.as_deref().unwrap_or(&text);
    if let (Some(end), false) = (current.rfind("</Error>"), current.contains("<RequestId>")) {
        let id = xml_escape(request_id);
        let with_id = format!("{}<RequestId>{id}</RequestId>{}", &current[..end], &current[end..]);
        patched = Some(with_id);
    }
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

/// Whether an event or span of `target` may be logged, whatever the
/// operator's filter (`COFFRE_LOG=trace` included). The binary applies it to
/// every log output.
///
/// s3s 0.14 logs, under target `s3s`: at debug, each whole request
/// (`Authorization`, presigned query signatures, SSE-C key headers), the
/// signature it computed when the client's does not match (a valid
/// signature for the forged request), POST form fields; at error, every
/// S3 error a client causes (`NoSuchKey`, `SignatureDoesNotMatch`...) and
/// the bodies of malformed XML. None of it is needed: the front logs every
/// request once (`coffre::request`: operation, principal, status, S3 error
/// code) and the operations log their own server-side failures. So nothing
/// of s3s is logged, events or spans.
pub fn may_log(target: &str) -> bool {
    !(target == "s3s" || target.starts_with("s3s::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_of_s3s_is_logged() {
        assert!(!may_log("s3s::ops::signature"));
        assert!(!may_log("s3s"));
        assert!(may_log("s3s_other"));
        assert!(may_log("coffre::request"));
    }

    #[test]
    fn the_attributes_etag_loses_its_quotes_and_nothing_else_changes() {
        let xml =
            "<GetObjectAttributesOutput><ETag>\"abc-2\"</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesOutput>";
        let fixed = unquote_etag(xml).expect("an ETag");
        assert_eq!(
            fixed,
            "<GetObjectAttributesOutput><ETag>abc-2</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesOutput>"
        );
        assert_eq!(unquote_etag("<R><ObjectSize>3</ObjectSize></R>"), None);
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
}
