//! The object-storage backend (`vellum serve --storage s3`): the log in an
//! S3-compatible bucket, laid out exactly as C2SP tlog-tiles serves it.
//!
//! * A commit writes the batch's entry bundles (the partial one too) and
//!   the hash tiles that became full as one round of concurrent PUTs (full
//!   ones write-once, with `If-None-Match: *`), then swaps the lock record
//!   ([`lock`]) with `If-Match`: the swap is the commit point. An append
//!   is acknowledged only after it, so an acknowledged entry is durable in
//!   the bucket. Nothing is kept only locally.
//! * Partial hash tiles (`.p/<W>`) are derived from the entries and full
//!   tiles below them; they are written for each size a checkpoint is
//!   stored for (C2SP asks for those), before the checkpoint, not by every
//!   commit. Where one is absent (a restart at another size, a replica
//!   reading the newest size) it is rebuilt from below.
//! * One writer: the lock record names the holder and a lease. A second
//!   writer refuses to start while the lease is live; a writer that loses
//!   a swap has been fenced and the process exits at once.
//! * Read-only replicas ([`Role::Replica`]) follow the lock record and read
//!   tiles and bundles from the bucket, never writing.
//! * The dedup index is derived data kept in the local data directory and
//!   rebuilt from the bucket's bundles when it is behind.
//!
//! Reads of immutable objects go through bounded caches; memory does not
//! grow with the log.

pub mod cache;
pub mod layout;
pub mod lock;
pub mod probe;
pub mod settings;

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::sync::mpsc;
use vellum_spec::hash::{Hash, HASH_SIZE};
use vellum_spec::tile::{parse_bundle, push_bundle_entry, tile_width, TILE_WIDTH};

use self::cache::Lru;
use self::layout::Layout;
use self::lock::{now_ms, LockRecord};
pub use self::settings::S3Settings;
use super::dedup_index::DedupIndex;
use super::tree::{encode_tile, TreeEdge};
use super::{CommitBatch, LogStore, StoreError};

/// Largest object the backend reads: a full bundle of maximal entries.
const MAX_BUNDLE_BYTES: u64 = TILE_WIDTH * (2 + 65_535);
/// Largest lock record or checkpoint read.
const MAX_RECORD_BYTES: u64 = 1 << 20;
/// PUTs of one commit in flight at once.
const PUT_CONCURRENCY: usize = 32;
/// Partial tiles and bundles are deleted this long after their full
/// object exists (clients holding an older checkpoint may still fetch them;
/// C2SP lets them fall back to the full tile).
const GC_DELAY: Duration = Duration::from_secs(60);
/// Decoded tiles cached (16 KiB each: 64 MiB).
const TILE_CACHE: usize = 4096;
/// Bundles cached (up to 128 KiB each for typical events).
const BUNDLE_CACHE: usize = 256;

/// A tile index and its stored encoding.
type EdgeTile = (u64, Arc<Vec<u8>>);

/// What this process does with the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The one writer: holds the lock record.
    Writer,
    /// A read-only replica following the writer.
    Replica,
}

/// How to open a [`BucketStore`].
pub struct OpenOptions {
    /// Where the bucket is.
    pub settings: S3Settings,
    /// Writer or replica.
    pub role: Role,
    /// Local directory for derived data (the dedup index).
    pub local: std::path::PathBuf,
    /// This data directory's instance ID (the lock's holder name).
    pub instance: String,
    /// The log's verifier key; a writer checks the bucket holds this log.
    pub log_key: Option<String>,
    /// Keys per dedup table (see [`DedupIndex`]).
    pub dedup_table_keys: usize,
    /// How long the writer's lease lasts without renewal.
    pub lease: Duration,
}

/// The current partial entry bundle: bundle `n` with `count` entries.
#[derive(Clone)]
struct Partial {
    n: u64,
    count: usize,
    bytes: Vec<u8>,
}

/// A staged batch's effect on memory, applied when it is published.
struct Staged {
    new_size: u64,
    partial: Partial,
    full_bundles: Vec<(u64, Vec<u8>)>,
    full_objects: Vec<(bool, u8, u64)>,
    partial_objects: Vec<(bool, u8, u64, usize)>,
}

/// The writer's side of the lock.
struct WriterState {
    /// ETag of the lock record as this writer last wrote it.
    version: UpdateVersion,
    /// A swap failed without an answer: it may have happened. The next
    /// swap re-reads the record first.
    uncertain: bool,
    /// When the record was last swapped (the lease was renewed).
    swapped: Instant,
    /// Partial objects written per incomplete (kind, level, n), deleted
    /// once the full one exists. Kind: true for bundles.
    partials: HashMap<(bool, u8, u64), Vec<usize>>,
}

/// The log in an S3-compatible bucket. See the module documentation.
pub struct BucketStore {
    rt: Option<tokio::runtime::Runtime>,
    os: Arc<dyn ObjectStore>,
    layout: Layout,
    role: Role,
    instance: String,
    where_: String,
    size: AtomicU64,
    record: RwLock<LockRecord>,
    /// The replica's lock record ETag, for cheap conditional polls.
    seen: Mutex<Option<String>>,
    writer: Mutex<Option<WriterState>>,
    partial: RwLock<Partial>,
    /// Batches staged and not yet published, oldest first.
    staged: Mutex<std::collections::VecDeque<Staged>>,
    /// The newest tile written at each level (the right edge).
    edge: RwLock<Vec<Option<EdgeTile>>>,
    tiles: Lru<(u8, u64, usize), Vec<u8>>,
    bundles: Lru<(u64, usize), Vec<u8>>,
    dedup: Arc<DedupIndex>,
    fenced: Arc<AtomicBool>,
    lease_ms: i64,
    gc: Option<mpsc::UnboundedSender<(Instant, Vec<Path>)>>,
}

impl Drop for BucketStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async caller may not do.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn os_err(what: &str, e: object_store::Error) -> StoreError {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } | E::NotSupported { .. } => {
            StoreError::Backend(format!("{what}: {e}"))
        }
        // Unreachable, timing out, 5xx: the store may come back.
        e => StoreError::Unavailable(format!("{what}: {e}")),
    }
}

fn corrupt(m: String) -> StoreError {
    StoreError::Corrupt(m)
}

/// Reads an object whole, refusing one larger than `cap`; `None` if absent.
async fn get_capped(
    os: &dyn ObjectStore,
    path: &Path,
    cap: u64,
) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
    let r = match os.get_opts(path, GetOptions::default()).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(os_err(&format!("reading {path}"), e)),
    };
    if r.meta.size > cap {
        return Err(corrupt(format!(
            "{path} is {} bytes, over the {cap}-byte limit",
            r.meta.size
        )));
    }
    let etag = r.meta.e_tag.clone();
    let b = r
        .bytes()
        .await
        .map_err(|e| os_err(&format!("reading {path}"), e))?;
    Ok(Some((b.to_vec(), etag)))
}

fn parse_record(bytes: &[u8]) -> Result<LockRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("the lock record: {e}")))
}

fn hex(h: &Hash) -> String {
    h.0.iter().map(|b| format!("{b:02x}")).collect()
}

impl BucketStore {
    /// Connects, and as a writer probes conditional writes, takes the lock
    /// and checks the bucket's tree against the lock record's root.
    pub fn open(o: OpenOptions) -> Result<BucketStore, StoreError> {
        let os = o.settings.connect().map_err(StoreError::Backend)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vellum-s3")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("starting the S3 client: {e}")))?;
        let layout = Layout::new(&o.settings.prefix);
        let where_ = o.settings.describe();
        std::fs::create_dir_all(&o.local)?;
        let (dedup, from) = DedupIndex::open(&o.local.join("dedup"), o.dedup_table_keys)?;
        let mut store = BucketStore {
            rt: Some(rt),
            os,
            layout,
            role: o.role,
            instance: o.instance,
            where_,
            size: AtomicU64::new(0),
            record: RwLock::new(LockRecord {
                version: 1,
                holder: String::new(),
                host: String::new(),
                pid: 0,
                lease_until_ms: 0,
                size: 0,
                root: String::new(),
                log_key: String::new(),
                checkpoint: None,
            }),
            seen: Mutex::new(None),
            writer: Mutex::new(None),
            partial: RwLock::new(Partial {
                n: 0,
                count: 0,
                bytes: vec![],
            }),
            staged: Mutex::new(std::collections::VecDeque::new()),
            edge: RwLock::new(vec![None; 64]),
            tiles: Lru::new(TILE_CACHE),
            bundles: Lru::new(BUNDLE_CACHE),
            dedup,
            fenced: Arc::new(AtomicBool::new(false)),
            lease_ms: (o.lease.as_millis() as i64).max(1000),
            gc: None,
        };
        match o.role {
            Role::Writer => {
                let (os, path) = (store.os.clone(), store.layout.probe(&store.instance));
                store
                    .block(probe::conditional_writes(os, path))?
                    .map_err(|e| match e {
                        probe::ProbeError::NotEnforced(_) => {
                            StoreError::Backend(format!("{}: {e}", store.where_))
                        }
                        e => StoreError::Unavailable(format!("{}: {e}", store.where_)),
                    })?;
                store.acquire(o.log_key.as_deref())?;
                store.gc = Some(store.start_gc());
            }
            Role::Replica => {
                if !store.poll()? {
                    return Err(StoreError::Backend(format!(
                        "{} holds no log yet (no lock record): start the writer first",
                        store.where_
                    )));
                }
            }
        }
        let size = store.size.load(Ordering::Acquire);
        store.load_partial(size)?;
        let edge = TreeEdge::load(&store, size)?;
        let want = store.read_record().root.clone();
        if hex(&edge.root()) != want {
            return Err(corrupt(format!(
                "the tiles in {} at size {size} do not hash to the root its lock record holds ({want}); the bucket was changed by something other than this log",
                store.where_
            )));
        }
        if from > size {
            return Err(corrupt(format!(
                "the local dedup index covers {from} entries but {} holds {size}; delete {} to rebuild it",
                store.where_,
                o.local.join("dedup").display()
            )));
        }
        super::reindex_dedup(&store.dedup, from, size, &|n, w| store.bundle(n, w))?;
        Ok(store)
    }

    /// Runs `f` on the backend's own runtime and waits for it: callable
    /// from any thread, including the server's async workers.
    fn block<F>(&self, f: F) -> Result<F::Output, StoreError>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the S3 client stopped".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Backend("the S3 client stopped".into()))
    }

    /// Runs `f` on the writer's state, under its lock; refuses on a replica
    /// and once this writer was fenced.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut WriterState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut g = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("writer state poisoned".into()))?;
        let w = g
            .as_mut()
            .ok_or_else(|| StoreError::Backend("a read-only replica does not write".into()))?;
        if self.fenced.load(Ordering::SeqCst) {
            return Err(StoreError::Fenced("this writer was fenced".into()));
        }
        f(w)
    }

    /// The log's verifier key, as the lock record names it.
    pub fn log_key(&self) -> String {
        self.read_record().log_key
    }

    fn read_record(&self) -> LockRecord {
        match self.record.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_record(&self, rec: LockRecord) {
        match self.record.write() {
            Ok(mut r) => *r = rec,
            Err(p) => *p.into_inner() = rec,
        }
    }

    /// Reads the lock record and its ETag.
    fn get_record(&self) -> Result<Option<(LockRecord, Option<String>)>, StoreError> {
        let (os, path) = (self.os.clone(), self.layout.lock());
        match self
            .block(async move { get_capped(os.as_ref(), &path, MAX_RECORD_BYTES).await })??
        {
            Some((b, etag)) => Ok(Some((parse_record(&b)?, etag))),
            None => Ok(None),
        }
    }

    /// Takes the lock record for this writer: creates it for a new log,
    /// or takes it over when its holder is this data directory (a restart:
    /// the directory's lock says no other process uses it) or its lease ran
    /// out. Refuses while another writer's lease is live.
    fn acquire(&self, log_key: Option<&str>) -> Result<(), StoreError> {
        let log_key = log_key.unwrap_or_default().to_string();
        for _ in 0..5 {
            let now = now_ms();
            let mine = |size: u64, root: String, checkpoint: Option<String>| LockRecord {
                version: 1,
                holder: self.instance.clone(),
                host: lock::host_name(),
                pid: std::process::id(),
                lease_until_ms: now + self.lease_ms,
                size,
                root,
                log_key: log_key.clone(),
                checkpoint,
            };
            let (rec, mode) = match self.get_record()? {
                None => (
                    mine(0, hex(&vellum_spec::merkle::reference_root(&[])), None),
                    PutMode::Create,
                ),
                Some((old, etag)) => {
                    if !log_key.is_empty() && old.log_key != log_key {
                        return Err(StoreError::Backend(format!(
                            "{} holds another log (key {}), not this data directory's ({log_key})",
                            self.where_, old.log_key
                        )));
                    }
                    if old.holder != self.instance && old.live(now) {
                        return Err(StoreError::Backend(format!(
                            "{} is being written by another vellum, {}, whose lease runs {} ms more; only one writer may extend a log: start this one with --read-only, or stop the other (its lease then expires within {} s)",
                            self.where_,
                            old.who(),
                            old.lease_until_ms - now,
                            self.lease_ms / 1000
                        )));
                    }
                    if old.holder != self.instance {
                        tracing::warn!(previous = %old.who(), "taking over the log from a writer whose lease expired");
                    }
                    (
                        mine(old.size, old.root.clone(), old.checkpoint.clone()),
                        PutMode::Update(UpdateVersion {
                            e_tag: etag,
                            version: None,
                        }),
                    )
                }
            };
            match self.put_record(&rec, mode)? {
                Some(version) => {
                    self.size.store(rec.size, Ordering::Release);
                    self.set_record(rec);
                    if let Ok(mut w) = self.writer.lock() {
                        *w = Some(WriterState {
                            version,
                            uncertain: false,
                            swapped: Instant::now(),
                            partials: HashMap::new(),
                        });
                    }
                    return Ok(());
                }
                None => continue, // someone else swapped in between: look again
            }
        }
        Err(StoreError::Backend(format!(
            "{}: the lock record kept changing while this writer tried to take it; is another writer starting?",
            self.where_
        )))
    }

    /// PUTs the lock record with `mode`; `None` when the condition failed.
    fn put_record(
        &self,
        rec: &LockRecord,
        mode: PutMode,
    ) -> Result<Option<UpdateVersion>, StoreError> {
        let body = serde_json::to_vec(rec).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (os, path) = (self.os.clone(), self.layout.lock());
        let res = self.block(async move {
            os.put_opts(
                &path,
                PutPayload::from(body),
                PutOptions {
                    mode,
                    ..Default::default()
                },
            )
            .await
        })?;
        match res {
            Ok(r) => Ok(Some(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            })),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(os_err("writing the lock record", e)),
        }
    }

    /// Stops this process: another writer swapped the lock record.
    fn fence(&self, why: &str) -> StoreError {
        self.fenced.store(true, Ordering::SeqCst);
        let msg = format!(
            "fenced: {why}; another writer has taken over {} and this one stops at once (nothing after the last acknowledged append was acknowledged)",
            self.where_
        );
        tracing::error!("{msg}");
        eprintln!("vellum: {msg}");
        std::process::exit(3);
    }

    /// Swaps in `rec` against the version this writer last wrote; renews
    /// the lease. A lost swap fences this writer.
    fn swap(&self, w: &mut WriterState, mut rec: LockRecord) -> Result<(), StoreError> {
        if self.fenced.load(Ordering::SeqCst) {
            return Err(StoreError::Fenced("this writer was fenced".into()));
        }
        if w.uncertain {
            // An earlier swap may or may not have happened: if the record
            // is still ours, continue from its version.
            match self.get_record()? {
                Some((cur, etag)) if cur.holder == self.instance && cur.pid == rec.pid => {
                    w.version = UpdateVersion {
                        e_tag: etag,
                        version: None,
                    };
                    w.uncertain = false;
                }
                Some((cur, _)) => {
                    return Err(self.fence(&format!("the lock record is now held by {}", cur.who())))
                }
                None => return Err(self.fence("the lock record was deleted")),
            }
        }
        rec.lease_until_ms = now_ms() + self.lease_ms;
        match self.put_record(&rec, PutMode::Update(w.version.clone())) {
            Ok(Some(v)) => {
                w.version = v;
                w.swapped = Instant::now();
                self.set_record(rec);
                Ok(())
            }
            Ok(None) => {
                let who = self
                    .get_record()
                    .ok()
                    .flatten()
                    .map(|(r, _)| r.who())
                    .unwrap_or_else(|| "someone".into());
                Err(self.fence(&format!("the lock record was swapped by {who}")))
            }
            Err(e) => {
                w.uncertain = true;
                Err(e)
            }
        }
    }

    /// Renews the writer's lease if a third of it has passed since the
    /// last swap (the heartbeat; commits renew it too).
    pub fn renew(&self) -> Result<(), StoreError> {
        let Ok(mut g) = self.writer.lock() else {
            return Ok(());
        };
        let Some(w) = g.as_mut() else { return Ok(()) };
        if w.swapped.elapsed() < Duration::from_millis(self.lease_ms as u64 / 3) && !w.uncertain {
            return Ok(());
        }
        let rec = self.read_record();
        self.swap(w, rec)
    }

    /// For a replica: reads the lock record if it changed; true if one
    /// exists. The readable size only grows.
    fn poll(&self) -> Result<bool, StoreError> {
        let (os, path) = (self.os.clone(), self.layout.lock());
        let seen = self.seen.lock().ok().and_then(|s| s.clone());
        let got = self.block(async move {
            let opts = GetOptions {
                if_none_match: seen,
                ..Default::default()
            };
            match os.get_opts(&path, opts).await {
                Ok(r) => {
                    if r.meta.size > MAX_RECORD_BYTES {
                        return Err(corrupt(format!("{path} is {} bytes", r.meta.size)));
                    }
                    let etag = r.meta.e_tag.clone();
                    let b = r
                        .bytes()
                        .await
                        .map_err(|e| os_err("reading the lock record", e))?;
                    Ok(Some(Some((b.to_vec(), etag))))
                }
                Err(object_store::Error::NotModified { .. }) => Ok(Some(None)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(os_err("reading the lock record", e)),
            }
        })??;
        match got {
            None => Ok(false),
            Some(None) => Ok(true),
            Some(Some((b, etag))) => {
                let rec = parse_record(&b)?;
                if rec.size >= self.size.load(Ordering::Acquire) {
                    self.size.store(rec.size, Ordering::Release);
                    self.set_record(rec);
                }
                if let Ok(mut s) = self.seen.lock() {
                    *s = etag;
                }
                Ok(true)
            }
        }
    }

    /// Loads the partial bundle at `size` (the writer extends it).
    fn load_partial(&self, size: u64) -> Result<(), StoreError> {
        let n = size / TILE_WIDTH;
        let count = (size % TILE_WIDTH) as usize;
        let bytes = if count > 0 {
            self.fetch_bundle(n, count)?.as_ref().clone()
        } else {
            vec![]
        };
        if let Ok(mut p) = self.partial.write() {
            *p = Partial { n, count, bytes };
        }
        Ok(())
    }

    /// Reads bundle `n` of exactly `width` entries from the bucket (cached).
    fn fetch_bundle(&self, n: u64, width: usize) -> Result<Arc<Vec<u8>>, StoreError> {
        if let Some(b) = self.bundles.get(&(n, width)) {
            return Ok(b);
        }
        let (os, path) = (self.os.clone(), self.layout.bundle(n, width));
        let p2 = path.clone();
        let data = self
            .block(async move { get_capped(os.as_ref(), &p2, MAX_BUNDLE_BYTES).await })??
            .ok_or_else(|| corrupt(format!("{path} is missing from the bucket")))?
            .0;
        let got = parse_bundle(&data)
            .map_err(|e| corrupt(format!("{path}: {e}")))?
            .len();
        if got != width {
            return Err(corrupt(format!("{path} holds {got} entries, not {width}")));
        }
        let data = Arc::new(data);
        self.bundles.put((n, width), data.clone());
        Ok(data)
    }

    /// The stored encoding ([`encode_tile`]) of tile (level, index) at the
    /// readable size: the writer's right edge, or the bucket's object.
    fn stored_tile(&self, level: u8, index: u64) -> Result<Option<Arc<Vec<u8>>>, StoreError> {
        if let Ok(edge) = self.edge.read() {
            if let Some((i, data)) = &edge[level as usize % 64] {
                if *i == index {
                    return Ok(Some(data.clone()));
                }
            }
        }
        let size = self.size.load(Ordering::Acquire);
        let w = tile_width(level, index, size) as usize;
        if w == 0 {
            return Ok(None);
        }
        if let Some(t) = self.tiles.get(&(level, index, w)) {
            return Ok(Some(t));
        }
        let enc = match self.get_tile(level, index, w)? {
            Some(enc) => enc,
            None if (w as u64) < TILE_WIDTH => self.rebuild_partial(level, index, w)?,
            None => return Ok(None),
        };
        let enc = Arc::new(enc);
        self.tiles.put((level, index, w), enc.clone());
        Ok(Some(enc))
    }

    /// Reads tile object (level, index) of width `w` and encodes it for
    /// storage; `None` if the bucket does not hold it.
    fn get_tile(&self, level: u8, index: u64, w: usize) -> Result<Option<Vec<u8>>, StoreError> {
        let (os, path) = (self.os.clone(), self.layout.tile(level, index, w));
        let p2 = path.clone();
        let Some((data, _)) = self.block(async move {
            get_capped(os.as_ref(), &p2, (TILE_WIDTH as usize * HASH_SIZE) as u64).await
        })??
        else {
            return Ok(None);
        };
        let row = vellum_spec::tile::tile_hashes(&data)
            .filter(|r| r.len() == w)
            .ok_or_else(|| {
                corrupt(format!(
                    "{path} is {} bytes, not {}",
                    data.len(),
                    w * HASH_SIZE
                ))
            })?;
        Ok(Some(encode_tile(&row)))
    }

    /// Rebuilds partial tile (level, index) of width `w` from what lies
    /// below it: leaf hashes of the entries (level 0), or the roots of the
    /// full tiles of the level below.
    fn rebuild_partial(&self, level: u8, index: u64, w: usize) -> Result<Vec<u8>, StoreError> {
        let row: Vec<Hash> = if level == 0 {
            let data = self.bundle(index, w)?;
            parse_bundle(&data)
                .map_err(|e| corrupt(format!("entry bundle {index}: {e}")))?
                .iter()
                .map(|e| vellum_spec::hash::leaf_hash(e))
                .collect()
        } else {
            (0..w as u64)
                .map(|i| {
                    let t = self.full_tile(level - 1, index * TILE_WIDTH + i)?;
                    Ok(super::tree::full_tile_root(&t))
                })
                .collect::<Result<_, StoreError>>()?
        };
        Ok(encode_tile(&row))
    }

    /// A full tile's stored encoding (cached), which must exist.
    fn full_tile(&self, level: u8, index: u64) -> Result<Arc<Vec<u8>>, StoreError> {
        let key = (level, index, TILE_WIDTH as usize);
        if let Some(t) = self.tiles.get(&key) {
            return Ok(t);
        }
        let t = self
            .get_tile(level, index, TILE_WIDTH as usize)?
            .ok_or_else(|| {
                corrupt(format!(
                    "full tile {level}/{index} is missing from the bucket"
                ))
            })?;
        let t = Arc::new(t);
        self.tiles.put(key, t.clone());
        Ok(t)
    }

    /// Writes the partial hash tiles of tree size `size` (at most one per
    /// level), for static readers of a checkpoint of that size.
    fn put_partial_tiles(&self, size: u64) -> Result<Vec<(u8, u64, usize)>, StoreError> {
        let mut puts = Vec::new();
        let mut written = Vec::new();
        for level in 0..8u8 {
            let shift = 8 * level as u32;
            if size >> shift == 0 {
                break;
            }
            let index = (size >> shift) / TILE_WIDTH;
            let w = tile_width(level, index, size) as usize;
            if w == 0 || w as u64 == TILE_WIDTH {
                continue;
            }
            let t = self
                .stored_tile(level, index)?
                .ok_or_else(|| corrupt(format!("tile {level}/{index} is missing")))?;
            puts.push(Put {
                path: self.layout.tile(level, index, w),
                data: t[..w * HASH_SIZE].to_vec(),
                full: false,
            });
            written.push((level, index, w));
        }
        let me = (self.instance.clone(), std::process::id());
        self.block(put_all(self.os.clone(), self.layout.lock(), me, puts))??;
        Ok(written)
    }

    /// Starts the task that deletes superseded partial objects.
    fn start_gc(&self) -> mpsc::UnboundedSender<(Instant, Vec<Path>)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<Path>)>();
        let (os, fenced) = (self.os.clone(), self.fenced.clone());
        if let Some(rt) = &self.rt {
            rt.spawn(async move {
                use futures_util::StreamExt;
                while let Some((due, mut paths)) = rx.recv().await {
                    tokio::time::sleep_until(due.into()).await;
                    // Everything else already due goes in the same bulk
                    // delete (one request per 1,000 objects).
                    while let Ok((d, more)) = rx.try_recv() {
                        paths.extend(more);
                        if d > Instant::now() {
                            tokio::time::sleep_until(d.into()).await;
                        }
                        if paths.len() >= 1000 {
                            break;
                        }
                    }
                    if fenced.load(Ordering::SeqCst) {
                        return;
                    }
                    let input = futures_util::stream::iter(paths.into_iter().map(Ok)).boxed();
                    let mut out = os.delete_stream(input);
                    while let Some(r) = out.next().await {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "deleting a superseded partial object failed");
                        }
                    }
                }
            });
        }
        tx
    }
}

/// One object a commit writes.
struct Put {
    path: Path,
    data: Vec<u8>,
    /// Full objects are write-once.
    full: bool,
}

/// Writes `puts` concurrently. A full object that already exists must hold
/// the same bytes; if it holds others it was left by a writer that died
/// before its swap (beyond every published size), and is replaced, but only
/// while the lock record still names this writer, `me` (instance, pid).
async fn put_all(
    os: Arc<dyn ObjectStore>,
    lock: Path,
    me: (String, u32),
    puts: Vec<Put>,
) -> Result<(), StoreError> {
    let sem = Arc::new(tokio::sync::Semaphore::new(PUT_CONCURRENCY));
    let mut tasks = Vec::with_capacity(puts.len());
    for p in puts {
        let (os, sem, lock, me) = (os.clone(), sem.clone(), lock.clone(), me.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let mode = if p.full {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            let bytes = bytes_of(&p.data);
            match os.put_opts(&p.path, PutPayload::from(bytes.clone()), opts).await {
                Ok(_) => Ok(()),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let have = get_capped(os.as_ref(), &p.path, MAX_BUNDLE_BYTES).await?;
                    if have.as_ref().is_some_and(|(b, _)| *b == p.data) {
                        return Ok(());
                    }
                    let holder = get_capped(os.as_ref(), &lock, MAX_RECORD_BYTES)
                        .await?
                        .map(|(b, _)| parse_record(&b))
                        .transpose()?;
                    if !holder.is_some_and(|r| r.holder == me.0 && r.pid == me.1) {
                        return Err(StoreError::Fenced(format!(
                            "{} exists with other contents and the lock record changed",
                            p.path
                        )));
                    }
                    tracing::warn!(path = %p.path, "replacing an object a writer left behind before its commit");
                    os.put_opts(&p.path, PutPayload::from(bytes), PutOptions::default())
                        .await
                        .map(|_| ())
                        .map_err(|e| os_err(&format!("writing {}", p.path), e))
                }
                Err(e) => Err(os_err(&format!("writing {}", p.path), e)),
            }
        }));
    }
    let mut first_err = None;
    for t in tasks {
        let r = t
            .await
            .unwrap_or_else(|e| Err(StoreError::Backend(format!("an upload task failed: {e}"))));
        if let Err(e) = r {
            if first_err.is_none() || matches!(e, StoreError::Fenced(_)) {
                first_err = Some(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn bytes_of(v: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(v)
}

/// Cuts bundle bytes down to their first `width` entries.
fn cut_bundle(data: &[u8], width: usize) -> Result<Vec<u8>, StoreError> {
    let entries = parse_bundle(data).map_err(|e| corrupt(format!("entry bundle: {e}")))?;
    if entries.len() < width {
        return Err(corrupt(format!(
            "entry bundle holds {} entries, fewer than {width}",
            entries.len()
        )));
    }
    let mut out = Vec::new();
    for e in &entries[..width] {
        push_bundle_entry(&mut out, e).map_err(|e| corrupt(e.to_string()))?;
    }
    Ok(out)
}

impl LogStore for BucketStore {
    fn stage(&self, b: &CommitBatch) -> Result<(), StoreError> {
        // Write objects only while the lease is surely ours.
        self.with_writer(|w| {
            if w.swapped.elapsed() > Duration::from_millis(self.lease_ms as u64 / 3) || w.uncertain
            {
                let rec = self.read_record();
                self.swap(w, rec)?;
            }
            Ok(())
        })?;
        // Build on the last staged batch, or on what is published. (Only
        // the sequencer stages, one batch at a time; the lock is not held
        // during the uploads, so that the previous batch can be published
        // meanwhile.)
        let mut partial = {
            let staged = self
                .staged
                .lock()
                .map_err(|_| StoreError::Backend("staging state poisoned".into()))?;
            match staged.back() {
                Some(s) => s.partial.clone(),
                None => match self.partial.read() {
                    Ok(p) => p.clone(),
                    Err(p) => p.into_inner().clone(),
                },
            }
        };
        let mut puts = Vec::new();
        let mut full_objects: Vec<(bool, u8, u64)> = Vec::new();
        let mut partial_objects: Vec<(bool, u8, u64, usize)> = Vec::new();
        let mut full_bundles: Vec<(u64, Vec<u8>)> = Vec::new();
        for (index, leaf) in &b.entries {
            if *index != partial.n * TILE_WIDTH + partial.count as u64 {
                return Err(StoreError::Backend(format!(
                    "entry {index} does not follow the stored tree (at {})",
                    partial.n * TILE_WIDTH + partial.count as u64
                )));
            }
            push_bundle_entry(&mut partial.bytes, leaf)
                .map_err(|e| StoreError::Backend(format!("entry {index}: {e}")))?;
            partial.count += 1;
            if partial.count as u64 == TILE_WIDTH {
                let data = std::mem::take(&mut partial.bytes);
                puts.push(Put {
                    path: self.layout.bundle(partial.n, TILE_WIDTH as usize),
                    data: data.clone(),
                    full: true,
                });
                full_objects.push((true, 0, partial.n));
                full_bundles.push((partial.n, data));
                partial = Partial {
                    n: partial.n + 1,
                    count: 0,
                    bytes: vec![],
                };
            }
        }
        if partial.count > 0 && !b.entries.is_empty() {
            puts.push(Put {
                path: self.layout.bundle(partial.n, partial.count),
                data: partial.bytes.clone(),
                full: false,
            });
            partial_objects.push((true, 0, partial.n, partial.count));
        }
        for ((level, index), stored) in &b.tiles {
            let width = tile_width(*level, *index, b.new_size) as usize;
            // Partial tiles are written with checkpoints (`put_checkpoint`).
            if width as u64 != TILE_WIDTH {
                continue;
            }
            puts.push(Put {
                path: self.layout.tile(*level, *index, width),
                data: stored[..width * HASH_SIZE].to_vec(),
                full: true,
            });
            full_objects.push((false, *level, *index));
        }
        let _span = tracing::debug_span!("s3_stage", objects = puts.len()).entered();
        let (t0, objects) = (Instant::now(), puts.len());
        let me = (self.instance.clone(), std::process::id());
        let res = self.block(put_all(self.os.clone(), self.layout.lock(), me, puts))?;
        if let Err(e) = res {
            if let StoreError::Fenced(why) = &e {
                return Err(self.fence(why));
            }
            return Err(e);
        }
        tracing::debug!(
            entries = b.entries.len(),
            objects,
            put_ms = t0.elapsed().as_secs_f64() * 1e3,
            "staged in the bucket"
        );
        self.staged
            .lock()
            .map_err(|_| StoreError::Backend("staging state poisoned".into()))?
            .push_back(Staged {
                new_size: b.new_size,
                partial,
                full_bundles,
                full_objects,
                partial_objects,
            });
        Ok(())
    }

    fn publish(&self, b: &CommitBatch) -> Result<(), StoreError> {
        self.with_writer(|w| {
            let staged_ok = self
                .staged
                .lock()
                .map_err(|_| StoreError::Backend("staging state poisoned".into()))?
                .front()
                .is_some_and(|s| s.new_size == b.new_size);
            if !staged_ok {
                return Err(StoreError::Backend(format!(
                    "publishing size {} that was not staged",
                    b.new_size
                )));
            }
            let t0 = Instant::now();
            let mut rec = self.read_record();
            rec.size = b.new_size;
            rec.root = hex(&b.new_root);
            self.swap(w, rec)?;
            tracing::debug!(
                size = b.new_size,
                swap_ms = t0.elapsed().as_secs_f64() * 1e3,
                "published in the bucket"
            );
            // Committed: now the memory state follows. The staged batch leaves
            // the queue and its partial bundle becomes the published one in one
            // step, so that a stage running meanwhile always finds its base.
            let st = {
                let mut staged = self
                    .staged
                    .lock()
                    .map_err(|_| StoreError::Backend("staging state poisoned".into()))?;
                let mut st = staged
                    .pop_front()
                    .ok_or_else(|| StoreError::Backend("the staged batch vanished".into()))?;
                if let Ok(mut p) = self.partial.write() {
                    *p = std::mem::replace(
                        &mut st.partial,
                        Partial {
                            n: 0,
                            count: 0,
                            bytes: vec![],
                        },
                    );
                }
                self.size.store(b.new_size, Ordering::Release);
                st
            };
            if let Ok(mut edge) = self.edge.write() {
                for ((level, index), data) in &b.tiles {
                    let slot = &mut edge[*level as usize % 64];
                    if slot.as_ref().is_none_or(|(i, _)| *i <= *index) {
                        *slot = Some((*index, data.clone()));
                    }
                    if tile_width(*level, *index, b.new_size) as u64 == TILE_WIDTH {
                        self.tiles
                            .put((*level, *index, TILE_WIDTH as usize), data.clone());
                    }
                }
            }
            for (n, data) in st.full_bundles {
                self.bundles.put((n, TILE_WIDTH as usize), Arc::new(data));
            }
            for (bundle, level, n, width) in st.partial_objects {
                w.partials
                    .entry((bundle, level, n))
                    .or_default()
                    .push(width);
            }
            let mut stale = Vec::new();
            for (bundle, level, n) in st.full_objects {
                for width in w.partials.remove(&(bundle, level, n)).unwrap_or_default() {
                    stale.push(if bundle {
                        self.layout.bundle(n, width)
                    } else {
                        self.layout.tile(level, n, width)
                    });
                }
            }
            if !stale.is_empty() {
                if let Some(gc) = &self.gc {
                    let _ = gc.send((Instant::now() + GC_DELAY, stale));
                }
            }
            Ok(())
        })?;
        self.dedup.insert(&b.dedup)?;
        Ok(())
    }

    fn recover(&self, size: u64) -> Result<(), StoreError> {
        self.with_writer(|w| {
            // Reachable again? Then put the record back at `size`: a swap whose
            // answer was lost may have recorded entries nobody was told of.
            let mut rec = self.read_record();
            rec.size = size;
            w.uncertain = true;
            self.swap(w, rec)?;
            self.size.store(size, Ordering::Release);
            // What was staged after `size` is dropped: its objects lie beyond
            // every published size and are rewritten by the next commits.
            if let Ok(mut s) = self.staged.lock() {
                s.clear();
            }
            Ok(())
        })
    }

    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.size.load(Ordering::Acquire))
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let size = self.size.load(Ordering::Acquire);
        if index >= size {
            return Ok(None);
        }
        let n = index / TILE_WIDTH;
        let width = (size - n * TILE_WIDTH).min(TILE_WIDTH) as usize;
        let data = self.bundle(n, width)?;
        let entries = parse_bundle(&data).map_err(|e| corrupt(format!("entry bundle {n}: {e}")))?;
        Ok(entries
            .get((index % TILE_WIDTH) as usize)
            .map(|e| e.to_vec()))
    }

    fn bundle(&self, n: u64, width: usize) -> Result<Vec<u8>, StoreError> {
        if let Ok(p) = self.partial.read() {
            if p.n == n && width <= p.count && self.role == Role::Writer {
                return if width == p.count {
                    Ok(p.bytes.clone())
                } else {
                    cut_bundle(&p.bytes, width)
                };
            }
        }
        let size = self.size.load(Ordering::Acquire);
        let have = size.saturating_sub(n * TILE_WIDTH).min(TILE_WIDTH) as usize;
        if have < width || width == 0 {
            return Err(corrupt(format!(
                "entry bundle {n} has {have} entries at size {size}, not {width}"
            )));
        }
        let data = self.fetch_bundle(n, have)?;
        if have == width {
            Ok(data.as_ref().clone())
        } else {
            cut_bundle(&data, width)
        }
    }

    fn tile_hashes(
        &self,
        level: u8,
        index: u64,
        pos: usize,
        count: usize,
        _full: bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(t) = self.stored_tile(level, index)? else {
            return Ok(None);
        };
        Ok(t.get(pos * HASH_SIZE..(pos + count) * HASH_SIZE)
            .map(<[u8]>::to_vec))
    }

    fn dedup(&self, key: &crate::storage::dedup::Key) -> Result<Option<u64>, StoreError> {
        Ok(self.dedup.get(key)?)
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_record().checkpoint.map(String::into_bytes))
    }

    fn put_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
        let text = std::str::from_utf8(note)
            .map_err(|_| StoreError::Backend("checkpoint is not UTF-8".into()))?
            .to_string();
        let size = vellum_spec::note::Note::parse(note)
            .ok()
            .and_then(|n| vellum_spec::Checkpoint::parse(&n.text).ok())
            .map(|c| c.size)
            .ok_or_else(|| StoreError::Backend("the checkpoint to store does not parse".into()))?;
        // Its partial tiles first: a static reader of this checkpoint needs them.
        let written = self.put_partial_tiles(size)?;
        self.with_writer(|w| {
            let mut rec = self.read_record();
            rec.checkpoint = Some(text);
            self.swap(w, rec)?;
            for (level, n, width) in written {
                let seen = w.partials.entry((false, level, n)).or_default();
                if !seen.contains(&width) {
                    seen.push(width);
                }
            }
            Ok(())
        })?;
        // The record is the durable copy; `checkpoint` is what static
        // readers fetch, written after it (never ahead of the tiles).
        let (os, path, body) = (self.os.clone(), self.layout.checkpoint(), note.to_vec());
        self.block(async move {
            os.put_opts(&path, PutPayload::from(body), PutOptions::default())
                .await
        })?
        .map_err(|e| os_err("writing checkpoint", e))?;
        Ok(())
    }

    fn refresh(&self) -> Result<u64, StoreError> {
        if self.role == Role::Writer {
            return self.size();
        }
        let before = self.size.load(Ordering::Acquire);
        self.poll()?;
        let after = self.size.load(Ordering::Acquire);
        if after > before {
            super::reindex_dedup(&self.dedup, before, after, &|n, w| self.bundle(n, w))?;
        }
        Ok(after)
    }
}

/// Starts the lease heartbeat of a writer's store: renews the lock record
/// when no commit has for a third of the lease.
pub fn start_heartbeat(store: Arc<BucketStore>) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("vellum-lease".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(
                (store.lease_ms as u64 / 6).clamp(100, 1000),
            ));
            if let Err(e) = store.renew() {
                tracing::warn!(error = %e, "renewing the writer's lease failed; retrying");
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Backend(format!("spawning the lease heartbeat: {e}")))
}

/// A random instance ID for a data directory's lock records, kept in
/// `DIR/instance` (created on first use).
pub fn instance_id(dir: &FsPath) -> Result<String, StoreError> {
    let p = dir.join("instance");
    match std::fs::read_to_string(&p) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => {
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b)
                .map_err(|e| StoreError::Backend(format!("random instance ID: {e}")))?;
            let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
            std::fs::write(&p, format!("{id}\n"))?;
            Ok(id)
        }
    }
}
