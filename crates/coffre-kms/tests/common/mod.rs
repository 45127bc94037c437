//! What the PKCS#11 tests share: the test token's settings, from the variables
//! `scripts/softhsm-token.sh` prints.

use std::path::PathBuf;

use coffre_kms::pkcs11::Pkcs11Config;
use zeroize::Zeroizing;

/// The test token, or `None` (and a "skipped" line) when the variables are unset.
pub fn config() -> Option<Pkcs11Config> {
    let Some(module) = std::env::var_os("COFFRE_TEST_PKCS11_MODULE") else {
        println!("skipped: COFFRE_TEST_PKCS11_MODULE unset");
        return None;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set with the module"));
    assert!(std::env::var_os("SOFTHSM2_CONF").is_some(), "SOFTHSM2_CONF must point at a private token directory");
    Some(Pkcs11Config {
        module: PathBuf::from(module),
        token_label: var("COFFRE_TEST_PKCS11_TOKEN"),
        pin: Zeroizing::new(var("COFFRE_TEST_PKCS11_PIN")),
    })
}
