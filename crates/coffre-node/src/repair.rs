//! Background repair: brings every blob back to its policy's replica count
//! after a target is lost, copying only to targets the policy allows.

use std::sync::Mutex;

use coffre_core::Result;
use coffre_core::types::BlobId;
use coffre_topology::TargetId;
use futures::StreamExt as _;
use serde::Serialize;

use crate::replicated::{Replicas, ReplicatedBlobStore, today};

/// Blobs read from the index per step: the scan never holds it all.
const PAGE: usize = 256;

/// What the admin API shows of repair.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairStatus {
    pub running: bool,
    /// Passes finished since start.
    pub passes: u64,
    /// Blobs looked at in the current (or last) pass.
    pub scanned: u64,
    /// Blobs given new replicas in the current (or last) pass.
    pub repaired: u64,
    /// Blobs that could not be repaired in the current (or last) pass.
    pub failed: u64,
    pub last_error: Option<String>,
}

fn update(status: &Mutex<RepairStatus>, f: impl FnOnce(&mut RepairStatus)) {
    f(&mut status.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
}

impl ReplicatedBlobStore {
    /// One pass over the placement index.
    pub async fn repair_pass(&self, status: &Mutex<RepairStatus>) {
        update(status, |s| {
            s.running = true;
            s.scanned = 0;
            s.repaired = 0;
            s.failed = 0;
        });
        let mut after = None;
        loop {
            let page = match self.index().page(after, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    update(status, |s| s.last_error = Some(e.to_string()));
                    break;
                }
            };
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            for (id, replicas) in page {
                let outcome = self.repair_one(id, replicas).await;
                update(status, |s| {
                    s.scanned += 1;
                    match outcome {
                        Ok(true) => s.repaired += 1,
                        Ok(false) => {}
                        Err(e) => {
                            s.failed += 1;
                            s.last_error = Some(format!("blob {id}: {e}"));
                        }
                    }
                });
            }
        }
        update(status, |s| {
            s.running = false;
            s.passes += 1;
        });
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
        let wanted = self
            .topology()
            .place_more(&replicas.policy, &id.0.to_be_bytes(), day, |t| health.is_up(&t.id), &live)
            .map_err(|e| coffre_core::Error::Residency(e.to_string()))?;
        for target in wanted.iter().filter(|t| !live.contains(t)) {
            self.copy_to(id, &replicas, target).await?;
        }
        let added: Vec<&TargetId> = wanted.iter().filter(|t| !live.contains(t)).collect();
        let updated = Replicas { targets: wanted.iter().map(ToString::to_string).collect(), ..replicas };
        if !self.index().replace(id, &updated).await? {
            // Deleted while being copied: the copies just made are the last of it.
            for target in added {
                let _ = self.backend(target)?.delete(id).await;
            }
            return Ok(false);
        }
        tracing::info!(blob = %id, targets = ?updated.targets, "repaired a blob's replicas");
        Ok(true)
    }

    /// Streams the whole blob from a live replica to `target`.
    async fn copy_to(&self, id: BlobId, replicas: &Replicas, target: &TargetId) -> Result<()> {
        let dest = self.backend(target)?;
        let source = self.read_replicas(id, replicas, 0..replicas.size)?;
        // A read error ends the upload short, and the size check below fails the copy.
        let body = source.take_while(|chunk| std::future::ready(chunk.is_ok())).filter_map(|c| async move { c.ok() });
        let stored = dest.put(id, Box::pin(body)).await?;
        if stored != replicas.size {
            let _ = dest.delete(id).await;
            return Err(coffre_core::Error::Unavailable(format!(
                "copying blob {id} to {target} stored {stored} of {} bytes",
                replicas.size
            )));
        }
        Ok(())
    }
}
