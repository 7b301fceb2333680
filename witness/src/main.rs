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
    /// HTTP connections served at once; more get 503 [default: 1024, at
    /// most half the descriptor limit].
    #[arg(long, env = "VELLUM_WITNESS_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Time a client has to send a request's headers [default: 10s].
    #[arg(long, value_parser = vellum_net::parse_duration)]
    header_timeout: Option<std::time::Duration>,
    /// A connection with no traffic for this long is closed [default: 60s].
    #[arg(long, value_parser = vellum_net::parse_duration)]
    idle_timeout: Option<std::time::Duration>,
    /// A response the client does not read for this long is cut off [default: 30s].
    #[arg(long, value_parser = vellum_net::parse_duration)]
    write_timeout: Option<std::time::Duration>,
}

impl ServeArgs {
    /// The connection limits these flags ask for, over the defaults.
    fn conn_limits(&self) -> vellum_net::ConnLimits {
        let d = vellum_net::ConnLimits::default();
        vellum_net::ConnLimits {
            max_connections: self.max_connections.unwrap_or(d.max_connections).max(1),
            header_timeout: self.header_timeout.unwrap_or(d.header_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            write_timeout: self.write_timeout.unwrap_or(d.write_timeout),
        }
    }
}

fn init_logs(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", a.listen))?;
    let (soft, _) = vellum_net::fdlimit::raise_nofile_limit()
        .map_err(|e| format!("reading the descriptor limit: {e}"))?;
    let mut limits = a.conn_limits();
    limits.max_connections = vellum_net::fdlimit::connection_cap(limits.max_connections, soft);
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
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, logs = w.logs.get().len(), max_connections = limits.max_connections, "vellum-witness listening");
    eprintln!("vellum-witness: listening on http://{addr}");
    let stats = w.conn_stats.clone();
    vellum_net::serve(
        listener,
        api::router(w),
        limits,
        stats,
        vellum_net::shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())
}
