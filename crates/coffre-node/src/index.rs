//! Where each blob's replicas are, written durably before a blob is reported
//! stored, and the lost targets: the typed view the replicated store uses,
//! over a [`PlacementStore`] that is either the gateway's own redb file
//! ([`FilePlacement`], one gateway) or the shared metadata database.
//!
//! The file's writes go through the disk layer's group-commit writer
//! ([`coffre_disk::GroupCommit`]), so concurrent PUTs share an fsync.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use coffre_core::placement::PlacementStore;
use coffre_core::types::BlobId;
use coffre_disk::GroupCommit;
use coffre_topology::ResidencyPolicy;
use redb::{Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

const REPLICAS: TableDefinition<u128, &[u8]> = TableDefinition::new("replicas");
/// Targets declared lost: never read from, written to or counted as a replica.
const LOST: TableDefinition<&str, u64> = TableDefinition::new("lost_targets");

/// One blob's replicas and the rules they were placed under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replicas {
    pub size: u64,
    pub bucket: String,
    pub key: String,
    pub policy: ResidencyPolicy,
    /// Target ids, in placement order.
    pub targets: Vec<String>,
    /// CRC-64/NVME of the sealed bytes as written, against which scrub and
    /// repair check each replica without any key. `None` on records written
    /// before it existed: their replicas can only be checked by reading.
    pub checksum: Option<u64>,
}

/// The record as written before [`Replicas::checksum`]: records without a
/// checksum keep this exact encoding, so the compare-and-swap updates of
/// repair and delete still match the bytes stored.
#[derive(Serialize, Deserialize)]
struct RecordV1 {
    size: u64,
    bucket: String,
    key: String,
    policy: ResidencyPolicy,
    targets: Vec<String>,
}

/// The record with its checksum: [`RecordV1`]'s fields, then the checksum.
#[derive(Serialize, Deserialize)]
struct RecordV2 {
    v1: RecordV1,
    checksum: u64,
}

/// [`Replicas`] records over a [`PlacementStore`].
#[derive(Clone)]
pub(crate) struct PlacementIndex {
    store: Arc<dyn PlacementStore>,
}

impl PlacementIndex {
    pub(crate) fn new(store: Arc<dyn PlacementStore>) -> Self {
        Self { store }
    }

    /// Durable when it returns.
    pub(crate) async fn put(&self, id: BlobId, replicas: &Replicas) -> coffre_core::Result<()> {
        self.store.put(id, encode(replicas)?).await
    }

    /// Replaces the record if it is still `seen`; false if it changed or went.
    pub(crate) async fn replace_if(
        &self,
        id: BlobId,
        seen: &Replicas,
        replicas: &Replicas,
    ) -> coffre_core::Result<bool> {
        self.store.replace_if(id, encode(seen)?, encode(replicas)?).await
    }

    /// Removes the record if it is still `seen`; false if it changed meanwhile.
    pub(crate) async fn remove_if(&self, id: BlobId, seen: &Replicas) -> coffre_core::Result<bool> {
        self.store.remove_if(id, encode(seen)?).await
    }

    pub(crate) async fn get(&self, id: BlobId) -> coffre_core::Result<Option<Replicas>> {
        self.store.get(id).await?.map(|bytes| decode(&bytes)).transpose()
    }

    pub(crate) async fn page(
        &self,
        after: Option<BlobId>,
        limit: usize,
    ) -> coffre_core::Result<Vec<(BlobId, Replicas)>> {
        let page = self.store.page(after, limit).await?;
        page.into_iter().map(|(id, bytes)| Ok((id, decode(&bytes)?))).collect()
    }

    pub(crate) async fn declare_lost(&self, target: String) -> coffre_core::Result<()> {
        self.store.declare_lost(&target).await
    }

    pub(crate) async fn lost(&self) -> coffre_core::Result<Vec<String>> {
        self.store.lost().await
    }
}

/// The placement records of one gateway, in a redb file in its data dir.
#[derive(Clone)]
pub struct FilePlacement {
    db: Arc<Database>,
    writer: GroupCommit,
}

/// Writes committed together at most.
const MAX_BATCH: usize = 512;

/// When a change applies: checked inside the commit, so a repair and a
/// delete of the same blob cannot both win.
enum Condition {
    Always,
    /// Only over exactly this record (the one the caller acted on).
    Equal(Vec<u8>),
}

fn err(e: impl std::fmt::Display) -> coffre_core::Error {
    coffre_core::Error::Meta(format!("placement index: {e}"))
}

impl FilePlacement {
    pub fn open(path: &Path) -> coffre_core::Result<Self> {
        let db = coffre_disk::open_database(path).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(REPLICAS).map_err(err)?;
        txn.open_table(LOST).map_err(err)?;
        txn.commit().map_err(err)?;
        let db = Arc::new(db);
        let writer =
            GroupCommit::start("coffre-placement-writer", db.clone(), Durability::Immediate, MAX_BATCH).map_err(err)?;
        Ok(Self { db, writer })
    }

    /// Queues a change (`None`: remove the record); returns once the commit
    /// holding it is durable, with whether its condition held.
    async fn write(&self, id: BlobId, record: Option<Vec<u8>>, condition: Condition) -> coffre_core::Result<bool> {
        self.writer.write(move |txn| apply(txn, id, record.as_deref(), &condition)).await.map_err(err)?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> coffre_core::Result<T> + Send + 'static,
    ) -> coffre_core::Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(err)?
    }
}

#[async_trait]
impl PlacementStore for FilePlacement {
    async fn put(&self, id: BlobId, record: Vec<u8>) -> coffre_core::Result<()> {
        self.write(id, Some(record), Condition::Always).await.map(drop)
    }

    async fn replace_if(&self, id: BlobId, seen: Vec<u8>, record: Vec<u8>) -> coffre_core::Result<bool> {
        self.write(id, Some(record), Condition::Equal(seen)).await
    }

    async fn remove_if(&self, id: BlobId, seen: Vec<u8>) -> coffre_core::Result<bool> {
        self.write(id, None, Condition::Equal(seen)).await
    }

    async fn get(&self, id: BlobId) -> coffre_core::Result<Option<Vec<u8>>> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let table = txn.open_table(REPLICAS).map_err(err)?;
            Ok(table.get(id.0).map_err(err)?.map(|bytes| bytes.value().to_vec()))
        })
        .await
    }

    async fn page(&self, after: Option<BlobId>, limit: usize) -> coffre_core::Result<Vec<(BlobId, Vec<u8>)>> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let table = txn.open_table(REPLICAS).map_err(err)?;
            let range = match after {
                Some(id) if id.0 == u128::MAX => return Ok(Vec::new()),
                Some(id) => table.range(id.0 + 1..).map_err(err)?,
                None => table.range(0..).map_err(err)?,
            };
            let mut out = Vec::new();
            for entry in range.take(limit) {
                let (key, value) = entry.map_err(err)?;
                out.push((BlobId(key.value()), value.value().to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn declare_lost(&self, target: &str) -> coffre_core::Result<()> {
        let target = target.to_owned();
        let since = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
        let declare = move |txn: &WriteTransaction| -> coffre_core::Result<()> {
            txn.open_table(LOST).map_err(err)?.insert(target.as_str(), since).map_err(err)?;
            Ok(())
        };
        self.writer.write(declare).await.map_err(err)?
    }

    async fn lost(&self) -> coffre_core::Result<Vec<String>> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(err)?;
            let table = txn.open_table(LOST).map_err(err)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(err)? {
                out.push(entry.map_err(err)?.0.value().to_owned());
            }
            Ok(out)
        })
        .await
    }
}

/// Applies one change inside the shared commit if its condition holds on the
/// record as it stands there; whether it applied.
fn apply(
    txn: &WriteTransaction,
    id: BlobId,
    record: Option<&[u8]>,
    condition: &Condition,
) -> coffre_core::Result<bool> {
    let mut table = txn.open_table(REPLICAS).map_err(err)?;
    let current = table.get(id.0).map_err(err)?.map(|v| v.value().to_vec());
    let holds = match condition {
        Condition::Always => true,
        Condition::Equal(seen) => current.as_deref() == Some(seen.as_slice()),
    };
    if holds {
        match record {
            Some(bytes) => drop(table.insert(id.0, bytes).map_err(err)?),
            None => drop(table.remove(id.0).map_err(err)?),
        }
    }
    Ok(holds)
}

fn encode(replicas: &Replicas) -> coffre_core::Result<Vec<u8>> {
    let v1 = RecordV1 {
        size: replicas.size,
        bucket: replicas.bucket.clone(),
        key: replicas.key.clone(),
        policy: replicas.policy.clone(),
        targets: replicas.targets.clone(),
    };
    match replicas.checksum {
        None => postcard::to_stdvec(&v1),
        Some(checksum) => postcard::to_stdvec(&RecordV2 { v1, checksum }),
    }
    .map_err(err)
}

/// A record of either layout: one with a checksum has bytes left after its
/// first fields, one without has none.
fn decode(bytes: &[u8]) -> coffre_core::Result<Replicas> {
    let (v1, rest): (RecordV1, &[u8]) = postcard::take_from_bytes(bytes).map_err(err)?;
    let checksum = if rest.is_empty() { None } else { Some(postcard::from_bytes::<u64>(rest).map_err(err)?) };
    let RecordV1 { size, bucket, key, policy, targets } = v1;
    Ok(Replicas { size, bucket, key, policy, targets, checksum })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_a_checksum_keep_their_old_bytes() {
        let old = Replicas {
            size: 7,
            bucket: "b".into(),
            key: "k".into(),
            policy: ResidencyPolicy::single(),
            targets: vec!["par-1".into(), "par-2".into()],
            checksum: None,
        };
        let v1 = RecordV1 {
            size: 7,
            bucket: "b".into(),
            key: "k".into(),
            policy: ResidencyPolicy::single(),
            targets: old.targets.clone(),
        };
        let stored = postcard::to_stdvec(&v1).expect("encode");
        assert_eq!(encode(&old).expect("encode"), stored, "a compare-and-swap on an old record still matches");
        assert_eq!(decode(&stored).expect("decode"), old);
        let new = Replicas { checksum: Some(u64::MAX - 3), ..old };
        assert_eq!(decode(&encode(&new).expect("encode")).expect("decode"), new);
    }
}
