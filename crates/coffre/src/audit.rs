//! `coffre audit`: offline commands on a copy of the audit log (or the local
//! one): the public key, verification, proofs, and queries for people and SIEMs.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use coffre_audit::proof::Proof;
use coffre_audit::query::{Filter, Outcome};
use coffre_audit::store::LogDir;
use coffre_audit::{PublicKey, Signer};
use coffre_audit::{event::parse_time, verify};

use crate::config::{DEFAULT_DATA_DIR, audit_paths};

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    action: AuditAction,
    /// The log directory (default: DATA_DIR/audit).
    #[arg(long, global = true)]
    from: Option<PathBuf>,
    /// The server's data directory, for the default log and signing key.
    #[arg(long, global = true, env = "COFFRE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The signing key (default: DATA_DIR/keys/audit-ed25519.pk8).
    #[arg(long, global = true)]
    signing_key: Option<PathBuf>,
    /// A file holding the public key (`ed25519:<hex>`, as `public-key` prints it).
    #[arg(long, global = true)]
    public_key: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum AuditAction {
    /// Print the public key that verifies this deployment's signed heads.
    PublicKey,
    /// Check the whole log: events, order, signed heads. Exit 0 only if all verifies.
    Verify,
    /// Print an inclusion proof for event SEQ (JSON).
    Proof {
        seq: u64,
        /// Prove against this head (default: the latest).
        #[arg(long)]
        head: Option<u64>,
    },
    /// Print a proof that head NEW extends head OLD (JSON).
    Consistency { old: u64, new: u64 },
    /// Check a proof printed by `proof` or `consistency` ("-" reads stdin).
    VerifyProof { file: PathBuf },
    /// Print events matching filters, as a table or JSON Lines (the SIEM export).
    Query(QueryArgs),
    /// Write the log the gateways of a PostgreSQL deployment share into a log
    /// directory, which `verify`, `proof` and `query --from DIR` then read.
    Export {
        /// The gateways' config file (its `[metadata]` names the database).
        #[arg(long)]
        config: PathBuf,
        /// The directory to write (segments/ and heads.jsonl).
        #[arg(long)]
        to: PathBuf,
    },
}

impl AuditArgs {
    /// `export` reaches a database; every other action reads files.
    pub fn export(&self) -> Option<(&PathBuf, &PathBuf)> {
        match &self.action {
            AuditAction::Export { config, to } => Some((config, to)),
            _ => None,
        }
    }
}

/// `coffre audit export`: the shared log, as files an auditor verifies offline.
pub async fn export(config: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let args = crate::config::ServeArgs { config: Some(config.to_path_buf()), ..Default::default() };
    let config = crate::config::Config::load(&args)?;
    let Some(options) = crate::metadata::pg_options(&config, "audit-export")? else {
        anyhow::bail!("the metadata is embedded: this server's log is already files (see --from / --data-dir)");
    };
    let pg = coffre_meta::PgMeta::connect(&options).await.context("connecting to the metadata database")?;
    let events = coffre_audit::shared::export(&pg.audit_store(), to).await?;
    println!("exported {events} events to {}", to.display());
    Ok(())
}

#[derive(clap::Args)]
struct QueryArgs {
    /// RFC 3339 time, inclusive.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 time, exclusive.
    #[arg(long)]
    until: Option<String>,
    /// Access key id.
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    bucket: Option<String>,
    /// Object key prefix.
    #[arg(long)]
    prefix: Option<String>,
    /// Operation name (`PutObject`, `admin:CreateKey`...), any case.
    #[arg(long)]
    operation: Option<String>,
    /// `ok`, `error`, an HTTP status, or an S3 error code.
    #[arg(long)]
    result: Option<String>,
    /// `table` or `jsonl` (one canonical event per line).
    #[arg(long, default_value = "table")]
    format: String,
}

pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let (default_dir, default_key) = audit_paths(&args.data_dir);
    let dir = LogDir::new(args.from.clone().unwrap_or(default_dir));
    let signing_key = args.signing_key.clone().unwrap_or(default_key);
    match args.action {
        AuditAction::PublicKey => {
            println!("{}", Signer::load(&signing_key)?.public_key());
            Ok(())
        }
        AuditAction::Verify => verify_log(&dir, &public_key(args.public_key.as_deref(), &signing_key)?),
        AuditAction::Proof { seq, head } => print_proof(&Proof::inclusion(&dir, seq, head)?),
        AuditAction::Consistency { old, new } => print_proof(&Proof::consistency(&dir, old, new)?),
        AuditAction::VerifyProof { file } => {
            verify_proof(&file, &public_key(args.public_key.as_deref(), &signing_key)?)
        }
        AuditAction::Query(query) => run_query(&dir, query),
        AuditAction::Export { .. } => bail!("`audit export` reaches the database: it runs from main"),
    }
}

/// The public key a report or proof is checked with: the file given, else
/// the one of `data_dir`'s signing key.
pub fn public_key_for(given: Option<&Path>, data_dir: &Path) -> anyhow::Result<PublicKey> {
    public_key(given, &audit_paths(data_dir).1)
}

/// The key given, else the local signing key's (which an auditor should not rely on).
fn public_key(given: Option<&Path>, signing_key: &Path) -> anyhow::Result<PublicKey> {
    match given {
        Some(path) => Ok(PublicKey::read(path)?),
        None => {
            let key = Signer::load(signing_key)
                .with_context(|| "no --public-key given and no local signing key to take it from")?
                .public_key();
            eprintln!(
                "note: using the public key of the local signing key {}; an auditor passes --public-key with a key \
                 obtained independently",
                signing_key.display()
            );
            Ok(key)
        }
    }
}

fn verify_log(dir: &LogDir, key: &PublicKey) -> anyhow::Result<()> {
    let report = verify::verify(dir, key)
        .map_err(|e| anyhow::anyhow!("audit log {} FAILED verification: {e}", dir.root().display()))?;
    println!(
        "audit log {} verified: {} events ({} past retention, hashes only), {} signed heads",
        dir.root().display(),
        report.events,
        report.pruned,
        report.heads
    );
    match &report.latest {
        Some(head) => println!(
            "latest head #{}: {} events, root {}, signed at {} ms",
            head.head, head.size, head.root, head.time_ms
        ),
        None => println!("no signed head yet: the events are in order, but nothing is signed"),
    }
    if report.unsigned > 0 {
        println!("{} events after the latest head are not yet signed", report.unsigned);
    }
    Ok(())
}

fn print_proof(proof: &Proof) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(proof)?);
    Ok(())
}

fn verify_proof(file: &Path, key: &PublicKey) -> anyhow::Result<()> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the proof from stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let proof: Proof =
        serde_json::from_str(&text).context("not a proof printed by `coffre audit proof|consistency`")?;
    match proof.verify(key) {
        Ok(what) => {
            println!("verified: {what}");
            Ok(())
        }
        Err(why) => bail!("proof FAILED: {why}"),
    }
}

/// The verified principal, else the unverified claim marked `?`, else `-`.
fn principal_column(event: &coffre_audit::Event) -> String {
    match (&event.principal, &event.claimed) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => format!("{c}?"),
        (None, None) => "-".into(),
    }
}

fn run_query(dir: &LogDir, args: QueryArgs) -> anyhow::Result<()> {
    let time = |t: &Option<String>, name: &str| -> anyhow::Result<_> {
        t.as_deref()
            .map(|t| parse_time(t).with_context(|| format!("--{name}: {t:?} is not an RFC 3339 time")))
            .transpose()
    };
    let filter = Filter {
        since: time(&args.since, "since")?,
        until: time(&args.until, "until")?,
        principal: args.principal,
        bucket: args.bucket,
        key_prefix: args.prefix,
        operation: args.operation,
        outcome: args.result.as_deref().map(Outcome::parse),
    };
    let jsonl = match args.format.as_str() {
        "jsonl" => true,
        "table" => false,
        other => bail!("--format: {other:?} is neither table nor jsonl"),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !jsonl {
        writeln!(
            out,
            "{:>6}  {:24}  {:20}  {:28}  {:40}  {:>6}  ERROR",
            "SEQ", "TIME", "PRINCIPAL", "OPERATION", "BUCKET/KEY", "STATUS"
        )?;
    }
    let scanned = dir.scan(|leaf| {
        let Some(event) = leaf.event.filter(|e| filter.matches(e)) else { return Ok(()) };
        let written = if jsonl {
            out.write_all(&event.canonical()).and_then(|()| out.write_all(b"\n"))
        } else {
            let target = match (&event.bucket, &event.key) {
                (Some(b), Some(k)) => format!("{b}/{k}"),
                (Some(b), None) => b.clone(),
                _ => "-".into(),
            };
            writeln!(
                out,
                "{:>6}  {:24}  {:20}  {:28}  {:40}  {:>6}  {}",
                event.seq,
                event.time,
                principal_column(&event),
                event.operation,
                target,
                event.status,
                event.error.as_deref().unwrap_or("-")
            )
        };
        written.map_err(|e| coffre_audit::AuditError::Invalid(format!("writing the output: {e}")))
    });
    out.flush()?;
    scanned.map(|_| ()).map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.root().display()))
}
