//! Filters over events, for `coffre audit query` and the admin API.

use crate::event::{Event, parse_time};

/// What an event's outcome must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Status below 400.
    Ok,
    /// Status 400 or above.
    Error,
    /// This HTTP status.
    Status(u16),
    /// This S3 error code (`AccessDenied`...).
    Code(String),
}

impl Outcome {
    pub fn parse(text: &str) -> Self {
        match text {
            "ok" | "success" => Self::Ok,
            "error" | "failure" => Self::Error,
            _ => match text.parse() {
                Ok(status) => Self::Status(status),
                Err(_) => Self::Code(text.to_owned()),
            },
        }
    }

    fn matches(&self, event: &Event) -> bool {
        match self {
            Self::Ok => event.status < 400,
            Self::Error => event.status >= 400,
            Self::Status(s) => event.status == *s,
            Self::Code(code) => event.error.as_deref() == Some(code.as_str()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// RFC 3339, inclusive.
    pub since: Option<time::OffsetDateTime>,
    /// RFC 3339, exclusive.
    pub until: Option<time::OffsetDateTime>,
    pub principal: Option<String>,
    pub bucket: Option<String>,
    pub key_prefix: Option<String>,
    pub operation: Option<String>,
    pub outcome: Option<Outcome>,
}

impl Filter {
    pub fn matches(&self, event: &Event) -> bool {
        let at = parse_time(&event.time);
        let eq = |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| have.as_ref() == Some(w));
        self.since.is_none_or(|s| at.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| at.is_some_and(|t| t < u))
            && eq(&self.principal, &event.principal)
            && eq(&self.bucket, &event.bucket)
            && self.key_prefix.as_ref().is_none_or(|p| event.key.as_ref().is_some_and(|k| k.starts_with(p.as_str())))
            && self.operation.as_ref().is_none_or(|o| o.eq_ignore_ascii_case(&event.operation))
            && self.outcome.as_ref().is_none_or(|o| o.matches(event))
    }
}
