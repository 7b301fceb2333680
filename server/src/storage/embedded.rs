//! The embedded default backend: entry bundles and hash tiles as files,
//! the dedup index as sorted run files, the tree size in a two-slot
//! record file ([`SizeRecord`]), the checkpoint in sled.

use std::path::Path;
use std::sync::Arc;

use vellum_spec::tile::TILE_WIDTH;

use super::bundles::BundleFiles;
use super::dedup_index::DedupIndex;
use super::size_record::SizeRecord;
use super::syncset::SyncSet;
use super::tilefiles::TileFiles;
use super::{CommitBatch, LogStore, StoreError};

/// A tile index and its stored bytes.
type EdgeTile = (u64, Arc<Vec<u8>>);

/// The embedded default backend: entry bundles as files
/// ([`BundleFiles`]), the dedup index as sorted run files
/// ([`DedupIndex`]), hash tiles as files ([`TileFiles`]), the tree size
/// in [`SizeRecord`] (the commit point) and the checkpoint in sled.
pub struct SledStore {
    dir: std::path::PathBuf,
    db: sled::Db,
    log: sled::Tree,
    size: std::sync::Mutex<SizeRecord>,
    bundles: BundleFiles,
    tiles: TileFiles,
    dedup: Arc<DedupIndex>,
    /// The newest tile written at each level (the tree's right edge), kept
    /// in memory: every proof reads it. At most one tile per level.
    edge: std::sync::RwLock<Vec<Option<EdgeTile>>>,
}

/// Where logs before the size record kept the tree size (read once, when
/// the record is created).
const K_SIZE: &[u8] = b"m/size";
/// The size record's file in the store's directory.
const SIZE_FILE: &str = "tree-size";
const K_CHECKPOINT: &[u8] = b"m/checkpoint";

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::from(e)
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => StoreError::from(io),
            e => StoreError::Backend(e.to_string()),
        }
    }
}

fn be_u64(v: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(v.try_into().map_err(|_| {
        StoreError::Corrupt(format!("expected 8 bytes, found {}", v.len()))
    })?))
}

/// Bytes [`probe`] writes: about one large group commit.
const PROBE_BYTES: usize = 1 << 20;

/// Writes, syncs and removes a file of [`PROBE_BYTES`] in `dir`: fails
/// (transiently) while descriptors or disk space are short.
fn probe(dir: &Path) -> Result<(), StoreError> {
    use std::io::Write;
    let p = dir.join(".probe");
    let res = std::fs::File::create(&p).and_then(|mut f| {
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&p);
    res.map_err(io_err)
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
        let record = match SizeRecord::open(&dir.join(SIZE_FILE)).map_err(io_err)? {
            Some(r) => r,
            None => {
                // A new log, or one from before the size record: its size
                // was in sled (and is not written there again).
                let size = match log.get(K_SIZE)? {
                    Some(v) => be_u64(&v)?,
                    None => 0,
                };
                SizeRecord::create(&dir.join(SIZE_FILE), size).map_err(io_err)?
            }
        };
        let size = record.size();
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
            dir: dir.to_path_buf(),
            db,
            log,
            size: std::sync::Mutex::new(record),
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
    fn record(&self) -> Result<std::sync::MutexGuard<'_, SizeRecord>, StoreError> {
        self.size
            .lock()
            .map_err(|_| StoreError::Backend("the size record's lock is poisoned".into()))
    }

    /// Records the durable tree size (the commit point).
    fn set_size(&self, size: u64) -> Result<(), StoreError> {
        self.record()?.set(size).map_err(io_err)
    }

    /// Re-adds the dedup keys of entries `[from, size)` from the bundles:
    /// the keys that were only in memory when the log last stopped.
    fn reindex(&self, from: u64, size: u64) -> Result<(), StoreError> {
        super::reindex_dedup(&self.dedup, from, size, &|n, w| {
            self.bundles.read(n, w).map_err(io_err)
        })
    }
}

impl LogStore for SledStore {
    fn stage(&self, b: &CommitBatch) -> Result<(), StoreError> {
        // Entries and tiles, fsynced: the size recorded by `publish` must
        // never point past entries that are not on disk.
        let mut sync = SyncSet::default();
        self.bundles.append(&b.entries, &mut sync).map_err(io_err)?;
        self.tiles.write(&b.tiles, &mut sync).map_err(io_err)?;
        sync.sync().map_err(io_err)
    }

    fn publish(&self, b: &CommitBatch) -> Result<(), StoreError> {
        self.set_size(b.new_size)?;
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

    fn recover(&self, size: u64) -> Result<(), StoreError> {
        // Can a commit's worth be written and synced again? Until it can,
        // stay unavailable (rather than flap between failing commits).
        probe(&self.dir)?;
        // Entries past `size` in the last bundle (a partial append) go; tile
        // files past it are never read and are rewritten by later commits;
        // dedup keys are added only after a commit is durable.
        self.bundles.truncate_to(size).map_err(io_err)?;
        self.set_size(size)
    }

    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.record()?.size())
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.bundles.entry(index) {
            Ok(e) => Ok(Some(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    fn entry_at(&self, index: u64, offset: u32) -> Result<Option<Vec<u8>>, StoreError> {
        match self.bundles.entry_at(index / TILE_WIDTH, offset) {
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

    fn dedup(&self, key: &crate::storage::dedup::Key) -> Result<Option<u64>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tree::TreeEdge;
    use vellum_spec::hash::leaf_hash;

    fn commit(store: &SledStore, n: u64) {
        let mut edge = TreeEdge::load(store, store.size().unwrap()).unwrap();
        let from = edge.size();
        let mut batch = CommitBatch::default();
        let mut leaves = Vec::new();
        for i in from..from + n {
            let leaf = format!("{{\"event_id\":\"e{i}\",\"gateway\":\"g\"}}").into_bytes();
            leaves.push(leaf_hash(&leaf));
            batch.entries.push((i, leaf));
        }
        batch.tiles = edge.append(&leaves);
        batch.new_size = edge.size();
        batch.new_root = edge.root();
        store.commit(&batch).unwrap();
    }

    #[test]
    fn the_size_lives_in_the_record_and_a_log_from_before_it_keeps_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20, 1024).unwrap();
        commit(&store, 300);
        commit(&store, 5);
        assert_eq!(store.size().unwrap(), 305);
        drop(store);
        let store = SledStore::open(dir.path(), 1 << 20, 1024).unwrap();
        assert_eq!(store.size().unwrap(), 305);
        assert_eq!(
            store.entry(304).unwrap().unwrap(),
            b"{\"event_id\":\"e304\",\"gateway\":\"g\"}"
        );
        drop(store);

        // A data directory written before the size record: the size only
        // in sled. It is carried over once, and the record rules after.
        std::fs::remove_file(dir.path().join(SIZE_FILE)).unwrap();
        {
            let db = sled::open(dir.path().join("index")).unwrap();
            db.open_tree("log")
                .unwrap()
                .insert(K_SIZE, &305u64.to_be_bytes()[..])
                .unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), 1 << 20, 1024).unwrap();
        assert_eq!(store.size().unwrap(), 305);
        commit(&store, 1);
        drop(store);
        let store = SledStore::open(dir.path(), 1 << 20, 1024).unwrap();
        assert_eq!(store.size().unwrap(), 306);
    }
}
