//! Repair: brings every blob back to its policy's replica count after a
//! target is lost, copying only to targets the policy allows.
//!
//! The blob-id space is cut into [`SHARDS`] shards of equal width; a pass is
//! one job per shard on the job queue, so every gateway takes a share of it
//! and the shard of a gateway that dies is taken up by another.

use coffre_core::Result;
use coffre_core::types::BlobId;
use coffre_topology::TargetId;
use futures::StreamExt as _;

use crate::replicated::{Replicas, ReplicatedBlobStore, today};

/// Blobs read from the index per step: the scan never holds it all.
const PAGE: usize = 256;
/// Shards of the blob-id space: a power of two, so each is a prefix of ids.
pub const SHARDS: u16 = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// One shard of the blob-id space: the ids whose top bits are its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard(u16);

impl Shard {
    /// The job keys of a whole pass.
    pub fn every_key() -> Vec<Vec<u8>> {
        (0..SHARDS).map(|n| Shard(n).key()).collect()
    }

    fn key(self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }

    /// `None` for a key no shard has (a job queued by another version).
    pub fn from_key(key: &[u8]) -> Option<Self> {
        let n = u16::from_be_bytes(key.try_into().ok()?);
        (n < SHARDS).then_some(Self(n))
    }

    /// The first and last blob ids of the shard.
    pub(crate) fn bounds(self) -> (u128, u128) {
        let shift = 128 - SHARD_BITS;
        let first = u128::from(self.0) << shift;
        (first, first | ((1u128 << shift) - 1))
    }
}

/// What repairing one shard did.
#[derive(Debug, Clone, Default)]
pub struct ShardReport {
    pub scanned: u64,
    /// Blobs given new replicas.
    pub repaired: u64,
    /// Blobs that could not be repaired; the shard should run again later.
    pub failed: u64,
    pub last_error: Option<String>,
}

impl ReplicatedBlobStore {
    /// Repairs every blob of `shard`; an error if the index cannot be read.
    pub async fn repair_shard(&self, shard: Shard) -> Result<ShardReport> {
        let (first, last) = shard.bounds();
        let mut after = first.checked_sub(1).map(BlobId);
        let mut report = ShardReport::default();
        loop {
            let page = self.index().page(after, PAGE).await?;
            let Some((next, _)) = page.last() else { return Ok(report) };
            after = Some(*next);
            for (id, replicas) in page {
                if id.0 > last {
                    return Ok(report);
                }
                report.scanned += 1;
                match self.repair_one(id, replicas).await {
                    Ok(true) => report.repaired += 1,
                    Ok(false) => {}
                    Err(e) => {
                        report.failed += 1;
                        report.last_error = Some(format!("blob {id}: {e}"));
                    }
                }
            }
        }
    }

    /// Adds replicas to one blob if its live ones no longer meet its policy;
    /// true if it did.
    async fn repair_one(&self, id: BlobId, replicas: Replicas) -> Result<bool> {
        let health = self.health();
        let live: Vec<TargetId> = replicas
            .targets
            .iter()
            .map(|t| TargetId(t.clone()))
            .filter(|t| !health.is_lost(t) && self.topology().target(t).is_some())
            .collect();
        let day = today();
        if self.topology().satisfies(&replicas.policy, &live, day).is_ok() {
            return Ok(false);
        }
        // A policy older than a narrower `[residency]` adds no replica outside it.
        self.topology()
            .check_bounded(&replicas.policy, self.default_policy())
            .map_err(|e| coffre_core::Error::Residency(e.to_string()))?;
        let wanted = self
            .topology()
            .place_more(&replicas.policy, &id.0.to_be_bytes(), day, |t| health.is_up(&t.id), &live)
            .map_err(|e| coffre_core::Error::Residency(e.to_string()))?;
        for target in wanted.iter().filter(|t| !live.contains(t)) {
            self.copy_to(id, &replicas, target).await?;
        }
        let added: Vec<&TargetId> = wanted.iter().filter(|t| !live.contains(t)).collect();
        let updated = Replicas { targets: wanted.iter().map(ToString::to_string).collect(), ..replicas.clone() };
        if !self.index().replace_if(id, &replicas, &updated).await? {
            // Deleted, retagged or repaired elsewhere while being copied: the
            // copies the record does not name now are nobody's; the next pass
            // looks at the blob again.
            let now = self.index().get(id).await?.map(|r| r.targets).unwrap_or_default();
            for target in added.into_iter().filter(|t| !now.contains(&t.0)) {
                let _ = self.backend(target)?.delete(id).await;
            }
            return Ok(false);
        }
        tracing::info!(blob = %id, targets = ?updated.targets, "repaired a blob's replicas");
        Ok(true)
    }

    /// Streams the whole blob from a live replica to `target`, checked
    /// against the blob's checksum when it has one.
    async fn copy_to(&self, id: BlobId, replicas: &Replicas, target: &TargetId) -> Result<()> {
        let dest = self.backend(target)?;
        let source = self.read_replicas(id, replicas, 0..replicas.size)?;
        let crc = std::sync::Arc::new(std::sync::Mutex::new(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme)));
        let tap = crc.clone();
        // A read error ends the upload short, and the size check below fails the copy.
        let body = source
            .take_while(|chunk| std::future::ready(chunk.is_ok()))
            .filter_map(|c| async move { c.ok() })
            .inspect(move |chunk| tap.lock().unwrap_or_else(std::sync::PoisonError::into_inner).update(chunk));
        let stored = dest.put(id, Box::pin(body)).await?;
        let sum = crc.lock().unwrap_or_else(std::sync::PoisonError::into_inner).finalize();
        let why = if stored != replicas.size {
            format!("stored {stored} of {} bytes", replicas.size)
        } else if replicas.checksum.is_some_and(|expected| expected != sum) {
            "the bytes read do not match the blob's checksum".to_owned()
        } else {
            return Ok(());
        };
        let _ = dest.delete(id).await;
        Err(coffre_core::Error::Unavailable(format!("copying blob {id} to {target}: {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shards_cover_every_id_once_in_order() {
        let keys = Shard::every_key();
        assert_eq!(keys.len(), usize::from(SHARDS));
        let bounds: Vec<(u128, u128)> = keys.iter().map(|k| Shard::from_key(k).expect("a shard").bounds()).collect();
        assert_eq!(bounds[0].0, 0);
        assert_eq!(bounds[bounds.len() - 1].1, u128::MAX);
        for pair in bounds.windows(2) {
            assert_eq!(pair[0].1 + 1, pair[1].0, "adjacent, no gap, no overlap");
        }
        assert_eq!(Shard::from_key(&SHARDS.to_be_bytes()), None);
        assert_eq!(Shard::from_key(b"x"), None);
    }
}
