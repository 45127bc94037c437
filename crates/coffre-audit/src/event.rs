//! One audit event and its canonical form, the bytes that are hashed.
//!
//! The canonical form is compact JSON (no spaces, no trailing newline) with
//! the fields in the order of [`Event`]'s declaration, absent values written
//! as `null` (except `claimed`, left out when absent), integers in decimal, and strings escaped as `serde_json` does:
//! `"` and `\` backslashed, control characters as `\n`, `\t`... or `\u00XX`,
//! everything else as raw UTF-8. `time` is RFC 3339 in UTC with exactly three
//! fraction digits, so that string order is time order. The same event always
//! serializes to the same bytes, and a line that is not in this form is
//! reported by the verifier as altered.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const TIME_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// One S3 request or administrative act. Never holds a secret, a signature
/// or an SSE-C key: the front and the admin API fill it from the request's
/// route and outcome only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Position in the log, from 0, assigned on append.
    pub seq: u64,
    pub time: String,
    /// The node that served the request.
    pub node: String,
    pub request_id: String,
    /// The access key id whose signature was verified; `null` for anonymous
    /// requests and for those whose signature was not verified.
    pub principal: Option<String>,
    /// The access key id a request named without its signature being
    /// verified (a bad signature, an unknown key, a request refused before
    /// verification). Written only when set: logs from before this field
    /// read, re-serialize and verify unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<String>,
    pub tenant: Option<String>,
    /// Client address, `ip:port`.
    pub source: Option<String>,
    /// The S3 operation (`PutObject`...) or an administrative act
    /// (`admin:CreateKey`, `kms:DestroyKey`, `server:Start`...).
    pub operation: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub version: Option<String>,
    /// HTTP status of the answer (0 for acts that have none, such as a start).
    pub status: u16,
    /// The S3 error code when the request failed (`AccessDenied`...).
    pub error: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Facts specific to an administrative act (`kek=... custody=pkcs11`).
    pub detail: Option<String>,
}

impl Event {
    /// An event at the current time with everything else empty; `seq` is set on append.
    pub fn now(node: &str, operation: &str) -> Self {
        Self {
            seq: 0,
            time: format_time(OffsetDateTime::now_utc()),
            node: node.to_owned(),
            request_id: String::new(),
            principal: None,
            claimed: None,
            tenant: None,
            source: None,
            operation: operation.to_owned(),
            bucket: None,
            key: None,
            version: None,
            status: 0,
            error: None,
            bytes_in: 0,
            bytes_out: 0,
            detail: None,
        }
    }

    pub fn canonical(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a line and checks it is in canonical form.
    pub fn from_canonical(line: &[u8]) -> Result<Self, String> {
        let event: Event = serde_json::from_slice(line).map_err(|e| format!("not an event: {e}"))?;
        if event.canonical() != line {
            return Err("not in canonical form (bytes were edited)".into());
        }
        if parse_time(&event.time).is_none() {
            return Err(format!("bad time {:?}", event.time));
        }
        Ok(event)
    }
}

pub fn format_time(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(TIME_FORMAT).unwrap_or_default()
}

/// Parses an event time, or any RFC 3339 time given on a command line.
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_are_stable_and_checked() {
        let mut event = Event::now("node-1", "PutObject");
        event.bucket = Some("b".into());
        event.key = Some("a \"quoted\"\nkey/é".into());
        let bytes = event.canonical();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"seq\":0,\"time\":\""), "{text}");
        assert!(text.contains(r#""key":"a \"quoted\"\nkey/é""#), "{text}");
        assert!(text.contains("\"principal\":null"), "{text}");
        assert_eq!(Event::from_canonical(&bytes).unwrap(), event);

        let spaced = text.replacen("\"seq\":0", "\"seq\": 0", 1);
        assert!(Event::from_canonical(spaced.as_bytes()).is_err());
        let reordered = text.replacen("{\"seq\":0,", "{", 1).replacen('}', ",\"seq\":0}", 1);
        assert!(Event::from_canonical(reordered.as_bytes()).is_err());
        let extra = text.replacen('}', ",\"x\":1}", 1);
        assert!(Event::from_canonical(extra.as_bytes()).is_err());
    }

    #[test]
    fn claimed_is_written_only_when_set() {
        let mut event = Event::now("node-1", "PutObject");
        let without = String::from_utf8(event.canonical()).unwrap();
        assert!(!without.contains("claimed"), "{without}");
        event.claimed = Some("AKIDCLAIMED".into());
        let with = event.canonical();
        let text = String::from_utf8(with.clone()).unwrap();
        assert!(text.contains(r#""principal":null,"claimed":"AKIDCLAIMED","tenant""#), "{text}");
        assert_eq!(Event::from_canonical(&with).unwrap(), event);
        let null = text.replacen(r#""claimed":"AKIDCLAIMED""#, r#""claimed":null"#, 1);
        assert!(Event::from_canonical(null.as_bytes()).is_err(), "an absent claim is left out, not null");
    }

    #[test]
    fn time_has_fixed_width_so_strings_sort_by_time() {
        let t = format_time(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(t, "1970-01-01T00:00:00.000Z");
        assert!(parse_time(&t).is_some());
    }
}
