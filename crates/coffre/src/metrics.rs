//! Prometheus metrics for the S3 API: requests by operation and status,
//! bytes in and out, and latency, rendered on the admin port's `/metrics`.

use std::sync::Mutex;

use coffre_s3::{RequestObserver, RequestRecord};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpStatus {
    operation: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Op {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Action {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LabelRule {
    profile: String,
    rule: String,
    outcome: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    lifecycle_actions: Family<Action, Counter>,
    lifecycle_last_run: Gauge,
    requests: Family<OpStatus, Counter>,
    bytes_in: Family<Op, Counter>,
    bytes_out: Family<Op, Counter>,
    latency: Family<Op, Histogram>,
    /// 1 for a rule's current outcome, 0 for the others it had.
    label_rules: Family<LabelRule, Gauge>,
}

/// Every outcome a rule can have, so a change zeroes the old one.
const OUTCOMES: [&str; 5] = ["PASS", "FAIL", "WARN", "N/A", "UNKNOWN"];

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("coffre_s3");
        let requests = Family::<OpStatus, Counter>::default();
        let bytes_in = Family::<Op, Counter>::default();
        let bytes_out = Family::<Op, Counter>::default();
        // 1 ms to ~65 s.
        let latency =
            Family::<Op, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 17)));
        registry.register("requests", "S3 requests by operation and HTTP status", requests.clone());
        registry.register("received_bytes", "Request body bytes received", bytes_in.clone());
        registry.register("sent_bytes", "Response body bytes sent", bytes_out.clone());
        registry.register("request_duration_seconds", "Time from request head to end of response", latency.clone());
        let lifecycle = registry.sub_registry_with_prefix("lifecycle");
        let lifecycle_actions = Family::<Action, Counter>::default();
        let lifecycle_last_run = Gauge::default();
        lifecycle.register(
            "actions",
            "Versions, markers and uploads removed by lifecycle rules",
            lifecycle_actions.clone(),
        );
        lifecycle.register(
            "last_run_timestamp_seconds",
            "When the last lifecycle pass finished",
            lifecycle_last_run.clone(),
        );
        let label_rules = Family::<LabelRule, Gauge>::default();
        registry.sub_registry_with_prefix("label").register(
            "rule_outcome",
            "The trust label's latest outcome of each rule of each profile (1 = current)",
            label_rules.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            label_rules,
            lifecycle_actions,
            lifecycle_last_run,
            requests,
            bytes_in,
            bytes_out,
            latency,
        }
    }

    pub fn lifecycle_pass(&self, r: &coffre_core::lifecycle::Report, finished_unix: i64) {
        for (action, n) in [
            ("expired", r.expired),
            ("noncurrent_removed", r.noncurrent_removed),
            ("markers_removed", r.markers_removed),
            ("uploads_aborted", r.uploads_aborted),
            ("kept_by_lock", r.kept_by_lock),
        ] {
            self.lifecycle_actions.get_or_create(&Action { action }).inc_by(n);
        }
        self.lifecycle_last_run.set(finished_unix);
    }

    /// Records one rule's latest outcome.
    pub fn label_rule(&self, profile: &str, rule: &str, outcome: &str) {
        for o in OUTCOMES {
            let labels = LabelRule { profile: profile.to_owned(), rule: rule.to_owned(), outcome: o.to_owned() };
            self.label_rules.get_or_create(&labels).set(i64::from(o == outcome));
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, r: &RequestRecord) {
        let op = Op { operation: r.operation.clone() };
        self.requests.get_or_create(&OpStatus { operation: r.operation.clone(), status: r.status }).inc();
        self.bytes_in.get_or_create(&op).inc_by(r.bytes_in);
        self.bytes_out.get_or_create(&op).inc_by(r.bytes_out);
        self.latency.get_or_create(&op).observe(r.duration.as_secs_f64());
    }
}
