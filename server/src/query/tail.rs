//! Live tails (`GET /v1/events/tail`, Server-Sent Events): a cursor that
//! reads the durable log from storage, not an in-memory broadcast. Each
//! matching entry is sent once it is durable, in index order, with its
//! index as the SSE `id`; published checkpoints are sent as they come; a
//! comment every 15 s keeps proxies open. A subscriber that does not read
//! holds back only its own cursor: at most one small chunk waits for it,
//! and after the write timeout it is disconnected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use vellum_spec::hash::leaf_hash;

use super::fields::EventFields;
use super::params::Filter;
use crate::storage::{for_each_entry, LogStore, StoreError};
use crate::tlog::checkpointer::Checkpointer;

/// Entries read per step.
const CHUNK: u64 = 64;
/// A comment line this often.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The SSE frame of one entry: `id`, `event: entry`, and the query
/// result object as `data`.
pub fn entry_frame(index: u64, leaf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaf.len() + 120);
    out.extend_from_slice(format!("id: {index}\nevent: entry\ndata: ").as_bytes());
    out.extend_from_slice(
        format!(
            "{{\"index\":{index},\"leaf_hash\":\"{}\",\"event\":",
            leaf_hash(leaf).to_base64()
        )
        .as_bytes(),
    );
    // A leaf is canonical JSON: one line, no raw newline.
    out.extend_from_slice(leaf);
    out.extend_from_slice(b"}\n\n");
    out
}

fn checkpoint_frame(cp: &crate::tlog::checkpointer::Published) -> Vec<u8> {
    let data = json!({
        "size": cp.size,
        "root": cp.root.to_base64(),
        "note": String::from_utf8_lossy(&cp.note),
    });
    format!("event: checkpoint\ndata: {data}\n\n").into_bytes()
}

/// Everything a tail needs.
pub struct TailSource {
    /// Storage.
    pub store: Arc<dyn LogStore>,
    /// Durable size, as it grows.
    pub durable: watch::Receiver<u64>,
    /// Published checkpoints.
    pub checkpoints: Arc<Checkpointer>,
    /// How long a frame waits for the client.
    pub send_timeout: Duration,
}

/// The body stream of a tail; ends with an error (aborting the
/// connection) if the tail stopped on its side.
pub struct TailStream {
    rx: mpsc::Receiver<Bytes>,
    done: Arc<AtomicBool>,
}

impl futures_core::Stream for TailStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(b)) => std::task::Poll::Ready(Some(Ok(b))),
            std::task::Poll::Ready(None) if !self.done.swap(true, Ordering::AcqRel) => {
                std::task::Poll::Ready(Some(Err(std::io::Error::other("tail stopped"))))
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// Starts a tail of `filter` from entry `start`; `permit` (the tail
/// limit) is held while it runs.
pub fn spawn(
    src: TailSource,
    filter: Filter,
    start: u64,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> TailStream {
    let (tx, rx) = mpsc::channel(1);
    let done = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        let _permit = permit;
        if let Err(e) = run(src, Arc::new(filter), start, &tx).await {
            tracing::debug!(error = %e, "tail ended");
        }
    });
    TailStream { rx, done }
}

#[derive(Debug, thiserror::Error)]
enum TailEnd {
    #[error("the client went away or stopped reading")]
    Client,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("reading task failed")]
    Join,
}

async fn send(tx: &mpsc::Sender<Bytes>, b: Vec<u8>, timeout: Duration) -> Result<(), TailEnd> {
    tx.send_timeout(Bytes::from(b), timeout)
        .await
        .map_err(|_| TailEnd::Client)
}

async fn run(
    mut src: TailSource,
    filter: Arc<Filter>,
    mut next: u64,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), TailEnd> {
    let mut cps = src.checkpoints.subscribe();
    let t = src.send_timeout;
    send(tx, b"retry: 2000\n\n".to_vec(), t).await?;
    send(tx, checkpoint_frame(&src.checkpoints.current()), t).await?;
    cps.borrow_and_update();
    loop {
        if cps.has_changed().unwrap_or(false) {
            cps.borrow_and_update();
            send(tx, checkpoint_frame(&src.checkpoints.current()), t).await?;
        }
        let durable = *src.durable.borrow_and_update();
        if next < durable {
            let to = durable.min(next + CHUNK);
            let (store, f, from) = (src.store.clone(), filter.clone(), next);
            let frames = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, StoreError> {
                let mut out = Vec::new();
                for_each_entry(store.as_ref(), from, to, |i, leaf| {
                    if EventFields::parse(leaf).is_ok_and(|e| f.matches(&e)) {
                        out.extend(entry_frame(i, leaf));
                    }
                    Ok::<(), StoreError>(())
                })?;
                Ok(out)
            })
            .await
            .map_err(|_| TailEnd::Join)??;
            if !frames.is_empty() {
                send(tx, frames, t).await?;
            }
            next = to;
            continue;
        }
        tokio::select! {
            r = src.durable.changed() => if r.is_err() { return Ok(()) },
            r = cps.changed() => {
                if r.is_err() { return Ok(()) }
                cps.borrow_and_update();
                send(tx, checkpoint_frame(&src.checkpoints.current()), t).await?;
            }
            _ = tokio::time::sleep(HEARTBEAT) => send(tx, b": keep-alive\n\n".to_vec(), t).await?,
            _ = tx.closed() => return Err(TailEnd::Client),
        }
    }
}
