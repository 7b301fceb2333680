//! Checkpoint signing: every interval, if the durable tree grew, compute
//! its root from stored tiles and sign a C2SP checkpoint. Without witnesses
//! it is stored durably and published at once; with witnesses it is handed
//! to them (see `witnessing`) and published, with their cosignatures, once
//! a quorum cosigned it. The published size never goes down, even across a
//! crash, and never covers an entry that is not durable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use vellum_spec::hash::Hash;
use vellum_spec::merkle::tree_root;
use vellum_spec::note::{Note, SignerKey};
use vellum_spec::Checkpoint;

use crate::metrics::Metrics;
use crate::storage::tree::StoreNodes;
use crate::storage::{LogStore, StoreError};
use crate::tlog::sequencer::SeqState;
use crate::tlog::witnessing::{Cosigned, Signed, Witnessing};

/// A signed checkpoint as served at `/checkpoint`.
pub struct Published {
    /// The signed note bytes.
    pub note: Vec<u8>,
    /// Its tree size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

/// Signs and publishes checkpoints.
pub struct Checkpointer {
    store: Arc<dyn LogStore>,
    /// The log's key; `None` on a read-only replica, which only serves the
    /// checkpoints the writer stored ([`Checkpointer::follow`]).
    signer: Option<SignerKey>,
    /// The key checkpoints are verified with.
    verifier: vellum_spec::note::VerifierKey,
    metrics: Arc<Metrics>,
    published: RwLock<Arc<Published>>,
    /// Size of the published checkpoint, for waiters (receipts).
    published_size: watch::Sender<u64>,
    /// Size of the newest signed checkpoint (published or not).
    signed_size: AtomicU64,
    /// Witnesses and quorum, if any are configured.
    witnessing: Option<Arc<Witnessing>>,
    /// The checkpointer thread's queue, once started.
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    /// Since when the published checkpoint has not covered the durable
    /// tree (checked each interval), and the last signing error.
    lag: Mutex<Lag>,
}

#[derive(Default)]
struct Lag {
    since: Option<Instant>,
    behind: u64,
    error: Option<String>,
}

/// How far the published checkpoint is behind the durable tree.
#[derive(Debug, Clone)]
pub struct Behind {
    /// Durable entries the published checkpoint does not cover.
    pub entries: u64,
    /// For how long (at the granularity of the checkpoint interval).
    pub for_: Duration,
    /// The last error signing or storing a checkpoint, if any.
    pub error: Option<String>,
}

/// Work for the checkpointer thread besides its ticks.
enum Job {
    /// A receipt is waiting: sign soon (at most every [`EARLY_GAP`]).
    Early,
    /// Store and serve a cosigned note.
    Publish {
        note: Vec<u8>,
        size: u64,
        root: Hash,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// The shortest time between two checkpoints signed early for waiting
/// receipts: a receipt takes about this long instead of up to an interval.
pub const EARLY_GAP: Duration = Duration::from_millis(100);

fn corrupt(msg: String) -> StoreError {
    StoreError::Corrupt(msg)
}

impl Checkpointer {
    /// Loads and checks the stored checkpoint, or signs the first one.
    pub fn open(
        store: Arc<dyn LogStore>,
        signer: SignerKey,
        metrics: Arc<Metrics>,
        witnessing: Option<Arc<Witnessing>>,
    ) -> Result<Arc<Checkpointer>, StoreError> {
        let size = store.size()?;
        let verifier = signer.verifier();
        let published = match store.checkpoint()? {
            Some(note) => check_stored(store.as_ref(), &verifier, note, size)?,
            None => {
                let s = sign(store.as_ref(), &signer, size)?;
                let note = s.note_with(&BTreeMap::new());
                store.put_checkpoint(&note)?;
                Published {
                    note,
                    size: s.size,
                    root: s.root,
                }
            }
        };
        metrics
            .checkpoint_size
            .store(published.size, Ordering::Relaxed);
        let c = Arc::new(Checkpointer {
            store,
            signer: Some(signer),
            verifier,
            metrics,
            published_size: watch::channel(published.size).0,
            signed_size: AtomicU64::new(published.size),
            published: RwLock::new(Arc::new(published)),
            witnessing,
            jobs: Mutex::new(None),
            lag: Mutex::new(Lag::default()),
        });
        Ok(c)
    }

    /// A read-only replica's checkpointer: serves the checkpoint the writer
    /// stored, checked against `verifier` and the stored tree; never signs.
    /// [`Checkpointer::observe`] picks up newer ones.
    pub fn follow(
        store: Arc<dyn LogStore>,
        verifier: vellum_spec::note::VerifierKey,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Checkpointer>, StoreError> {
        let size = store.size()?;
        let published = match store.checkpoint()? {
            Some(note) => check_stored(store.as_ref(), &verifier, note, size)?,
            None => {
                return Err(corrupt(
                    "the writer has stored no checkpoint yet; start the writer first".into(),
                ))
            }
        };
        metrics
            .checkpoint_size
            .store(published.size, Ordering::Relaxed);
        Ok(Arc::new(Checkpointer {
            store,
            signer: None,
            verifier,
            metrics,
            published_size: watch::channel(published.size).0,
            signed_size: AtomicU64::new(published.size),
            published: RwLock::new(Arc::new(published)),
            witnessing: None,
            jobs: Mutex::new(None),
            lag: Mutex::new(Lag::default()),
        }))
    }

    /// On a replica: serves the store's checkpoint if it is newer than the
    /// one served and checks out (signature, root against the stored tree).
    pub fn observe(&self) -> Result<bool, StoreError> {
        let size = self.store.size()?;
        let Some(note) = self.store.checkpoint()? else {
            return Ok(false);
        };
        if note == self.current().note {
            return Ok(false);
        }
        let p = check_stored(self.store.as_ref(), &self.verifier, note, size)?;
        if p.size < self.current().size {
            return Ok(false);
        }
        let size = p.size;
        self.metrics.checkpoint_size.store(size, Ordering::Relaxed);
        match self.published.write() {
            Ok(mut w) => *w = Arc::new(p),
            Err(w) => *w.into_inner() = Arc::new(p),
        }
        self.published_size.send_replace(size);
        Ok(true)
    }

    /// The sizes each witness has cosigned according to the published note
    /// (0 where it carries no valid cosignature from that witness).
    pub fn witnessed_sizes(&self) -> Vec<u64> {
        let Some(w) = &self.witnessing else {
            return vec![];
        };
        let p = self.current();
        let verified = Note::parse(&p.note)
            .map(|n| n.verify_each(&w.specs.iter().map(|s| s.key.clone()).collect::<Vec<_>>()))
            .unwrap_or_default();
        w.specs
            .iter()
            .map(|s| {
                let ok = verified.iter().any(|(k, v)| *k == s.key && v.is_some());
                if ok {
                    p.size
                } else {
                    0
                }
            })
            .collect()
    }

    /// Waits until the published checkpoint covers `size` entries, at most
    /// `timeout`; returns it, or `None` on timeout.
    pub async fn wait_for(&self, size: u64, timeout: Duration) -> Option<Arc<Published>> {
        let mut rx = self.published_size.subscribe();
        let ok = tokio::time::timeout(timeout, rx.wait_for(|s| *s >= size)).await;
        match ok {
            Ok(Ok(_)) => Some(self.current()),
            _ => None,
        }
    }

    /// Publishes a signed (and, if witnessed, cosigned) note: durably
    /// stored first, then served.
    fn publish(&self, note: Vec<u8>, size: u64, root: Hash) -> Result<(), StoreError> {
        if size < self.current().size {
            return Ok(());
        }
        self.store.put_checkpoint(&note)?;
        self.metrics.checkpoint_size.store(size, Ordering::Relaxed);
        tracing::debug!(size, root = %root, "published checkpoint");
        let p = Arc::new(Published { note, size, root });
        match self.published.write() {
            Ok(mut w) => *w = p,
            Err(w) => *w.into_inner() = p,
        }
        self.published_size.send_replace(size);
        Ok(())
    }

    /// Collects cosignatures and publishes each checkpoint once a quorum
    /// cosigned it; late cosignatures are added to the published note.
    pub async fn collect(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Cosigned>) {
        let Some(w) = self.witnessing.clone() else {
            return;
        };
        // Cosignatures per checkpoint (size, root); only the newest signed
        // and the published one are kept.
        let mut got: BTreeMap<(u64, Hash), BTreeMap<usize, vellum_spec::note::NoteSignature>> =
            BTreeMap::new();
        let mut published: Option<(Arc<Signed>, usize)> = None;
        while let Some(c) = rx.recv().await {
            let latest = w.latest.borrow().clone();
            let key = (c.size, c.root);
            let target = match (&latest, &published) {
                (Some(l), _) if (l.size, l.root) == key => l.clone(),
                (_, Some((p, _))) if (p.size, p.root) == key => p.clone(),
                _ => continue, // a cosignature for a superseded checkpoint
            };
            let lines = got.entry(key).or_default();
            lines.insert(c.witness, c.sig);
            let n = lines.len();
            let already = published
                .as_ref()
                .filter(|(p, _)| (p.size, p.root) == key)
                .map(|(_, n)| *n);
            let better = match already {
                Some(had) => n > had,
                None => n >= w.quorum && target.size >= self.current().size,
            };
            if better {
                let note = target.note_with(lines);
                let (size, root) = key;
                match self.publish_on_thread(note, size, root).await {
                    Ok(()) => {
                        if already.is_none() {
                            w.quorum_seconds.observe(target.at.elapsed().as_secs_f64());
                        }
                        published = Some((target, n));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "storing the cosigned checkpoint failed")
                    }
                }
            }
            let keep_latest = latest.as_ref().map(|l| (l.size, l.root));
            let keep_pub = published.as_ref().map(|(p, _)| (p.size, p.root));
            got.retain(|k, _| Some(*k) == keep_latest || Some(*k) == keep_pub);
        }
    }

    /// Signs a statement (a note text) with the log's key, e.g. an export
    /// manifest.
    pub fn sign_statement(&self, text: &str) -> Result<Vec<u8>, StoreError> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            StoreError::Backend("a read-only replica holds no signing key".into())
        })?;
        vellum_spec::note::Note::sign(text, &[signer])
            .map(|n| n.to_bytes())
            .map_err(|e| StoreError::Backend(format!("signing: {e}")))
    }

    /// Asks for a checkpoint soon because a receipt is waiting for one:
    /// signed [`EARLY_GAP`] after the last one at the earliest, instead of
    /// at the next interval. Does nothing on a replica.
    pub fn hurry(&self) {
        if let Ok(j) = self.jobs.lock() {
            if let Some(tx) = j.as_ref() {
                let _ = tx.send(Job::Early);
            }
        }
    }

    /// The published checkpoint's size, as it changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published_size.subscribe()
    }

    /// The checkpoint currently published.
    pub fn current(&self) -> Arc<Published> {
        match self.published.read() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Signs a checkpoint for `size` if it is larger than the last signed
    /// one; publishes it at once, or hands it to the witnesses.
    pub fn advance(&self, size: u64) -> Result<bool, StoreError> {
        if size <= self.signed_size.load(Ordering::Acquire) || size <= self.current().size {
            return Ok(false);
        }
        let Some(signer) = &self.signer else {
            return Ok(false);
        };
        let t = Instant::now();
        let signed = sign(self.store.as_ref(), signer, size)?;
        self.metrics
            .checkpoint_seconds
            .observe(t.elapsed().as_secs_f64());
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.signed_size.store(size, Ordering::Release);
        match &self.witnessing {
            Some(w) => {
                let signed = Arc::new(signed);
                w.latest.send_replace(Some(signed.clone()));
                if w.quorum == 0 {
                    self.publish(signed.note_with(&BTreeMap::new()), size, signed.root)?;
                }
            }
            _ => self.publish(signed.note_with(&BTreeMap::new()), size, signed.root)?,
        }
        Ok(true)
    }

    /// Starts the checkpointer thread: every `interval` it signs a new
    /// checkpoint if the durable tree grew, and it stores the notes the
    /// witness collector publishes. A thread of its own, so that no client
    /// can hold up checkpoints by exhausting a shared pool.
    pub fn start(
        self: Arc<Self>,
        interval: Duration,
        seq: Arc<SeqState>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        match self.jobs.lock() {
            Ok(mut j) => *j = Some(tx),
            Err(p) => *p.into_inner() = Some(tx),
        }
        std::thread::Builder::new()
            .name("vellum-checkpointer".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                // An early signing asked for by a waiting receipt, and when
                // the last signing was.
                let mut early: Option<Instant> = None;
                let mut last = Instant::now();
                loop {
                    let due = early.map_or(next, |e| e.min(next));
                    let wait = due.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(Job::Early) => {
                            let at = last + EARLY_GAP.min(interval);
                            early = Some(early.map_or(at, |e| e.min(at)));
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                            if early.is_some_and(|e| e <= Instant::now())
                                && next > Instant::now() =>
                        {
                            early = None;
                            last = Instant::now();
                            let size = seq.durable_size.load(Ordering::Acquire);
                            if let Err(e) = self.advance(size) {
                                tracing::error!(error = %e, "signing checkpoint failed");
                            }
                        }
                        Ok(Job::Publish {
                            note,
                            size,
                            root,
                            reply,
                        }) => {
                            let _ = reply.send(self.publish(note, size, root));
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            early = None;
                            last = Instant::now();
                            let size = seq.durable_size.load(Ordering::Acquire);
                            let res = self.advance(size);
                            if let Err(e) = &res {
                                tracing::error!(error = %e, "signing checkpoint failed");
                            }
                            self.track_lag(size, res.err().map(|e| e.to_string()));
                            next += interval;
                            let now = Instant::now();
                            if next < now {
                                next = now + interval;
                            }
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("spawning the checkpointer: {e}")))?;
        Ok(())
    }

    fn track_lag(&self, durable: u64, error: Option<String>) {
        let published = self.current().size;
        let mut l = match self.lag.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if published >= durable {
            *l = Lag::default();
            return;
        }
        l.since.get_or_insert_with(Instant::now);
        l.behind = durable - published;
        if error.is_some() {
            l.error = error;
        }
    }

    /// How far the published checkpoint is behind the durable tree, if it is.
    pub fn behind(&self) -> Option<Behind> {
        let l = self.lag.lock().ok()?;
        let since = l.since?;
        Some(Behind {
            entries: l.behind,
            for_: since.elapsed(),
            error: l.error.clone(),
        })
    }

    /// Has the checkpointer thread publish a cosigned note.
    async fn publish_on_thread(
        &self,
        note: Vec<u8>,
        size: u64,
        root: Hash,
    ) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        let sent = match self.jobs.lock() {
            Ok(j) => j.as_ref().map(|tx| {
                tx.send(Job::Publish {
                    note,
                    size,
                    root,
                    reply,
                })
            }),
            Err(_) => None,
        };
        match sent {
            Some(Ok(())) => rx
                .await
                .unwrap_or_else(|_| Err(StoreError::Backend("the checkpointer stopped".into()))),
            _ => Err(StoreError::Backend(
                "the checkpointer is not running".into(),
            )),
        }
    }
}

/// Checks a stored checkpoint note: signed by `verifier`, within the
/// stored `size`, and its root that of the stored tree.
fn check_stored(
    store: &dyn LogStore,
    verifier: &vellum_spec::note::VerifierKey,
    note: Vec<u8>,
    size: u64,
) -> Result<Published, StoreError> {
    let n = Note::parse(&note).map_err(|e| corrupt(format!("stored checkpoint: {e}")))?;
    n.verify(std::slice::from_ref(verifier))
        .map_err(|e| corrupt(format!("stored checkpoint: {e}")))?;
    let cp = Checkpoint::parse(&n.text).map_err(|e| corrupt(format!("stored checkpoint: {e}")))?;
    if cp.size > size {
        return Err(corrupt(format!(
            "stored checkpoint covers {} entries but the log holds {size}",
            cp.size
        )));
    }
    let root =
        tree_root(cp.size, &StoreNodes::new(store, size)).map_err(|e| corrupt(e.to_string()))?;
    if root != cp.root {
        return Err(corrupt(format!(
            "stored checkpoint root for size {} does not match the stored tree",
            cp.size
        )));
    }
    Ok(Published {
        note,
        size: cp.size,
        root: cp.root,
    })
}

/// Computes the root of `size` entries and signs a checkpoint for it.
fn sign(store: &dyn LogStore, signer: &SignerKey, size: u64) -> Result<Signed, StoreError> {
    let _span = tracing::debug_span!("sign_checkpoint", size).entered();
    let root =
        tree_root(size, &StoreNodes::new(store, size)).map_err(|e| corrupt(e.to_string()))?;
    let cp = Checkpoint {
        origin: signer.name.clone(),
        size,
        root,
        extensions: vec![],
    };
    let text = cp.to_text();
    let log_sig = signer.sign(text.as_bytes());
    Ok(Signed {
        text,
        log_sig,
        size,
        root,
        at: Instant::now(),
    })
}
