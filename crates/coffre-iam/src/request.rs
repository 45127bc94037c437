//! What a request is, as the evaluator sees it: who asks, for which action
//! on which resource, and the condition keys the front could tell.

use std::collections::BTreeMap;

use crate::policy::PrincipalKind;

/// Who asks. `ids` are every name a policy may use for this principal (its
/// ARN, its tenant's root ARN, the tenant id...), each with its kind;
/// `tenant` is the tenant it belongs to (`None`: anonymous).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub ids: Vec<(PrincipalKind, String)>,
    pub tenant: Option<String>,
}

impl Identity {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn is_anonymous(&self) -> bool {
        self.tenant.is_none()
    }
}

/// Condition keys and their values. Keys are case-insensitive, as in AWS;
/// a key may hold several values (`aws:TagKeys`, `s3:RequestObjectTagKeys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    keys: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a single-valued key.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.keys.insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    /// Sets a multi-valued key.
    pub fn set_all(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.keys.insert(key.to_ascii_lowercase(), values);
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// The values of a key; `None` when the request does not carry it.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.keys.get(&key.to_ascii_lowercase()).map(Vec::as_slice)
    }

    /// The one value of a key, for policy variables (`${aws:username}`).
    pub fn single(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some([one]) => Some(one),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// One request to decide.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub identity: &'a Identity,
    /// `s3:GetObject`, `iam:CreateUser`...
    pub action: &'a str,
    /// `arn:aws:s3:::bucket/key`, `arn:aws:iam::TENANT:user/NAME`...
    pub resource: &'a str,
    /// The tenant owning the resource (`None`: a resource of no tenant).
    pub resource_tenant: Option<&'a str>,
    pub context: &'a Context,
}
