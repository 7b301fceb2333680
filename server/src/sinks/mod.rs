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
    let mut out = Vec::new();
    let mut next = from;
    let end = to.min(from + SCAN);
    let stop = std::cell::Cell::new(false);
    for_each_entry(store, from, end, |i, leaf| {
        if stop.get() {
            return Ok::<(), StoreError>(());
        }
        next = i + 1;
        let Ok(f) = EventFields::parse(leaf) else {
            tracing::error!(index = i, "sink: entry does not parse; skipped");
            return Ok(());
        };
        if !spec.filter.matches(&f) {
            return Ok(());
        }
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
                return Ok(());
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
        out.push(Item {
            index: i,
            logged_at_ms: f.logged_at_ms(),
            record,
            wire,
        });
        if out.len() >= limit {
            stop.set(true);
        }
        Ok(())
    })?;
    Ok((out, next))
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
            tokio::spawn(run(
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
    loop {
        let durable = *env.durable.borrow_and_update();
        // Fill the batch from storage.
        if pending.len() < spec.batch && next < durable {
            let (store, s2, origin) = (env.store.clone(), spec.clone(), env.origin.clone());
            let (from, limit) = (next, spec.batch - pending.len());
            let read = tokio::task::spawn_blocking(move || {
                read_items(store.as_ref(), &s2, &origin, from, durable, limit)
            })
            .await;
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
        // Deliver.
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
                persist(&mut cur, &stats, next.min(out.confirmed()), &span);
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
                persist(&mut cur, &stats, next.min(out.confirmed()), &span);
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
                    persist(&mut cur, &stats, next.min(out.confirmed()), &span);
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
