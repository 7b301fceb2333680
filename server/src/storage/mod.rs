//! Storage: the interface the log needs from a backend ([`LogStore`]),
//! the embedded backend ([`embedded::SledStore`]) and its parts, and the
//! stored tile layout with the tree's right edge ([`tree`]).
//!
//! Everything a sequenced batch changes (entries, tiles, dedup keys, the
//! tree size) is written by one durable, all-or-nothing commit; readers
//! never see more than the log has acknowledged because the server bounds
//! every read by the durable size it tracks. Nothing here knows of HTTP.

pub mod bundles;
pub mod dedup;
pub mod dedup_index;
pub mod embedded;
pub mod object;
pub mod size_record;
pub mod syncset;
pub mod tilefiles;
pub mod tree;

use std::sync::Arc;

pub use embedded::SledStore;

/// Storage failures. The message never contains entry contents or secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("storage: {0}")]
    Backend(String),
    /// A resource ran out for now (descriptors, disk space, memory): the
    /// operation may succeed later, and the log retries instead of stopping.
    #[error("storage temporarily unavailable: {0}")]
    Unavailable(String),
    /// Stored data is not what the log wrote.
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
    /// Another writer took over the log (the object backend's lock): this
    /// process must stop writing at once.
    #[error("fenced: {0}")]
    Fenced(String),
}

impl StoreError {
    /// True for a shortage that may clear by itself (see [`StoreError::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Errors of the operating system that mean "not now" rather than "broken":
/// out of descriptors (process or system), of disk space or quota, of memory.
pub fn is_transient_os_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOSPC
                | libc::EDQUOT
                | libc::ENOMEM
                | libc::EAGAIN
                | libc::EINTR
        )
    )
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if is_transient_os_error(&e) {
            StoreError::Unavailable(e.to_string())
        } else if e.kind() == std::io::ErrorKind::InvalidData {
            StoreError::Corrupt(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}

/// A stored tile (see [`crate::storage::tree::encode_tile`]) and its (level, index),
/// shared between the write and the in-memory right edge.
pub type StoredTileBytes = ((u8, u64), Arc<Vec<u8>>);

/// One sequenced batch, applied durably and atomically by [`LogStore::commit`].
#[derive(Default)]
pub struct CommitBatch {
    /// New entries: (index, leaf bytes), in index order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Tiles written: ((level, index), stored tile bytes).
    pub tiles: Vec<StoredTileBytes>,
    /// Dedup keys ([`crate::storage::dedup::key`]) and the index each points at.
    pub dedup: Vec<(crate::storage::dedup::Key, u64)>,
    /// Tree size after this batch.
    pub new_size: u64,
    /// Tree root after this batch (the object backend's lock record holds it).
    pub new_root: vellum_spec::hash::Hash,
}

/// What the log needs from a storage backend. Full tiles and entries are
/// immutable once written, so an object store can implement this too.
pub trait LogStore: Send + Sync + 'static {
    /// Applies `batch`: on return it is durable; after a crash at any
    /// point the store holds either all of it or none of it.
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.stage(batch)?;
        self.publish(batch)
    }
    /// The first half of a commit: writes the batch's data durably without
    /// making it part of the log (nothing past the last published size is
    /// ever read, and a crash leaves it unreferenced). Batches are staged
    /// in order; the sequencer stages batch k+1 while k is published.
    fn stage(&self, batch: &CommitBatch) -> Result<(), StoreError>;
    /// The second half: the commit point, after which the batch (staged
    /// before, in order) is durable and readable. Called in order, one at
    /// a time, possibly while the next batch is staged.
    fn publish(&self, batch: &CommitBatch) -> Result<(), StoreError>;
    /// After a failed [`LogStore::commit`] (stage or publish), returns the
    /// store to the last durable tree size `size`, dropping whatever the
    /// failed commit and any batch staged after it wrote,
    /// so that commits can resume. Fails (transiently) while the cause lasts.
    fn recover(&self, size: u64) -> Result<(), StoreError>;
    /// Tree size of the last commit (0 for a new log).
    fn size(&self) -> Result<u64, StoreError>;
    /// The leaf bytes of entry `index`.
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// The first `width` entries of entry bundle `n`, as bundle bytes.
    fn bundle(&self, n: u64, width: usize) -> Result<Vec<u8>, StoreError>;
    /// Entry `index`, whose length prefix starts at byte `offset` of its
    /// bundle (a hint kept by the caller). Backends without positioned
    /// reads may ignore the hint.
    fn entry_at(&self, index: u64, offset: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = offset;
        self.entry(index)
    }
    /// `count` hashes from hash position `pos` of the stored tile (level,
    /// index) (layout: [`crate::storage::tree::encode_tile`]); `None` if the tile
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
    fn dedup(&self, key: &crate::storage::dedup::Key) -> Result<Option<u64>, StoreError>;
    /// The last stored signed checkpoint.
    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a signed checkpoint durably.
    fn put_checkpoint(&self, note: &[u8]) -> Result<(), StoreError>;
    /// For a read-only replica: looks for what the writer committed since
    /// and returns the tree size now readable. A writer's store returns
    /// its own size.
    fn refresh(&self) -> Result<u64, StoreError> {
        self.size()
    }
}

/// Calls `f` for each entry in `[from, to)` (which must be durable), in
/// index order, reading one entry bundle at a time.
pub fn for_each_entry<E: From<StoreError>>(
    store: &dyn LogStore,
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    use vellum_spec::tile::{parse_bundle, TILE_WIDTH};
    let mut n = from / TILE_WIDTH;
    while n * TILE_WIDTH < to {
        let base = n * TILE_WIDTH;
        let width = (to - base).min(TILE_WIDTH) as usize;
        let data = store.bundle(n, width)?;
        let entries = parse_bundle(&data)
            .map_err(|e| StoreError::Corrupt(format!("entry bundle {n}: {e}")))?;
        for (i, leaf) in entries.iter().enumerate().take(width) {
            let index = base + i as u64;
            if index >= from {
                f(index, leaf)?;
            }
        }
        n += 1;
    }
    Ok(())
}

/// Adds the dedup keys of entries `[from, size)` to `dedup`, reading their
/// bundles with `read_bundle(n, width)`: rebuilds what a crash or a new
/// machine lacks (the index is derived from the entries).
pub fn reindex_dedup(
    dedup: &dedup_index::DedupIndex,
    from: u64,
    size: u64,
    read_bundle: &dyn Fn(u64, usize) -> Result<Vec<u8>, StoreError>,
) -> Result<(), StoreError> {
    use vellum_spec::tile::{parse_bundle, TILE_WIDTH};
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
        let data = read_bundle(n, w)?;
        let entries = parse_bundle(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut keys = Vec::with_capacity(entries.len());
        for (k, leaf) in entries.iter().enumerate().take(w) {
            let i = n * TILE_WIDTH + k as u64;
            if i < index {
                continue;
            }
            let ids: Ids = serde_json::from_slice(leaf).map_err(|e| {
                StoreError::Corrupt(format!("entry {i} lacks gateway or event_id: {e}"))
            })?;
            keys.push((dedup::key(&ids.gateway, &ids.event_id), i));
        }
        dedup.insert(&keys)?;
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
