//! Records the engine tests store. The engine keeps wrapped data keys and
//! never opens them, so stand-ins do.
#![allow(dead_code)] // each test binary uses a part of this

use std::sync::Arc;

use coffre_core::meta::{BucketKek, ContentHeaders, DataLocation, MetaStore, ObjectVersion, SealedKey, VersionMeta};
use coffre_core::types::{AccessKeyId, BlobId, BucketId, UnixNanos, VersionId};

/// The identity the tests give their buckets, and that their writes name.
pub const BUCKET_ID: BucketId = BucketId(0xb0c4e7);

/// What keeps an engine's storage alive for a test.
pub enum Held {
    Dir(tempfile::TempDir),
    Database(String),
}

/// The engine under test: PostgreSQL, on a fresh database of the
/// `COFFRE_TEST_PG` cluster, when that is set (scripts/test.sh runs these
/// tests both ways); the embedded engine on a fresh file otherwise.
pub async fn engine() -> (Arc<dyn MetaStore>, Held) {
    match pg_database().await {
        Some(url) => {
            let meta = coffre_meta::PgMeta::connect(&coffre_meta::PgOptions::new(url.clone())).await.expect("connect");
            (meta, Held::Database(url))
        }
        None => {
            let dir = tempfile::tempdir().expect("tmp");
            let meta = coffre_meta::EmbeddedMeta::open(&dir.path().join("m.redb")).expect("open");
            (Arc::new(meta), Held::Dir(dir))
        }
    }
}

/// A fresh database made from the cluster's ICU template (so any ordering
/// that leans on the collation shows), as a connection string.
pub async fn pg_database() -> Option<String> {
    let cluster = std::env::var("COFFRE_TEST_PG").ok().filter(|v| !v.is_empty())?;
    let (client, conn) =
        tokio_postgres::connect(&format!("{cluster} dbname=postgres"), tokio_postgres::NoTls).await.expect("cluster");
    tokio::spawn(conn);
    let name = format!("m_{:016x}", rand::random::<u64>());
    client.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE coffre_template")).await.expect("create database");
    Some(format!("{cluster} dbname={name}"))
}

pub fn kek(generation: u32) -> BucketKek {
    BucketKek { generation, id: format!("kek-{generation}"), created: UnixNanos(0) }
}

/// A data key under generation 1, its id made from `n` so keys can be told apart.
pub fn sealed_key(n: u32) -> SealedKey {
    let mut key_id = [0u8; 16];
    key_id[..4].copy_from_slice(&n.to_be_bytes());
    SealedKey { key_id, kek_generation: 1, wrapped: vec![1; 60], origin: "o".into(), part: 0 }
}

/// A blob with a data key of its own.
pub fn blob(id: BlobId) -> DataLocation {
    DataLocation::Blob { id, key: sealed_key(id.0 as u32) }
}

pub fn version(owner: &AccessKeyId, version_id: VersionId, size: u64, data: DataLocation) -> ObjectVersion {
    ObjectVersion {
        meta: VersionMeta {
            version_id,
            delete_marker: false,
            size,
            etag: "e".into(),
            last_modified: UnixNanos::now(),
            owner: owner.clone(),
            headers: ContentHeaders::default(),
            user_meta: vec![],
            checksums: Default::default(),
            checksum_composite: false,
            tags: vec![],
            lock: Default::default(),
            sse: Default::default(),
        },
        data,
    }
}
