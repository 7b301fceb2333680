//! `vellum bench --storage s3`: the embedded and the S3 backend measured
//! one after the other in the same run, with the same load: durable
//! appends/s (batched and single), append -> published checkpoint p50 and
//! p99, and inclusion proofs/s (for S3 from a read-only replica following
//! the writer through the bucket). Prints both and their ratios.

use std::time::{Duration, Instant};

use super::bench::{
    appends, checkpoint_size, fill_to, proofs_per_second, AppendFigures, BenchArgs,
};
use super::loadgen::{start_log, Bodies};

struct Figures {
    name: &'static str,
    appends: AppendFigures,
    proofs: f64,
    proof_size: u64,
}

/// Runs both backends and prints the comparison.
pub async fn run(a: &BenchArgs) -> Result<(), String> {
    let endpoint = a
        .s3_endpoint
        .clone()
        .ok_or("--storage s3 needs --s3-endpoint (for a local one: weed mini -dir=DIR -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket=vellum, then --s3-endpoint http://127.0.0.1:8333) and the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")?;
    let seconds = a.seconds.unwrap_or(if a.full { 10 } else { 5 });
    let samples = a.latency_samples.unwrap_or(if a.full { 200 } else { 40 });
    let proof_entries = a
        .proof_entries
        .unwrap_or(if a.full { 1_000_000 } else { 100_000 });
    let prefix = format!(
        "bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let s3_args: Vec<String> = vec![
        "--storage".into(),
        "s3".into(),
        "--s3-endpoint".into(),
        endpoint.clone(),
        "--s3-bucket".into(),
        a.s3_bucket.clone(),
        "--s3-prefix".into(),
        prefix.clone(),
    ];
    println!(
        "plan: embedded, then S3 ({endpoint}, s3://{}/{prefix}): batched and single appends {seconds} s each, {samples} append -> checkpoint samples, fill to {proof_entries} and proofs {seconds} s (S3: from a read-only replica)",
        a.s3_bucket
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(vellum_net::CLIENT_IDLE)
        .build()
        .map_err(|e| e.to_string())?;
    let bodies = Bodies::new(a.batch, a.event_bytes, true);
    let mut all = Vec::new();
    for (name, extra) in [("embedded", vec![]), ("s3", s3_args.clone())] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        eprintln!("{name}: starting the log ...");
        let (own, url, token) = start_log(None, &format!("bench-{name}"), &extra)?;
        let m = appends(&http, &url, &token, a, seconds, samples).await?;
        println!(
            "{name}: appends/s batched {:.0}, single {:.0}; append -> checkpoint p50 {:.0} ms, p99 {:.0} ms",
            m.batched,
            m.single,
            m.p50 * 1e3,
            m.p99 * 1e3
        );
        eprintln!("{name}: filling to {proof_entries} entries ...");
        fill_to(&http, &url, &token, proof_entries, &bodies, a.batch_clients).await?;
        let size = checkpoint_size(&http, &url).await?;
        let replica = if name == "s3" {
            let mut r = extra.clone();
            r.extend(["--read-only", "--follow-interval", "200ms"]);
            let (rown, rurl, _) = start_log(None, "bench-replica", &r)?;
            let t0 = Instant::now();
            while checkpoint_size(&http, &rurl).await.unwrap_or(0) < size {
                if t0.elapsed() > Duration::from_secs(60) {
                    return Err("the replica did not catch up within 60 s".into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some((rown, rurl))
        } else {
            None
        };
        let proof_url = replica.as_ref().map(|r| r.1.clone()).unwrap_or(url.clone());
        let proofs = proofs_per_second(&proof_url, size, a.clients, seconds).await?;
        println!(
            "{name}: inclusion proofs/s at {size} entries{}: {proofs:.0}",
            if replica.is_some() {
                ", from a read-only replica"
            } else {
                ""
            }
        );
        drop(replica);
        drop(own);
        all.push(Figures {
            name,
            appends: m,
            proofs,
            proof_size: size,
        });
    }
    let (e, s) = (&all[0], &all[1]);
    println!();
    println!("{:<38} {:>12} {:>12} {:>8}", "", e.name, s.name, "s3/emb");
    let row = |what: &str, x: f64, y: f64| {
        println!("{what:<38} {x:>12.0} {y:>12.0} {:>8.2}", y / x.max(1e-9));
    };
    row(
        "durable appends/s, batched",
        e.appends.batched,
        s.appends.batched,
    );
    row(
        "durable appends/s, single",
        e.appends.single,
        s.appends.single,
    );
    row(
        "append -> checkpoint p50, ms",
        e.appends.p50 * 1e3,
        s.appends.p50 * 1e3,
    );
    row(
        "append -> checkpoint p99, ms",
        e.appends.p99 * 1e3,
        s.appends.p99 * 1e3,
    );
    row(
        &format!(
            "inclusion proofs/s ({} entries)",
            s.proof_size.min(e.proof_size)
        ),
        e.proofs,
        s.proofs,
    );
    println!(
        "goals: S3 batched >= 0.5 x embedded: {} ({:.2}); S3 append -> checkpoint p99 < 2 s: {} ({:.0} ms)",
        if s.appends.batched >= 0.5 * e.appends.batched { "met" } else { "NOT met" },
        s.appends.batched / e.appends.batched.max(1e-9),
        if s.appends.p99 < 2.0 { "met" } else { "NOT met" },
        s.appends.p99 * 1e3
    );
    println!(
        "(the S3 log stays in s3://{}/{prefix}; delete it with your S3 tools)",
        a.s3_bucket
    );
    Ok(())
}
