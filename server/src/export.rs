//! Evidence bundles: `GET /v1/export` resolves a time window to an index
//! range (by binary search over `logged_at`, which the sequencer keeps
//! non-decreasing), then streams a `vellum-bundle/v1` file
//! ([`vellum_spec::bundle`]) with one inclusion proof per event against the
//! published checkpoint. Memory stays flat: entries are read one bundle
//! (256 entries) at a time and sent through a small channel.

use std::sync::Arc;

use axum::body::Bytes;
use tokio::sync::mpsc;
use vellum_spec::bundle::{self, Filter, Header, Kind, Manifest, Scope};
use vellum_spec::leaf::{check_leaf_facts, LeafFacts};
use vellum_spec::merkle::{prove_consistency, prove_inclusion};
use vellum_spec::tile::{parse_bundle, TILE_WIDTH};
use vellum_spec::time::{format_millis, parse_utc_millis};
use vellum_spec::Checkpoint;

use crate::checkpointer::Published;
use crate::store::{LogStore, StoreError};
use crate::tree::StoreNodes;

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
    /// The client closed the connection.
    #[error("the client went away")]
    Closed,
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

/// Calls `f` for each entry in `[from, to)`, reading one bundle at a time.
fn for_each_entry(
    store: &dyn LogStore,
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
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
        Ok(())
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

/// Writes the bundle for `plan` (the second pass) in chunks to `tx`. A
/// storage error mid-way ends the stream early, so the file lacks its end
/// line and no verifier accepts it.
pub fn write(
    store: &dyn LogStore,
    plan: &Plan,
    q: &ExportQuery,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<u64, ExportError> {
    let span = tracing::info_span!("export", size = plan.size);
    let _g = span.enter();
    let size = plan.size;
    let scope = &plan.header.manifest.scope;
    let mut buf = bundle::header_line(&plan.header);
    let send = |buf: &mut Vec<u8>, force: bool| -> Result<(), ExportError> {
        if force || buf.len() >= CHUNK_BYTES {
            let chunk = Bytes::from(std::mem::take(buf));
            tx.blocking_send(Ok(chunk))
                .map_err(|_| ExportError::Closed)?;
        }
        Ok(())
    };
    let proof_line = |kind: Kind, index: u64, leaf: &[u8], nodes: &StoreNodes| {
        prove_inclusion(index, size, nodes)
            .map(|p| bundle::record_line(kind, index, &p, leaf))
            .map_err(|e| ExportError::Proof(e.to_string()))
    };
    // The entries just outside the window, each with its own proof.
    let boundary = |kind: Kind, i: u64| -> Result<Vec<u8>, ExportError> {
        let leaf = store
            .entry(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {i} missing")))?;
        proof_line(kind, i, &leaf, &StoreNodes::new(store, size))
    };
    if scope.from.is_some() && scope.first_index > 0 {
        buf.extend(boundary(Kind::Before, scope.first_index - 1)?);
    }
    let mut events = 0u64;
    // One node reader per entry bundle: proofs of neighbouring entries share
    // their upper tiles, and the cache is dropped with each bundle.
    let mut nodes = StoreNodes::new(store, size);
    let mut bundle_of = u64::MAX;
    for_each_entry(store, scope.first_index, scope.end_index, |index, leaf| {
        if index / TILE_WIDTH != bundle_of {
            bundle_of = index / TILE_WIDTH;
            nodes = StoreNodes::new(store, size);
        }
        if !scope.complete && !q.filter.matches_facts(&facts(leaf, index)?) {
            return Ok(());
        }
        buf.extend(proof_line(Kind::Event, index, leaf, &nodes)?);
        events += 1;
        send(&mut buf, false)
    })?;
    if scope.end_index < size {
        buf.extend(boundary(Kind::After, scope.end_index)?);
    }
    let want = plan.header.manifest.counts.get("events").copied();
    if want != Some(events) {
        // The first pass and this one read the same durable entries.
        return Err(StoreError::Corrupt(format!(
            "export wrote {events} events, the first pass counted {want:?}"
        ))
        .into());
    }
    buf.extend(bundle::end_line(events));
    send(&mut buf, true)?;
    tracing::info!(events, "export written");
    Ok(events)
}

/// A body stream over the export channel.
pub struct ChunkStream(pub mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Runs an export on the blocking pool and returns the body stream.
pub fn spawn(store: Arc<dyn LogStore>, plan: Plan, q: ExportQuery) -> ChunkStream {
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write(store.as_ref(), &plan, &q, &tx) {
            if matches!(e, ExportError::Closed) {
                tracing::info!("export stopped: the client went away");
                return;
            }
            tracing::error!(error = %e, "export failed mid-stream; the bundle is cut short");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    ChunkStream(rx)
}
