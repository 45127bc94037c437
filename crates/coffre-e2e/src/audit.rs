//! The audit log a server leaves, read with the offline `coffre audit` tool:
//! where the log is, running the tool on it, and its events as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{kms_config, metadata_section};
use crate::pg::test_pg;
use crate::server::coffre_bin;

/// Where `coffre audit` finds the log of the server on `data_dir`: its own
/// files (`DATA_DIR/audit`), or under `COFFRE_TEST_PG` an export of the log
/// its database holds, made now (the gateways of a database share one log).
pub fn audit_log_dir(data_dir: &Path) -> PathBuf {
    let Some(cluster) = test_pg() else { return data_dir.join("audit") };
    let section = metadata_section(&cluster, data_dir).unwrap_or_else(|e| panic!("{e}"));
    let base = kms_config().map(|p| std::fs::read_to_string(p).expect("kms config")).unwrap_or_default();
    let config = data_dir.with_extension("export.toml");
    std::fs::write(&config, format!("{base}\n{section}")).expect("export config");
    let out = data_dir.with_extension("audit-export");
    let _ = std::fs::remove_dir_all(&out);
    let done = Command::new(coffre_bin())
        .args(["audit", "export", "--config"])
        .arg(&config)
        .arg("--to")
        .arg(&out)
        .output()
        .expect("coffre audit export");
    assert!(done.status.success(), "audit export: {}", String::from_utf8_lossy(&done.stderr));
    out
}

/// Runs `coffre audit ARGS --data-dir DIR` on the log of the server on
/// `data_dir` (under PostgreSQL an export of the shared log); returns
/// (success, stdout, stderr).
pub fn run(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(coffre_bin())
        .arg("audit")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--from")
        .arg(audit_log_dir(data_dir))
        .output()
        .expect("running coffre audit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The events `coffre audit query` finds with `filters`, one JSON value each.
pub fn events(data_dir: &Path, filters: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["query", "--format", "jsonl"];
    args.extend_from_slice(filters);
    let (ok, out, err) = run(data_dir, &args);
    assert!(ok, "query failed: {err}");
    out.lines().map(|l| serde_json::from_str(l).expect("one JSON event per line")).collect()
}
