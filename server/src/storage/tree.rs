//! The tree as stored tiles: the stored tile format (the served hashes plus
//! the seven levels above them, so that any node is one read away), the
//! right edge that the sequencer extends, and a node reader for proofs.

use std::cell::RefCell;
use std::sync::Arc;

use vellum_spec::hash::{node_hash, Hash, HASH_SIZE};
use vellum_spec::merkle::{NodeId, NodeReader, ProofError};
use vellum_spec::tile::{tile_width, TILE_HEIGHT, TILE_WIDTH};

use crate::storage::{LogStore, StoreError, StoredTileBytes};

/// Hashes a stored tile holds: its 256 and the 255 above them in its subtree.
const SLOTS: usize = 2 * TILE_WIDTH as usize - 1;
/// Bytes of a stored tile.
pub const STORED_TILE_BYTES: usize = SLOTS * HASH_SIZE;

/// Position of row `r` in a stored tile, in hashes.
pub fn row_offset(r: u8) -> usize {
    (0..r).map(|k| TILE_WIDTH as usize >> k).sum()
}

/// Encodes a tile for storage: rows 0..8 of the tile's subtree at fixed
/// offsets (row 0 is the served tile; row r has room for `256 >> r`
/// hashes), zeros where a partial tile has no hash yet. Fixed offsets mean
/// a growing tile can be rewritten in place: every hash has one position.
pub fn encode_tile(row0: &[Hash]) -> Vec<u8> {
    let mut out = vec![0u8; STORED_TILE_BYTES];
    extend_encoding(&mut out, row0, 0);
    out
}

/// Brings the encoding of a tile whose row 0 held `from` hashes up to
/// `row0`: writes the new hashes and computes only the nodes above them,
/// so a commit of k entries hashes about k nodes, not the whole tile.
fn extend_encoding(enc: &mut [u8], row0: &[Hash], from: usize) {
    let at = |r: u8, pos: usize| (row_offset(r) + pos) * HASH_SIZE;
    for (i, h) in row0.iter().enumerate().skip(from) {
        enc[at(0, i)..at(0, i) + HASH_SIZE].copy_from_slice(&h.0);
    }
    let (mut lo, mut len) = (from, row0.len());
    for r in 1..TILE_HEIGHT {
        (lo, len) = (lo / 2, len / 2);
        for p in lo..len {
            let node = |i: usize| {
                let mut h = [0u8; HASH_SIZE];
                h.copy_from_slice(&enc[at(r - 1, i)..at(r - 1, i) + HASH_SIZE]);
                Hash(h)
            };
            let h = node_hash(&node(2 * p), &node(2 * p + 1));
            enc[at(r, p)..at(r, p) + HASH_SIZE].copy_from_slice(&h.0);
        }
    }
}

/// True if `stored` holds `expected`'s nodes that are complete at row-0
/// width `width` (both stored tile encodings). Bytes past them may differ:
/// a later commit fills them in place.
pub fn same_complete_nodes(expected: &[u8], stored: &[u8], width: usize) -> bool {
    if expected.len() != STORED_TILE_BYTES || stored.len() != STORED_TILE_BYTES {
        return false;
    }
    (0..TILE_HEIGHT).all(|r| {
        let from = row_offset(r) * HASH_SIZE;
        let to = from + (width >> r) * HASH_SIZE;
        expected[from..to] == stored[from..to]
    })
}

/// A stored tile read at a known width (from the durable tree size; bytes
/// beyond it are never read).
pub struct StoredTile<'a> {
    data: &'a [u8],
    width: usize,
}

impl<'a> StoredTile<'a> {
    /// Wraps stored bytes whose row 0 holds at least `width` hashes.
    pub fn new(data: &'a [u8], width: usize) -> Result<StoredTile<'a>, StoreError> {
        if data.len() != STORED_TILE_BYTES || width == 0 || width > TILE_WIDTH as usize {
            return Err(StoreError::Corrupt(format!(
                "stored tile has {} bytes (want {STORED_TILE_BYTES}), width {width}",
                data.len()
            )));
        }
        Ok(StoredTile { data, width })
    }

    /// Hash `pos` of row `r` (the node `r` levels above row 0).
    pub fn node(&self, r: u8, pos: usize) -> Option<Hash> {
        if pos >= self.width >> r {
            return None;
        }
        let at = (row_offset(r) + pos) * HASH_SIZE;
        Hash::from_slice(&self.data[at..at + HASH_SIZE]).ok()
    }
}

/// The right edge of the tree: the rightmost, incomplete tile of every
/// level. O(log n) memory; everything to its left is immutable on disk.
pub struct TreeEdge {
    size: u64,
    /// `rows[L]`: row 0 of the incomplete tile at level L.
    rows: Vec<Vec<Hash>>,
    /// `enc[L]`: that tile's stored encoding, with the rows above row 0,
    /// as last written; the root is read from it without rehashing.
    enc: Vec<Option<Arc<Vec<u8>>>>,
}

impl TreeEdge {
    /// Loads the edge of a tree of `size` leaves from the store.
    pub fn load(store: &dyn LogStore, size: u64) -> Result<TreeEdge, StoreError> {
        let mut rows = Vec::new();
        for level in 0..64u8 {
            let len = row_len(size, level);
            if len == 0 {
                break;
            }
            let index = len / TILE_WIDTH;
            let w = tile_width(level, index, size) as usize;
            let mut row = Vec::new();
            if w > 0 {
                let data = store
                    .tile_hashes(level, index, 0, w, false)?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("tile {level}/{index} is missing"))
                    })?;
                row = vellum_spec::tile::tile_hashes(&data)
                    .ok_or_else(|| StoreError::Corrupt(format!("tile {level}/{index} is short")))?;
            }
            rows.push(row);
        }
        let enc = rows
            .iter()
            .map(|r| Some(Arc::new(encode_tile(r))))
            .collect();
        Ok(TreeEdge { size, rows, enc })
    }

    /// Tree size covered by the edge.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root (RFC 9162 MTH), from the edge alone: every maximal
    /// perfect subtree of the tree lies in the incomplete tile of its level,
    /// whose stored encoding already holds it (the encoding is written for
    /// the commit anyway), so only the fold of O(log n) nodes is hashed.
    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = vellum_spec::merkle::range_nodes(0, self.size)
            .into_iter()
            .map(|n| {
                let level = (n.height / TILE_HEIGHT) as usize;
                let r = n.height % TILE_HEIGHT;
                let start = ((n.index << r) % TILE_WIDTH) as usize;
                let row = &self.rows[level];
                self.enc
                    .get(level)
                    .and_then(Option::as_ref)
                    .and_then(|e| StoredTile::new(e, row.len()).ok())
                    .and_then(|t| t.node(r, start >> r))
                    .unwrap_or_else(|| vellum_spec::tile::node_in_tile(row, start, 1 << r))
            })
            .collect();
        vellum_spec::merkle::fold_range(&hashes)
    }

    /// Appends leaf hashes and returns the tiles to write: every tile that
    /// became full and the new partial tile of each level that changed.
    pub fn append(&mut self, leaves: &[Hash]) -> Vec<StoredTileBytes> {
        let mut out: Vec<StoredTileBytes> = Vec::new();
        let mut touched = [false; 64];
        // Per level: row 0 length of the incomplete tile as its encoding
        // last saw it (0 for a tile begun in this append).
        let mut from: Vec<usize> = self.rows.iter().map(Vec::len).collect();
        for leaf in leaves {
            let leaf_index = self.size;
            let mut h = *leaf;
            let mut level = 0usize;
            loop {
                if self.rows.len() <= level {
                    self.rows.push(Vec::new());
                    self.enc.push(None);
                    from.push(0);
                }
                self.rows[level].push(h);
                touched[level] = true;
                if self.rows[level].len() < TILE_WIDTH as usize {
                    break;
                }
                // The tile is full: store it and carry its root upward. Its
                // last hash is number ((leaf_index + 1) >> 8L) - 1 of the row.
                let row = std::mem::take(&mut self.rows[level]);
                let pos = row_len(leaf_index + 1, level as u8) - 1;
                let enc = self.extend(level, &row, from[level]);
                from[level] = 0;
                self.enc[level] = None;
                h = full_tile_root(&enc);
                out.push(((level as u8, pos / TILE_WIDTH), enc));
                touched[level] = false;
                level += 1;
            }
            self.size += 1;
        }
        for level in 0..self.rows.len() {
            if touched[level] && !self.rows[level].is_empty() {
                let index = row_len(self.size, level as u8) / TILE_WIDTH;
                let row = std::mem::take(&mut self.rows[level]);
                let enc = self.extend(level, &row, from[level]);
                self.rows[level] = row;
                self.enc[level] = Some(enc.clone());
                out.push(((level as u8, index), enc));
            }
        }
        out
    }

    /// The encoding of level `level`'s incomplete tile extended to `row`
    /// (copied first if a commit still holds the previous one).
    fn extend(&mut self, level: usize, row: &[Hash], from: usize) -> Arc<Vec<u8>> {
        if self.enc.len() <= level {
            self.enc.resize(level + 1, None);
        }
        let mut enc = self.enc[level]
            .take()
            .unwrap_or_else(|| Arc::new(vec![0u8; STORED_TILE_BYTES]));
        extend_encoding(Arc::make_mut(&mut enc).as_mut_slice(), row, from);
        enc
    }
}

/// Number of complete hashes in tile level `level`'s row for `size` leaves.
fn row_len(size: u64, level: u8) -> u64 {
    size.checked_shr(TILE_HEIGHT as u32 * level as u32)
        .unwrap_or(0)
}

/// Root of a full tile's subtree, from the two hashes of its top stored row.
pub fn full_tile_root(enc: &[u8]) -> Hash {
    let t = StoredTile::new(enc, TILE_WIDTH as usize).expect("encode_tile output is well formed");
    match (t.node(TILE_HEIGHT - 1, 0), t.node(TILE_HEIGHT - 1, 1)) {
        (Some(l), Some(r)) => node_hash(&l, &r),
        _ => unreachable!("a full tile has two hashes in its top row"),
    }
}

/// Reads nodes from stored tiles for a tree of at least `size` leaves.
/// Each tile a request touches is read whole, once (one positioned read);
/// a proof touches about one tile per tile level.
pub struct StoreNodes<'a> {
    store: &'a dyn LogStore,
    size: u64,
    cache: RefCell<Vec<TileBytes>>,
}

/// A stored tile's bytes and its coordinates (level, index).
type TileBytes = ((u8, u64), Vec<u8>);

impl<'a> StoreNodes<'a> {
    /// A reader over `store`, for nodes complete at tree size `size`.
    pub fn new(store: &'a dyn LogStore, size: u64) -> StoreNodes<'a> {
        StoreNodes {
            store,
            size,
            cache: RefCell::new(Vec::new()),
        }
    }

    fn node(&self, n: NodeId) -> Result<Hash, ProofError> {
        let level = n.height / TILE_HEIGHT;
        let r = n.height % TILE_HEIGHT;
        let tile_index = (n.index << r) / TILE_WIDTH;
        let pos = (n.index - ((tile_index * TILE_WIDTH) >> r)) as usize;
        if (n.index + 1) << r > row_len(self.size, level) {
            return Err(ProofError::Read(format!(
                "node {}/{} is not complete at size {}",
                n.height, n.index, self.size
            )));
        }
        let mut cache = self.cache.borrow_mut();
        let at = match cache.iter().position(|(k, _)| *k == (level, tile_index)) {
            Some(i) => i,
            None => {
                let full = tile_width(level, tile_index, self.size) as u64 == TILE_WIDTH;
                let data = self
                    .store
                    .tile_hashes(level, tile_index, 0, SLOTS, full)
                    .map_err(|e| ProofError::Read(e.to_string()))?
                    .ok_or_else(|| {
                        ProofError::Read(format!("tile {level}/{tile_index} is missing"))
                    })?;
                cache.push(((level, tile_index), data));
                cache.len() - 1
            }
        };
        let width = tile_width(level, tile_index, self.size) as usize;
        StoredTile::new(&cache[at].1, width)
            .map_err(|e| ProofError::Read(e.to_string()))?
            .node(r, pos)
            .ok_or_else(|| {
                ProofError::Read(format!(
                    "tile {level}/{tile_index} lacks node {}/{}",
                    n.height, n.index
                ))
            })
    }
}

impl NodeReader for StoreNodes<'_> {
    fn read_nodes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ProofError> {
        nodes.iter().map(|n| self.node(*n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proofs read through stored tiles equal the reference proofs, at
    /// sizes that end inside tiles of every level, also when one reader
    /// serves several proofs from the tiles it already read.
    #[test]
    fn proofs_from_stored_tiles_equal_the_reference() {
        use crate::storage::{CommitBatch, SledStore};
        use vellum_spec::merkle::{prove_consistency, prove_inclusion, MemoryTree};
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20, 1024).unwrap();
        let mut leaves = Vec::new();
        let mut sizes = Vec::new();
        for step in [1u64, 255, 1, 300, 65_000, 279, 1] {
            let mut edge = TreeEdge::load(&store, store.size().unwrap()).unwrap();
            let from = edge.size();
            let mut batch = CommitBatch::default();
            let mut hashes = Vec::new();
            for i in from..from + step {
                let leaf = format!("{{\"event_id\":\"e{i}\"}}").into_bytes();
                hashes.push(vellum_spec::hash::leaf_hash(&leaf));
                batch.entries.push((i, leaf));
            }
            batch.tiles = edge.append(&hashes);
            batch.new_size = edge.size();
            batch.new_root = edge.root();
            store.commit(&batch).unwrap();
            leaves.extend(hashes);
            sizes.push(edge.size());
        }
        let reference = MemoryTree::new(leaves);
        for &size in &sizes {
            let nodes = StoreNodes::new(&store, size);
            for index in [0, 1, 254, 255, 256, 511, 557, 65_535, 65_536, size - 1] {
                if index >= size {
                    continue;
                }
                // Twice through the same reader: the second time from
                // whole cached tiles.
                for _ in 0..2 {
                    assert_eq!(
                        prove_inclusion(index, size, &nodes).unwrap(),
                        prove_inclusion(index, size, &reference).unwrap(),
                        "inclusion of {index} at {size}"
                    );
                }
            }
            for &old in &sizes {
                if old <= size {
                    assert_eq!(
                        prove_consistency(old, size, &StoreNodes::new(&store, size)).unwrap(),
                        prove_consistency(old, size, &reference).unwrap(),
                        "consistency {old} -> {size}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_edge_root_is_the_tree_root() {
        let leaves: Vec<Hash> = (0..70_000u32)
            .map(|i| vellum_spec::hash::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut edge = TreeEdge {
            size: 0,
            rows: vec![],
            enc: vec![],
        };
        assert_eq!(edge.root(), vellum_spec::merkle::reference_root(&[]));
        let mut at = 0;
        for step in [1usize, 2, 253, 1, 1, 300, 3, 1, 65_000, 4_435] {
            // Every encoding written, built incrementally, equals the one
            // built from its row 0 alone, in all eight rows.
            for ((level, index), enc) in edge.append(&leaves[at..at + step]) {
                let full = vellum_spec::tile::tile_hashes(&enc[..TILE_WIDTH as usize * HASH_SIZE])
                    .expect("row 0");
                let width = full.iter().take_while(|h| h.0 != [0u8; 32]).count();
                assert_eq!(*enc, encode_tile(&full[..width]), "tile {level}/{index}");
            }
            at += step;
            assert_eq!(
                edge.root(),
                vellum_spec::merkle::reference_root(&leaves[..at]),
                "size {at}"
            );
            // The root is read from the stored encodings, not rehashed.
            for (level, row) in edge.rows.iter().enumerate() {
                if !row.is_empty() {
                    let enc = edge.enc[level].as_ref().expect("an encoding per level");
                    assert!(StoredTile::new(enc, row.len()).is_ok());
                    assert_eq!(**enc, encode_tile(row));
                }
            }
        }
    }
}
