//! Parallel download of level-0 tiles and their entry bundles. Worker
//! threads fetch and digest (schema check + leaf hashes) tiles ahead of
//! the in-order consumer, at most [`WINDOW`] tiles ahead, so memory stays
//! bounded whatever the log's size.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

use vellum_spec::tile::TileId;

use crate::report::Failure;
use crate::tree::{digest, Digested, TileRange};

/// Most tiles fetched ahead of the consumer.
pub const WINDOW: u64 = 64;

/// Where level-0 tiles and entry bundles come from.
pub trait Source: Send + Sync + 'static {
    /// The entry bundle and the level-0 hash tile of tile `k`, width `w`.
    fn level0(&self, k: u64, w: usize) -> Result<(Vec<u8>, Vec<u8>), Failure>;
}

impl Source for crate::http::Log {
    fn level0(&self, k: u64, w: usize) -> Result<(Vec<u8>, Vec<u8>), Failure> {
        let id = TileId {
            level: 0,
            index: k,
            width: w as u16,
        };
        Ok((self.tile(id, true)?, self.tile(id, false)?))
    }
}

type Item = (u64, Result<Digested, Failure>);

/// Yields digested tiles in order.
pub struct Prefetch {
    rx: mpsc::Receiver<Item>,
    pending: BTreeMap<u64, Result<Digested, Failure>>,
    next: u64,
    total: u64,
    consumed: Arc<(Mutex<u64>, Condvar)>,
}

impl Prefetch {
    /// Starts `threads` workers over `tiles`, in order.
    pub fn start<S: Source>(source: Arc<S>, tiles: TileRange, threads: usize) -> Prefetch {
        let (tx, rx) = mpsc::channel();
        let counter = Arc::new(AtomicU64::new(0));
        let consumed = Arc::new((Mutex::new(0u64), Condvar::new()));
        for _ in 0..threads.max(1) {
            let (tx, counter, consumed, source) = (
                tx.clone(),
                counter.clone(),
                consumed.clone(),
                source.clone(),
            );
            std::thread::spawn(move || loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let Some((k, w)) = tiles.get(i) else { return };
                {
                    let (m, cv) = &*consumed;
                    let mut c = m.lock().unwrap_or_else(|p| p.into_inner());
                    while i >= c.saturating_add(WINDOW) {
                        c = cv.wait(c).unwrap_or_else(|p| p.into_inner());
                    }
                }
                let r = source
                    .level0(k, w)
                    .and_then(|(bundle, tile)| digest(k, w, &bundle, tile));
                if tx.send((i, r)).is_err() {
                    return;
                }
            });
        }
        Prefetch {
            rx,
            pending: BTreeMap::new(),
            next: 0,
            total: tiles.len(),
            consumed,
        }
    }
}

impl Iterator for Prefetch {
    type Item = Result<Digested, Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        while !self.pending.contains_key(&self.next) {
            match self.rx.recv() {
                Ok((i, r)) => {
                    self.pending.insert(i, r);
                }
                Err(_) => {
                    return Some(Err(Failure::Operational("download threads stopped".into())))
                }
            }
        }
        let r = self.pending.remove(&self.next)?;
        self.next += 1;
        let (m, cv) = &*self.consumed;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = self.next;
        cv.notify_all();
        Some(r)
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Let waiting workers run out of tiles and exit.
        let (m, cv) = &*self.consumed;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = u64::MAX / 2;
        cv.notify_all();
    }
}
