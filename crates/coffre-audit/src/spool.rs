//! The events a shared log's database refused, kept in a file of this
//! gateway until the database takes them: they outlive a crash or a restart.
//!
//! ```text
//! DIR/spool.jsonl    one canonical event per line, oldest first; appended and
//!                    synced once per refused flush, emptied once the database took them
//! DIR/spool.dropped  how many events were let go past the bound since then
//! ```
//!
//! At most [`LIMIT`] events are kept: later ones are counted, not kept, and
//! the count is offered to the database after the kept events as one
//! `audit:Dropped` event. A crash between the database taking the backlog and
//! the spool being emptied offers those events again: they are stored twice
//! rather than lost.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::event::Event;
use crate::{AuditError, Result};

/// Events kept (about 10 MiB of typical events, on disk and in memory).
pub const LIMIT: usize = 10_000;
/// The operation of the event that counts the events let go.
pub const DROPPED: &str = "audit:Dropped";

pub struct Spool {
    /// Where the events go; `None` keeps them in memory only.
    files: Option<Files>,
    events: VecDeque<Event>,
    dropped: u64,
}

struct Files {
    events: PathBuf,
    dropped: PathBuf,
    append: File,
}

impl Spool {
    /// A spool in memory only (lost with the process).
    pub fn in_memory() -> Self {
        Self { files: None, events: VecDeque::new(), dropped: 0 }
    }

    /// The spool in `dir`, with what an earlier run left in it (a line cut by
    /// a crash is let go: its flush was never acknowledged as kept).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(AuditError::io(format!("creating {}", dir.display())))?;
        let events_path = dir.join("spool.jsonl");
        let dropped_path = dir.join("spool.dropped");
        let text = match std::fs::read(&events_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(AuditError::io(format!("reading {}", events_path.display()))(e)),
        };
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let mut events: VecDeque<Event> = lines.iter().filter_map(|l| Event::from_canonical(l).ok()).collect();
        let mut dropped = read_count(&dropped_path)?;
        if events.len() != lines.len() {
            tracing::warn!(lines = lines.len() - events.len(), path = %events_path.display(), "unreadable lines of the audit spool let go (cut by a crash)");
            let good: Vec<u8> = events.iter().flat_map(line).collect();
            crate::store::write_atomic(&events_path, &good)?;
        }
        let over = events.len().saturating_sub(LIMIT);
        events.truncate(LIMIT);
        dropped += over as u64;
        let append = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events_path)
            .map_err(AuditError::io(format!("opening {}", events_path.display())))?;
        if !events.is_empty() {
            tracing::warn!(
                events = events.len(),
                dropped,
                "audit events the database refused before the restart are kept to be stored"
            );
        }
        Ok(Self { files: Some(Files { events: events_path, dropped: dropped_path, append }), events, dropped })
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.dropped == 0
    }

    /// What to offer the database, oldest first: the kept events, then the
    /// count of those let go, as one event.
    pub fn backlog(&self) -> Vec<Event> {
        let mut backlog: Vec<Event> = self.events.iter().cloned().collect();
        if self.dropped > 0 {
            let node = self.events.front().map_or("", |e| e.node.as_str());
            backlog.push(Event {
                detail: Some(format!(
                    "count={} events the database refused were let go: more were waiting than the spool keeps ({LIMIT})",
                    self.dropped
                )),
                ..Event::now(node, DROPPED)
            });
        }
        backlog
    }

    /// Keeps `refused` after the events already kept, within [`LIMIT`], and
    /// syncs them to the file: one write and one sync for the lot.
    pub fn keep(&mut self, refused: Vec<Event>) {
        let room = LIMIT.saturating_sub(self.events.len());
        let over = refused.len().saturating_sub(room);
        let kept: Vec<Event> = refused.into_iter().take(room).collect();
        if over > 0 {
            self.dropped += over as u64;
            tracing::error!(
                events = over,
                bound = LIMIT,
                "audit events the database refused were let go, and counted: the spool is full"
            );
        }
        if let Err(e) = self.write(&kept, over > 0) {
            tracing::error!(error = %e, events = kept.len(), "audit events the database refused are kept in memory only: the spool cannot be written");
        }
        self.events.extend(kept);
    }

    /// The database took the backlog: the spool starts afresh.
    pub fn clear(&mut self) {
        self.events.clear();
        self.dropped = 0;
        if let Some(files) = &self.files {
            let emptied = files.append.set_len(0).and_then(|()| files.append.sync_data());
            let count = std::fs::remove_file(&files.dropped).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            });
            if let Err(e) = emptied.and(count) {
                tracing::error!(error = %e, path = %files.events.display(), "the audit spool could not be emptied: its events may be stored again after a restart");
            }
        }
    }

    fn write(&mut self, events: &[Event], count_changed: bool) -> Result<()> {
        let Some(files) = &mut self.files else { return Ok(()) };
        let bytes: Vec<u8> = events.iter().flat_map(line).collect();
        let what = format!("appending to {}", files.events.display());
        files.append.write_all(&bytes).map_err(AuditError::io(what.clone()))?;
        files.append.sync_data().map_err(AuditError::io(what))?;
        if count_changed {
            crate::store::write_atomic(&files.dropped, self.dropped.to_string().as_bytes())?;
        }
        Ok(())
    }
}

fn line(event: &Event) -> Vec<u8> {
    let mut line = event.canonical();
    line.push(b'\n');
    line
}

fn read_count(path: &Path) -> Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| AuditError::Invalid(format!("{} is not a count", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(AuditError::io(format!("reading {}", path.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> Event {
        Event { request_id: format!("r{i}"), status: 503, ..Event::now("gw-0", "PutObject") }
    }

    fn ids(events: &[Event]) -> Vec<String> {
        events.iter().map(|e| e.request_id.clone()).collect()
    }

    #[test]
    fn kept_events_outlive_the_process_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut spool = Spool::open(dir.path()).expect("open");
        spool.keep(vec![event(0), event(1)]);
        spool.keep(vec![event(2)]);
        drop(spool);
        let reopened = Spool::open(dir.path()).expect("reopen");
        assert_eq!(ids(&reopened.backlog()), ["r0", "r1", "r2"]);
    }

    #[test]
    fn a_line_cut_by_a_crash_is_let_go_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut spool = Spool::open(dir.path()).expect("open");
        spool.keep(vec![event(0)]);
        drop(spool);
        let path = dir.path().join("spool.jsonl");
        let mut text = std::fs::read(&path).expect("spool");
        text.extend_from_slice(&event(1).canonical()[..20]);
        std::fs::write(&path, text).expect("cut");
        let mut spool = Spool::open(dir.path()).expect("reopen");
        spool.keep(vec![event(2)]);
        drop(spool);
        assert_eq!(ids(&Spool::open(dir.path()).expect("reopen").backlog()), ["r0", "r2"]);
    }

    #[test]
    fn past_the_bound_events_are_counted_in_one_event() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut spool = Spool::open(dir.path()).expect("open");
        spool.keep((0..LIMIT - 1).map(event).collect());
        spool.keep((0..5).map(event).collect());
        drop(spool);
        let backlog = Spool::open(dir.path()).expect("reopen").backlog();
        assert_eq!(backlog.len(), LIMIT + 1);
        let last = backlog.last().expect("an event");
        assert_eq!(last.operation, DROPPED);
        assert!(last.detail.as_deref().is_some_and(|d| d.starts_with("count=4 ")), "{last:?}");
    }

    #[test]
    fn a_cleared_spool_starts_afresh_on_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut spool = Spool::open(dir.path()).expect("open");
        spool.keep((0..LIMIT + 3).map(event).collect());
        spool.clear();
        assert!(spool.is_empty());
        spool.keep(vec![event(7)]);
        drop(spool);
        assert_eq!(ids(&Spool::open(dir.path()).expect("reopen").backlog()), ["r7"]);
    }
}
