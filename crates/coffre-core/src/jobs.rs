//! A queue of background jobs that any gateway may claim: each job is run by
//! one claimer at a time, and a claim whose holder dies lapses by itself.
//!
//! Many gateways share the queue in the metadata database; one gateway keeps
//! it in memory ([`LocalJobs`]), since it alone works it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::Result;

/// A claimed job: its key, and the generation it was claimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobClaim {
    pub key: Vec<u8>,
    /// Bumped each time the job is queued again; a job queued again while
    /// claimed runs once more after the claim ends.
    pub generation: i64,
}

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Queues jobs of `kind`, due now. A job already queued is not doubled:
    /// if unclaimed it becomes due now, if claimed it runs again once done.
    async fn enqueue(&self, kind: &str, keys: &[Vec<u8>]) -> Result<()>;
    /// Claims one due job of `kind` for `hold`, after which another claimer
    /// may take it; `None` if no job is due and unclaimed.
    async fn claim(&self, kind: &str, hold: Duration) -> Result<Option<JobClaim>>;
    /// Ends a claimed job: removed if not queued again since the claim,
    /// otherwise due again at once.
    async fn finish(&self, kind: &str, claim: &JobClaim) -> Result<()>;
    /// Gives a claimed job back, due after `delay`, with why it failed.
    async fn retry(&self, kind: &str, claim: &JobClaim, delay: Duration, error: &str) -> Result<()>;
    /// Jobs of `kind` queued, claimed or not.
    async fn queued(&self, kind: &str) -> Result<u64>;
}

/// One job's state in [`LocalJobs`].
#[derive(Debug)]
struct Entry {
    generation: i64,
    due: Instant,
    claimed: bool,
}

/// The queue of a single gateway, in its memory: lost at a restart, which
/// queues its periodic work again at start anyway.
#[derive(Debug, Default)]
pub struct LocalJobs {
    jobs: Mutex<BTreeMap<(String, Vec<u8>), Entry>>,
}

impl LocalJobs {
    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, Vec<u8>), Entry>> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl JobQueue for LocalJobs {
    async fn enqueue(&self, kind: &str, keys: &[Vec<u8>]) -> Result<()> {
        let now = Instant::now();
        let mut jobs = self.jobs();
        for key in keys {
            let entry =
                jobs.entry((kind.to_owned(), key.clone())).or_insert(Entry { generation: 0, due: now, claimed: false });
            entry.generation += 1;
            if !entry.claimed {
                entry.due = now;
            }
        }
        Ok(())
    }

    async fn claim(&self, kind: &str, hold: Duration) -> Result<Option<JobClaim>> {
        let now = Instant::now();
        let mut jobs = self.jobs();
        let due =
            jobs.iter_mut().filter(|((k, _), entry)| k == kind && entry.due <= now).min_by_key(|(_, entry)| entry.due);
        Ok(due.map(|((_, key), entry)| {
            entry.claimed = true;
            entry.due = now + hold;
            JobClaim { key: key.clone(), generation: entry.generation }
        }))
    }

    async fn finish(&self, kind: &str, claim: &JobClaim) -> Result<()> {
        let mut jobs = self.jobs();
        let id = (kind.to_owned(), claim.key.clone());
        match jobs.get_mut(&id) {
            Some(entry) if entry.generation == claim.generation => drop(jobs.remove(&id)),
            Some(entry) => {
                entry.claimed = false;
                entry.due = Instant::now();
            }
            None => {}
        }
        Ok(())
    }

    /// The error is the caller's to log: one process, nobody else to tell.
    async fn retry(&self, kind: &str, claim: &JobClaim, delay: Duration, _error: &str) -> Result<()> {
        if let Some(entry) = self.jobs().get_mut(&(kind.to_owned(), claim.key.clone())) {
            entry.claimed = false;
            entry.due = Instant::now() + delay;
        }
        Ok(())
    }

    async fn queued(&self, kind: &str) -> Result<u64> {
        Ok(self.jobs().keys().filter(|(k, _)| k == kind).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(60);

    fn keys(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i]).collect()
    }

    #[tokio::test]
    async fn each_job_is_claimed_once_and_done_when_finished() {
        let q = LocalJobs::default();
        q.enqueue("repair", &keys(3)).await.unwrap();
        q.enqueue("other", &keys(1)).await.unwrap();
        let mut claimed = Vec::new();
        while let Some(claim) = q.claim("repair", HOLD).await.unwrap() {
            claimed.push(claim);
        }
        let mut got: Vec<Vec<u8>> = claimed.iter().map(|c| c.key.clone()).collect();
        got.sort();
        assert_eq!(got, keys(3), "each job once, none of another kind");
        assert_eq!(q.queued("repair").await.unwrap(), 3, "claimed jobs stay queued until finished");
        for claim in &claimed {
            q.finish("repair", claim).await.unwrap();
        }
        assert_eq!(q.queued("repair").await.unwrap(), 0);
        assert_eq!(q.queued("other").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_job_queued_again_while_claimed_runs_again() {
        let q = LocalJobs::default();
        q.enqueue("repair", &keys(1)).await.unwrap();
        let first = q.claim("repair", HOLD).await.unwrap().expect("due");
        q.enqueue("repair", &keys(1)).await.unwrap();
        assert_eq!(q.claim("repair", HOLD).await.unwrap(), None, "not twice at once");
        q.finish("repair", &first).await.unwrap();
        let second = q.claim("repair", HOLD).await.unwrap().expect("queued again, so due again");
        assert!(second.generation > first.generation);
        q.finish("repair", &second).await.unwrap();
        assert_eq!(q.queued("repair").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_lapsed_claim_comes_back_and_a_retry_waits() {
        let q = LocalJobs::default();
        q.enqueue("repair", &keys(1)).await.unwrap();
        let lapsing = q.claim("repair", Duration::ZERO).await.unwrap().expect("due");
        let again = q.claim("repair", HOLD).await.unwrap().expect("the claim lapsed");
        assert_eq!(again.key, lapsing.key);
        q.retry("repair", &again, HOLD, "target down").await.unwrap();
        assert_eq!(q.claim("repair", HOLD).await.unwrap(), None, "not due before its delay");
        assert_eq!(q.queued("repair").await.unwrap(), 1);
        q.enqueue("repair", &keys(1)).await.unwrap();
        assert!(q.claim("repair", HOLD).await.unwrap().is_some(), "queued again: due at once");
    }
}
