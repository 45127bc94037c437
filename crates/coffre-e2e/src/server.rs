//! A `coffre serve` process for one test: started on free loopback ports with
//! its own data directory, driven through its admin CLI, stopped or killed.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::ServerConfig;
use crate::http::{http_get, raw_request};
use crate::pki;

pub const ROOT_ACCESS: &str = "e2eroot";
pub const ROOT_SECRET: &str = "e2e-root-secret-key-0123456789abcdef";
/// The admin API's bearer token every harness server is given (and its CLI uses).
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdefghijklmn";

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
    /// The config file the harness composed (see [`ServerConfig`]).
    _config: Option<tempfile::NamedTempFile>,
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

    /// Starts a server on `data_dir` reading the config file `config`, with
    /// `args` after the harness's own (a gateway's `--role`, its `--node-id`).
    pub fn start_with_config(data_dir: &Path, config: &Path, args: &[&str]) -> Self {
        let config = config.to_str().expect("utf-8 config path");
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        Self::start_with_args(data_dir, &args, &[("COFFRE_CONFIG", config)])
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

    fn start_with_args(data_dir: &Path, args: &[&std::ffi::OsStr], extra_env: &[(&str, &str)]) -> Self {
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
        let config = ServerConfig::for_server(data_dir, extra_env)?;
        let mut cmd = Command::new(coffre_bin());
        cmd.args(["serve", "--data-dir"]).arg(data_dir);
        if let Some(path) = &config.path {
            cmd.arg("--config").arg(path);
        }
        cmd.args(["--s3-listen", &s3.to_string(), "--admin-listen", &admin.to_string()])
            .env("COFFRE_ROOT_ACCESS_KEY", ROOT_ACCESS)
            .env("COFFRE_ROOT_SECRET_KEY", ROOT_SECRET)
            .env("COFFRE_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(args)
            .env("COFFRE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in extra_env {
            // A composed file already holds the test's own: one config, not two.
            if !(*k == "COFFRE_CONFIG" && config.composed.is_some()) {
                cmd.env(k, v);
            }
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
            _config: config.composed,
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

    /// Runs `coffre ARGS` against this server's admin API with the admin token.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(coffre_bin());
        cmd.args(args).args(["--endpoint", &format!("{}://{}", self.scheme(), self.admin)]);
        if let Some(ca) = &self.ca_cert {
            cmd.arg("--ca-cert").arg(ca);
        }
        cmd.env("COFFRE_ADMIN_TOKEN", ADMIN_TOKEN).output().expect("running coffre CLI")
    }

    /// [`Server::cli`] that must succeed; its output.
    pub fn cli_ok(&self, args: &[&str]) -> std::process::Output {
        let out = self.cli(args);
        assert!(out.status.success(), "coffre {args:?} on {}: {}", self.admin, String::from_utf8_lossy(&out.stderr));
        out
    }

    /// [`Server::cli_ok`] of a command that answers JSON (the caller passes
    /// `--json` where the command needs it): the answer.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli_ok(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("coffre {args:?}: not JSON ({e})"))
    }

    /// Creates an access key through the CLI; returns (id, secret).
    pub fn create_key(&self, name: &str) -> (String, String) {
        let v = self.cli_json(&["key", "create", "--name", name, "--json"]);
        let field = |f: &str| v[f].as_str().unwrap_or_else(|| panic!("{f} in {v}")).to_owned();
        (field("access_key_id"), field("secret_access_key"))
    }

    /// A GET of `path` on the admin listener with the admin token; status and body.
    pub fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        self.admin_request("GET", path, "")
    }

    /// `method path` on the admin listener with the admin token and a JSON
    /// `body` (none if empty); status and body.
    pub fn admin_request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let content = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len())
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n{content}\
             Connection: close\r\n\r\n{body}",
            self.admin
        );
        raw_request(self.admin, request.as_bytes())
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
