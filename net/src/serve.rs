//! Serving a router over HTTP/1 with every connection bounded: at most
//! `max_connections` at once (the next ones get a short 503 with
//! `Retry-After` and are closed), request headers within the header
//! timeout, no connection idle beyond the idle timeout, no write stalled
//! beyond the write timeout. A full descriptor table (EMFILE) pauses
//! accepting instead of spinning; the kernel's backlog holds the rest.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::guard::Guarded;

/// Connection limits of a server; each is a setting with this default.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Connections served at once (clamped to what the descriptor limit
    /// allows, see [`crate::fdlimit::connection_cap`]).
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from when the
    /// connection opened or the previous response ended: a kept-alive
    /// connection that sends no new request for this long is closed.
    pub header_timeout: Duration,
    /// A connection with no byte read or written for this long while a
    /// request is under way (e.g. a body trickling in) is closed.
    pub idle_timeout: Duration,
    /// A response write that makes no progress for this long (the client
    /// stopped reading) closes the connection.
    pub write_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Connection counters, for `/metrics`.
#[derive(Default, Debug)]
pub struct ConnStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub refused: AtomicU64,
    /// Connections closed by the idle or write timeout.
    pub timeouts: AtomicU64,
    /// Accept calls that failed (e.g. out of descriptors).
    pub accept_errors: AtomicU64,
}

impl ConnStats {
    /// Renders the counters in the Prometheus text format under `prefix`
    /// (e.g. `vellum`).
    pub fn render(&self, prefix: &str, out: &mut String) {
        use std::fmt::Write;
        let rows: [(&str, &str, &AtomicU64, &str); 5] = [
            (
                "connections_open",
                "gauge",
                &self.open,
                "HTTP connections open.",
            ),
            (
                "connections_total",
                "counter",
                &self.accepted,
                "HTTP connections served.",
            ),
            (
                "connections_refused_total",
                "counter",
                &self.refused,
                "Connections refused with 503 because the connection limit was reached.",
            ),
            (
                "connections_timed_out_total",
                "counter",
                &self.timeouts,
                "Connections closed by the idle or write timeout.",
            ),
            (
                "accept_errors_total",
                "counter",
                &self.accept_errors,
                "Failed accept calls (for example, out of file descriptors).",
            ),
        ];
        for (name, kind, v, help) in rows {
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} {kind}");
            let _ = writeln!(out, "{prefix}_{name} {}", v.load(Ordering::Relaxed));
        }
    }
}

/// Refusals being written at once; beyond this, excess connections are
/// closed without an answer.
const MAX_REFUSALS: usize = 64;

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 60\r\n\r\n{\"error\":\"too many connections; retry after a second (503)\"}";

/// Serves `app` on `listener` within `limits` until `shutdown` completes,
/// then lets open requests finish for up to five seconds.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    let mut emfile_logged = false;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                emfile_logged = false;
                s
            }
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if !emfile_logged {
                    tracing::warn!(error = %e, "accepting a connection failed; pausing accepts briefly");
                    emfile_logged = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            refuse(stream, &refusals);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let io = TokioIo::new(Guarded::new(
            stream,
            limits.idle_timeout,
            limits.write_timeout,
            stats.clone(),
        ));
        let conn = http.serve_connection(io, TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        let stats = stats.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::info!("open connections did not finish within 5 s; closing them");
        }
    }
    Ok(())
}

/// Answers a connection over the limit with a 503 and closes it, within
/// a second; drops it at once if too many refusals are under way.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = stream.write_all(REFUSAL).await;
            let _ = stream.shutdown().await;
            // Read what the client sent, so that closing does not reset
            // the connection before it read the answer.
            let mut sink = [0u8; 4096];
            let mut left = 64 << 10;
            while left > 0 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left -= n.min(left),
                }
            }
        })
        .await;
        drop(permit);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(serde_json_like(body));
    }

    fn serde_json_like(s: &str) -> bool {
        s.starts_with("{\"error\":\"") && s.ends_with("\"}")
    }
}
