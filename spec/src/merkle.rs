//! RFC 9162 Merkle tree algorithms: tree roots, inclusion and consistency
//! proofs (generation over a [`NodeReader`] and verification).
//!
//! A node `(height, index)` is the root of the perfect subtree over leaves
//! `[index << height, (index + 1) << height)`. Proof generation first lists
//! the node ranges the RFC recursion needs, asks the reader for all of their
//! nodes in one call, then folds them: a log backed by tiles answers with
//! O(log n) tile reads.

use crate::hash::{node_hash, Hash, EMPTY_ROOT};

/// A perfect subtree: the node at `height` whose leftmost leaf is `index << height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a leaf hash).
    pub height: u8,
    /// Position among the nodes of that height, from the left.
    pub index: u64,
}

/// Why a node could not be read or a proof could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// `index >= size` for an inclusion proof.
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// `from > to` for a consistency proof.
    #[error("old size {from} is larger than new size {to}")]
    SizesOutOfOrder {
        /// Old size.
        from: u64,
        /// New size.
        to: u64,
    },
    /// The node store failed or did not hold a node.
    #[error("reading tree nodes: {0}")]
    Read(String),
}

/// Source of stored node hashes (tiles, a database, a test vector).
pub trait NodeReader {
    /// Returns the hashes of `nodes`, in the same order.
    fn read_nodes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ProofError>;
}

/// Largest power of two strictly smaller than `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Splits `[lo, hi)` into maximal aligned perfect subtrees, left to right.
///
/// For every range that the RFC recursion produces, folding these nodes from
/// the right ([`fold_range`]) yields the range's Merkle Tree Hash.
pub fn range_nodes(mut lo: u64, hi: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    while lo < hi {
        let align = if lo == 0 { 63 } else { lo.trailing_zeros() };
        let fit = 63 - (hi - lo).leading_zeros();
        let h = align.min(fit);
        out.push(NodeId {
            height: h as u8,
            index: lo >> h,
        });
        lo += 1u64 << h;
    }
    out
}

/// Folds the hashes of a range's nodes (from [`range_nodes`]) right to left.
pub fn fold_range(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return EMPTY_ROOT;
    };
    iter.fold(*last, |acc, h| node_hash(h, &acc))
}

/// Reads the nodes of several ranges in one call and folds each range.
fn read_ranges<R: NodeReader + ?Sized>(
    ranges: &[(u64, u64)],
    r: &R,
) -> Result<Vec<Hash>, ProofError> {
    let per: Vec<Vec<NodeId>> = ranges.iter().map(|&(lo, hi)| range_nodes(lo, hi)).collect();
    let all: Vec<NodeId> = per.iter().flatten().copied().collect();
    let hashes = r.read_nodes(&all)?;
    if hashes.len() != all.len() {
        return Err(ProofError::Read(format!(
            "reader returned {} hashes for {} nodes",
            hashes.len(),
            all.len()
        )));
    }
    let mut at = 0;
    Ok(per
        .iter()
        .map(|nodes| {
            let h = fold_range(&hashes[at..at + nodes.len()]);
            at += nodes.len();
            h
        })
        .collect())
}

/// Root hash of the tree of the first `size` leaves.
pub fn tree_root<R: NodeReader + ?Sized>(size: u64, r: &R) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(EMPTY_ROOT);
    }
    Ok(read_ranges(&[(0, size)], r)?[0])
}

/// The ranges whose hashes form PATH(index, D[0:size]), leaf sibling first.
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    // Iterative form of the RFC recursion, collecting from the root down,
    // then reversed so that the leaf's sibling comes first.
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
        }
    }
    out.reverse();
    out
}

/// Builds the RFC 9162 inclusion proof of leaf `index` in the tree of `size`.
pub fn prove_inclusion<R: NodeReader + ?Sized>(
    index: u64,
    size: u64,
    r: &R,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    read_ranges(&inclusion_ranges(index, size), r)
}

/// The ranges whose hashes form PROOF(from, D[0:to]); empty when
/// `from == 0` or `from == to`.
pub fn consistency_ranges(from: u64, to: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if from == 0 || from >= to {
        return out;
    }
    // SUBPROOF(m, D[lo:hi], b), iteratively from the root down.
    let (mut lo, mut hi, mut known) = (0u64, to, true);
    while from != hi {
        let k = split_point(hi - lo);
        if from <= lo + k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
            known = false;
        }
    }
    if !known {
        out.push((lo, hi));
    }
    out.reverse();
    out
}

/// Builds the RFC 9162 consistency proof from the tree of `from` leaves to
/// the tree of `to` leaves (empty for `from == 0` and `from == to`).
pub fn prove_consistency<R: NodeReader + ?Sized>(
    from: u64,
    to: u64,
    r: &R,
) -> Result<Vec<Hash>, ProofError> {
    if from > to {
        return Err(ProofError::SizesOutOfOrder { from, to });
    }
    read_ranges(&consistency_ranges(from, to), r)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The leaf index is not below the tree size.
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The old size is larger than the new size.
    #[error("old size {from} is larger than new size {to}")]
    SizesOutOfOrder {
        /// Old size.
        from: u64,
        /// New size.
        to: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, want {want}")]
    WrongLength {
        /// Hashes supplied.
        got: usize,
        /// Hashes the sizes call for.
        want: usize,
    },
    /// The proof leads to a different root.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let want = inclusion_ranges(index, size).len();
    if proof.len() != want {
        return Err(VerifyError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(VerifyError::WrongLength {
                got: proof.len(),
                want,
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && r == *root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2), with the edge cases
/// made explicit: `from == 0` needs an empty proof (the empty tree is a
/// prefix of every tree); `from == to` needs an empty proof and equal roots.
pub fn verify_consistency(
    from: u64,
    to: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if from > to {
        return Err(VerifyError::SizesOutOfOrder { from, to });
    }
    let want = consistency_ranges(from, to).len();
    if proof.len() != want {
        return Err(VerifyError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    // Equal sizes first: 0 -> 0 must also have the empty root on both sides.
    if from == to {
        return if old_root == new_root && (from != 0 || *old_root == EMPTY_ROOT) {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    if from == 0 {
        return if *old_root == EMPTY_ROOT {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (from - 1, to - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(VerifyError::RootMismatch);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if fr == *old_root && sr == *new_root && sn == 0 {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// Root of a perfect subtree given its leaf-level hashes (length a power of two).
pub fn perfect_root(row: &[Hash]) -> Hash {
    debug_assert!(row.len().is_power_of_two());
    if row.len() == 1 {
        return row[0];
    }
    let mut level: Vec<Hash> = row.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level[0]
}

/// Merkle Tree Hash of a list of leaf hashes by the RFC's recursive
/// definition; an independent reference for tests.
pub fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

/// Every complete node of a tree held in memory, level by level: an O(1)
/// [`NodeReader`] for tests, tools and benchmarks. It holds the whole tree,
/// so the log itself never uses it.
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// Builds every complete node above `leaves` (leaf hashes).
    pub fn new(leaves: Vec<Hash>) -> MemoryTree {
        let mut levels = vec![leaves];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let next = last
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        MemoryTree { levels }
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> &[Hash] {
        &self.levels[0]
    }

    /// The complete node at `height` and `index`, if the tree has it.
    pub fn node(&self, height: u8, index: u64) -> Option<Hash> {
        self.levels
            .get(height as usize)?
            .get(index as usize)
            .copied()
    }

    /// Root of the first `size` leaves (`size` ≤ the number of leaves).
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        tree_root(size, self)
    }
}

impl NodeReader for MemoryTree {
    fn read_nodes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ProofError> {
        nodes
            .iter()
            .map(|n| {
                self.node(n.height, n.index)
                    .ok_or_else(|| ProofError::Read(format!("no node {n:?}")))
            })
            .collect()
    }
}
