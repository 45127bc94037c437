//! The layout of a secret wrapped by the KMIP server: AES-256-GCM under the
//! KEK, computed on the server, with an IV chosen here.
//!
//! `version (1) | IV (12) | GCM tag (16) | ciphertext (1..=64)`
//!
//! The additional authenticated data is a fixed label naming this layout
//! followed by the caller's context, so a blob is only accepted as the very
//! version and under the very context it was made for.

use super::message::GCM_TAG_LEN;
use coffre_crypto::kms::MAX_WRAP_INPUT;

const VERSION: u8 = 1;
/// GCM's native IV size: 96 random bits per wrap keeps the chance of a
/// repeat negligible for far more wraps than a KEK will ever make.
pub const IV_LEN: usize = 12;
const HEADER_LEN: usize = 1 + IV_LEN + GCM_TAG_LEN;
const AAD_LABEL: &[u8] = b"coffre kmip wrap v1\0";

/// The additional authenticated data for a wrap under `context`.
pub fn aad(context: &[u8]) -> Vec<u8> {
    [AAD_LABEL, context].concat()
}

/// The pieces of a wrapped secret, borrowed from its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    pub iv: &'a [u8],
    pub tag: &'a [u8],
    pub ciphertext: &'a [u8],
}

impl Parts<'_> {
    pub fn join(&self) -> Vec<u8> {
        [&[VERSION][..], self.iv, self.tag, self.ciphertext].concat()
    }
}

/// Splits a wrapped secret; `None` for anything this code never wrote,
/// which the caller reports as failed authentication.
pub fn split(blob: &[u8]) -> Option<Parts<'_>> {
    let (&version, rest) = blob.split_first()?;
    if version != VERSION || !(HEADER_LEN + 1..=HEADER_LEN + MAX_WRAP_INPUT).contains(&blob.len()) {
        return None;
    }
    let (iv, rest) = rest.split_at(IV_LEN);
    let (tag, ciphertext) = rest.split_at(GCM_TAG_LEN);
    Some(Parts { iv, tag, ciphertext })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_then_split() {
        let parts = Parts { iv: &[1; IV_LEN], tag: &[2; GCM_TAG_LEN], ciphertext: &[3; 32] };
        let blob = parts.join();
        assert_eq!(blob.len(), 1 + IV_LEN + GCM_TAG_LEN + 32);
        assert_eq!(split(&blob), Some(parts));
    }

    #[test]
    fn refuses_other_versions_and_sizes() {
        let blob = Parts { iv: &[1; IV_LEN], tag: &[2; GCM_TAG_LEN], ciphertext: &[3; 32] }.join();
        let mut other_version = blob.clone();
        other_version[0] = 2;
        assert_eq!(split(&other_version), None);
        assert_eq!(split(&blob[..HEADER_LEN]), None, "no ciphertext");
        assert_eq!(split(&[]), None);
        let too_long = Parts { iv: &[1; IV_LEN], tag: &[2; GCM_TAG_LEN], ciphertext: &[3; MAX_WRAP_INPUT + 1] };
        assert_eq!(split(&too_long.join()), None);
    }

    #[test]
    fn aad_binds_label_and_context() {
        assert_eq!(aad(b"bucket=a"), b"coffre kmip wrap v1\0bucket=a");
        assert_ne!(aad(b""), aad(b"\0"));
    }
}
