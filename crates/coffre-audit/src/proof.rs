//! Inclusion and consistency proofs as self-contained JSON documents: the
//! signed heads they rest on travel with them, so `verify-proof` needs only
//! the proof and the public key.

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::head::{PublicKey, SignedHead};
use crate::merkle::{self, Hash, leaf_hash};
use crate::store::LogDir;
use crate::{AuditError, Result, hex, unhex};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Proof {
    /// Event `seq` is leaf `seq` of the tree that `head` signs.
    Inclusion {
        seq: u64,
        leaf_hash: String,
        /// The event itself, unless its segment is past retention.
        event: Option<Box<Event>>,
        head: SignedHead,
        path: Vec<String>,
    },
    /// The tree `old` signs is a prefix of the tree `new` signs.
    Consistency { old: SignedHead, new: SignedHead, path: Vec<String> },
}

fn head_by_number(dir: &LogDir, number: u64) -> Result<SignedHead> {
    dir.read_heads()?
        .into_iter()
        .filter_map(|(_, h)| h.ok())
        .find(|h| h.head == number)
        .ok_or_else(|| AuditError::Invalid(format!("no signed head #{number} in the log")))
}

/// The leaf hashes of the first `size` events, and the event `want` if it is still stored.
fn leaves(dir: &LogDir, size: u64, want: Option<u64>) -> Result<(Vec<Hash>, Option<Event>)> {
    let mut hashes = Vec::with_capacity(size as usize);
    let mut found = None;
    let total = dir.scan(|leaf| {
        if leaf.seq < size {
            hashes.push(leaf.hash);
        }
        if Some(leaf.seq) == want {
            found = leaf.event;
        }
        Ok(())
    })?;
    if total < size {
        return Err(AuditError::Invalid(format!("the head covers {size} events but the log holds {total}")));
    }
    Ok((hashes, found))
}

fn hexes(path: &[Hash]) -> Vec<String> {
    path.iter().map(|h| hex(h)).collect()
}

impl Proof {
    /// Proves event `seq` against head `head`, or the latest head that covers it.
    pub fn inclusion(dir: &LogDir, seq: u64, head: Option<u64>) -> Result<Self> {
        let head = match head {
            Some(n) => head_by_number(dir, n)?,
            None => dir
                .read_heads()?
                .into_iter()
                .filter_map(|(_, h)| h.ok())
                .next_back()
                .ok_or_else(|| AuditError::Invalid("the log has no signed head yet".into()))?,
        };
        if seq >= head.size {
            return Err(AuditError::Invalid(format!(
                "event {seq} is not covered by head #{} (size {}); wait for the next head",
                head.head, head.size
            )));
        }
        let (hashes, event) = leaves(dir, head.size, Some(seq))?;
        if head.root != hex(&merkle::root(&hashes)) {
            return Err(AuditError::Invalid(format!(
                "head #{} does not match the log; run `coffre audit verify`",
                head.head
            )));
        }
        let path = merkle::inclusion_path(seq as usize, &hashes);
        let event = event.map(Box::new);
        Ok(Self::Inclusion { seq, leaf_hash: hex(&hashes[seq as usize]), event, head, path: hexes(&path) })
    }

    /// Proves that head `new` extends head `old`.
    pub fn consistency(dir: &LogDir, old: u64, new: u64) -> Result<Self> {
        let (old, new) = (head_by_number(dir, old)?, head_by_number(dir, new)?);
        if old.size > new.size {
            return Err(AuditError::Invalid(format!("head #{} is larger than head #{}", old.head, new.head)));
        }
        let (hashes, _) = leaves(dir, new.size, None)?;
        let path = merkle::consistency_path(old.size as usize, &hashes);
        Ok(Self::Consistency { old, new, path: hexes(&path) })
    }

    /// Checks the proof offline; the error says which part fails.
    pub fn verify(&self, key: &PublicKey) -> Result<String, String> {
        let parse_path = |path: &[String]| -> Result<Vec<Hash>, String> {
            path.iter().map(|h| unhex(h).and_then(|b| b.try_into().ok()).ok_or(format!("bad hash {h:?}"))).collect()
        };
        let signed = |head: &SignedHead| -> Result<Hash, String> {
            if !head.verify(key) {
                return Err(format!("head #{}: the signature does not verify under {key}", head.head));
            }
            head.root_hash().ok_or(format!("head #{}: bad root", head.head))
        };
        match self {
            Self::Inclusion { seq, leaf_hash: leaf, event, head, path } => {
                let root = signed(head)?;
                let leaf: Hash = unhex(leaf).and_then(|b| b.try_into().ok()).ok_or("bad leaf hash")?;
                if let Some(event) = event {
                    if event.seq != *seq {
                        return Err(format!("the event is #{}, the proof is for #{seq}", event.seq));
                    }
                    if leaf_hash(&event.canonical()) != leaf {
                        return Err(format!("event {seq} does not hash to the proven leaf: it was altered"));
                    }
                }
                if !merkle::verify_inclusion(*seq, head.size, &leaf, &parse_path(path)?, &root) {
                    return Err(format!("event {seq} is not in the tree of head #{} (size {})", head.head, head.size));
                }
                Ok(format!("event {seq} is included in head #{} (size {}, root {})", head.head, head.size, head.root))
            }
            Self::Consistency { old, new, path } => {
                let (old_root, new_root) = (signed(old)?, signed(new)?);
                let consistent = old.size == 0
                    || merkle::verify_consistency(old.size, new.size, &old_root, &new_root, &parse_path(path)?);
                if !consistent {
                    return Err(format!(
                        "head #{} (size {}) is not a prefix of head #{} (size {}): the log was rewritten",
                        old.head, old.size, new.head, new.size
                    ));
                }
                Ok(format!("head #{} (size {}) extends head #{} (size {})", new.head, new.size, old.head, old.size))
            }
        }
    }
}
