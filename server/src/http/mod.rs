//! The HTTP API: append, checkpoint, C2SP tiles and entry bundles, proofs,
//! entries, health and metrics. Every refusal is a status code with a
//! JSON body `{"error": "..."}` naming the field or rule.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::{to_bytes, Body};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use vellum_spec::event::{self, EventError};
use vellum_spec::hash::{leaf_hash, Hash};
use vellum_spec::merkle::{prove_consistency, prove_inclusion};
use vellum_spec::tile::{parse_entries_path, parse_tile_path, tile_width, TileId};

use crate::metrics::Metrics;
use crate::storage::tree::StoreNodes;

mod query;
use crate::storage::LogStore;
use crate::tlog::checkpointer::Checkpointer;
use crate::tlog::sequencer::{AppendItem, AppendJob, SeqState};
use crate::tokens::{AuthError, Scope, TokenStore};

/// Largest append request body.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// Everything the handlers share.
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn LogStore>,
    /// The sequencer's queue.
    pub queue: mpsc::Sender<AppendJob>,
    /// The sequencer's progress.
    pub seq: Arc<SeqState>,
    /// The published checkpoint.
    pub checkpoints: Arc<Checkpointer>,
    /// Bearer tokens.
    pub tokens: Arc<TokenStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Serve entries without a token.
    pub public_entries: bool,
    /// Most events per append request.
    pub max_batch: usize,
    /// How long an append waits for a receipt.
    pub receipt_timeout: std::time::Duration,
    /// Connection counters of the HTTP server.
    pub conn_stats: Arc<vellum_net::ConnStats>,
    /// Time a client has to send an append body.
    pub body_timeout: std::time::Duration,
    /// Export slots.
    pub exports: Arc<tokio::sync::Semaphore>,
    /// Receipt-wait slots.
    pub receipt_waits: Arc<tokio::sync::Semaphore>,
    /// How long a streamed response waits for the client to read.
    pub write_timeout: std::time::Duration,
    /// How long the published checkpoint may lag the durable tree before
    /// `/healthz` says `degraded`.
    pub lag_tolerance: std::time::Duration,
    /// Witnesses, for their metrics.
    pub witnessing: Option<Arc<crate::tlog::witnessing::Witnessing>>,
    /// The query index (`None` with `--query-index false`).
    pub index: Option<Arc<crate::query::Index>>,
    /// Live-tail slots.
    pub tails: Arc<tokio::sync::Semaphore>,
    /// The running sinks.
    pub sinks: Option<Arc<crate::sinks::Sinks>>,
    /// The log's verifier key (named in evidence bundles).
    pub log_key: String,
    /// A read-only replica: appends and exports go to the writer.
    pub read_only: bool,
}

/// A refused request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed input.
    #[error("{0}")]
    BadRequest(String),
    /// 401/403: authentication or scope.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 404: beyond the tree.
    #[error("{0}")]
    NotFound(String),
    /// 408: the client did not send its request in time.
    #[error("{0}")]
    Timeout(String),
    /// 413: too large.
    #[error("{0}")]
    TooLarge(String),
    /// 405: this server does not do that (a read-only replica).
    #[error("{0}")]
    NotHere(String),
    /// 503: overloaded or storage failed; retry after the given seconds.
    #[error("{0}")]
    Unavailable(String, u32),
    /// 504: the events are durable but no checkpoint covered them in time;
    /// the body carries the append results.
    #[error("{0}")]
    ReceiptTimeout(String, Value),
    /// 500: an internal failure (details are logged, not sent).
    #[error("internal error: {0}")]
    Internal(String),
    /// The inner refusal, sent with `Connection: close` (the request body
    /// was not read).
    #[error("{0}")]
    Closing(Box<ApiError>),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Closing(inner) = self {
            let mut r = inner.into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Auth(AuthError::Scope { .. }) => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotHere(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ReceiptTimeout(..) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Closing(_) => StatusCode::INTERNAL_SERVER_ERROR, // unwrapped above
        };
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, "request failed");
        }
        let msg = match &self {
            ApiError::Internal(_) => "internal error; see the log's own logs".to_string(),
            e => e.to_string(),
        };
        let body = match &self {
            ApiError::ReceiptTimeout(_, entries) => json!({ "error": msg, "entries": entries }),
            _ => json!({ "error": msg }),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        match &self {
            ApiError::Auth(AuthError::Missing | AuthError::Unknown | AuthError::Malformed(_)) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_, secs) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            ApiError::NotHere(_) => {
                h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            _ => {}
        }
        resp
    }
}

pub(crate) type Shared = State<Arc<AppState>>;

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/events", post(append).get(query::events))
        .route("/v1/events/tail", get(query::tail))
        .route("/v1/stats", get(query::stats))
        .route("/v1/sinks", get(sinks))
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile_or_bundle))
        .route("/v1/proof/inclusion", get(inclusion))
        .route("/v1/proof/consistency", get(consistency))
        .route("/v1/entries/{index}", get(entry))
        .route("/v1/receipt/{index}", get(receipt))
        .route("/v1/export", get(export))
        .route("/v1/lookup", get(lookup))
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(crate::ui::router())
}

fn auth(st: &AppState, headers: &HeaderMap, scope: Scope) -> Result<Arc<str>, ApiError> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    Ok(st.tokens.authorize(h, scope)?.name.clone())
}

/// Entries, receipts and lookups need the `read` scope unless the log
/// serves entries publicly.
pub(crate) fn auth_entries(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !st.public_entries {
        auth(st, headers, Scope::Read)?;
    }
    Ok(())
}

fn new_event_id() -> String {
    let v: u128 = rand::random();
    format!("{v:032x}")
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn append(
    State(st): Shared,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let res = append_inner(&st, q.as_deref(), headers, body).await;
    match res {
        Ok(r) => {
            st.metrics.append_requests.fetch_add(1, Ordering::Relaxed);
            r
        }
        Err(e) => {
            st.metrics.append_rejected.fetch_add(1, Ordering::Relaxed);
            e.into_response()
        }
    }
}

/// Reads `?receipt=true|false` (the only query parameter of an append).
fn want_receipt(q: Option<&str>) -> Result<bool, ApiError> {
    let mut want = false;
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "true")) {
            ("receipt", "true" | "1" | "") => want = true,
            ("receipt", "false" | "0") => want = false,
            ("receipt", v) => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter receipt: {v:?} must be true or false"
                )))
            }
            (k, _) => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {k:?}; expected receipt"
                )))
            }
        }
    }
    Ok(want)
}

async fn append_inner(
    st: &AppState,
    q: Option<&str>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Until the body is read, a refusal closes the connection: what is
    // left of the body would otherwise be read as the next request, so
    // the server closes it, and the client must not reuse it.
    let closing = |e: ApiError| ApiError::Closing(Box::new(e));
    if st.read_only {
        return Err(closing(ApiError::NotHere(
            "this is a read-only replica of the log: send appends to the writer".into(),
        )));
    }
    let receipt = want_receipt(q).map_err(closing)?;
    let gateway = auth(st, &headers, Scope::Append).map_err(closing)?;
    if !st.seq.accepting() {
        return Err(closing(commit_refused(st.seq.refusal())));
    }
    let bytes = match tokio::time::timeout(st.body_timeout, to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return Err(closing(ApiError::TooLarge(format!(
                "request body is over the {MAX_BODY_BYTES}-byte limit"
            ))))
        }
        Err(_) => {
            return Err(closing(ApiError::Timeout(format!(
                "request body not received within {:?}",
                st.body_timeout
            ))))
        }
    };
    // Held from before the events are queued until the receipts are sent.
    let receipt_slot = if receipt {
        Some(st.receipt_waits.clone().try_acquire_owned().map_err(|_| {
            st.metrics.limited.fetch_add(1, Ordering::Relaxed);
            ApiError::Unavailable(
                "too many appends are waiting for receipts; retry, or append without ?receipt=true and fetch GET /v1/receipt/<index> later".into(),
                1,
            )
        })?)
    } else {
        None
    };
    let items = seal_all(st, &gateway, &bytes)?;
    let leaves: Vec<Vec<u8>> = if receipt {
        items.iter().map(|i| i.leaf.clone()).collect()
    } else {
        vec![]
    };
    let (tx, rx) = oneshot::channel();
    let job = AppendJob {
        gateway,
        items,
        enqueued: Instant::now(),
        reply: tx,
    };
    st.queue.try_send(job).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => {
            st.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
            ApiError::Unavailable("append queue is full; retry later".into(), 1)
        }
        mpsc::error::TrySendError::Closed(_) => {
            ApiError::Unavailable("the sequencer has stopped".into(), 30)
        }
    })?;
    let appended = rx
        .await
        .map_err(|_| ApiError::Internal("sequencer dropped the request".into()))?
        .map_err(commit_refused)?;
    if let Some(slot) = receipt_slot {
        let r = with_receipts(st, &appended, leaves).await;
        drop(slot);
        return r;
    }
    let mut out = String::with_capacity(appended.len() * 110 + 16);
    out.push_str("{\"entries\":[");
    for (i, a) in appended.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"index\":{},\"leaf_hash\":\"{}\",\"event_id\":{}{}}}",
            a.index,
            a.leaf_hash.to_base64(),
            Value::String(a.event_id.clone()),
            if a.duplicate {
                ",\"duplicate\":true"
            } else {
                ""
            }
        ));
    }
    out.push_str("]}");
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// 503 for appends the sequencer did not log: soon retryable while storage
/// recovers from a shortage, later once it failed for good.
fn commit_refused(e: crate::tlog::sequencer::CommitError) -> ApiError {
    ApiError::Unavailable(e.message, if e.transient { 1 } else { 30 })
}

/// Validates the body and seals every event; all or nothing.
fn seal_all(st: &AppState, gateway: &str, bytes: &[u8]) -> Result<Vec<AppendItem>, ApiError> {
    seal_body(bytes, gateway, st.max_batch)
}

/// Parses an append body (one event or an array of at most `max_batch`)
/// strictly, validates each event and seals it for `gateway`: what every
/// append request costs besides HTTP (also the in-process bench's work).
pub fn seal_body(
    bytes: &[u8],
    gateway: &str,
    max_batch: usize,
) -> Result<Vec<AppendItem>, ApiError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err(ApiError::BadRequest(format!(
                "request body is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            )))
        }
    };
    let logged_at_ms = now_millis();
    let logged_at = vellum_spec::time::format_millis(logged_at_ms);
    // One pass over borrowed bytes; anything it does not take (every
    // refusal among it) goes the general way below, which names the error.
    if let Some((sealed, _)) =
        event::seal_body_fast(text, gateway, &logged_at, max_batch, new_event_id)
    {
        return Ok(sealed
            .into_iter()
            .map(|s| AppendItem {
                leaf_hash: leaf_hash(&s.leaf),
                event_id: s.event_id,
                leaf: s.leaf,
                logged_at_ms,
                logged_at_offset: s.logged_at_offset,
            })
            .collect());
    }
    let v = vellum_spec::jcs::parse_strict(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let (values, single) = match v {
        Value::Array(a) => (a, false),
        other => (vec![other], true),
    };
    if values.is_empty() {
        return Err(ApiError::BadRequest(
            "empty batch: send at least one event".into(),
        ));
    }
    if values.len() > max_batch {
        return Err(ApiError::TooLarge(format!(
            "batch of {} events is over the limit of {} per request",
            values.len(),
            max_batch
        )));
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let sealed = event::seal(v, gateway, &logged_at, new_event_id).map_err(|e| {
                let msg = if single {
                    e.to_string()
                } else {
                    format!("event [{i}]: {e}")
                };
                match e {
                    EventError::TooLarge(_) => ApiError::TooLarge(msg),
                    _ => ApiError::BadRequest(msg),
                }
            })?;
            let leaf_hash = leaf_hash(&sealed.leaf);
            Ok(AppendItem {
                event_id: sealed.event_id,
                leaf: sealed.leaf,
                leaf_hash,
                logged_at_ms,
                logged_at_offset: sealed.logged_at_offset,
            })
        })
        .collect()
}

async fn checkpoint(State(st): Shared) -> Response {
    let cp = st.checkpoints.current();
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        cp.note.clone(),
    )
        .into_response()
}

fn durable(st: &AppState) -> u64 {
    st.seq.durable_size.load(Ordering::Acquire)
}

async fn tile_or_bundle(
    State(st): Shared,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let size = durable(&st);
    let (entries, id) = match path.strip_prefix("entries/") {
        Some(rest) => (
            true,
            parse_entries_path(rest)
                .map_err(|e| ApiError::BadRequest(format!("entry bundle path {rest:?}: {e}")))?,
        ),
        None => (
            false,
            parse_tile_path(&path)
                .map_err(|e| ApiError::BadRequest(format!("tile path {path:?}: {e}")))?,
        ),
    };
    if entries && !st.public_entries {
        auth(&st, &headers, Scope::Read)?;
    }
    let avail = tile_width(id.level, id.index, size);
    if id.width > avail {
        return Err(ApiError::NotFound(format!(
            "tile {} does not exist at tree size {size} (width there: {avail})",
            id.path(entries)
        )));
    }
    let body = {
        if entries {
            bundle(&st, id)
        } else {
            hash_tile(&st, id)
        }
    }?;
    let cache = if entries && !st.public_entries {
        "private, max-age=31536000, immutable"
    } else {
        "public, max-age=31536000, immutable"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}

pub(crate) fn internal<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// A storage failure: 503 with `Retry-After` while a resource is short
/// (it clears by itself), 500 otherwise.
pub(crate) fn store_err(e: crate::storage::StoreError) -> ApiError {
    if e.is_transient() {
        ApiError::Unavailable(format!("{e}; retry shortly"), 1)
    } else {
        internal(e)
    }
}

fn hash_tile(st: &AppState, id: TileId) -> Result<Vec<u8>, ApiError> {
    st.store
        .tile_hashes(id.level, id.index, 0, id.width as usize, id.is_full())
        .map_err(store_err)?
        .ok_or_else(|| {
            internal(format!(
                "tile {}/{} missing from storage",
                id.level, id.index
            ))
        })
}

fn bundle(st: &AppState, id: TileId) -> Result<Vec<u8>, ApiError> {
    st.store
        .bundle(id.index, id.width as usize)
        .map_err(store_err)
}

/// Parses `name=value` pairs; every parameter must be a decimal u64,
/// given once.
fn query_u64s<const N: usize>(q: Option<&str>, names: [&str; N]) -> Result<[u64; N], ApiError> {
    let mut out = [None; N];
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(i) = names.iter().position(|n| *n == k) else {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter {k:?}; expected {}",
                names.join(", ")
            )));
        };
        if out[i].is_some() {
            return Err(ApiError::BadRequest(format!(
                "query parameter {k} given twice"
            )));
        }
        let n = vellum_spec::checkpoint::parse_canonical_u64(v).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "query parameter {k}: {v:?} is not a non-negative integer"
            ))
        })?;
        out[i] = Some(n);
    }
    let mut res = [0u64; N];
    for i in 0..N {
        res[i] = out[i]
            .ok_or_else(|| ApiError::BadRequest(format!("missing query parameter {}", names[i])))?;
    }
    Ok(res)
}

/// A proof the stored tiles could not produce: 503 if reading them hit a
/// transient shortage (the message says so), 500 otherwise.
pub(crate) fn proof_err(e: vellum_spec::merkle::ProofError) -> ApiError {
    let msg = e.to_string();
    if msg.contains("temporarily unavailable") {
        ApiError::Unavailable(format!("{msg}; retry shortly"), 1)
    } else {
        internal(msg)
    }
}

fn proof_json(head: String, proof: &[Hash]) -> Response {
    let mut s = head;
    s.push_str(",\"proof\":[");
    for (i, h) in proof.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        s.push_str(&h.to_base64());
        s.push('"');
    }
    s.push_str("]}");
    ([(header::CONTENT_TYPE, "application/json")], s).into_response()
}

/// Runs `f` (a proof over stored tiles) on this async worker when every
/// tile it reads is in the page cache, else again on a blocking thread: a
/// cold tile read waits for the disk and must not stall the worker, and
/// many of them then proceed at once.
async fn off_the_disk<T, F>(st: &Arc<AppState>, f: F) -> Result<T, ApiError>
where
    F: Fn(&dyn crate::storage::LogStore) -> T + Send + 'static,
    T: Send + 'static,
{
    if let Some(r) = crate::storage::tilefiles::cached_only(|| f(st.store.as_ref())) {
        return Ok(r);
    }
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(internal)
}

async fn inclusion(State(st): Shared, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let [index, size] = query_u64s(q.as_deref(), ["index", "size"])?;
    let tree = durable(&st);
    if size > tree {
        return Err(ApiError::BadRequest(format!(
            "size {size} is beyond the tree size {tree}"
        )));
    }
    if index >= size {
        return Err(ApiError::BadRequest(format!(
            "index {index} must be below size {size}"
        )));
    }
    let proof = off_the_disk(&st, move |store| {
        let _span = tracing::debug_span!("inclusion_proof", index, size).entered();
        prove_inclusion(index, size, &StoreNodes::new(store, size))
    })
    .await?
    .map_err(proof_err)?;
    st.metrics.proofs.fetch_add(1, Ordering::Relaxed);
    Ok(proof_json(
        format!("{{\"index\":{index},\"size\":{size}"),
        &proof,
    ))
}

async fn consistency(State(st): Shared, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let [from, to] = query_u64s(q.as_deref(), ["from", "to"])?;
    let tree = durable(&st);
    if to > tree {
        return Err(ApiError::BadRequest(format!(
            "to {to} is beyond the tree size {tree}"
        )));
    }
    if from > to {
        return Err(ApiError::BadRequest(format!(
            "from {from} must not be larger than to {to}"
        )));
    }
    let proof = off_the_disk(&st, move |store| {
        let _span = tracing::debug_span!("consistency_proof", from, to).entered();
        prove_consistency(from, to, &StoreNodes::new(store, to))
    })
    .await?
    .map_err(proof_err)?;
    st.metrics.proofs.fetch_add(1, Ordering::Relaxed);
    Ok(proof_json(format!("{{\"from\":{from},\"to\":{to}"), &proof))
}

async fn entry(
    State(st): Shared,
    Path(index): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth_entries(&st, &headers)?;
    let index = entry_index(&index)?;
    let size = durable(&st);
    if index >= size {
        return Err(ApiError::NotFound(format!(
            "index {index} is not below the tree size {size}"
        )));
    }
    entry_body(&st, index)
}

/// `{"index":I,"leaf_hash":..,"event":<leaf bytes>}` for a durable entry.
fn entry_body(st: &AppState, index: u64) -> Result<Response, ApiError> {
    let leaf = st
        .store
        .entry(index)
        .map_err(store_err)?
        .ok_or_else(|| internal(format!("entry {index} missing from storage")))?;
    let leaf_str = std::str::from_utf8(&leaf).map_err(internal)?;
    let body = format!(
        "{{\"index\":{index},\"leaf_hash\":\"{}\",\"event\":{leaf_str}}}",
        leaf_hash(&leaf).to_base64()
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /`: what this server is and where its API is.
async fn index(State(st): Shared) -> Response {
    let cp = st.checkpoints.current();
    let origin = vellum_spec::note::Note::parse(&cp.note)
        .ok()
        .and_then(|n| vellum_spec::checkpoint::Checkpoint::parse(&n.text).ok())
        .map(|c| c.origin)
        .unwrap_or_default();
    axum::Json(json!({
        "service": "vellum",
        "version": env!("CARGO_PKG_VERSION"),
        "origin": origin,
        "log_key": st.log_key,
        "witness_keys": st
            .witnessing
            .as_ref()
            .map(|w| w.specs.iter().map(|s| s.key.to_vkey()).collect::<Vec<_>>())
            .unwrap_or_default(),
        "checkpoint_size": cp.size,
        "api": {
            "append": "POST /v1/events (append scope)",
            "checkpoint": "GET /checkpoint",
            "tiles": "GET /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>] (C2SP tlog-tiles)",
            "inclusion_proof": "GET /v1/proof/inclusion?index=I&size=N",
            "consistency_proof": "GET /v1/proof/consistency?from=M&to=N",
            "entry": "GET /v1/entries/<I> (read scope)",
            "receipt": "GET /v1/receipt/<I> (read scope)",
            "lookup": "GET /v1/lookup?gateway=G&event_id=E (read scope)",
            "export": "GET /v1/export (admin scope)",
            "query": "GET /v1/events?agent=&verdict=&from=&to=&order=&limit=&cursor=&proofs= (read scope)",
            "tail": "GET /v1/events/tail (Server-Sent Events, read scope)",
            "stats": "GET /v1/stats?from=&to=&bucket=&group_by=&top= (read scope)",
            "sinks": "GET /v1/sinks (read scope)",
            "health": "GET /healthz (readiness, with reasons), GET /livez (liveness)",
            "metrics": "GET /metrics (Prometheus)",
            "dashboard": "GET /ui/"
        },
        "docs": "README.md and spec/api.md in the Vellum source"
    }))
    .into_response()
}

/// `GET /healthz`: `ok`, `degraded` (appends are accepted, but published
/// checkpoints lag: the witness quorum is unreachable or signing fails)
/// or `failed` / storage `retrying` (appends are refused: 503), each with
/// its reason. `/livez` stays 200 while the process serves at all.
async fn healthz(State(st): Shared) -> Response {
    use crate::tlog::sequencer::Health;
    let cp = st.checkpoints.current();
    let (mut status, code, storage) = match st.seq.health() {
        Health::Ok => ("ok", StatusCode::OK, json!({"status": "ok"})),
        Health::Retrying { reason, since } => (
            "degraded",
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "retrying",
                "reason": reason,
                "since": vellum_spec::time::format_millis(
                    since.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)),
            }),
        ),
        Health::Failed { reason } => (
            "failed",
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failed", "reason": reason}),
        ),
    };
    let mut checkpoint = json!({
        "size": cp.size,
        "root": cp.root.to_base64(),
        "behind_entries": 0,
    });
    if let Some(b) = st.checkpoints.behind() {
        checkpoint["behind_entries"] = json!(b.entries);
        checkpoint["behind_seconds"] = json!((b.for_.as_secs_f64() * 10.0).round() / 10.0);
        if b.for_ > st.lag_tolerance {
            if status == "ok" {
                status = "degraded";
            }
            let reason =
                match (&st.witnessing, &b.error) {
                    (_, Some(e)) => format!("signing or storing checkpoints fails: {e}"),
                    (Some(w), None) => {
                        let failing = w.failing();
                        let names: Vec<String> =
                            failing.iter().map(|(n, e)| format!("{n}: {e}")).collect();
                        format!(
                        "the witness quorum ({} of {}) has not cosigned for {:.0} s; failing: {}",
                        w.quorum,
                        w.specs.len(),
                        b.for_.as_secs_f64(),
                        if names.is_empty() { "none reported".into() } else { names.join("; ") }
                    )
                    }
                    (None, None) => "checkpoints are not being published".into(),
                };
            checkpoint["reason"] = json!(reason);
        }
    }
    let body = json!({
        "status": status,
        "storage": storage,
        "checkpoint": checkpoint,
        "tree_size": durable(&st),
        "checkpoint_size": cp.size,
        "checkpoint_root": cp.root.to_base64(),
    });
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(st): Shared) -> Response {
    let mut out = st.metrics.render();
    st.conn_stats.render("vellum", &mut out);
    if let Some(idx) = &st.index {
        use std::fmt::Write;
        let n = idx.indexed_size();
        let _ = writeln!(
            out,
            "# HELP vellum_indexed_size Entries in the query index.\n# TYPE vellum_indexed_size gauge\nvellum_indexed_size {n}\n# HELP vellum_index_lag_entries Durable entries not yet in the query index.\n# TYPE vellum_index_lag_entries gauge\nvellum_index_lag_entries {}",
            durable(&st).saturating_sub(n)
        );
        let (bytes, entries) = idx.disk_usage();
        let _ = writeln!(
            out,
            "# HELP vellum_index_bytes Bytes of the written query index segments.\n# TYPE vellum_index_bytes gauge\nvellum_index_bytes {bytes}\n# HELP vellum_index_segment_entries Entries covered by the written segments.\n# TYPE vellum_index_segment_entries gauge\nvellum_index_segment_entries {entries}"
        );
    }
    if let Some(w) = &st.witnessing {
        crate::tlog::witnessing::render_metrics(&w.metrics, &w.quorum_seconds, &mut out);
    }
    if let Some(s) = &st.sinks {
        s.render_metrics(durable(&st), &mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// `GET /v1/sinks`: each sink's configuration summary and counters.
async fn sinks(State(st): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    auth(&st, &headers, Scope::Read)?;
    let list = match &st.sinks {
        Some(s) => s.status(durable(&st)),
        None => Value::Array(Vec::new()),
    };
    Ok(axum::Json(json!({ "durable_size": durable(&st), "sinks": list })).into_response())
}

/// Waits for a published checkpoint covering every appended event and
/// answers each with a receipt: a C2SP tlog-proof whose `extra` is the leaf.
async fn with_receipts(
    st: &AppState,
    appended: &[crate::tlog::sequencer::Appended],
    leaves: Vec<Vec<u8>>,
) -> Result<Response, ApiError> {
    let results: Vec<Value> = appended
        .iter()
        .map(|a| {
            let mut v = json!({
                "index": a.index,
                "leaf_hash": a.leaf_hash.to_base64(),
                "event_id": a.event_id,
            });
            if a.duplicate {
                v["duplicate"] = Value::Bool(true);
            }
            v
        })
        .collect();
    let need = appended.iter().map(|a| a.index + 1).max().unwrap_or(0);
    if st.checkpoints.current().size < need {
        st.checkpoints.hurry();
    }
    let Some(cp) = st.checkpoints.wait_for(need, st.receipt_timeout).await else {
        return Err(ApiError::ReceiptTimeout(
            format!(
                "the events are durable, but no checkpoint covering them was published within {:?} \
                 (are the witnesses reachable?); fetch GET /v1/receipt/<index> later, or resend: \
                 duplicates are answered with their original index",
                st.receipt_timeout
            ),
            Value::Array(results),
        ));
    };
    let store = st.store.clone();
    let items: Vec<(u64, Option<Vec<u8>>)> = appended
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                a.index,
                (!a.duplicate).then(|| leaves.get(i).cloned()).flatten(),
            )
        })
        .collect();
    let cp2 = cp.clone();
    let receipts = tokio::task::spawn_blocking(move || {
        items
            .into_iter()
            .map(|(index, leaf)| build_receipt(store.as_ref(), &cp2, index, leaf))
            .collect::<Result<Vec<String>, ApiError>>()
    })
    .await
    .map_err(internal)??;
    let entries: Vec<Value> = results
        .into_iter()
        .zip(receipts)
        .map(|(mut v, r)| {
            v["receipt"] = Value::String(r);
            v
        })
        .collect();
    Ok(axum::Json(json!({ "entries": entries, "checkpoint_size": cp.size })).into_response())
}

/// A receipt for entry `index` under the published checkpoint `cp`.
fn build_receipt(
    store: &dyn LogStore,
    cp: &crate::tlog::checkpointer::Published,
    index: u64,
    leaf: Option<Vec<u8>>,
) -> Result<String, ApiError> {
    let leaf = match leaf {
        Some(l) => l,
        None => store
            .entry(index)
            .map_err(store_err)?
            .ok_or_else(|| internal(format!("entry {index} missing from storage")))?,
    };
    let proof =
        prove_inclusion(index, cp.size, &StoreNodes::new(store, cp.size)).map_err(proof_err)?;
    Ok(vellum_spec::proof::TlogProof {
        extra: Some(leaf),
        index,
        proof,
        checkpoint: cp.note.clone(),
    }
    .to_text())
}

async fn receipt(
    State(st): Shared,
    Path(index): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth_entries(&st, &headers)?;
    let index = entry_index(&index)?;
    let cp = st.checkpoints.current();
    if index >= cp.size {
        return Err(ApiError::NotFound(format!(
            "index {index} is not below the published checkpoint's size {}; retry after the next checkpoint",
            cp.size
        )));
    }
    let store = st.store.clone();
    let text = tokio::task::spawn_blocking(move || build_receipt(store.as_ref(), &cp, index, None))
        .await
        .map_err(internal)??;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// Parses the `<I>` of `/v1/entries/<I>` and `/v1/receipt/<I>`.
fn entry_index(s: &str) -> Result<u64, ApiError> {
    vellum_spec::checkpoint::parse_canonical_u64(s).ok_or_else(|| {
        ApiError::BadRequest(format!("entry index {s:?} is not a non-negative integer"))
    })
}

/// A request's query as name/value pairs, or why it does not parse.
pub(crate) type QueryPairs =
    Result<axum::extract::Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

pub(crate) fn query_pairs(q: QueryPairs) -> Result<Vec<(String, String)>, ApiError> {
    q.map(|axum::extract::Query(p)| p)
        .map_err(|e| ApiError::BadRequest(format!("query: {e}")))
}

async fn export(
    State(st): Shared,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    use crate::export::{self, ExportError, ExportQuery};
    if st.read_only {
        return Err(ApiError::NotHere(
            "evidence bundles are signed by the log's key, which only the writer holds: export from the writer".into(),
        ));
    }
    auth(&st, &headers, Scope::Admin)?;
    let pairs = query_pairs(query)?;
    let q = ExportQuery::parse(pairs).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let permit = st.exports.clone().try_acquire_owned().map_err(|_| {
        st.metrics.limited.fetch_add(1, Ordering::Relaxed);
        ApiError::Unavailable(
            "the log is streaming as many exports as it allows at once (--max-exports); retry later".into(),
            5,
        )
    })?;
    let cp = st.checkpoints.current();
    let origin = vellum_spec::note::Note::parse(&cp.note)
        .ok()
        .and_then(|n| vellum_spec::checkpoint::Checkpoint::parse(&n.text).ok())
        .map(|c| c.origin)
        .unwrap_or_default();
    let store = st.store.clone();
    let (log_key, q2) = (st.log_key.clone(), q.clone());
    let signer = st.checkpoints.clone();
    let plan = tokio::task::spawn_blocking(move || {
        let sign = |t: &str| signer.sign_statement(t);
        export::plan(store.as_ref(), &cp, &q2, &log_key, &origin, &sign)
    })
    .await
    .map_err(internal)?
    .map_err(|e| match e {
        ExportError::BadRequest(m) => ApiError::BadRequest(m),
        ExportError::Store(e) => store_err(e),
        e => internal(e),
    })?;
    let events = plan
        .header()
        .manifest
        .counts
        .get("events")
        .copied()
        .unwrap_or(0);
    let stream = export::spawn(st.store.clone(), plan, q, st.write_timeout, permit);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"vellum-bundle.jsonl\""),
            ),
            (
                header::HeaderName::from_static("x-vellum-events"),
                HeaderValue::from(events),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /v1/lookup?gateway=G&event_id=E`: the entry a gateway logged under
/// an event ID (as `/v1/entries/<I>`), so an event can be proven from its
/// own fields.
async fn lookup(
    State(st): Shared,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    auth_entries(&st, &headers)?;
    let pairs = query_pairs(query)?;
    let (mut gateway, mut event_id) = (None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "gateway" => gateway = Some(v),
            "event_id" => event_id = Some(v),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?}; expected gateway and event_id"
                )))
            }
        }
    }
    let (Some(gateway), Some(event_id)) = (gateway, event_id) else {
        return Err(ApiError::BadRequest(
            "query parameters gateway and event_id are both required".into(),
        ));
    };
    let key = crate::storage::dedup::key(&gateway, &event_id);
    let store = st.store.clone();
    let found = tokio::task::spawn_blocking(move || store.dedup(&key))
        .await
        .map_err(internal)?
        .map_err(store_err)?;
    match found {
        Some(index) if index < durable(&st) => entry_body(&st, index),
        _ => Err(ApiError::NotFound(format!(
            "no event {event_id:?} from gateway {gateway:?} in the log"
        ))),
    }
}
