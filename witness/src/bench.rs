//! `vellum-witness bench`: cosignatures per second of a real witness (HTTP,
//! signature and proof checks, durable state) for one log and for many
//! logs, with request latency. The witness runs in this process on a
//! loopback port, in a temporary directory; request bodies are prepared
//! before the clock starts, so the figures are the witness's own cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vellum_spec::hash::leaf_hash;
use vellum_spec::merkle::{prove_consistency, MemoryTree};
use vellum_spec::note::{Note, SignerKey, ALG_COSIGNATURE_V1, ALG_ED25519};
use vellum_spec::witness::AddCheckpoint;
use vellum_spec::Checkpoint;

use crate::api::Witness;
use crate::logs::{LogKeys, Logs};
use crate::rate::RateLimiter;
use crate::state::State;

/// Flags of `vellum-witness bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Checkpoints submitted in the one-log phase.
    #[arg(long, default_value_t = 2000)]
    one_log_requests: u64,
    /// Number of logs in the many-logs phase.
    #[arg(long, default_value_t = 1000)]
    logs: u64,
    /// Checkpoints per log in the many-logs phase.
    #[arg(long, default_value_t = 5)]
    per_log: u64,
    /// Concurrent clients in the many-logs phase.
    #[arg(long, default_value_t = 64)]
    clients: usize,
}

/// Request bodies taking a witness through `sizes` for one log.
fn chain(key: &SignerKey, tree: &MemoryTree, sizes: &[u64]) -> Vec<Vec<u8>> {
    let mut old = 0;
    sizes
        .iter()
        .map(|&size| {
            let root = tree.root(size).unwrap_or_default();
            let text = Checkpoint {
                origin: key.name.clone(),
                size,
                root,
                extensions: vec![],
            }
            .to_text();
            let note = Note::sign(&text, &[key])
                .map(|n| n.to_bytes())
                .unwrap_or_default();
            let proof = if old == 0 {
                vec![]
            } else {
                prove_consistency(old, size, tree).unwrap_or_default()
            };
            let b = AddCheckpoint { old, proof, note }.to_bytes();
            old = size;
            b
        })
        .collect()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn post(c: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<f64, String> {
    let t = Instant::now();
    let r = c
        .post(url)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let st = r.status();
    let text = r.text().await.map_err(|e| e.to_string())?;
    if !st.is_success() {
        return Err(format!("{st}: {text}"));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Runs the benchmark and prints the figures.
pub async fn run(a: BenchArgs) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("vellum-witness-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let n_leaves = a.one_log_requests.max(a.per_log * 8) + 1;
    let tree = MemoryTree::new((0..n_leaves).map(|i| leaf_hash(&i.to_be_bytes())).collect());
    let one = SignerKey::from_seed("bench.example/one", ALG_ED25519, [1; 32])
        .map_err(|e| e.to_string())?;
    let many: Vec<SignerKey> = (0..a.logs)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&i.to_be_bytes());
            SignerKey::from_seed(&format!("bench.example/log{i}"), ALG_ED25519, seed)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut keys = LogKeys::new();
    for k in std::iter::once(&one).chain(&many) {
        keys.insert(k.name.clone(), vec![k.verifier()]);
    }
    eprintln!("preparing request bodies ...");
    let one_sizes: Vec<u64> = (1..=a.one_log_requests).collect();
    let one_bodies = chain(&one, &tree, &one_sizes);
    let many_sizes: Vec<u64> = (1..=a.per_log).map(|i| i * 8).collect();
    let many_bodies: Vec<Vec<Vec<u8>>> =
        many.iter().map(|k| chain(k, &tree, &many_sizes)).collect();

    let wkey = SignerKey::from_seed("bench.example/witness", ALG_COSIGNATURE_V1, [3; 32])
        .map_err(|e| e.to_string())?;
    let state = State::open(&dir.join("state")).map_err(|e| e.to_string())?;
    let w = Arc::new(Witness::new(
        wkey,
        Logs::new(keys),
        state,
        RateLimiter::new(0.0, 1.0),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { axum::serve(listener, crate::api::router(w)).await });
    let url = format!("http://{addr}/add-checkpoint");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(vellum_net::CLIENT_IDLE)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;

    // One log: requests for one origin are serialized by the witness.
    let t = Instant::now();
    let mut lat = Vec::with_capacity(one_bodies.len());
    for b in one_bodies {
        lat.push(post(&client, &url, b).await?);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "one log:    {:>7.0} cosignatures/s ({} sequential checkpoints); latency p50 {:.2} ms, p99 {:.2} ms",
        a.one_log_requests as f64 / secs,
        a.one_log_requests,
        pct(&mut lat, 0.5) * 1e3,
        pct(&mut lat, 0.99) * 1e3
    );

    // Many logs: each client takes logs in turn and walks each one's chain.
    let queue = Arc::new(std::sync::Mutex::new(
        many_bodies.into_iter().collect::<Vec<_>>(),
    ));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        let (q, c, u) = (queue.clone(), client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let next = q.lock().ok().and_then(|mut q| q.pop());
                let Some(bodies) = next else { break };
                for b in bodies {
                    lat.push(post(&c, &u, b).await?);
                }
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} logs: {:>7.0} cosignatures/s ({} checkpoints, {} clients); latency p50 {:.2} ms, p99 {:.2} ms",
        a.logs,
        lat.len() as f64 / secs,
        lat.len(),
        a.clients,
        pct(&mut lat, 0.5) * 1e3,
        pct(&mut lat, 0.99) * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
