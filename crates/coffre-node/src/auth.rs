//! Requests between Coffre nodes, signed with the deployment's cluster secret:
//! HMAC-SHA256 over method, path and time, checked in constant time.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use http::HeaderMap;

pub const DATE_HEADER: &str = "x-coffre-node-date";
pub const SIGNATURE_HEADER: &str = "x-coffre-node-signature";
/// How far a request's time may stray from the receiver's clock. Bounds how
/// long a captured request can be replayed.
const MAX_SKEW_SECS: u64 = 300;
/// The shortest cluster secret accepted: 128 bits of entropy if random.
pub const MIN_SECRET_LEN: usize = 16;

/// The deployment's shared secret, as an HMAC key. Never printed.
#[derive(Clone)]
pub struct ClusterKey(hmac::Key);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the request is not signed ({0} missing)")]
    Missing(&'static str),
    #[error("the request's time is not a number of seconds")]
    BadDate,
    #[error("the request's time is more than {MAX_SKEW_SECS} s away from this node's clock")]
    Skewed,
    #[error("the request's signature does not match the cluster secret")]
    Mismatch,
}

impl ClusterKey {
    /// `secret` is `[cluster] secret` from the config.
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!("cluster.secret: too short ({} bytes, at least {MIN_SECRET_LEN})", secret.len()));
        }
        // Domain-separated so the secret used elsewhere would not sign node requests.
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"coffre node api v1"), secret.as_bytes());
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())))
    }

    fn message(method: &str, path: &str, date: &str) -> String {
        format!("{method}\n{path}\n{date}")
    }

    /// The two headers a request to `path` carries.
    pub fn sign(&self, method: &str, path: &str) -> [(&'static str, String); 2] {
        let date = now_secs().to_string();
        let tag = hmac::sign(&self.0, Self::message(method, path, &date).as_bytes());
        [(DATE_HEADER, date), (SIGNATURE_HEADER, hex_simd::encode_to_string(tag.as_ref(), hex_simd::AsciiCase::Lower))]
    }

    pub fn verify(&self, method: &str, path: &str, headers: &HeaderMap) -> Result<(), AuthError> {
        let header =
            |name: &'static str| headers.get(name).and_then(|v| v.to_str().ok()).ok_or(AuthError::Missing(name));
        let date = header(DATE_HEADER)?;
        let signature = header(SIGNATURE_HEADER)?;
        let secs: u64 = date.parse().map_err(|_| AuthError::BadDate)?;
        if now_secs().abs_diff(secs) > MAX_SKEW_SECS {
            return Err(AuthError::Skewed);
        }
        let tag = hex_simd::decode_to_vec(signature).map_err(|_| AuthError::Mismatch)?;
        hmac::verify(&self.0, Self::message(method, path, date).as_bytes(), &tag).map_err(|_| AuthError::Mismatch)
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn a_signed_request_verifies_only_for_its_method_path_and_secret() {
        let key = ClusterKey::new("a cluster secret of some length").expect("key");
        let signed = headers(&key.sign("PUT", "/v1/blobs/00"));
        assert_eq!(key.verify("PUT", "/v1/blobs/00", &signed), Ok(()));
        assert_eq!(key.verify("DELETE", "/v1/blobs/00", &signed), Err(AuthError::Mismatch));
        assert_eq!(key.verify("PUT", "/v1/blobs/01", &signed), Err(AuthError::Mismatch));
        let other = ClusterKey::new("another cluster secret, longer").expect("key");
        assert_eq!(other.verify("PUT", "/v1/blobs/00", &signed), Err(AuthError::Mismatch));
    }

    #[test]
    fn unsigned_stale_and_short_secrets_are_refused() {
        let key = ClusterKey::new("a cluster secret of some length").expect("key");
        assert_eq!(key.verify("GET", "/", &HeaderMap::new()), Err(AuthError::Missing(DATE_HEADER)));
        let mut stale = headers(&key.sign("GET", "/"));
        stale.insert(DATE_HEADER, (now_secs() - 3600).to_string().parse().expect("value"));
        assert_eq!(key.verify("GET", "/", &stale), Err(AuthError::Skewed));
        assert!(ClusterKey::new("short").is_err());
    }
}
