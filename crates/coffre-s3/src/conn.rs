//! The accept loop shared by Coffre's HTTP/1.1 listeners (S3 and admin): a cap on connections,
//! an optional handshake (TLS) under a deadline, hyper's request-head guards and a write deadline
//! on whatever stream results, graceful drain.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

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
    /// Connections served at once. Above it, new ones are not accepted: they
    /// wait in the kernel's accept backlog (bounded by the kernel) until one
    /// ends, rather than being closed, so a burst is slowed, not failed.
    pub max_connections: usize,
    /// Longest a write to the peer may stay blocked: a client that stops
    /// reading an answer loses its connection (and the buffers behind it).
    pub write_timeout: Duration,
}

/// A stream whose writes must make progress: one that stays pending for
/// longer than `limit` fails with `TimedOut`, which ends the connection.
struct WriteDeadline {
    inner: Box<dyn Io>,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteDeadline {
    /// Passes a write's outcome on, arming the deadline while it is pending.
    fn watch<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let deadline = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }
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
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A free slot first: above the cap, connections stay in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
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
            let _slot = slot;
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
                .serve_connection(
                    TokioIo::new(WriteDeadline { inner: io, limit: limits.write_timeout, stalled: None }),
                    service,
                );
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
