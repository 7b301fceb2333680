//! `vellum soak`: a long run of mixed, partly hostile load against a log
//! this command starts, printing the log's resident memory, its open
//! descriptors and per-operation p99 latencies every interval, so that
//! one can see both stay flat. Not a test: a command anyone can run.
//!
//! Honest load: batched appends at a fixed rate, appends waiting for
//! receipts, inclusion proofs, entry reads, windowed exports read to the
//! end. Hostile load: slowloris connections that never finish their
//! headers, exports whose clients never read, oversized bodies.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::loadgen::{open_fds, percentile, rss_kib, start_log, Bodies};

/// Flags of `vellum soak`.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 60)]
    pub every: u64,
    /// Events appended per second (batched, 4 clients).
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Slowloris connections kept open.
    #[arg(long, default_value_t = 200)]
    pub slowloris: usize,
    /// Exports kept open without reading.
    #[arg(long, default_value_t = 2)]
    pub stalled_exports: usize,
    /// Send no oversized bodies.
    #[arg(long)]
    pub no_oversize: bool,
    /// Data directory for the log [default: a new temporary one].
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
}

/// The operations measured.
const OPS: [&str; 5] = ["append", "receipt", "proof", "entry", "export"];

#[derive(Default)]
struct Op {
    lat: Mutex<Vec<f64>>,
    ok: AtomicU64,
    failed: AtomicU64,
    busy: AtomicU64,
}

#[derive(Default)]
struct Stats {
    ops: [Op; 5],
    slowloris_closed: AtomicU64,
    stalled_exports: AtomicU64,
    oversize_413: AtomicU64,
    oversize_reset: AtomicU64,
    oversize_other: AtomicU64,
    size: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Stats {
    fn record(&self, op: usize, t: Instant, r: Result<bool, String>) {
        let o = &self.ops[op];
        match r {
            Ok(true) => {
                o.ok.fetch_add(1, Relaxed);
                if let Ok(mut l) = o.lat.lock() {
                    l.push(t.elapsed().as_secs_f64());
                }
            }
            Ok(false) => {
                o.busy.fetch_add(1, Relaxed);
            }
            Err(e) => {
                o.failed.fetch_add(1, Relaxed);
                if let Ok(mut errs) = self.errors.lock() {
                    if errs.len() < 20 {
                        errs.push(format!("{}: {e}", OPS[op]));
                    }
                }
            }
        }
    }
}

/// Ok(true) for 200, Ok(false) for a 503 (a limit, retry later), Err otherwise.
async fn expect_ok(r: Result<reqwest::Response, reqwest::Error>) -> Result<bool, String> {
    let r = r.map_err(|e| chain(&e))?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    match status {
        200 => Ok(true),
        503 => Ok(false),
        s => Err(format!(
            "HTTP {s}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// An error with its causes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Runs the soak.
pub fn run(a: SoakArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(soak(a))
}

async fn soak(a: SoakArgs) -> Result<(), String> {
    let (own, url, token) = start_log(a.data.clone(), "soak", &[])?;
    let pid = own.child.id();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args(["token", "add", "soak-admin", "--scopes", "admin", "--data"])
        .arg(&own.dir)
        .output()
        .map_err(|e| e.to_string())?;
    let admin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if admin.is_empty() {
        return Err(format!(
            "creating an admin token: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Idle pooled connections are dropped well before the log's idle
    // timeout closes them, so no request goes out on a closing connection.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(vellum_net::CLIENT_IDLE)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let stats = Arc::new(Stats::default());
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("log URL")?;
    println!(
        "vellum soak: {} min against {url} (pid {pid}): appends at {}/s, receipts, proofs, entry reads, exports; hostile: {} slowloris, {} stalled exports, 9 MB bodies",
        a.minutes, a.rate, a.slowloris, a.stalled_exports
    );
    let end = Instant::now() + Duration::from_secs(a.minutes * 60);
    let mut tasks = Vec::new();
    // Tree size, for proofs and entry reads.
    {
        let (http, url, stats) = (http.clone(), url.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if let Ok(r) = http.get(format!("{url}/checkpoint")).send().await {
                    if let Ok(t) = r.text().await {
                        if let Some(n) = t.lines().nth(1).and_then(|l| l.parse().ok()) {
                            stats.size.store(n, Relaxed);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    // Batched appends at the rate.
    let bodies = Bodies::new(20, 500, true);
    for _ in 0..4 {
        let (http, url, token, stats, bodies) = (
            http.clone(),
            url.clone(),
            token.clone(),
            stats.clone(),
            bodies.clone(),
        );
        let pause = Duration::from_secs_f64(20.0 * 4.0 / a.rate.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let t = Instant::now();
                let r = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .body(bodies.body())
                    .send()
                    .await;
                stats.record(0, t, expect_ok(r).await);
                tokio::time::sleep(pause.saturating_sub(t.elapsed())).await;
            }
        }));
    }
    // Appends waiting for receipts.
    let single = Bodies::new(1, 500, false);
    for _ in 0..2 {
        let (http, url, token, stats, single) = (
            http.clone(),
            url.clone(),
            token.clone(),
            stats.clone(),
            single.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let t = Instant::now();
                let r = http
                    .post(format!("{url}/v1/events?receipt=true"))
                    .bearer_auth(&token)
                    .body(single.body())
                    .send()
                    .await;
                stats.record(1, t, expect_ok(r).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // Proofs and entry reads.
    for (op, clients) in [(2usize, 4usize), (3, 2)] {
        for _ in 0..clients {
            let (http, url, token, stats) =
                (http.clone(), url.clone(), token.clone(), stats.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let size = stats.size.load(Relaxed);
                    if size == 0 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    let i = rand::random::<u64>() % size;
                    let t = Instant::now();
                    let r = if op == 2 {
                        http.get(format!("{url}/v1/proof/inclusion?index={i}&size={size}"))
                            .send()
                            .await
                    } else {
                        http.get(format!("{url}/v1/entries/{i}"))
                            .bearer_auth(&token)
                            .send()
                            .await
                    };
                    stats.record(op, t, expect_ok(r).await);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
    }
    // Exports of the last 15 seconds, read to their end line.
    {
        let (http, url, admin, stats) = (http.clone(), url.clone(), admin.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let from = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64 - 15_000)
                    .unwrap_or(0);
                let from = vellum_spec::time::format_millis(from);
                let t = Instant::now();
                let r = http
                    .get(format!("{url}/v1/export"))
                    .query(&[("from", from)])
                    .bearer_auth(&admin)
                    .send()
                    .await;
                let res = match r {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(b)
                            if b.ends_with(b"\n")
                                && b.rsplit(|c| *c == b'\n')
                                    .nth(1)
                                    .is_some_and(|l| l.starts_with(b"{\"kind\":\"end\"")) =>
                        {
                            Ok(true)
                        }
                        Ok(_) => Err("export without its end line".to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                    Ok(r) if r.status() == 503 => Ok(false),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                stats.record(4, t, res);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }));
    }
    // Hostile: slowloris.
    for _ in 0..a.slowloris {
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = c
                        .write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\n")
                        .await;
                    let mut buf = [0u8; 1024];
                    let left = end.saturating_duration_since(Instant::now());
                    let closed = tokio::time::timeout(left, async {
                        while let Ok(n) = c.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    })
                    .await;
                    if closed.is_ok() {
                        stats.slowloris_closed.fetch_add(1, Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // Hostile: exports that are never read.
    for _ in 0..a.stalled_exports {
        let (stats, admin) = (stats.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    let req = format!("GET /v1/export HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\r\n");
                    let _ = c.write_all(req.as_bytes()).await;
                    stats.stalled_exports.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_secs(45)).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // Hostile: oversized bodies.
    if !a.no_oversize {
        let (http, url, token, stats) = (http.clone(), url.clone(), token.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            let big = vec![b' '; 9 << 20];
            while Instant::now() < end {
                let r = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .body(big.clone())
                    .send()
                    .await;
                // The log answers 413 as soon as the body crosses its limit
                // and closes; a client still sending may see the reset first.
                match r {
                    Ok(r) if r.status() == 413 => stats.oversize_413.fetch_add(1, Relaxed),
                    Err(e) if e.is_request() || e.is_body() => {
                        stats.oversize_reset.fetch_add(1, Relaxed)
                    }
                    _ => stats.oversize_other.fetch_add(1, Relaxed),
                };
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
    }
    // Reports.
    let start = Instant::now();
    let mut rows: Vec<(u64, u64, usize)> = Vec::new();
    let mut last_size = 0u64;
    while Instant::now() < end {
        tokio::time::sleep(
            Duration::from_secs(a.every).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        let rss = rss_kib(pid).ok_or("the log is gone")?;
        let fds = open_fds(pid).unwrap_or(0);
        let size = stats.size.load(Relaxed);
        let mut line = format!(
            "{:>5.1} min  rss {:>4} MiB  fds {:>4}  tree {:>9} (+{}/s)  p99 ms:",
            start.elapsed().as_secs_f64() / 60.0,
            rss / 1024,
            fds,
            size,
            (size - last_size) / a.every.max(1)
        );
        last_size = size;
        for (i, name) in OPS.iter().enumerate() {
            let mut l = stats.ops[i]
                .lat
                .lock()
                .map(|mut l| std::mem::take(&mut *l))
                .unwrap_or_default();
            line.push_str(&format!(" {name} {:.0}", percentile(&mut l, 0.99) * 1e3));
        }
        let failed: u64 = stats.ops.iter().map(|o| o.failed.load(Relaxed)).sum();
        line.push_str(&format!(
            "  failed {failed}  hostile: slowloris closed {}, stalled exports {}, 9 MB bodies 413 {}",
            stats.slowloris_closed.load(Relaxed),
            stats.stalled_exports.load(Relaxed),
            stats.oversize_413.load(Relaxed)
        ));
        println!("{line}");
        rows.push((start.elapsed().as_secs(), rss, fds));
    }
    for t in tasks {
        t.abort();
    }
    // Verdict: the last third of the run against the middle third (the
    // first third is warm-up: caches and the dedup table fill).
    let third = rows.len() / 3;
    let peak = |rows: &[(u64, u64, usize)]| {
        rows.iter()
            .fold((0u64, 0usize), |(r, f), row| (r.max(row.1), f.max(row.2)))
    };
    let (mid_rss, mid_fds) = peak(&rows[third..(2 * third).max(third + 1).min(rows.len())]);
    let (end_rss, end_fds) = peak(&rows[(2 * third).min(rows.len().saturating_sub(1))..]);
    let totals: Vec<String> = OPS
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let o = &stats.ops[i];
            format!(
                "{n} {} ok / {} busy (503) / {} failed",
                o.ok.load(Relaxed),
                o.busy.load(Relaxed),
                o.failed.load(Relaxed)
            )
        })
        .collect();
    println!("totals: {}", totals.join("; "));
    println!(
        "oversized bodies: {} answered 413, {} cut off while sending, {} otherwise",
        stats.oversize_413.load(Relaxed),
        stats.oversize_reset.load(Relaxed),
        stats.oversize_other.load(Relaxed)
    );
    let errs = stats.errors.lock().map(|e| e.clone()).unwrap_or_default();
    for e in &errs {
        println!("error: {e}");
    }
    let flat = end_rss <= mid_rss * 5 / 4 + 8 * 1024 && end_fds <= mid_fds * 5 / 4 + 16;
    println!(
        "peak memory {} MiB in the middle third of the run, {} MiB in the last; peak descriptors {} and {}: {}",
        mid_rss / 1024,
        end_rss / 1024,
        mid_fds,
        end_fds,
        if flat { "flat" } else { "GROWING" }
    );
    drop(own);
    if !flat || !errs.is_empty() {
        return Err("the soak found growth or failures (see above)".into());
    }
    Ok(())
}
