//! What the load generators (`vellum bench`, `vellum soak`) share: a log
//! this process starts in a temporary directory, realistic events, request
//! bodies with fresh event IDs, and percentiles.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A log started by this process; killed (and its directory removed, if
/// it was a temporary one) when dropped.
pub struct OwnLog {
    /// The log process.
    pub child: Child,
    /// Its data directory.
    pub dir: PathBuf,
    remove: bool,
}

impl Drop for OwnLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts `vellum serve` (this binary) on a free loopback port in `data`
/// (default: a new temporary directory) with `extra` flags; its logs go to
/// a file next to the directory, whose path is printed. Returns the log,
/// its URL and its default token.
pub fn start_log(
    data: Option<PathBuf>,
    tag: &str,
    extra: &[&str],
) -> Result<(OwnLog, String, String), String> {
    let (dir, remove) = match data {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("vellum-{tag}-{}", std::process::id())),
            true,
        ),
    };
    let port = free_port()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let log_path = dir.with_extension("log");
    let log_file =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    eprintln!("the log's own output goes to {}", log_path.display());
    let child = Command::new(exe)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&dir)
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("starting the log: {e}"))?;
    let own = OwnLog { child, dir, remove };
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(t) = std::fs::read_to_string(own.dir.join("gateway.token")) {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok((own, url, t.trim().to_string()));
            }
        }
        if Instant::now() > deadline {
            return Err("the log did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A realistic event of about `bytes` bytes, varied by `i`.
pub fn event(i: usize, bytes: usize) -> serde_json::Value {
    let pad = bytes.saturating_sub(330);
    serde_json::json!({
        "ts": "2026-06-20T14:07:31.120Z",
        "agent": format!("agent-{}", i % 17),
        "session": format!("sess-{}", i % 101),
        "principal": "svc-payments@corp.example",
        "owner": "payments-oncall",
        "tool": "stripe.refund",
        "target": "api.stripe.com",
        "args_hash": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "provenance": "untrusted",
        "provenance_source": "inbound email",
        "verdict": "allow",
        "rule": "refunds-under-100",
        "risk": 12,
        "latency_ms": 31,
        "result": {"status": 200},
        "attrs": {"pad": "x".repeat(pad)}
    })
}

/// Request bodies with fresh event IDs, built from a pre-serialized
/// template: gateways send their own IDs, so the log's dedup index works
/// on every event, as it would in production.
#[derive(Clone)]
pub struct Bodies {
    /// Template text around each event's ID.
    pieces: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicU64>,
}

impl Bodies {
    /// Bodies of `events` events (a JSON array if `array`) of ~`bytes` each.
    pub fn new(events: usize, bytes: usize, array: bool) -> Bodies {
        let evs: Vec<serde_json::Value> = (0..events)
            .map(|i| {
                let mut e = event(i, bytes);
                e["event_id"] = serde_json::Value::String("@@ID@@".into());
                e
            })
            .collect();
        let text = if array {
            serde_json::to_string(&evs)
        } else {
            serde_json::to_string(&evs[0])
        }
        .unwrap_or_default();
        let pieces = text
            .split("@@ID@@")
            .map(|p| p.as_bytes().to_vec())
            .collect();
        Bodies {
            pieces: Arc::new(pieces),
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The next body, with IDs no other body has.
    pub fn body(&self) -> Vec<u8> {
        let run = self.next.fetch_add(1, Relaxed);
        let pid = std::process::id();
        let mut out = Vec::with_capacity(
            self.pieces.iter().map(Vec::len).sum::<usize>() + 32 * self.pieces.len(),
        );
        let last = self.pieces.len() - 1;
        for (i, p) in self.pieces.iter().enumerate() {
            out.extend_from_slice(p);
            if i < last {
                out.extend_from_slice(format!("b{pid}-{run}-{i}").as_bytes());
            }
        }
        out
    }
}

/// The median (0 for none).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `p` quantile (0 for none).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Open descriptors of `pid`.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}
