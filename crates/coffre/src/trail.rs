//! This server's audit trail: S3 requests, administrative acts and every
//! change the object service is about to commit become audit events, each
//! with the durability it needs (changes before they commit, mutations and
//! admin acts before they are answered; reads batched, unless configured
//! sync).

use std::sync::Arc;
use std::time::Duration;

use coffre_audit::{AuditTrail, Durability, Event};
use coffre_core::witness::{Actor, Change, ChangeWitness};
use coffre_s3::front::Settled;
use coffre_s3::{RequestObserver, RequestRecord};

use crate::metrics::Metrics;
use crate::refusals::{Refusals, is_unauthenticated_refusal};

pub struct Trail {
    /// This server's own log, or the one the gateways of a database share.
    log: Arc<dyn AuditTrail>,
    node: String,
    reads: Durability,
    /// Refused unauthenticated requests of the current window.
    refusals: Refusals,
}

impl Trail {
    pub fn new(log: Arc<dyn AuditTrail>, node: String, reads: Durability) -> Self {
        Self { log, node, reads, refusals: Refusals::default() }
    }

    /// Writes the refusal tallies every `window` until `stop` (the server
    /// flushes the last window itself, once the front has drained).
    pub async fn tally_refusals(&self, window: Duration, stop: impl Future<Output = ()>) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + window, window);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush_refusals(),
                () = &mut stop => return,
            }
        }
    }

    /// One event per tally, batched: a window's worth is one group of appends.
    /// Tallies the log does not take count in the next window until it does.
    pub fn flush_refusals(&self) {
        let mut tallies = self.refusals.drain().into_iter();
        while let Some(tally) = tallies.next() {
            if let Err(e) = self.log.append_batched(tally.event(&self.node)) {
                tracing::error!(error = %e, "refusal tallies could not be recorded in the audit log: kept for the next window");
                self.refusals.restore(std::iter::once(tally).chain(tallies));
                return;
            }
        }
    }

    pub fn log(&self) -> &Arc<dyn AuditTrail> {
        &self.log
    }

    /// An event of this node, now.
    pub fn event(&self, operation: &str) -> Event {
        Event::now(&self.node, operation)
    }

    /// Records an administrative act, durably.
    pub async fn act(&self, event: Event) -> Result<(), coffre_audit::AuditError> {
        self.log.append(event, Durability::Sync).await
    }

    /// Whether the request is recorded before its answer (else after its body).
    fn before_answer(&self, r: &RequestRecord) -> bool {
        r.mutating || self.reads == Durability::Sync
    }

    fn request_event(&self, r: &RequestRecord) -> Event {
        Event {
            request_id: r.request_id.clone(),
            principal: r.principal.clone(),
            claimed: r.claimed.clone(),
            source: Some(r.source.to_string()),
            bucket: r.bucket.clone(),
            key: r.key.clone(),
            version: r.version.clone(),
            status: r.status,
            error: r.error.clone(),
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            detail: match (&r.denied_because, r.inferred) {
                (Some(why), _) => Some(why.clone()),
                (None, true) => Some("operation read from the request: refused before routing".to_owned()),
                (None, false) => None,
            },
            ..self.event(&r.operation)
        }
    }
}

/// The object service's changes, written ahead of their commit and synced
/// (the log's group commit makes concurrent changes share one fsync).
#[async_trait::async_trait]
impl ChangeWitness for Trail {
    async fn witness(&self, change: Change) -> Result<(), coffre_core::Error> {
        let (principal, detail) = match change.actor {
            Actor::Principal(key) => (Some(key), change.detail),
            Actor::Job { name, on } => {
                let job = format!("job={name} {on}");
                let detail = match change.detail {
                    Some(d) => format!("{job} {d}"),
                    None => job,
                };
                (None, Some(detail))
            }
        };
        let event = Event {
            request_id: change.request_id.unwrap_or_default(),
            principal,
            bucket: change.bucket,
            key: change.key,
            version: change.version,
            detail,
            ..self.event(&change.operation)
        };
        self.log.append(event, Durability::Sync).await.map_err(|e| coffre_core::Error::AuditUnavailable(e.to_string()))
    }
}

/// The admin API records its acts and reads the log through the same trail.
#[async_trait::async_trait]
impl coffre_admin::Audit for Trail {
    fn event(&self, operation: &str) -> Event {
        Trail::event(self, operation)
    }

    async fn act(&self, event: Event) -> Result<(), coffre_audit::AuditError> {
        Trail::act(self, event).await
    }

    fn log(&self) -> &Arc<dyn AuditTrail> {
        Trail::log(self)
    }
}

/// The front's one observer: metrics for every request, and the audit trail
/// when it is on.
pub struct Observers {
    pub metrics: Arc<Metrics>,
    pub trail: Option<Arc<Trail>>,
}

impl RequestObserver for Observers {
    fn before_response<'a>(&'a self, record: &'a RequestRecord) -> Settled<'a> {
        Box::pin(async move {
            match &self.trail {
                // Counted once answered (`observe`): a refusal never waits on the log.
                Some(_) if is_unauthenticated_refusal(record) => Ok(()),
                Some(trail) if trail.before_answer(record) => trail
                    .log
                    .append(trail.request_event(record), Durability::Sync)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        })
    }

    fn observe(&self, record: &RequestRecord) {
        self.metrics.observe(record);
        if let Some(trail) = &self.trail
            && is_unauthenticated_refusal(record)
        {
            trail.refusals.count(record);
        } else if let Some(trail) = &self.trail
            && !trail.before_answer(record)
            && let Err(e) = trail.log.append_batched(trail.request_event(record))
        {
            tracing::error!(request_id = %record.request_id, error = %e, "a read could not be recorded in the audit log");
        }
    }
}
