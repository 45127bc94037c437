//! The accept loop shared by Coffre's HTTP/1.1 listeners (S3 and admin): an optional handshake
//! (TLS) under a deadline, hyper's request-head guards on whatever stream results, graceful drain.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A byte stream HTTP can be spoken on: a TCP connection or a session over one.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// What the handshake gives back: the stream HTTP runs on.
pub type HandshakeFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send>>;

/// Turns an accepted TCP connection into the stream HTTP is read from; the TLS
/// layer lives in the binary, so this crate knows only this contract.
pub trait Handshake: Send + Sync + 'static {
    fn handshake(&self, tcp: TcpStream) -> HandshakeFuture;
}

/// The connection-level guards.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Time allowed for the handshake, then for each request head.
    pub header_read_timeout: Duration,
    /// Largest request head hyper buffers.
    pub max_header_bytes: usize,
}

/// Accepts connections until `shutdown` resolves, then lets open connections
/// finish their requests for up to `drain`. `listener_name` only labels logs.
pub async fn serve<S, B>(
    listener: TcpListener,
    handshake: Option<Arc<dyn Handshake>>,
    limits: ConnLimits,
    make_service: impl Fn(SocketAddr) -> S,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    listener_name: &'static str,
) -> io::Result<()>
where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, listener = listener_name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = make_service(peer);
        // Taken before the task starts, so a shutdown that begins during the
        // handshake still reaches the connection that follows it.
        let watcher = graceful.watcher();
        let handshake = handshake.clone();
        tokio::spawn(async move {
            let io: Box<dyn Io> = match handshake {
                None => Box::new(stream),
                // The head timeout bounds the handshake too: a client that
                // connects and stays silent must not hold a task for long.
                Some(h) => match tokio::time::timeout(limits.header_read_timeout, h.handshake(stream)).await {
                    Ok(Ok(io)) => io,
                    Ok(Err(e)) => {
                        // Scanners and plain-HTTP clients land here: not worth more than debug.
                        tracing::debug!(error = %e, %peer, listener = listener_name, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, listener = listener_name, "TLS handshake timed out");
                        return;
                    }
                },
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, %peer, listener = listener_name, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => tracing::warn!(listener = listener_name, "in-flight requests did not finish in time"),
    }
    Ok(())
}
