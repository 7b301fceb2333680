//! Evidence bundles: `GET /v1/export` resolves a time window to an index
//! range (by binary search over `logged_at`, which the sequencer keeps
//! non-decreasing), then streams a `vellum-bundle/v1` file
//! ([`vellum_spec::bundle`]) with one inclusion proof per event against the
//! published checkpoint. Memory stays flat: entries are read one bundle
//! (256 entries) at a time and sent through a small channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use tokio::sync::mpsc;
use vellum_spec::bundle::{self, Filter, Header, Kind, Manifest, Scope};
use vellum_spec::leaf::{check_leaf_facts, LeafFacts};
use vellum_spec::merkle::{prove_consistency, prove_inclusion};
use vellum_spec::tile::TILE_WIDTH;
use vellum_spec::time::{format_millis, parse_utc_millis};
use vellum_spec::Checkpoint;

use crate::storage::tree::StoreNodes;
use crate::storage::{for_each_entry, LogStore, StoreError};
use crate::tlog::checkpointer::Published;

/// Bytes collected before a chunk is sent to the client.
const CHUNK_BYTES: usize = 256 << 10;

/// A parsed export request.
#[derive(Debug, Default, Clone)]
pub struct ExportQuery {
    /// Window start (inclusive), Unix ms, with its text.
    pub from: Option<(i64, String)>,
    /// Window end (exclusive), Unix ms, with its text.
    pub to: Option<(i64, String)>,
    /// Field filter.
    pub filter: Filter,
    /// Size of an earlier checkpoint to prove consistency from.
    pub since: Option<u64>,
}

/// Why an export request is refused.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A query parameter is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The stored tree could not produce a proof.
    #[error("proof: {0}")]
    Proof(String),
}

impl ExportQuery {
    /// Parses the query pairs; unknown or repeated parameters are refused.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<ExportQuery, ExportError> {
        let bad = |m: String| ExportError::BadRequest(m);
        let mut q = ExportQuery::default();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in pairs {
            if !seen.insert(k.clone()) {
                return Err(bad(format!("query parameter {k} given twice")));
            }
            match k.as_str() {
                "from" | "to" => {
                    let ms = parse_utc_millis(&v).map_err(|e| {
                        bad(format!("query parameter {k}: {v:?} is not an RFC 3339 UTC time: {e}"))
                    })?;
                    let slot = if k == "from" { &mut q.from } else { &mut q.to };
                    *slot = Some((ms, v));
                }
                "since" => {
                    q.since = Some(vellum_spec::checkpoint::parse_canonical_u64(&v).ok_or_else(
                        || bad(format!("query parameter since: {v:?} is not a tree size")),
                    )?);
                }
                f if Filter::FIELDS.contains(&f) => {
                    if v.is_empty() {
                        return Err(bad(format!("query parameter {f} is empty")));
                    }
                    if f == "verdict" && !vellum_spec::event::VERDICTS.contains(&v.as_str()) {
                        return Err(bad(format!(
                            "query parameter verdict: {v:?} is not one of allow, deny, approve, review"
                        )));
                    }
                    q.filter.set(f, v);
                }
                other => {
                    return Err(bad(format!(
                        "unknown query parameter {other:?}; expected from, to, since, agent, principal, owner, session, rule, verdict"
                    )))
                }
            }
        }
        if let (Some((f, fs)), Some((t, ts))) = (&q.from, &q.to) {
            if f > t {
                return Err(bad(format!("from {fs} is after to {ts}")));
            }
        }
        Ok(q)
    }
}

/// The resolved export: everything the header needs.
pub struct Plan {
    header: Header,
    size: u64,
}

fn logged_at(store: &dyn LogStore, index: u64) -> Result<i64, ExportError> {
    let leaf = store
        .entry(index)?
        .ok_or_else(|| StoreError::Corrupt(format!("entry {index} missing")))?;
    Ok(facts(&leaf, index)?.logged_at_ms)
}

/// The first index below `size` whose `logged_at` is at or after `t`.
fn lower_bound(store: &dyn LogStore, size: u64, t: i64) -> Result<u64, ExportError> {
    let (mut lo, mut hi) = (0, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if logged_at(store, mid)? < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The facts of a stored entry, checked as a verifier would check them.
fn facts(leaf: &[u8], index: u64) -> Result<LeafFacts<'_>, ExportError> {
    check_leaf_facts(leaf)
        .map_err(|e| StoreError::Corrupt(format!("entry {index} is not a valid event: {e}")).into())
}

/// Resolves the window against the published checkpoint and counts the
/// matching events (the first pass).
pub fn plan(
    store: &dyn LogStore,
    cp: &Published,
    q: &ExportQuery,
    log_key: &str,
    origin: &str,
    sign: &dyn Fn(&str) -> Result<Vec<u8>, StoreError>,
) -> Result<Plan, ExportError> {
    let size = cp.size;
    let first = match &q.from {
        Some((t, _)) => lower_bound(store, size, *t)?,
        None => 0,
    };
    let end = match &q.to {
        Some((t, _)) => lower_bound(store, size, *t)?.max(first),
        None => size,
    };
    let consistency = match q.since {
        None => None,
        Some(m) if m > size => {
            return Err(ExportError::BadRequest(format!(
                "since={m} is beyond the published checkpoint's size {size}"
            )))
        }
        Some(m) => {
            let proof = prove_consistency(m, size, &StoreNodes::new(store, size))
                .map_err(|e| ExportError::Proof(e.to_string()))?;
            Some(bundle::Consistency {
                from_size: m,
                proof: proof.iter().map(|h| h.to_base64()).collect(),
            })
        }
    };
    let mut counts = bundle::empty_counts();
    let mut events = 0u64;
    for_each_entry(store, first, end, |index, leaf| {
        let f = facts(leaf, index)?;
        if q.filter.matches_facts(&f) {
            events += 1;
            *counts.entry(f.verdict.into_owned()).or_insert(0) += 1;
        }
        Ok::<(), ExportError>(())
    })?;
    counts.insert("events".into(), events);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let manifest = Manifest {
        origin: origin.to_string(),
        log_key: log_key.to_string(),
        schema: bundle::SCHEMA.into(),
        exported_at: format_millis(now),
        scope: Scope {
            from: q.from.as_ref().map(|(_, s)| s.clone()),
            to: q.to.as_ref().map(|(_, s)| s.clone()),
            first_index: first,
            end_index: end,
            complete: q.filter.is_empty(),
        },
        filter: q.filter.clone(),
        counts,
        checkpoint_size: size,
    };
    let statement = bundle::manifest_statement(
        &manifest,
        &Checkpoint {
            origin: origin.to_string(),
            size,
            root: cp.root,
            extensions: vec![],
        },
    );
    let header = Header {
        format: bundle::FORMAT.into(),
        manifest,
        checkpoint: String::from_utf8_lossy(&cp.note).into_owned(),
        consistency,
        manifest_signature: String::from_utf8_lossy(&sign(&statement)?).into_owned(),
    };
    Ok(Plan { header, size })
}

impl Plan {
    /// The header the bundle will start with.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

/// Where the second pass is.
enum Stage {
    Header,
    Events { next: u64 },
    After,
    Done,
}

/// Produces the bundle for a [`Plan`] (the second pass) chunk by chunk, so
/// that no thread waits on the client between chunks: each chunk is made
/// on the blocking pool, then sent with a timeout from an async task.
pub struct Writer {
    plan: Plan,
    q: ExportQuery,
    stage: Stage,
    events: u64,
}

impl Writer {
    /// A writer at the start of the bundle.
    pub fn new(plan: Plan, q: ExportQuery) -> Writer {
        Writer {
            plan,
            q,
            stage: Stage::Header,
            events: 0,
        }
    }

    /// The next chunk (about [`CHUNK_BYTES`], at most one entry bundle of
    /// records), or `None` after the end line. A storage error mid-way
    /// ends the bundle early, so the file lacks its end line and no
    /// verifier accepts it.
    pub fn next_chunk(&mut self, store: &dyn LogStore) -> Result<Option<Vec<u8>>, ExportError> {
        let size = self.plan.size;
        let scope = self.plan.header.manifest.scope.clone();
        let mut buf = Vec::new();
        loop {
            match self.stage {
                Stage::Header => {
                    buf = bundle::header_line(&self.plan.header);
                    if scope.from.is_some() && scope.first_index > 0 {
                        buf.extend(boundary(store, size, Kind::Before, scope.first_index - 1)?);
                    }
                    self.stage = Stage::Events {
                        next: scope.first_index,
                    };
                }
                Stage::Events { next } if next < scope.end_index => {
                    // One entry bundle per step: proofs of neighbouring
                    // entries share their upper tiles in one node reader.
                    let end = ((next / TILE_WIDTH + 1) * TILE_WIDTH).min(scope.end_index);
                    let nodes = StoreNodes::new(store, size);
                    let (filter, complete) = (&self.q.filter, scope.complete);
                    let mut events = 0u64;
                    for_each_entry(store, next, end, |index, leaf| {
                        if !complete && !filter.matches_facts(&facts(leaf, index)?) {
                            return Ok(());
                        }
                        buf.extend(proof_line(Kind::Event, index, leaf, &nodes, size)?);
                        events += 1;
                        Ok::<(), ExportError>(())
                    })?;
                    self.events += events;
                    self.stage = Stage::Events { next: end };
                }
                Stage::Events { .. } => self.stage = Stage::After,
                Stage::After => {
                    if scope.end_index < size {
                        buf.extend(boundary(store, size, Kind::After, scope.end_index)?);
                    }
                    let want = self.plan.header.manifest.counts.get("events").copied();
                    if want != Some(self.events) {
                        // The first pass and this one read the same durable entries.
                        return Err(StoreError::Corrupt(format!(
                            "export wrote {} events, the first pass counted {want:?}",
                            self.events
                        ))
                        .into());
                    }
                    buf.extend(bundle::end_line(self.events));
                    self.stage = Stage::Done;
                    return Ok(Some(buf));
                }
                Stage::Done => return Ok(None),
            }
            if buf.len() >= CHUNK_BYTES {
                return Ok(Some(buf));
            }
        }
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }
}

fn proof_line(
    kind: Kind,
    index: u64,
    leaf: &[u8],
    nodes: &StoreNodes,
    size: u64,
) -> Result<Vec<u8>, ExportError> {
    prove_inclusion(index, size, nodes)
        .map(|p| bundle::record_line(kind, index, &p, leaf))
        .map_err(|e| ExportError::Proof(e.to_string()))
}

/// The record of an entry just outside the window, with its own proof.
fn boundary(store: &dyn LogStore, size: u64, kind: Kind, i: u64) -> Result<Vec<u8>, ExportError> {
    let leaf = store
        .entry(i)?
        .ok_or_else(|| StoreError::Corrupt(format!("entry {i} missing")))?;
    proof_line(kind, i, &leaf, &StoreNodes::new(store, size), size)
}

/// A body stream over the export channel. If the export stops without
/// finishing, the stream ends with an error, so the connection is aborted
/// instead of ending like a complete response.
pub struct ChunkStream {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    finished: Arc<AtomicBool>,
}

impl futures_core::Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(None) if !self.finished.swap(true, Ordering::AcqRel) => {
                std::task::Poll::Ready(Some(Err(std::io::Error::other("export stopped"))))
            }
            p => p,
        }
    }
}

/// Streams an export: chunks are made on the blocking pool one at a time
/// and handed to the body with `send_timeout`; a client that does not take
/// a chunk within it (or goes away) ends the export. `permit` (the export
/// concurrency limit) is held until then.
pub fn spawn(
    store: Arc<dyn LogStore>,
    plan: Plan,
    q: ExportQuery,
    send_timeout: std::time::Duration,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> ChunkStream {
    let (tx, rx) = mpsc::channel(2);
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let span = tracing::info_span!("export", size = plan.size);
        let mut w = Some(Writer::new(plan, q));
        loop {
            let (store2, mut writer) = (store.clone(), w.take().expect("writer is put back"));
            let made = tokio::task::spawn_blocking(move || {
                let r = writer.next_chunk(store2.as_ref());
                (writer, r)
            })
            .await;
            let (writer, r) = match made {
                Ok(x) => x,
                Err(e) => {
                    span.in_scope(|| tracing::error!(error = %e, "export task failed"));
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            };
            let chunk = match r {
                Ok(Some(c)) => Ok(Bytes::from(c)),
                Ok(None) => {
                    done.store(true, Ordering::Release);
                    span.in_scope(|| tracing::info!(events = writer.events(), "export written"));
                    return;
                }
                Err(e) => {
                    span.in_scope(|| tracing::error!(error = %e, "export failed mid-stream; the bundle is cut short"));
                    Err(std::io::Error::other(e.to_string()))
                }
            };
            let failed = chunk.is_err();
            match tx.send_timeout(chunk, send_timeout).await {
                Ok(()) if !failed => {}
                Ok(()) => return,
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    span.in_scope(|| tracing::info!("export stopped: the client stopped reading"));
                    return;
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                    span.in_scope(|| tracing::info!("export stopped: the client went away"));
                    return;
                }
            }
            w = Some(writer);
        }
    });
    ChunkStream { rx, finished }
}
