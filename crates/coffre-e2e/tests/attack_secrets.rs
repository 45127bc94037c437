//! Attacks on the server's own secrets and on a deployment's coherence, each
//! against a running `coffre`: a generated root secret looked for in its log,
//! root's S3 secret tried on the admin API, short secrets given at startup,
//! gateways joining a shared database with what they should share missing,
//! and what a client is told while a component is down.
//! The shared-database attacks need PostgreSQL (`COFFRE_TEST_PG`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use tokio::sync::{RwLock, RwLockReadGuard};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use coffre_e2e::deployment::Deployment;
use coffre_e2e::node::ClusterCa;
use coffre_e2e::objects::{get, put};
use coffre_e2e::{ADMIN_TOKEN, ROOT_ACCESS, ROOT_SECRET, Server, coffre_bin, pg_start, pg_stop, raw_request};

/// The harness's own secrets withdrawn, so that the server makes its own.
const NO_GIVEN_SECRETS: [(&str, &str); 3] =
    [("COFFRE_ROOT_ACCESS_KEY", ""), ("COFFRE_ROOT_SECRET_KEY", ""), ("COFFRE_ADMIN_TOKEN", "")];

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The secret in the generated `root.credentials`.
fn stored_root_secret(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.join("root.credentials")).expect("root.credentials");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["secret_access_key"].as_str().expect("secret").to_owned()
}

fn stored_admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token")).expect("admin.token").trim().to_owned()
}

/// A server whose stdout is not a terminal (the harness sends it to a file,
/// as journald or a container runtime would) never writes a generated secret
/// there: the log names the 0600 files instead.
#[test]
fn a_generated_root_secret_reaches_no_log_and_no_pipe() {
    let _shared = sharing_the_cluster();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut server = Server::start_with(&dir, &NO_GIVEN_SECRETS);
    server.stop();
    let log = server.log();
    assert!(!log.contains(&stored_root_secret(&dir)), "the root secret is in the server's output:\n{log}");
    assert!(!log.contains(&stored_admin_token(&dir)), "the admin token is in the server's output:\n{log}");
    assert_eq!((mode(&dir.join("root.credentials")), mode(&dir.join("admin.token"))), (0o600, 0o600));
    for file in ["root.credentials", "admin.token"] {
        assert!(
            log.lines().any(|l| l.contains(file) && l.contains("not shown because stdout is not a terminal")),
            "the log does not say where the {file} went:\n{log}"
        );
    }
}

/// On a terminal (a pseudo-terminal from `script`), the first start shows
/// the generated credentials, so `coffre serve` on a fresh machine still
/// tells its operator how to connect.
#[test]
fn on_a_terminal_the_generated_credentials_are_shown() {
    let _shared = sharing_the_cluster();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let serve = format!(
        "exec timeout -s TERM 5 {} serve --data-dir {} --s3-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0",
        coffre_bin().display(),
        dir.display()
    );
    let out = Command::new("script")
        .args(["-qec", &serve, "/dev/null"])
        .envs(NO_GIVEN_SECRETS)
        .env("COFFRE_LOG", "info")
        .env_remove("COFFRE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(&format!("secret key: {}", stored_root_secret(&dir))), "{shown}");
    assert!(shown.contains(&stored_admin_token(&dir)), "{shown}");
}

fn admin_status(server: &Server, token: &str) -> u16 {
    let request = format!(
        "GET /admin/v1/keys HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        server.admin
    );
    raw_request(server.admin, request.as_bytes()).expect("admin answer").0
}

/// `coffre key list` against `server`, with only `env` as its credentials.
fn key_list(server: &Server, data_dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(coffre_bin())
        .args(["key", "list", "--endpoint", &format!("http://{}", server.admin), "--data-dir"])
        .arg(data_dir)
        .env_remove("COFFRE_ADMIN_TOKEN")
        .env_remove("COFFRE_ROOT_ACCESS_KEY")
        .env_remove("COFFRE_ROOT_SECRET_KEY")
        .envs(env.iter().copied())
        .output()
        .expect("coffre key list")
}

/// Root's S3 secret (in every S3 client's configuration) does not open the
/// admin API; the admin token does, from the environment or from its file.
#[test]
fn the_root_secret_does_not_open_the_admin_api() {
    let _shared = sharing_the_cluster();
    let server = Server::start();
    assert_eq!(admin_status(&server, &format!("{ROOT_ACCESS}:{ROOT_SECRET}")), 401, "root's pair opened the admin API");
    assert_eq!(admin_status(&server, ROOT_SECRET), 401);
    assert_eq!(admin_status(&server, ADMIN_TOKEN), 200);

    let elsewhere = tempfile::tempdir().expect("tempdir");
    let root_only = [("COFFRE_ROOT_ACCESS_KEY", ROOT_ACCESS), ("COFFRE_ROOT_SECRET_KEY", ROOT_SECRET)];
    let refused = key_list(&server, elsewhere.path(), &root_only);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("COFFRE_ADMIN_TOKEN"), "{stderr}");
    assert!(key_list(&server, elsewhere.path(), &[("COFFRE_ADMIN_TOKEN", ADMIN_TOKEN)]).status.success());

    // A server given no token makes one; the CLI beside its data dir reads it.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let own = Server::start_with(&dir, &[("COFFRE_ADMIN_TOKEN", "")]);
    assert_eq!(admin_status(&own, ADMIN_TOKEN), 401, "the harness's token opened a server that has its own");
    assert_eq!(admin_status(&own, &stored_admin_token(&dir)), 200);
    let listed = key_list(&own, &dir, &[]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
}

/// Every secret given at startup under 32 characters stops the server with
/// an error naming the setting, never the secret.
#[test]
fn secrets_under_32_characters_are_refused_at_startup() {
    let _shared = sharing_the_cluster();
    let short = "thirty-one-characters-long-0000";
    assert_eq!(short.len(), 31);
    let mut settings = vec!["COFFRE_ROOT_SECRET_KEY", "COFFRE_ADMIN_TOKEN"];
    if coffre_e2e::custody() == "embedded" {
        settings.push("COFFRE_KMS_PASSPHRASE");
    }
    for setting in settings {
        let tmp = tempfile::tempdir().expect("tempdir");
        let started = Server::try_start_with(&tmp.path().join("data"), &[(setting, short)]);
        let log = match started {
            Ok(_) => panic!("a {} character {setting} was accepted", short.len()),
            Err(log) => log,
        };
        assert!(log.contains(&format!("{setting}: a secret must be at least 32 characters")), "{log}");
        assert!(!log.contains(short), "the refused secret is in the log:\n{log}");
    }
}

/// Starts a gateway named `name` on the deployment's database with the
/// config `text` and the environment `env` over the harness's own: its log,
/// or the server when it came up.
fn join(d: &Deployment, name: &str, identity: &Path, text: &str, env: &[(&str, &str)]) -> Result<Server, String> {
    let dir = d.config().parent().expect("the deployment's directory").join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.with_extension("toml");
    std::fs::write(&config, text).expect("config");
    let config = config.to_str().expect("utf-8");
    let identity = identity.to_str().expect("utf-8");
    let mut all = vec![
        ("COFFRE_CONFIG", config),
        ("COFFRE_ROLE", "gateway"),
        ("COFFRE_NODE_ID", name),
        ("COFFRE_CLUSTER_IDENTITY", identity),
    ];
    all.extend_from_slice(env);
    Server::try_start_with(&dir.join("data"), &all)
}

/// What a refused start said, or a panic naming the attack that got in.
fn refused(attack: &str, started: Result<Server, String>) -> String {
    match started {
        Ok(_) => panic!("{attack}: the gateway started on the shared database"),
        Err(log) => log,
    }
}

/// A gateway that does not share the deployment's custodian, audit signing
/// key, root credential or cluster CA does not start on its database, and
/// says what differs and what to copy; one that shares all of them joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_does_not_share_the_deployment_refuses_to_start() {
    let _shared = PG_CLUSTER.read().await;
    let Some(d) = Deployment::start(1) else { return };
    let shared_dir = d.config().parent().expect("dir").to_path_buf();
    let text = std::fs::read_to_string(d.config()).expect("config");
    let identity = d.ca.gateway("gw-new");

    let kms = format!("dir = \"{}\"", shared_dir.join("kms").display());
    assert!(text.contains(&kms), "{text}");
    let own_kms = text.replace(&kms, &format!("dir = \"{}\"", shared_dir.join("own-kms").display()));
    let log = refused("its own key directory", join(&d, "gw-kms", &identity, &own_kms, &[]));
    assert!(
        log.contains("key custodian (embedded) does not hold the deployment's keys") && log.contains("[kms] dir"),
        "{log}"
    );

    let key = d.audit_key().display().to_string();
    let own_key = text.replace(&key, &shared_dir.join("own-audit").join("key.pk8").display().to_string());
    let log = refused("its own audit signing key", join(&d, "gw-audit", &identity, &own_key, &[]));
    assert!(log.contains("the audit signing key") && log.contains("copy the deployment's signing key file"), "{log}");

    let no_root = [("COFFRE_ROOT_ACCESS_KEY", ""), ("COFFRE_ROOT_SECRET_KEY", "")];
    let log = refused("no root credential", join(&d, "gw-noroot", &identity, &text, &no_root));
    assert!(log.contains("a gateway never makes a second root"), "{log}");

    let other_root = [("COFFRE_ROOT_SECRET_KEY", "another-root-secret-of-40-characters-000")];
    let log = refused("another root secret", join(&d, "gw-root", &identity, &text, &other_root));
    assert!(log.contains("the root credential") && log.contains("differs from the deployment's"), "{log}");
    assert!(!log.contains("another-root-secret"), "{log}");

    let stranger = ClusterCa::new(&shared_dir.join("other-ca")).gateway("gw-ca");
    let log = refused("another cluster CA", join(&d, "gw-ca", &stranger, &text, &[]));
    assert!(log.contains("the cluster CA") && log.contains("coffre cluster issue"), "{log}");

    // Sharing everything, a gateway joins, its writes readable by the first.
    let joined = join(&d, "gw-ok", &identity, &text, &[]).unwrap_or_else(|log| panic!("{log}"));
    joined.client().create_bucket().bucket("joined").send().await.expect("bucket");
    put(&joined.client(), "joined", "k", b"shared".to_vec()).await;
    assert_eq!(get(&d.gateways[0].client(), "joined", "k").await, b"shared");
}

/// Under `COFFRE_TEST_PG` every server of this file keeps its metadata on
/// the test cluster, which the outage test stops: it runs alone, the others
/// together.
static PG_CLUSTER: RwLock<()> = RwLock::const_new(());

/// For a test outside a runtime; async ones await `PG_CLUSTER.read()`.
fn sharing_the_cluster() -> RwLockReadGuard<'static, ()> {
    PG_CLUSTER.blocking_read()
}

/// Status and message of a refused request.
fn refusal<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<T, SdkError<E, HttpResponse>>,
) -> (u16, String) {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => (e.raw_response().map_or(0, |r| r.status().as_u16()), e.message().unwrap_or_default().to_owned()),
    }
}

/// With the metadata database down, a GET and a PUT are 503s that name the
/// database (not storage nodes, not the audit log: nothing was stored); the
/// refused PUT's event, which the database-held audit log could not take, is
/// kept and written once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_database_outage_503s_name_the_database_and_refusals_are_recorded_after() {
    if std::env::var_os("COFFRE_TEST_PG").is_none() {
        eprintln!("skipped: COFFRE_TEST_PG is unset (scripts/test.sh starts a PostgreSQL cluster)");
        return;
    }
    let _alone = PG_CLUSTER.write().await;
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("outage").send().await.expect("bucket");
    put(&c, "outage", "before", b"stored".to_vec()).await;

    pg_stop("fast");
    let got = refusal(c.get_object().bucket("outage").key("before").send().await);
    let put_refused = c.put_object().bucket("outage").key("during").body(b"lost?".to_vec().into()).send().await;
    let put_refused = refusal(put_refused);
    pg_start();

    for (what, (status, message)) in [("GET", got), ("PUT", put_refused)] {
        assert_eq!(status, 503, "{what}: {message}");
        assert!(message.contains("metadata database is unavailable"), "{what}: {message}");
        assert!(!message.contains("Storage nodes") && !message.contains("processed"), "{what}: {message}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = server.admin_get("/admin/v1/audit/events?limit=1000").expect("admin");
        let events: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let found = events
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["operation"] == "PutObject" && e["key"] == "during" && e["status"] == 503);
        if found.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the refused PUT was never recorded: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    put(&c, "outage", "after", b"stored".to_vec()).await;
    assert!(c.head_object().bucket("outage").key("during").send().await.is_err(), "the refused PUT stored something");
}

/// The events of requests refused during a database outage wait in a file of
/// the gateway: killed -9 during the outage and started again once the
/// database is back, it stores them, in order, in the verified log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_kept_during_a_database_outage_survive_a_kill_9() {
    if std::env::var_os("COFFRE_TEST_PG").is_none() {
        eprintln!("skipped: COFFRE_TEST_PG is unset (scripts/test.sh starts a PostgreSQL cluster)");
        return;
    }
    let _alone = PG_CLUSTER.write().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let c = server.client();
    c.create_bucket().bucket("spooled").send().await.expect("bucket");
    put(&c, "spooled", "before", b"stored".to_vec()).await;

    pg_stop("fast");
    for key in ["during-1", "during-2", "during-3"] {
        let refused = c.put_object().bucket("spooled").key(key).body(b"x".to_vec().into()).send().await;
        assert_eq!(refusal(refused).0, 503, "{key}");
    }
    server.kill();
    pg_start();
    let mut server = Server::start_in(&dir);
    put(&server.client(), "spooled", "after", b"stored".to_vec()).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let keys = loop {
        let puts = coffre_e2e::audit::events(&dir, &["--operation", "PutObject", "--bucket", "spooled"]);
        let keys: Vec<(String, u64)> = puts
            .iter()
            .filter_map(|e| Some((e["key"].as_str()?.to_owned(), e["status"].as_u64()?)))
            .filter(|(k, _)| k.starts_with("during"))
            .collect();
        if keys.iter().any(|(k, _)| k == "during-3") || std::time::Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    // The SDK retried each refused PUT: every attempt is there, answered 503, in order.
    assert!(keys.iter().all(|(_, status)| *status == 503), "{keys:?}");
    let mut named: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    named.dedup();
    assert_eq!(named, ["during-1", "during-2", "during-3"], "the refused PUTs' events were lost: {keys:?}");
    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());
    let (ok, out, err) = coffre_e2e::audit::run(&dir, &["verify"]);
    assert!(ok, "{out}{err}");
}

fn files_in(dir: &Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    std::fs::read_dir(dir).expect("kms dir").map(|e| e.expect("entry").path()).collect()
}

/// A bucket key that vanished from the custodian (its file lost, as with a
/// gateway on the wrong key directory) was not destroyed, and a GET says
/// so: the custodian lacks it, not "destroyed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_missing_from_the_custodian_is_not_called_destroyed() {
    if coffre_e2e::custody() != "embedded" {
        eprintln!("skipped: the key files are the embedded custodian's");
        return;
    }
    let _shared = PG_CLUSTER.read().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let kms = dir.join("kms").join("keks");
    let before = files_in(&kms);
    let c = server.client();
    c.create_bucket().bucket("keyed").send().await.expect("bucket");
    put(&c, "keyed", "k", b"sealed".to_vec()).await;
    server.stop();
    let bucket_keys: Vec<_> = files_in(&kms).difference(&before).cloned().collect();
    assert!(!bucket_keys.is_empty(), "no key file appeared for the bucket");
    for file in &bucket_keys {
        std::fs::remove_file(file).expect("lose the bucket's key file");
    }

    let server = Server::start_in(&dir);
    let (status, message) = refusal(server.client().get_object().bucket("keyed").key("k").send().await);
    assert_eq!(status, 500, "{message}");
    assert!(!message.contains("destroyed") || message.contains("was not destroyed"), "{message}");
    assert!(message.contains("key custodian does not hold the key"), "{message}");
}
