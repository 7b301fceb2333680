//! `vellum bench --sinks`: SIEM delivery on loopback. Receivers: a real
//! rsyslogd (the system's, started here with its own configuration; TCP
//! with octet counting, written to a file), an in-process HTTP receiver
//! answering as Splunk HEC and as Elasticsearch `_bulk` do, and the file
//! sink's own directory.
//!
//! Phases: (1) delivery throughput per sink type: a log filled once, then
//! started with one new sink at a time, timed until its cursor reaches the
//! end; (2) batched appends/s with three sinks (rsyslog TCP, HEC, files)
//! against a log with none, alternating phases, same run, as a ratio;
//! (3) end-to-end lag at a paced 20,000 appends/s: append to arrival at
//! the HEC receiver (from each envelope's `time`, the entry's
//! `logged_at`), and every sink's lag in entries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::bench_query::{append_rate, batch, Target};
use super::loadgen::{free_port, median, percentile, start_log};

/// What the in-process HTTP receiver has seen.
#[derive(Default)]
struct Received {
    /// Events received, all modes.
    events: AtomicU64,
    /// Append-to-arrival latencies (ms) from HEC envelopes, while sampling.
    lag_ms: Mutex<Vec<f64>>,
    sampling: AtomicBool,
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

/// The `time` of a HEC envelope (the sink writes it first), without
/// parsing the event.
fn envelope_time(line: &[u8]) -> Option<f64> {
    let head = &line[..line.len().min(512)];
    let at = head.windows(7).position(|w| w == b"\"time\":")? + 7;
    let rest = &head[at..];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Starts the HTTP receiver on a free port; returns its base URL.
async fn http_receiver(rx: Arc<Received>) -> Result<String, String> {
    use axum::body::Bytes;
    use axum::routing::post;
    let r1 = rx.clone();
    let r2 = rx.clone();
    let app = axum::Router::new()
        .route(
            "/services/collector/event",
            post(move |body: Bytes| {
                let rx = r1.clone();
                async move {
                    let lines = body.split(|b| *b == b'\n').filter(|l| !l.is_empty());
                    let mut n = 0;
                    if rx.sampling.load(Relaxed) {
                        let now = now_ms();
                        let mut lag = rx.lag_ms.lock().unwrap_or_else(|p| p.into_inner());
                        for l in lines {
                            n += 1;
                            if let Some(t) = envelope_time(l) {
                                lag.push(now - t * 1e3);
                            }
                        }
                    } else {
                        n = lines.count();
                    }
                    rx.events.fetch_add(n as u64, Relaxed);
                    axum::Json(serde_json::json!({"text": "Success", "code": 0}))
                }
            }),
        )
        .route(
            "/_bulk",
            post(move |body: Bytes| {
                let rx = r2.clone();
                async move {
                    let n = body
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .count()
                        / 2;
                    rx.events.fetch_add(n as u64, Relaxed);
                    // The answer Elasticsearch gives: one item per action.
                    let mut out = String::with_capacity(40 + n * 32);
                    out.push_str("{\"took\":1,\"errors\":false,\"items\":[");
                    for i in 0..n {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str("{\"create\":{\"status\":201,\"result\":\"created\"}}");
                    }
                    out.push_str("]}");
                    ([("content-type", "application/json")], out)
                }
            }),
        );
    // On a thread and runtime of its own, at nice +10 like rsyslogd: the
    // receivers stand in for other machines, so they yield the CPU to the
    // log and the load generator.
    let (tx, rx_addr) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bench-receiver".into())
        .spawn(move || {
            nice(10);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let l = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(l.local_addr().map_err(|e| e.to_string()));
                let _ = axum::serve(l, app).await;
            });
        })
        .map_err(|e| e.to_string())?;
    let addr = rx_addr
        .recv()
        .map_err(|_| "the HTTP receiver did not start".to_string())??;
    Ok(format!("http://{addr}"))
}

/// Sets the calling thread's nice value (Linux: per thread); best effort.
fn nice(n: i32) {
    // SAFETY: setpriority on the calling thread's own ID.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, n);
    }
}

/// A real rsyslogd with one octet-counting TCP input written to a file.
struct Rsyslogd {
    child: Child,
    port: u16,
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_rsyslogd(dir: &Path) -> Result<Rsyslogd, String> {
    let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("rsyslogd is not installed (Debian: apt-get install rsyslog); the syslog phase needs it")?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let port = free_port()?;
    let d = dir.display();
    let conf = format!(
        "global(workDirectory=\"{d}\" maxMessageSize=\"256k\")\n\
         module(load=\"imptcp\")\n\
         template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
         ruleset(name=\"r\") {{ action(type=\"omfile\" file=\"{d}/tcp.log\" template=\"raw\" asyncWriting=\"on\" ioBufferSize=\"1m\" flushOnTXEnd=\"off\") }}\n\
         input(type=\"imptcp\" port=\"{port}\" address=\"127.0.0.1\" ruleset=\"r\" SupportOctetCountedFraming=\"on\")\n"
    );
    std::fs::write(dir.join("rsyslog.conf"), conf).map_err(|e| e.to_string())?;
    let err = std::fs::File::create(dir.join("rsyslogd.log")).map_err(|e| e.to_string())?;
    // At nice +10: it stands in for a syslog server on another machine.
    let child = Command::new("nice")
        .args(["-n", "10", bin])
        .arg("-n")
        .arg("-f")
        .arg(dir.join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting rsyslogd: {e}"))?;
    let r = Rsyslogd { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "rsyslogd did not listen; see {}",
                dir.join("rsyslogd.log").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(r)
}

/// A metric's value (labels included in `name`).
async fn gauge(http: &reqwest::Client, url: &str, name: &str) -> Option<f64> {
    super::bench_query::metric(http, url, name).await
}

/// Waits until the three sinks have delivered the whole log.
async fn caught_up(http: &reqwest::Client, url: &str, set: &[String]) -> Result<(), String> {
    let total = tree_size(http, url).await?;
    for s in set {
        let key = format!("vellum_sink_cursor{{sink=\"{s}\"}}");
        let deadline = Instant::now() + Duration::from_secs(600);
        while gauge(http, url, &key).await.unwrap_or(0.0) < total as f64 {
            if Instant::now() > deadline {
                return Err(format!("sink {s}: not caught up within 600 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// The log's durable size (`vellum_tree_size`).
async fn tree_size(http: &reqwest::Client, url: &str) -> Result<u64, String> {
    gauge(http, url, "vellum_tree_size")
        .await
        .map(|v| v as u64)
        .ok_or_else(|| format!("{url}/metrics has no vellum_tree_size"))
}

/// The `[[sink]]` table of one sink type, named `name`.
fn sink_toml(kind: &str, name: &str, syslog_port: u16, http: &str, files: &Path) -> String {
    let body = match kind {
        "syslog-tcp" => format!(
            "type = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{syslog_port}\""
        ),
        "http-hec" => format!(
            "type = \"http\"\nurl = \"{http}\"\nmode = \"hec\"\nformat = \"ecs\"\nhec_token_file = \"{}\"",
            files.join("hec.token").display()
        ),
        "http-bulk" => {
            format!("type = \"http\"\nurl = \"{http}/_bulk\"\nmode = \"bulk\"\nformat = \"ecs\"")
        }
        _ => format!(
            "type = \"file\"\ndir = \"{}\"",
            files.join(name).display()
        ),
    };
    format!("[[sink]]\nname = \"{name}\"\n{body}\n\n")
}

/// Fills a log with `n` events through HTTP (4 clients, 100-event batches).
async fn fill(t: &Target, n: u64) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks = super::bench_query::appenders(t, 4, stop.clone(), done.clone(), 7)?;
    while done.load(Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Stops a log and waits for it to exit, so its data directory can be
/// opened again.
fn stop(mut own: super::loadgen::OwnLog) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(own.child.id() as i32, libc::SIGTERM) };
    let _ = own.child.wait();
}

/// Runs the sinks benchmark; `entries` events for the throughput phase,
/// `seconds` per append phase.
pub async fn run(
    entries: u64,
    seconds: u64,
    data: Option<PathBuf>,
    set: Vec<String>,
) -> Result<(), String> {
    let base = data.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("vellum-bench-sinks-{}", std::process::id()))
    });
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    println!(
        "plan: fill a log to {entries} events; deliver them to each sink type alone (rsyslog TCP, HEC, _bulk, files); appends/s with three sinks vs none, {seconds} s phases x 3, alternating; lag at 20,000 appends/s; in {}",
        base.display()
    );
    let result = run_in(&base, entries, seconds, &set).await;
    let _ = std::fs::remove_dir_all(&base);
    result
}

async fn run_in(base: &Path, entries: u64, seconds: u64, set: &[String]) -> Result<(), String> {
    for s in set {
        if !["syslog", "hec", "files"].contains(&s.as_str()) {
            return Err(format!("--sink-set {s:?}: want syslog, hec or files"));
        }
    }
    let files = base.join("sink-files");
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    let tok = files.join("hec.token");
    let _ = std::fs::remove_file(&tok);
    crate::secrets::create_secret(&tok, b"00000000-0000-0000-0000-000000000000\n")
        .map_err(|e| e.to_string())?;
    // rsyslogd stands in for a syslog server on another machine: its
    // output goes to memory (/dev/shm) where there is one, so that its
    // writes do not compete with the log's own fsyncs on this disk.
    let shm = Path::new("/dev/shm");
    let rs_dir = if shm.is_dir() {
        shm.join(format!("vellum-bench-rsyslog-{}", std::process::id()))
    } else {
        base.join("rsyslog")
    };
    let rs = start_rsyslogd(&rs_dir)?;
    let result = run_with(base, entries, seconds, set, &rs, &rs_dir).await;
    drop(rs);
    let _ = std::fs::remove_dir_all(&rs_dir);
    result
}

async fn run_with(
    base: &Path,
    entries: u64,
    seconds: u64,
    set: &[String],
    rs: &Rsyslogd,
    rs_dir: &Path,
) -> Result<(), String> {
    let files = base.join("sink-files");
    let rx = Arc::new(Received::default());
    let recv = http_receiver(rx.clone()).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())?;

    // 1. Delivery throughput, one sink type at a time on one filled log.
    let data = base.join("filled");
    let (own, url, token) = start_log(Some(data.clone()), "bench-sinks-fill", &[])?;
    let t = Target {
        url,
        token,
        pid: own.child.id(),
    };
    let started = Instant::now();
    fill(&t, entries).await?;
    let n = tree_size(&http, &t.url).await?;
    println!(
        "filled {n} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    stop(own);
    println!(
        "delivery throughput, one sink at a time, from the log's beginning (default batch 500):"
    );
    let mut rates = Vec::new();
    for kind in ["syslog-tcp", "http-hec", "http-bulk", "file"] {
        let name = format!("t-{kind}");
        let conf = base.join(format!("{name}.toml"));
        std::fs::write(&conf, sink_toml(kind, &name, rs.port, &recv, &files))
            .map_err(|e| e.to_string())?;
        let c = conf.display().to_string();
        let (own, url, _) = start_log(Some(data.clone()), "bench-sinks-one", &["--config", &c])?;
        let key = format!("vellum_sink_cursor{{sink=\"{name}\"}}");
        let s = Instant::now();
        let deadline = s + Duration::from_secs(600);
        loop {
            if gauge(&http, &url, &key).await.unwrap_or(0.0) >= n as f64 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{kind}: not caught up within 600 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = s.elapsed().as_secs_f64();
        let rate = n as f64 / secs;
        println!(
            "  {kind:<12} {rate:>9.0} events/s  ({n} in {secs:.2} s; goal >= 50000){}",
            if rate < 50_000.0 { "  MISSED" } else { "" }
        );
        rates.push((kind, rate));
        stop(own);
    }
    drop(rates);

    // 2. Appends with three sinks against none, alternating, same run.
    let conf = base.join("three.toml");
    let mut three = String::new();
    for (kind, name) in [
        ("syslog-tcp", "syslog"),
        ("http-hec", "hec"),
        ("file", "files"),
    ]
    .into_iter()
    .filter(|(_, n)| set.iter().any(|s| s == n))
    {
        three.push_str(&sink_toml(kind, name, rs.port, &recv, &files));
    }
    std::fs::write(&conf, three).map_err(|e| e.to_string())?;
    let c = conf.display().to_string();
    let (own_s, url_s, token_s) = start_log(
        Some(base.join("with-sinks")),
        "bench-sinks-3",
        &["--config", &c],
    )?;
    let with = Target {
        url: url_s,
        token: token_s,
        pid: own_s.child.id(),
    };
    let (own_n, url_n, token_n) = start_log(Some(base.join("no-sinks")), "bench-sinks-0", &[])?;
    let without = Target {
        url: url_n,
        token: token_n,
        pid: own_n.child.id(),
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut catch_up = Vec::new();
    for round in 0..3u64 {
        b.push(append_rate(&without, seconds, 100 + round).await?);
        a.push(append_rate(&with, seconds, 200 + round).await?);
        // The sinks fall behind under full load (they yield the CPU to
        // appends); let them catch up before the next phase.
        let s = Instant::now();
        caught_up(&http, &with.url, set).await?;
        catch_up.push(s.elapsed().as_secs_f64());
    }
    let (ma, mb) = (median(&mut a), median(&mut b));
    let ratio = ma / mb;
    println!(
        "batched appends/s (100-event batches, 4 clients): with sinks {} {ma:.0}, none {mb:.0}: ratio {ratio:.2} (goal >= 0.90 with three){}",
        set.join("+"),
        if ratio < 0.9 { "  MISSED" } else { "" }
    );
    drop(own_n);

    println!(
        "  after each phase with sinks, they caught up in {} s",
        catch_up
            .iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 3. Lag at a paced 20,000 appends/s.
    let rate = 20_000u64;
    let stop_flag = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let per_task = rate / 100 / 4; // batches per second per task
    let mut tasks = Vec::new();
    for c in 0..4u64 {
        let (mut conn, tk, stop_flag, done) = (
            super::wire::Conn::new(&with.url)?,
            with.token.clone(),
            stop_flag.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(900 + c);
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_task as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut run = 0u64;
            while !stop_flag.load(Relaxed) {
                tick.tick().await;
                run += 1;
                let body = batch(&mut rng, 100, 9_000_000_000 + c * 10_000_000 + run);
                if let Ok(r) = conn.post("/v1/events", &tk, &body).await {
                    if (200..300).contains(&r.status) {
                        done.fetch_add(100, Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    rx.sampling.store(true, Relaxed);
    let start_done = done.load(Relaxed);
    let s = Instant::now();
    let mut lag_entries: Vec<(String, f64)> = Vec::new();
    while s.elapsed() < Duration::from_secs(seconds.max(5)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for name in set {
            let key = format!("vellum_sink_lag_entries{{sink=\"{name}\"}}");
            if let Some(v) = gauge(&http, &with.url, &key).await {
                lag_entries.push((name.to_string(), v));
            }
        }
    }
    rx.sampling.store(false, Relaxed);
    let achieved = (done.load(Relaxed) - start_done) as f64 / s.elapsed().as_secs_f64();
    stop_flag.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut lag = std::mem::take(&mut *rx.lag_ms.lock().unwrap_or_else(|p| p.into_inner()));
    if lag.is_empty() {
        println!("lag at {achieved:.0} appends/s: no HEC sink in the set, so no append -> arrival figure");
    } else {
        let (p50, p99) = (percentile(&mut lag, 0.5), percentile(&mut lag, 0.99));
        println!(
            "lag at {achieved:.0} appends/s (paced at {rate}): append -> arrival at HEC p50 {p50:.0} ms, p99 {p99:.0} ms over {} events (goal < 1000 ms){}",
            lag.len(),
            if p99 >= 1000.0 { "  MISSED" } else { "" }
        );
    }
    for name in set {
        let mut v: Vec<f64> = lag_entries
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect();
        if v.is_empty() {
            continue;
        }
        let (p50, p99) = (percentile(&mut v, 0.5), percentile(&mut v, 0.99));
        println!(
            "  {name:<7} entries behind the durable log: p50 {p50:.0}, p99 {p99:.0} (= {:.0} ms at that rate)",
            p99 / achieved.max(1.0) * 1e3
        );
    }
    println!(
        "rsyslog received {} lines; the HTTP receiver {} events",
        std::fs::read_to_string(rs_dir.join("tcp.log"))
            .map(|t| t.lines().count())
            .unwrap_or(0),
        rx.events.load(Relaxed)
    );
    drop(own_s);
    Ok(())
}
