//! The guards s3s does not provide, in request order: header size, HTML
//! form uploads refused before their body is read, the authentication claim
//! ([`claim`](crate::claim): presigned `X-Amz-Expires` at most 7 days, SigV2
//! refused, one mechanism, the credential scope's region and service) and
//! the body size by `Content-Length` (before s3s sees the request); then,
//! while the body streams, an idle timeout, a cap on each aws-chunked chunk
//! (s3s 0.14 buffers a whole chunk of whatever size the client declares), and
//! at its end an aws-chunked body that is whole: its final chunk came and its
//! chunks add up to `x-amz-decoded-content-length` (s3s 0.14 stores a
//! signed streaming upload whose body was cut off, even to nothing, as
//! complete: `fuzz_auth.rs` found it).
//! Header size and header read timeout are also enforced by hyper (`conn`).
//!
//! Bodies read before authentication: none. A request refused here is
//! answered without its body being read; s3s reads a body only once the
//! signature is verified and [`Access`](crate::record::Access) has let the
//! request through (XML bodies, at most `max_xml_bytes`), or as the
//! operation streams it. The one body s3s would read before verification,
//! an `sts` request's (up to 8 KiB), is refused here by its scope.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use coffre_core::service::MAX_OBJECT_SIZE;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use crate::claim::{self, Claim};
use crate::error::error_response;
use crate::front::FrontConfig;
use crate::record::BodyLimit;

/// A guard's verdict on a body, reported instead of whatever s3s makes of the broken stream.
#[derive(Clone, Default)]
pub(crate) struct BodyVerdict(Arc<OnceLock<(StatusCode, &'static str, String)>>);

impl BodyVerdict {
    /// The status, S3 error code and message of the guard the body broke, if any.
    pub(crate) fn get(&self) -> Option<&(StatusCode, &'static str, String)> {
        self.0.get()
    }
}

/// A request refused before s3s sees it: the answer, and the access key it
/// named when it named one clearly (never verified).
pub(crate) struct Rejected {
    pub response: Response<s3s::Body>,
    pub claimed: Option<String>,
}

impl From<Response<s3s::Body>> for Rejected {
    fn from(response: Response<s3s::Body>) -> Self {
        Self { response, claimed: None }
    }
}

/// Checks what s3s would let through: header size, form uploads, the
/// authentication claim (read once, as s3s reads it), body size. Returns the
/// claim the request makes.
// The error is the answer itself, built once per refused request: boxing it gains nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn precheck(config: &FrontConfig, req: &Request<Incoming>) -> Result<Claim, Rejected> {
    check_header_size(config, req)?;
    if claim::is_form_upload(req.method(), req.headers()) {
        return Err(error_response(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "POST uploads from HTML forms (multipart/form-data) are not supported; upload with PUT, or a \
             presigned PUT URL.",
        )
        .into());
    }
    let service = if crate::sts::is_sts_call(req.method(), req.uri(), req.headers()) { "sts" } else { "s3" };
    let claim = claim::read(req.uri(), req.headers(), &config.region, service)
        .map_err(|r| Rejected { response: error_response(r.status, r.code, &r.message), claimed: r.claimed })?;
    let header_u64 =
        |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let decoded = header_u64("x-amz-decoded-content-length");
    // aws-chunked framing adds well under 2% to the payload.
    let raw_limit = MAX_OBJECT_SIZE + MAX_OBJECT_SIZE / 50;
    if decoded.is_some_and(|n| n > MAX_OBJECT_SIZE) || header_u64("content-length").is_some_and(|n| n > raw_limit) {
        return Err(Rejected {
            response: error_response(
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed object size of 5 GiB; use a multipart upload.",
            ),
            claimed: claim.access_key().map(str::to_owned),
        });
    }
    Ok(claim)
}

/// The first guard, and the only one a CORS preflight (unauthenticated, bodiless) goes through.
#[allow(clippy::result_large_err)]
pub(crate) fn check_header_size(config: &FrontConfig, req: &Request<Incoming>) -> Result<(), Rejected> {
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_bytes + req.uri().to_string().len() > config.max_header_bytes {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "RequestHeaderSectionTooLarge",
            &format!(
                "Your request header section exceeds the maximum allowed size of {} bytes",
                config.max_header_bytes
            ),
        )
        .into());
    }
    Ok(())
}

fn is_aws_chunked(headers: &HeaderMap) -> bool {
    headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("STREAMING-"))
}

/// Follows aws-chunked framing (`hex-size;chunk-signature=...\r\n<data>\r\n`)
/// without buffering, to refuse oversized chunks before s3s buffers them and
/// a body cut short once it ends.
struct ChunkScanner {
    max: u64,
    state: ChunkState,
    /// The payload bytes the chunk headers announced so far.
    decoded: u64,
}

enum ChunkState {
    Header(Vec<u8>),
    Data(u64),
    /// The final, zero-sized chunk came.
    Done,
    /// Framing we cannot read: s3s's to reject, with its own error.
    Malformed,
}

const MAX_CHUNK_HEADER: usize = 4096;

impl ChunkScanner {
    fn new(max: u64) -> Self {
        Self { max, state: ChunkState::Header(Vec::new()), decoded: 0 }
    }

    /// At the end of the body: whether it was whole, the final chunk come and
    /// `declared` (`x-amz-decoded-content-length`) bytes announced.
    fn finish(&self, declared: Option<u64>) -> Result<(), String> {
        match self.state {
            ChunkState::Malformed => Ok(()),
            ChunkState::Done if declared.is_none_or(|n| n == self.decoded) => Ok(()),
            ChunkState::Done => Err(format!(
                "The aws-chunked body carries {} bytes, not the {} of x-amz-decoded-content-length",
                self.decoded,
                declared.unwrap_or_default()
            )),
            _ => Err("The aws-chunked body ended before its final chunk".into()),
        }
    }

    fn scan(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            match &mut self.state {
                ChunkState::Done | ChunkState::Malformed => return Ok(()),
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
                            self.state = ChunkState::Malformed;
                            return Ok(());
                        };
                        if size > self.max {
                            return Err(format!(
                                "aws-chunked chunk of {size} bytes exceeds the limit of {} bytes",
                                self.max
                            ));
                        }
                        self.decoded = self.decoded.saturating_add(size);
                        self.state = if size == 0 { ChunkState::Done } else { ChunkState::Data(size + 2) };
                    }
                },
            }
        }
        Ok(())
    }
}

/// The most of an unread body read and discarded after an early answer.
const MAX_DRAIN_BYTES: u64 = 1 << 20;

pub(crate) struct GuardedBody {
    /// Taken by [`Drop`] to drain what the service left unread.
    inner: Option<Incoming>,
    /// The client waits for `100 Continue` before sending its body.
    expects_continue: bool,
    /// Set once the service asks for the body (hyper then sends `100 Continue`).
    polled: Arc<AtomicBool>,
    chunked: Option<ChunkScanner>,
    /// `x-amz-decoded-content-length`, which an aws-chunked body must carry.
    decoded_length: Option<u64>,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    verdict: BodyVerdict,
    bytes: Arc<AtomicU64>,
    limit: BodyLimit,
}

impl GuardedBody {
    /// Guards `inner` by `config`'s limits, reporting to `verdict`, counting
    /// bytes into `bytes`, and noting in `polled` when the service reads it.
    pub(crate) fn new(
        inner: Incoming,
        headers: &HeaderMap,
        config: &FrontConfig,
        verdict: &BodyVerdict,
        bytes: &Arc<AtomicU64>,
        polled: &Arc<AtomicBool>,
        limit: &BodyLimit,
    ) -> Self {
        Self {
            inner: Some(inner),
            expects_continue: headers
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
            chunked: is_aws_chunked(headers).then(|| ChunkScanner::new(config.max_chunk_bytes)),
            decoded_length: headers
                .get("x-amz-decoded-content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            idle: config.body_idle_timeout,
            sleep: Box::pin(tokio::time::sleep(config.body_idle_timeout)),
            verdict: verdict.clone(),
            bytes: bytes.clone(),
            polled: polled.clone(),
            limit: limit.clone(),
        }
    }

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
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                if let Some(data) = frame.data_ref() {
                    let read = this.bytes.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
                    let limit = this.limit.0.load(Ordering::Relaxed);
                    if read > limit {
                        let why = format!("Your request was too big: this operation's body is at most {limit} bytes");
                        return Poll::Ready(Some(Err(this.refuse(
                            StatusCode::BAD_REQUEST,
                            "MaxMessageLengthExceeded",
                            why,
                        ))));
                    }
                    if let Some(scanner) = &mut this.chunked
                        && let Err(why) = scanner.scan(data)
                    {
                        return Poll::Ready(Some(Err(this.refuse(StatusCode::BAD_REQUEST, "InvalidRequest", why))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(io::Error::other(e)))),
            Poll::Ready(None) => match this.chunked.as_ref().map(|s| s.finish(this.decoded_length)) {
                Some(Err(why)) => Poll::Ready(Some(Err(this.refuse(StatusCode::BAD_REQUEST, "IncompleteBody", why)))),
                _ => Poll::Ready(None),
            },
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
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Incoming::size_hint).unwrap_or_default()
    }
}

/// A body left unread after an early answer (an access refusal, a missing
/// bucket, a database outage) is read and discarded up to
/// [`MAX_DRAIN_BYTES`] within the idle timeout. hyper closes a connection
/// whose body is unread, and a client still sending then meets a reset
/// socket instead of the answer. A client waiting for `100 Continue` has
/// sent nothing and is not asked to.
impl Drop for GuardedBody {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else { return };
        let never_asked = self.expects_continue && !self.polled.load(Ordering::Relaxed);
        if body.is_end_stream() || never_asked {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body, self.idle));
        }
    }
}

async fn drain(mut body: Incoming, within: Duration) {
    use http_body_util::BodyExt as _;
    let mut left = MAX_DRAIN_BYTES;
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(frame)) = body.frame().await {
            let read = frame.data_ref().map_or(0, |d| d.len() as u64);
            left = left.saturating_sub(read);
            if left == 0 {
                return;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn framed(sizes: &[usize]) -> Vec<u8> {
        let mut body = Vec::new();
        for &size in sizes.iter().chain(&[0]) {
            body.extend_from_slice(format!("{size:x};chunk-signature={}\r\n", "0".repeat(64)).as_bytes());
            body.extend(std::iter::repeat_n(b'x', size));
            body.extend_from_slice(b"\r\n");
        }
        body
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, ..Default::default() })]

        /// However the body is cut into frames, the scanner refuses it exactly
        /// when a chunk is over the cap, and otherwise follows it to its end.
        #[test]
        fn chunk_scanner_refuses_exactly_the_oversized_chunks(
            sizes in proptest::collection::vec(1usize..300, 0..8),
            max in 0u64..300,
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..6),
        ) {
            let body = framed(&sizes);
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
            at.extend([0, body.len()]);
            at.sort_unstable();
            let mut scanner = ChunkScanner::new(max);
            let refused = at.windows(2).any(|w| scanner.scan(&body[w[0]..w[1]]).is_err());
            let oversized = sizes.iter().any(|&s| s as u64 > max);
            proptest::prop_assert_eq!(refused, oversized);
            if !refused {
                proptest::prop_assert!(matches!(scanner.state, ChunkState::Done));
                let total = sizes.iter().sum::<usize>() as u64;
                proptest::prop_assert!(scanner.finish(Some(total)).is_ok());
                proptest::prop_assert!(scanner.finish(None).is_ok());
                proptest::prop_assert!(scanner.finish(Some(total + 1)).is_err());
            }
        }

        /// A body cut anywhere before its final chunk is not whole.
        #[test]
        fn a_chunked_body_cut_short_is_not_whole(
            sizes in proptest::collection::vec(1usize..300, 0..8),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let body = framed(&sizes);
            let final_chunk = format!("0;chunk-signature={}\r\n", "0".repeat(64)).len() + 2;
            let cut = cut.index(body.len() - final_chunk + 1);
            let mut scanner = ChunkScanner::new(1 << 20);
            proptest::prop_assert!(scanner.scan(&body[..cut]).is_ok());
            let total = sizes.iter().sum::<usize>() as u64;
            proptest::prop_assert!(scanner.finish(Some(total)).is_err(), "cut at {} of {}", cut, body.len());
        }

        /// Any bytes at all: an answer, no panic, and a header line kept
        /// (waiting for its end) is never longer than its bound.
        #[test]
        fn chunk_scanner_survives_any_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10_000)) {
            let mut scanner = ChunkScanner::new(1024);
            if scanner.scan(&data).is_ok()
                && let ChunkState::Header(line) = &scanner.state
            {
                proptest::prop_assert!(line.len() <= MAX_CHUNK_HEADER, "{} bytes kept", line.len());
            }
        }
    }
}
