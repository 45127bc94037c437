//! The lifecycle worker: applies the buckets' lifecycle rules on a timer and
//! keeps what the last pass did for the admin API and the metrics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_admin::{LifecycleStatus, rfc3339};
use coffre_core::service::ObjectService;
use coffre_core::types::UnixNanos;

use crate::metrics::Metrics;

/// With many gateways on one database, one pass at a time: the gateway
/// holding this lease runs it, the others wait for their turn.
const LEASE: &str = "lifecycle";

pub async fn worker(
    service: Arc<ObjectService>,
    shared: Option<Arc<coffre_meta::PgMeta>>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<LifecycleStatus>>,
    interval: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    if let Ok(mut s) = status.lock() {
        s.interval_secs = interval.as_secs();
    }
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Some(pg) = &shared {
            // Held across passes (renewed at each), lapsing if this gateway dies.
            match pg.acquire_lease(LEASE, interval * 2 + Duration::from_secs(60)).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::debug!("another gateway holds the lifecycle lease");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not take the lifecycle lease; the next pass retries");
                    continue;
                }
            }
        }
        let started = Instant::now();
        let now = UnixNanos::now();
        if let Ok(mut s) = status.lock() {
            s.running = true;
            s.last_started = Some(rfc3339(now));
        }
        let result = service.apply_lifecycle(now).await;
        let finished = UnixNanos::now();
        if let Ok(report) = &result {
            metrics.lifecycle_pass(report, finished.as_secs());
            tracing::info!(?report, "lifecycle pass done");
        }
        if let Ok(mut s) = status.lock() {
            s.running = false;
            s.passes += 1;
            s.last_finished = Some(rfc3339(finished));
            s.last_duration_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
            match result {
                Ok(report) => {
                    s.totals.add(&report);
                    s.last_report = Some(report);
                    s.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lifecycle pass failed; the next one retries");
                    s.last_error = Some(e.to_string());
                }
            }
        }
    }
}
