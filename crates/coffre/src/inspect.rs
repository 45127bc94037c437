//! `coffre inspect read`: reads one object straight from a data directory,
//! with the server stopped. For disaster recovery, and to prove erasure: given
//! the whole data directory (and even an older copy of the metadata), an
//! erased bucket's objects cannot be read.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use coffre_blob::DiskBlobStore;
use coffre_core::service::{ObjectRead, ObjectService, ServiceConfig};
use coffre_core::types::{AccessKeyId, BucketName, ObjectKey, Principal};
use coffre_core::witness::NoAuditLog;
use coffre_meta::EmbeddedMeta;
use futures::TryStreamExt as _;

#[derive(clap::Args)]
pub struct ReadArgs {
    /// The data directory (blobs, and the embedded custodian's keys).
    #[arg(long, env = "COFFRE_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// A metadata file to use instead of DATA_DIR/meta.redb (a backup copy).
    #[arg(long)]
    meta: Option<PathBuf>,
    /// The config file naming the key custodian, if not the embedded one.
    #[arg(long, env = "COFFRE_CONFIG")]
    config: Option<PathBuf>,
    bucket: String,
    key: String,
}

/// Writes the object's bytes to stdout, or fails saying why it cannot.
pub async fn read(args: ReadArgs) -> anyhow::Result<()> {
    let serve = crate::config::ServeArgs {
        data_dir: Some(args.data_dir.clone()),
        config: args.config.clone(),
        ..Default::default()
    };
    let config = crate::config::Config::load(&serve)?;
    let meta_path = args.meta.unwrap_or_else(|| config.data_dir.join("meta.redb"));
    let meta = Arc::new(EmbeddedMeta::open(&meta_path).with_context(|| format!("opening {}", meta_path.display()))?);
    let blobs = Arc::new(DiskBlobStore::open(config.data_dir.join("blobs")).context("opening blobs")?);
    let kms = crate::kms::open(&config.kms, &config.data_dir).await?;
    let service = ObjectService::new(meta, blobs, kms, ServiceConfig::default(), Arc::new(NoAuditLog));
    let root = Principal::key(AccessKeyId::parse("inspect").map_err(anyhow::Error::msg)?, true);
    let bucket = BucketName::parse(&args.bucket).map_err(anyhow::Error::msg)?;
    let key = ObjectKey::parse(&args.key).map_err(anyhow::Error::msg)?;
    let got = service
        .get_object(&root, &bucket, &key, ObjectRead::default())
        .await
        .with_context(|| format!("reading {}/{}", args.bucket, args.key))?;
    let mut body = got.body;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.try_next().await.context("reading the object's data")? {
        out.write_all(&chunk)?;
    }
    Ok(())
}
