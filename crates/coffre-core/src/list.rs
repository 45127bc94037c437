//! ListObjects with prefix and delimiter over the engine's ordered scan.
//!
//! Keys under one common prefix are skipped with a single jump past the
//! prefix, so a listing costs one scan per page plus one seek per common
//! prefix, not one step per key under it. A page of either listing (keys or
//! versions) also stops once `max_scan` rows were read for it (after
//! returning at least one entry), truncated with its resume point, as S3 may
//! end a page early.

use std::ops::Bound;

use crate::error::Result;
use crate::meta::{ListedObject, ListedVersion, MetaStore, VersionCursor};
use crate::types::{BucketName, VersionId};

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Resume strictly after this key (start-after, marker, or continuation).
    pub after: Option<String>,
    pub max_keys: usize,
    /// Rows a page may read before it ends truncated; 0: [`DEFAULT_MAX_SCAN`].
    pub max_scan: usize,
}

/// Rows one listing request reads at most, unless configured.
pub const DEFAULT_MAX_SCAN: usize = 100_000;
/// Rows read after a jump past a common prefix: the next ones are often
/// more of the same kind, and a small read keeps each prefix cheap.
const AFTER_JUMP_BATCH: usize = 64;

/// Whether a page that read `scanned` rows and holds `entries` ends here:
/// never before its first entry, so that every page moves the listing on.
fn out_of_scan(scanned: usize, max_scan: usize, entries: usize) -> bool {
    scanned >= scan_bound(max_scan) && entries > 0
}

fn scan_bound(max_scan: usize) -> usize {
    if max_scan == 0 { DEFAULT_MAX_SCAN } else { max_scan }
}

/// How many rows the next read of a page may ask for: `wanted`, cut to what
/// is left of the page's bound so that a page never reads past it (at least
/// one row, for a page still without an entry).
fn next_batch(wanted: usize, scanned: usize, max_scan: usize) -> usize {
    wanted.min(scan_bound(max_scan).saturating_sub(scanned)).max(1)
}

/// Where a listing resumes after `after`: past the whole common prefix that
/// holds it (already returned), else just after it.
fn resume_after(after: &str, prefix: &str, delimiter: Option<&str>) -> Bound<Vec<u8>> {
    let rolled_up = delimiter.and_then(|d| {
        let rest = after.strip_prefix(prefix)?;
        rest.find(d).map(|i| &after[..prefix.len() + i + d.len()])
    });
    match rolled_up.and_then(|cp| prefix_successor(cp.as_bytes())) {
        Some(next) => Bound::Included(next),
        None => Bound::Excluded(after.as_bytes().to_vec()),
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned: where the next page resumes.
    pub last: Option<String>,
}

/// Smallest byte string greater than every string that starts with `prefix`;
/// `None` when no such string exists (all bytes 0xFF). Engines bound their
/// prefix scans with it.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Where a prefix scan starts: the later of the prefix itself and the
/// caller's own start bound (a marker or continuation token).
pub fn prefix_start<'a>(prefix: &'a [u8], start: Bound<&'a [u8]>) -> Bound<&'a [u8]> {
    match start {
        Bound::Unbounded => Bound::Included(prefix),
        Bound::Included(s) => Bound::Included(s.max(prefix)),
        Bound::Excluded(s) if s < prefix => Bound::Included(prefix),
        Bound::Excluded(s) => Bound::Excluded(s),
    }
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

pub async fn list(meta: &dyn MetaStore, bucket: &BucketName, q: &ListQuery) -> Result<ListPage> {
    let mut page = ListPage::default();
    if q.max_keys == 0 {
        return Ok(page);
    }
    let prefix = q.prefix.as_bytes();
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    // A resume point inside a common prefix that was already returned must skip it whole.
    let mut cursor: Bound<Vec<u8>> = match &q.after {
        Some(a) => resume_after(a, &q.prefix, delimiter),
        None => Bound::Unbounded,
    };
    let full_batch = (q.max_keys + 1).clamp(64, 1001);
    let (mut wanted, mut scanned) = (full_batch, 0);

    'scan: loop {
        if out_of_scan(scanned, q.max_scan, page.objects.len() + page.common_prefixes.len()) {
            page.is_truncated = true;
            break;
        }
        let batch = next_batch(wanted, scanned, q.max_scan);
        let entries = meta.list_objects(bucket, prefix, bound_ref(&cursor), batch).await?;
        let exhausted = entries.len() < batch;
        scanned += entries.len();
        wanted = full_batch;
        for entry in entries {
            let key = entry.key.as_str();
            let common =
                delimiter.and_then(|d| key[q.prefix.len()..].find(d).map(|i| &key[..q.prefix.len() + i + d.len()]));
            if page.objects.len() + page.common_prefixes.len() == q.max_keys {
                page.is_truncated = true;
                break 'scan;
            }
            match common {
                Some(cp) => {
                    // A resume point inside this prefix means it was on the previous page.
                    if !q.after.as_deref().is_some_and(|a| a.starts_with(cp)) {
                        page.common_prefixes.push(cp.to_owned());
                        page.last = Some(cp.to_owned());
                    }
                    match prefix_successor(cp.as_bytes()) {
                        // Jump: the next scan starts at the first key past the prefix.
                        Some(next) => cursor = Bound::Included(next),
                        None => break 'scan,
                    }
                    wanted = AFTER_JUMP_BATCH;
                    continue 'scan;
                }
                None => {
                    page.last = Some(key.to_owned());
                    cursor = Bound::Excluded(entry.key.as_bytes().to_vec());
                    page.objects.push(entry);
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(page)
}

#[derive(Debug, Clone, Default)]
pub struct VersionQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub version_marker: Option<VersionId>,
    pub max_keys: usize,
    /// Rows a page may read before it ends truncated; 0: [`DEFAULT_MAX_SCAN`].
    pub max_scan: usize,
}

#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub versions: Vec<ListedVersion>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// Where the next page resumes (NextKeyMarker, NextVersionIdMarker).
    pub next_key_marker: Option<String>,
    pub next_version_marker: Option<VersionId>,
}

/// ListObjectVersions: every version and delete marker, newest first within
/// a key, rolled up under common prefixes as ListObjects does.
pub async fn list_versions(meta: &dyn MetaStore, bucket: &BucketName, q: &VersionQuery) -> Result<VersionPage> {
    let mut page = VersionPage::default();
    if q.max_keys == 0 {
        return Ok(page);
    }
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut cursor = match &q.key_marker {
        Some(k) => {
            Bound::Excluded(VersionCursor { key: k.as_bytes().to_vec(), after_version: q.version_marker.clone() })
        }
        None => Bound::Unbounded,
    };
    let full_batch = (q.max_keys + 1).clamp(64, 1001);
    let (mut wanted, mut scanned) = (full_batch, 0);
    'scan: loop {
        if out_of_scan(scanned, q.max_scan, page.versions.len() + page.common_prefixes.len()) {
            page.is_truncated = true;
            break;
        }
        let batch = next_batch(wanted, scanned, q.max_scan);
        let entries = meta.list_versions(bucket, q.prefix.as_bytes(), cursor.clone(), batch).await?;
        let exhausted = entries.len() < batch;
        scanned += entries.len();
        wanted = full_batch;
        for entry in entries {
            let key = entry.key.as_str();
            let common =
                delimiter.and_then(|d| key[q.prefix.len()..].find(d).map(|i| &key[..q.prefix.len() + i + d.len()]));
            if page.versions.len() + page.common_prefixes.len() == q.max_keys {
                page.is_truncated = true;
                break 'scan;
            }
            match common {
                Some(cp) => {
                    if !q.key_marker.as_deref().is_some_and(|m| m.starts_with(cp)) {
                        page.common_prefixes.push(cp.to_owned());
                        page.next_key_marker = Some(cp.to_owned());
                        page.next_version_marker = None;
                    }
                    match prefix_successor(cp.as_bytes()) {
                        Some(next) => cursor = Bound::Included(VersionCursor { key: next, after_version: None }),
                        None => break 'scan,
                    }
                    wanted = AFTER_JUMP_BATCH;
                    continue 'scan;
                }
                None => {
                    page.next_key_marker = Some(key.to_owned());
                    page.next_version_marker = Some(entry.meta.version_id.clone());
                    cursor = Bound::Excluded(VersionCursor {
                        key: entry.key.as_bytes().to_vec(),
                        after_version: Some(entry.meta.version_id.clone()),
                    });
                    page.versions.push(entry);
                }
            }
        }
        if exhausted {
            break;
        }
    }
    if !page.is_truncated {
        page.next_key_marker = None;
        page.next_version_marker = None;
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_MAX_SCAN, next_batch, out_of_scan, prefix_successor};

    /// Read after read, a page never asks for more rows than its bound leaves
    /// (one at least, while it holds no entry), and ends once they are read.
    #[test]
    fn reads_stay_within_the_bound() {
        for max_scan in [1, 2, 7, 64, 1000] {
            for wanted in [1, 64, 1001] {
                let mut scanned = 0;
                while !out_of_scan(scanned, max_scan, 1) {
                    let batch = next_batch(wanted, scanned, max_scan);
                    assert!((1..=wanted).contains(&batch), "{batch} of {wanted} rows");
                    scanned += batch;
                }
                assert_eq!(scanned, max_scan, "bound {max_scan}, batches of {wanted}");
            }
        }
        assert_eq!(next_batch(10, 5, 5), 1, "a page without an entry still moves on");
        assert!(!out_of_scan(50, 5, 0), "never ends before its first entry");
        assert_eq!(next_batch(1001, 0, 0), 1001, "0: the default bound");
        assert_eq!(next_batch(1001, DEFAULT_MAX_SCAN - 3, 0), 3);
    }

    #[test]
    fn successor_of_prefix() {
        assert_eq!(prefix_successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }
}
