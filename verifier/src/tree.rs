//! Recomputing the whole tree from the entries and checking EVERY tile the
//! log serves against it, level by level, then the root against the
//! checkpoint.
//!
//! Checking only the tiles on the path to the root (as Go's
//! `tlog.TileHashReader` does) would let a log rewrite an entry together
//! with its level-0 tile. Here each entry is hashed, each level-0 tile must
//! equal those hashes, each full tile's root becomes a hash of the tile
//! above, which must equal it, and so on up. Memory is one partial tile
//! per level.

use vellum_spec::hash::{leaf_hash, Hash};
use vellum_spec::leaf::check_leaf_facts;
use vellum_spec::merkle::{fold_range, perfect_root, range_nodes};
use vellum_spec::tile::{parse_bundle, tile_hashes, TileId, TILE_HEIGHT, TILE_WIDTH};

use crate::report::Failure;
use crate::sequence::Sequences;

/// A sequenced entry: the range of its session's name in
/// [`Digested::sessions`], and its `seq`.
pub type Sequenced = (std::ops::Range<usize>, u64);

/// One level-0 tile's entries, checked and hashed (done in parallel by
/// the download threads).
pub struct Digested {
    /// Tile index.
    pub k: u64,
    /// Leaf hashes, in order.
    pub leaves: Vec<Hash>,
    /// Per entry: `logged_at` (Unix ms) and its session and `seq`, if any.
    pub meta: Vec<(i64, Option<Sequenced>)>,
    /// The session names of the tile's sequenced entries, one after the
    /// other (one allocation per tile, not one per entry).
    pub sessions: String,
    /// Entries with a session but no `seq`.
    pub unsequenced: u64,
    /// The served level-0 hash tile.
    pub tile: Vec<u8>,
    /// Bytes of entries read.
    pub bytes: u64,
}

/// Checks and hashes the entry bundle of level-0 tile `k` of width `w`.
pub fn digest(k: u64, w: usize, bundle: &[u8], tile: Vec<u8>) -> Result<Digested, Failure> {
    let base = k * TILE_WIDTH;
    let entries = parse_bundle(bundle).map_err(|e| {
        Failure::check(
            "entry-bundle",
            format!("entry bundle {k} (entries {base}..): {e}"),
        )
    })?;
    if entries.len() != w {
        return Err(Failure::mismatch(
            "entry-bundle",
            base,
            format!("{w} entries"),
            format!("{} entries", entries.len()),
            format!("entry bundle {k} holds the wrong number of entries"),
        ));
    }
    let mut leaves = Vec::with_capacity(w);
    let mut meta = Vec::with_capacity(w);
    let mut unsequenced = 0u64;
    let mut sessions = String::new();
    for (j, e) in entries.iter().enumerate() {
        let index = base + j as u64;
        let facts = check_leaf_facts(e).map_err(|err| Failure::Verification {
            check: "event".into(),
            index: Some(index),
            expected: Some("canonical JSON of a schema-valid event".into()),
            got: Some(String::from_utf8_lossy(&e[..e.len().min(120)]).into_owned()),
            message: format!("entry {index}: {err}"),
        })?;
        let s = match (facts.session, facts.seq) {
            (Some(s), Some(q)) => {
                let from = sessions.len();
                sessions.push_str(&s);
                Some((from..sessions.len(), q))
            }
            (Some(_), None) => {
                unsequenced += 1;
                None
            }
            _ => None,
        };
        meta.push((facts.logged_at_ms, s));
        leaves.push(leaf_hash(e));
    }
    Ok(Digested {
        k,
        leaves,
        meta,
        sessions,
        unsequenced,
        tile,
        bytes: bundle.len() as u64,
    })
}

/// Level-0 tiles `first..` up to a tree size, each (index, width).
#[derive(Clone, Copy, Debug)]
pub struct TileRange {
    first: u64,
    to: u64,
}

impl TileRange {
    /// Number of tiles.
    pub fn len(&self) -> u64 {
        self.to.div_ceil(TILE_WIDTH).saturating_sub(self.first)
    }

    /// Tile `i` of the range: (index, width).
    pub fn get(&self, i: u64) -> Option<(u64, usize)> {
        if i >= self.len() {
            return None;
        }
        let k = self.first + i;
        Some((k, (self.to - k * TILE_WIDTH).min(TILE_WIDTH) as usize))
    }

    /// The tiles in order.
    pub fn iter(self) -> impl Iterator<Item = (u64, usize)> {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

/// The recomputation's state: the tree verified so far.
pub struct TreeCheck {
    /// Entries verified.
    size: u64,
    /// Per tile level, the hashes of its incomplete tile.
    levels: Vec<Vec<Hash>>,
    /// Per tile level, full tiles completed.
    done: Vec<u64>,
    /// Tiles compared with the recomputation.
    pub tiles_checked: u64,
    /// Entry bytes hashed.
    pub bytes: u64,
    last_logged_at: i64,
    /// Session sequence numbers.
    pub sequences: Sequences,
}

impl Default for TreeCheck {
    fn default() -> Self {
        TreeCheck::new()
    }
}

fn compare(id: TileId, served: &[u8], want: &[Hash]) -> Result<(), Failure> {
    let path = id.path(false);
    let got = tile_hashes(served).ok_or_else(|| {
        Failure::check(
            "tile",
            format!(
                "tile {path}: {} bytes is not a whole number of hashes",
                served.len()
            ),
        )
    })?;
    if got.len() != want.len() {
        return Err(Failure::mismatch(
            "tile",
            id.index,
            format!("{} hashes", want.len()),
            format!("{} hashes", got.len()),
            format!("tile {path} has the wrong width"),
        ));
    }
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let node = id.index * TILE_WIDTH + j as u64;
            let what = if id.level == 0 {
                format!("leaf hash of entry {node}")
            } else {
                format!(
                    "node {node} at height {}",
                    id.level as u32 * TILE_HEIGHT as u32
                )
            };
            return Err(Failure::mismatch(
                "tile",
                node,
                w.to_base64(),
                g.to_base64(),
                format!("tile {path} position {j}: the served {what} differs from the one recomputed from the entries"),
            ));
        }
    }
    Ok(())
}

impl TreeCheck {
    /// An empty tree.
    pub fn new() -> TreeCheck {
        TreeCheck {
            size: 0,
            levels: vec![Vec::new()],
            done: vec![0],
            tiles_checked: 0,
            bytes: 0,
            last_logged_at: i64::MIN,
            sequences: Sequences::default(),
        }
    }

    /// Entries verified so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The level-0 tiles needed to grow to `to` entries, computed as they
    /// are asked for: a checkpoint claiming 2^63 entries costs nothing
    /// until tiles are fetched.
    pub fn tiles_to(&self, to: u64) -> TileRange {
        TileRange {
            first: self.size / TILE_WIDTH,
            to: to.max(self.size),
        }
    }

    /// Takes the next level-0 tile (in order). Entries already verified
    /// (the start of a tile that was partial before) must be unchanged.
    /// `fetch` reads upper tiles as they complete.
    pub fn push(
        &mut self,
        d: Digested,
        fetch: &mut dyn FnMut(TileId) -> Result<Vec<u8>, Failure>,
    ) -> Result<(), Failure> {
        let base = d.k * TILE_WIDTH;
        let already = self.levels[0].len();
        if base + already as u64 != self.size {
            return Err(Failure::Operational(format!(
                "internal: tile {} out of order at size {}",
                d.k, self.size
            )));
        }
        for (j, h) in self.levels[0].iter().enumerate() {
            if d.leaves.get(j) != Some(h) {
                let i = base + j as u64;
                return Err(Failure::mismatch(
                    "entry",
                    i,
                    h.to_base64(),
                    d.leaves.get(j).map(Hash::to_base64).unwrap_or_default(),
                    format!("entry {i} changed since it was verified"),
                ));
            }
        }
        for (j, (t, s)) in d.meta.iter().enumerate().skip(already) {
            let index = base + j as u64;
            if *t < self.last_logged_at {
                return Err(Failure::mismatch(
                    "time-order",
                    index,
                    format!("logged_at ≥ {}", vellum_spec::time::format_millis(self.last_logged_at)),
                    vellum_spec::time::format_millis(*t),
                    format!("entry {index} is logged earlier than entry {}: logged_at must not decrease, or time windows stop being index ranges", index - 1),
                ));
            }
            self.last_logged_at = *t;
            if let Some((name, seq)) = s {
                let session = d.sessions.get(name.clone()).unwrap_or_default();
                self.sequences.record(session, *seq, index);
            }
        }
        let w = d.leaves.len();
        let id = TileId {
            level: 0,
            index: d.k,
            width: w as u16,
        };
        compare(id, &d.tile, &d.leaves)?;
        self.tiles_checked += 1;
        if already == 0 {
            self.sequences.record_unsequenced(d.unsequenced);
        }
        self.bytes += d.bytes;
        self.size = base + w as u64;
        self.levels[0] = d.leaves;
        if w as u64 == TILE_WIDTH {
            let leaves = std::mem::take(&mut self.levels[0]);
            self.done[0] += 1;
            self.push_up(1, perfect_root(&leaves), fetch)?;
        }
        Ok(())
    }

    fn push_up(
        &mut self,
        level: usize,
        h: Hash,
        fetch: &mut dyn FnMut(TileId) -> Result<Vec<u8>, Failure>,
    ) -> Result<(), Failure> {
        if self.levels.len() <= level {
            self.levels.push(Vec::new());
            self.done.push(0);
        }
        self.levels[level].push(h);
        if self.levels[level].len() as u64 == TILE_WIDTH {
            let id = TileId::full(level as u8, self.done[level]);
            let served = fetch(id)?;
            compare(id, &served, &self.levels[level])?;
            self.tiles_checked += 1;
            let row = std::mem::take(&mut self.levels[level]);
            self.done[level] += 1;
            self.push_up(level + 1, perfect_root(&row), fetch)?;
        }
        Ok(())
    }

    /// Checks the partial upper tiles at the current size and returns the
    /// recomputed root. The state is unchanged, so the tree can grow later.
    pub fn finish(
        &mut self,
        fetch: &mut dyn FnMut(TileId) -> Result<Vec<u8>, Failure>,
    ) -> Result<Hash, Failure> {
        for level in 1..self.levels.len() {
            let row = &self.levels[level];
            if row.is_empty() {
                continue;
            }
            let id = TileId {
                level: level as u8,
                index: self.done[level],
                width: row.len() as u16,
            };
            let served = fetch(id)?;
            compare(id, &served, row)?;
            self.tiles_checked += 1;
        }
        Ok(self.root())
    }

    /// The root of the tree verified so far.
    pub fn root(&self) -> Hash {
        let nodes = range_nodes(0, self.size);
        let hashes: Vec<Hash> = nodes
            .iter()
            .map(|n| {
                let level = (n.height / TILE_HEIGHT) as usize;
                let r = n.height % TILE_HEIGHT;
                let base = self.done[level] * TILE_WIDTH;
                let start = ((n.index << r) - base) as usize;
                perfect_root(&self.levels[level][start..start + (1usize << r)])
            })
            .collect();
        fold_range(&hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vellum_spec::merkle::MemoryTree;
    use vellum_spec::tile::push_bundle_entry;

    fn leaf(i: u64) -> Vec<u8> {
        format!(r#"{{"agent":"a","event_id":"e{i}","gateway":"g","logged_at":"2026-06-20T14:07:32.000Z","owner":"o","principal":"p","tool":"t","ts":"2026-06-20T14:07:31.120Z","verdict":"allow"}}"#).into_bytes()
    }

    /// Serves tiles of the honest tree of `n` leaves.
    fn serve(t: &MemoryTree, id: TileId) -> Vec<u8> {
        let h = id.level * TILE_HEIGHT;
        (0..id.width as u64)
            .flat_map(|j| t.node(h, id.index * TILE_WIDTH + j).unwrap().0)
            .collect()
    }

    fn run(t: &MemoryTree, from: &mut TreeCheck, to: u64) -> Result<Hash, Failure> {
        let mut fetch = |id: TileId| Ok(serve(t, id));
        for (k, w) in from.tiles_to(to).iter() {
            let mut b = Vec::new();
            for i in k * 256..k * 256 + w as u64 {
                push_bundle_entry(&mut b, &leaf(i)).unwrap();
            }
            let tile = serve(
                t,
                TileId {
                    level: 0,
                    index: k,
                    width: w as u16,
                },
            );
            from.push(digest(k, w, &b, tile)?, &mut fetch)?;
        }
        from.finish(&mut fetch)
    }

    #[test]
    fn recomputes_roots_of_every_shape_and_grows() {
        let n = 70_000u64;
        let t = MemoryTree::new((0..n).map(|i| leaf_hash(&leaf(i))).collect());
        for size in [
            0u64, 1, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000,
        ] {
            let mut c = TreeCheck::new();
            assert_eq!(
                run(&t, &mut c, size).unwrap(),
                t.root(size).unwrap(),
                "{size}"
            );
        }
        let mut c = TreeCheck::new();
        for size in [3u64, 300, 301, 65_600, 70_000] {
            assert_eq!(
                run(&t, &mut c, size).unwrap(),
                t.root(size).unwrap(),
                "grow {size}"
            );
        }
    }

    #[test]
    fn a_huge_size_costs_nothing_until_fetched() {
        let r = TreeCheck::new().tiles_to(1 << 63);
        assert_eq!(r.len(), 1 << 55);
        assert_eq!(r.get(0), Some((0, 256)));
        assert_eq!(r.get((1 << 55) - 1), Some(((1 << 55) - 1, 256)));
        assert_eq!(r.get(1 << 55), None);
        let r = TreeCheck::new().tiles_to(u64::MAX);
        assert_eq!(r.get(r.len() - 1).map(|t| t.1), Some(255));
    }

    #[test]
    fn time_going_back_is_caught() {
        let leaf_at = |i: u64, ms: u64| -> Vec<u8> {
            String::from_utf8(leaf(i))
                .unwrap()
                .replace("14:07:32.000Z", &format!("14:07:32.{ms:03}Z"))
                .into_bytes()
        };
        let leaves: Vec<Vec<u8>> = (0..10)
            .map(|i| leaf_at(i, if i == 6 { 1 } else { 5 + i }))
            .collect();
        let t = MemoryTree::new(leaves.iter().map(|l| leaf_hash(l)).collect());
        let mut b = Vec::new();
        for l in &leaves {
            push_bundle_entry(&mut b, l).unwrap();
        }
        let tile = serve(
            &t,
            TileId {
                level: 0,
                index: 0,
                width: 10,
            },
        );
        let mut fetch = |id: TileId| Ok(serve(&t, id));
        let e = TreeCheck::new()
            .push(digest(0, 10, &b, tile).unwrap(), &mut fetch)
            .unwrap_err();
        assert!(
            matches!(&e, Failure::Verification { check, index: Some(6), .. } if check == "time-order"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_upper_tile_is_caught() {
        let t = MemoryTree::new((0..600).map(|i| leaf_hash(&leaf(i))).collect());
        let mut c = TreeCheck::new();
        let mut fetch = |id: TileId| {
            let mut b = serve(&t, id);
            if id.level == 1 {
                b[40] ^= 1;
            }
            Ok(b)
        };
        let mut err = None;
        for (k, w) in c.tiles_to(600).iter() {
            let mut b = Vec::new();
            for i in k * 256..k * 256 + w as u64 {
                push_bundle_entry(&mut b, &leaf(i)).unwrap();
            }
            let tile = serve(
                &t,
                TileId {
                    level: 0,
                    index: k,
                    width: w as u16,
                },
            );
            c.push(digest(k, w, &b, tile).unwrap(), &mut fetch).unwrap();
        }
        if let Err(e) = c.finish(&mut fetch) {
            err = Some(e);
        }
        let e = err.expect("tampered level-1 tile accepted").to_string();
        assert!(e.contains("tile 1/000.p/2 position 1"), "{e}");
    }
}
