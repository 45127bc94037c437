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

/// `Authorization: Bearer TOKEN`, where TOKEN is the admin token (when one is
/// set) or the root `ACCESS_KEY:SECRET`, each compared in constant time.
pub struct BearerToken {
    admin_token: Option<String>,
    root_token: String,
}

impl BearerToken {
    /// An empty admin token is none: only root's pair is accepted then.
    pub fn new(admin_token: Option<String>, root_access_key: &str, root_secret: &str) -> Self {
        Self {
            admin_token: admin_token.filter(|t| !t.is_empty()),
            root_token: format!("{root_access_key}:{root_secret}"),
        }
    }
}

#[async_trait]
impl AdminAuth for BearerToken {
    async fn authenticate(&self, headers: &HeaderMap, _peer: Option<SocketAddr>) -> Result<Principal, Refusal> {
        let token = bearer(headers);
        let presented = token.unwrap_or("");
        let admin_ok =
            self.admin_token.as_deref().is_some_and(|t| bool::from(t.as_bytes().ct_eq(presented.as_bytes())));
        let root_ok = bool::from(self.root_token.as_bytes().ct_eq(presented.as_bytes()));
        let claimed = token.map(claimed_name);
        match (admin_ok || root_ok, claimed) {
            (true, Some(name)) => Ok(Principal { name }),
            (_, claimed) => Err(Refusal { claimed, message: "a valid bearer token is required".into() }),
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

    #[tokio::test]
    async fn root_pair_and_admin_token_pass_others_are_refused() {
        let auth = BearerToken::new(Some("s3cr3t-token".into()), "ROOTKEY", "rootsecret");
        let root = auth.authenticate(&headers("Bearer ROOTKEY:rootsecret"), None).await;
        assert_eq!(root, Ok(Principal { name: "ROOTKEY".into() }));
        let admin = auth.authenticate(&headers("Bearer s3cr3t-token"), None).await;
        assert_eq!(admin, Ok(Principal { name: "admin-token".into() }));
        let wrong = auth.authenticate(&headers("Bearer ROOTKEY:guess"), None).await;
        assert_eq!(wrong.map_err(|r| r.claimed), Err(Some("ROOTKEY".into())));
        let missing = auth.authenticate(&HeaderMap::new(), None).await;
        assert_eq!(missing.map_err(|r| r.claimed), Err(None));
    }

    #[tokio::test]
    async fn an_empty_admin_token_accepts_nothing() {
        let auth = BearerToken::new(Some(String::new()), "ROOTKEY", "rootsecret");
        assert!(auth.authenticate(&headers("Bearer "), None).await.is_err());
        assert!(auth.authenticate(&HeaderMap::new(), None).await.is_err());
    }
}
