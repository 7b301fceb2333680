//! The dedup index: (gateway, event_id) key → entry index, with memory
//! that does not grow with the log.
//!
//! Recent keys live in an in-memory table; every [`TABLE_KEYS`] keys the
//! table is written out as an immutable *run*: a file of 24-byte records
//! (16-byte key, 8-byte big-endian index) sorted by key, named for the
//! entry range it covers (`run-<start>-<end>`). A background thread merges
//! adjacent runs so that there are O(log n) of them. A lookup asks the
//! fixed-size Bloom filter first (most new keys stop there), then the
//! table, then binary-searches each run with positioned reads.
//!
//! The index is derived from the entries, which are durable first: on
//! start-up the runs say up to which entry keys are on disk, and the
//! entries after that are read back from the bundles and re-indexed. So
//! a crash at any point loses nothing, and a run half-written by a crash
//! (a `.tmp` file) is simply discarded.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use crate::storage::dedup::{Filter, Key};

/// Keys held in memory before they are written out as a run (default).
pub const TABLE_KEYS: usize = 1 << 18;
const RECORD: u64 = 24;

/// An immutable sorted run covering entries `[start, end)`.
struct Run {
    start: u64,
    end: u64,
    records: u64,
    file: File,
    path: PathBuf,
}

impl Run {
    fn open(path: PathBuf, start: u64, end: u64) -> io::Result<Run> {
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        if len % RECORD != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: length {len} is not a multiple of {RECORD}",
                    path.display()
                ),
            ));
        }
        Ok(Run {
            start,
            end,
            records: len / RECORD,
            file,
            path,
        })
    }

    fn record(&self, i: u64) -> io::Result<(Key, u64)> {
        let mut buf = [0u8; RECORD as usize];
        self.file.read_exact_at(&mut buf, i * RECORD)?;
        let mut k = [0u8; 16];
        k.copy_from_slice(&buf[..16]);
        Ok((
            k,
            u64::from_be_bytes(buf[16..].try_into().expect("8 bytes")),
        ))
    }

    /// Binary search by positioned reads: O(log n) reads, no memory.
    fn get(&self, key: &Key) -> io::Result<Option<u64>> {
        let (mut lo, mut hi) = (0u64, self.records);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, v) = self.record(mid)?;
            match k.cmp(key) {
                std::cmp::Ordering::Equal => return Ok(Some(v)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }
}

fn run_name(start: u64, end: u64) -> String {
    format!("run-{start:020}-{end:020}")
}

fn parse_run_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("run-")?;
    let (a, b) = rest.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Writes sorted records to `dir/run-<start>-<end>` atomically (temp file,
/// fsync, rename, directory fsync).
fn write_run(
    dir: &Path,
    start: u64,
    end: u64,
    records: impl Iterator<Item = io::Result<(Key, u64)>>,
) -> io::Result<Run> {
    let path = dir.join(run_name(start, end));
    let tmp = dir.join(format!("{}.tmp", run_name(start, end)));
    {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        for r in records {
            let (k, v) = r?;
            w.write_all(&k)?;
            w.write_all(&v.to_be_bytes())?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Run::open(path, start, end)
}

/// Streams a run's records in order.
fn stream(run: &Run) -> io::Result<impl Iterator<Item = io::Result<(Key, u64)>>> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(&run.path)?);
    let n = run.records;
    Ok((0..n).map(move |_| {
        let mut buf = [0u8; RECORD as usize];
        r.read_exact(&mut buf)?;
        let mut k = [0u8; 16];
        k.copy_from_slice(&buf[..16]);
        Ok((
            k,
            u64::from_be_bytes(buf[16..].try_into().expect("8 bytes")),
        ))
    }))
}

/// Merges two sorted streams (keys are unique across runs).
fn merge(
    a: impl Iterator<Item = io::Result<(Key, u64)>>,
    b: impl Iterator<Item = io::Result<(Key, u64)>>,
) -> impl Iterator<Item = io::Result<(Key, u64)>> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || {
        let take_a = match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Err(_)), _) => true,
            (_, Some(Err(_))) => false,
            (Some(Ok(x)), Some(Ok(y))) => x.0 <= y.0,
        };
        if take_a {
            a.next()
        } else {
            b.next()
        }
    })
}

struct State {
    /// Runs ordered by entry range; ranges are contiguous from 0.
    runs: Vec<Arc<Run>>,
    /// Keys of entries from the last run's end on.
    table: HashMap<Key, u64>,
    /// First entry whose key is in the table rather than a run.
    table_start: u64,
}

/// The dedup index of one log.
pub struct DedupIndex {
    dir: PathBuf,
    table_keys: usize,
    filter: Filter,
    state: Mutex<State>,
    merge_tx: Mutex<Option<mpsc::Sender<()>>>,
}

impl DedupIndex {
    /// Opens the index in `dir`; returns it and the first entry index
    /// whose key must be re-added (with [`DedupIndex::insert`]).
    pub fn open(dir: &Path, table_keys: usize) -> io::Result<(Arc<DedupIndex>, u64)> {
        fs::create_dir_all(dir)?;
        let mut found: Vec<(u64, u64, PathBuf)> = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                fs::remove_file(e.path())?;
                continue;
            }
            if let Some((a, b)) = parse_run_name(&name) {
                found.push((a, b, e.path()));
            }
        }
        // A merge interrupted after its output was renamed leaves the
        // inputs behind: drop every run contained in a larger one.
        found.sort_by_key(|&(a, b, _)| (a, std::cmp::Reverse(b)));
        let mut runs: Vec<Arc<Run>> = Vec::new();
        let mut end = 0u64;
        for (a, b, path) in found {
            if b <= end && !runs.is_empty() {
                fs::remove_file(&path)?;
                continue;
            }
            if a != end {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("dedup runs leave a gap at entry {end}"),
                ));
            }
            runs.push(Arc::new(Run::open(path, a, b)?));
            end = b;
        }
        let filter = Filter::default();
        for run in &runs {
            for r in stream(run)? {
                filter.insert(&r?.0);
            }
        }
        let idx = Arc::new(DedupIndex {
            dir: dir.into(),
            table_keys: table_keys.max(1),
            filter,
            state: Mutex::new(State {
                runs,
                table: HashMap::new(),
                table_start: end,
            }),
            merge_tx: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        *idx.merge_tx.lock().map_err(poisoned)? = Some(tx);
        let weak = Arc::downgrade(&idx);
        std::thread::Builder::new()
            .name("vellum-dedup-merge".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    let Some(idx) = weak.upgrade() else { return };
                    if let Err(e) = idx.merge_runs() {
                        tracing::error!(error = %e, "merging dedup runs failed; lookups stay correct, only slower");
                    }
                }
            })?;
        Ok((idx, end))
    }

    /// The index of the entry with this key, if any.
    pub fn get(&self, key: &Key) -> io::Result<Option<u64>> {
        if !self.filter.may_contain(key) {
            return Ok(None);
        }
        let runs = {
            let st = self.state.lock().map_err(poisoned)?;
            if let Some(&i) = st.table.get(key) {
                return Ok(Some(i));
            }
            st.runs.clone()
        };
        for run in runs.iter().rev() {
            if let Some(i) = run.get(key)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Adds the keys of durable entries (in index order). Writes a run
    /// when the table is full.
    pub fn insert(&self, keys: &[(Key, u64)]) -> io::Result<()> {
        let mut st = self.state.lock().map_err(poisoned)?;
        for (k, i) in keys {
            self.filter.insert(k);
            st.table.insert(*k, *i);
        }
        if st.table.len() < self.table_keys {
            return Ok(());
        }
        let end = keys.last().map(|(_, i)| i + 1).unwrap_or(st.table_start);
        let mut sorted: Vec<(Key, u64)> = st.table.iter().map(|(k, i)| (*k, *i)).collect();
        sorted.sort_unstable_by_key(|r| r.0);
        let run = match write_run(&self.dir, st.table_start, end, sorted.into_iter().map(Ok)) {
            Ok(run) => run,
            Err(e) => {
                // The keys stay in the table (their entries are durable, so
                // they must stay findable); the run is written by a later
                // insert, once the cause (e.g. no descriptors) is gone.
                tracing::warn!(error = %e, keys = st.table.len(), "writing a dedup run failed; keeping its keys in memory and retrying with the next commit");
                return Ok(());
            }
        };
        st.table.clear();
        st.runs.push(Arc::new(run));
        st.table_start = end;
        drop(st);
        if let Ok(tx) = self.merge_tx.lock() {
            if let Some(tx) = tx.as_ref() {
                let _ = tx.send(());
            }
        }
        Ok(())
    }

    /// Number of runs on disk.
    #[cfg(test)]
    fn runs(&self) -> usize {
        self.state.lock().map(|s| s.runs.len()).unwrap_or(0)
    }

    /// Merges the two newest runs while the older is less than twice the
    /// newer, keeping O(log n) runs of geometrically growing size.
    fn merge_runs(&self) -> io::Result<()> {
        loop {
            let (a, b) = {
                let st = self.state.lock().map_err(poisoned)?;
                let n = st.runs.len();
                if n < 2 || st.runs[n - 2].records >= 2 * st.runs[n - 1].records {
                    return Ok(());
                }
                (st.runs[n - 2].clone(), st.runs[n - 1].clone())
            };
            let merged = write_run(&self.dir, a.start, b.end, merge(stream(&a)?, stream(&b)?))?;
            let mut st = self.state.lock().map_err(poisoned)?;
            let pos = st
                .runs
                .iter()
                .position(|r| r.start == a.start && r.end == a.end)
                .filter(|&p| st.runs.get(p + 1).is_some_and(|r| r.end == b.end));
            match pos {
                Some(p) => {
                    st.runs.splice(p..p + 2, [Arc::new(merged)]);
                }
                None => return Ok(()),
            }
            drop(st);
            fs::remove_file(&a.path)?;
            fs::remove_file(&b.path)?;
        }
    }
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("dedup index lock poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::dedup::key;

    #[test]
    fn lookups_across_table_runs_merges_and_reopen() {
        let dir = std::env::temp_dir().join(format!("vellum-dedup-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (idx, from) = DedupIndex::open(&dir, TABLE_KEYS).unwrap();
        assert_eq!(from, 0);
        let n = (TABLE_KEYS * 5 + 1000) as u64;
        let keys: Vec<(Key, u64)> = (0..n).map(|i| (key("gw", &format!("e{i}")), i)).collect();
        for chunk in keys.chunks(10_000) {
            idx.insert(chunk).unwrap();
        }
        // Let the merger settle, then check every key and some misses.
        for _ in 0..200 {
            if idx.runs() <= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(idx.runs() <= 3, "runs were not merged: {}", idx.runs());
        for (k, i) in keys.iter().step_by(997) {
            assert_eq!(idx.get(k).unwrap(), Some(*i));
        }
        assert_eq!(idx.get(&keys[n as usize - 1].0).unwrap(), Some(n - 1));
        for i in 0..1000 {
            assert_eq!(idx.get(&key("gw", &format!("x{i}"))).unwrap(), None);
        }
        // Reopen: keys in runs are found; the table's keys must be re-added
        // from the entries, starting at the returned index.
        drop(idx);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (idx, from) = DedupIndex::open(&dir, TABLE_KEYS).unwrap();
        // Runs were written when a 10,000-key chunk filled the table.
        assert!(from >= (TABLE_KEYS * 4) as u64 && from < n, "{from}");
        assert_eq!(idx.get(&keys[5].0).unwrap(), Some(5));
        assert_eq!(idx.get(&keys[from as usize - 1].0).unwrap(), Some(from - 1));
        assert_eq!(idx.get(&keys[from as usize].0).unwrap(), None);
        assert_eq!(idx.get(&keys[n as usize - 1].0).unwrap(), None);
        idx.insert(&keys[from as usize..]).unwrap();
        assert_eq!(idx.get(&keys[n as usize - 1].0).unwrap(), Some(n - 1));
        // An interrupted merge's leftovers and temp files are cleaned up.
        fs::write(
            dir.join("run-00000000000000000000-00000000000000000001.tmp"),
            b"x",
        )
        .unwrap();
        drop(idx);
        let (_idx, _) = DedupIndex::open(&dir, TABLE_KEYS).unwrap();
        assert!(!dir
            .join("run-00000000000000000000-00000000000000000001.tmp")
            .exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
