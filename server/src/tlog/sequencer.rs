//! The sequencer: one thread that takes append requests from a queue,
//! assigns indexes, extends the tree's tiles and commits everything that
//! arrived meanwhile with one atomic write and one fsync (group commit).
//! A request is answered only after its entries are durable.
//!
//! Commits are pipelined in two stages ([`LogStore::stage`], then
//! [`LogStore::publish`], the commit point): while a publisher thread
//! publishes batch k, the sequencer prepares and stages batch k+1. Batches
//! are published in order, and a failure of either stage fails every batch
//! after the last published one (none of them was acknowledged).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use vellum_spec::hash::{leaf_hash, Hash};

use crate::metrics::Metrics;
use crate::storage::dedup;
use crate::storage::tree::TreeEdge;
use crate::storage::{CommitBatch, LogStore, StoreError};

/// Most entries one group commit takes before it writes.
pub const MAX_COMMIT_ENTRIES: usize = 20_000;

/// One event ready to log.
pub struct AppendItem {
    /// The event's ID (sent or assigned).
    pub event_id: String,
    /// Canonical leaf bytes.
    pub leaf: Vec<u8>,
    /// SHA-256(0x00 || leaf), computed by the request handler.
    pub leaf_hash: Hash,
    /// The `logged_at` the handler stamped, in Unix milliseconds.
    pub logged_at_ms: i64,
    /// Where that stamp sits in `leaf` (see [`vellum_spec::event::Sealed`]).
    pub logged_at_offset: usize,
}

/// The outcome for one event of a request.
#[derive(Clone, Debug)]
pub struct Appended {
    /// Leaf index.
    pub index: u64,
    /// Leaf hash of the entry at that index.
    pub leaf_hash: Hash,
    /// The event's ID.
    pub event_id: String,
    /// True when this gateway had already logged that event_id.
    pub duplicate: bool,
}

/// One append request in the queue.
pub struct AppendJob {
    /// Name of the authenticated token (the `gateway` field).
    pub gateway: Arc<str>,
    /// Events in request order.
    pub items: Vec<AppendItem>,
    /// When the request entered the queue.
    pub enqueued: Instant,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Vec<Appended>, CommitError>>,
}

/// Why a request's events were not logged (none of them were).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct CommitError {
    /// True while storage retries a transient shortage: the client should
    /// retry soon. False once storage failed for good.
    pub transient: bool,
    /// What failed (no entry contents).
    pub message: String,
}

/// The storage as the sequencer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Commits succeed.
    Ok,
    /// A commit failed for a reason that may clear (out of descriptors or
    /// disk space); the sequencer refuses appends and retries by itself.
    Retrying {
        /// The failure.
        reason: String,
        /// When it started.
        since: SystemTime,
    },
    /// Storage failed for good (I/O error, corruption): restart required.
    Failed {
        /// The failure.
        reason: String,
    },
}

/// Shared view of the sequencer's progress.
pub struct SeqState {
    /// Entries durable and integrated into stored tiles.
    pub durable_size: AtomicU64,
    /// The same, for async waiters (live tails).
    pub durable_watch: tokio::sync::watch::Sender<u64>,
    /// 0: ok, 1: retrying, 2: failed; details in `health`.
    state: AtomicU8,
    health: Mutex<Health>,
}

impl SeqState {
    fn new(size: u64) -> SeqState {
        SeqState {
            durable_size: AtomicU64::new(size),
            durable_watch: tokio::sync::watch::channel(size).0,
            state: AtomicU8::new(0),
            health: Mutex::new(Health::Ok),
        }
    }

    /// A replica's view: no sequencer, the size follows the writer
    /// ([`SeqState::follow_to`]).
    pub fn following(size: u64) -> Arc<SeqState> {
        Arc::new(SeqState::new(size))
    }

    /// On a replica: the writer's log grew to `size`.
    pub fn follow_to(&self, size: u64) {
        if size > self.durable_size.load(Ordering::Acquire) {
            self.durable_size.store(size, Ordering::Release);
            self.durable_watch.send_replace(size);
        }
    }

    /// True when appends are accepted (one atomic load).
    pub fn accepting(&self) -> bool {
        self.state.load(Ordering::Acquire) == 0
    }

    /// The storage's health, with the reason when it is not ok.
    pub fn health(&self) -> Health {
        match self.health.lock() {
            Ok(h) => h.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, h: Health) {
        let code = match &h {
            Health::Ok => 0,
            Health::Retrying { .. } => 1,
            Health::Failed { .. } => 2,
        };
        match self.health.lock() {
            Ok(mut g) => *g = h,
            Err(p) => *p.into_inner() = h,
        }
        self.state.store(code, Ordering::Release);
    }

    /// The error an append gets while appends are not accepted.
    pub fn refusal(&self) -> CommitError {
        match self.health() {
            Health::Ok => CommitError {
                transient: true,
                message: "log storage is recovering; retry".into(),
            },
            Health::Retrying { reason, .. } => CommitError {
                transient: true,
                message: format!("log storage is temporarily unavailable ({reason}); nothing was logged, retry shortly"),
            },
            Health::Failed { reason } => CommitError {
                transient: false,
                message: format!("log storage failed ({reason}); the operator must restart the log"),
            },
        }
    }
}

/// Starts the sequencer thread for `store`, resuming from its stored size.
pub fn start(
    store: Arc<dyn LogStore>,
    metrics: Arc<Metrics>,
    queue: usize,
) -> Result<(mpsc::Sender<AppendJob>, Arc<SeqState>), StoreError> {
    let size = store.size()?;
    let edge = TreeEdge::load(store.as_ref(), size)?;
    let clock = LoggedAtClock::load(store.as_ref(), size)?;
    let state = Arc::new(SeqState::new(size));
    metrics.tree_size.store(size, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(queue);
    let st = state.clone();
    std::thread::Builder::new()
        .name("vellum-sequencer".into())
        .spawn(move || run(store, edge, clock, rx, st, metrics))
        .map_err(|e| StoreError::Backend(format!("spawning sequencer: {e}")))?;
    Ok((tx, state))
}

/// Keeps `logged_at` non-decreasing in index order, so a time window of the
/// log is a contiguous index range. Handlers stamp requests in parallel; an
/// entry sequenced after a later-stamped one takes that later stamp (the
/// value is fixed-width, so the leaf stays canonical) and is re-hashed.
pub struct LoggedAtClock {
    last_ms: i64,
}

impl LoggedAtClock {
    /// Resumes from the last stored entry.
    pub fn load(store: &dyn LogStore, size: u64) -> Result<LoggedAtClock, StoreError> {
        let mut last_ms = i64::MIN;
        if size > 0 {
            let leaf = store
                .entry(size - 1)?
                .ok_or_else(|| StoreError::Corrupt(format!("entry {} missing", size - 1)))?;
            if let Ok(serde_json::Value::Object(obj)) = vellum_spec::jcs::parse_strict(&leaf) {
                last_ms = vellum_spec::event::leaf_logged_at(&obj).unwrap_or(i64::MIN);
            }
        }
        Ok(LoggedAtClock { last_ms })
    }

    /// Restamps `item` if it is older than the last entry sequenced.
    fn order(&mut self, item: &mut AppendItem) {
        if item.logged_at_ms >= self.last_ms {
            self.last_ms = item.logged_at_ms;
            return;
        }
        let stamp = vellum_spec::time::format_millis(self.last_ms);
        if vellum_spec::event::restamp(&mut item.leaf, item.logged_at_offset, &stamp) {
            item.logged_at_ms = self.last_ms;
            item.leaf_hash = leaf_hash(&item.leaf);
        } else {
            tracing::error!("could not restamp logged_at; leaving the entry as sealed");
        }
    }
}

/// A staged batch on its way to the publisher, with the requests it answers.
struct StagedBatch {
    batch: CommitBatch,
    jobs: Vec<AppendJob>,
    results: Vec<Vec<Appended>>,
    appended: u64,
    dups: u64,
    started: Instant,
}

/// What the sequencer sends the publisher.
enum ToPublisher {
    /// Publish (or, after a failure, refuse) this batch.
    Batch(StagedBatch),
    /// Answer once everything sent before is done.
    Sync(std::sync::mpsc::SyncSender<()>),
}

/// Publishes staged batches in order and answers their requests; after a
/// failure it refuses every batch until the sequencer recovered.
fn publisher(
    store: Arc<dyn LogStore>,
    rx: std::sync::mpsc::Receiver<ToPublisher>,
    failed: Arc<Mutex<Option<StoreError>>>,
    state: Arc<SeqState>,
    metrics: Arc<Metrics>,
) {
    for msg in rx {
        let s = match msg {
            ToPublisher::Sync(tx) => {
                let _ = tx.send(());
                continue;
            }
            ToPublisher::Batch(s) => s,
        };
        let earlier = match failed.lock() {
            Ok(f) => f.as_ref().map(|e| (e.is_transient(), e.to_string())),
            Err(_) => Some((false, "the publisher's state is poisoned".into())),
        };
        let res = match earlier {
            Some((transient, message)) => Err(CommitError {
                transient,
                message: format!("{message}; nothing was logged"),
            }),
            None if s.batch.entries.is_empty() => Ok(()),
            None => store.publish(&s.batch).map_err(|e| {
                let err = CommitError {
                    transient: e.is_transient(),
                    message: format!("{e}; nothing was logged"),
                };
                if let Ok(mut f) = failed.lock() {
                    *f = Some(e);
                }
                err
            }),
        };
        match res {
            Ok(()) => {
                if !s.batch.entries.is_empty() {
                    let size = s.batch.new_size;
                    state.durable_size.store(size, Ordering::Release);
                    state.durable_watch.send_replace(size);
                    metrics.tree_size.store(size, Ordering::Relaxed);
                    metrics
                        .fsync_seconds
                        .observe(s.started.elapsed().as_secs_f64());
                    metrics.commit_entries.observe(s.appended as f64);
                }
                metrics.appended.fetch_add(s.appended, Ordering::Relaxed);
                metrics.duplicates.fetch_add(s.dups, Ordering::Relaxed);
                for (job, res) in s.jobs.into_iter().zip(s.results) {
                    metrics
                        .integration_seconds
                        .observe(job.enqueued.elapsed().as_secs_f64());
                    let _ = job.reply.send(Ok(res));
                }
            }
            Err(err) => {
                metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                for job in s.jobs {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

fn run(
    store: Arc<dyn LogStore>,
    mut edge: TreeEdge,
    mut clock: LoggedAtClock,
    mut rx: mpsc::Receiver<AppendJob>,
    state: Arc<SeqState>,
    metrics: Arc<Metrics>,
) {
    let failed: Arc<Mutex<Option<StoreError>>> = Arc::default();
    // A rendezvous: the send of batch k+1 returns once batch k is published.
    let (to_pub, pub_rx) = std::sync::mpsc::sync_channel::<ToPublisher>(0);
    {
        let (st, f, s2, m) = (
            store.clone(),
            failed.clone(),
            state.clone(),
            metrics.clone(),
        );
        if let Err(e) = std::thread::Builder::new()
            .name("vellum-publisher".into())
            .spawn(move || publisher(st, pub_rx, f, s2, m))
        {
            tracing::error!(error = %e, "spawning the publisher failed; the log accepts no appends");
            state.set(Health::Failed {
                reason: format!("spawning the publisher: {e}"),
            });
            while let Some(job) = rx.blocking_recv() {
                let _ = job.reply.send(Err(state.refusal()));
            }
            return;
        }
    }
    let sync = |to_pub: &std::sync::mpsc::SyncSender<ToPublisher>| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if to_pub.send(ToPublisher::Sync(tx)).is_ok() {
            let _ = rx.recv();
        }
    };
    // Event IDs of the batch staged last, which may not be published (and
    // so not in the store's dedup index) yet.
    let mut prev_pending: HashMap<dedup::Key, (u64, Hash)> = HashMap::new();
    while let Some(first) = rx.blocking_recv() {
        let mut n = first.items.len();
        let mut jobs = vec![first];
        while n < MAX_COMMIT_ENTRIES {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.items.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let span = tracing::debug_span!("group_commit", jobs = jobs.len(), entries = n);
        let _g = span.enter();
        // A publish failed since the last batch: every batch after it is
        // refused. Once the publisher answered all of them, recover from
        // the last published size.
        let mut failure = None;
        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
            sync(&to_pub);
            failure = Some(
                failed
                    .lock()
                    .ok()
                    .and_then(|mut f| f.take())
                    .unwrap_or_else(|| {
                        StoreError::Backend("the publisher's state is poisoned".into())
                    }),
            );
        }
        if failure.is_none() {
            let started = Instant::now();
            match prepare(
                store.as_ref(),
                &mut edge,
                &mut clock,
                &mut jobs,
                &prev_pending,
            ) {
                Ok((batch, results, pending, dups)) => {
                    let staged = if batch.entries.is_empty() {
                        Ok(())
                    } else {
                        store.stage(&batch)
                    };
                    match staged {
                        Ok(()) => {
                            let appended = batch.entries.len() as u64;
                            prev_pending = pending;
                            let msg = ToPublisher::Batch(StagedBatch {
                                batch,
                                jobs,
                                results,
                                appended,
                                dups,
                                started,
                            });
                            if let Err(std::sync::mpsc::SendError(ToPublisher::Batch(s))) =
                                to_pub.send(msg)
                            {
                                for job in s.jobs {
                                    let _ = job.reply.send(Err(CommitError {
                                        transient: false,
                                        message: "the publisher stopped; nothing was logged".into(),
                                    }));
                                }
                            }
                            continue;
                        }
                        Err(e) => failure = Some(e),
                    }
                }
                Err(e) => failure = Some(e),
            }
            // Staging failed: these requests were not logged.
            if let Some(e) = &failure {
                metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                let err = CommitError {
                    transient: e.is_transient(),
                    message: format!("{e}; nothing was logged"),
                };
                for job in std::mem::take(&mut jobs) {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
        let Some(e) = failure else { continue };
        // Requests taken from the queue with an earlier failure are
        // refused too: none of them was logged, and their clients should
        // not wait for the recovery.
        let err = CommitError {
            transient: e.is_transient(),
            message: format!("{e}; nothing was logged"),
        };
        for job in std::mem::take(&mut jobs) {
            let _ = job.reply.send(Err(err.clone()));
        }
        // Wait until the publisher answered everything sent before, then
        // return to the last published size.
        sync(&to_pub);
        if let Ok(mut f) = failed.lock() {
            *f = None;
        }
        prev_pending.clear();
        let published = state.durable_size.load(Ordering::Acquire);
        let recovered = if e.is_transient() {
            tracing::warn!(error = %e, "group commit failed for lack of a resource; refusing appends until storage recovers");
            state.set(Health::Retrying {
                reason: e.to_string(),
                since: SystemTime::now(),
            });
            recover(store.as_ref(), published, &mut rx, &state)
        } else {
            Err(e)
        };
        match recovered {
            Ok((e2, c2)) => {
                edge = e2;
                clock = c2;
                state.set(Health::Ok);
                tracing::info!(
                    size = published,
                    "storage recovered; accepting appends again"
                );
            }
            Err(e) => {
                // The tree edge may be ahead of storage: stop appending.
                tracing::error!(error = %e, "group commit failed; the log stops accepting appends until restarted");
                state.set(Health::Failed {
                    reason: e.to_string(),
                });
                while let Some(job) = rx.blocking_recv() {
                    let _ = job.reply.send(Err(state.refusal()));
                }
                return;
            }
        }
    }
}

/// Retries [`LogStore::recover`] to the durable size `size` with backoff,
/// refusing queued appends meanwhile, until storage is usable again (the
/// reloaded right edge and clock) or fails for good.
fn recover(
    store: &dyn LogStore,
    size: u64,
    rx: &mut mpsc::Receiver<AppendJob>,
    state: &SeqState,
) -> Result<(TreeEdge, LoggedAtClock), StoreError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        while let Ok(job) = rx.try_recv() {
            let _ = job.reply.send(Err(state.refusal()));
        }
        std::thread::sleep(backoff);
        let attempt = store.recover(size).and_then(|()| {
            Ok((
                TreeEdge::load(store, size)?,
                LoggedAtClock::load(store, size)?,
            ))
        });
        match attempt {
            Ok(r) => return Ok(r),
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "storage still unavailable");
                if let Health::Retrying { since, .. } = state.health() {
                    state.set(Health::Retrying {
                        reason: e.to_string(),
                        since,
                    });
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A prepared batch: what to write, each request's results, the batch's
/// event IDs, and how many were duplicates.
type Prepared = (
    CommitBatch,
    Vec<Vec<Appended>>,
    HashMap<dedup::Key, (u64, Hash)>,
    u64,
);

/// Assigns indexes to the jobs' events (duplicates of earlier ones get the
/// earlier index), restamps out-of-order `logged_at`, and extends the tree
/// edge: the batch to stage. `prev`: the event IDs of the batch staged
/// before, which may not be published yet.
fn prepare(
    store: &dyn LogStore,
    edge: &mut TreeEdge,
    clock: &mut LoggedAtClock,
    jobs: &mut [AppendJob],
    prev: &HashMap<dedup::Key, (u64, Hash)>,
) -> Result<Prepared, StoreError> {
    let mut batch = CommitBatch::default();
    let mut leaves = Vec::new();
    let mut pending: HashMap<dedup::Key, (u64, Hash)> = HashMap::new();
    let mut next = edge.size();
    let mut results = Vec::with_capacity(jobs.len());
    let mut dups = 0u64;
    for job in jobs.iter_mut() {
        let mut out = Vec::with_capacity(job.items.len());
        for item in job.items.iter_mut() {
            // Hashed here, not in the handlers: they are the saturated part
            // of the append path, the sequencer has headroom (measured).
            let key = dedup::key(&job.gateway, &item.event_id);
            let earlier = match pending.get(&key).or_else(|| prev.get(&key)) {
                Some(&(i, h)) => Some((i, h)),
                None => match store.dedup(&key)? {
                    Some(i) => {
                        let leaf = store.entry(i)?.ok_or_else(|| {
                            StoreError::Corrupt(format!("dedup points at missing entry {i}"))
                        })?;
                        Some((i, leaf_hash(&leaf)))
                    }
                    None => None,
                },
            };
            if let Some((index, h)) = earlier {
                dups += 1;
                out.push(Appended {
                    index,
                    leaf_hash: h,
                    event_id: item.event_id.clone(),
                    duplicate: true,
                });
                continue;
            }
            clock.order(item);
            pending.insert(key, (next, item.leaf_hash));
            // The request no longer needs its copy of the leaf.
            batch.entries.push((next, std::mem::take(&mut item.leaf)));
            batch.dedup.push((key, next));
            leaves.push(item.leaf_hash);
            out.push(Appended {
                index: next,
                leaf_hash: item.leaf_hash,
                event_id: item.event_id.clone(),
                duplicate: false,
            });
            next += 1;
        }
        results.push(out);
    }
    batch.new_size = edge.size();
    if !leaves.is_empty() {
        batch.tiles = edge.append(&leaves);
        batch.new_size = edge.size();
        batch.new_root = edge.root();
    }
    Ok((batch, results, pending, dups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vellum_spec::time::format_millis;

    fn item(ms: i64) -> AppendItem {
        let v = serde_json::json!({"ts":"2026-06-20T14:07:31Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"allow"});
        let s = vellum_spec::event::seal(v, "gw", &format_millis(ms), || "id".into()).unwrap();
        AppendItem {
            event_id: s.event_id,
            leaf_hash: leaf_hash(&s.leaf),
            leaf: s.leaf,
            logged_at_ms: ms,
            logged_at_offset: s.logged_at_offset,
        }
    }

    #[test]
    fn a_late_entry_takes_the_later_stamp_and_is_rehashed() {
        let mut clock = LoggedAtClock { last_ms: i64::MIN };
        let mut a = item(1_800_000_000_500);
        clock.order(&mut a);
        let mut b = item(1_800_000_000_100);
        let before = b.leaf_hash;
        clock.order(&mut b);
        let obj = vellum_spec::event::check_leaf(&b.leaf).unwrap();
        assert_eq!(obj["logged_at"], format_millis(1_800_000_000_500));
        assert_eq!(b.leaf_hash, leaf_hash(&b.leaf));
        assert_ne!(b.leaf_hash, before);
        let mut c = item(1_800_000_000_900);
        let h = c.leaf_hash;
        clock.order(&mut c);
        assert_eq!(c.leaf_hash, h, "a later entry is left as sealed");
        assert_eq!(clock.last_ms, 1_800_000_000_900);
    }
}
