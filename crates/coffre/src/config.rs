//! Configuration: defaults, then an optional TOML file, then `COFFRE_*`
//! environment variables, then command-line flags, each overriding the last.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::tls::TlsPaths;

/// The file format: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub s3_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub region: Option<String>,
    /// Domains for virtual-host-style addressing (`bucket.DOMAIN`).
    pub domains: Option<Vec<String>>,
    /// Objects up to this many bytes live in the metadata record.
    pub inline_threshold: Option<usize>,
    /// Seconds a replaced blob stays readable before it is deleted.
    pub gc_grace_secs: Option<u64>,
    /// Rows one listing request may read before its page ends truncated.
    pub list_max_rows: Option<usize>,
    /// Whether new buckets start with all four Block Public Access settings on.
    pub block_public_access_by_default: Option<bool>,
    pub header_read_timeout_secs: Option<u64>,
    pub body_idle_timeout_secs: Option<u64>,
    /// Connections each listener serves at once; more wait in the backlog.
    pub max_connections: Option<usize>,
    /// Seconds a write to a client may stay blocked before the connection is closed.
    pub write_timeout_secs: Option<u64>,
    pub max_header_bytes: Option<usize>,
    pub max_chunk_bytes: Option<u64>,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds between two lifecycle passes.
    pub lifecycle_interval_secs: Option<u64>,
    /// PEM certificate chain (server first) and private key: TLS on both listeners.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Accept SSE-C keys on a plain-HTTP listener (behind a TLS-terminating
    /// proxy, or for tests); refused by default, as S3 does.
    pub sse_c_over_http: Option<bool>,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` policies believe; none by default.
    pub trusted_proxies: Option<Vec<String>>,
    /// How long a gateway reuses an access key's unwrapped secret and status:
    /// the bound on how long a key disabled, expired early or deleted through
    /// another gateway still signs here (default 60; 0 reads every request).
    pub access_key_cache_secs: Option<u64>,
    /// The key custodian (`[kms]`); embedded when absent.
    pub kms: Option<crate::kms::KmsConfig>,
    /// This server's name in audit events (default: the host name).
    pub node_id: Option<String>,
    /// `false` skips every fsync: acknowledged writes are lost on a power
    /// cut. Exists for benchmarks and the power-cut tests' negative control.
    pub fsync: Option<bool>,
    /// The audit log (`[audit]`); on, with the defaults below, when absent.
    pub audit: Option<AuditFile>,
    /// `[cluster]`: what the nodes of one deployment share.
    pub cluster: Option<ClusterFile>,
    /// `[metadata]`: where buckets, objects and keys are recorded.
    pub metadata: Option<MetadataFile>,
    /// `[[operators]]`: who runs the storage targets.
    #[serde(default)]
    pub operators: Vec<coffre_topology::RawOperator>,
    /// `[[targets]]`: storage nodes and remote S3 buckets holding data. None:
    /// the data stays on this server's disk.
    #[serde(default)]
    pub targets: Vec<coffre_topology::RawTarget>,
    /// `[jurisdictions]`: named sets of countries, besides `EU` and `EEA`.
    #[serde(default)]
    pub jurisdictions: std::collections::BTreeMap<String, Vec<String>>,
    /// `[residency]`: the policy of buckets that set none.
    pub residency: Option<coffre_topology::ResidencyPolicy>,
    /// `[[entities]]`: legal entities and their shareholders, for the trust label.
    #[serde(default)]
    pub entities: Vec<coffre_label::RawEntity>,
    /// `[[third_parties]]`: who else touches the service, for the trust label.
    #[serde(default)]
    pub third_parties: Vec<coffre_label::RawThirdParty>,
    /// `[label]`: the other declared facts of the trust label.
    pub label: Option<coffre_label::RawLabel>,
    /// Seconds between two evaluations of every trust profile (default 300).
    pub label_interval_secs: Option<u64>,
    /// Trust profiles of one's own (TOML files in the built-in profiles' format),
    /// evaluated with the built-in ones.
    #[serde(default)]
    pub label_profiles: Vec<PathBuf>,
}

/// `[cluster]`: how gateways and storage nodes reach and trust each other.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// This process's identity directory (`ca.pem`, `cert.pem`, `key.pem`,
    /// as `coffre cluster issue --out` writes it). `--cluster-identity` or
    /// `COFFRE_CLUSTER_IDENTITY` wins: each process has its own.
    pub identity: Option<PathBuf>,
    /// Seconds to open a connection to a target (default 2).
    pub connect_timeout_secs: Option<u64>,
    /// Seconds for a target's answer to begin once a request is sent (for a
    /// put, once its body is) (default 30).
    pub response_timeout_secs: Option<u64>,
    /// Seconds a target may pause inside a body, sending or reading (default 30).
    pub body_idle_timeout_secs: Option<u64>,
    /// Seconds between the starts of two scrub passes (default 86400; 0: no
    /// periodic pass, `coffre target scrub --start` still runs one).
    pub scrub_interval_secs: Option<u64>,
    /// Bytes per second a gateway's scrub reads at most (default 50 MiB/s;
    /// 0: unbounded).
    pub scrub_bytes_per_sec: Option<u64>,
    /// Gone: node links are mutual TLS. Kept only to say so at start.
    pub secret: Option<String>,
}

/// What `[cluster]` settles, checked.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Required when nodes talk to each other.
    pub identity: Option<PathBuf>,
    pub limits: coffre_node::LinkLimits,
    /// `None`: no periodic scrub pass.
    pub scrub_interval: Option<Duration>,
    pub scrub_bytes_per_sec: Option<u64>,
}

impl ClusterSettings {
    fn from_file(file: ClusterFile, flag: Option<PathBuf>) -> anyhow::Result<Self> {
        if file.secret.is_some() || std::env::var_os("COFFRE_CLUSTER_SECRET").is_some() {
            bail!(
                "cluster.secret (or COFFRE_CLUSTER_SECRET) is no longer used: node links are mutual TLS, with one \
                 certificate per node and per gateway. Make the cluster's CA once with `coffre cluster ca --dir DIR`, \
                 issue each node's identity with `coffre cluster issue --ca DIR --node TARGET_ID --out NODE_DIR` and \
                 each gateway's with `--gateway NAME`, point each process at its own with [cluster] identity (or \
                 --cluster-identity), give nodes https:// endpoints, and remove the secret"
            );
        }
        let secs = |field: &str, v: Option<u64>, default: u64| -> anyhow::Result<Duration> {
            match v.unwrap_or(default) {
                0 => bail!("cluster.{field}: must be at least 1"),
                n => Ok(Duration::from_secs(n)),
            }
        };
        let limits = coffre_node::LinkLimits {
            connect: secs("connect_timeout_secs", file.connect_timeout_secs, 2)?,
            response: secs("response_timeout_secs", file.response_timeout_secs, 30)?,
            body_idle: secs("body_idle_timeout_secs", file.body_idle_timeout_secs, 30)?,
        };
        let scrub_interval = match file.scrub_interval_secs.unwrap_or(86_400) {
            0 => None,
            n => Some(Duration::from_secs(n)),
        };
        let scrub_bytes_per_sec = match file.scrub_bytes_per_sec.unwrap_or(50 << 20) {
            0 => None,
            n => Some(n),
        };
        Ok(Self { identity: flag.or(file.identity), limits, scrub_interval, scrub_bytes_per_sec })
    }
}

/// `[metadata]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataFile {
    /// `embedded` (the default: one redb file in the data dir) or `postgres`.
    pub engine: Option<String>,
    /// The PostgreSQL connection string (`postgresql://USER@HOST:PORT/DB` or
    /// `host=... user=... dbname=...`). `COFFRE_METADATA_URL` wins: a URL
    /// with a password belongs in the environment, not in a config file.
    pub url: Option<String>,
    /// Database connections this gateway keeps at most (default 16).
    pub pool_size: Option<usize>,
    /// The CA (PEM) the database's certificate must chain to: TLS becomes
    /// required and verified (host name included). Without it,
    /// `sslmode=require` in the URL verifies against the system's roots.
    pub ca_cert: Option<PathBuf>,
}

/// The metadata engine a server runs on.
#[derive(Debug, Clone)]
pub enum Metadata {
    /// `DATA_DIR/meta.redb`: one server.
    Embedded,
    /// A PostgreSQL database that every gateway of the deployment shares.
    Postgres { url: Secret, pool_size: usize, ca_cert: Option<PathBuf> },
}

impl Metadata {
    fn from_file(file: Option<MetadataFile>) -> anyhow::Result<Self> {
        let file = file.unwrap_or_default();
        let url = std::env::var("COFFRE_METADATA_URL").ok().filter(|u| !u.is_empty()).or(file.url);
        match file.engine.as_deref() {
            None | Some("embedded") => Ok(Self::Embedded),
            Some("postgres") => Ok(Self::Postgres {
                url: Secret(url.context("metadata.url: required with engine = \"postgres\"")?),
                pool_size: file.pool_size.unwrap_or(16),
                ca_cert: file.ca_cert,
            }),
            Some(other) => bail!("metadata.engine: {other:?} is not an engine (expected \"embedded\" or \"postgres\")"),
        }
    }
}

/// A secret from the config, which `Debug` never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What a `coffre serve` process is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// S3 front and data in one process (data on the declared targets, if any).
    #[default]
    All,
    /// A storage node: holds sealed blobs for gateways, on `--node-listen`.
    Storage,
    /// The S3 front only: data on the declared targets, none on this disk.
    Gateway,
}

/// `[audit]`: where the log lives and how it is kept.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// Off only for measuring what the audit log costs: nothing is recorded.
    pub enabled: Option<bool>,
    /// Default `DATA_DIR/audit`.
    pub dir: Option<PathBuf>,
    /// Default `DATA_DIR/keys/audit-ed25519.pk8`.
    pub signing_key: Option<PathBuf>,
    /// `"batched"` (default) or `"sync"`: when events of reads reach the disk.
    pub reads: Option<String>,
    /// Bound on a batched event's time in memory, in milliseconds (default 1000).
    pub batch_window_ms: Option<u64>,
    /// Seconds between signed tree heads (default 60).
    pub head_interval_secs: Option<u64>,
    /// Days a segment keeps its events before only their hashes stay (default 365).
    pub retention_days: Option<u64>,
    /// Size at which a segment is closed (default 64 MiB).
    pub segment_bytes: Option<u64>,
    /// Seconds over which refused unauthenticated requests are counted into
    /// tallies before the tallies are written (default 60).
    pub refusal_window_secs: Option<u64>,
}

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// Directory holding data, metadata and credentials.
    #[arg(long, env = "COFFRE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the S3 API.
    #[arg(long, env = "COFFRE_S3_LISTEN")]
    pub s3_listen: Option<SocketAddr>,
    /// Address of the admin API (health, metrics, keys).
    #[arg(long, env = "COFFRE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// TOML configuration file; every field is optional.
    #[arg(long, env = "COFFRE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Region clients must sign for.
    #[arg(long, env = "COFFRE_REGION")]
    pub region: Option<String>,
    /// Inline threshold in bytes.
    #[arg(long, env = "COFFRE_INLINE_THRESHOLD")]
    pub inline_threshold: Option<usize>,
    /// PEM certificate chain, server certificate first (TLS on both listeners; needs --tls-key).
    #[arg(long, env = "COFFRE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "COFFRE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// What this process serves.
    #[arg(long, value_enum, env = "COFFRE_ROLE")]
    pub role: Option<Role>,
    /// Address of the node API (`--role storage`).
    #[arg(long, env = "COFFRE_NODE_LISTEN")]
    pub node_listen: Option<SocketAddr>,
    /// This node's id: a target id of the topology for a storage node.
    #[arg(long, env = "COFFRE_NODE_ID")]
    pub node_id: Option<String>,
    /// This process's cluster identity directory (`coffre cluster issue --out`):
    /// a storage node's, or a gateway's for its links to the nodes.
    #[arg(long, env = "COFFRE_CLUSTER_IDENTITY")]
    pub cluster_identity: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub s3_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub region: String,
    pub domains: Vec<String>,
    pub inline_threshold: usize,
    pub gc_grace: Duration,
    pub list_max_rows: usize,
    pub block_public_access_by_default: bool,
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_connections: usize,
    pub write_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_chunk_bytes: u64,
    pub shutdown_grace: Duration,
    pub lifecycle_interval: Duration,
    /// None: plain HTTP.
    pub tls: Option<TlsPaths>,
    pub sse_c_over_http: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub access_key_cache: Duration,
    pub kms: crate::kms::KmsConfig,
    pub node_id: String,
    /// False: no fsync anywhere (see `FileConfig::fsync`).
    pub fsync: bool,
    /// None: the audit log is switched off.
    pub audit: Option<AuditSettings>,
    pub role: Role,
    /// Empty: the data stays on this server's disk.
    pub topology: std::sync::Arc<coffre_topology::Topology>,
    pub default_residency: coffre_topology::ResidencyPolicy,
    /// `[cluster]`: identities, link limits, scrub.
    pub cluster: ClusterSettings,
    pub node_listen: Option<SocketAddr>,
    /// The trust label's declared facts, validated against the topology.
    pub declared: std::sync::Arc<coffre_label::DeclaredFacts>,
    pub label_interval: Duration,
    /// The built-in profiles, then those of `label_profiles`.
    pub profiles: Vec<coffre_label::Profile>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub log: coffre_audit::AuditConfig,
    pub reads: coffre_audit::Durability,
    /// How long refused unauthenticated requests are tallied before written.
    pub refusal_window: Duration,
}

pub const DEFAULT_DATA_DIR: &str = "./coffre-data";

impl Config {
    /// The guards of every listener's connections (S3, admin, node API).
    pub fn conn_limits(&self) -> coffre_s3::conn::ConnLimits {
        coffre_s3::conn::ConnLimits {
            header_read_timeout: self.header_read_timeout,
            max_header_bytes: self.max_header_bytes,
            max_connections: self.max_connections,
            write_timeout: self.write_timeout,
        }
    }

    pub fn load(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let secs = |v: Option<u64>, default: u64| Duration::from_secs(v.unwrap_or(default));
        let topology = coffre_topology::Topology::from_raw(file.operators, file.targets, file.jurisdictions)
            .context("in the topology ([[operators]], [[targets]], [jurisdictions])")?;
        let declared = coffre_label::DeclaredFacts::from_raw(
            coffre_label::RawDeclared {
                entities: file.entities,
                third_parties: file.third_parties,
                label: file.label.unwrap_or_default(),
            },
            &topology,
        )
        .context("in the trust label's declared facts ([[entities]], [[third_parties]], [label])")?;
        let config = Self {
            data_dir: args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            s3_listen: args.s3_listen.or(file.s3_listen).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9000))),
            admin_listen: args.admin_listen.or(file.admin_listen).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9001))),
            region: args.region.clone().or(file.region).unwrap_or_else(|| "us-east-1".into()),
            domains: file.domains.unwrap_or_else(|| vec!["localhost".into()]),
            inline_threshold: args.inline_threshold.or(file.inline_threshold).unwrap_or(4096),
            gc_grace: secs(file.gc_grace_secs, 60),
            list_max_rows: file.list_max_rows.unwrap_or(coffre_core::list::DEFAULT_MAX_SCAN).max(1),
            block_public_access_by_default: file.block_public_access_by_default.unwrap_or(true),
            header_read_timeout: secs(file.header_read_timeout_secs, 30),
            body_idle_timeout: secs(file.body_idle_timeout_secs, 60),
            max_connections: file.max_connections.unwrap_or(1024).max(1),
            write_timeout: secs(file.write_timeout_secs, 60).max(Duration::from_secs(1)),
            max_header_bytes: file.max_header_bytes.unwrap_or(64 * 1024),
            max_chunk_bytes: file.max_chunk_bytes.unwrap_or(16 * 1024 * 1024),
            shutdown_grace: secs(file.shutdown_grace_secs, 30),
            lifecycle_interval: secs(file.lifecycle_interval_secs, 3600),
            tls: TlsPaths::from_pair(args.tls_cert.clone().or(file.tls_cert), args.tls_key.clone().or(file.tls_key))?,
            sse_c_over_http: env_flag("COFFRE_SSE_C_OVER_HTTP")?.or(file.sse_c_over_http).unwrap_or(false),
            trusted_proxies: networks(file.trusted_proxies.unwrap_or_default())?,
            access_key_cache: file
                .access_key_cache_secs
                .map_or(coffre_core::access::DEFAULT_CACHE_TTL, Duration::from_secs),
            kms: file.kms.unwrap_or_default(),
            node_id: args.node_id.clone().or(file.node_id.clone()).unwrap_or_else(host_name),
            fsync: env_flag("COFFRE_FSYNC")?.or(file.fsync).unwrap_or(true),
            audit: None,
            role: args.role.unwrap_or_default(),
            topology: std::sync::Arc::new(topology),
            declared: std::sync::Arc::new(declared),
            label_interval: secs(file.label_interval_secs, 300),
            profiles: load_profiles(&file.label_profiles)?,
            default_residency: file.residency.unwrap_or_else(coffre_topology::ResidencyPolicy::single),
            cluster: ClusterSettings::from_file(file.cluster.unwrap_or_default(), args.cluster_identity.clone())?,
            node_listen: args.node_listen,
            metadata: Metadata::from_file(file.metadata)?,
        };
        let data_dir = config.data_dir.clone();
        let mut audit = audit_settings(file.audit.unwrap_or_default(), &data_dir)?;
        if let Some(audit) = &mut audit {
            audit.log.fsync = config.fsync;
        }
        let config = Self { audit, ..config };
        config.validate()?;
        Ok(config)
    }

    /// [`Self::load`], then what serving in its role needs besides (a
    /// cluster identity, listeners): tools that only read the data directory
    /// or the database (`audit export`, `inspect`, `label`) do not need them.
    pub fn load_to_serve(args: &ServeArgs) -> anyhow::Result<Self> {
        let config = Self::load(args)?;
        config.validate_cluster()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.region.is_empty() || !self.region.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
            bail!("region: {:?} is not a valid region name", self.region);
        }
        if self.inline_threshold > 1024 * 1024 {
            bail!("inline_threshold: {} bytes is over the 1 MiB ceiling", self.inline_threshold);
        }
        if self.lifecycle_interval.is_zero() {
            bail!("lifecycle_interval_secs: must be at least 1");
        }
        if self.max_header_bytes < 8192 {
            bail!("max_header_bytes: must be at least 8192");
        }
        Ok(())
    }

    /// What each role needs of the topology, the identity and the listeners.
    fn validate_cluster(&self) -> anyhow::Result<()> {
        let has_nodes = self.topology.targets().iter().any(|t| matches!(t.kind, coffre_topology::TargetKind::Node));
        if self.cluster.identity.is_none() && (self.role == Role::Storage || has_nodes) {
            bail!(
                "cluster.identity: storage nodes and the gateways that use them each need a cluster identity \
                 (make the CA with `coffre cluster ca --dir DIR`, then `coffre cluster issue --ca DIR --node ID` or \
                 `--gateway NAME --out OUT`, and set [cluster] identity = OUT or --cluster-identity OUT)"
            );
        }
        match self.role {
            Role::Storage if self.node_listen.is_none() => bail!("--node-listen: required with --role storage"),
            Role::Gateway if self.topology.is_empty() => {
                bail!("targets: a gateway stores data on the declared [[targets]], and none is declared")
            }
            _ => {}
        }
        if !self.topology.is_empty() {
            self.topology.check_policy(&self.default_residency).context("residency")?;
        }
        Ok(())
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "coffre".into())
}

/// The default paths of the audit log and its signing key under a data dir.
pub fn audit_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("audit"), data_dir.join("keys").join("audit-ed25519.pk8"))
}

fn audit_settings(file: AuditFile, data_dir: &Path) -> anyhow::Result<Option<AuditSettings>> {
    if !env_flag("COFFRE_AUDIT")?.or(file.enabled).unwrap_or(true) {
        return Ok(None);
    }
    let (dir, key) = audit_paths(data_dir);
    let mut log = coffre_audit::AuditConfig::new(file.dir.unwrap_or(dir), file.signing_key.unwrap_or(key));
    let reads = match file.reads.as_deref() {
        None | Some("batched") => coffre_audit::Durability::Batched,
        Some("sync") => coffre_audit::Durability::Sync,
        Some(other) => bail!("audit.reads: {other:?} is neither \"batched\" nor \"sync\""),
    };
    if let Some(ms) = file.batch_window_ms {
        if ms == 0 || ms > 60_000 {
            bail!("audit.batch_window_ms: {ms} is outside 1..=60000");
        }
        log.batch_window = Duration::from_millis(ms);
    }
    if let Some(secs) = file.head_interval_secs {
        if secs == 0 {
            bail!("audit.head_interval_secs: must be at least 1");
        }
        log.head_interval = Duration::from_secs(secs);
    }
    if let Some(days) = file.retention_days {
        let secs =
            days.checked_mul(24 * 3600).with_context(|| format!("audit.retention_days: {days} days is too long"))?;
        log.retention = Duration::from_secs(secs);
    }
    if let Some(bytes) = file.segment_bytes {
        if bytes < 4096 {
            bail!("audit.segment_bytes: {bytes} is under 4096");
        }
        log.segment_bytes = bytes;
    }
    let refusal_window = match file.refusal_window_secs {
        None => Duration::from_secs(60),
        Some(secs @ 1..=3600) => Duration::from_secs(secs),
        Some(secs) => bail!("audit.refusal_window_secs: {secs} is outside 1..=3600"),
    };
    Ok(Some(AuditSettings { log, reads, refusal_window }))
}

/// The built-in trust profiles and the files named, each checked; an id
/// given twice is refused, so a report's profile id names one thing.
fn load_profiles(paths: &[PathBuf]) -> anyhow::Result<Vec<coffre_label::Profile>> {
    let mut profiles = coffre_label::builtin_profiles();
    for path in paths {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("label_profiles: reading {}", path.display()))?;
        let profile =
            coffre_label::load_profile(&text).with_context(|| format!("label_profiles: in {}", path.display()))?;
        if profiles.iter().any(|p| p.id == profile.id || p.aliases.contains(&profile.id)) {
            bail!("label_profiles: {} declares profile {:?}, which exists already", path.display(), profile.id);
        }
        profiles.push(profile);
    }
    Ok(profiles)
}

/// A boolean from the environment: `true`/`false`, or absent.
fn env_flag(name: &str) -> anyhow::Result<Option<bool>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v.parse().map(Some).with_context(|| format!("{name}: {v:?} is not true or false")),
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))
}

/// `trusted_proxies`: each an address (one host) or a CIDR block.
fn networks(entries: Vec<String>) -> anyhow::Result<Vec<ipnet::IpNet>> {
    entries
        .iter()
        .map(|e| {
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("trusted_proxies: {e:?} is neither an address nor a CIDR block"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coffre.toml");
        std::fs::write(&path, "region = \"eu-west-3\"\ninline_threshold = 1000\ns3_listen = \"127.0.0.1:7000\"\n")
            .expect("write");
        let args = ServeArgs { config: Some(path.clone()), inline_threshold: Some(10), ..Default::default() };
        let c = Config::load(&args).expect("load");
        assert_eq!(c.region, "eu-west-3");
        assert_eq!(c.inline_threshold, 10, "flags override the file");
        assert_eq!(c.s3_listen.port(), 7000);
        assert_eq!(c.admin_listen.port(), 9001, "unset fields keep their default");

        std::fs::write(&path, "regoin = \"typo\"\n").expect("write");
        let err = Config::load(&args).expect_err("unknown field");
        assert!(format!("{err:#}").contains("regoin"), "{err:#}");
    }

    #[test]
    fn tls_files_come_in_pairs_from_file_or_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coffre.toml");
        std::fs::write(&path, "tls_cert = \"/etc/coffre/cert.pem\"\n").expect("write");
        let args = ServeArgs { config: Some(path.clone()), ..Default::default() };
        let err = Config::load(&args).expect_err("a certificate without its key");
        assert!(format!("{err:#}").contains("tls_key is not"), "{err:#}");

        let args = ServeArgs { tls_key: Some("/run/key.pem".into()), ..args };
        let tls = Config::load(&args).expect("flag completes the file").tls.expect("TLS on");
        assert_eq!((tls.cert.to_str(), tls.key.to_str()), (Some("/etc/coffre/cert.pem"), Some("/run/key.pem")));
        assert!(Config::load(&ServeArgs::default()).expect("defaults").tls.is_none(), "plain HTTP by default");
    }

    /// Structured random configuration files: the documented example and the
    /// label example, cut, spliced and seeded with hostile values, must load
    /// or fail with an error naming where; never panic (an overflow included).
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const HOSTILE: [&str; 16] = [
            "[kms]\ncustody = \"pkcs11\"\n",
            "[[targets]]\nid = \"t\"\nkind = \"node\"\ncountry = \"XX\"\ncapacity = \"-1TiB\"\n",
            "[residency]\nreplicas = 4294967296\ndistinct_sites = 0\n",
            "[metadata]\nengine = \"postgres\"\nurl = \"postgres://\\u0000\"\n",
            "[audit]\nretention_days = 9223372036854775807\n",
            "[cluster]\nidentity = \"../../../../etc\"\n",
            "18446744073709551616",
            "-9223372036854775809",
            "1e309",
            "nan",
            "= \"",
            "\"\\uD800\"",
            "[[operators]]\nid = \"o\"\nownership = [{ holder = \"x\", capital = 150.0 }]\n",
            "inline_threshold = 18446744073709551615\n",
            "{ a = { b = { c = { d = [[[[[[[[1]]]]]]]] } } } }",
            "\u{0}\u{feff}\u{202e}",
        ];

        fn seeds() -> [String; 2] {
            let docs = include_str!("../../../docs/configuration.md");
            let example = docs.split("```toml").nth(1).and_then(|b| b.split("```").next()).unwrap_or_default();
            [example.to_owned(), include_str!("../../coffre-label/example.toml").to_owned()]
        }

        #[derive(Debug, Clone)]
        enum Edit {
            Cut(usize),
            Remove(usize, usize),
            Insert(usize, usize),
            Repeat(usize, usize, usize),
            Flip(usize, u8),
        }

        fn edit() -> impl Strategy<Value = Edit> {
            let at = any::<usize>();
            prop_oneof![
                at.prop_map(Edit::Cut),
                (any::<usize>(), 0usize..400).prop_map(|(a, n)| Edit::Remove(a, n)),
                (any::<usize>(), 0..HOSTILE.len()).prop_map(|(a, h)| Edit::Insert(a, h)),
                (any::<usize>(), 1usize..200, 2usize..50).prop_map(|(a, n, k)| Edit::Repeat(a, n, k)),
                (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Flip(a, b)),
            ]
        }

        fn apply(text: &mut Vec<u8>, edit: &Edit) {
            let at = |a: usize, text: &Vec<u8>| if text.is_empty() { 0 } else { a % (text.len() + 1) };
            match *edit {
                Edit::Cut(a) => text.truncate(at(a, text)),
                Edit::Remove(a, n) => {
                    let from = at(a, text);
                    let to = (from + n).min(text.len());
                    text.drain(from..to);
                }
                Edit::Insert(a, h) => {
                    let i = at(a, text);
                    text.splice(i..i, HOSTILE[h].bytes());
                }
                Edit::Repeat(a, n, k) => {
                    let from = at(a, text);
                    let piece = text[from..(from + n).min(text.len())].repeat(k);
                    text.splice(from..from, piece);
                }
                Edit::Flip(a, b) if !text.is_empty() => {
                    let i = a % text.len();
                    text[i] ^= b;
                }
                Edit::Flip(..) => {}
            }
        }

        #[test]
        fn the_seeds_are_the_documented_examples() {
            let [docs, label] = seeds();
            assert!(docs.contains("[metadata]") && docs.contains("[kms]"), "{docs}");
            assert!(label.contains("[[targets]]"), "{label}");
        }

        #[test]
        fn each_hostile_fragment_alone_loads_or_fails_with_an_error() {
            for fragment in HOSTILE {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("coffre.toml");
                std::fs::write(&path, fragment).expect("write");
                let args =
                    ServeArgs { config: Some(path), data_dir: Some(dir.path().join("data")), ..Default::default() };
                if let Err(e) = Config::load(&args) {
                    assert!(!format!("{e:#}").is_empty());
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
            #[test]
            fn any_config_file_loads_or_fails_with_an_error(seed in 0usize..2, edits in proptest::collection::vec(edit(), 1..5)) {
                let mut text = seeds()[seed].clone().into_bytes();
                for e in &edits {
                    apply(&mut text, e);
                }
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("coffre.toml");
                std::fs::write(&path, &text).expect("write");
                let args = ServeArgs { config: Some(path), data_dir: Some(dir.path().join("data")), ..Default::default() };
                if let Err(e) = Config::load(&args) {
                    let told = format!("{e:#}");
                    prop_assert!(!told.is_empty());
                }
            }
        }
    }
}
