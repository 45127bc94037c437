//! The trust label of a deployment: facts observed from the system (running,
//! or a stopped server's files) next to those declared in the config,
//! evaluated against the trust profiles.
//!
//! Reports are signed with the deployment's Ed25519 key (the audit log's), so
//! `coffre audit public-key` is also the key that checks a report offline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use coffre_admin::LabelError;
use coffre_core::meta::MetaStore;
use coffre_core::placement::PlacementStore;
use coffre_label::{
    DeclaredFacts, Facts, ObservedBucket, ObservedFacts, ObservedListener, ObservedReplica, ObservedTarget, Report,
};
use coffre_node::ReplicatedBlobStore;
use coffre_topology::{ResidencyPolicy, Topology};
use tokio::sync::Notify;

use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::tls::Tls;
use crate::trail::Trail;

/// Blobs read from the placement index per step while observing replicas.
const PAGE: usize = 1024;

/// What the label needs besides the running server: the declared facts and
/// where the audit log and its key are.
pub struct Labels {
    declared: Arc<DeclaredFacts>,
    topology: Arc<Topology>,
    deployment: String,
    /// `None`: the audit log is off; reports cannot be signed.
    audit: Option<AuditPlace>,
    sse_c_offered: bool,
    interval: Duration,
    profiles: Vec<coffre_label::Profile>,
    latest: Mutex<BTreeMap<String, Report>>,
    /// Re-evaluate now (a topology or policy change).
    wake: Notify,
}

/// Where observed facts are read: the running server's own parts, or the
/// same opened from a stopped server's data directory (`--offline`).
pub struct Sources {
    pub meta: Arc<dyn coffre_core::meta::MetaStore>,
    /// `None`: no storage targets, the data is on the server's disk.
    pub store: Option<Arc<ReplicatedBlobStore>>,
    pub custody: String,
    pub tls: coffre_admin::TlsReport,
    /// `None`: the audit log is off.
    pub audit_key: Option<coffre_audit::PublicKey>,
    /// The log the gateways share in the database, when they do.
    pub shared_audit: Option<Arc<dyn coffre_audit::LogStore>>,
}

/// The running server, as the label observes it and reports its changes.
#[derive(Clone)]
pub struct Running {
    pub labels: Arc<Labels>,
    pub service: Arc<coffre_core::service::ObjectService>,
    /// Present when the data lives on storage targets.
    pub cluster: Option<Arc<Cluster>>,
    pub tls: Arc<Tls>,
    pub trail: Option<Arc<Trail>>,
    /// The audit log the gateways of a PostgreSQL deployment share.
    pub shared_audit: Option<Arc<dyn coffre_audit::LogStore>>,
    pub metrics: Arc<Metrics>,
}

impl Sources {
    pub fn of(running: &Running) -> Self {
        Self {
            meta: running.service.meta().clone(),
            store: running.cluster.as_ref().map(|c| c.store.clone()),
            custody: running.service.kms().custody().to_string(),
            tls: running.tls.report(),
            audit_key: running.trail.as_ref().map(|t| t.log().public_key()),
            shared_audit: running.shared_audit.clone(),
        }
    }
}

pub struct AuditPlace {
    pub dir: PathBuf,
    pub key_path: PathBuf,
    pub retention_days: u64,
}

impl Labels {
    pub fn new(config: &crate::config::Config, sse_c_offered: bool) -> Arc<Self> {
        let audit = config.audit.as_ref().map(|a| AuditPlace {
            dir: a.log.dir.clone(),
            key_path: a.log.key_path.clone(),
            retention_days: a.log.retention.as_secs() / 86_400,
        });
        Arc::new(Self {
            declared: config.declared.clone(),
            topology: config.topology.clone(),
            deployment: config.node_id.clone(),
            audit,
            sse_c_offered,
            interval: config.label_interval,
            profiles: config.profiles.clone(),
            latest: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
        })
    }

    /// A profile by id or alias: built in, or from `label_profiles`.
    pub fn profile(&self, name: &str) -> Option<&coffre_label::Profile> {
        self.profiles.iter().find(|p| p.id == name || p.aliases.iter().any(|a| a == name))
    }

    /// Evaluates `profile` against the system as it is now.
    pub async fn evaluate(&self, sources: &Sources, profile: &coffre_label::Profile) -> anyhow::Result<Report> {
        let observed = self.observe(sources).await?;
        let facts = Facts { declared: (*self.declared).clone(), observed, topology: (*self.topology).clone() };
        Ok(coffre_label::evaluate(profile, &facts, time::OffsetDateTime::now_utc(), &self.deployment))
    }

    /// The signed report file (JSON with a detached JWS).
    pub fn sign(&self, report: &Report) -> anyhow::Result<String> {
        let audit = self.audit.as_ref().context("the audit log is off, and with it the deployment's signing key")?;
        let key = std::fs::read(&audit.key_path)
            .with_context(|| format!("reading the signing key {}", audit.key_path.display()))?;
        coffre_label::sign(report, &key).context("signing the report")
    }

    async fn observe(&self, sources: &Sources) -> anyhow::Result<ObservedFacts> {
        let buckets = sources.meta.buckets().await.context("listing buckets")?;
        let (objects_total, objects_encrypted) = count_data_keys(sources.meta.as_ref(), &buckets).await?;
        Ok(ObservedFacts {
            targets: self.targets(),
            buckets: self.buckets(sources, &buckets),
            replicas: self.replicas(sources).await?,
            objects_total,
            objects_encrypted,
            encryption_algorithm: "AES-256-GCM".into(),
            kms_custody: sources.custody.clone(),
            listeners: listeners(&sources.tls),
            audit_log_verifies: self.audit_verifies(sources).await,
            audit_retention_days: self.audit.as_ref().map(|a| a.retention_days),
            sse_c_offered: self.sse_c_offered,
        })
    }

    fn targets(&self) -> Vec<ObservedTarget> {
        self.topology
            .targets()
            .iter()
            .map(|t| ObservedTarget {
                id: t.id.to_string(),
                country: t.country.to_string(),
                region: t.region.clone(),
                site: t.site.clone(),
                operator: t.operator.to_string(),
            })
            .collect()
    }

    /// Each bucket's allowed countries (its policy, else the deployment's
    /// default) and whether its key is its own.
    fn buckets(&self, sources: &Sources, records: &[coffre_core::meta::BucketRecord]) -> Vec<ObservedBucket> {
        let default = sources.store.as_ref().map(|s| s.default_policy().clone());
        let mut kek_owners: BTreeMap<&str, usize> = BTreeMap::new();
        for kek in records.iter().flat_map(|b| &b.keks) {
            *kek_owners.entry(kek.id.as_str()).or_default() += 1;
        }
        records
            .iter()
            .map(|b| {
                let policy = b.residency.clone().or_else(|| default.clone());
                ObservedBucket {
                    name: b.name.as_str().to_owned(),
                    allowed_countries: policy.and_then(|p| self.allowed_countries(&p)),
                    has_own_key: !b.keks.is_empty() && b.keks.iter().all(|k| kek_owners[k.id.as_str()] == 1),
                }
            })
            .collect()
    }

    /// `None` for a policy that allows anywhere.
    fn allowed_countries(&self, policy: &ResidencyPolicy) -> Option<Vec<String>> {
        if policy.allow.is_empty() {
            return None;
        }
        let mut countries: Vec<String> = policy
            .allow
            .iter()
            .filter_map(|name| self.topology.jurisdiction(name))
            .flatten()
            .map(ToString::to_string)
            .collect();
        countries.sort();
        countries.dedup();
        Some(countries)
    }

    /// Every replica the placement index records, with its target's country.
    async fn replicas(&self, sources: &Sources) -> anyhow::Result<Vec<ObservedReplica>> {
        let Some(store) = &sources.store else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = store.replicas_page(after, PAGE).await.context("reading the placement index")?;
            let Some((last, _)) = page.last() else { return Ok(out) };
            after = Some(*last);
            for (_, replicas) in page {
                for target in &replicas.targets {
                    let declared = self.topology.target(&coffre_topology::TargetId(target.clone()));
                    out.push(ObservedReplica {
                        bucket: replicas.bucket.clone(),
                        key: replicas.key.clone(),
                        target: target.clone(),
                        country: declared.map(|t| t.country.to_string()).unwrap_or_default(),
                    });
                }
            }
        }
    }

    /// Whether the whole audit log verifies now under its public key. The log
    /// is live: a read can land in the middle of an append and see half a
    /// line, so a failure is checked once more before it counts.
    async fn audit_verifies(&self, sources: &Sources) -> Option<bool> {
        let (audit, public_key) = (self.audit.as_ref()?, sources.audit_key.as_ref()?);
        if let Some(store) = &sources.shared_audit {
            return Some(shared_audit_verifies(store.as_ref(), public_key).await);
        }
        for attempt in 0..2 {
            let (dir, key) = (audit.dir.clone(), public_key.clone());
            let checked = tokio::task::spawn_blocking(move || {
                coffre_audit::verify::verify(&coffre_audit::store::LogDir::new(dir), &key).map(drop)
            })
            .await;
            if matches!(checked, Ok(Ok(()))) {
                return Some(true);
            }
            if attempt == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Some(false)
    }
}

/// The shared log, exported to a scratch directory and verified there as an
/// auditor would.
async fn shared_audit_verifies(store: &dyn coffre_audit::LogStore, key: &coffre_audit::PublicKey) -> bool {
    let Ok(scratch) = tempfile::tempdir() else { return false };
    if let Err(e) = coffre_audit::shared::export(store, scratch.path()).await {
        tracing::warn!(error = %e, "exporting the shared audit log for the label failed");
        return false;
    }
    let (dir, key) = (scratch.path().to_path_buf(), key.clone());
    let checked = tokio::task::spawn_blocking(move || {
        coffre_audit::verify::verify(&coffre_audit::store::LogDir::new(dir), &key).map(drop)
    })
    .await;
    matches!(checked, Ok(Ok(())))
}

/// Data keys in the metadata, and how many of them a KEK of their bucket wraps.
async fn count_data_keys(
    meta: &dyn coffre_core::meta::MetaStore,
    buckets: &[coffre_core::meta::BucketRecord],
) -> anyhow::Result<(u64, u64)> {
    let (mut total, mut wrapped) = (0u64, 0u64);
    for bucket in buckets {
        let mut cursor = None;
        loop {
            let (slots, next) = meta
                .sealed_keys(&bucket.name, u32::MAX, cursor, PAGE)
                .await
                .with_context(|| format!("reading the data keys of {}", bucket.name.as_str()))?;
            total += slots.len() as u64;
            wrapped += slots.iter().filter(|s| bucket.kek(s.key.kek_generation).is_some()).count() as u64;
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok((total, wrapped))
}

fn listeners(report: &coffre_admin::TlsReport) -> Vec<ObservedListener> {
    [("s3", &report.s3), ("admin", &report.admin)]
        .into_iter()
        .map(|(name, l)| ObservedListener {
            name: name.into(),
            tls: l.enabled,
            versions: l.protocol_versions.clone(),
            suites: l.cipher_suites.clone(),
            groups: l.key_exchange_groups.clone(),
        })
        .collect()
}

/// Re-evaluates every profile at start, every interval and when
/// woken; a rule whose outcome changed is an audit event, every outcome a metric.
pub async fn run(running: Running, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let labels = &running.labels;
    loop {
        for profile in &labels.profiles {
            match labels.evaluate(&Sources::of(&running), profile).await {
                Ok(report) => labels.record(&running, report).await,
                Err(e) => {
                    tracing::warn!(profile = %profile.id, error = %format!("{e:#}"), "the trust label could not be evaluated")
                }
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = labels.wake.notified() => {}
            () = tokio::time::sleep(labels.interval) => {}
        }
    }
}

impl Labels {
    async fn record(&self, running: &Running, report: Report) {
        let previous =
            self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&report.profile).cloned();
        for rule in &report.outcomes {
            let outcome = rule.outcome.as_str();
            running.metrics.label_rule(&report.profile, &rule.id, outcome);
            let before = previous.as_ref().and_then(|p| p.outcomes.iter().find(|r| r.id == rule.id));
            let changed = before.map(|b| b.outcome.as_str()).filter(|b| *b != outcome);
            if let (Some(before), Some(trail)) = (changed, &running.trail) {
                let mut event = trail.event("label:RuleChanged");
                event.status = 200;
                event.detail = Some(format!("profile={} rule={} from={before} to={outcome}", report.profile, rule.id));
                if let Err(e) = trail.act(event).await {
                    tracing::error!(error = %e, "a trust-label change could not be recorded in the audit log");
                }
            }
        }
        self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(report.profile.clone(), report);
    }
}

/// The admin API's label: a fresh evaluation of the running server, the
/// signed file, and what the background evaluations found.
#[async_trait::async_trait]
impl coffre_admin::Labels for Running {
    async fn evaluate(&self, profile: &str) -> Result<Report, LabelError> {
        let labels = &self.labels;
        let found = labels.profile(profile).ok_or_else(|| {
            let known: Vec<&str> = labels.profiles.iter().map(|p| p.id.as_str()).collect();
            LabelError::NoSuchProfile(format!(
                "no profile {profile:?}; known: {} (and the alias cloud-de-confiance)",
                known.join(", ")
            ))
        })?;
        labels.evaluate(&Sources::of(self), found).await.map_err(|e| LabelError::Failed(format!("{e:#}")))
    }

    fn sign(&self, report: &Report) -> Result<String, LabelError> {
        self.labels.sign(report).map_err(|e| LabelError::CannotSign(format!("{e:#}")))
    }

    fn latest(&self) -> Vec<Report> {
        self.labels.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }

    fn wake(&self) {
        self.labels.wake.notify_one();
    }
}

/// `coffre label evaluate --offline`: the same evaluation from a stopped
/// server's config and data directory (its files are locked while it runs).
pub async fn evaluate_offline(args: &crate::config::ServeArgs, profile: &str, format: &str) -> anyhow::Result<String> {
    let config = crate::config::Config::load(args)?;
    type Shared = (Option<Arc<dyn PlacementStore>>, Option<Arc<dyn coffre_audit::LogStore>>);
    let (meta, (placement, shared_audit)): (Arc<dyn MetaStore>, Shared) = match &config.metadata {
        // The shared database: the same rows the running gateways read.
        crate::config::Metadata::Postgres { .. } => {
            let options = crate::metadata::pg_options(&config, "label-offline")?.context("PostgreSQL metadata")?;
            let pg = coffre_meta::PgMeta::connect(&options).await.context("connecting to the metadata database")?;
            (pg.clone(), (Some(Arc::new(pg.placement())), Some(Arc::new(pg.audit_store()))))
        }
        crate::config::Metadata::Embedded => {
            let meta_path = config.data_dir.join("meta.redb");
            anyhow::ensure!(meta_path.exists(), "{} holds no Coffre metadata", config.data_dir.display());
            let meta = coffre_meta::EmbeddedMeta::open(&meta_path).with_context(|| {
                format!("opening {} (stop the server, or evaluate through --endpoint)", meta_path.display())
            })?;
            (Arc::new(meta), (None, None))
        }
    };
    let store = if config.topology.is_empty() {
        None
    } else {
        let client = crate::server::node_client(&config)?;
        let placement = match placement {
            Some(shared) => shared,
            None => Arc::new(coffre_node::FilePlacement::open(&config.data_dir.join("placement.redb"))?),
        };
        Some(
            ReplicatedBlobStore::open(config.topology.clone(), config.default_residency.clone(), client, placement)
                .await?,
        )
    };
    let audit_key = match &config.audit {
        Some(audit) => Some(coffre_audit::Signer::load(&audit.log.key_path)?.public_key()),
        None => None,
    };
    let sources = Sources {
        meta,
        store,
        custody: crate::kms::custody_name(&config.kms).to_owned(),
        tls: crate::tls::Tls::setup(config.tls.as_ref())?.report(),
        audit_key,
        shared_audit,
    };
    let labels = Labels::new(&config, config.tls.is_some() || config.sse_c_over_http);
    let profile = labels.profile(profile).with_context(|| format!("no profile {profile:?}"))?;
    let report = labels.evaluate(&sources, profile).await?;
    match format {
        "json" => labels.sign(&report),
        "text" => Ok(report.to_text()),
        "html" => Ok(report.to_html()),
        other => anyhow::bail!("--format {other:?}: json, text or html"),
    }
}
