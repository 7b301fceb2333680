//! Collecting witness cosignatures (the log as a C2SP tlog-witness client).
//!
//! Each witness has its own task that always submits the newest signed
//! checkpoint, with the consistency proof from the size that witness last
//! cosigned (learnt from a 409 when unknown), so a slow or absent witness
//! only ever lags and never holds up the others. Cosignatures go to one
//! collector, which publishes a checkpoint as soon as `quorum` witnesses
//! cosigned it, and adds late cosignatures to the published note.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use vellum_spec::hash::Hash;
use vellum_spec::merkle::prove_consistency;
use vellum_spec::note::{NoteSignature, VerifierKey, ALG_ED25519};
use vellum_spec::witness::{parse_size_body, AddCheckpoint};

use crate::metrics::Histogram;
use crate::storage::tree::StoreNodes;
use crate::storage::LogStore;

/// A witness the log asks for cosignatures: its key and submission URL.
#[derive(Clone, Debug)]
pub struct WitnessSpec {
    /// The witness's `cosignature/v1` key.
    pub key: VerifierKey,
    /// Submission prefix; requests go to `<url>/add-checkpoint`.
    pub url: String,
}

impl WitnessSpec {
    /// Parses `VKEY@URL`. A type-0x01 key is taken as the same key's
    /// `cosignature/v1` form, as other witness clients do.
    pub fn parse(s: &str) -> Result<WitnessSpec, String> {
        let at = s
            .find("@http://")
            .or_else(|| s.find("@https://"))
            .ok_or_else(|| format!("witness {s:?}: want VKEY@http(s)://HOST[/PREFIX]"))?;
        let key =
            VerifierKey::parse(&s[..at]).map_err(|e| format!("witness key {:?}: {e}", &s[..at]))?;
        let key = if key.alg == ALG_ED25519 {
            key.as_cosignature_v1()
        } else {
            key
        };
        let url = s[at + 1..].trim_end_matches('/').to_string();
        Ok(WitnessSpec { key, url })
    }
}

/// A checkpoint the log signed, waiting for cosignatures.
#[derive(Debug)]
pub struct Signed {
    /// Checkpoint text.
    pub text: String,
    /// The log's own signature line.
    pub log_sig: NoteSignature,
    /// Tree size.
    pub size: u64,
    /// Root.
    pub root: Hash,
    /// When it was signed.
    pub at: Instant,
}

impl Signed {
    /// The note with the log's signature and the given cosignatures.
    pub fn note_with(&self, cosigs: &BTreeMap<usize, NoteSignature>) -> Vec<u8> {
        let mut s = self.text.clone();
        s.push('\n');
        s.push_str(&self.log_sig.to_line());
        for c in cosigs.values() {
            s.push_str(&c.to_line());
        }
        s.into_bytes()
    }
}

/// A witness's counters, rendered under `/metrics`.
pub struct WitnessMetrics {
    /// The witness's key name.
    pub name: String,
    /// Why its last submission failed, while it keeps failing.
    pub last_error: std::sync::Mutex<Option<String>>,
    cosigned: AtomicU64,
    failures: AtomicU64,
    conflicts: AtomicU64,
    latency: Histogram,
}

impl WitnessMetrics {
    fn new(name: &str) -> WitnessMetrics {
        WitnessMetrics {
            name: name.to_string(),
            last_error: std::sync::Mutex::new(None),
            cosigned: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            latency: Histogram::new(crate::metrics::SECONDS),
        }
    }
}

/// Renders every witness's metrics and the quorum latency.
pub fn render_metrics(ws: &[Arc<WitnessMetrics>], quorum: &Histogram, out: &mut String) {
    use std::fmt::Write;
    type Counter = fn(&WitnessMetrics) -> &AtomicU64;
    let counters: [(&str, Counter); 3] = [
        ("vellum_witness_cosignatures_total", |w| &w.cosigned),
        ("vellum_witness_failures_total", |w| &w.failures),
        ("vellum_witness_conflicts_total", |w| &w.conflicts),
    ];
    for (name, get) in counters {
        let _ = writeln!(out, "# TYPE {name} counter");
        for w in ws {
            let _ = writeln!(
                out,
                "{name}{{witness=\"{}\"}} {}",
                w.name,
                get(w).load(Relaxed)
            );
        }
    }
    for w in ws {
        w.latency.render_labeled(
            "vellum_witness_request_seconds",
            "Time for a witness to answer add-checkpoint.",
            &format!("witness=\"{}\"", w.name),
            out,
        );
    }
    quorum.render_labeled(
        "vellum_witness_quorum_seconds",
        "Time from signing a checkpoint to publishing it with a quorum of cosignatures.",
        "",
        out,
    );
}

/// A cosignature a witness returned for the checkpoint of `size`/`root`.
#[derive(Debug)]
pub struct Cosigned {
    /// Index of the witness in the configured list.
    pub witness: usize,
    /// Size of the checkpoint it cosigned.
    pub size: u64,
    /// Root of that checkpoint.
    pub root: Hash,
    /// The verified cosignature line.
    pub sig: NoteSignature,
}

/// Largest witness answer read: a cosignature line is under 200 bytes, and
/// the C2SP answer is a few of them (or a short error). Anything longer is
/// refused as soon as it crosses this, however much the witness sends.
pub const MAX_RESPONSE_BYTES: usize = 16 << 10;

/// Why one submission failed.
#[derive(Debug, thiserror::Error)]
enum SubmitError {
    #[error("request: {0}")]
    Http(#[from] reqwest::Error),
    #[error("response: {0}")]
    Body(#[from] vellum_net::CappedError),
    #[error("witness is at size {0}")]
    Conflict(u64),
    #[error("status {0}: {1}")]
    Status(u16, String),
    #[error("no valid cosignature from {0} in the response")]
    NoCosignature(String),
    #[error("consistency proof: {0}")]
    Proof(String),
}

/// Runs one witness: submits the newest checkpoint each time it changes,
/// retrying with backoff while it fails.
#[allow(clippy::too_many_arguments)]
pub async fn run_witness(
    idx: usize,
    spec: WitnessSpec,
    client: reqwest::Client,
    store: Arc<dyn LogStore>,
    mut latest: watch::Receiver<Option<Arc<Signed>>>,
    out: mpsc::UnboundedSender<Cosigned>,
    metrics: Arc<WitnessMetrics>,
    mut known: u64,
) {
    let mut done: Option<(u64, Hash)> = None;
    let mut backoff = Duration::from_millis(200);
    let mut failing: u64 = 0;
    loop {
        let cur = latest.borrow_and_update().clone();
        if let Some(p) = cur.filter(|p| done != Some((p.size, p.root))) {
            let mut attempt = 0;
            let res = loop {
                attempt += 1;
                let t = Instant::now();
                let r = submit(&spec, &client, &store, &p, known).await;
                metrics.latency.observe(t.elapsed().as_secs_f64());
                match r {
                    Err(SubmitError::Conflict(size)) if size <= p.size && attempt < 3 => {
                        metrics.conflicts.fetch_add(1, Relaxed);
                        tracing::debug!(witness = %spec.key.name, size, "witness is at another size; retrying from it");
                        known = size;
                    }
                    r => break r,
                }
            };
            match res {
                Ok(sig) => {
                    metrics.cosigned.fetch_add(1, Relaxed);
                    if let Ok(mut l) = metrics.last_error.lock() {
                        *l = None;
                    }
                    known = p.size;
                    done = Some((p.size, p.root));
                    backoff = Duration::from_millis(200);
                    if failing > 0 {
                        tracing::info!(witness = %spec.key.name, after_failures = failing, "witness cosigns again");
                        failing = 0;
                    }
                    let _ = out.send(Cosigned {
                        witness: idx,
                        size: p.size,
                        root: p.root,
                        sig,
                    });
                }
                Err(e) => {
                    metrics.failures.fetch_add(1, Relaxed);
                    if let Ok(mut l) = metrics.last_error.lock() {
                        *l = Some(e.to_string());
                    }
                    if let SubmitError::Conflict(size) = e {
                        tracing::error!(witness = %spec.key.name, witness_size = size, log_size = p.size,
                            "witness claims a larger tree than this log has signed; not retrying until the log grows past it");
                        known = size;
                    } else if failing.is_multiple_of(60) {
                        // The first failure, then about every few minutes.
                        tracing::warn!(witness = %spec.key.name, url = %spec.url, error = %e, failures = failing + 1, "witness did not cosign");
                    } else {
                        tracing::debug!(witness = %spec.key.name, error = %e, "witness did not cosign");
                    }
                    failing += 1;
                    // Retry after the backoff, or sooner if a newer checkpoint comes.
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        r = latest.changed() => if r.is_err() { return },
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        if latest.changed().await.is_err() {
            return;
        }
    }
}

async fn submit(
    spec: &WitnessSpec,
    client: &reqwest::Client,
    store: &Arc<dyn LogStore>,
    p: &Signed,
    old: u64,
) -> Result<NoteSignature, SubmitError> {
    let proof = if old == 0 || old >= p.size {
        vec![]
    } else {
        let store = store.clone();
        let size = p.size;
        tokio::task::spawn_blocking(move || {
            prove_consistency(old, size, &StoreNodes::new(store.as_ref(), size))
        })
        .await
        .map_err(|e| SubmitError::Proof(e.to_string()))?
        .map_err(|e| SubmitError::Proof(e.to_string()))?
    };
    let mut note = p.text.clone().into_bytes();
    note.push(b'\n');
    note.extend_from_slice(p.log_sig.to_line().as_bytes());
    let body = AddCheckpoint { old, proof, note }.to_bytes();
    let resp = client
        .post(format!("{}/add-checkpoint", spec.url))
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let text = vellum_net::read_capped_text(resp, MAX_RESPONSE_BYTES).await?;
    match status {
        200 => {}
        409 => {
            return Err(match parse_size_body(&text) {
                Some(n) => SubmitError::Conflict(n),
                None => SubmitError::Status(409, "unparseable size body".into()),
            })
        }
        s => {
            let mut msg: String = text.chars().take(200).collect();
            msg = msg.trim_end().to_string();
            return Err(SubmitError::Status(s, msg));
        }
    }
    for line in text.lines() {
        let Ok(sig) = NoteSignature::parse_line(line) else {
            continue;
        };
        if sig.name == spec.key.name
            && sig.id == spec.key.id
            && spec.key.verify(p.text.as_bytes(), &sig.sig).is_some()
        {
            return Ok(sig);
        }
    }
    Err(SubmitError::NoCosignature(spec.key.to_vkey()))
}

/// The witnesses, their tasks' handles and the collector's inputs.
pub struct Witnessing {
    /// The configured witnesses.
    pub specs: Vec<WitnessSpec>,
    /// Cosignatures needed to publish.
    pub quorum: usize,
    /// The newest signed checkpoint, watched by the witness tasks.
    pub latest: watch::Sender<Option<Arc<Signed>>>,
    /// Per-witness metrics.
    pub metrics: Vec<Arc<WitnessMetrics>>,
    /// Signing-to-quorum latency.
    pub quorum_seconds: Histogram,
}

impl Witnessing {
    /// Why the quorum is not being reached: each failing witness and its
    /// last error.
    pub fn failing(&self) -> Vec<(String, String)> {
        self.metrics
            .iter()
            .filter_map(|m| {
                let e = m.last_error.lock().ok()?.clone()?;
                Some((m.name.clone(), e))
            })
            .collect()
    }

    /// Prepares the witnesses (tasks are started by [`Witnessing::start`]).
    pub fn new(specs: Vec<WitnessSpec>, quorum: usize) -> Witnessing {
        let metrics = specs
            .iter()
            .map(|s| Arc::new(WitnessMetrics::new(&s.key.name)))
            .collect();
        Witnessing {
            specs,
            quorum,
            latest: watch::channel(None).0,
            metrics,
            quorum_seconds: Histogram::new(crate::metrics::SECONDS),
        }
    }

    /// Starts one task per witness; `known[i]` is the size witness `i` is
    /// believed to have cosigned (a 409 corrects it). Returns the stream of
    /// cosignatures.
    pub fn start(
        &self,
        store: Arc<dyn LogStore>,
        timeout: Duration,
        known: Vec<u64>,
    ) -> Result<mpsc::UnboundedReceiver<Cosigned>, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(vellum_net::CLIENT_IDLE)
            .build()
            .map_err(|e| format!("witness HTTP client: {e}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        for (i, spec) in self.specs.iter().enumerate() {
            tokio::spawn(run_witness(
                i,
                spec.clone(),
                client.clone(),
                store.clone(),
                self.latest.subscribe(),
                tx.clone(),
                self.metrics[i].clone(),
                known.get(i).copied().unwrap_or(0),
            ));
        }
        Ok(rx)
    }
}
