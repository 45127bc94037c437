//! The PostgreSQL cluster the tests may keep metadata in (`COFFRE_TEST_PG`):
//! a database per server, fresh ones for shared use, stopping and starting it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The PostgreSQL cluster the tests keep metadata in (`COFFRE_TEST_PG`, a
/// libpq/tokio-postgres connection string without a database name).
pub(crate) fn test_pg() -> Option<String> {
    std::env::var("COFFRE_TEST_PG").ok().filter(|v| !v.trim().is_empty())
}

/// `postgres` when `COFFRE_TEST_PG` is set (every server the harness starts
/// then keeps its metadata there), else `embedded`: tests that read
/// `DATA_DIR/meta.redb` skip that part unless embedded.
pub fn metadata_engine() -> &'static str {
    if test_pg().is_some() { "postgres" } else { "embedded" }
}

/// Whether a test that needs the embedded engine skips, saying why: under
/// `COFFRE_TEST_PG` it does (`why` names what it would have needed).
pub fn skip_unless_embedded(why: &str) -> bool {
    let skip = metadata_engine() != "embedded";
    if skip {
        eprintln!("skipped under PostgreSQL: {why}");
    }
    skip
}

/// A new, empty database on the `COFFRE_TEST_PG` cluster, as the full
/// connection string for a `[metadata] url`; `None` without a cluster. For
/// tests that point several servers at one database: their own config file
/// then has a `[metadata]` section and the harness adds none.
pub fn fresh_pg_database() -> Option<String> {
    let cluster = test_pg()?;
    let db = create_pg_database(&cluster).unwrap_or_else(|e| panic!("{e}"));
    Some(with_dbname(&cluster, &db))
}

/// A fresh database of the test cluster reached over TCP, where it takes TLS
/// only: its connection string, the CA its certificate chains to, and an
/// unrelated CA (scripts/pg-server.sh). `None` without such a cluster.
pub struct PgOverTls {
    pub url: String,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
}

/// Says the test skipped when it returns `None`.
pub fn fresh_pg_database_over_tls() -> Option<PgOverTls> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let found = (var("COFFRE_TEST_PG_TCP"), var("COFFRE_TEST_PG_CA"), var("COFFRE_TEST_PG_OTHER_CA"), test_pg());
    let (Some(tcp), Some(ca), Some(other_ca), Some(cluster)) = found else {
        eprintln!("skipped: COFFRE_TEST_PG and its TLS variables are unset (scripts/test.sh starts the cluster)");
        return None;
    };
    let db = create_pg_database(&cluster).unwrap_or_else(|e| panic!("{e}"));
    Some(PgOverTls { url: with_dbname(&tcp, &db), ca: ca.into(), other_ca: other_ca.into() })
}

/// Where the harness remembers a data directory's database: a server
/// restarted on the same directory must find its metadata again.
pub const PG_DB_FILE: &str = ".test-pg-db";

/// The connection string of the database of the server on `data_dir`, made
/// on its first start.
pub(crate) fn pg_database_for(cluster: &str, data_dir: &Path) -> Result<String, String> {
    let marker = data_dir.join(PG_DB_FILE);
    match std::fs::read_to_string(&marker) {
        Ok(name) => {
            let name = name.trim();
            if !valid_db_name(name) {
                return Err(format!("{}: {name:?} is not a database name the harness made", marker.display()));
            }
            return Ok(with_dbname(cluster, name));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", marker.display())),
    }
    let name = create_pg_database(cluster)?;
    std::fs::write(&marker, &name).map_err(|e| format!("writing {}: {e}", marker.display()))?;
    Ok(with_dbname(cluster, &name))
}

fn valid_db_name(name: &str) -> bool {
    name.strip_prefix("c_").is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Runs `CREATE DATABASE` with `psql` rather than tokio-postgres: the harness
/// is synchronous and is called from inside the tests' tokio runtimes, where
/// blocking on another runtime panics (it would take a thread and a runtime
/// per server); psql is on every machine that has the cluster, and a process
/// start costs little next to the server's. The copy of `coffre_template`
/// (scripts/pg-server.sh) brings its ICU collation along.
fn create_pg_database(cluster: &str) -> Result<String, String> {
    let name = format!("c_{}", random_hex());
    let sql = format!("CREATE DATABASE {name} TEMPLATE coffre_template");
    let out = Command::new(pg_tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &with_dbname(cluster, "postgres"), "-c", &sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {} (set COFFRE_TEST_PG_BIN): {e}", pg_tool("psql").display()))?;
    if !out.status.success() {
        return Err(format!(
            "creating database {name} on COFFRE_TEST_PG ({cluster}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(name)
}

/// `cluster` with its database set to `db`: appended to a key-value string
/// (the last `dbname` wins, for libpq as for tokio-postgres), or put in the
/// path of a `postgres://` URL.
pub(crate) fn with_dbname(cluster: &str, db: &str) -> String {
    let cluster = cluster.trim();
    let Some((scheme, rest)) = cluster.split_once("://") else {
        return format!("{cluster} dbname={db}");
    };
    let (head, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    let authority = head.split('/').next().unwrap_or_default();
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

/// A PostgreSQL client or server program: from `COFFRE_TEST_PG_BIN`
/// (Debian keeps the server's out of `PATH`), else from `PATH`.
pub(crate) fn pg_tool(name: &str) -> PathBuf {
    std::env::var_os("COFFRE_TEST_PG_BIN")
        .filter(|v| !v.is_empty())
        .map(|bin| PathBuf::from(bin).join(name))
        .filter(|p| p.exists())
        .unwrap_or_else(|| name.into())
}

/// 64 random bits: `RandomState` is seeded from the OS per process, so two
/// test processes on one cluster do not pick the same names.
fn random_hex() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{:016x}", h.finish())
}

/// Stops the test cluster (`COFFRE_TEST_PG_DATA`) the way `mode` says, as
/// pg_ctl's `-m`: `fast`, `immediate` (a crash: no checkpoint) or `smart`.
pub fn pg_stop(mode: &str) {
    pg_ctl(&["-m", mode, "-w", "-t", "60", "stop"]);
}

/// Starts the test cluster again, with the settings scripts/pg-server.sh
/// wrote into its data directory, logging where that script does.
pub fn pg_start() {
    let log = pg_data().parent().map(|dir| dir.join("server.log")).unwrap_or_else(|| "server.log".into());
    pg_ctl(&["-l".as_ref(), log.as_os_str(), "-w".as_ref(), "-t".as_ref(), "60".as_ref(), "start".as_ref()]);
}

fn pg_data() -> PathBuf {
    std::env::var_os("COFFRE_TEST_PG_DATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("COFFRE_TEST_PG_DATA is unset (scripts/pg-server.sh prints it)"))
}

/// pg_ctl refuses root: as root, it runs as `postgres`, who owns the cluster
/// scripts/pg-server.sh made.
fn pg_ctl<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    use std::os::unix::fs::MetadataExt as _;
    let data = pg_data();
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_tool("pg_ctl"));
        c
    } else {
        Command::new(pg_tool("pg_ctl"))
    };
    // The cluster's owner may not be allowed into the tests' working directory.
    let cwd = data.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    cmd.arg("-D").arg(&data).args(args).current_dir(cwd).stdin(Stdio::null());
    let out = cmd.output().unwrap_or_else(|e| panic!("running pg_ctl on {}: {e}", data.display()));
    assert!(
        out.status.success(),
        "pg_ctl {:?} on {}: {}{}",
        args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>(),
        data.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The connection string of the database of the server on `data_dir`, or
/// `None` with embedded metadata.
pub fn pg_url_for(data_dir: &Path) -> Option<String> {
    let cluster = test_pg()?;
    Some(pg_database_for(&cluster, data_dir).unwrap_or_else(|e| panic!("the server's database: {e}")))
}

/// The rows of the database of the server on `data_dir`, as `pg_dump
/// --data-only` writes them (bytea in hex), or `None` with embedded metadata.
pub fn pg_dump_for(data_dir: &Path) -> Option<Vec<u8>> {
    let url = pg_url_for(data_dir)?;
    let out = std::process::Command::new(pg_tool("pg_dump"))
        .args(["--data-only", "-d", &url])
        .output()
        .unwrap_or_else(|e| panic!("running pg_dump: {e}"));
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    Some(out.stdout)
}

/// Runs `sql` with `psql` on the database `url` (as its superuser: a test
/// playing the database administrator); its output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(pg_tool("psql"))
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("running psql: {e}"));
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_goes_where_each_connection_string_form_keeps_it() {
        assert_eq!(
            with_dbname("host=/tmp/pg port=5432 user=postgres", "c_1"),
            "host=/tmp/pg port=5432 user=postgres dbname=c_1"
        );
        assert_eq!(
            with_dbname("postgresql://postgres@%2Ftmp%2Fpg:5432", "c_1"),
            "postgresql://postgres@%2Ftmp%2Fpg:5432/c_1"
        );
        assert_eq!(with_dbname("postgres://u@h/old?sslmode=disable", "c_1"), "postgres://u@h/c_1?sslmode=disable");
    }
}
