//! C2SP tlog-tiles: tile coordinates and paths, the tiles a tree size has,
//! node hashes read from tiles, and entry bundles.
//!
//! Tiles have height 8: tile `(L, N)` holds the hashes of tree level `8·L`
//! at indexes `N·256 … N·256+255`; a partial tile holds the first `W`.

use crate::checkpoint::parse_canonical_u64;
use crate::hash::{Hash, HASH_SIZE};
use crate::merkle::{perfect_root, NodeId};

/// Tile height: each tile spans 8 tree levels.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// Largest entry an entry bundle can hold (uint16 length prefix).
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// A tile or entry bundle: level, index and width (1..=256; 256 = full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Tile level (0..=63); for entry bundles this is 0.
    pub level: u8,
    /// Tile index within its level.
    pub index: u64,
    /// Number of hashes (or entries) present, 1..=256.
    pub width: u16,
}

/// Why a tile path is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    /// The level is not a decimal 0..=63 without leading zeros.
    #[error("tile level must be a decimal 0-63 without leading zeros")]
    Level,
    /// The index is not in canonical `x001/234` form.
    #[error("tile index must be 3-digit groups, all but the last prefixed with x (e.g. x001/234)")]
    Index,
    /// The partial width is not a decimal 1..=255 without leading zeros.
    #[error("partial tile width must be a decimal 1-255 without leading zeros")]
    Width,
}

impl TileId {
    /// A full tile at `level`, `index`.
    pub fn full(level: u8, index: u64) -> TileId {
        TileId {
            level,
            index,
            width: TILE_WIDTH as u16,
        }
    }

    /// Whether this tile has all 256 hashes.
    pub fn is_full(&self) -> bool {
        self.width as u64 == TILE_WIDTH
    }

    /// The tile path after `tile/` (hash tiles) or `tile/entries/` (bundles):
    /// `<L>/<N>[.p/<W>]` for hash tiles, `<N>[.p/<W>]` for bundles.
    pub fn path(&self, entries: bool) -> String {
        let mut s = if entries {
            String::new()
        } else {
            format!("{}/", self.level)
        };
        s.push_str(&encode_index(self.index));
        if !self.is_full() {
            s.push_str(&format!(".p/{}", self.width));
        }
        s
    }

    /// The tile of tree size `size` that holds node `node`, with the width
    /// that size gives it. `None` if the node is not complete at that size.
    pub fn for_node(node: NodeId, size: u64) -> Option<(TileId, usize, usize)> {
        let level = node.height / TILE_HEIGHT;
        let r = node.height % TILE_HEIGHT;
        let start = node.index.checked_shl(r as u32)?;
        let index = start / TILE_WIDTH;
        let offset = (start % TILE_WIDTH) as usize;
        let count = 1usize << r;
        let row_len = size
            .checked_shr(TILE_HEIGHT as u32 * level as u32)
            .unwrap_or(0);
        let avail = row_len.saturating_sub(index * TILE_WIDTH).min(TILE_WIDTH);
        if (offset + count) as u64 > avail {
            return None;
        }
        Some((
            TileId {
                level,
                index,
                width: avail as u16,
            },
            offset,
            count,
        ))
    }
}

/// Encodes a tile index as `x001/x234/067` groups.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Parses `<N>[.p/<W>]` (the part after the level) into index and width.
fn parse_index_and_width(s: &str) -> Result<(u64, u16), TilePathError> {
    let (idx, width) = match s.split_once(".p/") {
        Some((i, w)) => {
            let w = parse_canonical_u64(w)
                .filter(|w| (1..TILE_WIDTH).contains(w))
                .ok_or(TilePathError::Width)?;
            (i, w as u16)
        }
        None => (s, TILE_WIDTH as u16),
    };
    let mut n: u64 = 0;
    let groups: Vec<&str> = idx.split('/').collect();
    for (i, g) in groups.iter().enumerate() {
        let digits = if i + 1 < groups.len() {
            g.strip_prefix('x').ok_or(TilePathError::Index)?
        } else {
            g
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TilePathError::Index);
        }
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(digits.parse::<u64>().ok()?))
            .ok_or(TilePathError::Index)?;
    }
    if encode_index(n) != idx {
        return Err(TilePathError::Index);
    }
    Ok((n, width))
}

/// Parses a hash tile path `<L>/<N>[.p/<W>]` (without the `tile/` prefix).
pub fn parse_tile_path(s: &str) -> Result<TileId, TilePathError> {
    let (l, rest) = s.split_once('/').ok_or(TilePathError::Level)?;
    let level = parse_canonical_u64(l)
        .filter(|l| *l <= 63)
        .ok_or(TilePathError::Level)? as u8;
    let (index, width) = parse_index_and_width(rest)?;
    Ok(TileId {
        level,
        index,
        width,
    })
}

/// Parses an entry bundle path `<N>[.p/<W>]` (without `tile/entries/`).
pub fn parse_entries_path(s: &str) -> Result<TileId, TilePathError> {
    let (index, width) = parse_index_and_width(s)?;
    Ok(TileId {
        level: 0,
        index,
        width,
    })
}

/// Width of tile `index` at `level` in a tree of `size` leaves (0 if the
/// tile does not exist yet).
pub fn tile_width(level: u8, index: u64, size: u64) -> u16 {
    let row_len = size
        .checked_shr(TILE_HEIGHT as u32 * level as u32)
        .unwrap_or(0);
    row_len
        .saturating_sub(index.saturating_mul(TILE_WIDTH))
        .min(TILE_WIDTH) as u16
}

/// Every tile (full and partial) that a tree of `size` leaves has, level by
/// level, lowest level first.
pub fn tiles_for_size(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    let mut level = 0u8;
    loop {
        let row_len = size
            .checked_shr(TILE_HEIGHT as u32 * level as u32)
            .unwrap_or(0);
        if row_len == 0 {
            break;
        }
        let full = row_len / TILE_WIDTH;
        for n in 0..full {
            out.push(TileId::full(level, n));
        }
        let w = row_len % TILE_WIDTH;
        if w > 0 {
            out.push(TileId {
                level,
                index: full,
                width: w as u16,
            });
        }
        level += 1;
    }
    out
}

/// Splits tile bytes into hashes; `None` if the length is not a multiple of 32.
pub fn tile_hashes(data: &[u8]) -> Option<Vec<Hash>> {
    if !data.len().is_multiple_of(HASH_SIZE) {
        return None;
    }
    Some(
        data.chunks_exact(HASH_SIZE)
            .map(|c| Hash(c.try_into().expect("32-byte chunk")))
            .collect(),
    )
}

/// The hash of the node covering `count` (a power of two) tile hashes from
/// `offset`: the tile row folded pairwise.
pub fn node_in_tile(row: &[Hash], offset: usize, count: usize) -> Hash {
    perfect_root(&row[offset..offset + count])
}

/// Why an entry bundle is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry's length prefix runs past the end of the bundle.
    #[error("entry {0} is truncated")]
    Truncated(usize),
    /// An entry is too large for a uint16 length prefix.
    #[error("entry of {0} bytes is over the 65535-byte bundle limit")]
    TooLarge(usize),
}

/// Appends one entry (uint16 big-endian length, then the bytes) to a bundle.
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), BundleError> {
    if entry.len() > MAX_ENTRY_SIZE {
        return Err(BundleError::TooLarge(entry.len()));
    }
    bundle.extend_from_slice(&(entry.len() as u16).to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Splits an entry bundle into its entries.
pub fn parse_bundle(mut data: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    // A full bundle holds TILE_WIDTH entries of at least 2 bytes each.
    let mut out = Vec::with_capacity((data.len() / 2).min(TILE_WIDTH as usize));
    while !data.is_empty() {
        if data.len() < 2 {
            return Err(BundleError::Truncated(out.len()));
        }
        let n = u16::from_be_bytes([data[0], data[1]]) as usize;
        if data.len() < 2 + n {
            return Err(BundleError::Truncated(out.len()));
        }
        out.push(&data[2..2 + n]);
        data = &data[2 + n..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_from_the_spec() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(5), "005");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(123456789), "x123/x456/789");
        let t = parse_tile_path("3/x123/x456/078.p/2").unwrap();
        assert_eq!((t.level, t.index, t.width), (3, 123456078, 2));
        assert_eq!(t.path(false), "3/x123/x456/078.p/2");
        let e = parse_entries_path("x001/x234/067").unwrap();
        assert_eq!((e.index, e.width), (1234067, 256));
        assert_eq!(e.path(true), "x001/x234/067");
    }

    #[test]
    fn non_canonical_paths_rejected() {
        for bad in [
            "0/x000/123",
            "0/123/456",
            "0/1",
            "0/0001",
            "00/000",
            "64/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/05",
            "0/x1/000",
            "0/000/",
            "-1/000",
            "0/00a",
        ] {
            assert!(parse_tile_path(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tile_inventory_matches_spec_examples() {
        let summary = |s: u64| {
            let tiles = tiles_for_size(s);
            let mut by_level: Vec<(u8, u64, u16)> = Vec::new();
            for t in tiles {
                if by_level.last().map(|l| l.0) != Some(t.level) {
                    by_level.push((t.level, 0, 0));
                }
                let l = by_level.last_mut().unwrap();
                if t.is_full() {
                    l.1 += 1;
                } else {
                    l.2 = t.width;
                }
            }
            by_level
        };
        assert_eq!(summary(1), vec![(0, 0, 1)]);
        assert_eq!(summary(256), vec![(0, 1, 0), (1, 0, 1)]);
        assert_eq!(summary(65536), vec![(0, 256, 0), (1, 1, 0), (2, 0, 1)]);
        assert_eq!(summary(70000), vec![(0, 273, 112), (1, 1, 17), (2, 0, 1)]);
    }

    #[test]
    fn bundle_round_trip_and_truncation() {
        let mut b = Vec::new();
        for e in [&b""[..], b"\x00", b"hello"] {
            push_bundle_entry(&mut b, e).unwrap();
        }
        assert_eq!(parse_bundle(&b).unwrap(), vec![&b""[..], b"\x00", b"hello"]);
        assert_eq!(
            parse_bundle(&b[..b.len() - 1]),
            Err(BundleError::Truncated(2))
        );
        assert!(push_bundle_entry(&mut b, &vec![0u8; 65536]).is_err());
    }
}
