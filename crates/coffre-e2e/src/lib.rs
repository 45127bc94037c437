//! Test harness: starts a real `coffre serve` on free loopback ports with its
//! own data directory, hands out AWS SDK clients for it, and stops it (or
//! kills it with SIGKILL, for crash tests). `Server::start_tls` runs it with a
//! certificate from a throwaway CA ([`pki`]) that its SDK clients trust.

pub mod pki;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata as _;

pub const ROOT_ACCESS: &str = "e2eroot";
pub const ROOT_SECRET: &str = "e2e-root-secret-key";

/// The `coffre` binary under test: `COFFRE_BIN`, else the workspace's debug build.
pub fn coffre_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("COFFRE_BIN") {
        return bin.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug/coffre")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

pub struct Server {
    child: Option<Child>,
    pub s3: SocketAddr,
    pub admin: SocketAddr,
    pub data_dir: PathBuf,
    /// The CA that signed the server's certificate, when TLS is on.
    pub ca_cert: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
    _pki: Option<pki::TestPki>,
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Self::start_in(&dir);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on `data_dir` (kept after the server stops).
    pub fn start_in(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::start_with_args(data_dir, &[], extra_env)
    }

    /// Starts a server with TLS on both listeners, on a fresh data directory.
    pub fn start_tls() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = pki::TestPki::new();
        let leaf = pki.leaf("server", 1);
        let args = ["--tls-cert".as_ref(), leaf.cert.as_os_str(), "--tls-key".as_ref(), leaf.key.as_os_str()];
        let mut s = Self::start_with_args(&tmp.path().join("data"), &args, &[]);
        s.ca_cert = Some(pki.ca_cert.clone());
        (s._tmp, s._pki) = (Some(tmp), Some(pki));
        s
    }

    pub fn start_with_args(data_dir: &Path, args: &[&std::ffi::OsStr], extra_env: &[(&str, &str)]) -> Self {
        Self::try_start_with_args(data_dir, args, extra_env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Server::start_with`], but a server that does not come up is an
    /// error carrying its log, not a panic: the power-cut driver reports it.
    pub fn try_start_with(data_dir: &Path, extra_env: &[(&str, &str)]) -> Result<Self, String> {
        Self::try_start_with_args(data_dir, &[], extra_env)
    }

    /// Ports come from binding port 0 and letting go, so another process (a
    /// client's outgoing connection, even) may take one before the server
    /// binds it: a start that fails on that alone is tried again on new ports.
    fn try_start_with_args(
        data_dir: &Path,
        args: &[&std::ffi::OsStr],
        extra_env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start_once(data_dir, args, extra_env) {
                Err(e) if attempt < 3 && e.contains("Address already in use") => continue,
                other => return other,
            }
        }
    }

    fn try_start_once(data_dir: &Path, args: &[&std::ffi::OsStr], extra_env: &[(&str, &str)]) -> Result<Self, String> {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let s3 = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("server.log")).expect("log file");
        let mut cmd = Command::new(coffre_bin());
        cmd.args(["serve", "--data-dir"]).arg(data_dir);
        // A test that brings its own config file (COFFRE_CONFIG) keeps it.
        if let Some(config) = kms_config().filter(|_| !extra_env.iter().any(|(k, _)| *k == "COFFRE_CONFIG")) {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["--s3-listen", &s3.to_string(), "--admin-listen", &admin.to_string()])
            .env("COFFRE_ROOT_ACCESS_KEY", ROOT_ACCESS)
            .env("COFFRE_ROOT_SECRET_KEY", ROOT_SECRET)
            .args(args)
            .env("COFFRE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", coffre_bin().display()));
        let tls = args.iter().any(|a| *a == "--tls-cert");
        let server = Self {
            child: Some(child),
            s3,
            admin,
            data_dir: data_dir.to_path_buf(),
            ca_cert: None,
            _tmp: None,
            _pki: None,
        };
        let mut server = server;
        server.wait_ready(tls)?;
        Ok(server)
    }

    fn wait_ready(&mut self, tls: bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("coffre exited ({status}) before it was ready; log:\n{}", self.log()));
            }
            // Over TLS the plain-HTTP probe cannot work: the server's own
            // word, logged once both listeners are bound, stands in for it.
            let ready = if tls {
                self.log().contains("coffre is serving")
            } else {
                http_get(self.admin, "/health/ready").is_some_and(|(status, _)| status == 200)
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("coffre did not become ready within 30 s; log:\n{}", self.log()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.s3)
    }

    fn scheme(&self) -> &'static str {
        if self.ca_cert.is_some() { "https" } else { "http" }
    }

    /// An SDK client signed with root's credentials.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_as(ROOT_ACCESS, ROOT_SECRET)
    }

    pub fn client_as(&self, access: &str, secret: &str) -> aws_sdk_s3::Client {
        let http = match &self.ca_cert {
            None => aws_smithy_http_client::Builder::new().build_http(),
            Some(ca) => {
                use aws_smithy_http_client::tls;
                let pem = std::fs::read(ca).expect("test CA");
                let trust = tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(pem);
                let context = tls::TlsContext::builder().with_trust_store(trust).build().expect("TLS context");
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                    .tls_context(context)
                    .build_https()
            }
        };
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .endpoint_url(self.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(access, secret, None, None, "e2e"))
            .force_path_style(true)
            .http_client(http)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Runs `coffre ARGS` against this server's admin API as root.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(coffre_bin());
        cmd.args(args).args(["--endpoint", &format!("{}://{}", self.scheme(), self.admin)]);
        if let Some(ca) = &self.ca_cert {
            cmd.arg("--ca-cert").arg(ca);
        }
        cmd.env("COFFRE_ROOT_ACCESS_KEY", ROOT_ACCESS)
            .env("COFFRE_ROOT_SECRET_KEY", ROOT_SECRET)
            .output()
            .expect("running coffre CLI")
    }

    /// Creates an access key through the CLI; returns (id, secret).
    pub fn create_key(&self, name: &str) -> (String, String) {
        let out = self.cli(&["key", "create", "--name", name, "--json"]);
        assert!(out.status.success(), "key create: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("key JSON");
        let field = |f: &str| v[f].as_str().unwrap_or_else(|| panic!("{f} in {v}")).to_owned();
        (field("access_key_id"), field("secret_access_key"))
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a graceful exit. Returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The config file naming the key custodian the tests run under
/// (`COFFRE_TEST_KMS_CONFIG`, set by scripts/test.sh for its PKCS#11 and KMIP
/// passes); the embedded custodian when unset.
pub fn kms_config() -> Option<PathBuf> {
    std::env::var_os("COFFRE_TEST_KMS_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `embedded`, `pkcs11` or `kmip`: which custodian [`kms_config`] names.
pub fn custody() -> String {
    std::env::var("COFFRE_TEST_KMS_CUSTODY").unwrap_or_else(|_| "embedded".into())
}

/// The S3 error code and HTTP status of an SDK call that must fail.
pub fn error_code<T: std::fmt::Debug, E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (String, u16) {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let status = e.raw_response().map_or(0, |r| r.status().as_u16());
            (e.code().unwrap_or("<none>").to_owned(), status)
        }
    }
}

/// A bare HTTP/1.1 GET; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    raw_request(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Sends raw bytes and reads the whole answer; returns status and body.
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.write_all(request).ok()?;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    let d = md5::Md5::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}
