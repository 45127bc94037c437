//! Local AES-256-GCM sealing of short secrets under a key held in memory: how
//! the embedded custodian wraps data keys and how a passphrase seals its master key.
//!
//! Output: version byte (1), 96-bit random nonce, ciphertext, 128-bit tag.
//! Random nonces are safe here: one key wraps far fewer than the 2^32 secrets
//! after which a repeated nonce would become likely.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::CryptoError;

const VERSION: u8 = 1;
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;

pub fn seal(key: &[u8; 32], secret: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let aead = aead(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    let mut out = Vec::with_capacity(secret.len() + OVERHEAD);
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    let mut body = secret.to_vec();
    aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut body)
        .map_err(|_| CryptoError::Internal("seal"))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn open(key: &[u8; 32], sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < OVERHEAD || sealed[0] != VERSION {
        return Err(CryptoError::Integrity("wrapped key has an unknown shape"));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
    let mut body = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
    let plain_len = aead(key)?
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context), body.as_mut_slice())
        .map_err(|_| CryptoError::Integrity("wrapped key failed authentication"))?
        .len();
    body.truncate(plain_len);
    Ok(body)
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, CryptoError> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Internal("key"))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_key_and_context() {
        let key = [1u8; 32];
        let sealed = seal(&key, b"secret", b"ctx").expect("seal");
        assert_eq!(open(&key, &sealed, b"ctx").expect("open").as_slice(), b"secret");
        assert!(open(&key, &sealed, b"other").is_err());
        assert!(open(&[2u8; 32], &sealed, b"ctx").is_err());
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(open(&key, &bad, b"ctx").is_err());
        assert!(open(&key, &sealed[..10], b"ctx").is_err());
    }
}
