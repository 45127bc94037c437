//! A bucket's CORS rules: validated once where PutBucketCors enters, and the
//! one matcher that both preflight (`OPTIONS`) and actual requests use.

use serde::{Deserialize, Serialize};

/// AWS's limit on the rules of one configuration.
pub const MAX_CORS_RULES: usize = 100;
/// AWS's limit on a rule's ID.
const MAX_ID_CHARS: usize = 255;

/// Why a configuration was refused, in the two shapes S3 answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// The document lacks something the schema requires (`MalformedXML`).
    #[error("{0}")]
    Malformed(String),
    /// The document is well formed but S3 refuses a value (`InvalidRequest`).
    #[error("{0}")]
    Invalid(String),
}

/// The methods a rule may allow: S3 accepts these five only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CorsMethod {
    Get,
    Put,
    Post,
    Delete,
    Head,
}

impl CorsMethod {
    /// The method as HTTP names it (case-sensitive, as S3 reads it).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "GET" => Self::Get,
            "PUT" => Self::Put,
            "POST" => Self::Post,
            "DELETE" => Self::Delete,
            "HEAD" => Self::Head,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::Post => "POST",
            Self::Delete => "DELETE",
            Self::Head => "HEAD",
        }
    }
}

/// One rule, as given (order kept, so GetBucketCors returns what was put).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    pub methods: Vec<CorsMethod>,
    /// Each with at most one `*`; `*` alone allows every origin.
    pub origins: Vec<String>,
    /// Each with at most one `*`; matched case-insensitively.
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u32>,
}

/// A rule as the request's XML gave it, before validation.
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub id: Option<String>,
    pub methods: Vec<String>,
    pub origins: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

/// A validated configuration: 1 to [`MAX_CORS_RULES`] rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsConfig {
    rules: Vec<CorsRule>,
}

/// What a matching rule grants a request from an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsGrant<'a> {
    pub rule: &'a CorsRule,
    /// `*` when the rule allows every origin, else the request's own Origin
    /// (which the rule matched: an origin no rule allows is never returned).
    pub allow_origin: &'a str,
}

impl CorsConfig {
    pub fn new(rules: Vec<RuleInput>) -> Result<Self, CorsError> {
        if rules.is_empty() {
            return Err(CorsError::Malformed("a CORSConfiguration holds at least one CORSRule".into()));
        }
        if rules.len() > MAX_CORS_RULES {
            return Err(CorsError::Invalid(format!(
                "The number of CORS rules should not exceed allowed limit of {MAX_CORS_RULES} rules."
            )));
        }
        let rules = rules.into_iter().map(validate_rule).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }

    pub fn rules(&self) -> &[CorsRule] {
        &self.rules
    }

    /// The first rule allowing `origin` to use `method` with every one of
    /// `request_headers` (case-insensitive); `None` when no rule does.
    pub fn grant<'a>(&'a self, origin: &'a str, method: &str, request_headers: &[&str]) -> Option<CorsGrant<'a>> {
        let method = CorsMethod::parse(method)?;
        self.rules.iter().find_map(|rule| {
            if !rule.methods.contains(&method) {
                return None;
            }
            let allowed = |h: &&str| {
                let h = h.to_ascii_lowercase();
                rule.allowed_headers.iter().any(|p| wildcard_match(&p.to_ascii_lowercase(), &h))
            };
            if !request_headers.iter().all(allowed) {
                return None;
            }
            let pattern = rule.origins.iter().find(|p| wildcard_match(p, origin))?;
            Some(CorsGrant { rule, allow_origin: if pattern == "*" { "*" } else { origin } })
        })
    }
}

/// `pattern` with at most one `*` standing for any run of characters
/// (possibly empty); without one, equality. Case-sensitive: callers lowercase.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len() && value.starts_with(prefix) && value.ends_with(suffix)
        }
    }
}

fn validate_rule(r: RuleInput) -> Result<CorsRule, CorsError> {
    if r.id.as_ref().is_some_and(|id| id.chars().count() > MAX_ID_CHARS) {
        return Err(CorsError::Invalid(format!("ID length should not exceed allowed limit of {MAX_ID_CHARS}")));
    }
    if r.methods.is_empty() || r.origins.is_empty() {
        return Err(CorsError::Malformed("a CORSRule needs at least one AllowedMethod and one AllowedOrigin".into()));
    }
    let methods = r
        .methods
        .iter()
        .map(|m| {
            CorsMethod::parse(m).ok_or_else(|| {
                CorsError::Invalid(format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (what, values) in [("AllowedOrigin", &r.origins), ("AllowedHeader", &r.allowed_headers)] {
        for v in values {
            check_value(what, v)?;
            if v.matches('*').count() > 1 {
                return Err(CorsError::Invalid(format!("{what} \"{v}\" can not have more than one wildcard.")));
            }
        }
    }
    for v in &r.expose_headers {
        check_value("ExposeHeader", v)?;
        if v.contains('*') {
            return Err(CorsError::Invalid(format!(
                "ExposeHeader \"{v}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
            )));
        }
    }
    let max_age_seconds = r
        .max_age_seconds
        .map(|s| u32::try_from(s).map_err(|_| CorsError::Invalid(format!("MaxAgeSeconds {s} must not be negative"))))
        .transpose()?;
    Ok(CorsRule {
        id: r.id,
        methods,
        origins: r.origins,
        allowed_headers: r.allowed_headers,
        expose_headers: r.expose_headers,
        max_age_seconds,
    })
}

/// Origins and headers are sent back in response headers: visible ASCII only,
/// so that a stored value can never break a header (or be refused there).
fn check_value(what: &str, v: &str) -> Result<(), CorsError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CorsError::Invalid(format!("{what} {v:?} must be non-empty visible ASCII without spaces")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(methods: &[&str], origins: &[&str], headers: &[&str]) -> RuleInput {
        RuleInput {
            methods: methods.iter().map(|s| s.to_string()).collect(),
            origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn config(rules: Vec<RuleInput>) -> CorsConfig {
        CorsConfig::new(rules).expect("valid")
    }

    #[test]
    fn origins_match_with_one_wildcard() {
        let c = config(vec![
            rule(&["GET"], &["*suffix"], &[]),
            rule(&["GET"], &["start*end"], &[]),
            rule(&["GET"], &["prefix*"], &[]),
            rule(&["PUT"], &["*.put"], &[]),
        ]);
        let origin = |o: &'static str, m| c.grant(o, m, &[]).map(|g| g.allow_origin);
        assert_eq!(origin("foo.suffix", "GET"), Some("foo.suffix"));
        assert_eq!(origin("foo.suffix.get", "GET"), None);
        assert_eq!(origin("startend", "GET"), Some("startend"));
        assert_eq!(origin("start12end", "GET"), Some("start12end"));
        assert_eq!(origin("0start12end", "GET"), None);
        assert_eq!(origin("bla.prefix", "GET"), None);
        assert_eq!(origin("foo.put", "GET"), None);
        assert_eq!(origin("foo.put", "PUT"), Some("foo.put"));
        assert_eq!(origin("foo.put", "PATCH"), None);
    }

    #[test]
    fn only_a_lone_star_answers_star_and_nothing_unlisted_is_returned() {
        let c = config(vec![rule(&["GET"], &["https://app.example.fr"], &[]), rule(&["PUT"], &["*"], &[])]);
        assert_eq!(c.grant("https://evil.example", "PUT", &[]).map(|g| g.allow_origin), Some("*"));
        for o in ["null", "http://app.example.fr", "https://app.example.fr:444", "https://app.example.fr.evil"] {
            assert_eq!(c.grant(o, "GET", &[]), None, "{o}");
        }
    }

    #[test]
    fn every_requested_header_must_be_allowed_case_insensitively() {
        let c = config(vec![rule(&["PUT"], &["*"], &["Content-Type", "x-amz-meta-*"])]);
        assert!(c.grant("o", "PUT", &["content-type", "X-Amz-Meta-Owner"]).is_some());
        assert!(c.grant("o", "PUT", &["content-type", "authorization"]).is_none());
        assert!(c.grant("o", "PUT", &[]).is_some());
    }

    #[test]
    fn bad_configurations_are_refused_as_s3_refuses_them() {
        let invalid = |r: RuleInput| matches!(CorsConfig::new(vec![r]), Err(CorsError::Invalid(_)));
        assert!(invalid(rule(&["PATCH"], &["*"], &[])));
        assert!(invalid(rule(&["get"], &["*"], &[])));
        assert!(invalid(rule(&["GET"], &["*.a.*"], &[])));
        assert!(invalid(rule(&["GET"], &["*"], &["x-*-*"])));
        assert!(invalid(rule(&["GET"], &["a b"], &[])));
        assert!(invalid(RuleInput { expose_headers: vec!["*".into()], ..rule(&["GET"], &["*"], &[]) }));
        assert!(invalid(RuleInput { max_age_seconds: Some(-1), ..rule(&["GET"], &["*"], &[]) }));
        assert!(invalid(RuleInput { id: Some("i".repeat(256)), ..rule(&["GET"], &["*"], &[]) }));
        assert!(matches!(CorsConfig::new(vec![]), Err(CorsError::Malformed(_))));
        assert!(matches!(CorsConfig::new(vec![rule(&[], &["*"], &[])]), Err(CorsError::Malformed(_))));
        let many = (0..=MAX_CORS_RULES).map(|_| rule(&["GET"], &["*"], &[])).collect();
        assert!(matches!(CorsConfig::new(many), Err(CorsError::Invalid(_))));
        let most = (0..MAX_CORS_RULES).map(|_| rule(&["GET"], &["*"], &[])).collect();
        assert!(CorsConfig::new(most).is_ok());
    }
}
