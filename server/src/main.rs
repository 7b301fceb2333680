//! `vellum`: the Vellum log server and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use vellum_server::cli::token::TokenCmd;
use vellum_server::config::ServeArgs;
use vellum_server::{cli, datadir, serve};

/// mimalloc: per-thread heaps with lock-free frees from other threads. A
/// request's buffers are allocated on one async worker and freed on
/// another (or on the sequencer), where glibc's arenas take a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// From the mimalloc C library linked above (its `mimalloc.h`), declared
// here rather than through libmimalloc-sys's `extended` bindings, which
// lack this option's name.
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e`.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Freed memory goes back to the OS after 10 ms (mimalloc v2's default)
/// instead of v3's 1 s (10 s for whole arenas): a burst of short-lived
/// buffers, e.g. on stalled tails, otherwise stays resident for seconds.
fn return_freed_memory_promptly() {
    // SAFETY: sets one integer option of the allocator; mimalloc allows
    // options to be set at any time, from any thread.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 10) }
}

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
    Append(cli::append::AppendArgs),
    /// Query the log's events: filters, time windows, pages; --verify
    /// checks every row against the signed checkpoint.
    Query(cli::ask::QueryArgs),
    /// Print matching events as they are logged (live tail).
    Tail(cli::ask::TailArgs),
    /// Counts per time bucket and group, and the top groups.
    Stats(cli::ask::StatsArgs),
    /// Each sink's deliveries, retries, dead letters and lag.
    Sinks(cli::ask::SinksArgs),
    /// Download an evidence bundle (admin token) to a file.
    Export(cli::export::ExportArgs),
    /// Copy a stopped embedded log into an S3 bucket and verify the copy.
    Migrate(cli::migrate::MigrateArgs),
    /// Load-generate against a log and print throughput and latency medians.
    Bench(cli::bench::BenchArgs),
    /// Run mixed, partly hostile load for a long time and print memory,
    /// descriptors and p99 latencies each minute (not a test: a command).
    Soak(cli::soak::SoakArgs),
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Serve(a) => serve::run(a),
        Cmd::Init { data, origin } => datadir::DataDir::open(&data, origin.as_deref())
            .map(|d| println!("{}", d.signer.verifier().to_vkey()))
            .map_err(|e| e.to_string()),
        Cmd::Token { cmd } => cli::token::run(cmd),
        Cmd::Append(a) => cli::append::run_append(a),
        Cmd::Export(a) => cli::export::run_export(a),
        Cmd::Query(a) => cli::ask::run_query(a),
        Cmd::Tail(a) => cli::ask::run_tail(a),
        Cmd::Stats(a) => cli::ask::run_stats(a),
        Cmd::Sinks(a) => cli::ask::run_sinks(a),
        Cmd::Bench(a) => cli::bench::run(a),
        Cmd::Migrate(a) => cli::migrate::run(a),
        Cmd::Soak(a) => cli::soak::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vellum: {e}");
            ExitCode::FAILURE
        }
    }
}
