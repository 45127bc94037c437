//! A token that goes away under a running custodian: every call must say
//! Unavailable, never NoSuchKey, which callers read as crypto-erasure. Its own
//! test binary, so its own process: SoftHSM2 does not recover in-process.

mod common;

use std::path::PathBuf;

use coffre_crypto::kms::{Kms, KmsError};
use coffre_kms::pkcs11::Pkcs11Kms;

/// Puts the token directory back however the test ends.
struct Hidden {
    dir: PathBuf,
    aside: PathBuf,
}

impl Hidden {
    fn new(dir: PathBuf) -> Self {
        let aside = dir.with_extension("hidden");
        std::fs::rename(&dir, &aside).unwrap();
        Self { dir, aside }
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        if let Err(err) = std::fs::rename(&self.aside, &self.dir) {
            eprintln!("could not restore {}: {err}", self.dir.display());
        }
    }
}

/// The token directory the SoftHSM2 config names (`directories.tokendir`).
fn token_dir() -> PathBuf {
    let conf = std::env::var("SOFTHSM2_CONF").unwrap();
    let text = std::fs::read_to_string(&conf).unwrap();
    let line = text.lines().find_map(|line| line.trim().strip_prefix("directories.tokendir")).unwrap();
    PathBuf::from(line.trim_start().trim_start_matches('=').trim())
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, KmsError>, what: &str) {
    assert!(matches!(result, Err(KmsError::Unavailable(_))), "{what}: expected Unavailable, got {result:?}");
}

#[tokio::test]
async fn lost_token_is_unavailable_not_erased() {
    let Some(config) = common::config() else { return };
    let kms = Pkcs11Kms::open(config).await.unwrap();
    let kek = kms.create_kek("token-loss").await.unwrap();
    let wrapped = kms.wrap(&kek, &[1; 32], b"ctx").await.unwrap();

    let hidden = Hidden::new(token_dir());
    assert_unavailable(kms.unwrap(&kek, &wrapped, b"ctx").await, "unwrap");
    assert_unavailable(kms.wrap(&kek, &[1; 32], b"ctx").await, "wrap");
    assert_unavailable(kms.destroy_kek(&kek).await, "destroy");
    assert_unavailable(kms.status().await, "status");
    drop(hidden);
}
