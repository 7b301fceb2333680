//! Hash tiles as files, one per tile, at the C2SP tlog-tiles paths
//! (`tiles/<L>/x001/234`), each holding the tile's hashes and the seven
//! rows above them at fixed offsets ([`crate::storage::tree::encode_tile`]). A
//! commit rewrites the tiles it touched in place and fsyncs them before
//! the tree size that covers them is recorded. Readers only look at
//! positions complete at the durable size, so whatever a crash left beyond
//! it is never read and is overwritten by the next commit. Reads go
//! through the operating system's page cache, not the log's heap: the
//! log's memory does not grow with the number of tiles it serves.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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

thread_local! {
    /// Inside [`cached_only`]: tile reads must not wait for the disk.
    static CACHED_ONLY: Cell<bool> = const { Cell::new(false) };
    /// Set when a read inside [`cached_only`] found its bytes not cached.
    static WOULD_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// False once the kernel refused `RWF_NOWAIT` (then reads just block).
static NOWAIT_WORKS: AtomicBool = AtomicBool::new(true);

/// Runs `f` with tile reads that never wait for the disk: `None` if one of
/// them found its bytes outside the page cache (its error made `f` fail;
/// the caller runs `f` again where blocking is fine, e.g. on a blocking
/// thread), else `f`'s result. An async worker serves cached proofs
/// inline this way without stalling on a cold tile.
pub fn cached_only<R>(f: impl FnOnce() -> R) -> Option<R> {
    /// Ends the cached-only scope even if `f` panics: the async worker
    /// thread lives on, and its later reads must not be refused.
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            CACHED_ONLY.with(|c| c.set(false));
        }
    }
    CACHED_ONLY.with(|c| c.set(true));
    WOULD_WAIT.with(|w| w.set(false));
    let scope = Scope;
    let r = f();
    drop(scope);
    (!WOULD_WAIT.with(|w| w.replace(false))).then_some(r)
}

/// Reads exactly `buf.len()` bytes at `offset`; inside [`cached_only`],
/// only from the page cache (`preadv2` with `RWF_NOWAIT`), failing with
/// `WouldBlock` otherwise.
fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    if !CACHED_ONLY.with(Cell::get) || !NOWAIT_WORKS.load(Ordering::Relaxed) {
        return f.read_exact_at(buf, offset);
    }
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over `buf`, which lives across the call; the fd is
    // open for the call's duration.
    let n = unsafe { libc::preadv2(f.as_raw_fd(), &iov, 1, offset as i64, libc::RWF_NOWAIT) };
    if n == buf.len() as isize {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if n < 0
        && matches!(
            err.raw_os_error(),
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS)
        )
    {
        NOWAIT_WORKS.store(false, Ordering::Relaxed);
        return f.read_exact_at(buf, offset);
    }
    if n >= 0 || err.kind() == io::ErrorKind::WouldBlock {
        // Short (part cached) or not cached at all.
        WOULD_WAIT.with(|w| w.set(true));
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "tile not in the page cache",
        ));
    }
    Err(err)
}

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

    /// The first `len` bytes of stored tile (level, n) as on disk; `None`
    /// if the file is missing or shorter.
    pub fn read_stored(&self, level: u8, n: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
        match self.pread(level, n, 0, len) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            r => r,
        }
    }

    fn pread(&self, level: u8, n: u64, from: usize, to: usize) -> io::Result<Option<Vec<u8>>> {
        let f = match File::open(self.path(level, n)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; to - from];
        read_exact_at(&f, &mut buf, from as u64)?;
        Ok(Some(buf))
    }
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("tile cache lock poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_only_reads_refuse_a_tile_outside_the_page_cache() {
        // In the source tree, not $TMPDIR: a tmpfs keeps every page
        // resident, so nothing could be evicted there.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let tiles = TileFiles::open(dir.path()).unwrap();
        let data = Arc::new(vec![7u8; STORED_TILE_BYTES]);
        let mut sync = SyncSet::default();
        tiles.write(&[((0, 5), data.clone())], &mut sync).unwrap();
        sync.sync().unwrap();
        let read = || tiles.read_hashes(0, 5, 0, 4, true).ok().flatten();
        let want = Some(vec![7u8; 4 * HASH_SIZE]);

        // Cached (just written): served inline.
        assert_eq!(cached_only(read), Some(want.clone()));

        // Evicted (clean pages, so the advice drops them): refused inline,
        // read normally outside.
        let f = File::open(tiles.path(0, 5)).unwrap();
        // SAFETY: a plain advice call on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
        let inline = cached_only(read);
        assert!(
            NOWAIT_WORKS.load(Ordering::Relaxed),
            "this kernel or filesystem refuses RWF_NOWAIT reads: proofs would block the async workers on cold tiles"
        );
        assert_eq!(inline, None, "a cold tile was read inline");
        assert_eq!(read(), want);
        assert_eq!(cached_only(read), Some(want));
        // Outside `cached_only` nothing is refused, not even after a panic
        // inside it (the worker thread goes on serving).
        assert!(!CACHED_ONLY.with(Cell::get));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cached_only(|| panic!("a proof that panics"))
        }));
        assert!(panicked.is_err());
        assert!(!CACHED_ONLY.with(Cell::get), "the scope outlived a panic");
    }
}
