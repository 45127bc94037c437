//! Signed tree heads: (head number, tree size, root hash, time) signed with
//! the deployment's Ed25519 key, and that key's storage.
//!
//! The signed message is the ASCII string `coffre audit tree head v1`, a zero
//! byte, then the head number, the tree size and the time (Unix milliseconds)
//! as big-endian 64-bit integers, then the 32-byte root. Heads are numbered
//! from 0 so that a removed head leaves a visible gap.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::merkle::Hash;
use crate::{AuditError, Result, hex, unhex};

const CONTEXT: &[u8] = b"coffre audit tree head v1\0";
/// The text form of a public key: this prefix, then 64 hex digits.
const KEY_PREFIX: &str = "ed25519:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    pub head: u64,
    pub size: u64,
    /// Hex SHA-256 root of the first `size` events.
    pub root: String,
    pub time_ms: i64,
    /// Hex Ed25519 signature over the message above.
    pub signature: String,
}

impl SignedHead {
    fn message(head: u64, size: u64, time_ms: i64, root: &Hash) -> Vec<u8> {
        let mut m = Vec::with_capacity(CONTEXT.len() + 24 + 32);
        m.extend_from_slice(CONTEXT);
        m.extend_from_slice(&head.to_be_bytes());
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&time_ms.to_be_bytes());
        m.extend_from_slice(root);
        m
    }

    pub fn root_hash(&self) -> Option<Hash> {
        unhex(&self.root)?.try_into().ok()
    }

    /// Checks the signature; the root's agreement with events is the verifier's job.
    pub fn verify(&self, key: &PublicKey) -> bool {
        let (Some(root), Some(sig)) = (self.root_hash(), unhex(&self.signature)) else { return false };
        let message = Self::message(self.head, self.size, self.time_ms, &root);
        UnparsedPublicKey::new(&signature::ED25519, &key.0).verify(&message, &sig).is_ok()
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An Ed25519 public key, written `ed25519:<64 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || AuditError::Invalid(format!("not an audit public key (expected {KEY_PREFIX}<64 hex digits>)"));
        let digits = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(bad)?;
        let bytes = unhex(digits).ok_or_else(bad)?;
        Ok(Self(bytes.try_into().map_err(|_| bad())?))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(AuditError::io(format!("reading {}", path.display())))?;
        Self::parse(&text)
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{KEY_PREFIX}{}", hex(&self.0))
    }
}

/// The deployment's signing key, kept as PKCS#8 in a file of mode 0600.
pub struct Signer {
    pair: Ed25519KeyPair,
}

impl Signer {
    /// Loads the key at `path`, making one on first use.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if path.exists() { Self::load(path) } else { Self::create(path) }
    }

    /// Loads the key at `path`, refusing one that others can read.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(der) => {
                let mode =
                    std::fs::metadata(path).map_err(AuditError::io("reading the key's mode"))?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(AuditError::Invalid(format!(
                        "{} is readable by others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    )));
                }
                let pair = Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|_| AuditError::Invalid(format!("{} is not an Ed25519 PKCS#8 key", path.display())))?;
                Ok(Self { pair })
            }
            Err(e) => Err(AuditError::io(format!("reading the audit signing key {}", path.display()))(e)),
        }
    }

    fn create(path: &Path) -> Result<Self> {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| AuditError::Invalid("no randomness for the audit signing key".into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(AuditError::io(format!("creating {}", dir.display())))?;
        }
        // Whole or absent after a crash, never short; never replacing a key.
        coffre_disk::create_private(path, der.as_ref())
            .map_err(AuditError::io(format!("writing {}", path.display())))?;
        let pair = Ed25519KeyPair::from_pkcs8(der.as_ref())
            .map_err(|_| AuditError::Invalid("a fresh Ed25519 key did not parse".into()))?;
        Ok(Self { pair })
    }

    pub fn public_key(&self) -> PublicKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(key)
    }

    pub fn sign(&self, head: u64, size: u64, time_ms: i64, root: &Hash) -> SignedHead {
        let sig = self.pair.sign(&SignedHead::message(head, size, time_ms, root));
        SignedHead { head, size, root: hex(root), time_ms, signature: hex(sig.as_ref()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_verify_only_unaltered_and_under_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        let signer = Signer::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = Signer::load_or_create(&path).unwrap();
        assert_eq!(signer.public_key(), again.public_key());

        let key = PublicKey::parse(&signer.public_key().to_string()).unwrap();
        let head = signer.sign(3, 10, 1_700_000_000_000, &[7; 32]);
        assert!(head.verify(&key));
        for altered in [
            SignedHead { head: 4, ..head.clone() },
            SignedHead { size: 11, ..head.clone() },
            SignedHead { time_ms: 1, ..head.clone() },
            SignedHead { root: hex(&[8; 32]), ..head.clone() },
        ] {
            assert!(!altered.verify(&key), "{altered:?}");
        }
        let other = Signer::create(&dir.path().join("other.key")).unwrap();
        assert!(!head.verify(&other.public_key()));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Signer::load_or_create(&path).is_err(), "a key others can read is refused");
        assert!(PublicKey::parse("ed25519:00").is_err());
    }
}
