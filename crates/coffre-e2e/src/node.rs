//! A storage node (`coffre serve --role storage`) as a process of its own,
//! with its blob files read straight from its disk, and the cluster CA that
//! issues the identities nodes and gateways prove to each other.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::files::blob_files;
use crate::server::coffre_bin;

/// A free port on 127.0.0.1 (free when asked: see [`crate::Server`] on races).
pub fn free_addr() -> SocketAddr {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A test cluster's CA, made and used through the CLI an operator runs
/// (`coffre cluster ca`, `coffre cluster issue`).
pub struct ClusterCa {
    /// The CA's directory (`ca.pem`, `ca.key`).
    pub dir: PathBuf,
    ids: PathBuf,
}

fn coffre_ok(args: &[&str]) {
    let out = Command::new(coffre_bin()).args(args).output().expect("running coffre");
    assert!(out.status.success(), "coffre {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl ClusterCa {
    /// A new CA under `dir` (its identities go beside it).
    pub fn new(dir: &Path) -> Self {
        let (ca, ids) = (dir.join("cluster-ca"), dir.join("cluster-ids"));
        let name: String = dir.to_string_lossy().chars().filter(char::is_ascii_alphanumeric).collect();
        coffre_ok(&["cluster", "ca", "--dir", &ca.to_string_lossy(), "--name", &format!("e2e-{name}")]);
        Self { dir: ca, ids }
    }

    fn issue(&self, flag: &str, name: &str) -> PathBuf {
        let out = self.ids.join(format!("{}-{name}", &flag[2..]));
        if !out.join("cert.pem").exists() {
            let (ca, o) = (self.dir.to_string_lossy(), out.to_string_lossy());
            coffre_ok(&["cluster", "issue", "--ca", &ca, flag, name, "--out", &o]);
        }
        out
    }

    /// The identity directory of the node serving target `id`.
    pub fn node(&self, id: &str) -> PathBuf {
        self.issue("--node", id)
    }

    /// The identity directory of gateway `name`.
    pub fn gateway(&self, name: &str) -> PathBuf {
        self.issue("--gateway", name)
    }

    /// The `[cluster]` section of a config every process reads: gateway
    /// `gw`'s identity (nodes, and other gateways, name theirs on the command line).
    pub fn config_section(&self) -> String {
        format!("[cluster]\nidentity = {:?}\n", self.gateway("gw").to_string_lossy())
    }
}

/// A storage node (`coffre serve --role storage`) on its own data directory.
pub struct Node {
    pub id: &'static str,
    pub addr: SocketAddr,
    child: Option<Child>,
    pub data_dir: PathBuf,
}

impl Node {
    /// Node `id` with its identity from `ca`.
    pub fn start(id: &'static str, ca: &ClusterCa, config: &Path, data_dir: PathBuf, addr: SocketAddr) -> Self {
        Self::start_as(id, &ca.node(id), config, data_dir, addr)
    }

    /// Node `id` with the identity in `identity` (whatever it names).
    pub fn start_as(id: &'static str, identity: &Path, config: &Path, data_dir: PathBuf, addr: SocketAddr) -> Self {
        std::fs::create_dir_all(&data_dir).expect("node dir");
        let log = std::fs::File::create(data_dir.join("node.log")).expect("log");
        let child = Command::new(coffre_bin())
            .args(["serve", "--role", "storage", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--node-listen", &addr.to_string(), "--node-id", id])
            .arg("--cluster-identity")
            .arg(identity)
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

    /// Blob file name → contents, read straight from the node's disk. A
    /// file gone between listing and reading was being collected: it is not
    /// counted (tests poll this while collection runs).
    pub fn blobs(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for path in blob_files(&self.data_dir) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => {
                    out.insert(name, bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("blob {}: {e}", path.display()),
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
