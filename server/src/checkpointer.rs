//! Checkpoint signing: every interval, if the durable tree grew, compute
//! its root from stored tiles, sign a C2SP checkpoint, store it durably,
//! and only then publish it. The published size never goes down, even
//! across a crash, and never covers an entry that is not durable.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use vellum_spec::hash::Hash;
use vellum_spec::merkle::tree_root;
use vellum_spec::note::{Note, SignerKey};
use vellum_spec::Checkpoint;

use crate::metrics::Metrics;
use crate::sequencer::SeqState;
use crate::store::{LogStore, StoreError};
use crate::tree::StoreNodes;

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
    signer: SignerKey,
    metrics: Arc<Metrics>,
    published: RwLock<Arc<Published>>,
}

fn corrupt(msg: String) -> StoreError {
    StoreError::Corrupt(msg)
}

impl Checkpointer {
    /// Loads and checks the stored checkpoint, or signs the first one.
    pub fn open(
        store: Arc<dyn LogStore>,
        signer: SignerKey,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Checkpointer>, StoreError> {
        let size = store.size()?;
        let published = match store.checkpoint()? {
            Some(note) => {
                let n =
                    Note::parse(&note).map_err(|e| corrupt(format!("stored checkpoint: {e}")))?;
                n.verify(&[signer.verifier()])
                    .map_err(|e| corrupt(format!("stored checkpoint: {e}")))?;
                let cp = Checkpoint::parse(&n.text)
                    .map_err(|e| corrupt(format!("stored checkpoint: {e}")))?;
                if cp.size > size {
                    return Err(corrupt(format!(
                        "stored checkpoint covers {} entries but the log holds {size}",
                        cp.size
                    )));
                }
                let root = tree_root(cp.size, &StoreNodes::new(store.as_ref(), size))
                    .map_err(|e| corrupt(e.to_string()))?;
                if root != cp.root {
                    return Err(corrupt(format!(
                        "stored checkpoint root for size {} does not match the stored tree",
                        cp.size
                    )));
                }
                Published {
                    note,
                    size: cp.size,
                    root: cp.root,
                }
            }
            None => sign(store.as_ref(), &signer, size)?,
        };
        metrics
            .checkpoint_size
            .store(published.size, Ordering::Relaxed);
        let c = Arc::new(Checkpointer {
            store,
            signer,
            metrics,
            published: RwLock::new(Arc::new(published)),
        });
        Ok(c)
    }

    /// The checkpoint currently published.
    pub fn current(&self) -> Arc<Published> {
        match self.published.read() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Signs a checkpoint for `size` if it is larger than the published one.
    pub fn advance(&self, size: u64) -> Result<bool, StoreError> {
        if size <= self.current().size {
            return Ok(false);
        }
        let t = Instant::now();
        let p = sign(self.store.as_ref(), &self.signer, size)?;
        self.metrics
            .checkpoint_seconds
            .observe(t.elapsed().as_secs_f64());
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.metrics.checkpoint_size.store(size, Ordering::Relaxed);
        tracing::debug!(size, root = %p.root, "published checkpoint");
        match self.published.write() {
            Ok(mut w) => *w = Arc::new(p),
            Err(w) => *w.into_inner() = Arc::new(p),
        }
        Ok(true)
    }

    /// Signs a new checkpoint every `interval` while the tree grows.
    pub async fn run(self: Arc<Self>, interval: Duration, seq: Arc<SeqState>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let size = seq.durable_size.load(Ordering::Acquire);
            let me = self.clone();
            let res = tokio::task::spawn_blocking(move || me.advance(size)).await;
            match res {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "signing checkpoint failed"),
                Err(e) => tracing::error!(error = %e, "checkpoint task panicked"),
            }
        }
    }
}

/// Computes the root of `size` entries, signs it and stores it durably.
fn sign(store: &dyn LogStore, signer: &SignerKey, size: u64) -> Result<Published, StoreError> {
    let _span = tracing::debug_span!("sign_checkpoint", size).entered();
    let root =
        tree_root(size, &StoreNodes::new(store, size)).map_err(|e| corrupt(e.to_string()))?;
    let cp = Checkpoint {
        origin: signer.name.clone(),
        size,
        root,
        extensions: vec![],
    };
    let note = Note::sign(&cp.to_text(), &[signer])
        .map_err(|e| corrupt(format!("signing: {e}")))?
        .to_bytes();
    store.put_checkpoint(&note)?;
    Ok(Published { note, size, root })
}
