//! Refused unauthenticated requests, counted instead of written one by one:
//! a stranger's traffic grows the audit log by at most one tally per window.
//!
//! A tally is one kind of refusal (source address, operation, bucket, status,
//! error, claimed access key) over a window; at most [`MAX_TALLIES`] kinds
//! are kept per window, and every refusal past that lands in one overflow
//! tally. Each tally becomes one event when the window is flushed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use coffre_audit::Event;
use coffre_audit::event::format_time;
use coffre_s3::RequestRecord;
use time::OffsetDateTime;

/// Kinds of refusal kept apart in one window; the rest are counted together.
pub const MAX_TALLIES: usize = 1024;
/// Longest bucket name or claimed key kept in a tally (longer ones are cut,
/// so that 1024 tallies stay small whatever a stranger sends).
const MAX_FIELD: usize = 128;
/// The operation of the overflow tally's event.
pub const OVERFLOW: &str = "refused:Overflow";

/// Whether a request is counted here rather than recorded by itself: it was
/// refused, and no signature was verified, so nobody answers for it.
pub fn is_unauthenticated_refusal(r: &RequestRecord) -> bool {
    r.principal.is_none() && r.status >= 400
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    source: IpAddr,
    operation: String,
    bucket: Option<String>,
    status: u16,
    error: Option<String>,
    claimed: Option<String>,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    bytes_in: u64,
    first: OffsetDateTime,
    last: OffsetDateTime,
    /// The first request counted, so that a client's request id can be found.
    first_request: String,
}

impl Tally {
    fn new(r: &RequestRecord, now: OffsetDateTime) -> Self {
        Self { count: 0, bytes_in: 0, first: now, last: now, first_request: r.request_id.clone() }
    }

    fn add(&mut self, r: &RequestRecord, now: OffsetDateTime) {
        self.count += 1;
        self.bytes_in = self.bytes_in.saturating_add(r.bytes_in);
        self.last = now;
    }

    fn detail(&self) -> String {
        format!(
            "refused unauthenticated count={} first={} last={}",
            self.count,
            format_time(self.first),
            format_time(self.last)
        )
    }
}

#[derive(Default)]
struct Window {
    tallies: HashMap<Kind, Tally>,
    overflow: Option<Tally>,
}

/// The current window's tallies.
#[derive(Default)]
pub struct Refusals {
    window: Mutex<Window>,
}

impl Refusals {
    /// Counts a refused unauthenticated request.
    pub fn count(&self, r: &RequestRecord) {
        let now = OffsetDateTime::now_utc();
        let kind = Kind {
            source: r.source.ip(),
            operation: r.operation.clone(),
            bucket: r.bucket.as_deref().map(cut),
            status: r.status,
            error: r.error.clone(),
            claimed: r.claimed.as_deref().map(cut),
        };
        let Ok(mut window) = self.window.lock() else { return };
        let full = window.tallies.len() >= MAX_TALLIES;
        let tally = match window.tallies.get_mut(&kind) {
            Some(t) => t,
            None if full => window.overflow.get_or_insert_with(|| Tally::new(r, now)),
            None => window.tallies.entry(kind).or_insert_with(|| Tally::new(r, now)),
        };
        tally.add(r, now);
    }

    /// The window's tallies as events (of `node`), the window starting afresh.
    pub fn drain(&self, node: &str) -> Vec<Event> {
        let window = match self.window.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => return Vec::new(),
        };
        let mut events: Vec<Event> = window
            .tallies
            .into_iter()
            .map(|(kind, tally)| Event {
                request_id: tally.first_request.clone(),
                claimed: kind.claimed,
                source: Some(kind.source.to_string()),
                bucket: kind.bucket,
                status: kind.status,
                error: kind.error,
                bytes_in: tally.bytes_in,
                detail: Some(tally.detail()),
                ..Event::now(node, &kind.operation)
            })
            .collect();
        if let Some(tally) = window.overflow {
            let detail = format!("{} (kinds past the first {MAX_TALLIES} of the window)", tally.detail());
            events.push(Event {
                request_id: tally.first_request.clone(),
                bytes_in: tally.bytes_in,
                detail: Some(detail),
                ..Event::now(node, OVERFLOW)
            });
        }
        events
    }
}

/// At most [`MAX_FIELD`] bytes, cut on a character boundary.
fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_FIELD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str, bucket: &str) -> RequestRecord {
        RequestRecord {
            request_id: "r".into(),
            operation: "PutObject".into(),
            inferred: false,
            bucket: Some(bucket.into()),
            key: Some("k".into()),
            version: None,
            principal: None,
            claimed: None,
            auth: None,
            source: format!("{ip}:1234").parse().expect("addr"),
            mutating: true,
            status: 403,
            error: Some("AccessDenied".into()),
            bytes_in: 0,
            bytes_out: 0,
            duration: std::time::Duration::ZERO,
        }
    }

    fn count_of(e: &Event) -> u64 {
        let detail = e.detail.as_deref().unwrap_or_default();
        let n = detail.split(' ').find_map(|w| w.strip_prefix("count=")).unwrap_or("0");
        n.parse().expect("count")
    }

    #[test]
    fn kinds_are_bounded_and_every_refusal_is_counted() {
        let refusals = Refusals::default();
        for i in 0..3000u32 {
            refusals.count(&refused("10.0.0.1", &format!("b{i}")));
            refusals.count(&refused("10.0.0.1", "same"));
        }
        let events = refusals.drain("n");
        assert_eq!(events.len(), MAX_TALLIES + 1);
        assert_eq!(events.iter().map(count_of).sum::<u64>(), 6000);
        assert!(events.iter().any(|e| e.operation == OVERFLOW));
        assert!(refusals.drain("n").is_empty(), "a drained window starts afresh");
    }

    #[test]
    fn long_fields_are_cut() {
        let refusals = Refusals::default();
        refusals.count(&refused("10.0.0.1", &"é".repeat(1000)));
        let events = refusals.drain("n");
        assert!(events[0].bucket.as_deref().is_some_and(|b| b.len() <= MAX_FIELD));
    }
}
