//! The `Condition` element: operators of the String, Numeric, Date, Bool,
//! Binary, IpAddress, Arn and Null families, their `...IfExists` forms and
//! the `ForAnyValue:` / `ForAllValues:` set qualifiers, with policy values
//! typed when the policy is read.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::pattern::{Piece, matches, wildcard_match};
use crate::policy::PolicyError;
use crate::request::Context;
use crate::vars::{expand, expand_text};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

/// An operator without its negation (`StringNotEquals` is `StringEquals`, negated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Ordering),
    Date(Ordering),
    Bool,
    BinaryEquals,
    IpAddress,
    /// `ArnEquals` and `ArnLike` behave the same in AWS: wildcards per part.
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    ForAnyValue,
    ForAllValues,
}

/// The policy's values for one key, typed by the operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Text(Vec<String>),
    Numbers(Vec<f64>),
    Dates(Vec<OffsetDateTime>),
    Flags(Vec<bool>),
    Networks(Vec<IpNet>),
}

/// One test: `operator(key, values)`, all of which must hold in a statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    pub negated: bool,
    pub qualifier: Option<SetQualifier>,
    pub if_exists: bool,
    pub key: String,
    pub values: Values,
}

fn malformed(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

/// Reads a statement's `Condition` block.
pub(crate) fn parse_block(block: &Map<String, Value>) -> Result<Vec<Condition>, PolicyError> {
    let mut conditions = Vec::new();
    for (name, tests) in block {
        let Value::Object(tests) = tests else {
            return Err(malformed(format!("Condition {name} must map condition keys to values")));
        };
        for (key, values) in tests {
            conditions.push(condition(name, key, values)?);
        }
    }
    Ok(conditions)
}

fn condition(name: &str, key: &str, values: &Value) -> Result<Condition, PolicyError> {
    let (qualifier, rest) = match name.split_once(':') {
        Some(("ForAnyValue", rest)) => (Some(SetQualifier::ForAnyValue), rest),
        Some(("ForAllValues", rest)) => (Some(SetQualifier::ForAllValues), rest),
        Some(_) => return Err(malformed(format!("Invalid Condition type : {name}"))),
        None => (None, name),
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let (operator, negated) = operator(base).ok_or_else(|| malformed(format!("Invalid Condition type : {name}")))?;
    if operator == Operator::Null && (if_exists || qualifier.is_some()) {
        return Err(malformed(format!("Invalid Condition type : {name}")));
    }
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(malformed(format!("Policy has an invalid condition key: {key:?}")));
    }
    let texts = scalars(values).ok_or_else(|| malformed(format!("Invalid value for condition {name} on {key}")))?;
    let values = typed(operator, texts).map_err(|bad| malformed(format!("Invalid {name} value {bad:?} for {key}")))?;
    Ok(Condition { operator, negated, qualifier, if_exists, key: key.to_owned(), values })
}

fn operator(base: &str) -> Option<(Operator, bool)> {
    use Operator::*;
    use Ordering::*;
    let found = match base {
        "StringEquals" => (StringEquals, false),
        "StringNotEquals" => (StringEquals, true),
        "StringEqualsIgnoreCase" => (StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (StringEqualsIgnoreCase, true),
        "StringLike" => (StringLike, false),
        "StringNotLike" => (StringLike, true),
        "NumericEquals" => (Numeric(Equals), false),
        "NumericNotEquals" => (Numeric(Equals), true),
        "NumericLessThan" => (Numeric(LessThan), false),
        "NumericLessThanEquals" => (Numeric(LessThanEquals), false),
        "NumericGreaterThan" => (Numeric(GreaterThan), false),
        "NumericGreaterThanEquals" => (Numeric(GreaterThanEquals), false),
        "DateEquals" => (Date(Equals), false),
        "DateNotEquals" => (Date(Equals), true),
        "DateLessThan" => (Date(LessThan), false),
        "DateLessThanEquals" => (Date(LessThanEquals), false),
        "DateGreaterThan" => (Date(GreaterThan), false),
        "DateGreaterThanEquals" => (Date(GreaterThanEquals), false),
        "Bool" => (Bool, false),
        "BinaryEquals" => (BinaryEquals, false),
        "IpAddress" => (IpAddress, false),
        "NotIpAddress" => (IpAddress, true),
        "ArnEquals" | "ArnLike" => (Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Arn, true),
        "Null" => (Null, false),
        _ => return None,
    };
    Some(found)
}

/// A string, number or boolean, or a non-empty array of them, as text.
fn scalars(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        Value::Array(list) if !list.is_empty() => list.iter().map(one).collect(),
        Value::Array(_) => None,
        v => one(v).map(|s| vec![s]),
    }
}

/// Types the policy's values; `Err` names the first that does not parse.
fn typed(operator: Operator, texts: Vec<String>) -> Result<Values, String> {
    fn all<T>(texts: &[String], read: fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
        texts.iter().map(|t| read(t).ok_or_else(|| t.clone())).collect()
    }
    Ok(match operator {
        Operator::Numeric(_) => Values::Numbers(all(&texts, number)?),
        Operator::Date(_) => Values::Dates(all(&texts, date)?),
        Operator::Bool | Operator::Null => Values::Flags(all(&texts, flag)?),
        Operator::IpAddress => Values::Networks(all(&texts, network)?),
        _ => Values::Text(texts),
    })
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// ISO 8601 (RFC 3339, or a plain date at midnight UTC) or epoch seconds.
fn date(text: &str) -> Option<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp(seconds).ok();
    }
    let day = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(day.midnight().assume_utc())
}

fn flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A CIDR block, or a single address (a /32 or /128).
fn network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Condition {
    /// Whether the condition holds for a request with this context.
    pub fn holds(&self, context: &Context, variables: bool) -> bool {
        let present = context.get(&self.key).filter(|v| !v.is_empty());
        if self.operator == Operator::Null {
            let wants_absent = matches!(&self.values, Values::Flags(f) if f.first() == Some(&true));
            return present.is_none() == wants_absent;
        }
        let Some(request) = present else {
            return match self.qualifier {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => self.if_exists || self.negated,
            };
        };
        let passes = |value: &String| self.matches_any(value, context, variables) != self.negated;
        match self.qualifier {
            Some(SetQualifier::ForAllValues) => request.iter().all(passes),
            Some(SetQualifier::ForAnyValue) => request.iter().any(passes),
            None if self.negated => !request.iter().any(|v| self.matches_any(v, context, variables)),
            None => request.iter().any(|v| self.matches_any(v, context, variables)),
        }
    }

    /// Whether one request value matches any of the policy's values.
    fn matches_any(&self, value: &str, context: &Context, variables: bool) -> bool {
        match &self.values {
            Values::Text(texts) => texts.iter().any(|t| self.text_matches(t, value, context, variables)),
            Values::Numbers(numbers) => {
                let Some(n) = number(value) else { return false };
                numbers.iter().any(|p| self.ordered(n.partial_cmp(p)))
            }
            Values::Dates(dates) => {
                let Some(at) = date(value) else { return false };
                dates.iter().any(|p| self.ordered(Some(at.cmp(p))))
            }
            Values::Flags(flags) => flag(value).is_some_and(|b| flags.contains(&b)),
            Values::Networks(nets) => value.parse::<IpAddr>().is_ok_and(|ip| nets.iter().any(|net| net.contains(&ip))),
        }
    }

    fn text_matches(&self, policy: &str, value: &str, context: &Context, variables: bool) -> bool {
        if !(variables && policy.contains("${")) {
            return self.literal_matches(policy, value);
        }
        match self.operator {
            Operator::StringEquals | Operator::BinaryEquals => {
                expand_text(policy, context, variables).is_some_and(|p| p == value)
            }
            Operator::StringEqualsIgnoreCase => {
                expand_text(policy, context, variables).is_some_and(|p| p.to_lowercase() == value.to_lowercase())
            }
            Operator::StringLike => expand(policy, context, variables).is_some_and(|p| matches(&p, value, false)),
            Operator::Arn => arn_matches(policy, value, context, variables),
            _ => false,
        }
    }

    /// [`Condition::text_matches`] for a policy value without variables.
    fn literal_matches(&self, policy: &str, value: &str) -> bool {
        match self.operator {
            Operator::StringEquals | Operator::BinaryEquals => policy == value,
            Operator::StringEqualsIgnoreCase => policy.to_lowercase() == value.to_lowercase(),
            Operator::StringLike => wildcard_match(policy, value, false),
            Operator::Arn => arn_matches(policy, value, &Context::new(), false),
            _ => false,
        }
    }

    fn ordered(&self, found: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let wanted: &[std::cmp::Ordering] = match self.operator {
            Operator::Numeric(o) | Operator::Date(o) => match o {
                Ordering::Equals => &[Equal],
                Ordering::LessThan => &[Less],
                Ordering::LessThanEquals => &[Less, Equal],
                Ordering::GreaterThan => &[Greater],
                Ordering::GreaterThanEquals => &[Greater, Equal],
            },
            _ => &[],
        };
        found.is_some_and(|f| wanted.contains(&f))
    }
}

/// ARNs compare part by part (six parts), each with wildcards.
fn arn_matches(policy: &str, value: &str, context: &Context, variables: bool) -> bool {
    let Some(policy) = expand(policy, context, variables) else { return false };
    let parts: Vec<&[Piece]> = policy.split(|p| *p == Piece::Char(':')).collect();
    let values: Vec<&str> = value.splitn(6, ':').collect();
    if values.len() != 6 || parts.len() < 6 || values[0] != "arn" {
        return false;
    }
    // The resource part may itself hold colons: everything past the fifth.
    let (head, tail) = parts.split_at(5);
    let resource: Vec<Piece> = tail.join(&Piece::Char(':'));
    head.iter().zip(&values).all(|(p, v)| matches(p, v, false)) && matches(&resource, values[5], false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(json: &str) -> Condition {
        let Value::Object(block) = serde_json::from_str(json).expect("json") else { panic!("object") };
        parse_block(&block).expect("valid").remove(0)
    }

    #[test]
    fn missing_keys_fail_positive_tests_and_pass_negated_ones() {
        let empty = Context::new();
        assert!(!cond(r#"{"StringEquals":{"s3:prefix":"a"}}"#).holds(&empty, true));
        assert!(cond(r#"{"StringNotEquals":{"s3:prefix":"a"}}"#).holds(&empty, true));
        assert!(cond(r#"{"StringEqualsIfExists":{"s3:prefix":"a"}}"#).holds(&empty, true));
        assert!(cond(r#"{"ForAllValues:StringEquals":{"aws:TagKeys":"a"}}"#).holds(&empty, true));
        assert!(!cond(r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}"#).holds(&empty, true));
        assert!(cond(r#"{"Null":{"s3:prefix":"true"}}"#).holds(&empty, true));
        assert!(!cond(r#"{"Null":{"s3:prefix":"false"}}"#).holds(&empty, true));
    }

    #[test]
    fn families_compare_typed_values() {
        let c = Context::new()
            .with("s3:max-keys", "10")
            .with("aws:CurrentTime", "2026-12-07T10:00:00Z")
            .with("aws:SourceIp", "192.0.2.7")
            .with("aws:SecureTransport", "false")
            .with("aws:PrincipalArn", "arn:aws:iam::t1:user/alice");
        assert!(cond(r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#).holds(&c, true));
        assert!(!cond(r#"{"NumericLessThan":{"s3:max-keys":10}}"#).holds(&c, true));
        assert!(cond(r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01"}}"#).holds(&c, true));
        assert!(cond(r#"{"DateLessThan":{"aws:CurrentTime":"1893456000"}}"#).holds(&c, true));
        assert!(cond(r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.0/24"]}}"#).holds(&c, true));
        assert!(!cond(r#"{"NotIpAddress":{"aws:SourceIp":"192.0.2.0/24"}}"#).holds(&c, true));
        assert!(cond(r#"{"Bool":{"aws:SecureTransport":false}}"#).holds(&c, true));
        assert!(cond(r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/a*"}}"#).holds(&c, true));
        assert!(!cond(r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::t2:user/alice"}}"#).holds(&c, true));
    }

    #[test]
    fn set_qualifiers_quantify_over_request_values() {
        let mut c = Context::new();
        c.set_all("aws:TagKeys", vec!["team".into(), "cost".into()]);
        assert!(cond(r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team","cost","env"]}}"#).holds(&c, true));
        assert!(!cond(r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#).holds(&c, true));
        assert!(cond(r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["cost"]}}"#).holds(&c, true));
        assert!(cond(r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["cost"]}}"#).holds(&c, true));
        assert!(!cond(r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["cost"]}}"#).holds(&c, true));
    }

    #[test]
    fn bad_operators_and_values_are_refused() {
        for bad in [
            r#"{"StringEqualz":{"k":"v"}}"#,
            r#"{"NumericEquals":{"k":"ten"}}"#,
            r#"{"DateEquals":{"k":"yesterday"}}"#,
            r#"{"IpAddress":{"k":"300.1.1.1/8"}}"#,
            r#"{"Bool":{"k":"yes"}}"#,
            r#"{"NullIfExists":{"k":"true"}}"#,
            r#"{"Sometimes:StringEquals":{"k":"v"}}"#,
            r#"{"StringEquals":{"k":[]}}"#,
            r#"{"StringEquals":"v"}"#,
        ] {
            let Value::Object(block) = serde_json::from_str(bad).expect("json") else { panic!("object") };
            assert!(parse_block(&block).is_err(), "{bad}");
        }
    }
}
