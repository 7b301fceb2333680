//! The storage interface of the log, and its sled implementation.
//!
//! Everything a sequenced batch changes (entries, tiles, dedup keys, the
//! tree size) is written by one durable, all-or-nothing commit; readers
//! never see more than the log has acknowledged because the server bounds
//! every read by the durable size it tracks.

use std::path::Path;

use std::sync::Arc;

use vellum_spec::tile::{parse_bundle, TILE_WIDTH};

use crate::bundles::BundleFiles;
use crate::dedup_index::DedupIndex;
use crate::tilefiles::TileFiles;

/// Storage failures. The message never contains entry contents or secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed.
    #[error("storage: {0}")]
    Backend(String),
    /// Stored data is not what the log wrote.
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// A stored tile (see [`crate::tree::encode_tile`]) and its (level, index),
/// shared between the write and the in-memory right edge.
pub type StoredTileBytes = ((u8, u64), Arc<Vec<u8>>);

/// One sequenced batch, applied durably and atomically by [`LogStore::commit`].
#[derive(Default)]
pub struct CommitBatch {
    /// New entries: (index, leaf bytes), in index order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Tiles written: ((level, index), stored tile bytes).
    pub tiles: Vec<StoredTileBytes>,
    /// Dedup keys ([`crate::dedup::key`]) and the index each points at.
    pub dedup: Vec<(crate::dedup::Key, u64)>,
    /// Tree size after this batch.
    pub new_size: u64,
}

/// What the log needs from a storage backend. Full tiles and entries are
/// immutable once written, so an object store can implement this too.
pub trait LogStore: Send + Sync + 'static {
    /// Applies `batch`: on return it is durable; after a crash at any
    /// point the store holds either all of it or none of it.
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError>;
    /// Tree size of the last commit (0 for a new log).
    fn size(&self) -> Result<u64, StoreError>;
    /// The leaf bytes of entry `index`.
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// The first `width` entries of entry bundle `n`, as bundle bytes.
    fn bundle(&self, n: u64, width: usize) -> Result<Vec<u8>, StoreError>;
    /// `count` hashes from hash position `pos` of the stored tile (level,
    /// index) (layout: [`crate::tree::encode_tile`]); `None` if the tile
    /// was never written. `full`: the tile is complete, hence immutable.
    fn tile_hashes(
        &self,
        level: u8,
        index: u64,
        pos: usize,
        count: usize,
        full: bool,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// The index an event with this dedup key was logged at, if any.
    fn dedup(&self, key: &crate::dedup::Key) -> Result<Option<u64>, StoreError>;
    /// The last stored signed checkpoint.
    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a signed checkpoint durably.
    fn put_checkpoint(&self, note: &[u8]) -> Result<(), StoreError>;
}

/// A tile index and its stored bytes.
type EdgeTile = (u64, Arc<Vec<u8>>);

/// The embedded default backend: entry bundles as files
/// ([`BundleFiles`]), the dedup index as sorted run files
/// ([`DedupIndex`]), hash tiles as files ([`TileFiles`]), and the tree
/// size and the checkpoint in sled.
pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    bundles: BundleFiles,
    tiles: TileFiles,
    dedup: Arc<DedupIndex>,
    /// The newest tile written at each level (the tree's right edge), kept
    /// in memory: every proof reads it. At most one tile per level.
    edge: std::sync::RwLock<Vec<Option<EdgeTile>>>,
}

const K_SIZE: &[u8] = b"m/size";
const K_CHECKPOINT: &[u8] = b"m/checkpoint";

fn io_err(e: std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::InvalidData => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

fn be_u64(v: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(v.try_into().map_err(|_| {
        StoreError::Corrupt(format!("expected 8 bytes, found {}", v.len()))
    })?))
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with a bounded page cache.
    pub fn open(
        dir: &Path,
        cache_bytes: u64,
        dedup_table_keys: usize,
    ) -> Result<SledStore, StoreError> {
        let index = dir.join("index");
        let db = sled::Config::new()
            .path(&index)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Durability comes from explicit syncs after each group commit.
            .flush_every_ms(None)
            .open()?;
        let log = db.open_tree("log")?;
        let size = match log.get(K_SIZE)? {
            Some(v) => be_u64(&v)?,
            None => 0,
        };
        let bundles = BundleFiles::open(&dir.join("entries"), size).map_err(io_err)?;
        let (dedup, from) =
            DedupIndex::open(&dir.join("dedup"), dedup_table_keys).map_err(io_err)?;
        if from > size {
            return Err(StoreError::Corrupt(format!(
                "dedup index covers {from} entries but the log holds {size}"
            )));
        }
        let tiles = TileFiles::open(&dir.join("tiles")).map_err(io_err)?;
        let store = SledStore {
            db,
            log,
            bundles,
            tiles,
            dedup,
            edge: std::sync::RwLock::new(vec![None; 64]),
        };
        store.reindex(from, size)?;
        Ok(store)
    }
}

impl SledStore {
    /// Re-adds the dedup keys of entries `[from, size)` from the bundles:
    /// the keys that were only in memory when the log last stopped.
    fn reindex(&self, from: u64, size: u64) -> Result<(), StoreError> {
        #[derive(serde::Deserialize)]
        struct Ids<'a> {
            #[serde(borrow)]
            gateway: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            event_id: std::borrow::Cow<'a, str>,
        }
        let t = std::time::Instant::now();
        let mut index = from;
        while index < size {
            let n = index / TILE_WIDTH;
            let w = (size - n * TILE_WIDTH).min(TILE_WIDTH) as usize;
            let data = self.bundles.read(n, w).map_err(io_err)?;
            let entries = parse_bundle(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut keys = Vec::with_capacity(entries.len());
            for (k, leaf) in entries.iter().enumerate() {
                let i = n * TILE_WIDTH + k as u64;
                if i < index {
                    continue;
                }
                let ids: Ids = serde_json::from_slice(leaf).map_err(|e| {
                    StoreError::Corrupt(format!("entry {i} lacks gateway or event_id: {e}"))
                })?;
                keys.push((crate::dedup::key(&ids.gateway, &ids.event_id), i));
            }
            self.dedup.insert(&keys).map_err(io_err)?;
            index = n * TILE_WIDTH + w as u64;
        }
        if size > from {
            tracing::info!(
                entries = size - from,
                ms = t.elapsed().as_millis() as u64,
                "re-indexed event IDs"
            );
        }
        Ok(())
    }
}

impl LogStore for SledStore {
    fn commit(&self, b: &CommitBatch) -> Result<(), StoreError> {
        // Entries first, fsynced: the size recorded below must never point
        // past entries that are not on disk.
        self.bundles.append(&b.entries).map_err(io_err)?;
        self.tiles.write(&b.tiles).map_err(io_err)?;
        let mut batch = sled::Batch::default();
        batch.insert(K_SIZE, &b.new_size.to_be_bytes()[..]);
        self.log.apply_batch(batch)?;
        self.db.flush()?;
        if let Ok(mut edge) = self.edge.write() {
            for ((level, index), data) in &b.tiles {
                let slot = &mut edge[*level as usize % 64];
                if slot.as_ref().is_none_or(|(i, _)| *i <= *index) {
                    *slot = Some((*index, data.clone()));
                }
            }
        }
        // The dedup index is derived from the entries, now durable; after
        // a crash it is rebuilt from them (see `reindex`).
        self.dedup.insert(&b.dedup).map_err(io_err)?;
        Ok(())
    }

    fn size(&self) -> Result<u64, StoreError> {
        match self.log.get(K_SIZE)? {
            Some(v) => be_u64(&v),
            None => Ok(0),
        }
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.bundles.entry(index) {
            Ok(e) => Ok(Some(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    fn bundle(&self, n: u64, width: usize) -> Result<Vec<u8>, StoreError> {
        self.bundles.read(n, width).map_err(io_err)
    }

    fn tile_hashes(
        &self,
        level: u8,
        index: u64,
        pos: usize,
        count: usize,
        full: bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if let Ok(edge) = self.edge.read() {
            if let Some((i, data)) = &edge[level as usize % 64] {
                if *i == index {
                    let (from, to) = (pos * 32, (pos + count) * 32);
                    return Ok(data.get(from..to).map(<[u8]>::to_vec));
                }
            }
        }
        self.tiles
            .read_hashes(level, index, pos, count, full)
            .map_err(io_err)
    }

    fn dedup(&self, key: &crate::dedup::Key) -> Result<Option<u64>, StoreError> {
        self.dedup.get(key).map_err(io_err)
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.log.get(K_CHECKPOINT)?.map(|v| v.to_vec()))
    }

    fn put_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
        self.log.insert(K_CHECKPOINT, note)?;
        self.db.flush()?;
        Ok(())
    }
}
