//! Offline verification of a whole log: every event whole, canonical and in
//! sequence, every head signed by the key given, every head's root equal to
//! the root recomputed from the events. The first failure is named.

use crate::head::{PublicKey, SignedHead};
use crate::merkle::{Frontier, empty_root};
use crate::store::LogDir;
use crate::{AuditError, Result, hex};

#[derive(Debug, Clone)]
pub struct Report {
    pub events: u64,
    /// Events whose segment is past retention (hashes only).
    pub pruned: u64,
    pub heads: usize,
    pub latest: Option<SignedHead>,
    /// Events after the latest head: whole and in sequence, but not yet signed.
    pub unsigned: u64,
}

fn fail(message: String) -> AuditError {
    AuditError::Invalid(message)
}

/// The heads in file order, each well-formed, numbered without gap, signed
/// by `key`, and never shrinking the tree.
fn checked_heads(dir: &LogDir, key: &PublicKey) -> Result<Vec<SignedHead>> {
    let mut heads: Vec<SignedHead> = Vec::new();
    for (line, parsed) in dir.read_heads()? {
        let place = format!("heads.jsonl line {line}");
        let head = parsed.map_err(|why| fail(format!("{place}: {why}")))?;
        let expected = heads.len() as u64;
        if head.head != expected {
            return Err(fail(format!(
                "{place}: holds head #{} where head #{expected} belongs: a head was removed, added or reordered",
                head.head
            )));
        }
        if !head.verify(key) {
            return Err(fail(format!(
                "{place}: the signature of head #{} does not verify under {key}: the head is forged or altered",
                head.head
            )));
        }
        if let Some(previous) = heads.last()
            && head.size < previous.size
        {
            return Err(fail(format!(
                "{place}: head #{} shrinks the tree from {} to {} events",
                head.head, previous.size, head.size
            )));
        }
        heads.push(head);
    }
    Ok(heads)
}

pub fn verify(dir: &LogDir, key: &PublicKey) -> Result<Report> {
    let heads = checked_heads(dir, key)?;
    let mut pending = heads.iter().peekable();
    let mut frontier = Frontier::default();
    let mut pruned = 0u64;
    let mut last_good = 0u64;

    let mut check = |frontier: &Frontier, last_good: &mut u64| -> Result<()> {
        while let Some(head) = pending.next_if(|h| h.size == frontier.size()) {
            let root = if frontier.size() == 0 { empty_root() } else { frontier.root() };
            if head.root != hex(&root) {
                return Err(fail(format!(
                    "head #{} (size {}) does not match the events: one of events {}..{} was changed, removed, \
                     inserted or reordered",
                    head.head,
                    head.size,
                    *last_good,
                    head.size.saturating_sub(1)
                )));
            }
            *last_good = head.size;
        }
        Ok(())
    };
    check(&frontier, &mut last_good)?;
    let events = dir.scan(|leaf| {
        pruned += u64::from(leaf.event.is_none());
        frontier.push(leaf.hash);
        check(&frontier, &mut last_good)
    })?;
    if let Some(head) = pending.next() {
        return Err(fail(format!(
            "head #{} covers {} events but the log holds {events}: the tail was truncated (events {events}..{} are gone)",
            head.head,
            head.size,
            head.size - 1
        )));
    }
    let latest = heads.last().cloned();
    let unsigned = events - latest.as_ref().map_or(0, |h| h.size);
    Ok(Report { events, pruned, heads: heads.len(), latest, unsigned })
}
