//! Root credentials: from `COFFRE_ROOT_ACCESS_KEY`/`COFFRE_ROOT_SECRET_KEY`, or
//! generated on first start and kept in `DATA_DIR/root.credentials` (mode 0600).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use coffre_core::types::AccessKeyId;
use coffre_s3::Credential;
use serde::{Deserialize, Serialize};

pub const ROOT_FILE: &str = "root.credentials";

#[derive(Serialize, Deserialize)]
struct Stored {
    access_key_id: String,
    secret_access_key: String,
}

fn credential(access: &str, secret: &str) -> anyhow::Result<Credential> {
    let access_key = AccessKeyId::parse(access).map_err(|e| anyhow::anyhow!("root access key: {e}"))?;
    if secret.len() < 8 {
        bail!("root secret key: must be at least 8 characters");
    }
    Ok(Credential { access_key, secret: secret.to_owned() })
}

pub fn root_file(data_dir: &Path) -> PathBuf {
    data_dir.join(ROOT_FILE)
}

/// The root credential from the environment, else from the data dir.
pub fn from_env_or_file(data_dir: &Path) -> anyhow::Result<Option<Credential>> {
    let access = std::env::var("COFFRE_ROOT_ACCESS_KEY").ok().filter(|s| !s.is_empty());
    let secret = std::env::var("COFFRE_ROOT_SECRET_KEY").ok().filter(|s| !s.is_empty());
    match (access, secret) {
        (Some(a), Some(s)) => return credential(&a, &s).map(Some),
        (None, None) => {}
        _ => bail!("set both COFFRE_ROOT_ACCESS_KEY and COFFRE_ROOT_SECRET_KEY, or neither"),
    }
    let path = root_file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored: Stored = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            credential(&stored.access_key_id, &stored.secret_access_key).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Loads the root credential, generating and storing one on first start.
/// Returns it and whether it was just created (so it is printed once).
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<(Credential, bool)> {
    if let Some(c) = from_env_or_file(data_dir)? {
        return Ok((c, false));
    }
    let (access, secret) = coffre_admin::generate_key_pair();
    let stored = Stored { access_key_id: access.clone(), secret_access_key: secret.clone() };
    let path = root_file(data_dir);
    // Whole or absent after a crash, never a short file the next start trusts.
    coffre_disk::create_private(&path, serde_json::to_string_pretty(&stored)?.as_bytes())
        .with_context(|| format!("creating {}", path.display()))?;
    Ok((credential(&access, &secret)?, true))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn generated_once_then_reused_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        // SAFETY of the test: this test does not set the env vars it reads.
        let (first, created) = load_or_create(dir.path()).expect("create");
        assert!(created);
        let mode = std::fs::metadata(root_file(dir.path())).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = load_or_create(dir.path()).expect("load");
        assert!(!created);
        assert_eq!(first.access_key, again.access_key);
        assert_eq!(first.secret, again.secret);
        assert_eq!(first.access_key.as_str().len(), 20);
        assert_eq!(first.secret.len(), 40);
    }
}
