//! The config file a server starts with: the test's own, the custodian's, and
//! under PostgreSQL a `[metadata]` section naming the server's database.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::pg::{pg_database_for, test_pg};

/// The config file naming the key custodian the tests run under
/// (`COFFRE_TEST_KMS_CONFIG`, set by scripts/test.sh for its PKCS#11 and KMIP
/// passes); the embedded custodian when unset.
pub fn kms_config() -> Option<PathBuf> {
    std::env::var_os("COFFRE_TEST_KMS_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `embedded`, `pkcs11` or `kmip`: which custodian [`kms_config`] names.
pub fn custody() -> String {
    std::env::var("COFFRE_TEST_KMS_CUSTODY").unwrap_or_else(|_| "embedded".into())
}

/// The config file a server starts with, and the temporary file holding it
/// when the harness had to compose one.
pub(crate) struct ServerConfig {
    pub(crate) path: Option<PathBuf>,
    pub(crate) composed: Option<tempfile::NamedTempFile>,
}

impl ServerConfig {
    /// A test's own config file (`COFFRE_CONFIG` among its `extra_env`) wins
    /// over the custodian's ([`kms_config`]), as before PostgreSQL. Under
    /// `COFFRE_TEST_PG` that file, or none, gets a `[metadata]` section naming
    /// the data directory's database, unless it declares one itself (a test
    /// sharing one database among servers, or keeping the embedded engine).
    pub(crate) fn for_server(data_dir: &Path, extra_env: &[(&str, &str)]) -> Result<Self, String> {
        let own = extra_env.iter().find(|(k, _)| *k == "COFFRE_CONFIG").map(|(_, v)| PathBuf::from(v));
        let Some(cluster) = test_pg() else {
            // The server reads the test's own file from the environment.
            return Ok(Self { path: if own.is_some() { None } else { kms_config() }, composed: None });
        };
        // A COFFRE_CONFIG the tests inherit would be read by the server too: compose on it as well.
        let inherited = std::env::var_os("COFFRE_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
        let base = own.or_else(kms_config).or(inherited);
        let text = match &base {
            Some(path) => std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
            None => String::new(),
        };
        if declares_metadata(&text) {
            return Ok(Self { path: base, composed: None });
        }
        let section = metadata_section(&cluster, data_dir)?;
        let mut file = tempfile::Builder::new()
            .prefix("coffre-e2e-")
            .suffix(".toml")
            .tempfile()
            .map_err(|e| format!("creating a config file for {}: {e}", data_dir.display()))?;
        let separator = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
        file.write_all(format!("{text}{separator}{section}").as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| format!("writing {}: {e}", file.path().display()))?;
        Ok(Self { path: Some(file.path().to_owned()), composed: Some(file) })
    }
}

/// The `[metadata]` section naming the database of the server on `data_dir`.
pub(crate) fn metadata_section(cluster: &str, data_dir: &Path) -> Result<String, String> {
    let url = pg_database_for(cluster, data_dir)?;
    Ok(format!("\n[metadata]\nengine = \"postgres\"\nurl = {}\n", toml_string(&url)))
}

/// `config` as the server on `data_dir` read it: under `COFFRE_TEST_PG`, with
/// the `[metadata]` section naming its database, for commands that read a
/// stopped server's config and data directory.
pub fn config_as_served(config: &Path, data_dir: &Path) -> PathBuf {
    let Some(cluster) = test_pg() else { return config.to_owned() };
    let text = std::fs::read_to_string(config).expect("reading the config");
    let section = metadata_section(&cluster, data_dir).unwrap_or_else(|e| panic!("{e}"));
    let served = data_dir.with_extension("served.toml");
    std::fs::write(&served, format!("{text}\n{section}")).expect("writing the served config");
    served
}

/// Whether a config file has a `[metadata]` table (or a `[metadata.x]` one).
/// Table headers only: a test writes its section that way, and a key named
/// `metadata` inside another table must not count.
fn declares_metadata(toml: &str) -> bool {
    toml.lines().filter_map(|l| l.trim().strip_prefix('[')).filter(|l| !l.starts_with('[')).any(|header| {
        let name = header.split(']').next().unwrap_or_default().trim();
        name == "metadata" || name.starts_with("metadata.")
    })
}

/// A TOML basic string.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::pg::{PG_DB_FILE, fresh_pg_database, pg_start, pg_stop, pg_tool, with_dbname};

    #[test]
    fn a_metadata_section_is_recognised_by_its_header_only() {
        assert!(declares_metadata("a = 1\n[metadata]\nengine = \"embedded\"\n"));
        assert!(declares_metadata("  [ metadata ]  # ours\n"));
        assert!(declares_metadata("[metadata.pool]\nsize = 4\n"));
        assert!(!declares_metadata("[label]\nmetadata = \"x\"\n[[metadata_targets]]\n"));
        assert!(!declares_metadata("[[targets]]\nname = \"metadata\"\n"));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"host=/a b="c\d""#), r#""host=/a b=\"c\\d\"""#);
        assert_eq!(toml_string("a\tb"), r#""a\u0009b""#);
    }

    /// Against the cluster of scripts/pg-server.sh only (scripts/test.sh runs
    /// it in its PostgreSQL step): stops and starts that cluster.
    #[test]
    fn servers_get_a_database_of_their_own_that_survives_restarts() {
        let Some(cluster) = test_pg() else {
            eprintln!("skipped: COFFRE_TEST_PG unset (scripts/pg-server.sh starts a cluster and prints it)");
            return;
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let own = tmp.path().join("own.toml");
        std::fs::write(&own, "body_idle_timeout_secs = 1").expect("config");
        let env = [("COFFRE_CONFIG", own.to_str().expect("utf-8"))];

        let first = ServerConfig::for_server(&data, &env).expect("config");
        let text = std::fs::read_to_string(first.path.as_ref().expect("composed")).expect("read");
        let name = std::fs::read_to_string(data.join(PG_DB_FILE)).expect("marker");
        assert!(text.starts_with("body_idle_timeout_secs = 1\n"), "{text}");
        assert!(
            text.contains(&format!("[metadata]\nengine = \"postgres\"\nurl = \"{cluster} dbname={name}\"\n")),
            "{text}"
        );
        let again = ServerConfig::for_server(&data, &env).expect("config");
        let text_again = std::fs::read_to_string(again.path.as_ref().expect("composed")).expect("read");
        assert_eq!(text, text_again, "a restart on the same data directory finds the same database");

        let query = |sql: &str| {
            let out = Command::new(pg_tool("psql"))
                .args(["-X", "-A", "-t", "-d", &with_dbname(&cluster, "postgres"), "-c", sql])
                .output()
                .expect("psql");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let collation =
            format!("SELECT datlocprovider::text || ' ' || daticulocale FROM pg_database WHERE datname = '{name}'");
        assert_eq!(query(&collation), "i en-US", "copied from coffre_template");

        let url = fresh_pg_database().expect("a cluster");
        std::fs::write(&own, format!("[metadata]\nengine = \"postgres\"\nurl = {}\n", toml_string(&url)))
            .expect("config");
        let chosen = ServerConfig::for_server(&data, &env).expect("config");
        assert_eq!(chosen.path.as_deref(), Some(own.as_path()), "a test's own [metadata] is left alone");
        assert!(chosen.composed.is_none());

        if std::env::var_os("COFFRE_TEST_PG_DATA").is_some() {
            pg_stop("immediate");
            pg_start();
            assert_eq!(query(&format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'")), "1");
        }
    }
}
