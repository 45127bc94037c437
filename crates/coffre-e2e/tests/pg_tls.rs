//! A gateway reaches its PostgreSQL metadata over TLS: verified against the
//! CA `[metadata] ca_cert` names, refused with a certificate from another CA,
//! and never in plain text over the network without saying so. Needs the
//! test cluster of scripts/pg-server.sh (`COFFRE_TEST_PG` and its TLS peers).

use coffre_e2e::objects::{get, put};
use coffre_e2e::{Server, fresh_pg_database_over_tls, pattern, toml_string};

/// A config whose `[metadata]` is `url`, with `ca_cert` when given.
fn config(dir: &std::path::Path, url: &str, ca_cert: Option<&std::path::Path>) -> std::path::PathBuf {
    let mut text = format!("[metadata]\nengine = \"postgres\"\nurl = {}\n", toml_string(url));
    if let Some(ca) = ca_cert {
        text.push_str(&format!("ca_cert = {}\n", toml_string(&ca.display().to_string())));
    }
    let path = dir.join("coffre.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// The log as text: tracing colours its fields (`tls\x1b[2m=\x1b[0mtrue`).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

fn start(dir: &std::path::Path, config: &std::path::Path) -> Result<Server, String> {
    let config = config.to_str().expect("utf-8 path");
    Server::try_start_with(dir, &[("COFFRE_CONFIG", config)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_reaches_its_metadata_over_verified_tls_or_not_at_all() {
    let Some(pg) = fresh_pg_database_over_tls() else { return };
    let tmp = tempfile::tempdir().expect("tmp");

    // The right CA: the gateway serves, and says its metadata link is TLS.
    let good = tmp.path().join("good");
    std::fs::create_dir_all(&good).expect("dir");
    let server = start(&good, &config(&good, &pg.url, Some(&pg.ca))).expect("a gateway on TLS metadata");
    let c = server.client();
    c.create_bucket().bucket("over-tls").send().await.expect("bucket");
    let body = pattern(10_000, 7);
    put(&c, "over-tls", "k", body.clone()).await;
    assert_eq!(get(&c, "over-tls", "k").await, body);
    let log = without_colours(&server.log());
    assert!(log.contains("metadata in PostgreSQL") && log.contains("tls=true"), "{log}");
    assert!(!log.contains("WITHOUT TLS"), "{log}");
    drop(server);

    // A certificate from another CA: no start, and the log says why.
    let wrong = tmp.path().join("wrong");
    std::fs::create_dir_all(&wrong).expect("dir");
    let err = start(&wrong, &config(&wrong, &pg.url, Some(&pg.other_ca))).err().expect("the wrong CA");
    assert!(err.contains("certificate"), "{err}");

    // No CA over the network: a loud warning, and this cluster refuses plain text.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).expect("dir");
    let err = start(&plain, &config(&plain, &pg.url, None)).err().expect("plain text over TCP");
    assert!(err.contains("WITHOUT TLS") && err.contains("no encryption"), "{err}");
}
