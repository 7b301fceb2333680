//! The tree as stored tiles: the stored tile format (the served hashes plus
//! the seven levels above them, so that any node is one read away), the
//! right edge that the sequencer extends, and a node reader for proofs.

use std::cell::RefCell;

use vellum_spec::hash::{node_hash, Hash, HASH_SIZE};
use vellum_spec::merkle::{NodeId, NodeReader, ProofError};
use vellum_spec::tile::{tile_width, TILE_HEIGHT, TILE_WIDTH};

use crate::store::{Blob, LogStore, StoreError};

/// Encodes a tile for storage: u16 width, then rows 0..8 of the tile's
/// subtree (row 0 is the served tile; row r has `width >> r` hashes).
pub fn encode_tile(row0: &[Hash]) -> Vec<u8> {
    let w = row0.len();
    let mut out = Vec::with_capacity(2 + 2 * w * HASH_SIZE);
    out.extend_from_slice(&(w as u16).to_be_bytes());
    let mut row: Vec<Hash> = row0.to_vec();
    for r in 0..TILE_HEIGHT {
        for h in &row {
            out.extend_from_slice(&h.0);
        }
        if r + 1 < TILE_HEIGHT {
            row = row
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
        }
    }
    out
}

/// A stored tile, decoded lazily.
pub struct StoredTile<'a> {
    data: &'a [u8],
    width: usize,
}

impl<'a> StoredTile<'a> {
    /// Wraps stored bytes, checking their length against the width header.
    pub fn new(data: &'a [u8]) -> Result<StoredTile<'a>, StoreError> {
        if data.len() < 2 {
            return Err(StoreError::Corrupt("tile shorter than its header".into()));
        }
        let width = u16::from_be_bytes([data[0], data[1]]) as usize;
        let want = 2 + (0..TILE_HEIGHT).map(|r| width >> r).sum::<usize>() * HASH_SIZE;
        if width == 0 || width > TILE_WIDTH as usize || data.len() != want {
            return Err(StoreError::Corrupt(format!(
                "tile of width {width} has {} bytes",
                data.len()
            )));
        }
        Ok(StoredTile { data, width })
    }

    /// Number of hashes in row 0.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The first `w` hashes of row 0: the bytes served at `tile/L/N[.p/w]`.
    pub fn served(&self, w: usize) -> &'a [u8] {
        &self.data[2..2 + w * HASH_SIZE]
    }

    /// Hash `pos` of row `r` (the node `r` levels above row 0).
    pub fn node(&self, r: u8, pos: usize) -> Option<Hash> {
        if pos >= self.width >> r {
            return None;
        }
        let off = 2 + (0..r).map(|k| self.width >> k).sum::<usize>() * HASH_SIZE;
        let at = off + pos * HASH_SIZE;
        Hash::from_slice(&self.data[at..at + HASH_SIZE]).ok()
    }

    /// All of row 0 as hashes.
    pub fn row0(&self) -> Vec<Hash> {
        (0..self.width).filter_map(|i| self.node(0, i)).collect()
    }
}

/// The right edge of the tree: the rightmost, incomplete tile of every
/// level. O(log n) memory; everything to its left is immutable on disk.
pub struct TreeEdge {
    size: u64,
    /// `rows[L]`: row 0 of the incomplete tile at level L.
    rows: Vec<Vec<Hash>>,
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
                let data = store.tile(level, index)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("tile {level}/{index} is missing"))
                })?;
                let t = StoredTile::new((*data).as_ref())?;
                if t.width() < w {
                    return Err(StoreError::Corrupt(format!(
                        "tile {level}/{index} has width {} < {w}",
                        t.width()
                    )));
                }
                row = t.row0();
                row.truncate(w);
            }
            rows.push(row);
        }
        Ok(TreeEdge { size, rows })
    }

    /// Tree size covered by the edge.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends leaf hashes and returns the tiles to write: every tile that
    /// became full and the new partial tile of each level that changed.
    pub fn append(&mut self, leaves: &[Hash]) -> Vec<((u8, u64), Vec<u8>)> {
        let mut out: Vec<((u8, u64), Vec<u8>)> = Vec::new();
        let mut touched = [false; 64];
        for leaf in leaves {
            let leaf_index = self.size;
            let mut h = *leaf;
            let mut level = 0usize;
            loop {
                if self.rows.len() <= level {
                    self.rows.push(Vec::new());
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
                let enc = encode_tile(&row);
                h = full_tile_root(&enc);
                out.push(((level as u8, pos / TILE_WIDTH), enc));
                touched[level] = false;
                level += 1;
            }
            self.size += 1;
        }
        for (level, row) in self.rows.iter().enumerate() {
            if touched[level] && !row.is_empty() {
                let index = row_len(self.size, level as u8) / TILE_WIDTH;
                out.push(((level as u8, index), encode_tile(row)));
            }
        }
        out
    }
}

/// Number of complete hashes in tile level `level`'s row for `size` leaves.
fn row_len(size: u64, level: u8) -> u64 {
    size.checked_shr(TILE_HEIGHT as u32 * level as u32)
        .unwrap_or(0)
}

/// Root of a full tile's subtree, from the two hashes of its top stored row.
fn full_tile_root(enc: &[u8]) -> Hash {
    let t = StoredTile::new(enc).expect("encode_tile output is well formed");
    match (t.node(TILE_HEIGHT - 1, 0), t.node(TILE_HEIGHT - 1, 1)) {
        (Some(l), Some(r)) => node_hash(&l, &r),
        _ => unreachable!("a full tile has two hashes in its top row"),
    }
}

/// A stored tile and its coordinates (level, index).
type TileBytes = ((u8, u64), Blob);

/// Reads nodes from stored tiles for a tree of at least `size` leaves.
/// Caches the tiles it read, so a proof costs one read per tile touched.
pub struct StoreNodes<'a> {
    store: &'a dyn LogStore,
    size: u64,
    cache: RefCell<Vec<TileBytes>>,
}

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
        let row_pos = n.index;
        let tile_index = (row_pos << r) / TILE_WIDTH;
        let pos = (row_pos - ((tile_index * TILE_WIDTH) >> r)) as usize;
        if (row_pos + 1) << r > row_len(self.size, level) {
            return Err(ProofError::Read(format!(
                "node {}/{} is not complete at size {}",
                n.height, n.index, self.size
            )));
        }
        let mut cache = self.cache.borrow_mut();
        let at = match cache.iter().position(|(k, _)| *k == (level, tile_index)) {
            Some(i) => i,
            None => {
                let data = self
                    .store
                    .tile(level, tile_index)
                    .map_err(|e| ProofError::Read(e.to_string()))?
                    .ok_or_else(|| {
                        ProofError::Read(format!("tile {level}/{tile_index} is missing"))
                    })?;
                cache.push(((level, tile_index), data));
                cache.len() - 1
            }
        };
        let tile = StoredTile::new((*cache[at].1).as_ref())
            .map_err(|e| ProofError::Read(e.to_string()))?;
        tile.node(r, pos).ok_or_else(|| {
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
