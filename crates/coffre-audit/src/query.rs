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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_time;

    fn event(time: &str, status: u16, error: Option<&str>) -> Event {
        Event {
            time: time.into(),
            status,
            error: error.map(str::to_owned),
            bucket: Some("b".into()),
            key: Some("logs/2026/a.txt".into()),
            principal: Some("AK1".into()),
            ..Event::now("n", "PutObject")
        }
    }

    #[test]
    fn filters_combine_and_time_bounds_are_half_open() {
        let e = event("2026-11-28T10:00:00.000Z", 403, Some("AccessDenied"));
        let at = |t: &str| parse_time(t);
        assert!(Filter::default().matches(&e));
        assert!(Filter { since: at("2026-11-28T10:00:00Z"), ..Filter::default() }.matches(&e));
        assert!(!Filter { until: at("2026-11-28T10:00:00Z"), ..Filter::default() }.matches(&e));
        assert!(
            Filter { key_prefix: Some("logs/".into()), operation: Some("putobject".into()), ..Filter::default() }
                .matches(&e)
        );
        assert!(!Filter { key_prefix: Some("log/".into()), ..Filter::default() }.matches(&e));
        assert!(!Filter { principal: Some("AK2".into()), ..Filter::default() }.matches(&e));
        for (outcome, expected) in
            [("error", true), ("ok", false), ("403", true), ("AccessDenied", true), ("NoSuchKey", false)]
        {
            let filter = Filter { outcome: Some(Outcome::parse(outcome)), ..Filter::default() };
            assert_eq!(filter.matches(&e), expected, "{outcome}");
        }
        assert!(Filter { outcome: Some(Outcome::Ok), ..Filter::default() }.matches(&event(
            "2026-01-01T00:00:00.000Z",
            204,
            None
        )));
    }
}
