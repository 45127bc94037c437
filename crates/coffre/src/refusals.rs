//! Refused unauthenticated requests, counted instead of written one by one:
//! a stranger's traffic grows the audit log by at most one tally per window.
//!
//! A tally is one kind of refusal (source address, operation, bucket, status,
//! error, claimed access key) over a window; at most [`MAX_TALLIES`] kinds
//! are kept per window, and every refusal past that lands in one overflow
//! tally. Each tally becomes one event when the window is flushed; tallies
//! the log did not take are merged into the next window, never lost.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

/// Whether a request is counted here rather than recorded by itself: no
/// signature was verified, so nobody answers for it, and it was refused or is
/// a CORS preflight (never signed; the allowed ones too, so that a stranger's
/// preflights grow the log no more than a stranger's refusals).
pub fn is_unauthenticated_refusal(r: &RequestRecord) -> bool {
    r.principal.is_none() && (r.status >= 400 || r.operation == coffre_s3::PREFLIGHT)
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

    /// This tally and an `earlier` one of the same kind, as one.
    fn merge(&mut self, earlier: Tally) {
        self.count += earlier.count;
        self.bytes_in = self.bytes_in.saturating_add(earlier.bytes_in);
        if earlier.first <= self.first {
            self.first = earlier.first;
            self.first_request = earlier.first_request;
        }
        self.last = self.last.max(earlier.last);
    }

    /// `what`: "refused unauthenticated", or "unauthenticated" for the
    /// preflights that were answered.
    fn detail(&self, what: &str) -> String {
        format!("{what} count={} first={} last={}", self.count, format_time(self.first), format_time(self.last))
    }
}

#[derive(Default)]
struct Window {
    tallies: HashMap<Kind, Tally>,
    overflow: Option<Tally>,
}

impl Window {
    /// The tally `kind` counts in: its own, or the overflow once the window is full.
    fn tally(&mut self, kind: Kind, fresh: impl FnOnce() -> Tally) -> &mut Tally {
        let full = self.tallies.len() >= MAX_TALLIES;
        match self.tallies.entry(kind) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if full => self.overflow.get_or_insert_with(fresh),
            Entry::Vacant(e) => e.insert(fresh()),
        }
    }
}

/// One tally taken from a window, to be written as one event.
pub struct Taken {
    /// `None`: the overflow tally.
    kind: Option<Kind>,
    tally: Tally,
}

impl Taken {
    /// The tally as an event of `node`.
    pub fn event(&self, node: &str) -> Event {
        let tally = &self.tally;
        let Some(kind) = &self.kind else {
            let detail = format!(
                "{} (kinds past the first {MAX_TALLIES} of the window)",
                tally.detail("refused unauthenticated")
            );
            return Event {
                request_id: tally.first_request.clone(),
                bytes_in: tally.bytes_in,
                detail: Some(detail),
                ..Event::now(node, OVERFLOW)
            };
        };
        Event {
            request_id: tally.first_request.clone(),
            claimed: kind.claimed.clone(),
            source: Some(kind.source.to_string()),
            bucket: kind.bucket.clone(),
            status: kind.status,
            error: kind.error.clone(),
            bytes_in: tally.bytes_in,
            detail: Some(tally.detail(if kind.status >= 400 { "refused unauthenticated" } else { "unauthenticated" })),
            ..Event::now(node, &kind.operation)
        }
    }
}

/// The current window's tallies.
#[derive(Default)]
pub struct Refusals {
    window: Mutex<Window>,
}

impl Refusals {
    /// Counts a request [`is_unauthenticated_refusal`] says is tallied.
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
        window.tally(kind, || Tally::new(r, now)).add(r, now);
    }

    /// The window's tallies, the window starting afresh.
    pub fn drain(&self) -> Vec<Taken> {
        let window = match self.window.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => return Vec::new(),
        };
        let overflow = window.overflow.map(|tally| Taken { kind: None, tally });
        window.tallies.into_iter().map(|(kind, tally)| Taken { kind: Some(kind), tally }).chain(overflow).collect()
    }

    /// Puts back tallies the log did not take: they count in the current
    /// window (merged with its tallies of the same kind) until written.
    pub fn restore(&self, unwritten: impl IntoIterator<Item = Taken>) {
        let Ok(mut window) = self.window.lock() else { return };
        for Taken { kind, tally } in unwritten {
            let start = || Tally { count: 0, bytes_in: 0, ..tally.clone() };
            let into = match kind {
                Some(kind) => window.tally(kind, start),
                None => window.overflow.get_or_insert_with(start),
            };
            into.merge(tally);
        }
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
            denied_because: None,
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

    fn events(taken: Vec<Taken>) -> Vec<Event> {
        taken.iter().map(|t| t.event("n")).collect()
    }

    #[test]
    fn tallies_put_back_merge_into_the_next_window_and_nothing_is_lost() {
        let refusals = Refusals::default();
        for i in 0..(MAX_TALLIES as u32 + 10) {
            refusals.count(&refused("10.0.0.1", &format!("b{i}")));
        }
        refusals.count(&refused("10.0.0.1", "b0"));
        // The log took none of them; meanwhile more refusals come.
        refusals.restore(refusals.drain());
        refusals.count(&refused("10.0.0.1", "b0"));
        refusals.count(&refused("10.0.0.2", "new"));
        let events = events(refusals.drain());
        assert_eq!(events.iter().map(count_of).sum::<u64>(), MAX_TALLIES as u64 + 13);
        let b0 = events.iter().find(|e| e.bucket.as_deref() == Some("b0")).expect("b0");
        assert_eq!(count_of(b0), 3, "{b0:?}");
        assert_eq!(events.iter().filter(|e| e.operation == OVERFLOW).count(), 1);
        assert_eq!(events.len(), MAX_TALLIES + 1, "kinds stay bounded");
    }

    #[test]
    fn kinds_are_bounded_and_every_refusal_is_counted() {
        let refusals = Refusals::default();
        for i in 0..3000u32 {
            refusals.count(&refused("10.0.0.1", &format!("b{i}")));
            refusals.count(&refused("10.0.0.1", "same"));
        }
        let events = events(refusals.drain());
        assert_eq!(events.len(), MAX_TALLIES + 1);
        assert_eq!(events.iter().map(count_of).sum::<u64>(), 6000);
        assert!(events.iter().any(|e| e.operation == OVERFLOW));
        assert!(refusals.drain().is_empty(), "a drained window starts afresh");
    }

    #[test]
    fn long_fields_are_cut() {
        let refusals = Refusals::default();
        refusals.count(&refused("10.0.0.1", &"é".repeat(1000)));
        let events = events(refusals.drain());
        assert!(events[0].bucket.as_deref().is_some_and(|b| b.len() <= MAX_FIELD));
    }
}
