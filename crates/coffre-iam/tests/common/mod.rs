//! Shared by the evaluator's test files: a principal, a request and a
//! decision in one call.

#![allow(dead_code)]

use coffre_iam::{
    Context, Decision, Identity, Policies, Policy, PolicyKind, PolicyRef, PrincipalKind, Request, evaluate,
};
use proptest::prelude::*;

pub fn user(tenant: &str, name: &str) -> Identity {
    Identity {
        ids: vec![
            (PrincipalKind::Aws, format!("arn:aws:iam::{tenant}:user/{name}")),
            (PrincipalKind::Aws, format!("arn:aws:iam::{tenant}:root")),
            (PrincipalKind::Aws, tenant.to_owned()),
        ],
        tenant: Some(tenant.to_owned()),
    }
}

pub fn identity_policy(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Identity).expect("identity policy")
}

pub fn bucket_policy(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Resource).expect("bucket policy")
}

pub struct Ask<'a> {
    pub identity: &'a Identity,
    pub action: &'a str,
    pub resource: &'a str,
    pub resource_tenant: &'a str,
    pub context: Context,
}

pub fn decide(ask: &Ask<'_>, identity: &[&Policy], resource: Option<&Policy>) -> Decision {
    let policies = Policies {
        identity: identity.iter().map(|p| PolicyRef { name: "identity", policy: p }).collect(),
        resource: resource.map(|p| PolicyRef { name: "bucket", policy: p }),
        session: None,
    };
    let request = Request {
        identity: ask.identity,
        action: ask.action,
        resource: ask.resource,
        resource_tenant: Some(ask.resource_tenant),
        context: &ask.context,
    };
    evaluate(&policies, &request)
}

// Generated policies: statements over a few actions and resources, some
// with a condition on `s3:prefix`.

pub const ACTIONS: [&str; 6] =
    ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "iam:CreateUser", "sts:AssumeRole"];
pub const PATTERNS: [&str; 7] = ["*", "s3:*", "s3:Get*", "s3:*Object", "s3:?utObject", "iam:*", "s3:ListBucket"];
pub const RESOURCES: [&str; 5] = ["*", "arn:aws:s3:::b", "arn:aws:s3:::b/*", "arn:aws:s3:::b/a/*", "arn:aws:s3:::c/*"];
pub const TARGETS: [&str; 4] = ["arn:aws:s3:::b", "arn:aws:s3:::b/a/k", "arn:aws:s3:::b/k", "arn:aws:s3:::c/k"];

#[derive(Debug, Clone)]
pub struct Stmt {
    pub deny: bool,
    pub not_action: bool,
    pub actions: Vec<usize>,
    pub resources: Vec<usize>,
    pub prefix: Option<&'static str>,
}

pub fn stmt() -> impl Strategy<Value = Stmt> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(0..PATTERNS.len(), 1..3),
        prop::collection::vec(0..RESOURCES.len(), 1..3),
        prop::option::of(prop::sample::select(vec!["a/", "b/", ""])),
    )
        .prop_map(|(deny, not_action, actions, resources, prefix)| Stmt {
            deny,
            not_action,
            actions,
            resources,
            prefix,
        })
}

pub fn render(statements: &[Stmt]) -> String {
    let list = |items: Vec<&str>| format!("[{}]", items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(","));
    let rendered: Vec<String> = statements
        .iter()
        .map(|s| {
            let action = if s.not_action { "NotAction" } else { "Action" };
            let condition = s
                .prefix
                .map(|p| format!(r#","Condition":{{"StringLike":{{"s3:prefix":"{p}*"}}}}"#))
                .unwrap_or_default();
            format!(
                r#"{{"Effect":"{}","{action}":{},"Resource":{}{condition}}}"#,
                if s.deny { "Deny" } else { "Allow" },
                list(s.actions.iter().map(|i| PATTERNS[*i]).collect()),
                list(s.resources.iter().map(|i| RESOURCES[*i]).collect()),
            )
        })
        .collect();
    format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, rendered.join(","))
}
