//! `vellum bench --query`: the query index under realistic cardinalities
//! (1,000 agents, 200 principals, 50 owners, 100 tools, 20 rules, 100,000
//! sessions; verdicts 80 % allow, 15 % deny, 4 % review, 1 % approve),
//! filled through the real HTTP path. Prints p50/p99 of each query of the
//! mix, stats, tail delivery, the indexer's lag at full append load, the
//! index's bytes per event, the log's memory, and batched appends/s with
//! and without the indexer (two logs, alternating phases, same run).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::loadgen::{percentile, rss_kib, start_log};

/// Cardinalities of the generated traffic.
const AGENTS: u32 = 1000;
const PRINCIPALS: u32 = 200;
const OWNERS: u32 = 50;
const TOOLS: u32 = 100;
const RULES: u32 = 20;
const SESSIONS: u32 = 100_000;

fn verdict(r: u32) -> &'static str {
    match r % 100 {
        0..=79 => "allow",
        80..=94 => "deny",
        95..=98 => "review",
        _ => "approve",
    }
}

/// A batch body of `n` events with realistic field values and fresh IDs.
pub(super) fn batch(rng: &mut StdRng, n: usize, run: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 520);
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        let v = verdict(rng.gen());
        let rule = if v == "allow" && rng.gen_bool(0.5) {
            String::new()
        } else {
            format!(",\"rule\":\"rule-{}\"", rng.gen_range(0..RULES))
        };
        out.extend_from_slice(
            format!(
                "{{\"event_id\":\"q{run}-{i}\",\"ts\":\"2026-06-20T14:07:31.120Z\",\"agent\":\"agent-{}\",\"principal\":\"svc-{}@corp.example\",\"owner\":\"team-{}\",\"tool\":\"tool.{}\",\"target\":\"host-{}.corp.example\",\"session\":\"sess-{}\",\"verdict\":\"{v}\"{rule},\"risk\":{},\"provenance\":\"{}\",\"args_hash\":\"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\",\"latency_ms\":{}}}",
                rng.gen_range(0..AGENTS),
                rng.gen_range(0..PRINCIPALS),
                rng.gen_range(0..OWNERS),
                rng.gen_range(0..TOOLS),
                rng.gen_range(0..200),
                rng.gen_range(0..SESSIONS),
                rng.gen_range(0..=100),
                if rng.gen_bool(0.1) { "untrusted" } else { "trusted" },
                rng.gen_range(1..2000),
            )
            .as_bytes(),
        );
    }
    out.push(b']');
    out
}

/// A log under load.
pub(super) struct Target {
    pub(super) url: String,
    pub(super) token: String,
    pub(super) pid: u32,
}

/// A metric's value from `/metrics` (`name` with its labels, if any).
pub(super) async fn metric<T: std::str::FromStr>(
    http: &reqwest::Client,
    url: &str,
    name: &str,
) -> Option<T> {
    let t = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    t.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Appends batches from `clients` tasks until `stop`; counts events acked.
pub(super) fn appenders(
    t: &Target,
    clients: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    seed: u64,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    (0..clients)
        .map(|c| {
            let (mut conn, token, stop, done) = (
                super::wire::Conn::new(&t.url)?,
                t.token.clone(),
                stop.clone(),
                done.clone(),
            );
            Ok(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed * 1000 + c as u64);
                let mut run = 0u64;
                while !stop.load(Relaxed) {
                    run += 1;
                    let body = batch(
                        &mut rng,
                        100,
                        seed * 1_000_000_000 + c as u64 * 10_000_000 + run,
                    );
                    match conn.post("/v1/events", &token, &body).await {
                        Ok(r) if (200..300).contains(&r.status) => {
                            done.fetch_add(100, Relaxed);
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }))
        })
        .collect()
}

/// Median per-second rate of appends to `t` over `secs`.
pub(super) async fn append_rate(t: &Target, secs: u64, seed: u64) -> Result<f64, String> {
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let tasks = appenders(t, 4, stop.clone(), done.clone(), seed)?;
    let mut rates = Vec::new();
    let mut last = 0;
    for s in 0..=secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = done.load(Relaxed);
        if s > 0 {
            rates.push((now - last) as f64);
        }
        last = now;
    }
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    Ok(super::loadgen::median(&mut rates))
}

async fn timed(http: &reqwest::Client, t: &Target, path: &str) -> Result<(f64, Value), String> {
    let s = Instant::now();
    let r = http
        .get(format!("{}{path}", t.url))
        .bearer_auth(&t.token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    let ms = s.elapsed().as_secs_f64() * 1e3;
    if !status.is_success() {
        return Err(format!(
            "{path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok((
        ms,
        serde_json::from_slice(&body).map_err(|e| e.to_string())?,
    ))
}

fn report(name: &str, mut v: Vec<f64>, goal_ms: f64) {
    let (p50, p99) = (percentile(&mut v, 0.5), percentile(&mut v, 0.99));
    println!(
        "  {name:<52} p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  ({} samples; goal p99 < {goal_ms} ms){}",
        v.len(),
        if p99 > goal_ms { "  MISSED" } else { "" }
    );
}

/// Runs the query benchmark on a log of `entries` events.
pub async fn run(entries: u64, data: Option<std::path::PathBuf>) -> Result<(), String> {
    println!(
        "plan: two logs (with and without the query index); fill the indexed one to {entries} events through HTTP (about {:.1} GB of disk), then the query mix, stats, tail delivery, and batched appends/s alternating between the two logs",
        entries as f64 * 1100.0 / 1e9
    );
    let (own, url, token) = start_log(data, "bench-query", &[])?;
    let with = Target {
        url,
        token,
        pid: own.child.id(),
    };
    let (own_b, url_b, token_b) = start_log(None, "bench-noindex", &["--query-index", "false"])?;
    let without = Target {
        url: url_b,
        token: token_b,
        pid: own_b.child.id(),
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(vellum_net::CLIENT_IDLE)
        .build()
        .map_err(|e| e.to_string())?;
    // Appends with and without the indexer, alternating, same run, while
    // both logs are about the same size.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..3 {
        a.push(append_rate(&with, 5, 100 + round).await?);
        b.push(append_rate(&without, 5, 200 + round).await?);
    }
    let (ma, mb) = (
        super::loadgen::median(&mut a),
        super::loadgen::median(&mut b),
    );
    println!(
        "batched appends/s (4 clients, 100-event batches, 3 alternating 5 s phases each): with the indexer {ma:.0}, without {mb:.0}: ratio {:.2} (goal >= 0.95){}",
        ma / mb,
        if ma / mb < 0.95 { "  MISSED" } else { "" }
    );
    // Fill, sampling the indexer's lag while appends run at full speed.
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    // The lag is sampled for at least LAG_SAMPLES seconds after a 3 s
    // warm-up, even when the ratio phases already filled the log.
    const LAG_SAMPLES: usize = 5;
    let start: u64 = metric(&http, &with.url, "vellum_tree_size")
        .await
        .unwrap_or(0);
    let tasks = appenders(&with, 4, stop.clone(), done.clone(), 1)?;
    let t0 = Instant::now();
    let mut lags: Vec<f64> = Vec::new();
    let mut last = (start, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let tree = metric(&http, &with.url, "vellum_tree_size")
            .await
            .unwrap_or(0);
        let indexed = metric(&http, &with.url, "vellum_indexed_size")
            .await
            .unwrap_or(0);
        let rate = (tree - last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (tree, Instant::now());
        if rate > 0.0 && t0.elapsed() > Duration::from_secs(3) {
            lags.push(tree.saturating_sub(indexed) as f64 / rate);
        }
        eprintln!(
            "  ... {tree} of {entries} entries ({rate:.0}/s), index lag {} entries",
            tree.saturating_sub(indexed)
        );
        if tree >= entries && lags.len() >= LAG_SAMPLES {
            break;
        }
    }
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let fill_rate = done.load(Relaxed) as f64 / t0.elapsed().as_secs_f64();
    loop {
        let tree = metric(&http, &with.url, "vellum_tree_size")
            .await
            .unwrap_or(0);
        if metric(&http, &with.url, "vellum_indexed_size")
            .await
            .unwrap_or(0)
            >= tree
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let size = metric(&http, &with.url, "vellum_tree_size")
        .await
        .unwrap_or(0);
    println!("filled {size} events at {fill_rate:.0}/s on average (4 clients, 100-event batches)");
    let mut lag_s = lags.clone();
    println!(
        "  indexer lag behind the durable log at full append load ({} one-second samples): p50 {:.2} s, p99 {:.2} s (goal < 1 s){}",
        lags.len(),
        percentile(&mut lag_s, 0.5),
        percentile(&mut lags, 0.99),
        if percentile(&mut lags, 0.99) > 1.0 { "  MISSED" } else { "" }
    );
    let bytes = metric(&http, &with.url, "vellum_index_bytes")
        .await
        .unwrap_or(0);
    let seg = metric(&http, &with.url, "vellum_index_segment_entries")
        .await
        .unwrap_or(1)
        .max(1);
    println!(
        "  index size: {:.1} bytes per event ({bytes} bytes for {seg} events in written segments; goal <= 100)",
        bytes as f64 / seg as f64
    );
    // Time points for windows: logged_at at 50 % and 60 % of the log.
    let at = |i: u64| format!("/v1/entries/{i}");
    let (_, e50) = timed(&http, &with, &at(size / 2)).await?;
    let (_, e60) = timed(&http, &with, &at(size * 6 / 10)).await?;
    let (t50, t60) = (
        e50["event"]["logged_at"].as_str().unwrap_or("").to_string(),
        e60["event"]["logged_at"].as_str().unwrap_or("").to_string(),
    );
    let mut rng = StdRng::seed_from_u64(42);
    let n = 200;
    println!(
        "query mix on {size} events, pages of 100 (latency seen by the client over loopback):"
    );
    type MakePath = Box<dyn Fn(&mut StdRng) -> String>;
    let mix: Vec<(&str, MakePath)> = vec![
        (
            "newest page, unfiltered",
            Box::new(|_| "/v1/events?limit=100".to_string()),
        ),
        (
            "one filter (agent)",
            Box::new(|r| {
                format!(
                    "/v1/events?limit=100&agent=agent-{}",
                    r.gen_range(0..AGENTS)
                )
            }),
        ),
        (
            "two filters (agent, verdict=deny)",
            Box::new(|r| {
                format!(
                    "/v1/events?limit=100&agent=agent-{}&verdict=deny",
                    r.gen_range(0..AGENTS)
                )
            }),
        ),
        (
            "rare intersection (principal, rule: ~0.015 %)",
            Box::new(|r| {
                format!(
                    "/v1/events?limit=100&principal=svc-{}@corp.example&rule=rule-{}",
                    r.gen_range(0..PRINCIPALS),
                    r.gen_range(0..RULES)
                )
            }),
        ),
        (
            "window of 10 % of the log + owner",
            Box::new(move |r| {
                format!(
                    "/v1/events?limit=100&owner=team-{}&from={t50}&to={t60}",
                    r.gen_range(0..OWNERS)
                )
            }),
        ),
        (
            "stats: 24 h by verdict, hourly",
            Box::new(|_| "/v1/stats?group_by=verdict&bucket=1h".to_string()),
        ),
        (
            "stats: 24 h top agents by denials",
            Box::new(|_| "/v1/stats?group_by=agent&verdict=deny&bucket=1h&top=10".to_string()),
        ),
    ];
    for (name, q) in &mix {
        let mut lat = Vec::new();
        for _ in 0..n {
            let (ms, _) = timed(&http, &with, &q(&mut rng)).await?;
            lat.push(ms);
        }
        let goal = if name.starts_with("stats") {
            50.0
        } else {
            10.0
        };
        report(name, lat, goal);
    }
    // Page 100 of a deep pagination.
    let mut lat = Vec::new();
    for s in 0..10 {
        let mut cursor = String::new();
        for page in 1..=100 {
            let path = format!("/v1/events?limit=100&verdict=allow&owner=team-{s}{cursor}");
            let (ms, v) = timed(&http, &with, &path).await?;
            if page == 100 {
                lat.push(ms);
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
    }
    report(
        "page 100 of a deep pagination (owner, verdict=allow)",
        lat,
        10.0,
    );
    // Tail delivery: append acknowledged -> event received.
    let mut lat = Vec::new();
    {
        let resp = http
            .get(format!("{}/v1/events/tail?agent=bench-tail", with.url))
            .bearer_auth(&with.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let mut resp = resp;
        let mut buf = Vec::new();
        for i in 0..100 {
            let body = json!({"ts":"2026-06-20T14:07:31.120Z","agent":"bench-tail","principal":"p","owner":"o","tool":"t","verdict":"deny","event_id":format!("tail-{}-{i}", std::process::id())});
            let r = http
                .post(format!("{}/v1/events", with.url))
                .bearer_auth(&with.token)
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let _ = r.bytes().await;
            let acked = Instant::now();
            loop {
                if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let frame: Vec<u8> = buf.drain(..end + 2).collect();
                    if frame.windows(12).any(|w| w == b"event: entry") {
                        lat.push(acked.elapsed().as_secs_f64() * 1e3);
                        break;
                    }
                    continue;
                }
                match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
                    Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
                    _ => return Err("the tail stopped delivering".into()),
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(5..50))).await;
        }
    }
    report(
        "tail delivery: append acknowledged -> event received",
        lat,
        100.0,
    );
    if let Some(kib) = rss_kib(with.pid) {
        println!(
            "  resident memory of the indexed log at {size} events: {:.0} MiB",
            kib as f64 / 1024.0
        );
    }
    let _ = without.pid;
    drop(own_b);
    drop(own);
    Ok(())
}
