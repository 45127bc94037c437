//! Requests signed by hand (SigV4 in the `Authorization` header, the payload
//! declared `UNSIGNED-PAYLOAD`) on a raw socket, for attacks whose timing an
//! SDK hides (a body sent slowly, an answer never read, many idle connections)
//! or bodies no SDK would send (the XML fuzzer's).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const REGION: &str = "us-east-1";
const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

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

fn hex(bytes: &[u8]) -> String {
    hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
}

/// The SigV4 signature of `canonical_request`, made at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`) with `secret` for `region` and `service`.
pub fn sigv4_signature(secret: &str, amz_date: &str, region: &str, service: &str, canonical_request: &str) -> String {
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let digest = hex(&Sha256::digest(canonical_request.as_bytes()));
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}");
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date);
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    hex(&hmac_sha256(&key, &to_sign))
}

impl Signer {
    pub fn new(host: SocketAddr, access: &str, secret: &str) -> Self {
        Self { access: access.to_owned(), secret: secret.to_owned(), host }
    }

    /// The head of `method path?query`, signed, ending with its blank line.
    /// `path` and `query` must already be in SigV4's canonical form (names
    /// sorted, RFC 3986 encoding); `headers` are sent but not signed.
    pub fn head(&self, method: &str, path: &str, query: &str, headers: &[(&str, String)]) -> String {
        let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let amz_date = time::OffsetDateTime::now_utc().format(&f).expect("format");
        let date = &amz_date[..8];
        let host = self.host;
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{UNSIGNED}\nx-amz-date:{amz_date}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{UNSIGNED}"
        );
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let signature = sigv4_signature(&self.secret, &amz_date, REGION, "s3", &canonical);
        let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {amz_date}\r\nx-amz-content-sha256: {UNSIGNED}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature={signature}\r\n",
            self.access
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head
    }
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
