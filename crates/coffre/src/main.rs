//! `coffre`: the server (`serve`), its admin commands (`key`, `bucket`), and
//! a load generator for any S3 endpoint (`bench`).

mod admin;
mod bench;
mod cli;
mod config;
mod credentials;
mod lifecycle;
mod metrics;
mod server;
mod tls;

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
    /// Measure PUT, GET, mixed and LIST throughput of any S3 endpoint.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// Admin API of the server to manage.
    #[arg(long, global = true, env = "COFFRE_ADMIN_ENDPOINT", default_value = "http://127.0.0.1:9001")]
    endpoint: String,
    /// Where to find root credentials when none are in the environment.
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
    },
    /// List access keys (without secrets).
    List,
    /// Delete an access key.
    Delete { id: String },
}

#[derive(Subcommand)]
enum BucketAction {
    /// List all buckets with their owner and usage.
    List,
    /// Show one bucket.
    Info { name: String },
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("COFFRE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            init_logging();
            match config::Config::load(&args) {
                Ok(config) => server::run(config).await,
                Err(e) => Err(e),
            }
        }
        Command::Key { action, admin } => key_command(action, &admin).await,
        Command::Bucket { action, admin } => bucket_command(action, &admin).await,
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
        KeyAction::Create { name } => {
            let key = client.create_key(&name).await?;
            if admin.json {
                println!("{}", serde_json::to_string_pretty(&key)?);
            } else {
                println!("access key: {}", key.access_key_id);
                println!("secret key: {}", key.secret_access_key.unwrap_or_default());
                println!("(the secret is shown only now)");
            }
        }
        KeyAction::List => cli::print_keys(&client.list_keys().await?, admin.json)?,
        KeyAction::Delete { id } => {
            client.delete_key(&id).await?;
            if !admin.json {
                println!("deleted {id}");
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
    }
}
