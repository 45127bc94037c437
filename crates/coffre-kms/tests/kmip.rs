//! The KMIP custodian against a real KMIP server (PyKMIP, started by
//! `scripts/kmip-server.sh`, which prints the variables read here).
//! Without `COFFRE_TEST_KMIP_ADDR` every test says it skipped and passes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffre_crypto::kms::{Custody, KekId, Kms, KmsError, MAX_WRAP_INPUT};
use coffre_kms::kmip::{CONNECT_TIMEOUT, KmipConfig, KmipKms, REQUEST_TIMEOUT};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The test server's settings, or `None` (and a note) when there is none.
fn server() -> Option<KmipConfig> {
    let Some(addr) = var("COFFRE_TEST_KMIP_ADDR") else {
        println!("skipped: COFFRE_TEST_KMIP_ADDR unset");
        return None;
    };
    let path = |name: &str| PathBuf::from(var(name).unwrap_or_else(|| panic!("{name} must be set with the address")));
    Some(KmipConfig {
        addr,
        server_name: "localhost".into(),
        ca_cert: path("COFFRE_TEST_KMIP_CA"),
        client_cert: path("COFFRE_TEST_KMIP_CERT"),
        client_key: path("COFFRE_TEST_KMIP_KEY"),
    })
}

async fn connect(config: KmipConfig) -> KmipKms {
    match KmipKms::connect(config).await {
        Ok(kms) => kms,
        Err(e) => panic!("connecting to the test KMIP server: {e}"),
    }
}

async fn new_kek(kms: &KmipKms, label: &str) -> KekId {
    kms.create_kek(label).await.unwrap_or_else(|e| panic!("create_kek: {e}"))
}

#[tokio::test]
async fn wrap_unwrap_round_trip() {
    let Some(config) = server() else { return };
    let kms = connect(config).await;
    assert_eq!(kms.custody(), Custody::Kmip);
    let kek = new_kek(&kms, "round trip").await;
    for len in [1, 32, MAX_WRAP_INPUT] {
        let secret: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5A).collect();
        let wrapped = kms.wrap(&kek, &secret, b"bucket=photos").await.expect("wrap");
        if len >= 16 {
            // One byte matches by chance one time in 256.
            assert_ne!(&wrapped[wrapped.len() - len..], &secret[..], "the secret shows through");
        }
        let unwrapped = kms.unwrap(&kek, &wrapped, b"bucket=photos").await.expect("unwrap");
        assert_eq!(&unwrapped[..], &secret[..]);
    }
    // Two wraps of one secret differ: a fresh IV each time.
    let a = kms.wrap(&kek, &[7; 32], b"").await.expect("wrap");
    let b = kms.wrap(&kek, &[7; 32], b"").await.expect("wrap");
    assert_ne!(a, b);
    assert_eq!(&kms.unwrap(&kek, &a, b"").await.expect("unwrap")[..], &[7; 32]);
    kms.destroy_kek(&kek).await.expect("destroy");
}

#[tokio::test]
async fn wrap_refuses_empty_and_oversized_secrets() {
    let Some(config) = server() else { return };
    let kms = connect(config).await;
    let kek = new_kek(&kms, "sizes").await;
    for len in [0, MAX_WRAP_INPUT + 1] {
        let err = kms.wrap(&kek, &vec![1; len], b"ctx").await.expect_err("refused");
        assert!(matches!(err, KmsError::Other(_)), "{len} bytes: {err:?}");
    }
    kms.destroy_kek(&kek).await.expect("destroy");
}

#[tokio::test]
async fn wrong_context_is_integrity() {
    let Some(config) = server() else { return };
    let kms = connect(config).await;
    let kek = new_kek(&kms, "context").await;
    let wrapped = kms.wrap(&kek, &[9; 32], b"bucket=a").await.expect("wrap");
    for context in [&b"bucket=b"[..], b"", b"bucket=a\0"] {
        let err = kms.unwrap(&kek, &wrapped, context).await.expect_err("wrong context accepted");
        assert!(matches!(err, KmsError::Integrity), "{context:?}: {err:?}");
    }
    kms.destroy_kek(&kek).await.expect("destroy");
}

#[tokio::test]
async fn any_changed_byte_is_integrity() {
    let Some(config) = server() else { return };
    let kms = connect(config).await;
    let kek = new_kek(&kms, "flips").await;
    let wrapped = kms.wrap(&kek, &[3; 32], b"ctx").await.expect("wrap");
    // Every byte: the format version, the IV, the tag and the ciphertext.
    for i in 0..wrapped.len() {
        let mut changed = wrapped.clone();
        changed[i] ^= 0x01;
        let err = kms.unwrap(&kek, &changed, b"ctx").await.expect_err("changed blob accepted");
        assert!(matches!(err, KmsError::Integrity), "byte {i}: {err:?}");
    }
    for cut in [&wrapped[..wrapped.len() - 1], &wrapped[..1], &[][..]] {
        let err = kms.unwrap(&kek, cut, b"ctx").await.expect_err("cut blob accepted");
        assert!(matches!(err, KmsError::Integrity), "{} bytes: {err:?}", cut.len());
    }
    let mut longer = wrapped.clone();
    longer.push(0);
    assert!(matches!(kms.unwrap(&kek, &longer, b"ctx").await, Err(KmsError::Integrity)));
    kms.destroy_kek(&kek).await.expect("destroy");
}

#[tokio::test]
async fn another_keks_blob_is_integrity() {
    let Some(config) = server() else { return };
    let kms = connect(config).await;
    let (a, b) = (new_kek(&kms, "a").await, new_kek(&kms, "b").await);
    let wrapped = kms.wrap(&a, &[5; 32], b"ctx").await.expect("wrap");
    assert!(matches!(kms.unwrap(&b, &wrapped, b"ctx").await, Err(KmsError::Integrity)));
    kms.destroy_kek(&a).await.expect("destroy");
    kms.destroy_kek(&b).await.expect("destroy");
}

#[tokio::test]
async fn destroyed_kek_is_gone_for_good() {
    let Some(config) = server() else { return };
    let kms = connect(config).await;
    let kek = new_kek(&kms, "crypto-erasure").await;
    let wrapped = kms.wrap(&kek, &[1; 32], b"ctx").await.expect("wrap");
    kms.destroy_kek(&kek).await.expect("destroy");
    match kms.unwrap(&kek, &wrapped, b"ctx").await {
        Err(KmsError::NoSuchKey(id)) => assert_eq!(id, kek),
        other => panic!("unwrap after destroy: {other:?}"),
    }
    assert!(matches!(kms.wrap(&kek, &[1; 32], b"ctx").await, Err(KmsError::NoSuchKey(_))));
    kms.destroy_kek(&kek).await.expect("destroying twice is fine");
    kms.destroy_kek(&KekId("no-such-key-4711".into())).await.expect("destroying a stranger is fine");
    kms.destroy_kek(&KekId(String::new())).await.expect("an empty id names no key");
}

#[tokio::test]
async fn unknown_kek_is_no_such_key() {
    let Some(config) = server() else { return };
    let kms = connect(config).await;
    let kek = KekId("no-such-key-4712".into());
    assert!(matches!(kms.wrap(&kek, &[1; 32], b"ctx").await, Err(KmsError::NoSuchKey(_))));
}

#[tokio::test]
async fn status_round_trips_a_probe() {
    let Some(config) = server() else { return };
    let addr = config.addr.clone();
    let kms = connect(config).await;
    let status = kms.status().await.expect("status");
    assert_eq!(status.custody, Custody::Kmip);
    assert!(status.location.contains(&addr), "{status:?}");
    assert!(status.detail.contains("KMIP 1.4"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_wraps_round_trip() {
    let Some(config) = server() else { return };
    let kms = Arc::new(connect(config).await);
    let kek = new_kek(&kms, "concurrency").await;
    let tasks: Vec<_> = (0..50u8)
        .map(|i| {
            let (kms, kek) = (Arc::clone(&kms), kek.clone());
            tokio::spawn(async move {
                let secret = [i; 32];
                let context = format!("object {i}");
                let wrapped = kms.wrap(&kek, &secret, context.as_bytes()).await?;
                let unwrapped = kms.unwrap(&kek, &wrapped, context.as_bytes()).await?;
                Ok::<bool, KmsError>(unwrapped[..] == secret[..])
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let same = task.await.expect("task ran").unwrap_or_else(|e| panic!("task {i}: {e}"));
        assert!(same, "task {i} got other bytes back");
    }
    kms.destroy_kek(&kek).await.expect("destroy");
}

#[tokio::test]
async fn closed_port_is_unavailable_at_once() {
    let Some(mut config) = server() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    config.addr = listener.local_addr().expect("address").to_string();
    drop(listener);
    let started = Instant::now();
    let err = KmipKms::connect(config.clone()).await.err().expect("nothing listens there");
    match &err {
        KmsError::Unavailable(message) => {
            assert_eq!(message, &format!("KMIP server {}: connection refused", config.addr))
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < CONNECT_TIMEOUT, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn silent_server_is_unavailable_within_the_timeout() {
    let Some(mut config) = server() else { return };
    // Accepts connections and never says a word, like a stopped process
    // whose socket the kernel still answers for.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    config.addr = listener.local_addr().expect("address").to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let started = Instant::now();
    let err = KmipKms::connect(config).await.err().expect("a silent server cannot be used");
    let took = started.elapsed();
    holder.abort();
    assert!(matches!(&err, KmsError::Unavailable(m) if m.contains("TLS handshake not done within 5 s")), "{err:?}");
    assert!(took >= CONNECT_TIMEOUT && took < CONNECT_TIMEOUT + Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let Some(mut config) = server() else { return };
    let (Some(cert), Some(key)) = (var("COFFRE_TEST_KMIP_STRANGER_CERT"), var("COFFRE_TEST_KMIP_STRANGER_KEY")) else {
        println!("skipped: COFFRE_TEST_KMIP_STRANGER_CERT/KEY unset");
        return;
    };
    config.client_cert = cert.into();
    config.client_key = key.into();
    let err = KmipKms::connect(config).await.err().expect("the server let a stranger in");
    assert!(matches!(&err, KmsError::Unavailable(m) if m.contains("TLS handshake failed")), "{err:?}");
}

#[tokio::test]
async fn server_certificate_for_another_name_is_refused() {
    let Some(mut config) = server() else { return };
    config.server_name = "kmip.example".into();
    let err = KmipKms::connect(config).await.err().expect("a server with another name was trusted");
    assert!(matches!(&err, KmsError::Unavailable(m) if m.contains("certificate")), "{err:?}");
}

#[tokio::test]
async fn bad_settings_name_the_file() {
    let Some(mut config) = server() else { return };
    config.ca_cert = "/nonexistent/ca.pem".into();
    let err = KmipKms::connect(config).await.err().expect("a missing CA file was accepted");
    assert!(matches!(&err, KmsError::Other(m) if m.contains("/nonexistent/ca.pem")), "{err:?}");
}

/// A TCP relay between the client and the real server that a test can cut,
/// freeze (it stops passing the server's answers on) or close.
mod relay {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    pub struct Relay {
        pub addr: SocketAddr,
        upstream: String,
        shared: Arc<Shared>,
        acceptor: Mutex<Option<JoinHandle<()>>>,
    }

    #[derive(Default)]
    struct Shared {
        frozen: AtomicBool,
        accepted: AtomicUsize,
        pipes: Mutex<Vec<JoinHandle<()>>>,
    }

    impl Relay {
        pub async fn start(upstream: &str) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let relay =
                Self { addr, upstream: upstream.to_owned(), shared: Arc::default(), acceptor: Mutex::new(None) };
            relay.serve(listener);
            relay
        }

        fn serve(&self, listener: TcpListener) {
            let (shared, upstream) = (Arc::clone(&self.shared), self.upstream.clone());
            let acceptor = tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let up = tokio::spawn(pipe(client_read, server_write, None));
                    let down = tokio::spawn(pipe(server_read, client_write, Some(Arc::clone(&shared))));
                    shared.pipes.lock().expect("lock").extend([up, down]);
                }
            });
            *self.acceptor.lock().expect("lock") = Some(acceptor);
        }

        pub fn accepted(&self) -> usize {
            self.shared.accepted.load(Ordering::SeqCst)
        }

        /// Drops every relayed connection, as a server restart would.
        pub fn cut(&self) {
            for pipe in self.shared.pipes.lock().expect("lock").drain(..) {
                pipe.abort();
            }
        }

        pub fn freeze(&self, frozen: bool) {
            self.shared.frozen.store(frozen, Ordering::SeqCst);
        }

        /// Stops listening and cuts everything: the port now refuses.
        pub fn close(&self) {
            if let Some(acceptor) = self.acceptor.lock().expect("lock").take() {
                acceptor.abort();
            }
            self.cut();
        }

        /// Listens again on the same port.
        pub async fn reopen(&self) {
            let listener = TcpListener::bind(self.addr).await.expect("rebind the relay's port");
            self.serve(listener);
        }
    }

    async fn pipe(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, hold: Option<Arc<Shared>>) {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            while hold.as_ref().is_some_and(|s| s.frozen.load(Ordering::SeqCst)) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
}

/// A client that reaches the test server through a relay.
async fn relayed() -> Option<(relay::Relay, KmipKms)> {
    let mut config = server()?;
    let relay = relay::Relay::start(&config.addr).await;
    config.addr = relay.addr.to_string();
    let kms = connect(config).await;
    Some((relay, kms))
}

#[tokio::test]
async fn reconnects_when_the_server_drops_the_connection() {
    let Some((relay, kms)) = relayed().await else { return };
    let kek = new_kek(&kms, "reconnect").await;
    let wrapped = kms.wrap(&kek, &[4; 32], b"ctx").await.expect("wrap");
    assert_eq!(relay.accepted(), 1);
    relay.cut();
    let unwrapped = kms.unwrap(&kek, &wrapped, b"ctx").await.expect("unwrap on a new connection");
    assert_eq!(&unwrapped[..], &[4; 32]);
    assert_eq!(relay.accepted(), 2);
    kms.destroy_kek(&kek).await.expect("destroy");
}

#[tokio::test]
async fn hung_server_is_unavailable_after_the_request_timeout() {
    let Some((relay, kms)) = relayed().await else { return };
    let kek = new_kek(&kms, "hung").await;
    relay.freeze(true);
    let started = Instant::now();
    let err = kms.wrap(&kek, &[4; 32], b"ctx").await.expect_err("a hung server answered");
    let took = started.elapsed();
    assert!(matches!(&err, KmsError::Unavailable(m) if m.ends_with("no response within 10 s")), "{err:?}");
    assert!(took >= REQUEST_TIMEOUT && took < REQUEST_TIMEOUT + Duration::from_secs(2), "took {took:?}");
    // Once it wakes up, the next call works on a fresh connection.
    relay.freeze(false);
    relay.cut();
    kms.wrap(&kek, &[4; 32], b"ctx").await.expect("wrap after the server came back");
    kms.destroy_kek(&kek).await.expect("destroy");
}

#[tokio::test]
async fn server_going_away_is_unavailable_then_recovers() {
    let Some((relay, kms)) = relayed().await else { return };
    let kek = new_kek(&kms, "outage").await;
    relay.close();
    let expected = format!("KMIP server {}: connection refused", relay.addr);
    for _ in 0..2 {
        let started = Instant::now();
        match kms.wrap(&kek, &[4; 32], b"ctx").await {
            Err(KmsError::Unavailable(message)) => assert_eq!(message, expected),
            other => panic!("wrap during an outage: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    }
    relay.reopen().await;
    // Failed connections are not retried for a second: wait that out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    kms.wrap(&kek, &[4; 32], b"ctx").await.expect("wrap after the outage");
    kms.destroy_kek(&kek).await.expect("destroy");
}
