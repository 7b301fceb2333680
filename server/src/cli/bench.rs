//! `vellum bench`: a load generator that drives a real log over HTTP on
//! loopback and prints medians. By default it starts its own log (this
//! same binary) in a temporary directory, so that it can read the log's
//! resident memory too.
//!
//! Phases: durable appends/s with batches and with single-event requests,
//! append-to-checkpoint latency, inclusion proofs/s on a large log, and
//! resident memory as the log grows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::loadgen::{median, percentile, rss_kib, start_log, Bodies};
use super::wire::Conn;

/// Flags of `vellum bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Log to drive, as http://HOST:PORT (the load generator speaks plain
    /// HTTP/1.1, to put no TLS cost on the measured machine); when absent,
    /// start one in a temporary directory.
    #[arg(long)]
    pub url: Option<String>,
    /// Token for --url (append scope).
    #[arg(long, env = "VELLUM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The long run of the README's figures: 10 s phases, 200 latency
    /// samples, proofs at 1M entries, memory at 1M and 10M (about 7 GB of
    /// disk, several minutes). Without it: a quick run of about a minute.
    #[arg(long)]
    pub full: bool,
    /// Seconds per throughput phase [default: 5, or 10 with --full].
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Concurrent clients for the batched phase.
    #[arg(long, default_value_t = 4)]
    pub batch_clients: usize,
    /// Events per request in the batched phase.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent clients for single-event requests and proofs.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Approximate size in bytes of each generated event.
    #[arg(long, default_value_t = 500)]
    pub event_bytes: usize,
    /// Log size to reach before measuring proofs/s [default: 200000, or
    /// 1000000 with --full].
    #[arg(long)]
    pub proof_entries: Option<u64>,
    /// Measure inclusion proofs only (no append phases, no limit): on the
    /// log of --url or --data as it is, filled first if it is smaller than
    /// --proof-entries. Serving one data directory with two builds of the
    /// log and pointing this at each compares their proofs on the same tree.
    #[arg(long)]
    pub proofs_only: bool,
    /// Log sizes at which to read the log's resident memory (own log only)
    /// [default: none besides the proof size, or 1000000,10000000 with --full].
    #[arg(long, value_delimiter = ',')]
    pub rss_at: Option<Vec<u64>>,
    /// Latency samples for append-to-checkpoint [default: 30, or 200 with --full].
    #[arg(long)]
    pub latency_samples: Option<usize>,
    /// Benchmark the query index instead: realistic cardinalities, the
    /// query mix, stats, tail delivery, index lag and size, appends with
    /// and without the indexer.
    #[arg(long)]
    pub query: bool,
    /// Events for --query [default: 1000000, or 10000000 with --full].
    #[arg(long)]
    pub query_entries: Option<u64>,
    /// Benchmark the SIEM sinks instead: delivery throughput per sink type
    /// to a real rsyslogd and an HTTP receiver (HEC, _bulk) and to files,
    /// appends/s with three sinks against none, and lag at 20,000
    /// appends/s.
    #[arg(long)]
    pub sinks: bool,
    /// Events for the --sinks delivery phase [default: 200000, or 1000000
    /// with --full].
    #[arg(long)]
    pub sink_entries: Option<u64>,
    /// The sinks of the --sinks append and lag phases (syslog, hec, files).
    #[arg(long, value_delimiter = ',', default_value = "syslog,hec,files")]
    pub sink_set: Vec<String>,
    /// Data directory for the started log [default: a new temporary one].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Compare storage backends in one run: `s3` measures the embedded
    /// backend and then the S3 one (writer, and proofs from a read-only
    /// replica), and prints both with their ratios.
    #[arg(long)]
    pub storage: Option<String>,
    /// S3 endpoint for --storage s3 (credentials from AWS_ACCESS_KEY_ID
    /// and AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "VELLUM_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Bucket for --storage s3.
    #[arg(long, env = "VELLUM_S3_BUCKET", default_value = "vellum")]
    pub s3_bucket: String,
}

/// Runs `clients` loops of `op` for `secs` seconds; returns the median of
/// per-second completed-unit counts (the first second is warm-up).
pub(crate) async fn per_second<F, Fut>(
    clients: usize,
    secs: u64,
    op: F,
) -> Result<(f64, u64), String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u64, String>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let op = Arc::new(op);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (done, stop, op) = (done.clone(), stop.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Relaxed) {
                let n = op(c).await?;
                done.fetch_add(n, Relaxed);
            }
            Ok::<(), String>(())
        }));
    }
    let mut samples = Vec::new();
    let mut last = 0;
    for s in 0..=secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = done.load(Relaxed);
        if s > 0 {
            samples.push((now - last) as f64);
        }
        last = now;
    }
    stop.store(true, Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok((median(&mut samples), done.load(Relaxed)))
}

pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<u64, String> {
    let r = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() == 503 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return Ok(0);
    }
    if !r.status().is_success() {
        return Err(format!(
            "append: HTTP {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ));
    }
    let text = r.bytes().await.map_err(|e| e.to_string())?;
    Ok(text.windows(8).filter(|w| w == b"\"index\":").count() as u64)
}

/// Appends/s (median) of `clients` loops posting `bodies` to `url`, each
/// on its own keep-alive connection of the lean client ([`super::wire`]).
pub(crate) async fn post_loops(
    url: &str,
    token: &str,
    clients: usize,
    secs: u64,
    bodies: &Bodies,
) -> Result<f64, String> {
    let conns = (0..clients)
        .map(|_| Conn::new(url).map(tokio::sync::Mutex::new))
        .collect::<Result<Vec<_>, _>>()?;
    let (conns, token, bodies) = (Arc::new(conns), Arc::<str>::from(token), bodies.clone());
    let (rate, _) = per_second(clients, secs, move |c| {
        let (conns, token, body) = (conns.clone(), token.clone(), bodies.body());
        async move {
            let mut conn = conns[c].lock().await;
            post_on(&mut conn, &token, &body).await
        }
    })
    .await?;
    Ok(rate)
}

/// One append on `conn`; returns the entries logged (0 after a 503, once
/// a short pause is over).
pub(crate) async fn post_on(conn: &mut Conn, token: &str, body: &[u8]) -> Result<u64, String> {
    let r = conn.post("/v1/events", token, body).await?;
    if r.status == 503 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return Ok(0);
    }
    if !(200..300).contains(&r.status) {
        return Err(format!(
            "append: HTTP {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    Ok(r.body.windows(8).filter(|w| w == b"\"index\":").count() as u64)
}

pub(crate) async fn checkpoint_size(http: &reqwest::Client, url: &str) -> Result<u64, String> {
    let t = http
        .get(format!("{url}/checkpoint"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    t.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| format!("bad checkpoint: {t:?}"))
}

pub(crate) async fn fill_to(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    target: u64,
    bodies: &Bodies,
    clients: usize,
) -> Result<(), String> {
    let mut last_print = Instant::now();
    loop {
        let size = checkpoint_size(http, url).await?;
        if size >= target {
            return Ok(());
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  ... {size} of {target} entries ({:.0}%)",
                size as f64 * 100.0 / target.max(1) as f64
            );
            last_print = Instant::now();
        }
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (mut conn, t, b) = (Conn::new(url)?, token.to_string(), bodies.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    post_on(&mut conn, &t, &b.body()).await?;
                }
                Ok::<(), String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
    }
}

/// Runs the benchmark.
pub fn run(a: BenchArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run_async(a))
}

/// Bytes of disk per entry of ~640 bytes: its bundle bytes, its share of
/// the hash tiles (stored with their upper rows) and of the dedup runs.
const DISK_PER_ENTRY: u64 = 700;

async fn run_async(mut a: BenchArgs) -> Result<(), String> {
    if a.query {
        let n = a
            .query_entries
            .unwrap_or(if a.full { 10_000_000 } else { 1_000_000 });
        return super::bench_query::run(n, a.data.clone()).await;
    }
    if a.sinks {
        let n = a
            .sink_entries
            .unwrap_or(if a.full { 1_000_000 } else { 200_000 });
        let secs = a.seconds.unwrap_or(if a.full { 10 } else { 5 });
        return super::bench_sinks::run(n, secs, a.data.clone(), a.sink_set.clone()).await;
    }
    if let Some(st) = &a.storage {
        if st != "s3" {
            return Err(format!(
                "--storage {st:?}: only s3 is compared (with embedded)"
            ));
        }
        return super::bench_storage::run(&a).await;
    }
    let seconds = a.seconds.unwrap_or(if a.full { 10 } else { 5 });
    let proof_entries = a
        .proof_entries
        .unwrap_or(if a.full { 1_000_000 } else { 200_000 });
    let rss_at = a.rss_at.take().unwrap_or(if a.full {
        vec![1_000_000, 10_000_000]
    } else {
        vec![]
    });
    let latency_samples = a.latency_samples.unwrap_or(if a.full { 200 } else { 30 });
    let largest = rss_at
        .iter()
        .copied()
        .chain([proof_entries])
        .max()
        .unwrap_or(0);
    println!(
        "plan: {}fill to {} and inclusion proofs {seconds} s{}; needs about {:.1} GB of disk{}",
        if a.proofs_only {
            String::new()
        } else {
            format!("batched appends {seconds} s; single-event appends {seconds} s; append -> checkpoint and append -> receipt latency, {latency_samples} samples each; ")
        },
        proof_entries,
        if rss_at.is_empty() {
            String::new()
        } else {
            format!(
                "; memory at {}",
                rss_at
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        (largest * DISK_PER_ENTRY) as f64 / 1e9,
        if a.url.is_none() {
            format!(
                " in {}",
                a.data.clone().unwrap_or_else(std::env::temp_dir).display()
            )
        } else {
            String::new()
        }
    );
    let (own, url, token) = match &a.url {
        Some(u) => (
            None,
            u.trim_end_matches('/').to_string(),
            a.token
                .clone()
                .ok_or("--url needs --token or VELLUM_TOKEN")?,
        ),
        None => {
            let (own, url, token) = start_log(a.data.clone(), "bench", &[])?;
            (Some(own), url, token)
        }
    };
    let pid = own.as_ref().map(|o| o.child.id());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(vellum_net::CLIENT_IDLE)
        .build()
        .map_err(|e| e.to_string())?;
    let batch_bodies = Bodies::new(a.batch, a.event_bytes, true);
    let single_bodies = Bodies::new(1, a.event_bytes, false);
    println!(
        "vellum bench: {url}, {} s per phase, events of ~{} bytes, each with its own event_id",
        seconds,
        single_bodies.body().len()
    );

    if !a.proofs_only {
        appends_and_limit(
            &http,
            &url,
            &token,
            &a,
            seconds,
            latency_samples,
            own.is_some(),
        )
        .await?;
    }
    proof_phases(
        &http,
        &url,
        &token,
        &a,
        &batch_bodies,
        seconds,
        proof_entries,
        pid,
        &rss_at,
    )
    .await?;
    drop(own);
    if !a.proofs_only {
        verifier_figures(if a.full { 1_000_000 } else { 200_000 })?;
    }
    Ok(())
}

/// The verifier's figures (`vellum-verify bench`: `--full` verification
/// on one core and two threads against raw SHA-256), from the
/// `vellum-verify` built next to this binary.
fn verifier_figures(entries: u64) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let verify = exe.with_file_name("vellum-verify");
    if !verify.exists() {
        println!(
            "verifier: no vellum-verify next to {} (cargo build --release -p vellum-verify), so no verifier figures; run `vellum-verify bench` for them",
            exe.display()
        );
        return Ok(());
    }
    let out = std::process::Command::new(&verify)
        .args(["bench", "--entries", &entries.to_string(), "--runs", "3"])
        .output()
        .map_err(|e| format!("running {}: {e}", verify.display()))?;
    if !out.status.success() {
        // Its own words say why (its progress lines go to stderr too).
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(format!(
            "{} bench failed ({}): {}",
            verify.display(),
            out.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    println!("verifier ({} bench):", verify.display());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("  {}", line.trim_start());
    }
    Ok(())
}

/// Phases 1-3 with their in-process limit, printed.
async fn appends_and_limit(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    a: &BenchArgs,
    seconds: u64,
    latency_samples: usize,
    own: bool,
) -> Result<(), String> {
    let m = appends(http, url, token, a, seconds, latency_samples).await?;
    println!(
        "durable appends/s, {}-event batches, {} clients: median {:.0}",
        a.batch, a.batch_clients, m.batched
    );
    println!(
        "durable appends/s, single-event requests, {} clients: median {:.0}",
        a.clients, m.single
    );
    println!(
        "append ack -> in a published checkpoint: p50 {:.0} ms, p99 {:.0} ms ({} samples)",
        m.p50 * 1e3,
        m.p99 * 1e3,
        m.samples
    );
    if own {
        // The log this bench started runs the default 1 s interval.
        println!(
            "  p99 = {:.2} x the checkpoint interval (1 s; goal <= 1.1)",
            m.p99
        );
    }
    println!(
        "append with ?receipt=true -> receipt, one client: p50 {:.0} ms, p99 {:.0} ms ({} samples; goal about 100-200 ms, not up to the interval)",
        m.receipt.0 * 1e3,
        m.receipt.1 * 1e3,
        m.samples
    );

    // The in-process limit: the same work without HTTP, in the same run,
    // while the served log is idle.
    {
        let dir = std::env::temp_dir().join(format!("vellum-bench-limit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The served log's indexer is still catching up, and the kernel
        // still writing back what the phases wrote: the limit's fsyncs
        // would wait behind both (ext4 commits other files' new blocks
        // with each journal commit).
        idle_index(http, url).await;
        writeback();
        let batched_limit = super::bench_inprocess::limit(
            &dir.join("batched"),
            a.batch_clients,
            a.batch,
            a.event_bytes,
            seconds,
        )
        .await;
        let single_limit = super::bench_inprocess::limit(
            &dir.join("single"),
            a.clients,
            1,
            a.event_bytes,
            seconds,
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        let (bl, sl) = (batched_limit?, single_limit?);
        println!(
            "in-process limit (same bodies sealed and committed durably by the server's code, no HTTP): {}-event batches {:.0}/s (served: {:.2} of it), single events {:.0}/s (served: {:.2} of it)",
            a.batch,
            bl,
            m.batched / bl.max(1e-9),
            sl,
            m.single / sl.max(1e-9)
        );
    }

    Ok(())
}

/// Phase 4, proofs on a large log and memory as it grows: at each target
/// size (or the size the earlier phases already reached), serve random
/// proofs, then read the log's resident memory. Figures name the actual
/// size.
#[allow(clippy::too_many_arguments)]
async fn proof_phases(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    a: &BenchArgs,
    batch_bodies: &Bodies,
    seconds: u64,
    proof_entries: u64,
    pid: Option<u32>,
    rss_at: &[u64],
) -> Result<(), String> {
    let mut targets: Vec<u64> = vec![proof_entries];
    if pid.is_some() {
        targets.extend(rss_at.iter().copied());
    }
    targets.sort();
    targets.dedup();
    for target in targets {
        eprintln!("filling the log to {target} entries ...");
        let t0 = Instant::now();
        fill_to(http, url, token, target, batch_bodies, a.batch_clients).await?;
        eprintln!("  reached in {:.0} s", t0.elapsed().as_secs_f64());
        let size = checkpoint_size(http, url).await?;
        writeback();
        let proofs = proofs_per_second(url, size, a.clients, seconds).await?;
        println!(
            "inclusion proofs/s on a log of {size} entries, {} clients: median {:.0}",
            a.clients, proofs
        );
        if let Some(kib) = pid.and_then(rss_kib) {
            println!(
                "resident memory of the log at {size} entries, after appends and proofs: {:.0} MiB",
                kib as f64 / 1024.0
            );
        }
    }
    Ok(())
}

/// Waits (up to 5 minutes) until the log at `url` has indexed all it holds.
pub(crate) async fn idle_index(http: &reqwest::Client, url: &str) {
    use super::bench_query::metric;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    while Instant::now() < deadline {
        let tree: Option<u64> = metric(http, url, "vellum_tree_size").await;
        let indexed: Option<u64> = metric(http, url, "vellum_indexed_size").await;
        match (tree, indexed) {
            (Some(t), Some(i)) if i < t => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {
                if start.elapsed() > Duration::from_secs(1) {
                    eprintln!(
                        "  (waited {:.0} s for the log's index to catch up)",
                        start.elapsed().as_secs_f64()
                    );
                }
                return;
            }
        }
    }
    eprintln!("the log's index did not catch up within 5 minutes; measuring anyway");
}

/// Writes back every dirty page of the machine (sync(2)), so a phase does
/// not pay for the writes of the one before it.
pub(crate) fn writeback() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Inclusion proofs/s (median) of `clients` loops asking `url` for proofs
/// of random entries against tree size `size`, for `secs` seconds.
pub(crate) async fn proofs_per_second(
    url: &str,
    size: u64,
    clients: usize,
    secs: u64,
) -> Result<f64, String> {
    let conns = (0..clients)
        .map(|_| Conn::new(url).map(tokio::sync::Mutex::new))
        .collect::<Result<Vec<_>, _>>()?;
    let conns = Arc::new(conns);
    let (proofs, _) = per_second(clients, secs, move |c| {
        let conns = conns.clone();
        async move {
            let i = (c as u64 * 2_654_435_761 + rand::random::<u32>() as u64) % size;
            let mut conn = conns[c].lock().await;
            let r = conn
                .get(&format!("/v1/proof/inclusion?index={i}&size={size}"))
                .await?;
            if !(200..300).contains(&r.status) {
                return Err(format!("proof: HTTP {}", r.status));
            }
            Ok(1)
        }
    })
    .await?;
    Ok(proofs)
}

/// The append phases' figures.
pub(crate) struct AppendFigures {
    /// Durable appends/s with batches (median).
    pub batched: f64,
    /// Durable appends/s with single-event requests (median).
    pub single: f64,
    /// Append with `?receipt=true` -> response with the receipt (one
    /// client, same samples as `p50`): p50 and p99, seconds.
    pub receipt: (f64, f64),
    /// Append ack -> published checkpoint, p50 and p99, seconds.
    pub p50: f64,
    /// See `p50`.
    pub p99: f64,
    /// Latency samples taken.
    pub samples: usize,
}

/// POSTs `body` with `token`: the status, when the response's head
/// arrived, and its JSON body.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<(reqwest::StatusCode, Instant, serde_json::Value), String> {
    let r = http
        .post(url)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let at = Instant::now();
    let status = r.status();
    let v = r.json().await.map_err(|e| e.to_string())?;
    Ok((status, at, v))
}

/// Phases 1-3: batched appends/s, single-event appends/s, and append ->
/// published checkpoint latency under a background load.
pub(crate) async fn appends(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    a: &BenchArgs,
    seconds: u64,
    latency_samples: usize,
) -> Result<AppendFigures, String> {
    let (url, token) = (url.to_string(), token.to_string());
    let batch_bodies = Bodies::new(a.batch, a.event_bytes, true);
    let single_bodies = Bodies::new(1, a.event_bytes, false);
    let ev_url = format!("{url}/v1/events");
    // 1. Batched appends.
    let batched = post_loops(&url, &token, a.batch_clients, seconds, &batch_bodies).await?;
    // 2. Single-event requests.
    let single = post_loops(&url, &token, a.clients, seconds, &single_bodies).await?;

    // 3. Append acknowledged -> covered by a published checkpoint, under a
    // background load of batched appends.
    let stop = Arc::new(AtomicBool::new(false));
    let mut bg = Vec::new();
    for _ in 0..2 {
        let (h, u, t, stop, b) = (
            http.clone(),
            ev_url.clone(),
            token.clone(),
            stop.clone(),
            batch_bodies.clone(),
        );
        bg.push(tokio::spawn(async move {
            while !stop.load(Relaxed) {
                post(&h, &u, &t, b.body()).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<(), String>(())
        }));
    }
    let mut lat = Vec::new();
    for _ in 0..latency_samples {
        let (_, acked, v) = post_json(http, &ev_url, &token, single_bodies.body()).await?;
        let index = v["entries"][0]["index"]
            .as_u64()
            .ok_or("no index in append response")?;
        loop {
            if checkpoint_size(http, &url).await? > index {
                lat.push(acked.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Start the next sample at a random point of the checkpoint cycle.
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 1000)).await;
    }
    // 3b. One client appending with ?receipt=true, under the same load:
    // acknowledged -> the response carries the receipt (an early
    // checkpoint for a waiting receipt, at most one every 100 ms).
    let mut receipts = Vec::new();
    let receipt_url = format!("{ev_url}?receipt=true");
    for _ in 0..latency_samples {
        let sent = Instant::now();
        let (status, _, v) = post_json(http, &receipt_url, &token, single_bodies.body()).await?;
        let receipt = v["entries"][0]["receipt"].as_str().unwrap_or_default();
        if !status.is_success() || !receipt.starts_with("c2sp.org/tlog-proof@v1\n") {
            return Err(format!(
                "append with ?receipt=true: {status}, no tlog-proof receipt in the response"
            ));
        }
        receipts.push(sent.elapsed().as_secs_f64());
        // Start the next one at a random point of the early-checkpoint cycle.
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 200)).await;
    }
    stop.store(true, Relaxed);
    for t in bg {
        t.await.map_err(|e| e.to_string())??;
    }
    let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
    let receipt = (
        percentile(&mut receipts, 0.5),
        percentile(&mut receipts, 0.99),
    );
    Ok(AppendFigures {
        batched,
        single,
        p50,
        p99,
        samples: lat.len(),
        receipt,
    })
}
