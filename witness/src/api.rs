//! The witness's HTTP interface (C2SP tlog-witness): `POST /add-checkpoint`,
//! plus `GET /` (status: the logs it witnesses and what it last cosigned),
//! `GET /<sha256(origin) hex>/checkpoint` (the latest cosigned checkpoint),
//! `GET /healthz` and `GET /metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State as AxState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use vellum_spec::note::{Note, SignerKey};
use vellum_spec::witness::{
    check_update, open_checkpoint, origin_hash, AddCheckpoint, WitnessError, MAX_REQUEST_BYTES,
    SIZE_CONTENT_TYPE,
};

use crate::logs::Logs;
use crate::rate::RateLimiter;
use crate::state::{Record, State, StateError};

/// Request counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    cosigned: AtomicU64,
    refused: [AtomicU64; 6],
    forks: AtomicU64,
    rate_limited: AtomicU64,
}

const REFUSAL_CODES: [u16; 6] = [400, 403, 404, 409, 422, 500];

/// Everything a request handler needs.
pub struct Witness {
    /// The cosigning key.
    pub key: SignerKey,
    /// Logs accepted, by origin.
    pub logs: Logs,
    /// Durable state.
    pub state: State,
    /// Per-origin rate limits.
    pub limiter: RateLimiter,
    /// Counters.
    pub counters: Counters,
    /// Connection counters of the HTTP server.
    pub conn_stats: Arc<vellum_net::ConnStats>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Witness {
    /// Assembles the witness.
    pub fn new(key: SignerKey, logs: Logs, state: State, limiter: RateLimiter) -> Witness {
        Witness {
            key,
            logs,
            state,
            limiter,
            counters: Counters::default(),
            conn_stats: Arc::default(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock_for(&self, origin: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = match self.locks.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(origin.to_string()).or_default().clone()
    }
}

type Shared = AxState<Arc<Witness>>;

/// The router.
pub fn router(w: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/", get(status))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/evidence", get(evidence))
        .route("/{origin_hash}/checkpoint", get(latest))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(w)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What went wrong with a request, beyond the protocol's refusals.
enum Failure {
    Refused(WitnessError),
    RateLimited(f64),
    Internal(StateError),
}

impl From<WitnessError> for Failure {
    fn from(e: WitnessError) -> Self {
        Failure::Refused(e)
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::Internal(e)
    }
}

async fn add_checkpoint(AxState(w): Shared, body: Bytes) -> Response {
    match cosign(&w, &body).await {
        Ok(line) => {
            w.counters.cosigned.fetch_add(1, Ordering::Relaxed);
            text(StatusCode::OK, line)
        }
        Err(Failure::RateLimited(secs)) => {
            w.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut r = text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests for this log; retry later\n".into(),
            );
            let s = secs.ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(Failure::Internal(e)) => {
            tracing::error!(error = %e, "witness state");
            w.counters.refused[5].fetch_add(1, Ordering::Relaxed);
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "witness state unavailable\n".into(),
            )
        }
        Err(Failure::Refused(e)) => {
            let code = e.status();
            if let Some(i) = REFUSAL_CODES.iter().position(|c| *c == code) {
                w.counters.refused[i].fetch_add(1, Ordering::Relaxed);
            }
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            if let WitnessError::Conflict { current, .. } = e {
                return (
                    status,
                    [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
                    format!("{current}\n"),
                )
                    .into_response();
            }
            text(status, format!("{e}\n"))
        }
    }
}

/// Runs the checks and, if they pass, stores the new state and returns the
/// cosignature line. One request per origin at a time.
async fn cosign(w: &Witness, body: &[u8]) -> Result<String, Failure> {
    let req = AddCheckpoint::parse(body)?;
    let logs = w.logs.get();
    let acc = open_checkpoint(&req, |origin| logs.get(origin).map(Vec::as_slice))?;
    let origin = acc.checkpoint.origin.clone();
    w.limiter.take(&origin).map_err(Failure::RateLimited)?;

    let lock = w.lock_for(&origin);
    let _guard = lock.lock().await;
    let cur = w.state.get(&origin)?;
    let witnessed = match &cur.record {
        None => None,
        Some(r) => Some(r.witnessed().ok_or_else(|| StateError::Corrupt {
            origin: origin.clone(),
            reason: "root is not base64 of 32 bytes".into(),
        })?),
    };
    if let Err(e) = check_update(witnessed, req.old, &req.proof, &acc.checkpoint) {
        if matches!(e, WitnessError::Fork { .. }) {
            w.counters.forks.fetch_add(1, Ordering::Relaxed);
            let stored = cur.record.as_ref().map(|r| r.note.as_str()).unwrap_or("");
            let evidence = format!(
                "fork at size {} of {origin}\n\ncosigned earlier:\n{stored}\nsigned by the log now:\n{}",
                acc.checkpoint.size,
                String::from_utf8_lossy(&req.note)
            );
            let key = w
                .state
                .record_evidence(&origin, now_secs(), &evidence)
                .await?;
            tracing::error!(%origin, size = acc.checkpoint.size, evidence = %key,
                "LOG FORK: the log signed two different roots for one size; both notes kept as evidence");
        } else if matches!(e, WitnessError::Inconsistent(_)) {
            tracing::warn!(%origin, error = %e, "refused an inconsistent checkpoint");
        }
        return Err(e.into());
    }

    // Never before an earlier cosignature for this log, never zero.
    let last = cur.record.as_ref().map_or(0, |r| r.time);
    let time = now_secs().max(last).max(1);
    let sig = w.key.cosign(acc.note.text.as_bytes(), time);
    let line = sig.to_line();
    let mut cosigned: Note = acc.note.clone();
    cosigned
        .sigs
        .retain(|s| !(s.name == sig.name && s.id == sig.id));
    cosigned.sigs.push(sig);
    let rec = Record {
        size: acc.checkpoint.size,
        root: acc.checkpoint.root.to_base64(),
        note: String::from_utf8_lossy(&cosigned.to_bytes()).into_owned(),
        time,
    };
    match w.state.update(&origin, &cur, &rec).await {
        Ok(()) => {}
        Err(StateError::Raced) => {
            let now = w.state.get(&origin)?;
            let current = now.record.map_or(0, |r| r.size);
            return Err(WitnessError::Conflict {
                old: req.old,
                current,
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    tracing::debug!(%origin, size = rec.size, time, "cosigned");
    Ok(line)
}

async fn status(AxState(w): Shared) -> Response {
    let logs = w.logs.get();
    let stored: HashMap<String, Record> = w.state.all().into_iter().collect();
    let list: Vec<serde_json::Value> = logs
        .iter()
        .map(|(origin, keys)| {
            let r = stored.get(origin);
            serde_json::json!({
                "origin": origin,
                "origin_hash": origin_hash(origin),
                "keys": keys.iter().map(|k| k.to_vkey()).collect::<Vec<_>>(),
                "size": r.map(|r| r.size),
                "root": r.map(|r| r.root.clone()),
                "cosigned_at": r.map(|r| r.time),
                "checkpoint": r.map(|r| r.note.clone()),
            })
        })
        .collect();
    Json(serde_json::json!({
        "name": w.key.name,
        "vkey": w.key.verifier().to_vkey(),
        "logs": list,
        "forks_seen": w.state.evidence().len(),
    }))
    .into_response()
}

async fn latest(AxState(w): Shared, Path(hash): Path<String>) -> Response {
    let found = w
        .state
        .all()
        .into_iter()
        .find(|(origin, _)| origin_hash(origin) == hash);
    match found {
        Some((_, r)) => {
            let mut resp = text(StatusCode::OK, r.note);
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        None => text(
            StatusCode::NOT_FOUND,
            "this witness has cosigned no checkpoint for that origin hash\n".into(),
        ),
    }
}

async fn metrics(AxState(w): Shared) -> Response {
    let c = &w.counters;
    let mut s = String::new();
    s.push_str("# TYPE vellum_witness_cosignatures_total counter\n");
    s.push_str(&format!(
        "vellum_witness_cosignatures_total {}\n",
        c.cosigned.load(Ordering::Relaxed)
    ));
    s.push_str("# TYPE vellum_witness_refusals_total counter\n");
    for (i, code) in REFUSAL_CODES.iter().enumerate() {
        s.push_str(&format!(
            "vellum_witness_refusals_total{{status=\"{code}\"}} {}\n",
            c.refused[i].load(Ordering::Relaxed)
        ));
    }
    s.push_str(&format!(
        "vellum_witness_rate_limited_total {}\nvellum_witness_forks_total {}\nvellum_witness_logs {}\n",
        c.rate_limited.load(Ordering::Relaxed),
        c.forks.load(Ordering::Relaxed),
        w.logs.get().len()
    ));
    w.conn_stats.render("vellum_witness", &mut s);
    text(StatusCode::OK, s)
}

async fn evidence(AxState(w): Shared) -> Response {
    let mut s = String::new();
    for (key, body) in w.state.evidence() {
        s.push_str(&format!("=== {key}\n{body}\n"));
    }
    text(StatusCode::OK, s)
}
