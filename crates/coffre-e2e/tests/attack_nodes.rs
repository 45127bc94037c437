//! Attacks on the links between gateways and storage nodes, all against
//! real processes: clients without the right certificate, a node posing as
//! another target, a gateway trusting the wrong CA, a node that never
//! answers or floods, a replica altered on a node's disk, and scrub.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use coffre_e2e::deployment::node_target;
use coffre_e2e::node::ClusterCa;
use coffre_e2e::objects::{get, put};
use coffre_e2e::{Node, Server, coffre_bin, error_code, free_addr, pattern};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// (id, site): FR targets on distinct sites.
const SITES: [(&str, &str); 3] = [("par-1", "par-a"), ("par-2", "par-b"), ("par-3", "par-c")];

/// The config every process reads: gateway `gw`'s identity from `ca`,
/// `replicas` replicas on as many sites, the nodes at `addrs`, and `extra`
/// lines in `[cluster]`.
fn write_config(dir: &Path, ca: &ClusterCa, addrs: &[SocketAddr], replicas: usize, extra: &str) -> PathBuf {
    let mut toml = format!(
        "gc_grace_secs = 1\n\n{}{extra}\n\
         [residency]\nallow = [\"FR\"]\nreplicas = {replicas}\ndistinct_sites = {replicas}\n\n\
         [[operators]]\nid = \"op-fr\"\nname = \"Exemple Cloud SAS\"\ncountry = \"FR\"\nownership = {{ FR = 100.0 }}\n",
        ca.config_section()
    );
    for ((id, site), addr) in SITES.iter().zip(addrs) {
        toml.push_str(&node_target(id, *addr, ("FR", "paris", site), "op-fr"));
    }
    let path = dir.join("coffre.toml");
    std::fs::write(&path, toml).expect("config");
    path
}

fn load_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).expect("pem").collect::<Result<_, _>>().expect("certificates")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS client of the node API trusting `ca_pem` for node `node`, with the
/// certificate of identity directory `identity` (none: no certificate).
fn client_config(ca_pem: &Path, identity: Option<&Path>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca_pem) {
        roots.add(cert).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some(dir) => {
            let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("key");
            builder.with_client_auth_cert(load_certs(&dir.join("cert.pem")), key).expect("client certificate")
        }
    }
}

/// One request to node `node` at `addr` over TLS; the answer's status and
/// body, or why there was none.
async fn node_request(
    addr: SocketAddr,
    node: &str,
    config: rustls::ClientConfig,
    request: &[u8],
) -> Result<(u16, String), String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(format!("{node}.node.coffre.invalid")).expect("name");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector.connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
    // A node may answer before the body is sent and close: the answer is
    // read even when the rest of the request could not be written.
    let written = tls.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    match read {
        Err(_) => return Err("no answer within 10 s".into()),
        Ok(Err(e)) if answer.is_empty() => return Err(format!("read: {e} (write: {written:?})")),
        Ok(_) => {}
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(format!("not HTTP: {text:?}"))?;
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").into_bytes()
}

const BLOB: &str = "0123456789abcdef0123456789abcdef";

/// A node accepts gateways of its own cluster only: not a client without a
/// certificate, not one from another CA, and not another node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_only_the_gateways_of_its_cluster() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::new(tmp.path());
    let other = ClusterCa::new(&tmp.path().join("other"));
    let config = tmp.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let addr = free_addr();
    let node = Node::start("par-1", &ca, &config, tmp.path().join("par-1"), addr);
    let ca_pem = ca.dir.join("ca.pem");

    // The control: a gateway of the cluster stores a blob and reads the status.
    let gateway = client_config(&ca_pem, Some(&ca.gateway("gw-0")));
    let put = format!("PUT /v1/blobs/{BLOB} HTTP/1.1\r\nHost: n\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    let (status, body) = node_request(addr, "par-1", gateway.clone(), put.as_bytes()).await.expect("a gateway's put");
    assert_eq!(status, 201, "{body}");
    let (status, body) = node_request(addr, "par-1", gateway, &get_request("/v1/status")).await.expect("status");
    assert_eq!((status, body.contains("par-1")), (200, true), "{body}");

    let delete = format!("DELETE /v1/blobs/{BLOB} HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n");
    let attempts = [
        ("no client certificate", client_config(&ca_pem, None)),
        ("a gateway certificate of another cluster's CA", client_config(&ca_pem, Some(&other.gateway("gw-0")))),
        ("another node's certificate", client_config(&ca_pem, Some(&ca.node("par-2")))),
        ("the node's own certificate", client_config(&ca_pem, Some(&ca.node("par-1")))),
    ];
    for (who, config) in attempts {
        let answer = node_request(addr, "par-1", config, delete.as_bytes()).await;
        assert!(answer.is_err(), "{who}: the node answered {answer:?}");
    }
    assert_eq!(node.blobs().len(), 1, "a refused client deleted the blob");
    let log = node.log();
    for why in ["does not chain to the cluster CA", "is not a gateway's"] {
        assert!(log.contains(why), "the node's log does not say {why:?}:\n{log}");
    }
}

/// A gateway takes only the node whose certificate names the target it
/// dials; and a gateway trusting the wrong CA says so, not "node down".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refuses_an_impostor_node_and_names_a_wrong_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::new(tmp.path());
    let addrs = [free_addr(), free_addr()];
    let config = write_config(tmp.path(), &ca, &addrs, 2, "");
    let _par1 = Node::start("par-1", &ca, &config, tmp.path().join("par-1"), addrs[0]);
    // par-1's node, certificate and all, where the topology has par-2.
    let impostor = Node::start_as("par-1", &ca.node("par-1"), &config, tmp.path().join("impostor"), addrs[1]);
    let gateway = Server::start_with_config(&tmp.path().join("gw"), &config, &["--role", "gateway"]);

    let targets = wait_for_targets(&gateway, |t| t[1]["problem"].is_string());
    assert_eq!(targets[0]["up"], true, "{targets:#}");
    let problem = targets[1]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("names node par-1, not node par-2"), "{targets:#}");
    let c = gateway.client();
    c.create_bucket().bucket("bkt").send().await.expect("bucket");
    let refused = c.put_object().bucket("bkt").key("k").body(vec![1u8; 100].into()).send().await;
    assert_eq!(error_code(refused), ("ResidencyPolicyUnsatisfiable".to_owned(), 503));
    assert!(impostor.blobs().is_empty(), "the impostor was given a replica");

    // A gateway whose identity (and CA) comes from another cluster.
    let other = ClusterCa::new(&tmp.path().join("other"));
    let identity = other.gateway("gw-x");
    let args = ["--role", "gateway", "--cluster-identity", identity.to_str().expect("utf-8")];
    let stranger = Server::start_with_config(&tmp.path().join("gw-x"), &config, &args);
    let targets = wait_for_targets(&stranger, |t| t[0]["problem"].is_string());
    let problem = targets[0]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("does not chain to the cluster CA this gateway trusts"), "{targets:#}");
    assert!(!problem.contains("unreachable"), "{targets:#}");
    assert!(stranger.log().contains("does not chain to the cluster CA"), "the log does not say why");
}

/// `coffre target list`, once `ready` holds of it (within 15 s).
fn wait_for_targets(gateway: &Server, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let targets = gateway.cli_json(&["target", "list"]);
        if ready(&targets) || Instant::now() > deadline {
            return targets;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How a fake node misbehaves.
#[derive(Clone, Copy)]
enum Fake {
    /// Takes the connection and the request, never answers.
    Silent,
    /// Answers 200 announcing a terabyte, and sends bytes until cut off.
    Flood,
}

/// A "node" with a real node certificate of the cluster, that misbehaves;
/// counts the bytes it manages to push.
async fn fake_node(listener: tokio::net::TcpListener, identity: PathBuf, how: Fake, sent: Arc<AtomicU64>) {
    let key = PrivateKeyDer::from_pem_file(identity.join("key.pem")).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(load_certs(&identity.join("cert.pem")), key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let (acceptor, sent) = (acceptor.clone(), sent.clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
                if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            match how {
                Fake::Silent => {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    drop(tls);
                }
                Fake::Flood => {
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1099511627776\r\n\r\n").await;
                    let chunk = vec![0xAB; 64 << 10];
                    while tls.write_all(&chunk).await.is_ok() {
                        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                }
            }
        });
    }
}

/// Resident memory of the process whose command line holds `needle`.
fn rss_kib(needle: &str) -> u64 {
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            if let Some(kib) = status.lines().find_map(|l| l.strip_prefix("VmRSS:")) {
                return kib.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            }
        }
    }
    panic!("no process with {needle} in its command line")
}

/// A presigned GET sent once (no SDK retries): status, body, and how long.
async fn get_once(c: &aws_sdk_s3::Client, s3: SocketAddr, bucket: &str, key: &str) -> (u16, String, Duration) {
    let presigned = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("presign"))
        .await
        .expect("presigned");
    let uri: http::Uri = presigned.uri().parse().expect("uri");
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {s3}\r\nConnection: close\r\n\r\n");
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || coffre_e2e::raw_request(s3, request.as_bytes()))
        .await
        .expect("join")
        .expect("an answer");
    (answer.0, answer.1, started.elapsed())
}

/// A node that never answers, then one that floods: each GET is a 503
/// within the configured limits, the gateway's log names the node and why,
/// and its memory does not follow the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_flooding_node_gets_a_prompt_503_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::new(tmp.path());
    let addrs = [free_addr()];
    let limits = "connect_timeout_secs = 1\nresponse_timeout_secs = 2\nbody_idle_timeout_secs = 2\n";
    let config = write_config(tmp.path(), &ca, &addrs, 1, limits);
    let mut node = Node::start("par-1", &ca, &config, tmp.path().join("par-1"), addrs[0]);
    let gateway_dir = tmp.path().join("gw");
    let gateway = Server::start_with_config(&gateway_dir, &config, &["--role", "gateway"]);
    let c = gateway.client();
    c.create_bucket().bucket("bkt").send().await.expect("bucket");
    let body = pattern(3 << 20, 7);
    put(&c, "bkt", "k", body.clone()).await;
    node.kill();

    for how in [Fake::Silent, Fake::Flood] {
        let listener = bind_when_free(addrs[0]).await;
        let sent = Arc::new(AtomicU64::new(0));
        let fake = tokio::spawn(fake_node(listener, ca.node("par-1"), how, sent.clone()));
        let before = rss_kib(&gateway_dir.to_string_lossy());
        let (status, text, took) = get_once(&c, gateway.s3, "bkt", "k").await;
        assert_eq!(status, 503, "{text}");
        assert!(text.contains("ServiceUnavailable"), "{text}");
        // The response limit (2 s) and some slack for a debug build.
        assert!(took < Duration::from_secs(8), "the 503 took {took:?}");
        let after = rss_kib(&gateway_dir.to_string_lossy());
        assert!(after < before + 64 * 1024, "the gateway grew from {before} KiB to {after} KiB");
        let why = match how {
            Fake::Silent => "no answer within 2s",
            Fake::Flood => "announced 1099511627776 bytes",
        };
        let log = gateway.log();
        assert!(log.contains("par-1") && log.contains(why), "the log does not name par-1 and {why:?}:\n{log}");
        fake.abort();
        let _ = fake.await; // its listener is closed once the task is gone
        if let Fake::Flood = how {
            eprintln!("the flooding node pushed {} bytes before the gateway hung up", sent.load(Ordering::Relaxed));
        }
    }
}

/// A listener on `addr`, once the process or task that held it has let go.
async fn bind_when_free(addr: SocketAddr) -> tokio::net::TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{addr} not free yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the node's address {addr}: {e}"),
        }
    }
}

/// The path of blob `id`'s file on `node`'s disk.
fn blob_path(node: &Node, id: &str) -> PathBuf {
    coffre_e2e::files::blob_files(&node.data_dir)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == id))
        .unwrap_or_else(|| panic!("blob {id} is not on {}", node.id))
}

/// Flips bytes in the middle of a file, keeping its size.
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).expect("blob");
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5A;
    }
    let mut file = std::fs::OpenOptions::new().write(true).open(path).expect("open");
    file.write_all(&bytes).expect("write");
}

/// Two nodes, two replicas, one object written: the nodes, the gateway,
/// and (target, blob id) of each replica in read order.
struct Pair {
    nodes: Vec<Node>,
    gateway: Server,
    body: Vec<u8>,
    _tmp: tempfile::TempDir,
}

impl Pair {
    async fn start(extra: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ca = ClusterCa::new(tmp.path());
        let addrs = [free_addr(), free_addr()];
        let config = write_config(tmp.path(), &ca, &addrs, 2, extra);
        let nodes = SITES
            .iter()
            .zip(addrs)
            .map(|((id, _), addr)| Node::start(id, &ca, &config, tmp.path().join(id), addr))
            .collect();
        let gateway = Server::start_with_config(&tmp.path().join("gw"), &config, &["--role", "gateway"]);
        let c = gateway.client();
        c.create_bucket().bucket("bkt").send().await.expect("bucket");
        let body = pattern((2 << 20) + 12_345, 3);
        put(&c, "bkt", "k", body.clone()).await;
        Self { nodes, gateway, body, _tmp: tmp }
    }

    /// (node, blob id) of each replica, first read first.
    fn replicas(&self) -> Vec<(&Node, String)> {
        let view = self.gateway.cli_json(&["object", "where", "bkt", "k", "--json"]);
        let replicas = view["replicas"].as_array().expect("replicas");
        replicas
            .iter()
            .map(|r| {
                let node = self.nodes.iter().find(|n| n.id == r["target"]).expect("a node");
                (node, r["blob_ids"][0].as_str().expect("blob id").to_owned())
            })
            .collect()
    }

    /// Waits until every replica's file is byte for byte the same again.
    fn wait_until_replicas_agree(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let files: Vec<Option<Vec<u8>>> = self
                .replicas()
                .iter()
                .map(|(node, id)| {
                    coffre_e2e::files::blob_files(&node.data_dir)
                        .into_iter()
                        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == *id))
                        .and_then(|p| std::fs::read(p).ok())
                })
                .collect();
            if files.iter().all(Option::is_some) && files.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: the replicas still differ after 30 s");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A replica altered on a node's disk: the GET still returns the object's
/// bytes (read from the other replica), and the bad one is rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_replica_is_read_around_and_rewritten() {
    let pair = Pair::start("").await;
    let replicas = pair.replicas();
    let (first, id) = &replicas[0];
    corrupt(&blob_path(first, id));

    let c = pair.gateway.client();
    assert!(get(&c, "bkt", "k").await == pair.body, "the GET returned other bytes");
    pair.wait_until_replicas_agree("after a GET met the corrupt replica");
    assert!(get(&c, "bkt", "k").await == pair.body);
    let scrub = pair.gateway.cli_json(&["target", "scrub"]);
    assert_eq!(scrub["reported_by_readers"]["repaired"], 1, "{scrub:#}");
    assert!(pair.gateway.log().contains("failed authentication"), "the log does not say what happened");
}

/// Scrub, with no GET at all: one replica altered, another object's replica
/// deleted; a pass finds both and rewrites them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_finds_and_rewrites_corrupt_and_missing_replicas_without_a_get() {
    let pair = Pair::start("scrub_bytes_per_sec = 1048576\n").await;
    let c = pair.gateway.client();
    put(&c, "bkt", "other", pattern(100_000, 9)).await;
    let view = pair.gateway.cli_json(&["object", "where", "bkt", "other", "--json"]);
    let other_target = view["replicas"][1]["target"].as_str().expect("target").to_owned();
    let other_id = view["replicas"][1]["blob_ids"][0].as_str().expect("id").to_owned();
    let replicas = pair.replicas();
    let (node, id) = &replicas[1];
    corrupt(&blob_path(node, id));
    let holder = pair.nodes.iter().find(|n| n.id == other_target).expect("node");
    std::fs::remove_file(blob_path(holder, &other_id)).expect("remove a replica");

    let started = pair.gateway.cli_json(&["target", "scrub", "--start"]);
    assert!(started["queued"].as_u64() > Some(0), "{started:#}");
    pair.wait_until_replicas_agree("after a scrub pass");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = pair.gateway.cli_json(&["target", "scrub"]);
        if status["passes"].as_u64() >= Some(1) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(status["pass"]["corrupt"], 2, "{status:#}");
    assert_eq!(status["pass"]["repaired"], 2, "{status:#}");
    assert_eq!(status["pass"]["blobs"], 2, "{status:#}");
    assert!(status["pass"]["bytes"].as_u64() > Some(4 << 20), "{status:#}");
    assert!(blob_path(holder, &other_id).exists(), "the missing replica is back");
    assert_eq!(status["reported_by_readers"]["blobs"], 0, "no reader was involved: {status:#}");
}

/// The old shared secret stops a node at start, saying what to do instead.
#[test]
fn the_old_cluster_secret_is_refused_with_the_commands_to_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("coffre.toml");
    std::fs::write(&config, "[cluster]\nsecret = \"an old shared secret, long enough\"\n").expect("config");
    let out = std::process::Command::new(coffre_bin())
        .args(["serve", "--role", "storage", "--node-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a node started on the shared secret");
    assert!(stderr.contains("coffre cluster ca") && stderr.contains("coffre cluster issue"), "{stderr}");
}

/// One random request to the node API from an authenticated gateway: a
/// method, a path (blob ids altered, traversal, encodings, lengths), headers
/// and a body whose length is the one declared.
fn random_node_request(rng: &mut fastrand::Rng) -> Vec<u8> {
    const METHODS: [&str; 8] = ["GET", "PUT", "DELETE", "HEAD", "POST", "PATCH", "OPTIONS", "G\u{e9}T"];
    const PATHS: [&str; 13] = [
        "/v1/blobs/0123456789abcdef0123456789abcdef?start=0&end=70000",
        "/v1/blobs/0123456789abcdef0123456789abcdef",
        "/v1/blobs/../../../../etc/passwd",
        "/v1/blobs/%2e%2e%2f%2e%2e%2fescape",
        "/v1/blobs/",
        "/v1/blobs",
        "/v1/status",
        "/v1/status/../blobs/0123456789abcdef0123456789abcdef",
        "/v1/blobs/0123456789ABCDEF0123456789ABCDEF",
        "/v1/blobs/0123456789abcdef0123456789abcdeg",
        "/v2/blobs/0123456789abcdef0123456789abcdef",
        "//v1//blobs//0123456789abcdef0123456789abcdef",
        "/v1/blobs/0123456789abcdef0123456789abcdef?start=99999999999999999999&end=1",
    ];
    let method = METHODS[rng.usize(0..METHODS.len())];
    let mut path = PATHS[rng.usize(0..PATHS.len())].to_owned();
    match rng.u8(0..4) {
        0 => path.push_str(&"f".repeat(rng.usize(1..5000))),
        1 => path.insert_str(rng.usize(1..path.len()), "%00"),
        2 => path.push_str(&format!("?start={}&end={}", rng.u64(..), rng.i64(..))),
        _ => {}
    }
    let body: Vec<u8> = (0..rng.usize(0..70_000)).map(|_| rng.u8(..)).collect();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n");
    match rng.u8(0..5) {
        0 => head.push_str("Range: bytes=99999999999-1\r\n"),
        1 => head.push_str(&format!("X-Coffre-Checksum: {}\r\n", rng.u64(..))),
        2 => head.push_str(&format!("Content-Type: {}\r\n", "x".repeat(rng.usize(1..20_000)))),
        _ => {}
    }
    let mut request = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    request.extend_from_slice(&body);
    request
}

/// Random requests from a gateway the node trusts (the most it lets in):
/// every answer is a status below 500, the node keeps serving, nothing is
/// written outside its blob directory, and the blob stored first is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_from_a_gateway_never_break_a_node() {
    let seed = std::env::var("COFFRE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20261207);
    let cases: usize = std::env::var("COFFRE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::new(tmp.path());
    let config = tmp.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let addr = free_addr();
    let node = Node::start("par-1", &ca, &config, tmp.path().join("par-1"), addr);
    let gateway = client_config(&ca.dir.join("ca.pem"), Some(&ca.gateway("gw-0")));
    let kept = "9876543210fedcba9876543210fedcba";
    let put = format!("PUT /v1/blobs/{kept} HTTP/1.1\r\nHost: n\r\nContent-Length: 4\r\nConnection: close\r\n\r\nkeep");
    let (status, body) = node_request(addr, "par-1", gateway.clone(), put.as_bytes()).await.expect("put");
    assert_eq!(status, 201, "{body}");
    let before: Vec<PathBuf> = walk(tmp.path()).into_iter().filter(|p| !p.starts_with(&node.data_dir)).collect();

    let mut rng = fastrand::Rng::with_seed(seed);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..cases {
        let request = random_node_request(&mut rng);
        let first_line = String::from_utf8_lossy(&request[..request.len().min(120)]).lines().next().map(str::to_owned);
        match node_request(addr, "par-1", gateway.clone(), &request).await {
            Ok((status, body)) => {
                *statuses.entry(status).or_default() += 1;
                assert!(status < 500, "seed {seed} case {n}: {status} to {first_line:?}: {body}");
            }
            Err(why) => panic!("seed {seed} case {n}: no answer to {first_line:?}: {why}"),
        }
    }
    println!("node fuzz: seed={seed} cases={cases} statuses={statuses:?}");
    let (status, body) =
        node_request(addr, "par-1", gateway.clone(), &get_request(&format!("/v1/blobs/{kept}?start=0&end=4")))
            .await
            .expect("the node still serves");
    // The node streams blobs: its answer is chunked (one chunk of 4 bytes).
    assert_eq!((status, body.as_str()), (200, "4\r\nkeep\r\n0\r\n\r\n"), "the blob stored first changed");
    let after: Vec<PathBuf> = walk(tmp.path()).into_iter().filter(|p| !p.starts_with(&node.data_dir)).collect();
    assert_eq!(before, after, "files appeared outside the node's data directory");
}

/// Every file under `dir`, sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { found.push(path) }
        }
    }
    found.sort();
    found
}
