//! The embedded default backend: entry bundles and hash tiles as files,
//! the dedup index as sorted run files, the tree size in a two-slot
//! record file ([`SizeRecord`]) synced in the same round as a commit's
//! files, the checkpoint in sled.

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
        let bundles = BundleFiles::open(&dir.join("entries")).map_err(io_err)?;
        let (dedup, from) =
            DedupIndex::open(&dir.join("dedup"), dedup_table_keys).map_err(io_err)?;
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
        store.check_last_commit()?;
        let size = store.size()?;
        store.bundles.truncate_to(size).map_err(io_err)?;
        if from > size {
            return Err(StoreError::Corrupt(format!(
                "dedup index covers {from} entries but the log holds {size}"
            )));
        }
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

    /// The newest commit's record was synced in the same round as its
    /// files: keeps it only if they all reached the disk, else goes back
    /// to the size before it (nothing of it was acknowledged: an append is
    /// answered only after the whole round synced).
    fn check_last_commit(&self) -> Result<(), StoreError> {
        let Some((prev, size, root)) = self.record()?.unverified() else {
            return Ok(());
        };
        if self.replays(prev, size, &root)? {
            return Ok(());
        }
        tracing::warn!(
            size,
            prev,
            "the last commit did not fully reach the disk before the log stopped; its entries were never acknowledged and are dropped"
        );
        self.record()?.fall_back().map_err(io_err)
    }

    /// Replays the commit from `prev` to `size` over the stored entries:
    /// true if every entry is there, every tile it wrote holds what the
    /// replay computes, and the root is `root`.
    fn replays(
        &self,
        prev: u64,
        size: u64,
        root: &vellum_spec::hash::Hash,
    ) -> Result<bool, StoreError> {
        let gone = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof
            )
        };
        let mut edge = super::tree::TreeEdge::load(self, prev)?;
        let mut leaves = Vec::with_capacity((size - prev) as usize);
        let mut n = prev / TILE_WIDTH;
        while n * TILE_WIDTH < size {
            let w = (size - n * TILE_WIDTH).min(TILE_WIDTH) as usize;
            let data = match self.bundles.read(n, w) {
                Ok(d) => d,
                Err(e) if gone(&e) => return Ok(false),
                Err(e) => return Err(io_err(e)),
            };
            let Ok(entries) = vellum_spec::tile::parse_bundle(&data) else {
                return Ok(false);
            };
            for (i, leaf) in entries.iter().enumerate() {
                let index = n * TILE_WIDTH + i as u64;
                if (prev..size).contains(&index) {
                    leaves.push(vellum_spec::hash::leaf_hash(leaf));
                }
            }
            n += 1;
        }
        if leaves.len() as u64 != size - prev {
            return Ok(false);
        }
        let tiles = edge.append(&leaves);
        if edge.root() != *root {
            return Ok(false);
        }
        for ((level, index), data) in &tiles {
            // Only the nodes complete at `size`: a commit after this one
            // may already have rewritten the tile in place (its files are
            // written before its record), filling positions beyond them.
            let width = vellum_spec::tile::tile_width(*level, *index, size) as usize;
            match self.tiles.read_stored(*level, *index, data.len()) {
                Ok(Some(stored)) if super::tree::same_complete_nodes(data, &stored, width) => {}
                Ok(_) => return Ok(false),
                Err(e) if gone(&e) => return Ok(false),
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(true)
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
        // Entries, tiles and the size record, synced in one round; the
        // record is trusted after a crash only if the files it covers
        // replay (`check_last_commit`).
        let mut sync = SyncSet::default();
        self.bundles.append(&b.entries, &mut sync).map_err(io_err)?;
        self.tiles.write(&b.tiles, &mut sync).map_err(io_err)?;
        if let Some((first, _)) = b.entries.first() {
            let record = self
                .record()?
                .stage(b.new_size, *first, &b.new_root)
                .map_err(io_err)?;
            sync.file(record);
        }
        sync.sync().map_err(io_err)
    }

    fn publish(&self, b: &CommitBatch) -> Result<(), StoreError> {
        self.record()?.publish(b.new_size);
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

    /// The tree root at `size` from what the store holds.
    fn root(store: &SledStore, size: u64) -> vellum_spec::hash::Hash {
        TreeEdge::load(store, size).unwrap().root()
    }

    #[test]
    fn a_commit_is_kept_when_the_next_one_had_written_its_files_but_not_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let open = || SledStore::open(dir.path(), 1 << 20, 1024).unwrap();
        let store = open();
        commit(&store, 300);
        commit(&store, 5);
        let root305 = root(&store, 305);
        // The next commit's bundle and tile writes, as kill -9 leaves them
        // between its file writes and its record write: the partial tiles
        // of the 305-entry tree rewritten in place with more hashes.
        let mut edge = TreeEdge::load(&store, 305).unwrap();
        let mut leaves = Vec::new();
        let mut entries = Vec::new();
        for i in 305..340u64 {
            let leaf = format!("{{\"event_id\":\"e{i}\",\"gateway\":\"g\"}}").into_bytes();
            leaves.push(leaf_hash(&leaf));
            entries.push((i, leaf));
        }
        let tiles = edge.append(&leaves);
        let mut sync = SyncSet::default();
        store.bundles.append(&entries, &mut sync).unwrap();
        store.tiles.write(&tiles, &mut sync).unwrap();
        sync.sync().unwrap();
        drop(store);
        let store = open();
        assert_eq!(
            store.size().unwrap(),
            305,
            "an acknowledged commit was dropped"
        );
        assert_eq!(root(&store, 305), root305);
    }

    #[test]
    fn a_commit_whose_files_did_not_all_reach_the_disk_is_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let open = || SledStore::open(dir.path(), 1 << 20, 1024).unwrap();
        let store = open();
        commit(&store, 300);
        let root300 = root(&store, 300);
        drop(store);

        // The record of a commit reached the disk, its entries did not.
        {
            let mut r = SizeRecord::open(&dir.path().join(SIZE_FILE))
                .unwrap()
                .unwrap();
            r.stage(400, 300, &vellum_spec::hash::Hash([1; 32]))
                .unwrap()
                .sync_data()
                .unwrap();
        }
        let store = open();
        assert_eq!(store.size().unwrap(), 300);
        assert_eq!(root(&store, 300), root300);
        drop(store);
        assert_eq!(open().size().unwrap(), 300, "the fall-back is recorded");

        // Entries and record there, but one new leaf hash in a tile lost
        // (the tile's earlier hashes are rewritten with the same bytes, so
        // a lost write leaves them intact).
        let store = open();
        commit(&store, 100);
        assert_eq!(store.size().unwrap(), 400);
        drop(store);
        let tile = dir.path().join("tiles/0/001");
        let f = std::fs::OpenOptions::new().write(true).open(&tile).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 32], 140 * 32).unwrap();
        let store = open();
        assert_eq!(store.size().unwrap(), 300);
        assert_eq!(root(&store, 300), root300);
        assert!(
            !matches!(store.entry(350), Ok(Some(_))),
            "its entries are dropped"
        );
        // The log goes on from there, and a whole commit is kept.
        commit(&store, 10);
        let root310 = root(&store, 310);
        drop(store);
        let store = open();
        assert_eq!(store.size().unwrap(), 310);
        assert_eq!(root(&store, 310), root310);
    }
}
