//! `vellum-witness`: a C2SP tlog-witness. It cosigns a log's checkpoint only
//! after verifying the log's signature and a consistency proof from the last
//! checkpoint it cosigned for that log, and stores the new state durably
//! before it answers.

mod api;
mod bench;
mod keyfile;
mod logs;
mod rate;
mod state;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// vellum-witness: cosigns transparency-log checkpoints (C2SP tlog-witness).
#[derive(Parser)]
#[command(name = "vellum-witness", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the witness.
    Serve(ServeArgs),
    /// Measure cosignatures per second (one log, many logs) of an
    /// in-process witness over loopback HTTP.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory: witness.key (0600), witness.vkey, state/.
    #[arg(
        long,
        env = "VELLUM_WITNESS_DATA",
        default_value = "vellum-witness-data"
    )]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "VELLUM_WITNESS_LISTEN", default_value = "127.0.0.1:7381")]
    listen: String,
    /// A log to witness, by its verifier key (repeatable); its origin is the key name.
    #[arg(long = "log", value_name = "VKEY")]
    logs: Vec<String>,
    /// TOML file listing logs (`[[log]] vkey = "..."`, optional `origin`);
    /// re-read when it changes.
    #[arg(long, env = "VELLUM_WITNESS_CONFIG")]
    config: Option<PathBuf>,
    /// Key name for a new witness (default: `<host>/vellum-witness`).
    #[arg(long)]
    name: Option<String>,
    /// Requests per second accepted per log (0: unlimited).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Burst of requests accepted per log above the rate.
    #[arg(long, default_value_t = 100.0)]
    burst: f64,
    /// Log lines as JSON.
    #[arg(long)]
    log_json: bool,
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
    let cmd = Cli::parse().cmd;
    init_logs(matches!(&cmd, Cmd::Serve(a) if a.log_json));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vellum-witness: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = match cmd {
        Cmd::Serve(args) => rt.block_on(serve(args)),
        Cmd::Bench(args) => rt.block_on(bench::run(args)),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vellum-witness: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(a: ServeArgs) -> Result<(), String> {
    std::fs::create_dir_all(&a.data).map_err(|e| format!("{}: {e}", a.data.display()))?;
    let (key, created) = keyfile::open(&a.data, a.name.as_deref()).map_err(|e| e.to_string())?;
    let vkey = key.verifier().to_vkey();
    if created {
        eprintln!(
            "vellum-witness: created a new witness in {}\n  verifier key: {vkey}",
            a.data.display()
        );
    }
    println!("{vkey}");
    let initial = logs::load(&a.logs, a.config.as_deref()).map_err(|e| e.to_string())?;
    if initial.is_empty() {
        tracing::warn!("no logs configured: every checkpoint will be refused as unknown (404)");
    }
    let logs = logs::Logs::new(initial);
    if let Some(file) = a.config.clone() {
        tokio::spawn(logs.clone().watch(a.logs.clone(), file));
    }
    let state = state::State::open(&a.data.join("state")).map_err(|e| e.to_string())?;
    let w = Arc::new(api::Witness::new(
        key,
        logs,
        state,
        rate::RateLimiter::new(a.rate, a.burst),
    ));
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", a.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, logs = w.logs.get().len(), "vellum-witness listening");
    eprintln!("vellum-witness: listening on http://{addr}");
    axum::serve(listener, api::router(w))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}
