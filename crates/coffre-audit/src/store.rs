//! The files of a log directory, and one pass over its events in order that
//! the writer's recovery, the verifier, the proofs and queries all share.

use std::path::{Path, PathBuf};

use crate::event::Event;
use crate::head::SignedHead;
use crate::merkle::{Hash, leaf_hash};
use crate::{AuditError, Result};

pub const EVENTS_EXT: &str = "jsonl";
pub const HASHES_EXT: &str = "hashes";

#[derive(Debug, Clone)]
pub struct LogDir {
    root: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Canonical events, one per line.
    Events,
    /// A segment past retention: the 32-byte leaf hashes of its events.
    Hashes,
}

#[derive(Debug, Clone)]
pub struct SegmentFile {
    pub first: u64,
    pub kind: SegmentKind,
    pub path: PathBuf,
}

/// Where an event sits, for messages a person can act on.
#[derive(Debug, Clone)]
pub struct Place {
    pub file: PathBuf,
    /// 1-based line (events) or record (hashes).
    pub line: u64,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        write!(f, "{name} line {}", self.line)
    }
}

/// One leaf met by [`LogDir::scan`].
pub struct Leaf {
    pub seq: u64,
    pub hash: Hash,
    /// `None` for a segment pruned by retention.
    pub event: Option<Event>,
    pub place: Place,
}

impl LogDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn segments_dir(&self) -> PathBuf {
        self.root.join("segments")
    }

    pub fn heads_path(&self) -> PathBuf {
        self.root.join("heads.jsonl")
    }

    pub fn segment_path(&self, first: u64, kind: SegmentKind) -> PathBuf {
        let ext = match kind {
            SegmentKind::Events => EVENTS_EXT,
            SegmentKind::Hashes => HASHES_EXT,
        };
        self.segments_dir().join(format!("{first:020}.{ext}"))
    }

    /// The segment files by first sequence number. A segment present both as
    /// events and hashes (retention interrupted between writing one and
    /// removing the other) counts as its events.
    pub fn segments(&self) -> Result<Vec<SegmentFile>> {
        let dir = self.segments_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(AuditError::io(format!("listing {}", dir.display()))(e)),
        };
        let mut segments = Vec::new();
        for entry in entries {
            let path = entry.map_err(AuditError::io(format!("listing {}", dir.display())))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let parsed = name.split_once('.').and_then(|(stem, ext)| {
                let kind = match ext {
                    EVENTS_EXT => SegmentKind::Events,
                    HASHES_EXT => SegmentKind::Hashes,
                    _ => return None,
                };
                (stem.len() == 20).then(|| stem.parse::<u64>().ok()).flatten().map(|first| (first, kind))
            });
            match parsed {
                Some((first, kind)) => segments.push(SegmentFile { first, kind, path }),
                None if name.ends_with(".tmp") => {}
                None => return Err(AuditError::Invalid(format!("unexpected file in the log: {}", path.display()))),
            }
        }
        segments.sort_by_key(|s| (s.first, s.kind == SegmentKind::Hashes));
        segments.dedup_by_key(|s| s.first);
        Ok(segments)
    }

    /// Every leaf in order, checking that sequence numbers run on without gap
    /// and that each event is whole and canonical. Stops at the first problem,
    /// named with its place.
    pub fn scan(&self, mut visit: impl FnMut(Leaf) -> Result<()>) -> Result<u64> {
        let mut next = 0u64;
        for segment in self.segments()? {
            if segment.first != next {
                let what = if segment.first > next {
                    format!("events {next}..{} are missing", segment.first - 1)
                } else {
                    format!("it overlaps events before it, which end at {}", next - 1)
                };
                return Err(AuditError::Invalid(format!(
                    "segment {} starts at event {} where event {next} comes next: {what}",
                    segment.path.display(),
                    segment.first
                )));
            }
            next = match segment.kind {
                SegmentKind::Events => scan_events(&segment, next, &mut visit)?,
                SegmentKind::Hashes => scan_hashes(&segment, next, &mut visit)?,
            };
        }
        Ok(next)
    }

    pub fn read_heads(&self) -> Result<Vec<(u64, std::result::Result<SignedHead, String>)>> {
        let path = self.heads_path();
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(AuditError::io(format!("reading {}", path.display()))(e)),
        };
        let mut heads = Vec::new();
        let mut lines = text.split(|&b| b == b'\n').peekable();
        let mut number = 0u64;
        while let Some(line) = lines.next() {
            number += 1;
            if line.is_empty() && lines.peek().is_none() {
                break;
            }
            let parsed = if lines.peek().is_none() {
                Err("the last head is cut short (no newline)".to_owned())
            } else {
                serde_json::from_slice::<SignedHead>(line).map_err(|e| format!("not a signed head: {e}"))
            };
            heads.push((number, parsed));
        }
        Ok(heads)
    }
}

fn scan_events(segment: &SegmentFile, mut next: u64, visit: &mut impl FnMut(Leaf) -> Result<()>) -> Result<u64> {
    let bytes = std::fs::read(&segment.path).map_err(AuditError::io(format!("reading {}", segment.path.display())))?;
    let mut rest = &bytes[..];
    let mut line_no = 0u64;
    while !rest.is_empty() {
        line_no += 1;
        let place = Place { file: segment.path.clone(), line: line_no };
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(AuditError::Invalid(format!(
                "{place}: event {next} is cut short (the file ends mid-line): the tail was truncated"
            )));
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let event = Event::from_canonical(line)
            .map_err(|why| AuditError::Invalid(format!("{place}: event {next} was altered: {why}")))?;
        if event.seq != next {
            let what = if event.seq > next {
                format!("event {next} is missing or out of order (found event {} in its place)", event.seq)
            } else {
                format!("event {} appears again or out of order where event {next} belongs", event.seq)
            };
            return Err(AuditError::Invalid(format!("{place}: {what}")));
        }
        visit(Leaf { seq: next, hash: leaf_hash(line), event: Some(event), place })?;
        next += 1;
    }
    Ok(next)
}

fn scan_hashes(segment: &SegmentFile, mut next: u64, visit: &mut impl FnMut(Leaf) -> Result<()>) -> Result<u64> {
    let bytes = std::fs::read(&segment.path).map_err(AuditError::io(format!("reading {}", segment.path.display())))?;
    if !bytes.len().is_multiple_of(32) {
        return Err(AuditError::Invalid(format!("{}: not a whole number of hashes", segment.path.display())));
    }
    for (i, chunk) in bytes.chunks_exact(32).enumerate() {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(chunk);
        let place = Place { file: segment.path.clone(), line: i as u64 + 1 };
        visit(Leaf { seq: next, hash, event: None, place })?;
        next += 1;
    }
    Ok(next)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    coffre_disk::sync_dir(dir).map_err(AuditError::io(format!("syncing directory {}", dir.display())))
}

/// Writes `bytes` to `path` through a temporary file, durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    coffre_disk::replace(path, bytes).map_err(AuditError::io(format!("writing {}", path.display())))
}
