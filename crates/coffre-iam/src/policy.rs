//! A policy document read from its JSON into typed statements, refused with
//! the message AWS gives (`MalformedPolicy`) when it cannot mean anything.

use serde_json::{Map, Value};

use crate::condition::{self, Condition};

/// Where a policy is attached decides which elements it must and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A bucket policy: `Principal` and `Resource` required.
    Resource,
    /// A user's, group's or role's permissions, or a session policy: no `Principal`.
    Identity,
    /// A role's trust policy: `Principal` required, no `Resource`.
    Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2008-10-17`, or no `Version` at all (as AWS reads it): no policy variables.
    V2008,
    /// `2012-10-17`.
    V2012,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalKind {
    Aws,
    Service,
    Federated,
    CanonicalUser,
}

impl PrincipalKind {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "AWS" => Some(Self::Aws),
            "Service" => Some(Self::Service),
            "Federated" => Some(Self::Federated),
            "CanonicalUser" => Some(Self::CanonicalUser),
            _ => None,
        }
    }
}

/// `Principal` or `NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principals {
    pub negated: bool,
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous included.
    pub everyone: bool,
    pub ids: Vec<(PrincipalKind, String)>,
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: patterns, maybe negated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub negated: bool,
    pub patterns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<Principals>,
    pub action: Matcher,
    pub resource: Option<Matcher>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: Version,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// Why a document is not a policy; the message is the client's to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn malformed(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

impl Policy {
    /// Reads a policy document meant for `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Self, PolicyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("This policy is not valid JSON: {e}")))?;
        let Value::Object(doc) = value else { return Err(malformed("A policy must be a JSON object")) };
        only_fields(&doc, &["Version", "Id", "Statement"])?;
        let version = match doc.get("Version") {
            None => Version::V2008,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008,
            Some(_) => return Err(malformed("The policy must contain a valid version string")),
        };
        let id = optional_string(&doc, "Id")?;
        let statements: Vec<Statement> = match doc.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => {
                list.iter().map(|s| statement(s, kind)).collect::<Result<_, _>>()?
            }
            Some(single @ Value::Object(_)) => vec![statement(single, kind)?],
            _ => return Err(malformed("Missing required field Statement")),
        };
        unique_sids(&statements)?;
        Ok(Self { version, id, statements })
    }

    /// Whether `${...}` in this policy names variables (2012-10-17 only).
    pub fn has_variables(&self) -> bool {
        self.version == Version::V2012
    }
}

fn statement(value: &Value, kind: PolicyKind) -> Result<Statement, PolicyError> {
    let Value::Object(s) = value else { return Err(malformed("Each statement must be a JSON object")) };
    only_fields(
        s,
        &["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"],
    )?;
    let sid = optional_string(s, "Sid")?;
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(_) => return Err(malformed("Invalid effect: Effect must be Allow or Deny")),
        None => return Err(malformed("Missing required field Effect")),
    };
    let principal = either(s, "Principal", "NotPrincipal", principals)?;
    if effect == Effect::Allow && principal.as_ref().is_some_and(|p| p.negated) {
        // "Everyone but these" as a grant opens a resource to the world by accident.
        return Err(malformed("NotPrincipal may only be used with Effect Deny"));
    }
    match (kind, &principal) {
        (PolicyKind::Identity, Some(_)) => return Err(malformed("Policy document should not specify a principal.")),
        (PolicyKind::Resource | PolicyKind::Trust, None) => return Err(malformed("Missing required field Principal")),
        _ => {}
    }
    let action = either(s, "Action", "NotAction", |v, negated| matcher(v, negated, "action", action_ok))?
        .ok_or_else(|| malformed("Missing required field Action"))?;
    let resource = either(s, "Resource", "NotResource", |v, negated| matcher(v, negated, "resource", resource_ok))?;
    match (kind, &resource) {
        (PolicyKind::Trust, Some(_)) => return Err(malformed("Has prohibited field Resource")),
        (PolicyKind::Resource | PolicyKind::Identity, None) => {
            return Err(malformed("Missing required field Resource"));
        }
        _ => {}
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(block)) => condition::parse_block(block)?,
        Some(_) => return Err(malformed("Condition must be a JSON object")),
    };
    Ok(Statement { sid, effect, principal, action, resource, conditions })
}

/// Reads `positive` or `negative` (never both) with `read(value, negated)`.
fn either<T>(
    s: &Map<String, Value>,
    positive: &str,
    negative: &str,
    read: impl Fn(&Value, bool) -> Result<T, PolicyError>,
) -> Result<Option<T>, PolicyError> {
    match (s.get(positive), s.get(negative)) {
        (Some(_), Some(_)) => Err(malformed(format!("A statement cannot have both {positive} and {negative}"))),
        (Some(v), None) => read(v, false).map(Some),
        (None, Some(v)) => read(v, true).map(Some),
        (None, None) => Ok(None),
    }
}

fn principals(value: &Value, negated: bool) -> Result<Principals, PolicyError> {
    let invalid = || malformed("Invalid principal in policy");
    match value {
        Value::String(s) if s == "*" => Ok(Principals { negated, everyone: true, ids: Vec::new() }),
        Value::Object(map) if !map.is_empty() => {
            let mut found = Principals { negated, everyone: false, ids: Vec::new() };
            for (name, ids) in map {
                let kind = PrincipalKind::parse(name).ok_or_else(invalid)?;
                for id in strings(ids).ok_or_else(invalid)? {
                    match id.as_str() {
                        "*" if kind == PrincipalKind::Aws => found.everyone = true,
                        "" => return Err(invalid()),
                        _ => found.ids.push((kind, id)),
                    }
                }
            }
            Ok(found)
        }
        _ => Err(invalid()),
    }
}

fn matcher(value: &Value, negated: bool, what: &str, ok: fn(&str) -> bool) -> Result<Matcher, PolicyError> {
    let patterns =
        strings(value).filter(|p| !p.is_empty()).ok_or_else(|| malformed(format!("Policy has invalid {what}")))?;
    if let Some(bad) = patterns.iter().find(|p| !ok(p)) {
        return Err(malformed(format!("Policy has invalid {what}: {bad}")));
    }
    Ok(Matcher { negated, patterns })
}

/// `*` or `service:pattern`, the service made of lowercase letters and digits.
fn action_ok(action: &str) -> bool {
    action == "*"
        || action.split_once(':').is_some_and(|(service, name)| {
            !service.is_empty()
                && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        })
}

/// `*` or an ARN of six colon-separated parts.
fn resource_ok(resource: &str) -> bool {
    resource == "*" || (resource.starts_with("arn:") && resource.splitn(6, ':').count() == 6)
}

/// A string or a non-empty array of strings.
pub(crate) fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(list) if !list.is_empty() => {
            list.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()
        }
        _ => None,
    }
}

fn optional_string(map: &Map<String, Value>, field: &str) -> Result<Option<String>, PolicyError> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(format!("{field} must be a string"))),
    }
}

fn only_fields(map: &Map<String, Value>, known: &[&str]) -> Result<(), PolicyError> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(malformed(format!("Unknown field {unknown}"))),
        None => Ok(()),
    }
}

fn unique_sids(statements: &[Statement]) -> Result<(), PolicyError> {
    let mut seen = std::collections::HashSet::new();
    for sid in statements.iter().filter_map(|s| s.sid.as_deref()).filter(|s| !s.is_empty()) {
        if !seen.insert(sid) {
            return Err(malformed(format!("Statement IDs (SID) in a single policy must be unique: {sid}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, PolicyKind::Resource)
    }

    #[test]
    fn a_bucket_policy_reads_into_statements() {
        let policy = bucket(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Read","Effect":"Allow","Principal":{"AWS":["*"]},
               "Action":["s3:GetObject","s3:List*"],"Resource":"arn:aws:s3:::b/*"}]}"#,
        )
        .expect("valid");
        assert_eq!(policy.version, Version::V2012);
        let s = &policy.statements[0];
        assert_eq!(s.sid.as_deref(), Some("Read"));
        assert!(s.principal.as_ref().is_some_and(|p| p.everyone && !p.negated));
        assert_eq!(s.action.patterns, ["s3:GetObject", "s3:List*"]);
    }

    #[test]
    fn malformed_documents_say_what_is_wrong() {
        let cases = [
            ("[]", "JSON object"),
            ("{", "not valid JSON"),
            (r#"{"Statement":[]}"#, "Missing required field Statement"),
            (r#"{"Version":"2020-01-01","Statement":{}}"#, "valid version"),
            (r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#, "Principal"),
            (r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"s3:*","Resource":"*"}}"#, "Effect"),
            (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*"}}"#, "Resource"),
            (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"get","Resource":"*"}}"#, "invalid action"),
            (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"b"}}"#, "invalid resource"),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":{"Nobody":"x"},"Action":"s3:*","Resource":"*"}}"#,
                "principal",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","NotAction":"s3:*","Resource":"*"}}"#,
                "both",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Extra":1}}"#,
                "Unknown field Extra",
            ),
            (
                r#"{"Statement":[{"Sid":"a","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},{"Sid":"a","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
                "unique",
            ),
        ];
        for (text, expected) in cases {
            let err = bucket(text).expect_err(text);
            assert!(err.0.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn kinds_require_their_elements() {
        let identity = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
        assert!(Policy::parse(identity, PolicyKind::Identity).is_ok());
        assert!(Policy::parse(identity, PolicyKind::Resource).is_err());
        let trust = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::t1:root"},"Action":"sts:AssumeRole"}}"#;
        assert!(Policy::parse(trust, PolicyKind::Trust).is_ok());
        assert!(Policy::parse(trust, PolicyKind::Identity).is_err());
    }
}
