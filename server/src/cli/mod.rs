//! The operator's commands besides `serve`: appending NDJSON, exporting
//! evidence bundles, managing tokens, and the load generators.

pub mod append;
pub mod ask;
pub mod bench;
pub mod bench_inprocess;
pub mod bench_query;
pub mod bench_sinks;
pub mod bench_storage;
pub mod export;
pub mod loadgen;
pub mod migrate;
pub mod soak;
pub mod token;
pub mod wire;

use std::path::{Path, PathBuf};

/// Where a command gets its bearer token: `VELLUM_TOKEN`, a file, or (for
/// tests and scripts) the flag. Prefer the first two: a flag's value is
/// visible to every user in `ps`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TokenArgs {
    /// Bearer token (visible in `ps`: prefer VELLUM_TOKEN or --token-file).
    #[arg(long, env = "VELLUM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token (e.g. DATA/gateway.token).
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
}

impl TokenArgs {
    /// The token, or `fallback`'s contents, or an error naming the ways.
    pub fn resolve(&self, fallback: Option<&Path>) -> Result<String, String> {
        if let Some(t) = &self.token {
            return Ok(t.trim().to_string());
        }
        let file =
            self.token_file.as_deref().or(fallback).ok_or_else(|| {
                "no token: set VELLUM_TOKEN or pass --token-file FILE".to_string()
            })?;
        let t = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "token file {}: {e} (set VELLUM_TOKEN or pass --token-file FILE)",
                file.display()
            )
        })?;
        let t = t.trim();
        if t.is_empty() {
            return Err(format!("token file {} is empty", file.display()));
        }
        Ok(t.to_string())
    }
}

/// Largest answer the command-line clients read from the log (an append
/// of 1,000 events with receipts is a few MB); more is refused.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;
