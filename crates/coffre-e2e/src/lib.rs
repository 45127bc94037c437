//! Test harness: starts a real `coffre serve` on free loopback ports with its
//! own data directory, hands out AWS SDK clients for it, and stops it (or
//! kills it with SIGKILL, for crash tests). `Server::start_tls` runs it with a
//! certificate from a throwaway CA ([`pki`]) that its SDK clients trust.
//!
//! With `COFFRE_TEST_PG` set (scripts/pg-server.sh prints it), every server
//! keeps its metadata in a database of its own on that PostgreSQL cluster; see
//! [`metadata_engine`].

pub mod deployment;
pub mod pki;

use std::collections::BTreeMap;
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
        let config = ServerConfig::for_server(data_dir, extra_env)?;
        let mut cmd = Command::new(coffre_bin());
        cmd.args(["serve", "--data-dir"]).arg(data_dir);
        if let Some(path) = &config.path {
            cmd.arg("--config").arg(path);
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

/// The config file a server starts with, and the temporary file holding it
/// when the harness had to compose one.
struct ServerConfig {
    path: Option<PathBuf>,
    composed: Option<tempfile::NamedTempFile>,
}

impl ServerConfig {
    /// A test's own config file (`COFFRE_CONFIG` among its `extra_env`) wins
    /// over the custodian's ([`kms_config`]), as before PostgreSQL. Under
    /// `COFFRE_TEST_PG` that file, or none, gets a `[metadata]` section naming
    /// the data directory's database, unless it declares one itself (a test
    /// sharing one database among servers, or keeping the embedded engine).
    fn for_server(data_dir: &Path, extra_env: &[(&str, &str)]) -> Result<Self, String> {
        let own = extra_env.iter().find(|(k, _)| *k == "COFFRE_CONFIG").map(|(_, v)| PathBuf::from(v));
        let Some(cluster) = test_pg() else {
            // The server reads the test's own file from the environment.
            return Ok(Self { path: if own.is_some() { None } else { kms_config() }, composed: None });
        };
        // A COFFRE_CONFIG the tests inherit would be read by the server too: compose on it as well.
        let inherited = std::env::var_os("COFFRE_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
        let base = own.or_else(kms_config).or(inherited);
        let text = match &base {
            Some(path) => std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
            None => String::new(),
        };
        if declares_metadata(&text) {
            return Ok(Self { path: base, composed: None });
        }
        let section = metadata_section(&cluster, data_dir)?;
        let mut file = tempfile::Builder::new()
            .prefix("coffre-e2e-")
            .suffix(".toml")
            .tempfile()
            .map_err(|e| format!("creating a config file for {}: {e}", data_dir.display()))?;
        let separator = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
        file.write_all(format!("{text}{separator}{section}").as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| format!("writing {}: {e}", file.path().display()))?;
        Ok(Self { path: Some(file.path().to_owned()), composed: Some(file) })
    }
}

/// The `[metadata]` section naming the database of the server on `data_dir`.
fn metadata_section(cluster: &str, data_dir: &Path) -> Result<String, String> {
    let url = pg_database_for(cluster, data_dir)?;
    Ok(format!("\n[metadata]\nengine = \"postgres\"\nurl = {}\n", toml_string(&url)))
}

/// `config` as the server on `data_dir` read it: under `COFFRE_TEST_PG`, with
/// the `[metadata]` section naming its database, for commands that read a
/// stopped server's config and data directory.
pub fn config_as_served(config: &Path, data_dir: &Path) -> PathBuf {
    let Some(cluster) = test_pg() else { return config.to_owned() };
    let text = std::fs::read_to_string(config).expect("reading the config");
    let section = metadata_section(&cluster, data_dir).unwrap_or_else(|e| panic!("{e}"));
    let served = data_dir.with_extension("served.toml");
    std::fs::write(&served, format!("{text}\n{section}")).expect("writing the served config");
    served
}

/// Where `coffre audit` finds the log of the server on `data_dir`: its own
/// files (`DATA_DIR/audit`), or under `COFFRE_TEST_PG` an export of the log
/// its database holds, made now (the gateways of a database share one log).
pub fn audit_log_dir(data_dir: &Path) -> PathBuf {
    let Some(cluster) = test_pg() else { return data_dir.join("audit") };
    let section = metadata_section(&cluster, data_dir).unwrap_or_else(|e| panic!("{e}"));
    let base = kms_config().map(|p| std::fs::read_to_string(p).expect("kms config")).unwrap_or_default();
    let config = data_dir.with_extension("export.toml");
    std::fs::write(&config, format!("{base}\n{section}")).expect("export config");
    let out = data_dir.with_extension("audit-export");
    let _ = std::fs::remove_dir_all(&out);
    let done = Command::new(coffre_bin())
        .args(["audit", "export", "--config"])
        .arg(&config)
        .arg("--to")
        .arg(&out)
        .output()
        .expect("coffre audit export");
    assert!(done.status.success(), "audit export: {}", String::from_utf8_lossy(&done.stderr));
    out
}

/// Whether a config file has a `[metadata]` table (or a `[metadata.x]` one).
/// Table headers only: a test writes its section that way, and a key named
/// `metadata` inside another table must not count.
fn declares_metadata(toml: &str) -> bool {
    toml.lines().filter_map(|l| l.trim().strip_prefix('[')).filter(|l| !l.starts_with('[')).any(|header| {
        let name = header.split(']').next().unwrap_or_default().trim();
        name == "metadata" || name.starts_with("metadata.")
    })
}

/// A TOML basic string.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The PostgreSQL cluster the tests keep metadata in (`COFFRE_TEST_PG`, a
/// libpq/tokio-postgres connection string without a database name).
fn test_pg() -> Option<String> {
    std::env::var("COFFRE_TEST_PG").ok().filter(|v| !v.trim().is_empty())
}

/// `postgres` when `COFFRE_TEST_PG` is set (every server the harness starts
/// then keeps its metadata there), else `embedded`: tests that read
/// `DATA_DIR/meta.redb` skip that part unless embedded.
pub fn metadata_engine() -> &'static str {
    if test_pg().is_some() { "postgres" } else { "embedded" }
}

/// A new, empty database on the `COFFRE_TEST_PG` cluster, as the full
/// connection string for a `[metadata] url`; `None` without a cluster. For
/// tests that point several servers at one database: their own config file
/// then has a `[metadata]` section and the harness adds none.
pub fn fresh_pg_database() -> Option<String> {
    let cluster = test_pg()?;
    let db = create_pg_database(&cluster).unwrap_or_else(|e| panic!("{e}"));
    Some(with_dbname(&cluster, &db))
}

/// A fresh database of the test cluster reached over TCP, where it takes TLS
/// only: its connection string, the CA its certificate chains to, and an
/// unrelated CA (scripts/pg-server.sh). `None` without such a cluster.
pub struct PgOverTls {
    pub url: String,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
}

pub fn fresh_pg_database_over_tls() -> Option<PgOverTls> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (tcp, ca, other_ca) = (var("COFFRE_TEST_PG_TCP")?, var("COFFRE_TEST_PG_CA")?, var("COFFRE_TEST_PG_OTHER_CA")?);
    let cluster = test_pg()?;
    let db = create_pg_database(&cluster).unwrap_or_else(|e| panic!("{e}"));
    Some(PgOverTls { url: with_dbname(&tcp, &db), ca: ca.into(), other_ca: other_ca.into() })
}

/// Where the harness remembers a data directory's database: a server
/// restarted on the same directory must find its metadata again.
pub const PG_DB_FILE: &str = ".test-pg-db";

/// The connection string of the database of the server on `data_dir`, made
/// on its first start.
fn pg_database_for(cluster: &str, data_dir: &Path) -> Result<String, String> {
    let marker = data_dir.join(PG_DB_FILE);
    match std::fs::read_to_string(&marker) {
        Ok(name) => {
            let name = name.trim();
            if !valid_db_name(name) {
                return Err(format!("{}: {name:?} is not a database name the harness made", marker.display()));
            }
            return Ok(with_dbname(cluster, name));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", marker.display())),
    }
    let name = create_pg_database(cluster)?;
    std::fs::write(&marker, &name).map_err(|e| format!("writing {}: {e}", marker.display()))?;
    Ok(with_dbname(cluster, &name))
}

fn valid_db_name(name: &str) -> bool {
    name.strip_prefix("c_").is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Runs `CREATE DATABASE` with `psql` rather than tokio-postgres: the harness
/// is synchronous and is called from inside the tests' tokio runtimes, where
/// blocking on another runtime panics (it would take a thread and a runtime
/// per server); psql is on every machine that has the cluster, and a process
/// start costs little next to the server's. The copy of `coffre_template`
/// (scripts/pg-server.sh) brings its ICU collation along.
fn create_pg_database(cluster: &str) -> Result<String, String> {
    let name = format!("c_{}", random_hex());
    let sql = format!("CREATE DATABASE {name} TEMPLATE coffre_template");
    let out = Command::new(pg_tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &with_dbname(cluster, "postgres"), "-c", &sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {} (set COFFRE_TEST_PG_BIN): {e}", pg_tool("psql").display()))?;
    if !out.status.success() {
        return Err(format!(
            "creating database {name} on COFFRE_TEST_PG ({cluster}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(name)
}

/// `cluster` with its database set to `db`: appended to a key-value string
/// (the last `dbname` wins, for libpq as for tokio-postgres), or put in the
/// path of a `postgres://` URL.
fn with_dbname(cluster: &str, db: &str) -> String {
    let cluster = cluster.trim();
    let Some((scheme, rest)) = cluster.split_once("://") else {
        return format!("{cluster} dbname={db}");
    };
    let (head, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    let authority = head.split('/').next().unwrap_or_default();
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

/// A PostgreSQL client or server program: from `COFFRE_TEST_PG_BIN`
/// (Debian keeps the server's out of `PATH`), else from `PATH`.
fn pg_tool(name: &str) -> PathBuf {
    std::env::var_os("COFFRE_TEST_PG_BIN")
        .filter(|v| !v.is_empty())
        .map(|bin| PathBuf::from(bin).join(name))
        .filter(|p| p.exists())
        .unwrap_or_else(|| name.into())
}

/// 64 random bits: `RandomState` is seeded from the OS per process, so two
/// test processes on one cluster do not pick the same names.
fn random_hex() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{:016x}", h.finish())
}

/// Stops the test cluster (`COFFRE_TEST_PG_DATA`) the way `mode` says, as
/// pg_ctl's `-m`: `fast`, `immediate` (a crash: no checkpoint) or `smart`.
pub fn pg_stop(mode: &str) {
    pg_ctl(&["-m", mode, "-w", "-t", "60", "stop"]);
}

/// Starts the test cluster again, with the settings scripts/pg-server.sh
/// wrote into its data directory, logging where that script does.
pub fn pg_start() {
    let log = pg_data().parent().map(|dir| dir.join("server.log")).unwrap_or_else(|| "server.log".into());
    pg_ctl(&["-l".as_ref(), log.as_os_str(), "-w".as_ref(), "-t".as_ref(), "60".as_ref(), "start".as_ref()]);
}

fn pg_data() -> PathBuf {
    std::env::var_os("COFFRE_TEST_PG_DATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("COFFRE_TEST_PG_DATA is unset (scripts/pg-server.sh prints it)"))
}

/// pg_ctl refuses root: as root, it runs as `postgres`, who owns the cluster
/// scripts/pg-server.sh made.
fn pg_ctl<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    use std::os::unix::fs::MetadataExt as _;
    let data = pg_data();
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_tool("pg_ctl"));
        c
    } else {
        Command::new(pg_tool("pg_ctl"))
    };
    // The cluster's owner may not be allowed into the tests' working directory.
    let cwd = data.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    cmd.arg("-D").arg(&data).args(args).current_dir(cwd).stdin(Stdio::null());
    let out = cmd.output().unwrap_or_else(|e| panic!("running pg_ctl on {}: {e}", data.display()));
    assert!(
        out.status.success(),
        "pg_ctl {:?} on {}: {}{}",
        args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>(),
        data.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A free port on 127.0.0.1 (free when asked: see [`Server`] on races).
pub fn free_addr() -> SocketAddr {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A storage node (`coffre serve --role storage`) on its own data directory.
pub struct Node {
    pub id: &'static str,
    pub addr: SocketAddr,
    child: Option<Child>,
    pub data_dir: PathBuf,
}

impl Node {
    pub fn start(id: &'static str, config: &Path, data_dir: PathBuf, addr: SocketAddr) -> Self {
        std::fs::create_dir_all(&data_dir).expect("node dir");
        let log = std::fs::File::create(data_dir.join("node.log")).expect("log");
        let child = Command::new(coffre_bin())
            .args(["serve", "--role", "storage", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--node-listen", &addr.to_string(), "--node-id", id])
            .env("COFFRE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting a storage node");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "node {id} did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { id, addr, child: Some(child), data_dir }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the node printed (its log file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default()
    }

    /// Blob file name → contents, read straight from the node's disk.
    pub fn blobs(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let root = self.data_dir.join("blobs");
        for shard in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && file.path().is_file() {
                    out.insert(name, std::fs::read(file.path()).expect("blob"));
                }
            }
        }
        out
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_goes_where_each_connection_string_form_keeps_it() {
        assert_eq!(
            with_dbname("host=/tmp/pg port=5432 user=postgres", "c_1"),
            "host=/tmp/pg port=5432 user=postgres dbname=c_1"
        );
        assert_eq!(
            with_dbname("postgresql://postgres@%2Ftmp%2Fpg:5432", "c_1"),
            "postgresql://postgres@%2Ftmp%2Fpg:5432/c_1"
        );
        assert_eq!(with_dbname("postgres://u@h/old?sslmode=disable", "c_1"), "postgres://u@h/c_1?sslmode=disable");
    }

    #[test]
    fn a_metadata_section_is_recognised_by_its_header_only() {
        assert!(declares_metadata("a = 1\n[metadata]\nengine = \"embedded\"\n"));
        assert!(declares_metadata("  [ metadata ]  # ours\n"));
        assert!(declares_metadata("[metadata.pool]\nsize = 4\n"));
        assert!(!declares_metadata("[label]\nmetadata = \"x\"\n[[metadata_targets]]\n"));
        assert!(!declares_metadata("[[targets]]\nname = \"metadata\"\n"));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"host=/a b="c\d""#), r#""host=/a b=\"c\\d\"""#);
        assert_eq!(toml_string("a\tb"), r#""a\u0009b""#);
    }

    /// Against the cluster of scripts/pg-server.sh only (scripts/test.sh runs
    /// it in its PostgreSQL step): stops and starts that cluster.
    #[test]
    fn servers_get_a_database_of_their_own_that_survives_restarts() {
        let Some(cluster) = test_pg() else {
            eprintln!("skipped: COFFRE_TEST_PG unset (scripts/pg-server.sh starts a cluster and prints it)");
            return;
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let own = tmp.path().join("own.toml");
        std::fs::write(&own, "body_idle_timeout_secs = 1").expect("config");
        let env = [("COFFRE_CONFIG", own.to_str().expect("utf-8"))];

        let first = ServerConfig::for_server(&data, &env).expect("config");
        let text = std::fs::read_to_string(first.path.as_ref().expect("composed")).expect("read");
        let name = std::fs::read_to_string(data.join(PG_DB_FILE)).expect("marker");
        assert!(text.starts_with("body_idle_timeout_secs = 1\n"), "{text}");
        assert!(
            text.contains(&format!("[metadata]\nengine = \"postgres\"\nurl = \"{cluster} dbname={name}\"\n")),
            "{text}"
        );
        let again = ServerConfig::for_server(&data, &env).expect("config");
        let text_again = std::fs::read_to_string(again.path.as_ref().expect("composed")).expect("read");
        assert_eq!(text, text_again, "a restart on the same data directory finds the same database");

        let query = |sql: &str| {
            let out = Command::new(pg_tool("psql"))
                .args(["-X", "-A", "-t", "-d", &with_dbname(&cluster, "postgres"), "-c", sql])
                .output()
                .expect("psql");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let collation =
            format!("SELECT datlocprovider::text || ' ' || daticulocale FROM pg_database WHERE datname = '{name}'");
        assert_eq!(query(&collation), "i en-US", "copied from coffre_template");

        let url = fresh_pg_database().expect("a cluster");
        std::fs::write(&own, format!("[metadata]\nengine = \"postgres\"\nurl = {}\n", toml_string(&url)))
            .expect("config");
        let chosen = ServerConfig::for_server(&data, &env).expect("config");
        assert_eq!(chosen.path.as_deref(), Some(own.as_path()), "a test's own [metadata] is left alone");
        assert!(chosen.composed.is_none());

        if std::env::var_os("COFFRE_TEST_PG_DATA").is_some() {
            pg_stop("immediate");
            pg_start();
            assert_eq!(query(&format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'")), "1");
        }
    }
}
