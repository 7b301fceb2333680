//! `vellum`: the Vellum log server and its operator commands.

mod api;
mod bench;
mod bundles;
mod checkpointer;
mod client;
mod config;
mod datadir;
mod dedup;
mod dedup_index;
mod export;
mod export_cmd;
mod metrics;
mod secrets;
mod sequencer;
mod store;
mod tilefiles;
mod tokens;
mod tree;
mod witnessing;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, ServeArgs};

/// Vellum: a verifiable audit log for AI agents.
#[derive(Parser)]
#[command(name = "vellum", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the log.
    Serve(ServeArgs),
    /// Create the data directory and keys without serving; prints the
    /// verifier key (so witnesses can be configured before the log starts).
    Init {
        /// Data directory.
        #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
        data: PathBuf,
        /// Log origin and key name for a new log [default: localhost/vellum].
        #[arg(long, env = "VELLUM_ORIGIN")]
        origin: Option<String>,
    },
    /// Manage bearer tokens (works while the log runs).
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Append NDJSON events from FILE (or stdin) to a running log.
    Append(client::AppendArgs),
    /// Download an evidence bundle (admin token) to a file.
    Export(export_cmd::ExportArgs),
    /// Load-generate against a log and print throughput and latency medians.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token and print it (once).
    Add {
        /// Token name; events appended with it carry it as `gateway`.
        name: String,
        /// Comma-separated scopes: append, read, admin (admin: evidence exports).
        #[arg(long, default_value = "append")]
        scopes: String,
        /// Data directory.
        #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
        data: PathBuf,
    },
    /// List tokens (names and scopes; secrets are never stored).
    List {
        /// Data directory.
        #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
        data: PathBuf,
    },
    /// Revoke a token; a running log refuses it within a second.
    Revoke {
        /// Token name.
        name: String,
        /// Data directory.
        #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
        data: PathBuf,
    },
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Serve(a) => serve(a),
        Cmd::Init { data, origin } => datadir::DataDir::open(&data, origin.as_deref())
            .map(|d| println!("{}", d.signer.verifier().to_vkey()))
            .map_err(|e| e.to_string()),
        Cmd::Token { cmd } => token(cmd),
        Cmd::Append(a) => client::run_append(a),
        Cmd::Export(a) => export_cmd::run_export(a),
        Cmd::Bench(a) => bench::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vellum: {e}");
            ExitCode::FAILURE
        }
    }
}

fn token(cmd: TokenCmd) -> Result<(), String> {
    match cmd {
        TokenCmd::Add { name, scopes, data } => {
            let scopes = scopes
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(tokens::Scope::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            if scopes.is_empty() {
                return Err("--scopes needs at least one of append, read".into());
            }
            let t = tokens::add(&data, &name, &scopes).map_err(|e| e.to_string())?;
            println!("{t}");
            eprintln!("token {name:?} created; it is shown only now");
        }
        TokenCmd::List { data } => {
            for t in tokens::list(&data).map_err(|e| e.to_string())? {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.name()).collect();
                println!("{}\t{}\t{}", t.name, scopes.join(","), t.created);
            }
        }
        TokenCmd::Revoke { name, data } => {
            tokens::revoke(&data, &name).map_err(|e| e.to_string())?;
            eprintln!("token {name:?} revoked");
        }
    }
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let cfg = Config::resolve(args)?;
    init_logs(cfg.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run_server(cfg))
}

async fn run_server(cfg: Config) -> Result<(), String> {
    let dir =
        datadir::DataDir::open(&cfg.data, cfg.origin.as_deref()).map_err(|e| e.to_string())?;
    let vkey = dir.signer.verifier().to_vkey();
    if dir.created {
        eprintln!(
            "vellum: created a new log in {}\n  verifier key: {vkey}\n  gateway token (append, read): {}",
            cfg.data.display(),
            cfg.data.join("gateway.token").display()
        );
    }
    println!("{vkey}");
    let store: Arc<dyn store::LogStore> = Arc::new(
        store::SledStore::open(&dir.db_path(), cfg.cache_bytes, cfg.dedup_table_keys)
            .map_err(|e| e.to_string())?,
    );
    let metrics = Arc::new(metrics::Metrics::default());
    let (queue, seq) =
        sequencer::start(store.clone(), metrics.clone(), cfg.queue).map_err(|e| e.to_string())?;
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
    let tokens = Arc::new(tokens::TokenStore::open(&cfg.data).map_err(|e| e.to_string())?);
    tokio::spawn(
        checkpoints
            .clone()
            .run(cfg.checkpoint_interval, seq.clone()),
    );
    {
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                t.tick().await;
                tokens.refresh();
            }
        });
    }
    let state = Arc::new(api::AppState {
        store,
        queue,
        seq,
        checkpoints,
        tokens,
        metrics,
        public_entries: cfg.public_entries,
        max_batch: cfg.max_batch,
        receipt_timeout: cfg.receipt_timeout,
        witnessing,
        log_key: vkey.clone(),
    });
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, checkpoint_size = state.checkpoints.current().size, "vellum listening");
    eprintln!("vellum: listening on http://{addr}");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}
