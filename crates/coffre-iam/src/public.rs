//! Whether a bucket policy is public, as Block Public Access judges it: it
//! allows everyone (or everyone but some) without a condition that pins the
//! caller to fixed values (a source network, a named principal or tenant).

use crate::condition::{Condition, Operator, Values};
use crate::policy::{Effect, Policy};

/// Condition keys that, compared to fixed values, keep a grant non-public.
const PINNING_KEYS: [&str; 9] = [
    "aws:sourceip",
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:userid",
];

pub fn is_public(policy: &Policy) -> bool {
    policy.statements.iter().any(|s| {
        // NotPrincipal is refused with Allow when a policy is read; kept here
        // so that a policy built otherwise is still judged as AWS would.
        let everyone = s.principal.as_ref().is_some_and(|p| p.everyone || p.negated);
        s.effect == Effect::Allow && everyone && !s.conditions.iter().any(pins)
    })
}

/// A positive test of a pinning key against values without wildcards; an IP
/// range counts unless it is the whole address space.
fn pins(condition: &Condition) -> bool {
    if condition.negated || condition.if_exists || !PINNING_KEYS.contains(&condition.key.to_ascii_lowercase().as_str())
    {
        return false;
    }
    match (&condition.operator, &condition.values) {
        (Operator::IpAddress, Values::Networks(nets)) => nets.iter().all(|n| n.prefix_len() > 0),
        (Operator::StringEquals | Operator::StringEqualsIgnoreCase | Operator::Arn, Values::Text(texts))
        | (Operator::StringLike, Values::Text(texts)) => {
            texts.iter().all(|t| !t.contains('*') && !t.contains('?') && !t.is_empty())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyKind;

    fn public(statement: &str) -> bool {
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#);
        is_public(&Policy::parse(&text, PolicyKind::Resource).expect("valid"))
    }

    #[test]
    fn grants_to_everyone_are_public_unless_pinned() {
        let read = r#""Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*""#;
        assert!(public(&format!(r#"{{"Effect":"Allow","Principal":"*",{read}}}"#)));
        assert!(public(&format!(r#"{{"Effect":"Allow","Principal":{{"AWS":"*"}},{read}}}"#)));
        assert!(!public(&format!(r#"{{"Effect":"Deny","Principal":"*",{read}}}"#)));
        assert!(!public(&format!(r#"{{"Effect":"Allow","Principal":{{"AWS":"k1"}},{read}}}"#)));
        let pinned = r#""Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.0/24"}}"#;
        assert!(!public(&format!(r#"{{"Effect":"Allow","Principal":"*",{read},{pinned}}}"#)));
        let open = r#""Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#;
        assert!(public(&format!(r#"{{"Effect":"Allow","Principal":"*",{read},{open}}}"#)));
        let wild = r#""Condition":{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::*"}}"#;
        assert!(public(&format!(r#"{{"Effect":"Allow","Principal":"*",{read},{wild}}}"#)));
        let other = r#""Condition":{"StringEquals":{"s3:prefix":"public/"}}"#;
        assert!(public(&format!(r#"{{"Effect":"Allow","Principal":"*",{read},{other}}}"#)));
    }
}
