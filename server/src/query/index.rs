//! The query index: written segments (files) plus the segment being
//! built in memory, kept up to date by the indexer thread, which follows
//! the durable log from storage, off the append path. Everything here is
//! derived from the entry bundles: a lost or damaged segment is rebuilt
//! from them at start-up, while queries are served for the prefix already
//! indexed (`indexed_size`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use vellum_spec::tile::{parse_bundle, TILE_WIDTH};

use super::cursor::{CursorError, Cursors, Position};
use super::exec::{self, Dir};
use super::fields::{EventFields, Field};
use super::params::{EventsQuery, Filter};
use super::segment::{Builder, Segment, SegmentError, View, SEGMENT_EVENTS, TIME_BLOCK};
use crate::storage::dedup;
use crate::storage::{LogStore, StoreError};
use crate::tlog::sequencer::SeqState;

/// Segments one page may visit; past it the page ends early with a
/// cursor, so no request walks an unbounded part of the log.
pub const MAX_SEGMENTS_PER_PAGE: u64 = 64;

/// Entries the indexer reads per step.
const STEP: u64 = 4096;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The cursor does not belong to this query (400).
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// An index segment could not be read.
    #[error(transparent)]
    Index(#[from] SegmentError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<super::postings::Corrupt> for QueryError {
    fn from(c: super::postings::Corrupt) -> Self {
        QueryError::Index(c.into())
    }
}

/// A matching entry: its index and its byte offset in its entry bundle.
type Found = (u64, u32);

/// One page of results.
pub struct Page {
    /// Matching entries, in the query's order, with their leaf bytes.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Where the next page starts, if the result set goes on.
    pub next: Option<Position>,
    /// Entries indexed when the page was made.
    pub indexed: u64,
}

/// The index of a log.
pub struct Index {
    dir: PathBuf,
    store: Arc<dyn LogStore>,
    /// Segments `[0, written)` are files.
    written: AtomicU64,
    /// Segment number `written`, being built.
    mem: RwLock<Builder>,
    /// Entries indexed (written segments plus the in-memory one).
    indexed: AtomicU64,
    /// Gateways seen, for `event_id` lookups through the dedup index.
    gateways: RwLock<BTreeSet<String>>,
    /// Page cursors.
    pub cursors: Cursors,
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Index {
    /// An index in `dir` (created if needed), empty until the indexer runs;
    /// cursors are keyed from `secret`.
    pub fn open(
        dir: &Path,
        store: Arc<dyn LogStore>,
        secret: &[u8],
    ) -> std::io::Result<Arc<Index>> {
        std::fs::create_dir_all(dir)?;
        Ok(Arc::new(Index {
            dir: dir.to_path_buf(),
            store,
            written: AtomicU64::new(0),
            mem: RwLock::new(Builder::new(0)),
            indexed: AtomicU64::new(0),
            gateways: RwLock::new(BTreeSet::new()),
            cursors: Cursors::new(secret),
        }))
    }

    /// Entries indexed so far: queries answer for `[0, indexed_size)`.
    pub fn indexed_size(&self) -> u64 {
        self.indexed.load(Ordering::Acquire)
    }

    /// Bytes of the written segments, and the entries they cover.
    pub fn disk_usage(&self) -> (u64, u64) {
        let written = self.written.load(Ordering::Acquire);
        let bytes = (0..written)
            .filter_map(|k| std::fs::metadata(super::segment::segment_path(&self.dir, k)).ok())
            .map(|m| m.len())
            .sum();
        (bytes, written * SEGMENT_EVENTS)
    }

    /// Starts the indexer thread, following `seq`'s durable size.
    pub fn start(self: &Arc<Self>, seq: Arc<SeqState>) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("vellum-indexer".into())
            .spawn(move || me.run(&seq))?;
        Ok(())
    }

    fn run(&self, seq: &SeqState) {
        // Derived data: the index yields the cores to appends (queries and
        // tails see how far it got; the log never waits for it).
        crate::priority::lower_priority();
        let durable = || seq.durable_size.load(Ordering::Acquire);
        if let Err(e) = self.recover(durable()) {
            tracing::error!(error = %e, "index: checking segments failed; rebuilding from the log");
            self.reset(0);
        }
        let mut failing = false;
        loop {
            let d = durable();
            let at = self.indexed_size();
            if at >= d {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            match self.step(at, d) {
                Ok(()) => failing = false,
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "indexing failed; retrying");
                    }
                    failing = true;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Drops every segment from `k` on and starts building segment `k`.
    fn reset(&self, k: u64) {
        let mut mem = write_lock(&self.mem);
        *mem = Builder::new(k);
        self.written.store(k, Ordering::Release);
        self.indexed.store(k * SEGMENT_EVENTS, Ordering::Release);
        drop(mem);
        let mut n = k;
        while std::fs::remove_file(super::segment::segment_path(&self.dir, n)).is_ok() {
            n += 1;
        }
    }

    /// Checks the written segments in order (SHA-256 of each); the first
    /// missing or damaged one, and all after it, are rebuilt from the log.
    fn recover(&self, durable: u64) -> Result<(), SegmentError> {
        let t = Instant::now();
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(p);
            }
        }
        let mut k = 0u64;
        loop {
            if (k + 1) * SEGMENT_EVENTS > durable {
                break;
            }
            match Segment::open(&self.dir, k, true) {
                Ok(s) => {
                    let names = s.names(Field::Gateway)?;
                    write_lock(&self.gateways).extend(names.into_values());
                    // One more segment is usable: queries may use it now.
                    let mut mem = write_lock(&self.mem);
                    *mem = Builder::new(k + 1);
                    self.written.store(k + 1, Ordering::Release);
                    self.indexed
                        .store((k + 1) * SEGMENT_EVENTS, Ordering::Release);
                    k += 1;
                }
                Err(SegmentError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => {
                    tracing::warn!(segment = k, error = %e, "index segment unusable; rebuilding it from the log");
                    break;
                }
            }
        }
        self.reset(k);
        tracing::info!(
            segments = k,
            entries = k * SEGMENT_EVENTS,
            ms = t.elapsed().as_millis() as u64,
            "index segments checked; indexing the rest of the log"
        );
        Ok(())
    }

    /// Indexes entries from `at` up to at most `durable`, one step.
    fn step(&self, at: u64, durable: u64) -> Result<(), QueryError> {
        let seg_end = (at / SEGMENT_EVENTS + 1) * SEGMENT_EVENTS;
        let end = durable.min(at + STEP).min(seg_end);
        let mut n = at / TILE_WIDTH;
        let mut next = at;
        while next < end {
            let base = n * TILE_WIDTH;
            let width = (end - base).min(TILE_WIDTH) as usize;
            let data = self.store.bundle(n, width)?;
            let entries = parse_bundle(&data)
                .map_err(|e| StoreError::Corrupt(format!("entry bundle {n}: {e}")))?;
            let mut new_gateways = Vec::new();
            {
                let mut mem = write_lock(&self.mem);
                for (i, leaf) in entries.iter().enumerate().take(width) {
                    let index = base + i as u64;
                    if index < next {
                        continue;
                    }
                    let f = match EventFields::parse(leaf) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::error!(index, error = %e, "index: entry does not parse; indexed without fields");
                            EventFields::default()
                        }
                    };
                    if let Some(g) = f.get(Field::Gateway) {
                        if !read_lock(&self.gateways).contains(g) {
                            new_gateways.push(g.to_string());
                        }
                    }
                    let offset = (leaf.as_ptr() as usize - data.as_ptr() as usize - 2) as u32;
                    mem.add(&f, offset);
                    next = index + 1;
                }
                self.indexed.store(next, Ordering::Release);
            }
            if !new_gateways.is_empty() {
                write_lock(&self.gateways).extend(new_gateways);
            }
            n += 1;
        }
        if next == seg_end {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the full in-memory segment and starts the next.
    fn flush(&self) -> Result<(), QueryError> {
        let k = {
            let mem = read_lock(&self.mem);
            if !mem.is_full() {
                return Ok(());
            }
            mem.write(&self.dir).map_err(SegmentError::Io)?;
            mem.number()
        };
        let mut mem = write_lock(&self.mem);
        *mem = Builder::new(k + 1);
        self.written.store(k + 1, Ordering::Release);
        tracing::debug!(segment = k, "index segment written");
        Ok(())
    }

    /// Runs `f` on segment `k`'s view (a file, or the in-memory one).
    pub fn with_view<R>(
        &self,
        k: u64,
        f: impl FnOnce(&dyn View) -> Result<R, QueryError>,
    ) -> Result<R, QueryError> {
        if k < self.written.load(Ordering::Acquire) {
            let s = Segment::open(&self.dir, k, false)?;
            return f(&s);
        }
        let mem = read_lock(&self.mem);
        if mem.number() == k {
            return f(&*mem);
        }
        drop(mem);
        // It was written meanwhile.
        let s = Segment::open(&self.dir, k, false)?;
        f(&s)
    }

    /// `logged_at` of the first entry of time block `b`.
    fn block_time(&self, b: u64, cache: &mut HashMap<u64, Vec<i64>>) -> Result<i64, QueryError> {
        let per = SEGMENT_EVENTS / TIME_BLOCK;
        let k = b / per;
        let times = match cache.entry(k) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.with_view(k, |v| Ok(v.block_times()?))?)
            }
        };
        times
            .get((b % per) as usize)
            .copied()
            .ok_or_else(|| SegmentError::Corrupt("time block beyond the segment".into()).into())
    }

    /// The first index below `indexed` whose `logged_at` is at or after `t`
    /// (`logged_at` never decreases along the log).
    pub fn lower_bound_time(&self, t: i64, indexed: u64) -> Result<u64, QueryError> {
        if indexed == 0 {
            return Ok(0);
        }
        let blocks = indexed.div_ceil(TIME_BLOCK);
        let mut cache = HashMap::new();
        // First block whose first entry is at or after t.
        let (mut lo, mut hi) = (0u64, blocks);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.block_time(mid, &mut cache)? < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Ok(0);
        }
        // The boundary is inside block lo - 1 (one entry bundle).
        let b = lo - 1;
        let base = b * TIME_BLOCK;
        let width = (indexed - base).min(TIME_BLOCK) as usize;
        let data = self.store.bundle(b, width)?;
        let entries = parse_bundle(&data)
            .map_err(|e| StoreError::Corrupt(format!("entry bundle {b}: {e}")))?;
        let at = entries.iter().take(width).position(|leaf| {
            EventFields::parse(leaf)
                .map(|f| f.logged_at_ms() >= t)
                .unwrap_or(false)
        });
        Ok(match at {
            Some(i) => base + i as u64,
            None => (base + width as u64).min(indexed),
        })
    }

    /// The index range `[lo, hi)` of a filter's time window within the
    /// first `indexed` entries.
    pub fn window(&self, f: &Filter, indexed: u64) -> Result<(u64, u64), QueryError> {
        let lo = match f.from {
            Some(t) => self.lower_bound_time(t, indexed)?,
            None => 0,
        };
        let hi = match f.to {
            Some(t) => self.lower_bound_time(t, indexed)?,
            None => indexed,
        };
        Ok((lo, hi.max(lo)))
    }

    /// One page of `q`.
    pub fn query(&self, q: &EventsQuery) -> Result<Page, QueryError> {
        let _span = tracing::debug_span!("query", limit = q.limit).entered();
        let indexed = self.indexed_size();
        let canon = q.filter.canonical();
        let pos = match &q.cursor {
            Some(c) => self.cursors.decode(c, &canon, q.dir)?,
            None => Position {
                dir: q.dir,
                hi: indexed,
                next: match q.dir {
                    Dir::Desc => indexed,
                    Dir::Asc => 0,
                },
            },
        };
        let (wlo, whi) = self.window(&q.filter, pos.hi.min(indexed))?;
        let (lo, hi) = match q.dir {
            Dir::Desc => (wlo, whi.min(pos.next)),
            Dir::Asc => (wlo.max(pos.next), whi),
        };
        let (found, next) = if q.filter.event_ids.is_empty() {
            let (found, next) = self.scan(&q.filter, lo, hi, q.dir, q.limit)?;
            (found, next)
        } else {
            let mut found = self.by_event_id(&q.filter, lo, hi, q.dir);
            let mut next = None;
            if found.len() > q.limit {
                found.truncate(q.limit);
                let last = found[q.limit - 1];
                next = Some(match q.dir {
                    Dir::Desc => last,
                    Dir::Asc => last + 1,
                });
            }
            let found: Vec<(u64, u32)> = found.into_iter().map(|i| (i, u32::MAX)).collect();
            (found, next)
        };
        let mut entries = self.read_found(&found)?;
        // The index is exact; checking each event again costs little and
        // keeps a damaged segment from returning a wrong row.
        entries.retain(|(i, leaf)| {
            let ok = EventFields::parse(leaf).is_ok_and(|e| q.filter.matches(&e));
            if !ok {
                tracing::warn!(
                    index = i,
                    "index returned an entry that does not match; skipping it"
                );
            }
            ok
        });
        let next = next.map(|n| Position {
            dir: q.dir,
            hi: pos.hi,
            next: n,
        });
        Ok(Page {
            entries,
            next,
            indexed,
        })
    }

    /// Walks the segments over `[lo, hi)` in `dir` order; returns up to
    /// `limit` matching indexes and where to continue, if anywhere.
    fn scan(
        &self,
        f: &Filter,
        lo: u64,
        hi: u64,
        dir: Dir,
        limit: usize,
    ) -> Result<(Vec<Found>, Option<u64>), QueryError> {
        let plan = f.plan();
        let mut out: Vec<(u64, u32)> = Vec::with_capacity(limit);
        if lo >= hi {
            return Ok((out, None));
        }
        let (first, last) = (lo / SEGMENT_EVENTS, (hi - 1) / SEGMENT_EVENTS);
        let order: Box<dyn Iterator<Item = u64>> = match dir {
            Dir::Desc => Box::new((first..=last).rev()),
            Dir::Asc => Box::new(first..=last),
        };
        for (visited, k) in order.enumerate() {
            if visited as u64 == MAX_SEGMENTS_PER_PAGE {
                // Continue from this segment's edge on the next page.
                let edge = match dir {
                    Dir::Desc => (k + 1) * SEGMENT_EVENTS,
                    Dir::Asc => k * SEGMENT_EVENTS,
                };
                return Ok((out, Some(edge)));
            }
            let base = k * SEGMENT_EVENTS;
            let (l, h) = (
                (lo.max(base) - base) as u32,
                (hi.min(base + SEGMENT_EVENTS) - base) as u32,
            );
            let want = limit - out.len();
            let got = self.with_view(k, |v| {
                let h = h.min(v.count());
                let mut pos = Vec::new();
                if let Some(lists) = exec::lists(v, &plan)? {
                    exec::walk(&lists, l, h, dir, |p| {
                        pos.push(p);
                        pos.len() < want
                    })?;
                }
                pos.into_iter()
                    .map(|p| Ok((base + p as u64, v.offset(p)?)))
                    .collect::<Result<Vec<_>, QueryError>>()
            })?;
            out.extend(got);
            if out.len() == limit {
                let last = out.last().expect("limit is at least 1").0;
                let next = match dir {
                    Dir::Desc => (last > lo).then_some(last),
                    Dir::Asc => (last + 1 < hi).then_some(last + 1),
                };
                return Ok((out, next));
            }
        }
        Ok((out, None))
    }

    /// The leaves of `found` (index, bundle offset or `u32::MAX` if none is
    /// known): one positioned read each, checked against the entry's hash
    /// in its level-0 tile (a stale offset would be caught there, and the
    /// entry read the slow way).
    fn read_found(&self, found: &[(u64, u32)]) -> Result<Vec<(u64, Vec<u8>)>, QueryError> {
        let mut out = Vec::with_capacity(found.len());
        let mut slow = Vec::new();
        for (n, &(i, off)) in found.iter().enumerate() {
            if off == u32::MAX {
                slow.push(n);
                out.push((i, Vec::new()));
                continue;
            }
            let leaf = self.store.entry_at(i, off)?.unwrap_or_default();
            let want = self
                .store
                .tile_hashes(0, i / TILE_WIDTH, (i % TILE_WIDTH) as usize, 1, false)?
                .unwrap_or_default();
            if vellum_spec::hash::leaf_hash(&leaf).0[..] != want[..] {
                tracing::error!(
                    index = i,
                    "index offset does not lead to the entry; reading it from its bundle"
                );
                slow.push(n);
            }
            out.push((i, leaf));
        }
        if !slow.is_empty() {
            let idx: Vec<u64> = slow.iter().map(|n| found[*n].0).collect();
            for (k, (_, leaf)) in slow.iter().zip(read_entries(self.store.as_ref(), &idx)?) {
                out[*k].1 = leaf;
            }
        }
        Ok(out)
    }

    /// Entries with one of the filter's `event_id`s, through the dedup
    /// index (one lookup per gateway and ID).
    fn by_event_id(&self, f: &Filter, lo: u64, hi: u64, dir: Dir) -> Vec<u64> {
        let gateways = read_lock(&self.gateways).clone();
        let mut out: Vec<u64> = Vec::new();
        for g in &gateways {
            for id in &f.event_ids {
                if let Ok(Some(i)) = self.store.dedup(&dedup::key(g, id)) {
                    if (lo..hi).contains(&i) {
                        out.push(i);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        if dir == Dir::Desc {
            out.reverse();
        }
        out
    }
}

/// Reads the leaves of `indexes` (durable), one entry bundle read per
/// bundle they fall in, keeping their order.
pub fn read_entries(
    store: &dyn LogStore,
    indexes: &[u64],
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut by_bundle: HashMap<u64, u64> = HashMap::new();
    for &i in indexes {
        let w = by_bundle.entry(i / TILE_WIDTH).or_insert(0);
        *w = (*w).max(i % TILE_WIDTH + 1);
    }
    let mut bundles: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    for (n, w) in by_bundle {
        let data = store.bundle(n, w as usize)?;
        let entries = parse_bundle(&data)
            .map_err(|e| StoreError::Corrupt(format!("entry bundle {n}: {e}")))?;
        bundles.insert(n, entries.into_iter().map(<[u8]>::to_vec).collect());
    }
    indexes
        .iter()
        .map(|&i| {
            bundles
                .get(&(i / TILE_WIDTH))
                .and_then(|b| b.get((i % TILE_WIDTH) as usize))
                .map(|l| (i, l.clone()))
                .ok_or_else(|| StoreError::Corrupt(format!("entry {i} missing")))
        })
        .collect()
}
