//! Asking the log over HTTP: `GET /v1/events` (filtered pages with
//! cursors, optionally with proofs), `GET /v1/stats` and
//! `GET /v1/events/tail` (Server-Sent Events). All need the `read` scope
//! (or `--public-entries`).

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use vellum_spec::hash::leaf_hash;
use vellum_spec::merkle::prove_inclusion;

use super::{auth_entries, internal, query_pairs, store_err, ApiError, QueryPairs, Shared};
use crate::query::params::{EventsQuery, StatsQuery, TailQuery};
use crate::query::{Index, QueryError};
use crate::storage::tree::StoreNodes;

fn index(st: &super::AppState) -> Result<std::sync::Arc<Index>, ApiError> {
    st.index.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "the query index is off on this log (--query-index false)".into(),
            3600,
        )
    })
}

fn query_err(e: QueryError) -> ApiError {
    match e {
        QueryError::Cursor(c) => ApiError::BadRequest(c.to_string()),
        QueryError::Store(s) => store_err(s),
        e => internal(e),
    }
}

/// `GET /v1/events`.
pub async fn events(
    State(st): Shared,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    auth_entries(&st, &headers)?;
    let pairs = query_pairs(query)?;
    let q = EventsQuery::parse(&pairs).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let idx = index(&st)?;
    let cp = st.checkpoints.current();
    let store = st.store.clone();
    let body = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let page = idx.query(&q).map_err(query_err)?;
        let nodes = StoreNodes::new(store.as_ref(), cp.size);
        let mut out = String::with_capacity(page.entries.len() * 800 + 128);
        out.push_str("{\"events\":[");
        for (n, (i, leaf)) in page.entries.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let leaf_str = std::str::from_utf8(leaf).map_err(internal)?;
            out.push_str(&format!(
                "{{\"index\":{i},\"leaf_hash\":\"{}\",\"event\":{leaf_str}",
                leaf_hash(leaf).to_base64()
            ));
            if q.proofs {
                if *i < cp.size {
                    let p = prove_inclusion(*i, cp.size, &nodes).map_err(super::proof_err)?;
                    let hashes: Vec<Value> =
                        p.iter().map(|h| Value::String(h.to_base64())).collect();
                    out.push_str(&format!(",\"proof\":{}", Value::Array(hashes)));
                } else {
                    out.push_str(",\"proof\":null,\"beyond_checkpoint\":true");
                }
            }
            out.push('}');
        }
        let next = page
            .next
            .map(|p| Value::String(idx.cursors.encode(p, &q.filter.canonical())))
            .unwrap_or(Value::Null);
        out.push_str(&format!(
            "],\"next_cursor\":{next},\"indexed_size\":{},\"checkpoint_size\":{}",
            page.indexed, cp.size
        ));
        if q.proofs {
            // The signed checkpoint the proofs are against, so a client can
            // check both without a second request that could see a newer one.
            out.push_str(&format!(
                ",\"checkpoint\":{}",
                Value::String(String::from_utf8_lossy(&cp.note).into_owned())
            ));
        }
        out.push('}');
        Ok(out)
    })
    .await
    .map_err(internal)??;
    st.metrics.queries.fetch_add(1, Ordering::Relaxed);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `GET /v1/stats`.
pub async fn stats(
    State(st): Shared,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    auth_entries(&st, &headers)?;
    let pairs = query_pairs(query)?;
    let q = StatsQuery::parse(&pairs, now_ms()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let idx = index(&st)?;
    let q2 = q.clone();
    let s = tokio::task::spawn_blocking(move || idx.stats(&q2))
        .await
        .map_err(internal)?
        .map_err(query_err)?;
    let fmt = vellum_spec::time::format_millis;
    let buckets: Vec<Value> = s
        .buckets
        .iter()
        .map(|b| json!({"start": fmt(b.start), "total": b.total, "counts": b.counts}))
        .collect();
    let top: Vec<Value> = s
        .top
        .iter()
        .map(|(v, n)| json!({"value": v, "count": n}))
        .collect();
    Ok(axum::Json(json!({
        "from": q.filter.from.map(fmt),
        "to": q.filter.to.map(fmt),
        "bucket": q.bucket.0,
        "group_by": q.group_by.name(),
        "buckets": buckets,
        "top": top,
        "total": s.total,
        "indexed_size": s.indexed,
    }))
    .into_response())
}

/// `GET /v1/events/tail`.
pub async fn tail(
    State(st): Shared,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    auth_entries(&st, &headers)?;
    let pairs = query_pairs(query)?;
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let q = TailQuery::parse(&pairs, last.as_deref())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let permit = st.tails.clone().try_acquire_owned().map_err(|_| {
        st.metrics.limited.fetch_add(1, Ordering::Relaxed);
        ApiError::Unavailable(
            "the log is serving as many live tails as it allows (--max-tails); retry later".into(),
            5,
        )
    })?;
    let durable = st.seq.durable_watch.subscribe();
    let start = match q.after {
        Some(i) => i.saturating_add(1),
        None => *durable.borrow(),
    };
    let stream = crate::query::tail::spawn(
        crate::query::tail::TailSource {
            store: st.store.clone(),
            durable,
            checkpoints: st.checkpoints.clone(),
            send_timeout: st.write_timeout,
        },
        q.filter,
        start,
        permit,
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
