//! The authentication seam of the admin API: who is asking, from the
//! request's headers and address, and the bearer token that answers it today.

use std::net::SocketAddr;

use async_trait::async_trait;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq as _;

/// An authenticated administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who the audit log names: never a token or a secret.
    pub name: String,
}

/// A request that did not authenticate (answered 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Who the request claimed to be, for the audit log of the refusal.
    pub claimed: Option<String>,
    /// What the client is told.
    pub message: String,
}

/// Authenticates admin requests. Implementations: [`BearerToken`] today; the
/// console's sessions and IAM's signed requests later.
#[async_trait]
pub trait AdminAuth: Send + Sync {
    async fn authenticate(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<Principal, Refusal>;
}

/// `Authorization: Bearer TOKEN`, TOKEN being the admin token, compared in
/// constant time. Root's S3 secret is not an admin credential: a leaked S3
/// client configuration does not open the admin API.
pub struct BearerToken {
    admin_token: String,
}

impl BearerToken {
    /// The caller has checked the token's strength (`coffre` refuses one
    /// under 32 characters at startup); an empty one accepts nothing.
    pub fn new(admin_token: String) -> Self {
        Self { admin_token }
    }
}

#[async_trait]
impl AdminAuth for BearerToken {
    async fn authenticate(&self, headers: &HeaderMap, _peer: Option<SocketAddr>) -> Result<Principal, Refusal> {
        let token = bearer(headers);
        let presented = token.unwrap_or("");
        let ok = !self.admin_token.is_empty() && bool::from(self.admin_token.as_bytes().ct_eq(presented.as_bytes()));
        match (ok, token) {
            (true, Some(_)) => Ok(Principal { name: "admin-token".into() }),
            (_, claimed) => Err(Refusal {
                claimed: claimed.map(claimed_name),
                message: "a valid bearer token (the admin token) is required".into(),
            }),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// Who a token says it is: the access key id of an `ACCESS_KEY:SECRET` pair,
/// else "admin-token".
fn claimed_name(token: &str) -> String {
    match token.split_once(':') {
        Some((access_key, _)) => access_key.to_owned(),
        None => "admin-token".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, authorization.parse().expect("header value"));
        h
    }

    const TOKEN: &str = "an-admin-token-of-forty-characters-000000";

    #[tokio::test]
    async fn only_the_admin_token_passes() {
        let auth = BearerToken::new(TOKEN.into());
        let admin = auth.authenticate(&headers(&format!("Bearer {TOKEN}")), None).await;
        assert_eq!(admin, Ok(Principal { name: "admin-token".into() }));
        let root = auth.authenticate(&headers("Bearer ROOTKEY:rootsecret"), None).await;
        assert_eq!(root.map_err(|r| r.claimed), Err(Some("ROOTKEY".into())));
        let prefix = auth.authenticate(&headers(&format!("Bearer {}", &TOKEN[..20])), None).await;
        assert!(prefix.is_err());
        let missing = auth.authenticate(&HeaderMap::new(), None).await;
        assert_eq!(missing.map_err(|r| r.claimed), Err(None));
    }

    #[tokio::test]
    async fn an_empty_admin_token_accepts_nothing() {
        let auth = BearerToken::new(String::new());
        assert!(auth.authenticate(&headers("Bearer "), None).await.is_err());
        assert!(auth.authenticate(&HeaderMap::new(), None).await.is_err());
    }
}
