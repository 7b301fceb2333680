//! Hash tiles as files, one per tile, at the C2SP tlog-tiles paths
//! (`tiles/<L>/x001/234`), each holding the tile's hashes and the seven
//! rows above them at fixed offsets ([`crate::storage::tree::encode_tile`]). A
//! commit rewrites the tiles it touched in place and fsyncs them before
//! the tree size that covers them is recorded. Readers only look at
//! positions complete at the durable size, so whatever a crash left beyond
//! it is never read and is overwritten by the next commit. Reads go
//! through the operating system's page cache, not the log's heap: the
//! log's memory does not grow with the number of tiles it serves.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use vellum_spec::hash::HASH_SIZE;
use vellum_spec::tile::encode_index;

use crate::storage::syncset::SyncSet;
use crate::storage::tree::STORED_TILE_BYTES;

/// Full tiles of level 1 and up kept in memory: every proof reads them and
/// they never change. 1,024 tiles (16 MiB) cover logs of up to 67 million
/// entries; beyond that the rest are read from disk: memory stays bounded.
const MAX_HOT: usize = 1024;

/// A tile's (level, index).
type TileKey = (u8, u64);

/// The tile directory.
pub struct TileFiles {
    root: PathBuf,
    hot: RwLock<HashMap<TileKey, Arc<Vec<u8>>>>,
}

impl TileFiles {
    /// Opens (or creates) the tile directory.
    pub fn open(root: &Path) -> io::Result<TileFiles> {
        fs::create_dir_all(root)?;
        Ok(TileFiles {
            root: root.into(),
            hot: RwLock::new(HashMap::new()),
        })
    }

    fn path(&self, level: u8, n: u64) -> PathBuf {
        self.root.join(level.to_string()).join(encode_index(n))
    }

    /// Writes stored tiles in place; the files and the directories that
    /// gained an entry go into `sync`, to be fsynced.
    pub fn write(
        &self,
        tiles: &[crate::storage::StoredTileBytes],
        sync: &mut SyncSet,
    ) -> io::Result<()> {
        for ((level, n), data) in tiles {
            let p = self.path(*level, *n);
            let dir = p.parent().unwrap_or(&self.root).to_path_buf();
            let mut d = dir.as_path();
            while !d.exists() {
                let Some(up) = d.parent() else { break };
                sync.dir(up.to_path_buf());
                d = up;
            }
            fs::create_dir_all(&dir)?;
            let existed = p.exists();
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&p)?;
            f.write_all_at(data, 0)?;
            sync.file(f);
            if !existed {
                sync.dir(dir);
            }
        }
        Ok(())
    }

    /// Reads `count` hashes at hash position `pos` of stored tile
    /// (level, n); `None` if the tile was never written. `full` says the
    /// tile is complete (immutable), so it may be kept in memory.
    pub fn read_hashes(
        &self,
        level: u8,
        n: u64,
        pos: usize,
        count: usize,
        full: bool,
    ) -> io::Result<Option<Vec<u8>>> {
        let (from, to) = (pos * HASH_SIZE, (pos + count) * HASH_SIZE);
        if level == 0 || !full {
            return self.pread(level, n, from, to);
        }
        if let Some(t) = self.hot.read().map_err(poisoned)?.get(&(level, n)) {
            return Ok(t.get(from..to).map(<[u8]>::to_vec));
        }
        let Some(whole) = self.pread(level, n, 0, STORED_TILE_BYTES)? else {
            return Ok(None);
        };
        let out = whole.get(from..to).map(<[u8]>::to_vec);
        let mut hot = self.hot.write().map_err(poisoned)?;
        if hot.len() < MAX_HOT {
            hot.insert((level, n), Arc::new(whole));
        }
        Ok(out)
    }

    fn pread(&self, level: u8, n: u64, from: usize, to: usize) -> io::Result<Option<Vec<u8>>> {
        let f = match File::open(self.path(level, n)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; to - from];
        f.read_exact_at(&mut buf, from as u64)?;
        Ok(Some(buf))
    }
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("tile cache lock poisoned")
}
