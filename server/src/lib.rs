//! The Vellum log: storage, the transparency log (sequencer, checkpoints,
//! witnesses), the HTTP API, the query index, the SIEM sinks, evidence
//! export, and the
//! operator commands. The `vellum` binary is a thin `main` over this
//! library; the fuzz targets and benchmarks link it too.

pub mod cli;
pub mod config;
pub mod datadir;
pub mod export;
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod priority;
pub mod query;
pub mod secrets;
pub mod serve;
pub mod sinks;
pub mod storage;
pub mod tlog;
pub mod tokens;
pub mod ui;

/// Logs to stderr, filtered by `RUST_LOG`; coloured only on a terminal.
pub fn init_logs(json: bool) {
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
