//! `vellum serve`: wires storage, the sequencer, checkpointing, witnesses,
//! tokens and the HTTP API together, within the configured limits.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use crate::config::{Config, ServeArgs};
use crate::http::AppState;
use crate::tlog::{checkpointer, sequencer, witnessing};
use crate::{datadir, metrics, storage, tokens};

/// Runs the log until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), String> {
    let cfg = Config::resolve(args)?;
    crate::init_logs(cfg.log_json);
    if let Some(p) = &cfg.s3_secret_file {
        crate::secrets::check_mode(p);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vellum-worker")
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> Result<(), String> {
    // Before anything that a revoke could signal: SIGHUP's default action
    // would end the process.
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("installing the SIGHUP handler: {e}"))?;
    // The port first: a log that cannot listen creates nothing.
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", cfg.listen))?;
    let (soft, hard) = vellum_net::fdlimit::raise_nofile_limit()
        .map_err(|e| format!("reading the descriptor limit: {e}"))?;
    let mut conn = cfg.conn.clone();
    conn.max_connections = vellum_net::fdlimit::connection_cap(conn.max_connections, soft);
    if conn.max_connections < cfg.conn.max_connections {
        tracing::warn!(
            requested = cfg.conn.max_connections,
            serving = conn.max_connections,
            descriptor_limit = soft,
            hard_limit = hard,
            "the descriptor limit allows fewer connections than configured; raise `ulimit -n` to serve more"
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.data)
        .map_err(|e| format!("{}: {e}", cfg.data.display()))?;
    let _lock = datadir::lock_for_serving(&cfg.data).map_err(|e| e.to_string())?;
    let dir =
        datadir::DataDir::open(&cfg.data, cfg.origin.as_deref()).map_err(|e| e.to_string())?;
    let own_key = dir.signer.verifier().to_vkey();
    let metrics = Arc::new(metrics::Metrics::default());
    let (store, bucket) = open_store(&cfg, &dir, &own_key)?;
    // A replica serves the writer's log, under the writer's key.
    let vkey = match &bucket {
        Some(b) if cfg.read_only => b.log_key(),
        _ => own_key,
    };
    if dir.created && !cfg.read_only {
        eprintln!(
            "vellum: created a new log in {}\n  verifier key: {vkey}\n  gateway token (append, read): {}",
            cfg.data.display(),
            cfg.data.join("gateway.token").display()
        );
    }
    println!("{vkey}");
    let cursor_secret = dir.signer.to_skey();
    let origin = dir.signer.name.clone();
    let query_dir = dir.db_path().join("query");
    let (queue, seq, checkpoints, witnessing) = if cfg.read_only {
        let verifier = vellum_spec::note::VerifierKey::parse(&vkey)
            .map_err(|e| format!("the bucket's log key {vkey:?}: {e}"))?;
        let (seq, checkpoints) = follow(
            store.clone(),
            verifier,
            metrics.clone(),
            cfg.follow_interval,
        )?;
        // Nothing reads this queue: appends are refused before they are queued.
        let (queue, _) = tokio::sync::mpsc::channel(1);
        if !cfg.witnesses.is_empty() {
            tracing::warn!("a read-only replica does not talk to witnesses; the writer does");
        }
        (queue, seq, checkpoints, None)
    } else {
        let (queue, seq) = sequencer::start(store.clone(), metrics.clone(), cfg.queue)
            .map_err(|e| e.to_string())?;
        let witnessing = (!cfg.witnesses.is_empty()).then(|| {
            Arc::new(witnessing::Witnessing::new(
                cfg.witnesses.clone(),
                cfg.witness_quorum,
            ))
        });
        let checkpoints = checkpointer::Checkpointer::open(
            store.clone(),
            dir.signer,
            metrics.clone(),
            witnessing.clone(),
        )
        .map_err(|e| e.to_string())?;
        checkpoints
            .clone()
            .start(cfg.checkpoint_interval, seq.clone())
            .map_err(|e| e.to_string())?;
        if let Some(w) = &witnessing {
            let rx = w.start(
                store.clone(),
                cfg.witness_timeout,
                checkpoints.witnessed_sizes(),
            )?;
            tokio::spawn(checkpoints.clone().collect(rx));
            tracing::info!(
                witnesses = w.specs.len(),
                quorum = w.quorum,
                "checkpoints are published once cosigned by the quorum"
            );
        }
        (queue, seq, checkpoints, witnessing)
    };
    let tokens = Arc::new(tokens::TokenStore::open(&cfg.data).map_err(|e| e.to_string())?);
    {
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = t.tick() => tokens.refresh(),
                    got = hangups.recv() => {
                        if got.is_none() {
                            return;
                        }
                        let tokens = tokens.clone();
                        let _ = tokio::task::spawn_blocking(move || tokens.reload_and_ack()).await;
                    }
                }
            }
        });
    }
    let index = if cfg.query_index {
        let idx = crate::query::Index::open(&query_dir, store.clone(), cursor_secret.as_bytes())
            .map_err(|e| format!("query index: {e}"))?;
        idx.start(seq.clone())
            .map_err(|e| format!("starting the indexer: {e}"))?;
        Some(idx)
    } else {
        None
    };
    let sinks = if cfg.sinks.is_empty() {
        None
    } else {
        let env = crate::sinks::SinkEnv {
            store: store.clone(),
            durable: seq.durable_watch.subscribe(),
            origin,
            dir: crate::sinks::state_dir(&cfg.data),
        };
        Some(Arc::new(crate::sinks::Sinks::start(
            cfg.sinks.clone(),
            env,
        )?))
    };
    let conn_stats = Arc::new(vellum_net::ConnStats::default());
    let state = Arc::new(AppState {
        store,
        queue,
        seq,
        checkpoints,
        tokens,
        metrics,
        conn_stats: conn_stats.clone(),
        public_entries: cfg.public_entries,
        max_batch: cfg.max_batch,
        receipt_timeout: cfg.receipt_timeout,
        body_timeout: cfg.body_timeout,
        exports: Arc::new(tokio::sync::Semaphore::new(cfg.max_exports)),
        receipt_waits: Arc::new(tokio::sync::Semaphore::new(cfg.max_receipt_waits)),
        write_timeout: conn.write_timeout,
        lag_tolerance: (cfg.checkpoint_interval * 3).max(std::time::Duration::from_secs(2))
            + if cfg.witnesses.is_empty() {
                std::time::Duration::ZERO
            } else {
                cfg.witness_timeout
            },
        witnessing,
        index,
        tails: Arc::new(tokio::sync::Semaphore::new(cfg.max_tails)),
        sinks,
        log_key: vkey.clone(),
        read_only: cfg.read_only,
    });
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        %addr,
        read_only = cfg.read_only,
        checkpoint_size = state.checkpoints.current().size,
        max_connections = conn.max_connections,
        "vellum listening"
    );
    eprintln!("vellum: listening on http://{addr}");
    vellum_net::serve(
        listener,
        crate::http::router(state),
        conn,
        conn_stats,
        vellum_net::shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())
}

/// The opened backend, and the bucket store if it is S3.
type OpenedStore = (
    Arc<dyn storage::LogStore>,
    Option<Arc<storage::object::BucketStore>>,
);

/// Opens the configured backend; for S3 also returns the bucket store
/// (a writer's lease heartbeat is started here).
fn open_store(cfg: &Config, dir: &datadir::DataDir, own_key: &str) -> Result<OpenedStore, String> {
    match &cfg.storage {
        crate::config::Storage::Embedded => Ok((
            Arc::new(
                storage::SledStore::open(&dir.db_path(), cfg.cache_bytes, cfg.dedup_table_keys)
                    .map_err(|e| e.to_string())?,
            ),
            None,
        )),
        crate::config::Storage::S3(s) => {
            use storage::object::{BucketStore, OpenOptions, Role};
            let local = dir.db_path().join("s3");
            std::fs::create_dir_all(&local).map_err(|e| format!("{}: {e}", local.display()))?;
            let b = Arc::new(
                BucketStore::open(OpenOptions {
                    settings: s.clone(),
                    role: if cfg.read_only {
                        Role::Replica
                    } else {
                        Role::Writer
                    },
                    instance: storage::object::instance_id(&cfg.data).map_err(|e| e.to_string())?,
                    local,
                    log_key: Some(own_key.to_string()),
                    dedup_table_keys: cfg.dedup_table_keys,
                    lease: cfg.s3_lease,
                })
                .map_err(|e| e.to_string())?,
            );
            if !cfg.read_only {
                storage::object::start_heartbeat(b.clone()).map_err(|e| e.to_string())?;
            }
            tracing::info!(
                bucket = %s.describe(),
                read_only = cfg.read_only,
                size = storage::LogStore::size(b.as_ref()).unwrap_or(0),
                "the log is stored in the bucket"
            );
            Ok((b.clone(), Some(b)))
        }
    }
}

/// A replica's follower: every `interval` it reads what the writer
/// committed, advances the readable size and serves the newest checkpoint.
fn follow(
    store: Arc<dyn storage::LogStore>,
    verifier: vellum_spec::note::VerifierKey,
    metrics: Arc<metrics::Metrics>,
    interval: std::time::Duration,
) -> Result<(Arc<sequencer::SeqState>, Arc<checkpointer::Checkpointer>), String> {
    let size = store.size().map_err(|e| e.to_string())?;
    let seq = sequencer::SeqState::following(size);
    metrics
        .tree_size
        .store(size, std::sync::atomic::Ordering::Relaxed);
    let checkpoints = checkpointer::Checkpointer::follow(store.clone(), verifier, metrics.clone())
        .map_err(|e| e.to_string())?;
    let (s2, c2) = (seq.clone(), checkpoints.clone());
    std::thread::Builder::new()
        .name("vellum-follower".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            match store.refresh() {
                Ok(size) => {
                    s2.follow_to(size);
                    metrics.tree_size.store(size, std::sync::atomic::Ordering::Relaxed);
                    if let Err(e) = c2.observe() {
                        tracing::warn!(error = %e, "the bucket's checkpoint does not check out; serving the last good one");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the writer's progress failed; retrying"),
            }
        })
        .map_err(|e| format!("spawning the follower: {e}"))?;
    Ok((seq, checkpoints))
}
