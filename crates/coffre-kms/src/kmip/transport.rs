//! One mutual-TLS connection to the KMIP server, used by one request at a
//! time, reopened when it breaks; every step has a deadline so a dead or hung
//! server costs a caller seconds, not forever.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::{Error as PemError, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use super::spec::tag;
use super::ttlv::{self, HEADER_LEN};

/// TCP connection and TLS handshake together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Sending a request and reading all of its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed connection, callers within this window fail at once rather
/// than each waiting out its own connect timeout behind the lock.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// Responses here are a few hundred bytes; anything near this is not KMIP.
const MAX_RESPONSE: usize = 1 << 20;
/// TTLV type byte of a structure, which every message is.
const STRUCTURE: u8 = 0x01;

/// Why a request did not get a response: already phrased for an operator,
/// starting with the server's address.
#[derive(Debug, Clone, thiserror::Error)]
#[error("KMIP server {addr}: {detail}")]
pub struct TransportError {
    pub addr: String,
    pub detail: String,
}

/// Where to connect and with which credentials.
pub struct Endpoint<'a> {
    pub addr: &'a str,
    pub server_name: &'a str,
    pub ca_cert: &'a Path,
    pub client_cert: &'a Path,
    pub client_key: &'a Path,
}

/// Why the TLS settings could not be built: a file or a name is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{what} {path}: {source}")]
    Pem {
        what: &'static str,
        path: String,
        #[source]
        source: PemError,
    },
    #[error("{what} {path}: no PEM {what} in the file")]
    Missing { what: &'static str, path: String },
    #[error("CA certificate {path}: {source}")]
    BadCa {
        path: String,
        #[source]
        source: rustls::Error,
    },
    #[error("client certificate {cert} and key {key}: {source}")]
    BadClientCert {
        cert: String,
        key: String,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS settings: {0}")]
    Tls(#[source] rustls::Error),
    #[error("server name {0:?} is neither a DNS name nor an IP address")]
    ServerName(String),
}

pub struct Transport {
    addr: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    conn: Option<TlsStream<TcpStream>>,
    last_failure: Option<(Instant, TransportError)>,
}

impl Transport {
    pub fn new(endpoint: &Endpoint<'_>) -> Result<Self, SetupError> {
        let server_name = ServerName::try_from(endpoint.server_name.to_owned())
            .map_err(|_| SetupError::ServerName(endpoint.server_name.to_owned()))?;
        Ok(Self {
            addr: endpoint.addr.to_owned(),
            server_name,
            connector: TlsConnector::from(Arc::new(tls_config(endpoint)?)),
            state: Mutex::new(State::default()),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one encoded request message and returns the encoded response.
    pub async fn round_trip(&self, request: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        let mut guard = self.state.lock().await;
        let state = &mut *guard;
        // Out of its slot while in use: if this future is dropped halfway, the
        // connection, now at an unknown point of a message, goes with it.
        let reused = state.conn.is_some();
        let mut conn = match state.conn.take() {
            Some(conn) => conn,
            None => self.open_after_pause(&mut state.last_failure).await?,
        };
        match self.exchange(&mut conn, request).await {
            Ok(response) => {
                state.conn = Some(conn);
                return Ok(response);
            }
            // A connection that sat idle may have been closed by the server
            // without our noticing, and then the request never reached it: one
            // more try on a fresh connection. (A server dying mid-request
            // looks the same; a Create retried then leaves one unused key.)
            Err(Exchange::Closed) if reused => {}
            Err(e) => return Err(self.error(e.detail())),
        }
        let mut conn = self.open_after_pause(&mut state.last_failure).await?;
        let response = self.exchange(&mut conn, request).await.map_err(|e| self.error(e.detail()))?;
        state.conn = Some(conn);
        Ok(response)
    }

    /// Opens a connection, unless the last attempt failed a moment ago.
    async fn open_after_pause(
        &self,
        last_failure: &mut Option<(Instant, TransportError)>,
    ) -> Result<TlsStream<TcpStream>, TransportError> {
        if let Some((when, error)) = last_failure
            && when.elapsed() < RECONNECT_PAUSE
        {
            return Err(error.clone());
        }
        match self.open().await {
            Ok(conn) => {
                *last_failure = None;
                Ok(conn)
            }
            Err(error) => {
                *last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// A TCP connection and a completed TLS handshake, within the connect timeout.
    async fn open(&self) -> Result<TlsStream<TcpStream>, TransportError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let secs = CONNECT_TIMEOUT.as_secs();
        let tcp = timeout_at(deadline, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| self.error(format!("no TCP connection within {secs} s")))?
            .map_err(|e| self.error(describe_io(&e)))?;
        // Requests are single small writes answered at once: no batching.
        tcp.set_nodelay(true).map_err(|e| self.error(describe_io(&e)))?;
        timeout_at(deadline, self.connector.connect(self.server_name.clone(), tcp))
            .await
            .map_err(|_| self.error(format!("TLS handshake not done within {secs} s")))?
            .map_err(|e| self.error(format!("TLS handshake failed: {}", describe_io(&e))))
    }

    async fn exchange(&self, conn: &mut TlsStream<TcpStream>, request: &[u8]) -> Result<Zeroizing<Vec<u8>>, Exchange> {
        timeout(REQUEST_TIMEOUT, write_and_read(conn, request)).await.unwrap_or(Err(Exchange::TimedOut))
    }

    fn error(&self, detail: String) -> TransportError {
        TransportError { addr: self.addr.clone(), detail }
    }
}

/// How one request and response exchange went wrong.
enum Exchange {
    /// The server closed the connection before saying a word.
    Closed,
    TimedOut,
    Io(io::Error),
    Framing(String),
}

impl Exchange {
    fn detail(self) -> String {
        match self {
            Self::Closed => "connection closed by the server".into(),
            Self::TimedOut => format!("no response within {} s", REQUEST_TIMEOUT.as_secs()),
            Self::Io(e) => describe_io(&e),
            Self::Framing(detail) => detail,
        }
    }
}

async fn write_and_read(conn: &mut TlsStream<TcpStream>, request: &[u8]) -> Result<Zeroizing<Vec<u8>>, Exchange> {
    let sent = async {
        conn.write_all(request).await?;
        conn.flush().await
    };
    sent.await.map_err(|e| if is_closed(&e) { Exchange::Closed } else { Exchange::Io(e) })?;

    let mut header = [0u8; HEADER_LEN];
    let first =
        conn.read(&mut header).await.map_err(|e| if is_closed(&e) { Exchange::Closed } else { Exchange::Io(e) })?;
    if first == 0 {
        return Err(Exchange::Closed);
    }
    conn.read_exact(&mut header[first..]).await.map_err(Exchange::Io)?;
    let len = response_length(&header)?;

    let mut response = Zeroizing::new(vec![0u8; HEADER_LEN + len]);
    response[..HEADER_LEN].copy_from_slice(&header);
    conn.read_exact(&mut response[HEADER_LEN..]).await.map_err(Exchange::Io)?;
    Ok(response)
}

/// Checks the header says "Response Message, structure" of a sane size.
fn response_length(header: &[u8]) -> Result<usize, Exchange> {
    let (tag, ty, len) = ttlv::decode_header(header).map_err(|e| Exchange::Framing(e.to_string()))?;
    if tag != tag::RESPONSE_MESSAGE || ty != STRUCTURE {
        return Err(Exchange::Framing(format!("answered with item {tag} of type 0x{ty:02X}, not a KMIP response")));
    }
    let len = len as usize;
    if len > MAX_RESPONSE {
        return Err(Exchange::Framing(format!("response of {len} bytes exceeds the {MAX_RESPONSE} byte limit")));
    }
    Ok(len)
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Short, lower-case words for the failures operators meet, the TLS error
/// itself when there is one, the system's text otherwise.
fn describe_io(e: &io::Error) -> String {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return tls.to_string();
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::UnexpectedEof => "connection closed by the server".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

fn tls_config(endpoint: &Endpoint<'_>) -> Result<ClientConfig, SetupError> {
    let roots = load_roots(endpoint.ca_cert)?;
    let chain = load_certs("client certificate", endpoint.client_cert)?;
    let key = PrivateKeyDer::from_pem_file(endpoint.client_key)
        .map_err(|source| pem_error("client key", endpoint.client_key, source))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SetupError::Tls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|source| SetupError::BadClientCert {
            cert: endpoint.client_cert.display().to_string(),
            key: endpoint.client_key.display().to_string(),
            source,
        })
}

/// Only the given CA is trusted: a KMIP server is a private service, and the
/// system's public roots have no say in who may hold Coffre's keys.
fn load_roots(path: &Path) -> Result<RootCertStore, SetupError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("CA certificate", path)? {
        roots.add(cert).map_err(|source| SetupError::BadCa { path: path.display().to_string(), source })?;
    }
    Ok(roots)
}

fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| pem_error(what, path, e))?.collect::<Result<Vec<_>, _>>();
    let certs = certs.map_err(|e| pem_error(what, path, e))?;
    if certs.is_empty() {
        return Err(pem_error(what, path, PemError::NoItemsFound));
    }
    Ok(certs)
}

fn pem_error(what: &'static str, path: &Path, source: PemError) -> SetupError {
    let path = path.display().to_string();
    match source {
        PemError::NoItemsFound => SetupError::Missing { what, path },
        source => SetupError::Pem { what, path, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_must_announce_a_response_message() {
        let mut header = [0x42, 0x00, 0x7B, 0x01, 0, 0, 0, 0x10];
        assert_eq!(response_length(&header).ok(), Some(16));
        header[2] = 0x78; // Request Message
        assert!(response_length(&header).is_err());
        header[2] = 0x7B;
        header[3] = 0x02;
        assert!(response_length(&header).is_err());
    }

    #[test]
    fn oversized_response_is_refused() {
        let header = [0x42, 0x00, 0x7B, 0x01, 0x7F, 0xFF, 0xFF, 0xF8];
        match response_length(&header) {
            Err(Exchange::Framing(detail)) => assert!(detail.contains("exceeds"), "{detail}"),
            _ => panic!("a 2 GiB response was accepted"),
        }
    }

    #[test]
    fn io_errors_read_well() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&refused), "connection refused");
        let tls = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(describe_io(&tls), rustls::Error::DecryptError.to_string());
    }
}
