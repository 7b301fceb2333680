//! Sinks: every event streamed to the tools a team already runs (syslog
//! receivers, HTTP collectors such as Splunk HEC and Elasticsearch, hourly
//! files for shipping agents), at least once, in index order, from a
//! durable cursor per sink that advances only once the receiver has the
//! events. A sink reads the log from storage, off the append path: a slow
//! or absent receiver holds back only its own cursor. Retries back off
//! exponentially with jitter; a batch the receiver refuses for good goes
//! to the sink's dead-letter file, and the sink moves on.

pub mod config;
pub mod cursor;
pub mod deadletter;
pub mod file;
pub mod http;
pub mod syslog;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use vellum_spec::hash::leaf_hash;
use vellum_spec::siem::Record;

use crate::query::fields::{EventFields, Field};
use crate::storage::{for_each_entry, LogStore, StoreError};
pub use config::{Destination, SinkSpec, SinkToml};

/// Entries one read step looks at (matching or not).
const SCAN: u64 = 4096;
/// Longest backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A record ready to deliver.
#[derive(Debug, Clone)]
pub struct Item {
    /// Entry index.
    pub index: u64,
    /// `logged_at` in Unix ms.
    pub logged_at_ms: i64,
    /// The record in the sink's format (one line of JSON or CEF).
    pub record: String,
    /// What goes on the wire for it, when the destination wraps records
    /// (a syslog message, a HEC envelope, a `_bulk` action and source);
    /// empty when the record goes as it is.
    pub wire: Vec<u8>,
}

impl Item {
    /// The bytes the destination sends for this item.
    pub fn bytes(&self) -> &[u8] {
        if self.wire.is_empty() {
            self.record.as_bytes()
        } else {
            &self.wire
        }
    }
}

/// What a delivery attempt came to.
#[derive(Debug)]
pub enum Outcome {
    /// The receiver has every item.
    Delivered,
    /// Nothing (or not everything) was taken; retry the batch, after the
    /// receiver's `Retry-After` if it gave one.
    Retry(String, Option<Duration>),
    /// Some items the receiver refused for good (dead-lettered), the rest
    /// to retry (positions in the batch).
    Partial {
        /// Positions refused for good, with the reason.
        poison: Vec<(usize, String)>,
        /// Positions to send again.
        retry: Vec<usize>,
    },
    /// The receiver refused the whole batch for good.
    Poison(String),
}

/// Per-sink counters, for `/metrics`, `GET /v1/sinks` and `vellum sinks`.
#[derive(Default)]
pub struct SinkStats {
    /// Events the receiver acknowledged (UDP: sent).
    pub delivered: AtomicU64,
    /// Batches delivered.
    pub batches: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Events sent to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Events the receiver reported it already had (`_bulk` 409).
    pub duplicates: Arc<AtomicU64>,
    /// 1 while deliveries fail.
    pub failing: AtomicU64,
    /// Index of the next entry to deliver.
    pub cursor: AtomicU64,
    /// Unix ms of the last success (0: none yet).
    pub last_success_ms: AtomicI64,
    /// The last error, while failing.
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// A running sink, for reporting.
pub struct SinkHandle {
    /// Its configuration.
    pub spec: SinkSpec,
    /// Its counters.
    pub stats: Arc<SinkStats>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Renders the matching entries of `[from, to)` for a sink, at most
/// `limit`; returns them and where the next read starts.
fn read_items(
    store: &dyn LogStore,
    spec: &SinkSpec,
    origin: &str,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<(Vec<Item>, u64), StoreError> {
    // The matching leaves first (the filter is cheap), then rendered, on
    // two threads for a large batch: rendering is most of a sink's work.
    let mut leaves: Vec<(u64, Vec<u8>)> = Vec::new();
    let everything = spec.filter.is_everything();
    let mut next = from;
    let end = to.min(from + SCAN);
    let stop = std::cell::Cell::new(false);
    for_each_entry(store, from, end, |i, leaf| {
        if stop.get() {
            return Ok::<(), StoreError>(());
        }
        next = i + 1;
        let keep = everything
            || match EventFields::parse(leaf) {
                Ok(f) => spec.filter.matches(&f),
                Err(_) => {
                    tracing::error!(index = i, "sink: entry does not parse; skipped");
                    false
                }
            };
        if keep {
            leaves.push((i, leaf.to_vec()));
            if leaves.len() >= limit {
                stop.set(true);
            }
        }
        Ok(())
    })?;
    let render = |chunk: &[(u64, Vec<u8>)]| -> Vec<Item> {
        chunk
            .iter()
            .filter_map(|(i, leaf)| render_item(spec, origin, *i, leaf))
            .collect()
    };
    // A large batch renders on two threads. Both, like this one (see
    // `spawn_low`), run at a lower CPU priority than the log's own.
    const PARALLEL_FROM: usize = 128;
    let out = if leaves.len() >= PARALLEL_FROM {
        let (a, b) = leaves.split_at(leaves.len() / 2);
        std::thread::scope(|sc| {
            let second = std::thread::Builder::new()
                .name("vellum-sink-render".into())
                .spawn_scoped(sc, || {
                    crate::priority::lower_priority();
                    render(b)
                });
            let mut out = render(a);
            match second {
                Ok(h) => out.extend(h.join().unwrap_or_else(|_| render(b))),
                Err(_) => out.extend(render(b)),
            }
            out
        })
    } else {
        render(&leaves)
    };
    Ok((out, next))
}

/// The sinks' own runtime: two workers at low priority, so that sending
/// (TLS, HTTP, syslog framing) also yields the CPU to the log's runtime,
/// as the reading and rendering do (see [`spawn_low`]). It lives for the
/// rest of the process, on a thread of its own.
fn low_priority_runtime() -> Result<tokio::runtime::Handle, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("vellum-sinks".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("vellum-sink")
                .on_thread_start(crate::priority::lower_priority)
                .enable_all()
                .build();
            match rt {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("sinks: starting their runtime: {e}")));
                }
            }
        })
        .map_err(|e| format!("sinks: starting their thread: {e}"))?;
    rx.recv()
        .map_err(|_| "sinks: their runtime did not start".to_string())?
}

/// Runs `f` on a thread of its own at low priority: the sinks' reading,
/// filtering and rendering yield the CPU to appends, so under full append
/// load a sink falls behind rather than slowing the log, and catches up
/// when the load drops.
fn spawn_low<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::sync::oneshot::Receiver<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("vellum-sink-read".into())
        .spawn(move || {
            crate::priority::lower_priority();
            let _ = tx.send(f());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "sink: starting a reader thread failed");
    }
    rx
}

/// One entry as the sink sends it, or `None` (logged) when it cannot be
/// formatted.
fn render_item(spec: &SinkSpec, origin: &str, i: u64, leaf: &[u8]) -> Option<Item> {
    let Ok(f) = EventFields::parse(leaf) else {
        tracing::error!(index = i, "sink: entry does not parse; skipped");
        return None;
    };
    let lh = leaf_hash(leaf).to_base64();
    let r = Record {
        origin,
        index: i,
        leaf_hash: &lh,
        leaf,
    };
    let record = match spec.format.render(&r, &spec.hostname) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(index = i, error = %e, "sink: entry cannot be formatted; skipped");
            return None;
        }
    };
    let wire = match &spec.dest {
        Destination::Syslog { header, .. } => {
            let labels = vellum_spec::siem::syslog::Labels {
                logged_at: f.logged_at(),
                event_id: f.event_id(),
                verdict: f.get(Field::Verdict).unwrap_or(""),
                risk: f.risk.map(u64::from),
            };
            vellum_spec::siem::syslog::message(header, &r, &labels, &record)
        }
        Destination::Http { mode, .. } => http::wrap(spec, *mode, &r, &f, &record),
        Destination::File { .. } => Vec::new(),
    };
    Some(Item {
        index: i,
        logged_at_ms: f.logged_at_ms(),
        record,
        wire,
    })
}

/// How a sink delivers a batch (one implementation per destination).
pub enum Deliverer {
    /// Syslog.
    Syslog(syslog::SyslogSink),
    /// HTTP.
    Http(http::HttpSink),
    /// Files.
    File(file::FileSink),
}

impl Deliverer {
    async fn deliver(&mut self, items: &[Item]) -> Outcome {
        match self {
            Deliverer::Syslog(s) => s.deliver(items).await,
            Deliverer::Http(s) => s.deliver(items).await,
            Deliverer::File(s) => s.deliver(items).await,
        }
    }

    /// Called when there is nothing to send for a while (a syslog TCP
    /// connection confirms what it sent; a file sink closes past hours).
    async fn idle(&mut self) -> Result<(), String> {
        match self {
            Deliverer::Syslog(s) => s.idle().await,
            Deliverer::File(s) => s.idle().await,
            Deliverer::Http(_) => Ok(()),
        }
    }

    /// Entries below this index are safe at the receiver (`u64::MAX`:
    /// everything delivered is; a syslog TCP connection confirms a batch
    /// only once a later write or an idle check shows it still stands).
    fn confirmed(&self) -> u64 {
        match self {
            Deliverer::Syslog(s) => s.confirmed(),
            _ => u64::MAX,
        }
    }
}

/// The sinks of a log.
pub struct Sinks {
    /// Each sink's configuration and counters.
    pub handles: Vec<SinkHandle>,
}

/// Everything a sink task needs from the log.
#[derive(Clone)]
pub struct SinkEnv {
    /// Storage.
    pub store: Arc<dyn LogStore>,
    /// The durable size, as it grows.
    pub durable: watch::Receiver<u64>,
    /// The log's origin.
    pub origin: String,
    /// `DATA/sinks/`: cursors and dead-letter files.
    pub dir: PathBuf,
}

impl Sinks {
    /// Starts one task per sink.
    pub fn start(specs: Vec<SinkSpec>, env: SinkEnv) -> Result<Sinks, String> {
        std::fs::create_dir_all(&env.dir).map_err(|e| format!("{}: {e}", env.dir.display()))?;
        let mut handles = Vec::new();
        if specs.is_empty() {
            return Ok(Sinks { handles });
        }
        let rt = low_priority_runtime()?;
        // Sockets and clients made below belong to the sinks' runtime.
        let _in_rt = rt.enter();
        for spec in specs {
            let stats = Arc::new(SinkStats::default());
            let deliverer = match &spec.dest {
                Destination::Syslog { .. } => Deliverer::Syslog(syslog::SyslogSink::new(&spec)?),
                Destination::Http { .. } => {
                    Deliverer::Http(http::HttpSink::new(&spec, stats.duplicates.clone())?)
                }
                Destination::File { .. } => Deliverer::File(file::FileSink::new(&spec)?),
            };
            let (cur, at) = cursor::Cursor::open(&env.dir.join(format!("{}.cursor", spec.name)))
                .map_err(|e| format!("sink {:?}: cursor: {e}", spec.name))?;
            let start = match at {
                Some(i) => i,
                None if spec.from_end => *env.durable.borrow(),
                None => 0,
            };
            stats.cursor.store(start, Relaxed);
            tracing::info!(sink = %spec.name, start, format = spec.format.name(), filter = %spec.filter_text, "sink starting");
            let dead = deadletter::DeadLetters::new(&env.dir, &spec.name);
            rt.spawn(run(
                spec.clone(),
                env.clone(),
                stats.clone(),
                deliverer,
                cur,
                start,
                dead,
            ));
            handles.push(SinkHandle { spec, stats });
        }
        Ok(Sinks { handles })
    }

    /// Renders the sinks' metrics in the Prometheus text format.
    pub fn render_metrics(&self, durable: u64, out: &mut String) {
        use std::fmt::Write;
        type Get = fn(&SinkStats, u64) -> f64;
        let rows: [(&str, &str, &str, Get); 9] = [
            (
                "vellum_sink_delivered_total",
                "counter",
                "Events the receiver acknowledged (UDP syslog: sent).",
                |s, _| s.delivered.load(Relaxed) as f64,
            ),
            (
                "vellum_sink_batches_total",
                "counter",
                "Batches delivered.",
                |s, _| s.batches.load(Relaxed) as f64,
            ),
            (
                "vellum_sink_retries_total",
                "counter",
                "Delivery attempts that failed and were retried.",
                |s, _| s.retries.load(Relaxed) as f64,
            ),
            (
                "vellum_sink_dead_lettered_total",
                "counter",
                "Events the receiver refused for good, written to the dead-letter file.",
                |s, _| s.dead_lettered.load(Relaxed) as f64,
            ),
            (
                "vellum_sink_duplicates_total",
                "counter",
                "Events the receiver reported it already had (redeliveries).",
                |s, _| s.duplicates.load(Relaxed) as f64,
            ),
            (
                "vellum_sink_failing",
                "gauge",
                "1 while the sink's deliveries fail.",
                |s, _| s.failing.load(Relaxed) as f64,
            ),
            (
                "vellum_sink_cursor",
                "gauge",
                "Index of the next entry the sink delivers.",
                |s, _| s.cursor.load(Relaxed) as f64,
            ),
            (
                "vellum_sink_lag_entries",
                "gauge",
                "Durable entries the sink has not delivered or skipped yet.",
                |s, d| d.saturating_sub(s.cursor.load(Relaxed)) as f64,
            ),
            (
                "vellum_sink_seconds_since_success",
                "gauge",
                "Seconds since the sink last delivered (-1: never).",
                |s, _| {
                    let t = s.last_success_ms.load(Relaxed);
                    if t == 0 {
                        -1.0
                    } else {
                        (now_ms() - t) as f64 / 1000.0
                    }
                },
            ),
        ];
        for (name, kind, help, get) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for h in &self.handles {
                let _ = writeln!(
                    out,
                    "{name}{{sink=\"{}\"}} {}",
                    h.spec.name,
                    get(&h.stats, durable)
                );
            }
        }
    }

    /// The sinks as JSON (`GET /v1/sinks`).
    pub fn status(&self, durable: u64) -> Value {
        Value::Array(
            self.handles
                .iter()
                .map(|h| {
                    let s = &h.stats;
                    let last = s.last_success_ms.load(Relaxed);
                    serde_json::json!({
                        "name": h.spec.name,
                        "type": match h.spec.dest { Destination::Syslog { .. } => "syslog", Destination::Http { .. } => "http", Destination::File { .. } => "file" },
                        "format": h.spec.format.name(),
                        "filter": h.spec.filter_text,
                        "delivered": s.delivered.load(Relaxed),
                        "batches": s.batches.load(Relaxed),
                        "retries": s.retries.load(Relaxed),
                        "dead_lettered": s.dead_lettered.load(Relaxed),
                        "duplicates": s.duplicates.load(Relaxed),
                        "failing": s.failing.load(Relaxed) == 1,
                        "cursor": s.cursor.load(Relaxed),
                        "lag": durable.saturating_sub(s.cursor.load(Relaxed)),
                        "last_success": (last > 0).then(|| vellum_spec::time::format_millis(last)),
                        "last_error": s.last_error.lock().ok().and_then(|e| e.clone()),
                    })
                })
                .collect(),
        )
    }
}

/// Exponential backoff with full jitter: up to 200 ms × 2^attempt, capped.
fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(200)
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF);
    cap.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

fn set_error(stats: &SinkStats, e: Option<String>) {
    if let Ok(mut l) = stats.last_error.lock() {
        *l = e;
    }
}

async fn run(
    spec: SinkSpec,
    mut env: SinkEnv,
    stats: Arc<SinkStats>,
    mut out: Deliverer,
    mut cur: cursor::Cursor,
    start: u64,
    dead: deadletter::DeadLetters,
) {
    let span = tracing::info_span!("sink", name = %spec.name);
    // `next`: where reading continues; `pending`: read, not yet delivered.
    let mut next = start;
    let mut pending: Vec<Item> = Vec::new();
    let mut pending_since: Option<Instant> = None;
    let mut attempt = 0u32;
    // While failing: when the failure was last logged (every minute).
    let mut failing_logged: Option<Instant> = None;
    // `ahead`: read during the last delivery, not yet in `pending`.
    let mut ahead: VecDeque<Item> = VecDeque::new();
    // A read of the batch after `pending`, running while it is delivered.
    let mut prefetch: Option<tokio::sync::oneshot::Receiver<ReadResult>> = None;
    loop {
        let durable = *env.durable.borrow_and_update();
        if let Some(p) = prefetch.take() {
            match p.await {
                Ok(Ok((items, to))) => {
                    ahead.extend(items);
                    next = to;
                }
                Ok(Err(e)) => {
                    span.in_scope(|| tracing::error!(error = %e, "sink: reading the log failed"));
                }
                Err(_) => return,
            }
        }
        while pending.len() < spec.batch {
            let Some(it) = ahead.pop_front() else { break };
            if pending.is_empty() {
                pending_since = Some(Instant::now());
            }
            pending.push(it);
        }
        // Fill the batch from storage.
        if pending.len() < spec.batch && ahead.is_empty() && next < durable {
            let (from, limit) = (next, spec.batch - pending.len());
            let read = read_blocking(&env, &spec, from, durable, limit).await;
            match read {
                Ok(Ok((items, to))) => {
                    if !items.is_empty() && pending.is_empty() {
                        pending_since = Some(Instant::now());
                    }
                    pending.extend(items);
                    next = to;
                    if pending.is_empty() {
                        // Nothing matched: the cursor moves past what was read.
                        persist(&mut cur, &stats, next.min(out.confirmed()), &span);
                    }
                }
                Ok(Err(e)) => {
                    span.in_scope(|| tracing::error!(error = %e, "sink: reading the log failed"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => return,
            }
            if pending.len() < spec.batch && next < *env.durable.borrow() {
                continue;
            }
        }
        if pending.is_empty() {
            // Caught up: wait for more, confirming what is outstanding.
            let confirm_after = Duration::from_millis(500);
            tokio::select! {
                r = env.durable.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(confirm_after) => {
                    if let Err(e) = out.idle().await {
                        span.in_scope(|| tracing::warn!(error = %e, "sink: idle step failed"));
                    }
                    persist(&mut cur, &stats, next.min(out.confirmed()), &span);
                    if let Err(e) = cur.sync() {
                        span.in_scope(|| tracing::error!(error = %e, "sink: syncing the cursor failed"));
                    }
                }
            }
            continue;
        }
        // A partial batch waits up to `interval` for more events.
        let age = pending_since.map(|t| t.elapsed()).unwrap_or_default();
        if pending.len() < spec.batch && age < spec.interval {
            let wait = spec.interval - age;
            tokio::select! {
                r = env.durable.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(wait) => {}
            }
            if pending.len() < spec.batch
                && pending_since.is_some_and(|t| t.elapsed() < spec.interval)
            {
                continue;
            }
        }
        // Deliver, reading the next batch meanwhile.
        let durable = *env.durable.borrow();
        if ahead.is_empty() && next < durable {
            let (store, s2, origin) = (env.store.clone(), spec.clone(), env.origin.clone());
            let (from, limit) = (next, spec.batch);
            prefetch = Some(spawn_low(move || {
                read_items(store.as_ref(), &s2, &origin, from, durable, limit)
            }));
        }
        // Every entry below this is delivered once `pending` is, or did not
        // match the filter.
        let upto = ahead.front().map_or(next, |i| i.index);
        match out.deliver(&pending).await {
            Outcome::Delivered => {
                attempt = 0;
                stats.delivered.fetch_add(pending.len() as u64, Relaxed);
                stats.batches.fetch_add(1, Relaxed);
                stats.last_success_ms.store(now_ms(), Relaxed);
                if failing_logged.take().is_some() {
                    span.in_scope(|| tracing::info!("sink delivering again"));
                }
                stats.failing.store(0, Relaxed);
                set_error(&stats, None);
                pending.clear();
                pending_since = None;
                // Every entry below `next` is delivered or did not match.
                persist(&mut cur, &stats, upto.min(out.confirmed()), &span);
            }
            Outcome::Poison(why) => {
                attempt = 0;
                stats.failing.store(0, Relaxed);
                set_error(&stats, Some(format!("dead-lettered: {why}")));
                stats.dead_lettered.fetch_add(pending.len() as u64, Relaxed);
                span.in_scope(|| tracing::error!(events = pending.len(), reason = %why, "sink: the receiver refused a batch for good; written to the dead-letter file"));
                dead.write(&pending, &why);
                pending.clear();
                pending_since = None;
                persist(&mut cur, &stats, upto.min(out.confirmed()), &span);
            }
            Outcome::Partial { poison, retry } => {
                if !poison.is_empty() {
                    stats.dead_lettered.fetch_add(poison.len() as u64, Relaxed);
                    let items: Vec<Item> =
                        poison.iter().map(|(p, _)| pending[*p].clone()).collect();
                    dead.write(&items, &poison[0].1);
                }
                let keep: Vec<Item> = retry.iter().map(|p| pending[*p].clone()).collect();
                stats
                    .delivered
                    .fetch_add((pending.len() - keep.len() - poison.len()) as u64, Relaxed);
                pending = keep;
                if pending.is_empty() {
                    pending_since = None;
                    persist(&mut cur, &stats, upto.min(out.confirmed()), &span);
                } else {
                    let first = pending[0].index;
                    persist(&mut cur, &stats, first.min(out.confirmed()), &span);
                    stats.retries.fetch_add(1, Relaxed);
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
            }
            Outcome::Retry(why, after) => {
                stats.retries.fetch_add(1, Relaxed);
                set_error(&stats, Some(why.clone()));
                stats.failing.store(1, Relaxed);
                if failing_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    let lag = env
                        .durable
                        .borrow()
                        .saturating_sub(stats.cursor.load(Relaxed));
                    span.in_scope(|| tracing::error!(error = %why, lag, "sink: delivery failed; retrying with backoff (the log goes on; this sink falls behind)"));
                    failing_logged = Some(Instant::now());
                }
                let wait = after
                    .unwrap_or_else(|| backoff(attempt))
                    .min(MAX_BACKOFF.max(after.unwrap_or_default()));
                attempt = attempt.saturating_add(1);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Items read and where reading stopped, or the store's error.
type ReadResult = Result<(Vec<Item>, u64), StoreError>;

/// Reads and renders up to `limit` matching items from `from`, at low
/// priority.
async fn read_blocking(
    env: &SinkEnv,
    spec: &SinkSpec,
    from: u64,
    durable: u64,
    limit: usize,
) -> Result<ReadResult, tokio::sync::oneshot::error::RecvError> {
    let (store, s2, origin) = (env.store.clone(), spec.clone(), env.origin.clone());
    spawn_low(move || read_items(store.as_ref(), &s2, &origin, from, durable, limit)).await
}

/// Stores the cursor (only forward).
fn persist(cur: &mut cursor::Cursor, stats: &SinkStats, to: u64, span: &tracing::Span) {
    if to <= cur.index() && cur.index() != 0 {
        stats.cursor.store(cur.index(), Relaxed);
        return;
    }
    if let Err(e) = cur.store(to) {
        span.in_scope(|| tracing::error!(error = %e, "sink: storing the cursor failed"));
        return;
    }
    stats.cursor.store(to, Relaxed);
}

/// The directory of sink state in a data directory.
pub fn state_dir(data: &Path) -> PathBuf {
    data.join("sinks")
}
