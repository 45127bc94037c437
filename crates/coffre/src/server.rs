//! `coffre serve`: opens the data directory, wires engines into the object
//! service, and runs the S3 and admin listeners until SIGTERM or SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use coffre_admin::{AdminState, BearerToken};
use coffre_blob::DiskBlobStore;
use coffre_core::blob::BlobStore;
use coffre_core::jobs::{JobQueue, LocalJobs};
use coffre_core::meta::MetaStore;
use coffre_core::placement::PlacementStore;
use coffre_core::service::{ObjectService, ServiceConfig};
use coffre_core::types::Principal;
use coffre_core::witness::{ChangeWitness, NoAuditLog};
use coffre_meta::{EmbeddedMeta, PgMeta, PgOptions};
use coffre_node::FilePlacement;
use coffre_node::{ClusterTls, Identity, NodeClient, NodeServer, ReplicatedBlobStore};
use coffre_s3::{Front, FrontConfig, KeyStore};
use coffre_topology::TargetId;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin;
use crate::cluster::Cluster;
use crate::config::{Config, Metadata, Role};
use crate::credentials;
use crate::joining;
use crate::lifecycle;
use crate::metrics::Metrics;
use crate::tls::Tls;
use crate::trail::{Observers, Trail};

/// How often unreferenced blobs are looked for.
const GC_INTERVAL: Duration = Duration::from_secs(10);

pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    // The data dir holds secrets (root credentials, access-key secrets in the
    // metadata file) and object bytes: nobody but the server's user reads it.
    private(&config.data_dir, 0o700)?;
    if config.role == Role::Storage {
        return run_storage_node(config).await;
    }
    let (meta, shared) = open_meta(&config).await?;
    let (root, admin_token) = secrets(&config, shared.as_ref()).await?;
    let (blobs, cluster) = open_blobs(&config, shared.as_ref()).await?;
    // With storage targets, every byte goes to them: none inline on this disk.
    let inline_threshold = if cluster.is_some() { 0 } else { config.inline_threshold };
    let service_config = ServiceConfig {
        inline_threshold,
        gc_grace: config.gc_grace,
        list_max_rows: config.list_max_rows,
        block_public_access_by_default: config.block_public_access_by_default,
    };
    let kms = crate::kms::open(&config.kms, &config.data_dir).await?;
    let trail = open_trail(&config, shared.as_ref())?;
    if let Some(pg) = &shared {
        check_joining(&config, pg, &root, &kms, trail.as_deref()).await?;
    }
    let witness: Arc<dyn ChangeWitness> = match &trail {
        Some(trail) => trail.clone(),
        None => Arc::new(NoAuditLog),
    };
    let service = Arc::new(ObjectService::new(meta.clone(), blobs, kms, service_config, witness));
    let recovered = service.recover().await.context("collecting blobs of interrupted writes")?;
    if recovered > 0 {
        tracing::info!(blobs = recovered, "collected blobs left by interrupted writes");
    }

    let access_keys = coffre_core::access::AccessKeys::open(meta, service.kms().clone(), config.access_key_cache)
        .await
        .context("opening the access keys (their secrets are wrapped by the key custodian)")?;
    let keys = KeyStore::new(root.clone(), access_keys.clone());
    let metrics = Arc::new(Metrics::new());
    if let (Some(cluster), Some(trail)) = (&cluster, &trail) {
        record_target_health(cluster, trail.clone());
    }
    let front_customer_keys = config.tls.is_some() || config.sse_c_over_http;
    let front_config = FrontConfig {
        region: config.region.clone(),
        domains: config.domains.clone(),
        max_header_bytes: config.max_header_bytes,
        header_read_timeout: config.header_read_timeout,
        body_idle_timeout: config.body_idle_timeout,
        max_connections: config.max_connections,
        write_timeout: config.write_timeout,
        max_chunk_bytes: config.max_chunk_bytes,
        customer_keys_allowed: front_customer_keys,
        trusted_proxies: config.trusted_proxies.clone(),
        ..FrontConfig::default()
    };
    if config.tls.is_none() && config.sse_c_over_http {
        tracing::warn!("SSE-C keys are accepted over plain HTTP (sse_c_over_http): they cross the network in clear");
    }
    let observers = Arc::new(Observers { metrics: metrics.clone(), trail: trail.clone() });
    let front = Front::new(service.clone(), keys.clone(), front_config, observers).map_err(anyhow::Error::msg)?;
    let tls = Arc::new(Tls::setup(config.tls.as_ref())?);
    let lifecycle_status = Arc::new(std::sync::Mutex::new(coffre_admin::LifecycleStatus::default()));
    let metrics_for_lifecycle = metrics.clone();
    let running = crate::label::Running {
        labels: crate::label::Labels::new(&config, front_customer_keys),
        service: service.clone(),
        cluster: cluster.clone(),
        tls: tls.clone(),
        trail: trail.clone(),
        shared_audit: shared.as_ref().map(|pg| Arc::new(pg.audit_store()) as Arc<dyn coffre_audit::LogStore>),
        metrics: metrics.clone(),
    };
    let admin_state = AdminState {
        service: service.clone(),
        access_keys,
        root: Principal::key(root.access_key.clone(), true),
        auth: Arc::new(BearerToken::new(admin_token)),
        audit: trail.clone().map(|t| t as Arc<dyn coffre_admin::Audit>),
        metrics: Arc::new(move || metrics.render()),
        tls: {
            let tls = tls.clone();
            Arc::new(move || tls.report())
        },
        lifecycle: lifecycle_status.clone(),
        placement: cluster.clone().map(|c| c as Arc<dyn coffre_admin::Placement>),
        labels: Arc::new(running.clone()),
        gateways: shared.clone().map(|pg| Arc::new(admin::SharedGateways(pg)) as Arc<dyn coffre_admin::Gateways>),
        simulator: Arc::new(admin::Simulation(coffre_s3::PolicySimulator::new(
            service.clone(),
            root.access_key.clone(),
        ))),
    };

    let s3_listener =
        TcpListener::bind(config.s3_listen).await.with_context(|| format!("binding S3 on {}", config.s3_listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding admin API on {}", config.admin_listen))?;
    tracing::info!(s3 = %config.s3_listen, admin = %config.admin_listen, data_dir = %config.data_dir.display(), region = %config.region, "coffre is serving");

    if let Some(trail) = &trail {
        let mut start = trail.event("server:Start");
        let targets: Vec<String> = config.topology.targets().iter().map(|t| t.id.to_string()).collect();
        start.detail = Some(format!(
            "version={} custody={} tls={} s3={} admin={} targets={}",
            env!("CARGO_PKG_VERSION"),
            service.kms().custody(),
            if config.tls.is_some() { "on" } else { "off" },
            config.s3_listen,
            config.admin_listen,
            targets.join(",")
        ));
        trail.act(start).await.context("recording the start in the audit log")?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let reload_task = tls.reload_on_sighup(stopped(stop_rx.clone()))?;
    let s3_task =
        tokio::spawn(front.serve(s3_listener, tls.handshake(), stopped(stop_rx.clone()), config.shutdown_grace));
    let admin_task = tokio::spawn(admin::serve(
        "admin",
        admin_listener,
        coffre_admin::router(admin_state),
        tls.handshake(),
        config.conn_limits(),
        stopped(stop_rx.clone()),
        config.shutdown_grace,
    ));
    let gc_task = tokio::spawn(collect_garbage(service.clone(), stopped(stop_rx.clone())));
    let label_task = tokio::spawn(crate::label::run(running, stopped(stop_rx.clone())));
    let cluster_tasks = cluster.map(|cluster| {
        let probes = cluster.store.spawn_probes();
        (probes, tokio::spawn(cluster.run(stop_rx.clone())))
    });
    let audit_task = trail.clone().map(|trail| {
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { trail.log().run(Box::pin(stop)).await })
    });
    let refusals_task = trail.clone().zip(config.audit.as_ref()).map(|(trail, audit)| {
        let (stop, window) = (stopped(stop_rx.clone()), audit.refusal_window);
        tokio::spawn(async move { trail.tally_refusals(window, stop).await })
    });
    let lifecycle_task = tokio::spawn(lifecycle::worker(
        service,
        shared.clone(),
        metrics_for_lifecycle,
        lifecycle_status,
        config.lifecycle_interval,
        stopped(stop_rx),
    ));

    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    s3_task.await.context("S3 listener task")?.context("S3 listener")?;
    admin_task.await.context("admin task")?.context("admin listener")?;
    let _ = gc_task.await;
    let _ = label_task.await;
    if let Some((probes, repair)) = cluster_tasks {
        probes.abort();
        let _ = repair.await;
    }
    let _ = reload_task.await;
    let _ = lifecycle_task.await;
    if let Some(task) = refusals_task {
        let _ = task.await;
    }
    if let (Some(trail), Some(task)) = (trail, audit_task) {
        let _ = task.await;
        // Refusals answered while the front drained; synced with the stop.
        trail.flush_refusals();
        trail.act(trail.event("server:Stop")).await.context("recording the stop in the audit log")?;
        let head = trail.log().close().await.context("signing the last audit tree head")?;
        if let Some(head) = head {
            tracing::info!(head = head.head, events = head.size, root = %head.root, "audit log closed with a signed head");
        }
    }
    if let Some(pg) = &shared {
        // Last, once the audit log's final head is signed under its lease.
        if let Err(e) = pg.leave().await {
            tracing::warn!(error = %e, "could not leave the membership table; the others presume this gateway dead in 30 s");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Every target going down or coming back is an audit event (`node:Down`,
/// `node:Up`), as a declared loss is (`admin:DeclareTargetLost`).
fn record_target_health(cluster: &Cluster, trail: Arc<Trail>) {
    cluster.store.health().observe(Box::new(move |target, up| {
        let mut event = trail.event(if up { "node:Up" } else { "node:Down" });
        event.status = 200;
        event.detail = Some(format!("target={target}"));
        let trail = trail.clone();
        tokio::spawn(async move {
            if let Err(e) = trail.act(event).await {
                tracing::error!(error = %e, "a storage target's change could not be recorded in the audit log");
            }
        });
    }));
}

fn warn_fsync_off() {
    tracing::warn!(
        "FSYNC IS OFF (fsync = false): acknowledged writes live in the page cache only and a power cut LOSES \
         THEM; this setting exists for benchmarks and the power-cut tests' negative control"
    );
}

/// The metadata engine, and the shared database when it is one (many
/// gateways then coordinate through it: leases, membership, placement).
async fn open_meta(config: &Config) -> anyhow::Result<(Arc<dyn MetaStore>, Option<Arc<PgMeta>>)> {
    match &config.metadata {
        Metadata::Postgres { pool_size, .. } => {
            let options = crate::metadata::pg_options(config, &config.node_id)?.context("PostgreSQL metadata")?;
            let options = PgOptions { gateway_id: Some(gateway_id(&config.data_dir)?), ..options };
            let tls = options.tls.is_some();
            let pg = PgMeta::connect(&options).await.context("connecting to the PostgreSQL metadata database")?;
            tracing::info!(pool_size, tls, "metadata in PostgreSQL (schema up to date)");
            Ok((pg.clone(), Some(pg)))
        }
        Metadata::Embedded => {
            let meta_path = config.data_dir.join("meta.redb");
            let meta = if config.fsync {
                EmbeddedMeta::open(&meta_path)
            } else {
                warn_fsync_off();
                EmbeddedMeta::open_unsynced(&meta_path)
            };
            let meta = Arc::new(meta.context("opening metadata")?);
            private(&meta_path, 0o600)?;
            Ok((meta, None))
        }
    }
}

/// Root's credential and the admin token, each generated (and announced) on
/// first start; never a second root beside a shared database's.
async fn secrets(config: &Config, shared: Option<&Arc<PgMeta>>) -> anyhow::Result<(coffre_s3::Credential, String)> {
    let (root, root_created) = match credentials::from_env_or_file(&config.data_dir)? {
        Some(root) => (root, false),
        None => {
            if let Some(pg) = shared {
                joining::refuse_new_root(pg).await?;
            }
            (credentials::create_root(&config.data_dir)?, true)
        }
    };
    let (admin_token, token_created) = credentials::admin_token_or_create(&config.data_dir)?;
    let (new_root, new_token) = (root_created.then_some(&root), token_created.then_some(admin_token.as_str()));
    credentials::announce(&config.data_dir, new_root, new_token);
    Ok((root, admin_token))
}

/// Proves this gateway shares what the deployment on `pg` shares ([`joining`]).
async fn check_joining(
    config: &Config,
    pg: &PgMeta,
    root: &coffre_s3::Credential,
    kms: &Arc<dyn coffre_crypto::Kms>,
    trail: Option<&Trail>,
) -> anyhow::Result<()> {
    let audit_key = trail
        .zip(config.audit.as_ref())
        .map(|(trail, settings)| (trail.log().public_key().to_string(), settings.log.key_path.as_path()));
    let cluster_ca = config.cluster.identity.is_some().then(|| cluster_tls(config)).transpose()?.map(|t| t.ca_file());
    joining::check(pg, joining::Joining { root, kms, audit_key, cluster_ca }).await
}

/// This gateway's identity in the shared database, made on its first start
/// and kept in the data directory, so that a restarted gateway reclaims the
/// blobs its interrupted writes left at once.
fn gateway_id(data_dir: &std::path::Path) -> anyhow::Result<[u8; 16]> {
    let path = data_dir.join("gateway.id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = uuid::Uuid::parse_str(text.trim()).with_context(|| format!("{} is not a UUID", path.display()))?;
            Ok(id.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4();
            std::fs::write(&path, format!("{id}\n")).with_context(|| format!("writing {}", path.display()))?;
            Ok(id.into_bytes())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// This disk's blob store, with the fsync switch applied.
fn open_disk_blobs(config: &Config) -> anyhow::Result<DiskBlobStore> {
    let blobs = DiskBlobStore::open(config.data_dir.join("blobs")).context("opening blob directory")?;
    Ok(if config.fsync { blobs } else { blobs.unsynced() })
}

/// This process's cluster identity, from `[cluster] identity`, under the
/// server's TLS policy.
pub fn cluster_tls(config: &Config) -> anyhow::Result<Arc<ClusterTls>> {
    let dir = config.cluster.identity.as_ref().context("cluster.identity: required with storage nodes")?;
    let tls = ClusterTls::load(dir, Arc::new(crate::tls::provider()), crate::tls::VERSIONS)
        .with_context(|| format!("loading the cluster identity in {} ([cluster] identity)", dir.display()))?;
    Ok(Arc::new(tls))
}

/// A gateway's links to the storage nodes: its identity and the limits.
/// With no node among the targets (S3 services only), none is needed.
pub fn node_client(config: &Config) -> anyhow::Result<Option<NodeClient>> {
    if config.cluster.identity.is_none() {
        return Ok(None);
    }
    let tls = cluster_tls(config)?;
    let client = NodeClient::new(tls.clone(), config.cluster.limits).map_err(anyhow::Error::msg)?;
    tracing::info!(identity = %tls.identity(), ca = %tls.ca_file().display(), "node links: mutual TLS");
    Ok(Some(client))
}

/// Where the bytes go, and the cluster view when that is storage targets.
type Blobs = (Arc<dyn BlobStore>, Option<Arc<Cluster>>);

/// The blob store: this disk, or the declared storage targets (placement
/// recorded in the shared database when there is one, else in a file here).
async fn open_blobs(config: &Config, shared: Option<&Arc<PgMeta>>) -> anyhow::Result<Blobs> {
    if config.topology.is_empty() {
        return Ok((Arc::new(open_disk_blobs(config)?), None));
    }
    let client = node_client(config)?;
    let placement: Arc<dyn PlacementStore> = match shared {
        Some(pg) => Arc::new(pg.placement()),
        None => {
            let index = config.data_dir.join("placement.redb");
            let file = FilePlacement::open(&index).context("opening the placement index")?;
            private(&index, 0o600)?;
            Arc::new(file)
        }
    };
    let store = ReplicatedBlobStore::open(config.topology.clone(), config.default_residency.clone(), client, placement)
        .await
        .context("opening the placement index")?;
    tracing::info!(
        targets = config.topology.targets().len(),
        default_policy = ?config.default_residency,
        "data lives on the declared storage targets"
    );
    // Repair shards: in the shared queue when gateways share a database.
    let jobs: Arc<dyn JobQueue> = match shared {
        Some(pg) => Arc::new(pg.jobs()),
        None => Arc::new(LocalJobs::default()),
    };
    let cluster = Cluster::new(store.clone(), jobs, shared.cloned(), &config.cluster);
    Ok((store, Some(cluster)))
}

/// `--role storage`: the node API over this disk's blob store, nothing else.
async fn run_storage_node(config: Config) -> anyhow::Result<()> {
    let listen = config.node_listen.context("--node-listen: required with --role storage")?;
    let tls = cluster_tls(&config)?;
    let Identity::Node(name) = tls.identity() else {
        anyhow::bail!(
            "the cluster identity in {} names {}: a storage node needs a node certificate \
             (`coffre cluster issue --node TARGET_ID`)",
            config.cluster.identity.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
            tls.identity()
        );
    };
    if *name != config.node_id {
        anyhow::bail!(
            "--node-id is {} but this node's certificate names target {name}: gateways reach it as {name}",
            config.node_id
        );
    }
    let id = TargetId(config.node_id.clone());
    if !config.topology.is_empty() && config.topology.target(&id).is_none() {
        anyhow::bail!("--node-id: {id} is not a target of the topology");
    }
    let server_tls = tls.server_config().context("the node's TLS listener")?;
    let handshake = crate::tls::handshake(server_tls);
    if !config.fsync {
        warn_fsync_off();
    }
    let blobs = open_disk_blobs(&config)?;
    let router = NodeServer::new(Arc::new(blobs), config.node_id.clone()).router();
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding the node API on {listen}"))?;
    tracing::info!(node = %config.node_id, listen = %listen, data_dir = %config.data_dir.display(), ca = %tls.ca_file().display(), "storage node is serving (mutual TLS: gateways of the cluster only)");
    // The S3 front's connection loop: header guards against slow or huge heads,
    // TCP_NODELAY (a 4 KiB GET otherwise waits out the gateway's delayed ACK),
    // and in-flight requests finishing on SIGTERM.
    let limits = config.conn_limits();
    admin::serve("node", listener, router, Some(handshake), limits, wait_for_signal(), config.shutdown_grace)
        .await
        .context("node API")?;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the audit log, or says loudly that there is none. Gateways on a
/// shared database append to one log there, signed with the key
/// `[audit] signing_key` names (the same file for all of them).
fn open_trail(config: &Config, shared: Option<&Arc<PgMeta>>) -> anyhow::Result<Option<Arc<Trail>>> {
    let Some(settings) = &config.audit else {
        tracing::warn!(
            "THE AUDIT LOG IS OFF (audit.enabled = false): requests and administrative acts are not recorded"
        );
        return Ok(None);
    };
    let log: Arc<dyn coffre_audit::AuditTrail> = match shared {
        Some(pg) => {
            let signer = coffre_audit::Signer::load_or_create(&settings.log.key_path)
                .with_context(|| format!("opening the audit signing key {}", settings.log.key_path.display()))?;
            tracing::info!(public_key = %signer.public_key(), "audit log shared by the gateways, in the metadata database");
            // What the database refuses waits in this gateway's own directory.
            let spool = coffre_audit::Spool::open(&settings.log.dir)
                .with_context(|| format!("opening the audit spool in {}", settings.log.dir.display()))?;
            private(&settings.log.dir, 0o700)?;
            let store = Arc::new(pg.audit_store());
            Arc::new(coffre_audit::SharedLog::new(store, signer, settings.log.head_interval, spool))
        }
        None => {
            let log = coffre_audit::AuditLog::open(settings.log.clone())
                .with_context(|| format!("opening the audit log in {}", settings.log.dir.display()))?;
            private(&settings.log.dir, 0o700)?;
            tracing::info!(dir = %settings.log.dir.display(), events = log.size(), public_key = %log.public_key(), "audit log open");
            Arc::new(log)
        }
    };
    if let Some(dir) = settings.log.key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private(dir, 0o700)?;
    }
    Ok(Some(Arc::new(Trail::new(log, config.node_id.clone(), settings.reads))))
}

fn private(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {} to mode {mode:o}", path.display()))
}

async fn collect_garbage(service: Arc<ObjectService>, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(GC_INTERVAL) => {}
        }
        match service.collect_garbage().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(blobs = n, "collected unreferenced blobs"),
            Err(e) => tracing::warn!(error = %e, "garbage collection failed; will retry"),
        }
        // Key destructions the custodian refused before: every gateway
        // retries them (destroying twice is harmless) until one succeeds.
        match service.retry_kek_destroys().await {
            Ok((0, _)) => {}
            Ok((done, owed)) => tracing::info!(destroyed = done, still_owed = owed, "pending key destructions retried"),
            Err(e) => tracing::warn!(error = %e, "could not read the key destructions owed; will retry"),
        }
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
