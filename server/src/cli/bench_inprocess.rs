//! The in-process limit: the same request bodies the HTTP phases send,
//! parsed, validated, canonicalized, hashed, sequenced and committed
//! durably by the server's own code (`seal_body`, the sequencer, the
//! embedded store) with no HTTP in between. The served figure divided by
//! this one is the share the HTTP layer leaves.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::loadgen::Bodies;
use crate::metrics::Metrics;
use crate::storage::SledStore;
use crate::tlog::sequencer::{self, AppendJob};

/// Durable appends/s (median of per-second counts) of `clients` loops
/// sealing and committing bodies of `batch` events for `secs` seconds, in
/// a fresh embedded store under `dir`.
pub async fn limit(
    dir: &std::path::Path,
    clients: usize,
    batch: usize,
    event_bytes: usize,
    secs: u64,
) -> Result<f64, String> {
    let store = Arc::new(
        SledStore::open(dir, 32 << 20, crate::storage::dedup_index::TABLE_KEYS)
            .map_err(|e| e.to_string())?,
    );
    let metrics = Arc::new(Metrics::default());
    let (queue, _state) = sequencer::start(store, metrics, 4096).map_err(|e| e.to_string())?;
    let bodies = Bodies::new(batch, event_bytes, batch > 1);
    let gateway: Arc<str> = Arc::from("bench");
    let (rate, _) = super::bench::per_second(clients, secs, move |_| {
        let (queue, bodies, gateway) = (queue.clone(), bodies.clone(), gateway.clone());
        async move {
            let body = bodies.body();
            // Sealed inline on the runtime's worker, as the append handler does.
            let items =
                crate::http::seal_body(&body, &gateway, 100_000).map_err(|e| e.to_string())?;
            let (reply, rx) = oneshot::channel();
            queue
                .send(AppendJob {
                    gateway,
                    items,
                    enqueued: Instant::now(),
                    reply,
                })
                .await
                .map_err(|_| "the sequencer stopped".to_string())?;
            let got = rx
                .await
                .map_err(|_| "the sequencer dropped a request".to_string())?
                .map_err(|e| e.to_string())?;
            Ok(got.len() as u64)
        }
    })
    .await?;
    Ok(rate)
}
