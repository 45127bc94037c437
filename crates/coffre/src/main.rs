//! `coffre`: the server (`serve`), its admin commands (`key`, `bucket`), the
//! audit log's offline tools (`audit`), and a load generator (`bench`).

mod admin;
mod audit;
mod bench;
mod cli;
mod cluster;
mod config;
mod credentials;
mod iam;
mod inspect;
mod joining;
mod kms;
mod label;
mod lifecycle;
mod metadata;
mod metrics;
mod refusals;
mod server;
mod tls;
mod trail;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "coffre", version, about = "A sovereign S3-compatible object store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (S3 on 127.0.0.1:9000, admin on 127.0.0.1:9001 by default).
    Serve(config::ServeArgs),
    /// Manage access keys.
    Key {
        #[command(subcommand)]
        action: KeyAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Inspect buckets.
    Bucket {
        #[command(subcommand)]
        action: BucketAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The key custodian (KMS).
    Kms {
        #[command(subcommand)]
        action: KmsAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Where an object's replicas are.
    Object {
        #[command(subcommand)]
        action: ObjectAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// What each tenant (today: each access key) stores: buckets, objects,
    /// bytes, unfinished uploads.
    Usage {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The gateways sharing this deployment's PostgreSQL metadata, with
    /// their last heartbeat.
    Gateways {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Storage targets: health, loss, repair.
    Target {
        #[command(subcommand)]
        action: TargetAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The cluster's certificate authority, and the identities of its
    /// storage nodes and gateways (mutual TLS on node links).
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// The trust label: evaluate this deployment against a profile, or verify a report.
    Label {
        #[command(subcommand)]
        action: LabelAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The metadata database (PostgreSQL engine).
    Meta {
        #[command(subcommand)]
        action: MetaAction,
    },
    /// Read a data directory directly, with the server stopped.
    Inspect {
        #[command(subcommand)]
        action: InspectAction,
    },
    /// Identity and access: simulate the S3 front's decision.
    Iam {
        #[command(subcommand)]
        action: iam::IamAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The audit log: public key, verification, proofs, queries (offline).
    Audit(audit::AuditArgs),
    /// Measure PUT, GET, mixed and LIST throughput of any S3 endpoint.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum MetaAction {
    /// Apply the schema migrations this coffre knows to the database of
    /// `[metadata]` (servers also apply them at start).
    Migrate(Box<config::ServeArgs>),
    /// Compact the embedded metadata file (DATA_DIR/meta.redb), server
    /// stopped: what erased buckets left in its free pages goes with them.
    Compact {
        #[arg(long, default_value = config::DEFAULT_DATA_DIR)]
        data_dir: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum InspectAction {
    /// Write one object's bytes to stdout.
    Read(inspect::ReadArgs),
}

#[derive(Subcommand)]
enum ObjectAction {
    /// List an object version's replicas with their country, site and operator.
    Where {
        bucket: String,
        key: String,
        #[arg(long)]
        version_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum TargetAction {
    /// The declared targets, whether each answers, and which are lost.
    List,
    /// Declare a target lost for good: its replicas stop counting and repair
    /// copies them to other allowed targets.
    Lost { id: String },
    /// Repair's progress; `--start` asks for a pass now.
    Repair {
        #[arg(long)]
        start: bool,
    },
    /// Scrub's progress (replicas read back and checked); `--start` asks
    /// for a pass now.
    Scrub {
        #[arg(long)]
        start: bool,
    },
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Make the cluster's CA in DIR: ca.pem, and ca.key (mode 0600; keep it
    /// offline). Never replaces an existing one.
    Ca {
        #[arg(long)]
        dir: PathBuf,
        /// Named in the CA's certificate (default: random).
        #[arg(long)]
        name: Option<String>,
    },
    /// Issue one identity (key, certificate, and a copy of ca.pem) into OUT,
    /// the directory its process's [cluster] identity names.
    Issue {
        /// The directory of `coffre cluster ca`.
        #[arg(long)]
        ca: PathBuf,
        /// A storage node: the id of the target it serves.
        #[arg(long, conflicts_with = "gateway", required_unless_present = "gateway")]
        node: Option<String>,
        /// A gateway, by name.
        #[arg(long)]
        gateway: Option<String>,
        #[arg(long)]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = coffre_node::identity::DEFAULT_DAYS)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum LabelAction {
    /// Evaluate the running deployment (through its admin API) against a
    /// profile: a signed pre-assessment (json), or text or html to read.
    Evaluate {
        /// secnumcloud-3.2 (alias cloud-de-confiance), hds-2, gaiax-label-3, data-act.
        #[arg(long)]
        profile: String,
        #[arg(long, default_value = "text")]
        format: String,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Read a stopped server's config (--config) and data directory
        /// (--data-dir) instead of asking a running one.
        #[arg(long)]
        offline: bool,
        /// The config file, with --offline.
        #[arg(long, env = "COFFRE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check a signed report offline; exit 0 only if it is intact and signed by the key.
    Verify {
        report: PathBuf,
        /// A file holding the public key as `coffre audit public-key` prints it
        /// (default: derived from DATA_DIR's signing key).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// List the built-in profiles.
    Profiles,
}

#[derive(Subcommand)]
enum KmsAction {
    /// Show which custodian holds the keys, after checking it works.
    Status,
}

#[derive(clap::Args)]
struct AdminArgs {
    /// Admin API of the server to manage.
    #[arg(long, global = true, env = "COFFRE_ADMIN_ENDPOINT", default_value = "http://127.0.0.1:9001")]
    endpoint: String,
    /// Where to find the admin token when `COFFRE_ADMIN_TOKEN` is not set.
    #[arg(long, global = true, env = "COFFRE_DATA_DIR", default_value = config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// CA certificate(s), PEM, to trust for an https endpoint (default: the system's).
    #[arg(long, global = true, env = "COFFRE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Create an access key; prints its id and secret (shown only here).
    Create {
        #[arg(long)]
        name: String,
        /// When the key stops working (RFC 3339, e.g. 2027-03-31T00:00:00Z); default: never.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List access keys (without secrets) with their status and expiry.
    List,
    /// Disable or enable a key, or change its expiry. Every gateway refuses a
    /// disabled key within `access_key_cache_secs`.
    Update {
        id: String,
        /// active or inactive.
        #[arg(long)]
        status: Option<String>,
        /// RFC 3339, or `never`.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Delete an access key. A key that owns buckets is refused unless
    /// --erase-buckets, which crypto-erases them with it.
    Delete {
        id: String,
        #[arg(long)]
        erase_buckets: bool,
    },
}

#[derive(Subcommand)]
enum BucketAction {
    /// List all buckets with their owner and usage.
    List,
    /// Show one bucket.
    Info { name: String },
    /// Make a new key-encryption key for the bucket and rewrap every data key
    /// under it (the data itself is not rewritten); the old keys are destroyed.
    RotateKey { name: String },
    /// Show the bucket's residency policy, or set it with --allow/--replicas/...
    /// (tightening is refused while any stored replica would break it).
    Residency {
        name: String,
        /// Jurisdictions the data may live in: FR, EU, EEA, a country code or
        /// a set of the config's [jurisdictions]. Repeatable; none: anywhere.
        #[arg(long)]
        allow: Vec<String>,
        #[arg(long)]
        replicas: Option<u8>,
        #[arg(long)]
        distinct_sites: Option<u8>,
        /// Operators allowed (ids from [[operators]]). Repeatable; none: any.
        #[arg(long)]
        operator: Vec<String>,
        /// Qualifications every operator must hold, unexpired. Repeatable.
        #[arg(long)]
        require_qualification: Vec<String>,
    },
    /// Crypto-erase a bucket: destroy its keys, then its records and blobs.
    /// Irreversible: every copy of its data, backups included, becomes unreadable.
    Erase {
        name: String,
        #[arg(long)]
        confirm: bool,
    },
}

/// Logs to stderr at the level `COFFRE_LOG` asks (info by default), through
/// a filter no setting lifts ([`never_logged`]): no secret, signature or
/// SSE-C key reaches the log, even at trace level.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_env("COFFRE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| !never_logged(meta.target(), meta.level())));
    tracing_subscriber::registry().with(output).init();
}

/// What is never logged: s3s's events and spans (whole requests with their
/// signatures and SSE-C keys, the signature it expected, client errors at
/// error level; see `coffre_s3::may_log`), and `tokio_postgres` below info
/// (each statement's parameters, through the `log` crate).
fn never_logged(target: &str, level: &tracing::Level) -> bool {
    let postgres = target == "tokio_postgres" || target.starts_with("tokio_postgres::");
    !coffre_s3::may_log(target) || (postgres && *level > tracing::Level::INFO)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            init_logging();
            match config::Config::load_to_serve(&args) {
                Ok(config) => server::run(config).await,
                Err(e) => Err(e),
            }
        }
        Command::Key { action, admin } => key_command(action, &admin).await,
        Command::Bucket { action, admin } => bucket_command(action, &admin).await,
        Command::Kms { action: KmsAction::Status, admin } => kms_status(&admin).await,
        Command::Object { action, admin } => object_command(action, &admin).await,
        Command::Target { action, admin } => target_command(action, &admin).await,
        Command::Gateways { admin } => gateways_command(&admin).await,
        Command::Usage { admin } => usage_command(&admin).await,
        Command::Iam { action, admin } => iam_command(action, &admin).await,
        Command::Cluster { action } => cluster_command(action),
        Command::Label { action, admin } => label_command(action, &admin).await,
        Command::Meta { action: MetaAction::Migrate(args) } => migrate(&args).await,
        Command::Meta { action: MetaAction::Compact { data_dir } } => compact(&data_dir),
        Command::Inspect { action: InspectAction::Read(args) } => inspect::read(args).await,
        Command::Audit(args) => match args.export() {
            Some((config, to)) => audit::export(config, to).await,
            None => audit::run(args),
        },
        Command::Bench(args) => bench::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn key_command(action: KeyAction, admin: &AdminArgs) -> anyhow::Result<()> {
    let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
    match action {
        KeyAction::Create { name, expires } => {
            let key = client.create_key(&name, expires.as_deref()).await?;
            if admin.json {
                println!("{}", serde_json::to_string_pretty(&key)?);
            } else {
                println!("access key: {}", key.access_key_id);
                println!("secret key: {}", key.secret_access_key.unwrap_or_default());
                println!("(the secret is shown only now)");
            }
        }
        KeyAction::List => cli::print_keys(&client.list_keys().await?, admin.json)?,
        KeyAction::Update { id, status, expires } => {
            let key = client.update_key(&id, status.as_deref(), expires.as_deref()).await?;
            if admin.json {
                println!("{}", serde_json::to_string_pretty(&key)?);
            } else {
                cli::print_keys(std::slice::from_ref(&key), false)?;
            }
        }
        KeyAction::Delete { id, erase_buckets } => {
            let done = client.delete_key(&id, erase_buckets).await?;
            if admin.json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                println!("deleted {id}");
                for e in &done.erased {
                    println!("erased bucket {}: {} keys destroyed", e.bucket, e.keks_destroyed.len());
                }
            }
        }
    }
    Ok(())
}

async fn bucket_command(action: BucketAction, admin: &AdminArgs) -> anyhow::Result<()> {
    let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
    match action {
        BucketAction::List => cli::print_buckets(&client.list_buckets().await?, admin.json),
        BucketAction::Info { name } => {
            let bucket = client.bucket(&name).await?;
            if admin.json {
                println!("{}", serde_json::to_string_pretty(&bucket)?);
                Ok(())
            } else {
                cli::print_buckets(&[bucket], false)
            }
        }
        BucketAction::RotateKey { name } => print_json(&client.rotate_key(&name).await?),
        BucketAction::Residency { name, allow, replicas, distinct_sites, operator, require_qualification } => {
            let changes = !allow.is_empty()
                || replicas.is_some()
                || distinct_sites.is_some()
                || !operator.is_empty()
                || !require_qualification.is_empty();
            if !changes {
                return print_json(
                    &client.json(http::Method::GET, &format!("/admin/v1/buckets/{name}/residency"), None).await?,
                );
            }
            let replicas = replicas.unwrap_or(1);
            let policy = serde_json::json!({
                "allow": allow,
                "replicas": replicas,
                "distinct_sites": distinct_sites.unwrap_or(1),
                "operators": operator,
                "require_qualifications": require_qualification,
            });
            let path = format!("/admin/v1/buckets/{name}/residency");
            print_json(&client.json(http::Method::PUT, &path, Some(policy)).await?)
        }
        BucketAction::Erase { name, confirm } => {
            if !confirm {
                anyhow::bail!("erasing {name} destroys its keys and all its data for good: add --confirm");
            }
            print_json(&client.erase_bucket(&name).await?)
        }
    }
}

async fn object_command(action: ObjectAction, admin: &AdminArgs) -> anyhow::Result<()> {
    let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
    let ObjectAction::Where { bucket, key, version_id } = action;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("key", &key);
    if let Some(v) = &version_id {
        query.append_pair("version_id", v);
    }
    let path = format!("/admin/v1/buckets/{bucket}/where?{}", query.finish());
    let view = client.json(http::Method::GET, &path, None).await?;
    if admin.json {
        return print_json(&view);
    }
    println!("{bucket}/{key} version {} ({} bytes)", view["version_id"].as_str().unwrap_or("-"), view["size"]);
    for r in view["replicas"].as_array().into_iter().flatten() {
        let state = if r["lost"].as_bool() == Some(true) {
            "lost"
        } else if r["up"].as_bool() == Some(true) {
            "up"
        } else {
            "down"
        };
        println!(
            "  {:<12} {:<28} {:<10} {} ({})",
            r["target"].as_str().unwrap_or("-"),
            r["location"].as_str().unwrap_or("-"),
            state,
            r["operator"].as_str().unwrap_or("-"),
            r["operator_name"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}

async fn iam_command(action: iam::IamAction, admin: &AdminArgs) -> anyhow::Result<()> {
    let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
    iam::run(action, &client).await
}

async fn usage_command(admin: &AdminArgs) -> anyhow::Result<()> {
    let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
    let tenants: Vec<coffre_admin::TenantUsage> =
        serde_json::from_value(client.json(http::Method::GET, "/admin/v1/usage", None).await?)?;
    if admin.json {
        println!("{}", serde_json::to_string_pretty(&tenants)?);
        return Ok(());
    }
    println!("{:<22} {:>8} {:>12} {:>16} {:>8}", "TENANT (KEY)", "BUCKETS", "OBJECTS", "BYTES", "UPLOADS");
    for t in &tenants {
        println!("{:<22} {:>8} {:>12} {:>16} {:>8}", t.owner, t.buckets, t.objects, t.bytes, t.multipart_uploads);
    }
    Ok(())
}

async fn gateways_command(admin: &AdminArgs) -> anyhow::Result<()> {
    let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
    print_json(&client.json(http::Method::GET, "/admin/v1/gateways", None).await?)
}

async fn target_command(action: TargetAction, admin: &AdminArgs) -> anyhow::Result<()> {
    let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
    let (method, path) = match &action {
        TargetAction::List => (http::Method::GET, "/admin/v1/targets".to_owned()),
        TargetAction::Lost { id } => (http::Method::POST, format!("/admin/v1/targets/{id}/lost")),
        TargetAction::Repair { start: true } => (http::Method::POST, "/admin/v1/repair".to_owned()),
        TargetAction::Repair { start: false } => (http::Method::GET, "/admin/v1/repair".to_owned()),
        TargetAction::Scrub { start: true } => (http::Method::POST, "/admin/v1/scrub".to_owned()),
        TargetAction::Scrub { start: false } => (http::Method::GET, "/admin/v1/scrub".to_owned()),
    };
    print_json(&client.json(method, &path, None).await?)
}

fn cluster_command(action: ClusterAction) -> anyhow::Result<()> {
    use coffre_node::identity::{self, Identity};
    match action {
        ClusterAction::Ca { dir, name } => {
            let name = name.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
            let cert = identity::create_ca(&dir, &name)?;
            println!(
                "cluster CA {name}: {} (private key {}, mode 0600)",
                cert.display(),
                dir.join(identity::CA_KEY_FILE).display()
            );
        }
        ClusterAction::Issue { ca, node, gateway, out, days } => {
            let who = match (node, gateway) {
                (Some(node), _) => Identity::node(&node),
                (None, Some(gateway)) => Identity::gateway(&gateway),
                (None, None) => unreachable!("clap requires --node or --gateway"),
            }
            .map_err(anyhow::Error::msg)?;
            identity::issue(&ca, &who, &out, days)?;
            println!("{who}: {} (set [cluster] identity = {:?} for it)", out.join(identity::CERT_FILE).display(), out);
        }
    }
    Ok(())
}

async fn label_command(action: LabelAction, admin: &AdminArgs) -> anyhow::Result<()> {
    match action {
        LabelAction::Evaluate { profile, format, output, offline, config } => {
            let body = if offline {
                let args = config::ServeArgs { config, data_dir: Some(admin.data_dir.clone()), ..Default::default() };
                label::evaluate_offline(&args, &profile, &format).await?
            } else {
                let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                query.append_pair("profile", &profile).append_pair("format", &format);
                client.text(&format!("/admin/v1/label?{}", query.finish())).await?
            };
            match output {
                Some(path) => {
                    std::fs::write(&path, body).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
                }
                None => {
                    print!("{body}");
                    Ok(())
                }
            }
        }
        LabelAction::Verify { report, public_key } => {
            let key = audit::public_key_for(public_key.as_deref(), &admin.data_dir)?;
            let text =
                std::fs::read_to_string(&report).map_err(|e| anyhow::anyhow!("reading {}: {e}", report.display()))?;
            let checked = coffre_label::verify(&text, &key.0)
                .map_err(|e| anyhow::anyhow!("{} does NOT verify: {e}", report.display()))?;
            println!(
                "{}: signature valid ({key}); profile {} {}, {}; {}",
                report.display(),
                checked.profile,
                checked.profile_version,
                checked.generated,
                checked.conclusion()
            );
            Ok(())
        }
        LabelAction::Profiles => {
            for p in coffre_label::builtin_profiles() {
                println!("{:<18} {:<8} {} ({} rules)", p.id, p.version, p.title, p.rules.len());
            }
            Ok(())
        }
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn kms_status(admin: &AdminArgs) -> anyhow::Result<()> {
    let client = cli::AdminClient::new(&admin.endpoint, &admin.data_dir, admin.ca_cert.as_deref())?;
    let status = client.kms_status().await?;
    if admin.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        println!(
            "custody:  {}\nlocation: {}\ndetail:   {}\nstatus:   working",
            status.custody, status.location, status.detail
        );
        println!("pending key destructions: {}", status.pending_destroys.len());
        for d in &status.pending_destroys {
            let error = d.last_error.as_deref().unwrap_or("not tried yet");
            println!("  {} (bucket {}, since {}, {} attempts): {error}", d.kek, d.bucket, d.since, d.attempts);
        }
    }
    Ok(())
}

/// `coffre meta migrate`: brings the configured PostgreSQL database to this
/// build's schema and says what it did.
fn compact(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let path = data_dir.join("meta.redb");
    let (before, after) = coffre_meta::embedded::compact_file(&path)
        .map_err(|e| anyhow::anyhow!("compacting {}: {e} (is a server still running on it?)", path.display()))?;
    println!("{}: {before} bytes before, {after} after", path.display());
    Ok(())
}

async fn migrate(args: &config::ServeArgs) -> anyhow::Result<()> {
    let config = config::Config::load(args)?;
    let Some(options) = metadata::pg_options(&config, "migrate")? else {
        anyhow::bail!("[metadata] engine is \"embedded\": the embedded engine needs no migration");
    };
    let applied = coffre_meta::postgres::migrate(&options)
        .await
        .map_err(|e| anyhow::anyhow!("migrating the metadata database: {e}"))?;
    let latest = coffre_meta::postgres::latest_version();
    match applied.as_slice() {
        [] => println!("schema already at version {latest}"),
        done => println!("applied migrations {done:?}; schema at version {latest}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::never_logged;

    #[test]
    fn no_setting_logs_s3s_or_postgres_parameters() {
        assert!(never_logged("s3s::ops::signature", &Level::DEBUG));
        assert!(never_logged("s3s::service", &Level::ERROR));
        assert!(never_logged("tokio_postgres::query", &Level::DEBUG));
        assert!(!never_logged("tokio_postgres::connection", &Level::WARN));
        assert!(!never_logged("coffre::request", &Level::TRACE));
        assert!(!never_logged("coffre_s3::error", &Level::ERROR));
    }
}
