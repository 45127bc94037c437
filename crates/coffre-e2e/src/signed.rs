//! Requests signed by hand on a raw socket, for attacks whose timing an SDK
//! hides (a body sent slowly, an answer never read, many idle connections)
//! or requests no SDK would send (the fuzzers', the front's attacks): SigV4
//! in the `Authorization` header, presigned URLs, and aws-chunked bodies
//! with their chain of chunk signatures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub const REGION: &str = "us-east-1";
pub const UNSIGNED: &str = "UNSIGNED-PAYLOAD";
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An access key signing requests for one server.
#[derive(Clone)]
pub struct Signer {
    access: String,
    secret: String,
    host: SocketAddr,
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SigV4's signing key of `secret` for a day (`YYYYMMDD`), region and service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date);
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    key
}

/// The SigV4 signature of `canonical_request`, made at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`) with `secret` for `region` and `service`.
pub fn sigv4_signature(secret: &str, amz_date: &str, region: &str, service: &str, canonical_request: &str) -> String {
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    hex(&hmac_sha256(&signing_key(secret, date, region, service), &to_sign))
}

/// RFC 3986 percent-encoding, as SigV4 canonicalises names and values.
pub fn aws_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `YYYYMMDDTHHMMSSZ` and `YYYYMMDD`, now.
pub fn stamp() -> (String, String) {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::OffsetDateTime::now_utc().format(&f).expect("format");
    let date = at[..8].to_owned();
    (at, date)
}

/// The canonical query of decoded pairs: encoded, sorted, joined.
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs.iter().map(|(n, v)| (aws_encode(n), aws_encode(v))).collect();
    encoded.sort();
    encoded.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&")
}

/// An access key and what it signs for.
#[derive(Clone, Copy)]
pub struct Key<'a> {
    pub access: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl<'a> Key<'a> {
    pub fn new(access: &'a str, secret: &'a str) -> Self {
        Self { access, secret, region: REGION, service: "s3" }
    }

    /// The credential: access key and scope for `date` (`YYYYMMDD`).
    pub fn scope(&self, date: &str) -> String {
        format!("{}/{date}/{}/{}/aws4_request", self.access, self.region, self.service)
    }

    pub fn sign(&self, amz_date: &str, canonical_request: &str) -> String {
        sigv4_signature(self.secret, amz_date, self.region, self.service, canonical_request)
    }

    /// The signature of one chunk of an aws-chunked body
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`): it chains to `previous`, the
    /// request's signature for the first chunk.
    pub fn chunk_signature(&self, amz_date: &str, previous: &str, chunk: &[u8]) -> String {
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let to_sign =
            format!("AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{}", sha256_hex(chunk));
        hex(&hmac_sha256(&signing_key(self.secret, date, self.region, self.service), &to_sign))
    }
}

/// A presigned URL's path and query, valid for `expires` seconds. Each
/// parameter name is written as `rename` says (the signature covers the
/// decoded names, so renaming by percent-encoding keeps it valid).
pub fn presigned(
    key: Key<'_>,
    method: &str,
    host: SocketAddr,
    path: &str,
    expires: u64,
    rename: &dyn Fn(&str) -> String,
) -> (String, String) {
    presigned_with(key, method, host, path, &[], expires, rename)
}

/// As [`presigned`], with the operation's own query parameters (`uploadId`,
/// `partNumber`...) signed beside the presigning ones.
pub fn presigned_with(
    key: Key<'_>,
    method: &str,
    host: SocketAddr,
    path: &str,
    params: &[(&str, &str)],
    expires: u64,
    rename: &dyn Fn(&str) -> String,
) -> (String, String) {
    let (amz_date, date) = stamp();
    let mut pairs: Vec<(String, String)> = params.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    pairs.extend([
        ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("X-Amz-Credential".into(), key.scope(&date)),
        ("X-Amz-Date".into(), amz_date.clone()),
        ("X-Amz-Expires".into(), expires.to_string()),
        ("X-Amz-SignedHeaders".into(), "host".into()),
    ]);
    let canonical = format!("{method}\n{path}\n{}\nhost:{host}\n\nhost\n{UNSIGNED}", canonical_query(&pairs));
    let signature = key.sign(&amz_date, &canonical);
    pairs.push(("X-Amz-Signature".into(), signature.clone()));
    let query: Vec<String> = pairs.iter().map(|(n, v)| format!("{}={}", rename(n), aws_encode(v))).collect();
    (format!("{path}?{}", query.join("&")), signature)
}

impl Signer {
    pub fn new(host: SocketAddr, access: &str, secret: &str) -> Self {
        Self { access: access.to_owned(), secret: secret.to_owned(), host }
    }

    /// The head of `method path?query`, signed, ending with its blank line.
    /// `path` and `query` must already be in SigV4's canonical form (names
    /// sorted, RFC 3986 encoding); `headers` are sent but not signed.
    pub fn head(&self, method: &str, path: &str, query: &str, headers: &[(&str, String)]) -> String {
        self.head_for_payload(method, path, query, UNSIGNED, headers).head
    }

    /// As [`Signer::head`], with `payload` as `x-amz-content-sha256` (a
    /// body's SHA-256 in hex, or a `STREAMING-...` token); the signature and
    /// date come back too, since an aws-chunked body chains from them.
    pub fn head_for_payload(
        &self,
        method: &str,
        path: &str,
        query: &str,
        payload: &str,
        headers: &[(&str, String)],
    ) -> SignedHead {
        let (amz_date, date) = stamp();
        let host = self.host;
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{payload}"
        );
        let key = Key::new(&self.access, &self.secret);
        let signature = key.sign(&amz_date, &canonical);
        let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {amz_date}\r\nx-amz-content-sha256: {payload}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature={signature}\r\n",
            key.scope(&date)
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        SignedHead { head, amz_date, signature }
    }
}

impl Signer {
    /// A `PUT` of `body` to `path` as an aws-chunked upload
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), in chunks of `chunk` bytes
    /// and a final empty one, each signed in the chain: its head (with
    /// `Content-Length` and `Connection: close`) and its framed body.
    pub fn aws_chunked_put(&self, path: &str, body: &[u8], chunk: usize) -> (String, Vec<u8>) {
        let chunks: Vec<&[u8]> = body.chunks(chunk).chain(std::iter::once(&[][..])).collect();
        // `<hex size>;chunk-signature=<64 hex>\r\n<data>\r\n`
        let framed_len: usize = chunks.iter().map(|c| format!("{:x}", c.len()).len() + 17 + 64 + 4 + c.len()).sum();
        let headers = [
            ("Content-Length", framed_len.to_string()),
            ("Content-Encoding", "aws-chunked".to_owned()),
            ("x-amz-decoded-content-length", body.len().to_string()),
            ("Connection", "close".to_owned()),
        ];
        let signed = self.head_for_payload("PUT", path, "", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", &headers);
        let key = Key::new(&self.access, &self.secret);
        let mut previous = signed.signature;
        let mut framed = Vec::with_capacity(framed_len);
        for chunk in chunks {
            previous = key.chunk_signature(&signed.amz_date, &previous, chunk);
            framed.extend_from_slice(format!("{:x};chunk-signature={previous}\r\n", chunk.len()).as_bytes());
            framed.extend_from_slice(chunk);
            framed.extend_from_slice(b"\r\n");
        }
        (signed.head, framed)
    }
}

/// A signed request head and what its signature was made of.
pub struct SignedHead {
    pub head: String,
    pub amz_date: String,
    pub signature: String,
}

/// One answer: status, head (as sent) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The S3 error code of an error answer, or "".
    pub fn code(&self) -> &str {
        self.body.split("<Code>").nth(1).and_then(|s| s.split("</Code>").next()).unwrap_or("")
    }
}

/// A raw connection to a listener: a request written in as many pieces, and
/// as slowly, as a test wants.
pub struct RawConn {
    pub stream: TcpStream,
    got: Vec<u8>,
}

impl RawConn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self { stream: TcpStream::connect(addr).await?, got: Vec::new() })
    }

    /// A connection whose receive buffer is `bytes` (as the kernel rounds
    /// it): a client that reads little, or nothing, fills it at once.
    pub async fn open_with_receive_buffer(addr: SocketAddr, bytes: u32) -> std::io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(bytes)?;
        Ok(Self { stream: socket.connect(addr).await?, got: Vec::new() })
    }

    /// Reads until the peer ends the connection or `wait` passes; how many
    /// bytes came, and whether it ended.
    pub async fn drain(&mut self, wait: Duration) -> (usize, bool) {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = std::mem::take(&mut self.got).len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
                Ok(Ok(n)) => total += n,
                Err(_) => return (total, false),
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads one answer (its head, then `Content-Length` bytes of body), or
    /// `None` if none came whole within `wait` or the connection ended first.
    pub async fn answer(&mut self, wait: Duration) -> Option<Answer> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some((answer, used)) = parse_answer(&self.got) {
                self.got.drain(..used);
                return Some(answer);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.got.extend_from_slice(&buf[..n]),
                _ => return None,
            }
        }
    }

    /// Whether the server closed the connection (or reset it) within `wait`,
    /// discarding whatever it sent first.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

/// An answer at the start of `got`, and how many bytes it took.
pub fn parse_answer(got: &[u8]) -> Option<(Answer, usize)> {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&got[..end - 4]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let body = got.get(end..end + length)?;
    Some((Answer { status, head, body: String::from_utf8_lossy(body).into_owned() }, end + length))
}
