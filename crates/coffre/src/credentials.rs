//! The server's own secrets: the root S3 credential (`COFFRE_ROOT_*`, else
//! `DATA_DIR/root.credentials`) and the admin API's bearer token
//! (`COFFRE_ADMIN_TOKEN`, else `DATA_DIR/admin.token`), both generated on
//! first start into 0600 files, both refused below [`MIN_SECRET_CHARS`].

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use coffre_core::types::AccessKeyId;
use coffre_s3::Credential;
use serde::{Deserialize, Serialize};

pub const ROOT_FILE: &str = "root.credentials";
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The shortest secret accepted anywhere: 32 characters, about 190 bits when
/// drawn from letters and digits, beyond any offline guessing.
pub const MIN_SECRET_CHARS: usize = 32;

#[derive(Serialize, Deserialize)]
struct Stored {
    access_key_id: String,
    secret_access_key: String,
}

/// Refuses a secret shorter than [`MIN_SECRET_CHARS`], naming the setting
/// it came from (never the secret).
pub fn check_strength(setting: &str, secret: &str) -> anyhow::Result<()> {
    let chars = secret.chars().count();
    if chars < MIN_SECRET_CHARS {
        bail!(
            "{setting}: a secret must be at least {MIN_SECRET_CHARS} characters, this one has {chars}; \
             make one with `openssl rand -base64 33`"
        );
    }
    Ok(())
}

fn credential(setting: &str, access: &str, secret: &str) -> anyhow::Result<Credential> {
    let access_key = AccessKeyId::parse(access).map_err(|e| anyhow::anyhow!("root access key: {e}"))?;
    check_strength(setting, secret)?;
    Ok(Credential { access_key, secret: secret.to_owned() })
}

pub fn root_file(data_dir: &Path) -> PathBuf {
    data_dir.join(ROOT_FILE)
}

pub fn admin_token_file(data_dir: &Path) -> PathBuf {
    data_dir.join(ADMIN_TOKEN_FILE)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// The root credential from the environment, else from the data dir.
pub fn from_env_or_file(data_dir: &Path) -> anyhow::Result<Option<Credential>> {
    match (env("COFFRE_ROOT_ACCESS_KEY"), env("COFFRE_ROOT_SECRET_KEY")) {
        (Some(a), Some(s)) => return credential("COFFRE_ROOT_SECRET_KEY", &a, &s).map(Some),
        (None, None) => {}
        _ => bail!("set both COFFRE_ROOT_ACCESS_KEY and COFFRE_ROOT_SECRET_KEY, or neither"),
    }
    let path = root_file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored: Stored = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            let setting = format!("secret_access_key in {}", path.display());
            credential(&setting, &stored.access_key_id, &stored.secret_access_key).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Generates root's credential into its 0600 file (the caller has found none).
pub fn create_root(data_dir: &Path) -> anyhow::Result<Credential> {
    let (access, secret) = coffre_admin::generate_key_pair();
    let stored = Stored { access_key_id: access.clone(), secret_access_key: secret.clone() };
    let path = root_file(data_dir);
    // Whole or absent after a crash, never a short file the next start trusts.
    coffre_disk::create_private(&path, serde_json::to_string_pretty(&stored)?.as_bytes())
        .with_context(|| format!("creating {}", path.display()))?;
    credential("generated root secret", &access, &secret)
}

/// The admin token from `COFFRE_ADMIN_TOKEN`, else from its file.
pub fn admin_token(data_dir: &Path) -> anyhow::Result<Option<String>> {
    if let Some(token) = env("COFFRE_ADMIN_TOKEN") {
        check_strength("COFFRE_ADMIN_TOKEN", &token)?;
        return Ok(Some(token));
    }
    let path = admin_token_file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            check_strength(&format!("the admin token in {}", path.display()), &token)?;
            Ok(Some(token))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The admin token, generated into its 0600 file on first start; whether it
/// was just made.
pub fn admin_token_or_create(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    if let Some(token) = admin_token(data_dir)? {
        return Ok((token, false));
    }
    let token = coffre_admin::generate_admin_token();
    let path = admin_token_file(data_dir);
    coffre_disk::create_private(&path, format!("{token}\n").as_bytes())
        .with_context(|| format!("creating {}", path.display()))?;
    Ok((token, true))
}

/// Tells the operator about secrets generated on this start. On a terminal
/// they are shown; anywhere else (journald, a container's log, a pipe) only
/// the files holding them are named, through the logger.
pub fn announce(data_dir: &Path, root: Option<&Credential>, admin_token: Option<&str>) {
    if root.is_none() && admin_token.is_none() {
        return;
    }
    let root_file = root_file(data_dir);
    let token_file = admin_token_file(data_dir);
    if std::io::stdout().is_terminal() {
        if let Some(root) = root {
            println!(
                "Root credentials (kept in {}, mode 0600):\n  access key: {}\n  secret key: {}",
                root_file.display(),
                root.access_key,
                root.secret
            );
        }
        if let Some(token) = admin_token {
            println!("Admin token for `coffre key ...` (kept in {}, mode 0600):\n  {token}", token_file.display());
        }
        tracing::info!("generated secrets shown on the terminal and kept in their 0600 files in the data dir");
        return;
    }
    if root.is_some() {
        tracing::info!(
            file = %root_file.display(),
            "root credentials generated: written to this file (mode 0600) only, not shown because stdout is not a terminal"
        );
    }
    if admin_token.is_some() {
        tracing::info!(
            file = %token_file.display(),
            "admin token generated: written to this file (mode 0600) only, not shown because stdout is not a terminal"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn root_is_generated_0600_then_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = create_root(dir.path()).expect("create");
        assert_eq!(mode(&root_file(dir.path())), 0o600);
        // This test sets no COFFRE_ROOT_* variable: the file is what is read.
        let again = from_env_or_file(dir.path()).expect("load").expect("stored");
        assert_eq!(first.access_key, again.access_key);
        assert_eq!(first.secret, again.secret);
        assert_eq!(first.access_key.as_str().len(), 20);
        assert_eq!(first.secret.len(), 40);
    }

    #[test]
    fn the_admin_token_file_is_0600_and_short_tokens_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = admin_token_file(dir.path());
        std::fs::write(&path, "short-token\n").expect("write");
        let err = admin_token(dir.path()).expect_err("a short token").to_string();
        assert!(err.contains("admin token in") && err.contains("at least 32"), "{err}");
        assert!(!err.contains("short-token"), "{err}");
        std::fs::remove_file(&path).expect("rm");
        let (token, created) = admin_token_or_create(dir.path()).expect("create");
        assert!(created && token.len() >= MIN_SECRET_CHARS);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(admin_token_or_create(dir.path()).expect("load"), (token, false));
    }

    #[test]
    fn strength_counts_characters_and_names_the_setting() {
        assert!(check_strength("X", &"a".repeat(32)).is_ok());
        let err = check_strength("COFFRE_ROOT_SECRET_KEY", "eightchr").expect_err("short").to_string();
        assert!(err.starts_with("COFFRE_ROOT_SECRET_KEY:") && !err.contains("eightchr"), "{err}");
    }
}
