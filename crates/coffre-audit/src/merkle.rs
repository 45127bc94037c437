//! The Merkle tree of RFC 6962 §2.1 (kept by RFC 9162 §2.1): SHA-256, leaf
//! hashes `H(0x00 || event)`, node hashes `H(0x01 || left || right)`, the
//! split at the largest power of two below the size; audit paths and
//! consistency proofs, and their verification as RFC 9162 §2.1.3.2 and
//! §2.1.4.2 give it.

use aws_lc_rs::digest::{self, SHA256};

pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The root of the empty tree: the hash of the empty string.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH(D[n]) over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The right edge of a growing tree: one root per full subtree, largest
/// first, so that appending and taking the root are O(log n) and memory does
/// not grow with the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (subtree size, subtree root), sizes strictly decreasing powers of two.
    peaks: Vec<(u64, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        self.size += 1;
        let mut carry = (1u64, leaf);
        while let Some(&(size, hash)) = self.peaks.last() {
            if size != carry.0 {
                break;
            }
            self.peaks.pop();
            carry = (size * 2, node_hash(&hash, &carry.1));
        }
        self.peaks.push(carry);
    }

    /// MTH of everything pushed so far: the peaks folded from the right,
    /// which is where RFC 6962's split puts them.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = peaks.next() else { return empty_root() };
        for (_, left) in peaks {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// PATH(m, D[n]): the audit path of leaf `m`.
pub fn inclusion_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    let (mut path, sibling) = if m < k {
        (inclusion_path(m, &leaves[..k]), root(&leaves[k..]))
    } else {
        (inclusion_path(m - k, &leaves[k..]), root(&leaves[..k]))
    };
    path.push(sibling);
    path
}

/// PROOF(m, D[n]): that the tree of the first `m` leaves is a prefix of this one.
pub fn consistency_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole { Vec::new() } else { vec![root(leaves)] };
        }
        let k = split(n);
        let (mut proof, other) = if m <= k {
            (subproof(m, &leaves[..k], whole), root(&leaves[k..]))
        } else {
            (subproof(m - k, &leaves[k..], false), root(&leaves[..k]))
        };
        proof.push(other);
        proof
    }
    if m == 0 || m > leaves.len() {
        return Vec::new();
    }
    subproof(m, leaves, true)
}

/// RFC 9162 §2.1.3.2.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], expected_root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *expected_root
}

/// RFC 9162 §2.1.4.2, for 1 ≤ first ≤ second.
pub fn verify_consistency(first: u64, second: u64, first_root: &Hash, second_root: &Hash, path: &[Hash]) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return path.is_empty() && first_root == second_root;
    }
    let mut path: Vec<Hash> = path.to_vec();
    if first.is_power_of_two() {
        path.insert(0, *first_root);
    }
    let Some((&head, rest)) = path.split_first() else { return false };
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (head, head);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *first_root && sr == *second_root && snode == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("event {i}").as_bytes())).collect()
    }

    #[test]
    fn empty_and_single_trees_follow_rfc_6962() {
        // RFC 6962 §2.1: MTH({}) = SHA-256(), MTH({d0}) = SHA-256(0x00 || d0).
        assert_eq!(crate::hex(&empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(root(&[leaf_hash(b"")]), leaf_hash(b""));
        assert_eq!(crate::hex(&leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    #[test]
    fn frontier_root_matches_the_recursive_definition() {
        let all = leaves(130);
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), root(&[]));
        for n in 1..=all.len() {
            frontier.push(all[n - 1]);
            assert_eq!(frontier.root(), root(&all[..n]), "size {n}");
        }
        assert!(frontier.peaks.len() <= 8);
    }

    #[test]
    fn every_inclusion_proof_verifies_and_no_other_does() {
        let all = leaves(40);
        for n in 1..=all.len() {
            let tree_root = root(&all[..n]);
            for m in 0..n {
                let path = inclusion_path(m, &all[..n]);
                assert!(verify_inclusion(m as u64, n as u64, &all[m], &path, &tree_root), "m={m} n={n}");
                let other = (m + 1) % n;
                if other != m {
                    assert!(!verify_inclusion(other as u64, n as u64, &all[m], &path, &tree_root));
                    assert!(!verify_inclusion(m as u64, n as u64, &all[other], &path, &tree_root));
                }
                if n < all.len() {
                    let grown = root(&all[..n + 1]);
                    assert!(!verify_inclusion(m as u64, n as u64 + 1, &all[m], &path, &grown), "m={m} n={n}");
                }
                if let Some(first) = path.first() {
                    let mut bad = path.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(m as u64, n as u64, &all[m], &bad, &tree_root), "{first:?}");
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_tampering_fails() {
        let all = leaves(40);
        for n in 1..=all.len() {
            let new_root = root(&all[..n]);
            for m in 1..=n {
                let old_root = root(&all[..m]);
                let path = consistency_path(m, &all[..n]);
                assert!(verify_consistency(m as u64, n as u64, &old_root, &new_root, &path), "m={m} n={n}");
                if m < n {
                    let mut forked = all[..n].to_vec();
                    forked[m - 1] = leaf_hash(b"rewritten");
                    let forked_root = root(&forked);
                    assert!(!verify_consistency(m as u64, n as u64, &old_root, &forked_root, &path), "m={m} n={n}");
                    let shorter = root(&all[..n - 1]);
                    assert!(!verify_consistency(m as u64, n as u64 - 1, &old_root, &shorter, &path) || m == n - 1);
                }
            }
        }
    }
}
