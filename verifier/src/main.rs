//! `vellum-verify`: checks a Vellum log, single events, receipts and
//! evidence bundles without trusting the log's operator. It depends only
//! on `vellum-spec` (the formats and algorithms) and an HTTP client.
//!
//! Exit codes: 0 verified; 1 a verification failed; 2 bad arguments;
//! 3 operational error (network, HTTP, files): nothing proven either way.

mod bench;
mod bundle_cmd;
mod http;
mod keys;
mod log_cmd;
mod prefetch;
mod report;
mod sequence;
mod single;
mod state;
mod tree;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::keys::Policy;
use crate::report::{Failure, Report, EXIT_USAGE};

#[derive(Parser)]
#[command(
    name = "vellum-verify",
    version,
    about = "Verify a Vellum log, an event, a receipt or an evidence bundle without trusting the log",
    after_help = "Exit codes: 0 verified; 1 verification failed; 2 bad arguments; 3 operational error (network, HTTP, files)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The trust policy, shared by every command.
#[derive(Args, Clone)]
struct Trust {
    /// The log's verifier key (`name+id+base64`), or a file holding it.
    #[arg(long, env = "VELLUM_LOG_KEY")]
    log_key: String,
    /// A witness's verifier key, or a file holding it (repeatable).
    #[arg(long = "witness-key")]
    witness_keys: Vec<String>,
    /// Valid witness cosignatures required [default: every --witness-key].
    #[arg(long)]
    quorum: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Verify a running log: checkpoint, witnesses, consistency with the
    /// last run (--state), every entry and tile (--full), continuously (--follow).
    Log {
        /// Base URL of the log.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        trust: Trust,
        /// File keeping the last trusted checkpoint (the monitor's memory).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Download and verify every entry bundle and tile.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        token: TokenArgs,
        /// Treat session seq gaps and duplicates as failures, not warnings.
        #[arg(long)]
        strict_seq: bool,
        /// Keep monitoring; exits non-zero on the first failure.
        #[arg(long)]
        follow: bool,
        /// Time between rounds with --follow: 10s, 500ms, 2m (a bare number is seconds).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        interval: Duration,
        /// Where evidence of a failure is written [default with --follow:
        /// vellum-evidence-<unix time>.json].
        #[arg(long)]
        evidence: Option<PathBuf>,
        /// Parallel downloads for --full.
        #[arg(long, default_value_t = 8)]
        threads: usize,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Prove one event is in the log under its latest checkpoint.
    Event {
        /// Base URL of the log.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        trust: Trust,
        /// The entry's index.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        index: Option<u64>,
        /// The event as JSON (any formatting), or a /v1/entries answer.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Verify an append receipt offline.
    Receipt {
        /// The receipt (tlog-proof text, or the JSON entry holding it).
        file: PathBuf,
        #[command(flatten)]
        trust: Trust,
    },
    /// Verify an evidence bundle offline.
    Bundle {
        /// The bundle file.
        file: PathBuf,
        #[command(flatten)]
        trust: Trust,
        /// An earlier checkpoint you hold: the bundle must prove it extends it.
        #[arg(long)]
        since: Option<PathBuf>,
        /// Write an HTML report here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Benchmark --full verification on an in-memory log against raw SHA-256.
    Bench {
        /// Events in the log.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Runs (medians are printed).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Threads for the parallel run.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

/// Parses `10s`, `500ms`, `2m`, `1h` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("unknown unit {u:?}; use ms, s, m or h")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err("the interval must be positive".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn policy(t: &Trust) -> Result<Policy, Failure> {
    Policy::new(&t.log_key, &t.witness_keys, t.quorum)
}

fn emit(r: &Report, json: bool) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(r) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("vellum-verify: cannot write the JSON report: {e}"),
        }
    } else {
        print!("{}", r.to_text());
    }
    ExitCode::from(r.exit_code())
}

fn usage_report(cmd: &str, f: Failure, json: bool) -> ExitCode {
    let mut r = Report::new(cmd, "");
    r.fail(f);
    let code = emit(&r, json);
    let _ = code;
    ExitCode::from(EXIT_USAGE)
}

/// The read token, when entries need one: `VELLUM_TOKEN`, a file, or the
/// flag (visible in `ps`; prefer the other two).
#[derive(clap::Args)]
struct TokenArgs {
    /// Token with the read scope (visible in `ps`: prefer VELLUM_TOKEN or --token-file).
    #[arg(long, env = "VELLUM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the token with the read scope.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

impl TokenArgs {
    fn resolve(&self) -> Result<Option<String>, Failure> {
        if let Some(t) = &self.token {
            return Ok(Some(t.trim().to_string()));
        }
        let Some(f) = &self.token_file else {
            return Ok(None);
        };
        let t = std::fs::read_to_string(f)
            .map_err(|e| Failure::Usage(format!("--token-file {}: {e}", f.display())))?;
        Ok(Some(t.trim().to_string()))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Log {
            url,
            trust,
            state,
            full,
            token,
            strict_seq,
            follow,
            interval,
            evidence,
            threads,
            quiet,
        } => {
            let p = match policy(&trust) {
                Ok(p) => p,
                Err(f) => return usage_report("log", f, trust.json),
            };
            let log = match token.resolve().and_then(|t| http::Log::new(&url, t)) {
                Ok(l) => l,
                Err(f) => return usage_report("log", f, trust.json),
            };
            let o = log_cmd::LogOptions {
                log,
                policy: p,
                state,
                full,
                strict_seq,
                follow: follow.then_some(interval),
                evidence,
                threads: threads.max(1),
                progress: !quiet,
            };
            emit(&log_cmd::run(&o), trust.json)
        }
        Cmd::Event {
            url,
            trust,
            index,
            file,
            token,
        } => {
            let p = match policy(&trust) {
                Ok(p) => p,
                Err(f) => return usage_report("event", f, trust.json),
            };
            let which = match (index, file) {
                (Some(i), None) => single::Which::Index(i),
                (None, Some(f)) => single::Which::File(f),
                _ => {
                    return usage_report(
                        "event",
                        Failure::Usage("give exactly one of --index or --file".into()),
                        trust.json,
                    )
                }
            };
            let log = match token.resolve().and_then(|t| http::Log::new(&url, t)) {
                Ok(l) => l,
                Err(f) => return usage_report("event", f, trust.json),
            };
            emit(&single::event(&log, &p, &which), trust.json)
        }
        Cmd::Bench {
            entries,
            runs,
            threads,
        } => match bench::run(entries, runs.max(1), threads.max(2)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => {
                eprintln!("vellum-verify bench: {f}");
                ExitCode::from(f.exit_code())
            }
        },
        Cmd::Receipt { file, trust } => match policy(&trust) {
            Ok(p) => emit(&single::receipt(&file, &p), trust.json),
            Err(f) => usage_report("receipt", f, trust.json),
        },
        Cmd::Bundle {
            file,
            trust,
            since,
            report,
        } => {
            let p = match policy(&trust) {
                Ok(p) => p,
                Err(f) => return usage_report("bundle", f, trust.json),
            };
            let (mut r, summary) = bundle_cmd::run(&file, &p, since.as_deref());
            if let Some(path) = report {
                let html = bundle_cmd::html(&r, summary.as_ref());
                match std::fs::write(&path, html) {
                    Ok(()) => eprintln!("vellum-verify: report written to {}", path.display()),
                    Err(e) if r.ok => {
                        r.fail(Failure::Operational(format!("{}: {e}", path.display())))
                    }
                    Err(e) => eprintln!("vellum-verify: {}: {e}", path.display()),
                }
            }
            emit(&r, trust.json)
        }
    }
}
